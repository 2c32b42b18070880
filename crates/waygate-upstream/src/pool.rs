//! The connection pool behind a forwarded call to a Streamable HTTP upstream.
//!
//! A forwarded call is on the hot path. `reqwest` rebuilt and merged a header map, parsed
//! the URL, and wrapped every request in redirect, retry and decoder layers the gateway
//! never uses; hyper-util's pool, which replaced it, still keys every checkout by scheme
//! and authority, races the checkout against a connect, and inserts `Host` per request.
//! A wire has one upstream, so its pool is a stack of idle HTTP/1.1 connections
//! (hyper's own client connections) to that one address; what stays the same for every
//! call (the request target, the header block with `Host`) is built once by the wire.
//! Connections are made through a connector whose name lookups go through the operator's
//! SSRF guard.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use tower_service::Service;

use crate::error::UpstreamError;

type Connector = hyper_rustls::HttpsConnector<HttpConnector<Guarded>>;
type Sender = http1::SendRequest<Full<Bytes>>;

/// How long an idle connection to an upstream is kept.
const IDLE: Duration = Duration::from_secs(90);
/// Idle connections kept at most; a burst above it closes its extra connections after use.
const MAX_IDLE: usize = 1024;

/// Keep-alive HTTP/1.1 connections to one upstream (TLS for `https`).
#[derive(Clone)]
pub(crate) struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    connector: Connector,
    /// Where connections go (the connector reads scheme, host and port from it).
    target: http::Uri,
    /// Most recently used last: a call takes the warmest connection, and the ones at the
    /// front are the first to age out.
    idle: Mutex<VecDeque<(Sender, Instant)>>,
}

/// A pool whose every name lookup goes through `resolver` (the SSRF guard); literal
/// addresses were checked when the upstream was configured.
pub(crate) fn pool(
    target: http::Uri,
    resolver: Arc<dyn reqwest::dns::Resolve>,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Result<Pool, UpstreamError> {
    let mut http = HttpConnector::new_with_resolver(Guarded(resolver));
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(10)));
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = match tls {
        Some(cfg) => builder.with_tls_config((*cfg).clone()),
        None => builder
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| UpstreamError::Connect(format!("TLS setup: {e}")))?,
    };
    let connector = builder.https_or_http().enable_http1().wrap_connector(http);
    let inner = Arc::new(Inner {
        connector,
        target,
        idle: Mutex::new(VecDeque::new()),
    });
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(reap(Arc::downgrade(&inner)));
    }
    Ok(Pool { inner })
}

/// Closes connections idle for longer than [`IDLE`] while the pool lives.
async fn reap(pool: Weak<Inner>) {
    let mut tick = tokio::time::interval(IDLE / 3);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(pool) = pool.upgrade() else { return };
        pool.idle_list()
            .retain(|(s, since)| since.elapsed() < IDLE && !s.is_closed());
    }
}

/// A connection lent to one request; given back when dropped, if the connection can
/// carry another request by then (the whole response was read).
pub(crate) struct Lease {
    sender: Option<Sender>,
    pool: Weak<Inner>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(mut sender) = self.sender.take() else { return };
        let Some(pool) = self.pool.upgrade() else { return };
        if sender.is_ready() {
            pool.put(sender);
        } else if !sender.is_closed() {
            // The response's end was read before its connection task noticed it: give
            // the connection back once it is ready (it closes instead when a body was
            // dropped unread).
            let pool = Arc::downgrade(&pool);
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    if sender.ready().await.is_ok() {
                        if let Some(pool) = pool.upgrade() {
                            pool.put(sender);
                        }
                    }
                });
            }
        }
    }
}

