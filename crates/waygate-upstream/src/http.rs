//! A remote Streamable HTTP server: every message is a POST; the answer is JSON or an SSE
//! stream that ends with the response (notifications before it are routed like stdio's).
//! The session id from `initialize` and the negotiated revision go on every later POST.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE};
use serde_json::Value;

use crate::client::Inbound;
use crate::error::UpstreamError;
use crate::inbound::{head_answer, response_text, Answer};
use crate::link::Related;
use crate::pool::{next_chunk, read_capped, Pool};
use crate::sse::Parser;
use waygate_protocol::headers::{MCP_PROTOCOL_VERSION, MCP_SESSION_ID};

/// Largest response body read from an upstream.
const MAX_BODY: usize = 64 << 20;

#[derive(Clone)]
pub struct HttpTarget {
    pub url: reqwest::Url,
    /// Sent on every request (credentials for the upstream, resolved from secrets).
    pub headers: Vec<(String, String)>,
    /// Built by the caller with the SSRF guard in its resolver.
    pub client: reqwest::Client,
    /// The same guard, for the pool that carries forwarded calls.
    pub resolver: Arc<dyn reqwest::dns::Resolve>,
    pub mode: HttpMode,
    /// The upstream's own TLS settings (extra CA, client certificate); `None`: public roots.
    /// `client` must be built with the same configuration.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// Which HTTP transport the server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpMode {
    /// Streamable HTTP (2025-03-26 and later).
    #[default]
    Streamable,
    /// 2024-11-05 HTTP+SSE.
    Sse,
    /// Streamable HTTP, falling back to HTTP+SSE when `initialize` is refused with a 4xx
    /// (the spec's backwards-compatibility procedure; what a pasted `url` gets).
    Auto,
}

impl std::fmt::Debug for HttpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Header values are credentials: names only.
        let names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("HttpTarget")
            .field("url", &self.url.as_str())
            .field("headers", &names)
            .field("mode", &self.mode)
            .finish()
    }
}

pub(crate) struct HttpWire {
    target: HttpTarget,
    headers: HeaderMap,
    /// Carries every POST; the target and the headers every POST sends are built once.
    pool: Pool,
    uri: http::Uri,
    post_headers: HeaderMap,
    session: RwLock<Option<HeaderValue>>,
    protocol: RwLock<Option<HeaderValue>>,
    /// Ends the standalone GET stream.
    stream_stop: tokio_util::sync::CancellationToken,
}

impl Drop for HttpWire {
    fn drop(&mut self) {
        self.stream_stop.cancel();
    }
}

pub(crate) fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(200)]);
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The configured headers of a target (an invalid one is logged and left out).
pub(crate) fn header_map(target: &HttpTarget) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (k, v) in &target.headers {
        match (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) {
            (Ok(k), Ok(v)) => {
                headers.insert(k, v);
            }
            _ => tracing::warn!(header = %k, "upstream header is not a valid HTTP header; not sent"),
        }
    }
    headers
}

impl HttpWire {
    pub(crate) fn new(target: HttpTarget) -> Result<HttpWire, UpstreamError> {
        let headers = header_map(&target);
        let bad = |e: &dyn std::fmt::Display| UpstreamError::Connect(format!("{}: {e}", target.url));
        let full = http::Uri::try_from(target.url.as_str()).map_err(|e| bad(&e))?;
        // HTTP/1.1 names the path in the request line and the authority in `Host`.
        let mut origin = target.url.path().to_string();
        if let Some(q) = target.url.query() {
            origin.push('?');
            origin.push_str(q);
        }
        let uri = http::Uri::try_from(origin).map_err(|e| bad(&e))?;
        let host = match (target.url.host_str(), target.url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => return Err(bad(&"no host")),
        };
        // Room for the per-call headers: a clone keeps the table's size, so inserting them
        // does not rehash it on every call.
        let mut post_headers = HeaderMap::with_capacity(headers.len() + 16);
        post_headers.extend(headers.clone());
        post_headers.insert(http::header::HOST, HeaderValue::from_str(&host).map_err(|e| bad(&e))?);
        post_headers.insert(ACCEPT, HeaderValue::from_static("application/json, text/event-stream"));
        post_headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(HttpWire {
            pool: crate::pool::pool(full, target.resolver.clone(), target.tls.clone())?,
            uri,
            post_headers,
            target,
            headers,
            session: RwLock::new(None),
            protocol: RwLock::new(None),
            stream_stop: tokio_util::sync::CancellationToken::new(),
        })
    }

