//! HTTP listener: one hyper HTTP/1.1 server routing `/mcp` (Streamable HTTP, both eras),
//! `/sse` + `/messages` (2024-11-05 HTTP+SSE), and `/health`.
//!
//! Order of checks on every request, outermost first: Host/Origin (403) → route →
//! method → media types (415/406) → body limit (413) → JSON-RPC decode → era
//! classification → the engine. Authentication will sit right after the Host/Origin check.

pub mod body;
mod caller;
mod front;
pub mod guard;
mod mcp;
mod ops;
mod sse;
pub mod surface;
pub mod tls;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Body as _;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use waygate_core::auth::Authenticator;
use waygate_core::Engine;

pub(crate) use caller::Caller;
use waygate_protocol::headers::{MCP_METHOD, MCP_NAME, X_REQUEST_ID};
use waygate_protocol::jsonrpc::encode_response;
use waygate_protocol::{ErrorObject, Id};

pub use body::Body;
pub use guard::OriginPolicy;
pub use ops::{metrics_text, serve_metrics, Operations};
pub use surface::{rate_headers, Access, AdminSurface, SurfaceCaller, UNLIMITED};

/// HTTP settings; plain data from the config file.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub max_body_bytes: usize,
    pub origins: OriginPolicy,
    pub keepalive: Duration,
    /// Time allowed for a client to send its request headers (slow-client guard).
    pub header_timeout: Duration,
    /// Time allowed for a client to send its request body (slow-client guard).
    pub body_timeout: Duration,
    /// Deepest JSON nesting accepted (arrays and objects).
    pub max_json_depth: usize,
    /// Most request headers accepted; more are answered 431 by hyper.
    pub max_headers: usize,
    /// Set once everything the process depends on (the store) is up; `/ready` reports it.
    pub ready: Arc<std::sync::atomic::AtomicBool>,
    /// API keys and tokens; `None` disables authentication (`--no-auth`, loopback only).
    pub auth: Option<Authenticator>,
    /// RFC 9728 protected-resource metadata, published when OAuth tokens are accepted.
    pub resource_metadata: Option<Arc<ResourceMetadata>>,
    /// What only the binary knows, for `/metrics`, `/ready` and diagnostics.
    pub ops: Option<Arc<dyn Operations>>,
    /// MCP operations per caller (API key, else client IP); empty = unlimited. Shared with
    /// the binary, which replaces the limiter when `[limits]` is reloaded.
    pub rate: Arc<waygate_core::ratelimit::CallerLimit>,
    /// Terminate TLS on this listener (HTTP/2 and HTTP/1.1 by ALPN); `None` = plain HTTP/1.1.
    pub tls: Option<tls::Tls>,
    /// The admin REST API, its docs, the UI and the compatibility routes.
    pub admin: Option<Arc<dyn AdminSurface>>,
}

impl HttpConfig {
    pub fn for_addr(addr: SocketAddr) -> Self {
        HttpConfig {
            max_body_bytes: 4 * 1024 * 1024,
            origins: OriginPolicy {
                loopback_only: addr.ip().is_loopback(),
                allowed_hosts: vec![],
                allowed_origins: vec![],
            },
            keepalive: Duration::from_secs(15),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_json_depth: 64,
            max_headers: 64,
            ready: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            auth: None,
            resource_metadata: None,
            ops: None,
            rate: Default::default(),
            tls: None,
            admin: None,
        }
    }
}

/// What `/.well-known/oauth-protected-resource` answers (RFC 9728), so MCP clients can
/// find the authorization server that issues tokens for this endpoint.
#[derive(Debug, Clone)]
pub struct ResourceMetadata {
    /// The canonical resource URI (`https://host/mcp`); `None` derives it from `Host`.
    pub resource: Option<String>,
    pub authorization_servers: Vec<String>,
    pub scopes_supported: Vec<String>,
}

impl ResourceMetadata {
    fn resource_for(&self, h: &http::HeaderMap) -> String {
        self.resource.clone().unwrap_or_else(|| {
            let host = h.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("localhost");
            format!("http://{host}/mcp")
        })
    }