impl Pool {
    /// Send `req` (origin-form target, `Host` set) on an idle connection or a new one.
    /// The lease gives the connection back when dropped: hold it until the body is read.
    pub(crate) async fn send(
        &self,
        mut req: http::Request<Full<Bytes>>,
    ) -> Result<(http::Response<hyper::body::Incoming>, Lease), UpstreamError> {
        // A kept-alive connection the upstream closed just before it was reused gives the
        // request back unsent; it is sent once more, on a new connection.
        while let Some(mut sender) = self.inner.take() {
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok((resp, self.lease(sender))),
                Err(mut e) => match e.take_message() {
                    Some(unsent) => req = unsent,
                    None => return Err(broke(e.error())),
                },
            }
        }
        // Boxed: connecting (lookup, TCP, TLS, handshake) would otherwise make this
        // future, and every future that awaits it, several KiB larger, copied per call.
        let mut sender = Box::pin(self.inner.connect()).await?;
        let resp = sender.send_request(req).await.map_err(|e| broke(&e))?;
        Ok((resp, self.lease(sender)))
    }

    fn lease(&self, sender: Sender) -> Lease {
        Lease {
            sender: Some(sender),
            pool: Arc::downgrade(&self.inner),
        }
    }
}

impl Inner {
    fn idle_list(&self) -> std::sync::MutexGuard<'_, VecDeque<(Sender, Instant)>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The most recently used connection that can take a request now.
    fn take(&self) -> Option<Sender> {
        let mut idle = self.idle_list();
        while let Some((sender, since)) = idle.pop_back() {
            if sender.is_ready() && since.elapsed() < IDLE {
                return Some(sender);
            }
        }
        None
    }

    fn put(&self, sender: Sender) {
        let mut idle = self.idle_list();
        if idle.len() >= MAX_IDLE {
            idle.pop_front();
        }
        idle.push_back((sender, Instant::now()));
    }

    async fn connect(&self) -> Result<Sender, UpstreamError> {
        let failed = |e: BoxError| UpstreamError::Connect(with_tls_hint(waygate_core::util::error_chain(&*e)));
        let mut connector = self.connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(failed)?;
        let io = connector.call(self.target.clone()).await.map_err(failed)?;
        let (sender, conn) = http1::handshake(io).await.map_err(|e| lost(&e))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %waygate_core::util::error_chain(&e), "upstream connection ended");
            }
        });
        Ok(sender)
    }
}

fn lost(e: &hyper::Error) -> UpstreamError {
    UpstreamError::Connect(with_tls_hint(waygate_core::util::error_chain(e)))
}

/// rustls names what failed; the operator also needs the setting that fixes it.
fn with_tls_hint(mut why: String) -> String {
    let hint = if why.contains("UnknownIssuer") {
        " (a private CA? trust it with [upstreams.tls] ca)"
    } else if why.contains("CertificateRequired") {
        " (the upstream wants a client certificate: [upstreams.tls] client_cert and client_key)"
    } else {
        ""
    };
    why.push_str(hint);
    why
}

/// A connection that broke once the request was on it: that call fails, the upstream
/// stays (the next call gets another connection).
fn broke(e: &(dyn std::error::Error + 'static)) -> UpstreamError {
    UpstreamError::Exchange(with_tls_hint(format!(
        "the connection broke during the exchange: {}",
        waygate_core::util::error_chain(e)
    )))
}

/// The guard's resolver in the shape hyper's connector asks for.
#[derive(Clone)]
pub(crate) struct Guarded(Arc<dyn reqwest::dns::Resolve>);

type Lookup = Pin<Box<dyn Future<Output = Result<reqwest::dns::Addrs, BoxError>> + Send>>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<Name> for Guarded {
    type Response = Addrs;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Addrs, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let lookup: Result<Lookup, BoxError> = reqwest::dns::Name::from_str(name.as_str())
            .map(|n| self.0.resolve(n))
            .map_err(|_| format!("not a host name: {}", name.as_str()).into());
        Box::pin(async move { Ok(Addrs(lookup?.await?)) })
    }
}

/// The addresses a lookup allowed.
pub(crate) struct Addrs(reqwest::dns::Addrs);

impl Iterator for Addrs {
    type Item = SocketAddr;
    fn next(&mut self) -> Option<SocketAddr> {
        self.0.next()
    }
}