    /// Keep the server's standalone GET stream open (where it offers one), so its list
    /// changes, resource updates, logs and requests arrive as they happen rather than on
    /// the next reconnect. Reopened with backoff when it drops; given up on 405 (the
    /// server offers none) or 404 (the session is gone: the supervisor reconnects).
    pub(crate) fn open_stream(&self, inbound: Arc<Inbound>) {
        let base = self
            .request(reqwest::Method::GET, Duration::from_secs(365 * 24 * 3600))
            .header(ACCEPT, "text/event-stream");
        self.keep_open(base, inbound, self.stream_stop.clone());
    }

    /// The stateless era's counterpart of the GET stream: a `subscriptions/listen` POST
    /// whose SSE answer carries the server's list changes; reopened like the GET stream.
    /// Returns what ends this one stream (the connection's end ends it too).
    pub(crate) fn open_listen(&self, msg: Value, inbound: Arc<Inbound>) -> tokio_util::sync::CancellationToken {
        let base = self
            .request(reqwest::Method::POST, Duration::from_secs(365 * 24 * 3600))
            .header(ACCEPT, "application/json, text/event-stream")
            .header(CONTENT_TYPE, "application/json")
            .header("mcp-method", "subscriptions/listen")
            .body(msg.to_string());
        let stop = self.stream_stop.child_token();
        self.keep_open(base, inbound, stop.clone());
        stop
    }

    fn keep_open(
        &self,
        base: reqwest::RequestBuilder,
        inbound: Arc<Inbound>,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let Some(base) = base.try_clone() else { return };
        let answer = self
            .request(reqwest::Method::POST, Duration::from_secs(10))
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json, text/event-stream");
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(500);
            loop {
                let Some(rb) = base.try_clone() else { return };
                let sent = tokio::select! {
                    r = rb.send() => r,
                    _ = stop.cancelled() => return,
                };
                let opened = std::time::Instant::now();
                match sent {
                    Ok(resp) if resp.status() == reqwest::StatusCode::METHOD_NOT_ALLOWED => {
                        tracing::debug!(upstream = %inbound.name, "the server offers no GET stream");
                        return;
                    }
                    Ok(resp) if resp.status() == reqwest::StatusCode::NOT_FOUND => return,
                    Ok(mut resp) if resp.status().is_success() => {
                        tracing::debug!(upstream = %inbound.name, "GET stream open");
                        let mut parser = Parser::default();
                        loop {
                            let chunk = tokio::select! {
                                c = resp.chunk() => c,
                                _ = stop.cancelled() => return,
                            };
                            let Ok(Some(chunk)) = chunk else { break };
                            for data in parser.push(&chunk) {
                                let Ok(msg) = serde_json::from_slice::<Value>(&data) else {
                                    continue;
                                };
                                if let Some(reply) = inbound.handle(msg, Related::Unrelated) {
                                    if let Some(rb) = answer.try_clone() {
                                        tokio::spawn(async move {
                                            let _ = rb.body(reply.to_string()).send().await;
                                        });
                                    }
                                }
                            }
                            if parser.pending() > MAX_BODY {
                                tracing::warn!(upstream = %inbound.name, "GET stream event too large; reopening");
                                break;
                            }
                        }
                    }
                    Ok(resp) => {
                        tracing::debug!(upstream = %inbound.name, status = %resp.status(), "GET stream refused; retrying");
                    }
                    Err(e) => {
                        tracing::debug!(upstream = %inbound.name, error = %e, "GET stream failed; retrying");
                    }
                }
                if opened.elapsed() > Duration::from_secs(30) {
                    backoff = Duration::from_millis(500);
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.cancelled() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        });
    }