    /// The metadata URL for the `resource_metadata` challenge parameter: the well-known
    /// path inserted between the resource's origin and its path (RFC 9728 section 3).
    fn url_for(&self, h: &http::HeaderMap) -> String {
        let resource = self.resource_for(h);
        let (scheme, rest) = resource.split_once("://").unwrap_or(("http", &resource));
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        format!("{scheme}://{authority}/.well-known/oauth-protected-resource{path}")
    }

    fn document(&self, h: &http::HeaderMap) -> Vec<u8> {
        let doc = serde_json::json!({
            "resource": self.resource_for(h),
            "authorization_servers": self.authorization_servers,
            "scopes_supported": self.scopes_supported,
            "bearer_methods_supported": ["header"],
            "resource_name": "Waygate MCP endpoint",
        });
        serde_json::to_vec(&doc).unwrap_or_default()
    }
}

static REQUEST_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static PROCESS_TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// `X-Request-Id` from the client (if sane), else a process-unique id; no syscall per request.
fn correlation_id(h: &http::HeaderMap) -> Arc<str> {
    if let Some(v) = h.get(X_REQUEST_ID).and_then(|v| v.to_str().ok()) {
        if !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()) {
            return Arc::from(v);
        }
    }
    let tag = PROCESS_TAG.get_or_init(|| waygate_core::util::random_hex(4));
    let n = REQUEST_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Arc::from(format!("{tag}-{n:x}"))
}

pub(crate) struct Shared {
    pub engine: Arc<Engine>,
    pub cfg: HttpConfig,
    pub sse: sse::SseConnections,
}

/// Serve until `shutdown` fires; in-flight connections get a graceful close.
pub async fn serve(
    listener: TcpListener,
    engine: Arc<Engine>,
    cfg: HttpConfig,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let shared = Arc::new(Shared {
        engine,
        cfg,
        sse: sse::SseConnections::default(),
    });
    let tracker = tokio_util::task::TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let tls = shared.cfg.tls.clone();
            match tls {
                None => serve_conn(shared, TokioIo::new(stream), peer, false, shutdown).await,
                Some(tls) => {
                    // The handshake is bounded like the request head (slow-client guard).
                    let hs = tokio::time::timeout(shared.cfg.header_timeout, tls.acceptor.accept(stream)).await;
                    let stream = match hs {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
                    };
                    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                    serve_conn(shared, TokioIo::new(stream), peer, h2, shutdown).await
                }
            }
        });
    }
    tracker.close();
    let _ = tokio::time::timeout(Duration::from_secs(10), tracker.wait()).await;
    Ok(())
}

/// One HTTP/1.1 or (by ALPN) HTTP/2 connection, until it ends or `shutdown` drains it.
async fn serve_conn<I>(shared: Arc<Shared>, io: I, peer: SocketAddr, h2: bool, shutdown: CancellationToken)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let header_timeout = shared.cfg.header_timeout;
    let max_headers = shared.cfg.max_headers;
    // Boxed: a long-lived connection (legacy SSE) must not reserve the request future's size.
    let svc = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        Box::pin(async move { Ok::<_, Infallible>(route(shared, req, peer).await) })
    });
    macro_rules! drive {
        ($conn:expr) => {{
            let conn = $conn;
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "connection ended with error");
                },
                _ = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(10), conn).await;
                }
            }
        }};
    }
    if h2 {
        let mut builder = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .max_header_list_size(64 * 1024)
            .max_concurrent_streams(256);
        drive!(builder.serve_connection(io, svc));
    } else {
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(Some(header_timeout))
            .max_headers(max_headers)
            // Request line + headers; a larger head is refused before it is buffered.
            .max_buf_size(64 * 1024);
        drive!(builder.serve_connection(io, svc));
    }
}