/// A whole response body, refused past `cap` bytes (a hostile upstream cannot fill memory).
pub(crate) async fn read_capped(body: hyper::body::Incoming, cap: usize) -> Result<Bytes, UpstreamError> {
    match http_body_util::Limited::new(body, cap).collect().await {
        Ok(all) => Ok(all.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(UpstreamError::Protocol(format!("response body over {cap} bytes")))
        }
        Err(e) => Err(broke(&*e)),
    }
}

/// The next chunk of a streamed body; `None` at its end (trailers are skipped).
pub(crate) async fn next_chunk(body: &mut hyper::body::Incoming) -> Result<Option<Bytes>, UpstreamError> {
    loop {
        match body.frame().await {
            None => return Ok(None),
            Some(Err(e)) => return Err(broke(&e)),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    return Ok(Some(data));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Literal loopback addresses need no lookup.
    struct NoLookup;
    impl reqwest::dns::Resolve for NoLookup {
        fn resolve(&self, _: reqwest::dns::Name) -> reqwest::dns::Resolving {
            Box::pin(async { Err("no lookups in this test".into()) })
        }
    }

    /// A loopback HTTP/1.1 server answering `ok` to every request, and a pool to it; counts
    /// connections, and closes each after one answer when `one_shot`.
    async fn server(one_shot: bool) -> (Pool, http::Uri, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri: http::Uri = format!("http://{}/mcp", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut have = 0;
                    loop {
                        let Ok(n) = sock.read(&mut buf[have..]).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        have += n;
                        // Each test request is one small write: head and its 2-byte body.
                        let Some(end) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") else {
                            continue;
                        };
                        if have < end + 4 + 2 {
                            continue;
                        }
                        have = 0;
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if sock.write_all(answer).await.is_err() || one_shot {
                            return;
                        }
                    }
                });
            }
        });
        let pool = pool(uri.clone(), Arc::new(NoLookup), None).unwrap();
        (pool, uri, accepted)
    }

    fn post(uri: &http::Uri) -> http::Request<Full<Bytes>> {
        let mut req = http::Request::new(Full::new(Bytes::from_static(b"{}")));
        *req.method_mut() = http::Method::POST;
        *req.uri_mut() = http::Uri::from_static("/mcp");
        let host = uri.authority().unwrap().as_str().parse().unwrap();
        req.headers_mut().insert(http::header::HOST, host);
        req
    }

    async fn call(pool: &Pool, uri: &http::Uri) -> Result<Bytes, UpstreamError> {
        let (resp, _lease) = pool.send(post(uri)).await?;
        read_capped(resp.into_body(), 1024).await
    }

    #[tokio::test]
    async fn calls_one_after_another_share_one_connection() {
        let (pool, uri, accepted) = server(false).await;
        for _ in 0..20 {
            assert_eq!(&call(&pool, &uri).await.unwrap()[..], b"ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn concurrent_calls_open_connections_that_later_calls_reuse() {
        let (pool, uri, accepted) = server(false).await;
        let burst: Vec<_> = (0..8)
            .map(|_| {
                let (pool, uri) = (pool.clone(), uri.clone());
                tokio::spawn(async move { call(&pool, &uri).await })
            })
            .collect();
        for call in burst {
            assert_eq!(&call.await.unwrap().unwrap()[..], b"ok");
        }
        let opened = accepted.load(Ordering::SeqCst);
        assert!((1..=8).contains(&opened), "{opened} connections for 8 calls");
        for _ in 0..8 {
            call(&pool, &uri).await.unwrap();
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            opened,
            "idle connections were not reused"
        );
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_while_idle_is_replaced() {
        let (pool, uri, accepted) = server(true).await;
        for _ in 0..3 {
            assert_eq!(&call(&pool, &uri).await.unwrap()[..], b"ok");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn an_unreachable_upstream_is_a_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let uri: http::Uri = format!("http://{}/mcp", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        drop(listener);
        let pool = pool(uri.clone(), Arc::new(NoLookup), None).unwrap();
        let err = call(&pool, &uri).await.unwrap_err();
        assert!(err.is_connection_loss(), "{err}");
    }
}
