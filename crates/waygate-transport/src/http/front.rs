//! The front door's refusals: authentication and scope (401/403), the admin UI's session
//! credential, rate limits (429), each shaped for the admin surface when it owns the path.

use std::sync::Arc;
use std::time::Duration;

use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use waygate_core::auth::{AuthError, Authenticator, Principal};
use waygate_protocol::ErrorObject;

use super::{error_response, AdminSurface, Body, ResourceMetadata, Shared};

/// The principal a request authenticates as, with the scope its path needs; a refusal
/// and its message otherwise. Without a credential header, the admin surface may supply
/// one from its session (the UI's cookie).
pub(super) async fn authenticate(
    shared: &Shared,
    auth: &Authenticator,
    req: &Request<Incoming>,
    path: &str,
    admin: Option<&dyn AdminSurface>,
    scope: &str,
) -> Result<Option<Arc<Principal>>, (Response<Body>, String)> {
    let h = req.headers();
    let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok());
    let mut session = None;
    if let (Some(a), None, None) = (admin, get("authorization"), get("x-api-key")) {
        match a.session_credential(req.method(), path, h).await {
            Ok(key) => session = key.map(|k| format!("Bearer {k}")),
            Err(msg) => {
                let r = error_response(StatusCode::FORBIDDEN, None, &ErrorObject::invalid_request(&msg));
                return Err((r, msg));
            }
        }
    }
    match auth
        .authenticate(session.as_deref().or(get("authorization")), get("x-api-key"))
        .await
    {
        // Operational endpoints need their own scope (admin implies every scope), so a
        // scraper's key cannot call tools and an MCP client's key cannot read metrics.
        Ok(p) if p.has_scope(scope) => {
            waygate_core::logctx::update(|c| c.principal = Some(p.label.clone()));
            Ok(Some(p))
        }
        Ok(p) => {
            let msg = format!("credential of {:?} lacks the {scope:?} scope", p.name);
            let mut r = error_response(StatusCode::FORBIDDEN, None, &ErrorObject::invalid_request(&msg));
            let challenge = format!("Bearer realm=\"waygate\", error=\"insufficient_scope\", scope=\"{scope}\"");
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
            Err((r, msg))
        }
        Err(e) => {
            tracing::debug!(error = %e, "authentication failed");
            let r = unauthorized(&e, shared.cfg.resource_metadata.as_deref(), h);
            Err((r, e.to_string()))
        }
    }
}

/// The surface's version of a refusal the router made, keeping its challenge headers.
pub(super) fn shaped(admin: &dyn AdminSurface, path: &str, resp: Response<Body>, msg: &str) -> Response<Body> {
    let Some(mut r) = admin.refusal(path, resp.status(), msg) else {
        return resp;
    };
    for name in [header::WWW_AUTHENTICATE, header::RETRY_AFTER] {
        if let Some(v) = resp.headers().get(&name) {
            r.headers_mut().insert(name, v.clone());
        }
    }
    for name in ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"] {
        if let Some(v) = resp.headers().get(name) {
            r.headers_mut().insert(name, v.clone());
        }
    }
    r
}

/// The scope a path needs.
pub(super) fn required_scope(path: &str) -> &'static str {
    match path {
        "/metrics" => "metrics",
        p if p.starts_with("/api/") => "admin",
        _ => "mcp",
    }
}

/// 429 with `Retry-After` in whole seconds (rounded up).
pub(super) fn too_many(wait: Duration) -> Response<Body> {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let msg = format!("rate limit exceeded; retry after {secs} s");
    let mut r = error_response(StatusCode::TOO_MANY_REQUESTS, None, &ErrorObject::invalid_request(msg));
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// 401 with the challenge RFC 6750 asks for (plus RFC 9728's `resource_metadata` when
/// OAuth is configured); the body never echoes the presented credential.
fn unauthorized(e: &AuthError, meta: Option<&ResourceMetadata>, h: &http::HeaderMap) -> Response<Body> {
    let status = if matches!(e, AuthError::Unavailable(_)) {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::UNAUTHORIZED
    };
    let mut r = error_response(status, None, &ErrorObject::invalid_request(e.to_string()));
    let mut challenge = String::from("Bearer realm=\"waygate\"");
    if let Some(m) = meta {
        challenge.push_str(&format!(", resource_metadata=\"{}\"", m.url_for(h).replace('"', "")));
    }
    if !matches!(e, AuthError::Missing | AuthError::Unavailable(_)) {
        challenge.push_str(", error=\"invalid_token\"");
    }
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}
