//! Operational endpoints beside MCP: `/health`, `/ready` and `/metrics` (Prometheus text).
//! What only the embedding binary knows (the store, the audit queue, configuration,
//! upstreams) comes through [`Operations`].

use std::fmt::Write;

use http::{header, HeaderValue, Response, StatusCode};
use waygate_core::BoxFuture;

use super::body::Body;
use super::{json_response, Shared};

/// Hooks the binary provides for the operational endpoints.
pub trait Operations: Send + Sync {
    /// Append metric families the engine does not own (audit queue, plugins, upstreams).
    fn render_metrics(&self, out: &mut String);
    /// The diagnostics document (secrets redacted).
    fn diagnostics(&self) -> BoxFuture<'_, serde_json::Value>;
    /// Why the process is not ready (empty when it is).
    fn not_ready(&self) -> Vec<String>;
    /// What serves less than it should without making the process unready (an optional
    /// upstream that is down, withdrawn or behind an open circuit).
    fn degraded(&self) -> Vec<String> {
        Vec::new()
    }
    /// The log filter in effect, after replacing it with `new` when given.
    fn log_filter(&self, new: Option<&str>) -> Result<String, String>;
}

pub(super) fn health() -> Response<Body> {
    json_response(StatusCode::OK, br#"{"status":"ok"}"#.to_vec())
}

pub(super) fn ready(shared: &Shared) -> Response<Body> {
    let mut reasons = Vec::new();
    if !shared.cfg.ready.load(std::sync::atomic::Ordering::Acquire) {
        reasons.push("store not reachable".to_string());
    }
    if let Some(ops) = &shared.cfg.ops {
        reasons.extend(ops.not_ready());
    }
    if reasons.is_empty() {
        let degraded = shared.cfg.ops.as_ref().map(|o| o.degraded()).unwrap_or_default();
        if degraded.is_empty() {
            return json_response(StatusCode::OK, br#"{"status":"ready"}"#.to_vec());
        }
        let body = serde_json::json!({"status": "degraded", "degraded": degraded});
        return json_response(StatusCode::OK, serde_json::to_vec(&body).unwrap_or_default());
    }
    let body = serde_json::json!({"status": "not ready", "reasons": reasons});
    json_response(
        StatusCode::SERVICE_UNAVAILABLE,
        serde_json::to_vec(&body).unwrap_or_default(),
    )
}

pub(super) fn metrics(shared: &Shared) -> Response<Body> {
    metrics_response(metrics_text(&shared.engine, shared.cfg.ops.as_deref()))
}

/// The whole Prometheus exposition: engine metrics plus what the binary adds.
pub fn metrics_text(engine: &waygate_core::Engine, ops: Option<&dyn Operations>) -> String {
    let mut text = String::with_capacity(8192);
    engine.metrics.render(&mut text);
    text.push_str("# HELP waygate_sessions_open Handshake-era sessions open on this replica, by revision and transport.\n# TYPE waygate_sessions_open gauge\n");
    let counts = engine.sessions.counts();
    if counts.is_empty() {
        text.push_str("waygate_sessions_open{version=\"none\",transport=\"none\"} 0\n");
    }
    for ((version, transport), n) in counts {
        let _ = writeln!(
            text,
            "waygate_sessions_open{{version=\"{version}\",transport=\"{transport}\"}} {n}"
        );
    }
    text.push_str("# HELP waygate_catalog_tools Tools in the catalog.\n# TYPE waygate_catalog_tools gauge\n");
    let _ = writeln!(text, "waygate_catalog_tools {}", engine.registry.catalog().tool_count());
    if let Some(ops) = ops {
        ops.render_metrics(&mut text);
    }
    text.push_str("# HELP waygate_build_info Build of the running binary.\n# TYPE waygate_build_info gauge\n");
    let _ = writeln!(
        text,
        "waygate_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    text
}

fn metrics_response(text: String) -> Response<Body> {
    let mut r = Response::new(Body::bytes(text));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

impl std::fmt::Debug for dyn Operations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Operations")
    }
}

/// A listener that serves only `GET /metrics`, without authentication: for scrapers on an
/// internal interface (`server.metrics_listen`), so the main port can stay key-protected.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    hosts: super::OriginPolicy,
    engine: std::sync::Arc<waygate_core::Engine>,
    ops: Option<std::sync::Arc<dyn Operations>>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let hosts = std::sync::Arc::new(hosts);
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        let (engine, ops, hosts) = (engine.clone(), ops.clone(), hosts.clone());
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let resp = match (req.method(), req.uri().path()) {
                    // The DNS-rebinding guard holds on this listener too.
                    _ if hosts.check(req.headers()).is_err() => json_response(
                        StatusCode::FORBIDDEN,
                        br#"{"error":"Host or Origin not allowed (DNS-rebinding protection); see http.allowed_hosts"}"#
                            .to_vec(),
                    ),
                    (&http::Method::GET, "/metrics") => metrics_response(metrics_text(&engine, ops.as_deref())),
                    _ => json_response(
                        StatusCode::NOT_FOUND,
                        br#"{"error":"only GET /metrics is served here"}"#.to_vec(),
                    ),
                };
                async move { Ok::<_, std::convert::Infallible>(resp) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Some(std::time::Duration::from_secs(10)))
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
        });
    }
}