    pub(crate) fn set_protocol(&self, v: Option<&str>) {
        *self.protocol.write().unwrap_or_else(|e| e.into_inner()) = v.and_then(|v| HeaderValue::from_str(v).ok());
    }

    /// A request outside the forwarded-call path (streams, answers to the server's own
    /// requests, the session's end) with the configured headers and the session's.
    fn request(&self, method: reqwest::Method, timeout: Duration) -> reqwest::RequestBuilder {
        let mut rb = self
            .target
            .client
            .request(method, self.target.url.clone())
            .timeout(timeout)
            .headers(self.headers.clone());
        if let Some(s) = self.session.read().unwrap_or_else(|e| e.into_inner()).clone() {
            rb = rb.header("mcp-session-id", s);
        }
        if let Some(p) = self.protocol.read().unwrap_or_else(|e| e.into_inner()).clone() {
            rb = rb.header("mcp-protocol-version", p);
        }
        rb
    }

    /// POST one message; the response message when `id` is set (notifications get none).
    /// `timeout: None` when the caller bounds the exchange itself (a request's deadline,
    /// which progress can move: a fixed timeout here would cut it short).
    pub(crate) async fn post(
        &self,
        body: Vec<u8>,
        id: Option<i64>,
        extra: &[(HeaderName, HeaderValue)],
        inbound: &Arc<Inbound>,
        timeout: Option<Duration>,
        stateless: bool,
    ) -> Result<Option<Answer>, UpstreamError> {
        let exchange = self.exchange(body, id, extra, inbound, stateless);
        match timeout {
            Some(t) => tokio::time::timeout(t, exchange)
                .await
                .unwrap_or(Err(UpstreamError::Timeout(t.as_millis() as u64))),
            None => exchange.await,
        }
    }

    /// The request with the per-call headers: `extra` (replacing same-named ones), then
    /// the session's id and revision, or the stateless era's revision.
    fn build(&self, body: Vec<u8>, extra: &[(HeaderName, HeaderValue)], stateless: bool) -> http::Request<Full<Bytes>> {
        let mut req = http::Request::new(Full::new(Bytes::from(body)));
        *req.method_mut() = http::Method::POST;
        *req.uri_mut() = self.uri.clone();
        let headers = req.headers_mut();
        *headers = self.post_headers.clone();
        for (k, v) in extra {
            headers.insert(k, v.clone());
        }
        let protocol = if stateless {
            Some(HeaderValue::from_static(crate::envelope::MODERN))
        } else {
            if let Some(s) = self.session.read().unwrap_or_else(|e| e.into_inner()).clone() {
                headers.insert(MCP_SESSION_ID, s);
            }
            self.protocol.read().unwrap_or_else(|e| e.into_inner()).clone()
        };
        if let Some(p) = protocol {
            headers.insert(MCP_PROTOCOL_VERSION, p);
        }
        req
    }

