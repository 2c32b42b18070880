//! The connection pool behind a forwarded call to a Streamable HTTP upstream.
//!
//! A forwarded call is on the hot path: `reqwest` rebuilt and merged a header map, parsed
//! the URL, and wrapped every request in redirect, retry and decoder layers the gateway
//! never uses (an upstream's redirect is refused anyway). This is hyper's own pooled
//! client with what stays the same for every call built once: the URI, the header block,
//! and a connector whose name lookups go through the operator's SSRF guard.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::error::UpstreamError;

/// A pooled keep-alive client (HTTP/1.1; TLS for `https` upstreams).
pub(crate) type Pool =
    hyper_util::client::legacy::Client<hyper_rustls::HttpsConnector<HttpConnector<Guarded>>, Full<Bytes>>;

/// How long an idle connection to an upstream is kept.
const IDLE: Duration = Duration::from_secs(90);

/// A pool whose every name lookup goes through `resolver` (the SSRF guard); literal
/// addresses were checked when the upstream was configured.
pub(crate) fn pool(resolver: Arc<dyn reqwest::dns::Resolve>) -> Result<Pool, UpstreamError> {
    let mut http = HttpConnector::new_with_resolver(Guarded(resolver));
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(10)));
    let tls = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
        .map_err(|e| UpstreamError::Connect(format!("TLS setup: {e}")))?
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_idle_timeout(IDLE)
        .build(tls))
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
        Err(e) => Err(UpstreamError::Closed(waygate_core::util::error_chain(&*e))),
    }
}

/// The next chunk of a streamed body; `None` at its end (trailers are skipped).
pub(crate) async fn next_chunk(body: &mut hyper::body::Incoming) -> Result<Option<Bytes>, UpstreamError> {
    loop {
        match body.frame().await {
            None => return Ok(None),
            Some(Err(e)) => return Err(UpstreamError::Closed(waygate_core::util::error_chain(&e))),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    return Ok(Some(data));
                }
            }
        }
    }
}
