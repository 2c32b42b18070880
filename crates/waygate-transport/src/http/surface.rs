//! The hand-off to the admin surface (REST API, its document, Swagger UI, the admin UI and
//! the Python Waygate's compatibility routes), which another crate serves. The router keeps
//! what every request shares — Host/Origin guard, authentication, rate limits, correlation
//! ids — and asks the surface only which paths it owns and what access each needs.

use std::sync::Arc;

use http::{HeaderMap, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use waygate_core::BoxFuture;

use super::body::Body;

/// Who sent a request the surface serves, as the router authenticated it; put in the
/// request's extensions.
#[derive(Clone, Default)]
pub struct SurfaceCaller {
    pub principal: Option<Arc<waygate_core::auth::Principal>>,
    pub correlation_id: Option<Arc<str>>,
    /// Headers named by an upstream's `passthrough_headers` (for REST tool calls).
    pub forwarded: Option<waygate_core::context::Forwarded>,
    /// The rate-limit bucket the request was charged to, when limits apply.
    pub rate_key: Option<Arc<str>>,
    /// Tokens left in that bucket after this request (for `X-RateLimit-Remaining`).
    pub rate_remaining: Option<f64>,
    /// The bucket's rate (for `X-RateLimit-Limit` and `-Reset`).
    pub rate: Option<waygate_core::ratelimit::Rate>,
}

/// What a path of the surface needs before it is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credential (documents, static assets, the UI's login page).
    Public,
    /// A credential with this scope (`admin` implies every scope).
    Scope(&'static str),
}

pub trait AdminSurface: Send + Sync {
    /// The access `path` needs when the surface serves it; `None` leaves it to the router.
    fn access(&self, method: &Method, path: &str, headers: &HeaderMap) -> Option<Access>;
    /// The credential a request without `Authorization` or `X-API-Key` carries in the
    /// surface's own session (the admin UI's cookie), authenticated by the router like a
    /// bearer header. `Err` refuses the request with 403 and the message (a change without
    /// its CSRF token).
    fn session_credential<'a>(
        &'a self,
        method: &'a Method,
        path: &'a str,
        headers: &'a HeaderMap,
    ) -> BoxFuture<'a, Result<Option<String>, String>> {
        let _ = (method, path, headers);
        Box::pin(async { Ok(None) })
    }
    /// Serve one request (a [`SurfaceCaller`] is in its extensions).
    fn call(&self, req: Request<Incoming>) -> BoxFuture<'static, Response<Body>>;
    /// The weight a POST to `path` costs in the caller's rate bucket (a REST tool call
    /// costs what the tool costs over MCP); `None` = 1.
    fn cost(&self, path: &str) -> Option<String> {
        let _ = path;
        None
    }
    /// Whether answers on `path` carry `X-RateLimit-Limit/Remaining/Reset` (the router adds
    /// them to its refusals; the surface to its own answers).
    fn rate_headers(&self, path: &str) -> bool {
        let _ = path;
        false
    }
    /// A refusal the router makes before the surface sees the request (401, 403, 429),
    /// shaped for the path (the compatibility routes use their own envelope); `None`
    /// keeps the router's JSON-RPC error body.
    fn refusal(&self, path: &str, status: StatusCode, message: &str) -> Option<Response<Body>> {
        let _ = (path, status, message);
        None
    }
}

/// `X-RateLimit-Limit` and `-Remaining` when no caller limit is configured: nothing a
/// client can exhaust.
pub const UNLIMITED: u64 = u32::MAX as u64;

/// Set `X-RateLimit-Limit` (the bucket size), `-Remaining` (operations left) and `-Reset`
/// (Unix seconds when the bucket is full again) from `(rate, tokens left)`; without a
/// limit both counts are [`UNLIMITED`] and the reset is now.
pub fn rate_headers(h: &mut HeaderMap, state: Option<(waygate_core::ratelimit::Rate, f64)>) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (limit, left, reset) = match state {
        Some((rate, left)) => {
            let refill = ((rate.burst - left).max(0.0) / rate.per_second.max(f64::MIN_POSITIVE)).ceil();
            (
                rate.burst.floor() as u64,
                left.max(0.0).floor() as u64,
                now + refill.min(86_400.0) as u64,
            )
        }
        None => (UNLIMITED, UNLIMITED, now),
    };
    for (name, value) in [
        ("x-ratelimit-limit", limit),
        ("x-ratelimit-remaining", left),
        ("x-ratelimit-reset", reset),
    ] {
        if let Ok(v) = http::HeaderValue::from_str(&value.to_string()) {
            h.insert(name, v);
        }
    }
}

impl std::fmt::Debug for dyn AdminSurface {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminSurface")
    }
}