    async fn exchange(
        &self,
        body: Vec<u8>,
        id: Option<i64>,
        extra: &[(HeaderName, HeaderValue)],
        inbound: &Arc<Inbound>,
        stateless: bool,
    ) -> Result<Option<Answer>, UpstreamError> {
        // The connection goes back to the pool when `_lease` drops, after the body.
        let (resp, _lease) = self.pool.send(self.build(body, extra, stateless)).await?;
        let status = resp.status();
        if let Some(s) = resp.headers().get(MCP_SESSION_ID).filter(|_| !stateless) {
            let mut cur = self.session.write().unwrap_or_else(|e| e.into_inner());
            if cur.is_none() {
                *cur = Some(s.clone());
            }
        }
        if status == http::StatusCode::NOT_FOUND
            && !stateless
            && self.session.read().unwrap_or_else(|e| e.into_inner()).is_some()
        {
            return Err(UpstreamError::Closed("the upstream ended the session (404)".into()));
        }
        let is_sse = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let mut body = resp.into_body();
        if !status.is_success() {
            let body = read_capped(body, 4096).await.unwrap_or_default();
            let rpc = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get("error").cloned());
            let detail = match &rpc {
                Some(e) => e.get("message").and_then(Value::as_str).unwrap_or_default().to_string(),
                None => snippet(&body),
            };
            return Err(match (status.as_u16(), rpc) {
                (401 | 403, _) => UpstreamError::Refused(format!("HTTP {status}: {detail}")),
                (500.., _) => UpstreamError::Exchange(format!("HTTP {status}: {detail}")),
                // An MCP error on a healthy connection is a failed request.
                (_, Some(e)) => UpstreamError::from_error_object(&e),
                (_, None) => UpstreamError::Protocol(format!("HTTP {status}: {detail}")),
            });
        }
        let Some(id) = id else { return Ok(None) };
        if is_sse {
            return self.read_stream(&mut body, id, inbound).await.map(Some);
        }
        let body = read_capped(body, MAX_BODY).await?;
        let text = std::str::from_utf8(&body)
            .map_err(|_| UpstreamError::Protocol(format!("response is not UTF-8 JSON: {}", snippet(&body))))?;
        Ok(Some(answer_to(text, id)))
    }

    /// Read SSE events until the response with `id`; others are routed as they come.
    async fn read_stream(
        &self,
        body: &mut hyper::body::Incoming,
        id: i64,
        inbound: &Arc<Inbound>,
    ) -> Result<Answer, UpstreamError> {
        let mut parser = Parser::default();
        loop {
            let chunk = next_chunk(body)
                .await?
                .ok_or_else(|| UpstreamError::Exchange("the response stream ended before the response".into()))?;
            for data in parser.push(&chunk) {
                let Ok(text) = std::str::from_utf8(&data) else {
                    tracing::warn!(upstream = %inbound.name, "SSE event that is not UTF-8 ignored");
                    continue;
                };
                let head = waygate_protocol::raw::Head::parse(text);
                if let Some(ours) = head.filter(|h| h.method.is_none() && h.int_id() == Some(id)) {
                    return Ok(head_answer(&ours));
                }
                if let Some(answer) = inbound.handle_text(text, Related::Call(id)) {
                    // A server request on the stream: answer it with a POST of its own.
                    let rb = self
                        .request(reqwest::Method::POST, Duration::from_secs(10))
                        .header(CONTENT_TYPE, "application/json")
                        .header(ACCEPT, "application/json, text/event-stream")
                        .body(answer.to_string());
                    tokio::spawn(async move {
                        let _ = rb.send().await;
                    });
                }
            }
            if parser.pending() > MAX_BODY {
                return Err(UpstreamError::Protocol(format!(
                    "an SSE event over {} MiB",
                    MAX_BODY >> 20
                )));
            }
        }
    }

    /// `DELETE` the session so the upstream can free it at once.
    pub(crate) async fn end_session(&self) {
        self.stream_stop.cancel();
        if self.session.read().unwrap_or_else(|e| e.into_inner()).is_none() {
            return;
        }
        let _ = self
            .request(reqwest::Method::DELETE, Duration::from_secs(2))
            .send()
            .await;
    }
}

/// The answer in a JSON response body, which must be the response to request `id`: an
/// answer to another request is refused, not handed to this caller. An error without an id
/// (the server could not read the request) is this request's error.
fn answer_to(text: &str, id: i64) -> Answer {
    let Some(head) = waygate_protocol::raw::Head::parse(text) else {
        return response_text(text);
    };
    let anonymous_error = head.error.is_some() && head.id.is_none();
    if head.int_id() != Some(id) && !anonymous_error {
        let theirs = head
            .id
            .map_or_else(|| "none".to_string(), |r| snippet(r.get().as_bytes()));
        return Err(UpstreamError::Protocol(format!(
            "the response to request {id} carries id {theirs}"
        )));
    }
    head_answer(&head)
}