/// Every log line written while a request is served carries its correlation id, the W3C
/// trace id when the client sent `traceparent`, and — once known — the principal, the MCP
/// method and its target (filled in by the engine); see `waygate_core::logctx`.
async fn route(shared: Arc<Shared>, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let corr = correlation_id(req.headers());
    let trace_id = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(waygate_core::logctx::trace_id_of)
        .map(Box::from);
    let mut ctx = waygate_core::logctx::LogContext {
        request_id: Some(corr.clone()),
        trace_id,
        ..Default::default()
    };
    if shared.engine.spans_enabled() {
        let h = req.headers();
        let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).map(Box::from);
        ctx.traceparent = get("traceparent");
        ctx.tracestate = get("tracestate");
    }
    waygate_core::logctx::scope(ctx, route_in_span(shared, req, peer, corr)).await
}

async fn route_in_span(
    shared: Arc<Shared>,
    mut req: Request<Incoming>,
    peer: SocketAddr,
    corr: Arc<str>,
) -> Response<Body> {
    let authority = req.uri().authority().map(|a| a.as_str());
    if let Err(reason) = shared.cfg.origins.check_request(req.headers(), authority) {
        tracing::info!(reason = %reason, "request refused (Host/Origin)");
        return error_response(StatusCode::FORBIDDEN, None, &ErrorObject::invalid_request(reason));
    }
    // A cheap clone (shared bytes) that outlives the mutable borrows of `req` below.
    let uri = req.uri().clone();
    let path = uri.path();
    let forwarded = shared.engine.passthrough().map(|names| {
        let h = req.headers();
        names
            .iter()
            .flat_map(|n| h.get_all(n.as_str()).iter().map(move |v| (n, v)))
            .filter_map(|(n, v)| Some((Box::from(n.as_str()), Box::from(v.to_str().ok()?))))
            .collect::<Vec<_>>()
            .into()
    });
    let mut caller = Caller {
        principal: None,
        correlation_id: Some(corr),
        rate_key: None,
        forwarded,
        view: None,
    };
    // `/servers/{name}/mcp` (and `/sse`, `/messages`) serve a virtual server's view.
    let (view_name, path) = match path.strip_prefix("/servers/").and_then(|r| r.split_once('/')) {
        Some((name, rest)) => (Some(name), rest),
        None => (None, path.strip_prefix('/').unwrap_or(path)),
    };
    let full = uri.path();
    let public = view_name.is_none()
        && (matches!(full, "/health" | "/healthz" | "/ready" | "/readyz") || full.starts_with("/.well-known/"));
    // The admin surface owns its paths (never inside a virtual server) and says what each needs.
    let surface = match (&shared.cfg.admin, view_name) {
        (Some(a), None) => a.access(req.method(), full, req.headers()).map(|acc| (a.clone(), acc)),
        _ => None,
    };
    let access = surface.as_ref().map(|s| s.1);
    let scope = match access {
        Some(Access::Scope(s)) => s,
        _ => front::required_scope(full),
    };
    // Refusals before the limiter charged anything describe the caller's bucket as it is.
    let shape = |mut resp: Response<Body>, msg: &str| match &surface {
        Some((a, _)) => {
            if a.rate_headers(full) && !resp.headers().contains_key("x-ratelimit-limit") {
                let state = shared.cfg.rate.get().map(|l| (l.rate(), l.rate().burst));
                surface::rate_headers(resp.headers_mut(), state);
            }
            front::shaped(a.as_ref(), full, resp, msg)
        }
        None => resp,
    };
    if let (Some(auth), false) = (&shared.cfg.auth, public || access == Some(Access::Public)) {
        let admin = surface.as_ref().map(|(a, _)| a.as_ref());
        match front::authenticate(&shared, auth, &req, full, admin, scope).await {
            Ok(p) => caller.principal = p,
            Err((r, msg)) => return shape(r, &msg),
        }
    }
    let limiter = shared.cfg.rate.get();
    let mut rate_remaining = None;
    if let Some(limiter) = &limiter {
        let key: Arc<str> = match &caller.principal {
            Some(p) => Arc::from(p.id.as_str()),
            None => Arc::from(peer.ip().to_string()),
        };
        // Counted in MCP operations (POSTs); the routing headers name the tool, so a
        // weighted tool costs its weight without parsing the body. Batches pay for the rest
        // later. Reads of the admin surface are not charged but learn their bucket's state.
        if req.method() == http::Method::POST {
            let h = req.headers();
            let cost = match (h.get(MCP_METHOD), h.get(MCP_NAME).and_then(|v| v.to_str().ok())) {
                (Some(m), Some(name)) if m.as_bytes() == b"tools/call" => shared.engine.tool_cost(name),
                _ => match surface.as_ref().and_then(|(a, _)| a.cost(full)) {
                    Some(tool) => shared.engine.tool_cost(&tool),
                    None => 1.0,
                },
            };
            if let Err(wait) = limiter.take(&key, cost).await {
                shared.engine.metrics.rate_limited("caller");
                let mut r = front::too_many(wait);
                if surface.as_ref().is_some_and(|(a, _)| a.rate_headers(full)) {
                    surface::rate_headers(r.headers_mut(), Some((limiter.rate(), limiter.remaining(&key))));
                }
                return shape(r, "rate limit exceeded");
            }
            caller.rate_key = Some(key.clone());
        }
        if surface.is_some() {
            rate_remaining = Some(limiter.remaining(&key));
        }
    }
    if let Some((admin, _)) = surface {
        let corr = caller.correlation_id.clone();
        req.extensions_mut().insert(SurfaceCaller {
            principal: caller.principal,
            correlation_id: caller.correlation_id,
            forwarded: caller.forwarded,
            rate_key: caller.rate_key,
            rate_remaining,
            rate: limiter.as_ref().map(|l| l.rate()),
        });
        let mut resp = admin.call(req).await;
        if let Some(v) = corr.and_then(|c| HeaderValue::from_str(&c[..]).ok()) {
            resp.headers_mut().insert("x-request-id", v);
        }
        return resp;
    }
    if let Some(name) = view_name {
        // An unknown server and one this caller may not enter look the same.
        match shared.engine.view(name) {
            Some(v) if v.may_enter(caller.principal.as_deref()) => caller.view = Some(v),
            _ => {
                let msg = format!("no such virtual server {name:?}");
                return error_response(StatusCode::NOT_FOUND, None, &ErrorObject::invalid_request(msg));
            }
        }
        if !matches!(path, "mcp" | "mcp/" | "sse" | "messages" | "message") {
            let msg = format!("no such endpoint {full:?}; a virtual server serves /servers/{name}/mcp (legacy SSE: /servers/{name}/sse)");
            return error_response(StatusCode::NOT_FOUND, None, &ErrorObject::invalid_request(msg));
        }
    } else if let Some(p) = caller
        .principal
        .as_deref()
        .filter(|p| waygate_core::view::limited_to_servers(p))
    {
        if matches!(path, "mcp" | "mcp/" | "sse" | "messages" | "message") {
            let msg = format!(
                "credential of {:?} is limited to virtual servers (/servers/{{name}}/mcp)",
                p.name
            );
            return error_response(StatusCode::FORBIDDEN, None, &ErrorObject::invalid_request(msg));
        }
    }
    let corr = caller.correlation_id.clone();
    req.extensions_mut().insert(caller);
    let mut resp = match path {
        "mcp" | "mcp/" => mcp::handle(shared, req).await,
        "sse" => sse::open(shared, req).await,
        "messages" | "message" => sse::post(shared, req).await,
        ".well-known/oauth-protected-resource" | ".well-known/oauth-protected-resource/mcp" => {
            match &shared.cfg.resource_metadata {
                Some(m) => json_response(StatusCode::OK, m.document(req.headers())),
                None => error_response(
                    StatusCode::NOT_FOUND,
                    None,
                    &ErrorObject::invalid_request("this server accepts API keys only; OAuth is not configured"),
                ),
            }
        }
        "health" | "healthz" => ops::health(),
        "metrics" => ops::metrics(&shared),
        "ready" | "readyz" => ops::ready(&shared),
        _ => {
            let path = full;
            let msg = format!("no such endpoint {path:?}; the MCP endpoint is /mcp (legacy SSE: /sse)");
            error_response(StatusCode::NOT_FOUND, None, &ErrorObject::invalid_request(msg))
        }
    };
    if let Some(v) = corr.and_then(|c| HeaderValue::from_str(&c[..]).ok()) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// How much of an oversize body is read and thrown away before the 413 goes out. Clients
/// that write the whole body before reading (Python's `http.client`, httpx) would otherwise
/// see a reset connection instead of the answer naming the limit.
const DRAIN_MAX: u64 = 64 * 1024 * 1024;

enum BodyError {
    TooLarge,
    Read(hyper::Error),
}

/// Collect at most `limit` bytes; past that, stop collecting and report `TooLarge`.
async fn collect_limited(incoming: &mut Incoming, limit: usize) -> Result<Bytes, BodyError> {
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = incoming.frame().await {
        let frame = frame.map_err(BodyError::Read)?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(BodyError::TooLarge);
            }
            if buf.is_empty() && incoming.is_end_stream() {
                return Ok(data);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// Read and discard what is left of a body, up to [`DRAIN_MAX`] bytes in `within`; true
/// when it was read to the end (the connection can then carry the answer cleanly).
async fn drain(incoming: &mut Incoming, within: Duration) -> bool {
    let run = async {
        let mut seen = 0u64;
        while let Some(frame) = incoming.frame().await {
            let Ok(frame) = frame else { return false };
            if let Ok(d) = frame.into_data() {
                seen += d.len() as u64;
                if seen > DRAIN_MAX {
                    return false;
                }
            }
        }
        true
    };
    tokio::time::timeout(within, run).await.unwrap_or(false)
}

/// Read the body up to the configured size, within the body timeout (slow clients), and
/// refuse JSON nested deeper than allowed before anything parses it.
pub(crate) async fn read_body(
    headers: &http::HeaderMap,
    mut incoming: Incoming,
    cfg: &HttpConfig,
) -> Result<Bytes, Response<Body>> {
    let limit = cfg.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let collected = match declared {
        Some(len) if len > limit as u64 => Ok(Err(BodyError::TooLarge)),
        _ => tokio::time::timeout(cfg.body_timeout, collect_limited(&mut incoming, limit)).await,
    };
    let bytes = match collected {
        Ok(Ok(b)) => b,
        Ok(Err(BodyError::TooLarge)) => {
            let drained = declared.is_none_or(|l| l <= DRAIN_MAX) && drain(&mut incoming, cfg.body_timeout).await;
            let mut r = too_large(limit);
            if !drained {
                r.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            return Err(r);
        }
        Ok(Err(BodyError::Read(e))) => {
            return Err(error_response(
                StatusCode::BAD_REQUEST,
                None,
                &ErrorObject::invalid_request(format!("could not read request body: {e}")),
            ))
        }
        Err(_) => {
            return Err(error_response(
                StatusCode::REQUEST_TIMEOUT,
                None,
                &ErrorObject::invalid_request(format!(
                    "request body not received within {} s (http.body_timeout_secs)",
                    cfg.body_timeout.as_secs()
                )),
            ))
        }
    };
    if waygate_protocol::jsonrpc::nesting_exceeds(&bytes, cfg.max_json_depth) {
        return Err(error_response(
            StatusCode::BAD_REQUEST,
            None,
            &ErrorObject::invalid_request(format!(
                "JSON nested deeper than {} levels; raise http.max_json_depth to accept it",
                cfg.max_json_depth
            )),
        ));
    }
    Ok(bytes)
}

fn too_large(limit: usize) -> Response<Body> {
    let msg = format!(
        "request body exceeds the limit of {limit} bytes ({} MiB); raise http.max_body_bytes to accept larger requests",
        limit / (1024 * 1024)
    );
    error_response(StatusCode::PAYLOAD_TOO_LARGE, None, &ErrorObject::invalid_request(msg))
}

pub(crate) fn json_response(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(Body::bytes(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

pub(crate) fn error_response(status: StatusCode, id: Option<&Id>, e: &ErrorObject) -> Response<Body> {
    json_response(status, encode_response(id, Err(e)))
}

pub(crate) fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    r
}

pub(crate) fn sse_response(body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    r
}
