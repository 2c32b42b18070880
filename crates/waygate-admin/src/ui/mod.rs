//! The admin web UI at `/ui`: one page, one script and one style sheet, written by hand
//! and embedded in the binary (no CDN, no Node build step at `cargo build` time — the UI
//! is small enough that plain DOM code is cheaper to keep right than a toolchain). The
//! page talks to the same `/api/v1` as every other client; the only server-side pieces
//! here are the login session (see [`session`]), the strict security headers and a copy of
//! the Prometheus text for the overview's chart.

pub mod session;

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use serde_json::json;

use crate::extract::Actor;
use crate::{Backend, Problem};
pub use session::Sessions;
use session::{cookie_value, set_cookie, Session};

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/app.css");
const ICON: &str = include_str!("assets/icon.svg");
const LIB: &str = include_str!("assets/lib.js");
const PAGES: &str = include_str!("assets/pages.js");

/// No inline script or style, nothing from elsewhere, no framing, no form posts away.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

#[derive(Clone)]
pub(crate) struct UiState {
    pub backend: Arc<dyn Backend>,
    pub sessions: Arc<Sessions>,
}

/// True for the paths anyone may fetch (the page and its assets; the page asks for a key).
pub(crate) fn public(path: &str) -> bool {
    matches!(
        path,
        "/ui" | "/ui/" | "/ui/app.js" | "/ui/lib.js" | "/ui/pages.js" | "/ui/app.css" | "/ui/icon.svg"
    )
}

pub(crate) fn router(state: UiState) -> Router {
    Router::new()
        .route("/ui", get(page))
        .route("/ui/", get(page))
        .route("/ui/app.js", get(|| asset("text/javascript; charset=utf-8", SCRIPT)))
        .route("/ui/lib.js", get(|| asset("text/javascript; charset=utf-8", LIB)))
        .route("/ui/pages.js", get(|| asset("text/javascript; charset=utf-8", PAGES)))
        .route("/ui/app.css", get(|| asset("text/css; charset=utf-8", STYLE)))
        .route("/ui/icon.svg", get(|| asset("image/svg+xml", ICON)))
        .route("/ui/login", post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/session", get(current))
        .route("/ui/metrics", get(metrics))
        .with_state(state)
}

/// The security headers every UI answer carries.
fn harden(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn page() -> Response {
    harden(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX).into_response())
}

async fn asset(kind: &'static str, body: &'static str) -> Response {
    harden(([(header::CONTENT_TYPE, kind)], body).into_response())
}

/// The credential the login request was authenticated with (the router checked it).
fn presented_key(h: &HeaderMap) -> Option<String> {
    let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok());
    if let Some(a) = get("authorization") {
        let (scheme, token) = a.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_string());
    }
    get("x-api-key").map(|k| k.trim().to_string())
}

/// `POST /ui/login` with the key in `Authorization: Bearer …`: the router authenticated
/// it (with rate limits, so guessing is slow); seal it into the session cookie.
async fn login(State(s): State<UiState>, actor: Actor, headers: HeaderMap) -> Response {
    let Some(key) = presented_key(&headers) else {
        let p = Problem::bad_request("send the API key as `Authorization: Bearer <key>`").field("authorization");
        return harden(p.into_response());
    };
    let store = s.backend.store();
    let session = Session::new(key);
    let Some(sealed) = s.sessions.seal(store.as_ref(), &session).await else {
        return harden(Problem::unavailable("the store is not open yet; retry in a moment").into_response());
    };
    if let Some(e) = s.backend.engine() {
        e.audit_admin("admin/ui.login", "ui", "ok", Some(actor.label()));
    }
    let body = axum::Json(json!({
        "auth": true,
        "principal": actor.label().to_string(),
        "csrf": session.csrf,
        "expires_at": session.exp,
    }));
    let mut r = body.into_response();
    if let Ok(v) = HeaderValue::from_str(&set_cookie(Some(&sealed))) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    harden(r)
}

async fn open(s: &UiState, headers: &HeaderMap) -> Option<Session> {
    let c = cookie_value(headers)?;
    s.sessions.open(s.backend.store().as_ref(), c).await
}

/// `GET /ui/session`: who is logged in and the CSRF token the page sends with changes.
/// Without authentication (`--no-auth`) the page needs no login.
async fn current(State(s): State<UiState>, actor: Actor, headers: HeaderMap) -> Response {
    let body = match (open(&s, &headers).await, &actor.0.principal) {
        (Some(sess), _) => {
            json!({"auth": true, "principal": actor.label().to_string(), "csrf": sess.csrf, "expires_at": sess.exp})
        }
        (None, None) => json!({"auth": false, "principal": "anonymous", "csrf": ""}),
        // A header credential (a script): no session, no CSRF token needed.
        (None, Some(_)) => json!({"auth": true, "principal": actor.label().to_string(), "csrf": ""}),
    };
    harden(axum::Json(body).into_response())
}

async fn logout(State(s): State<UiState>, actor: Actor, headers: HeaderMap) -> Response {
    if let Some(sess) = open(&s, &headers).await {
        s.sessions.end(&sess);
        if let Some(e) = s.backend.engine() {
            e.audit_admin("admin/ui.logout", "ui", "ok", Some(actor.label()));
        }
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) = HeaderValue::from_str(&set_cookie(None)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    harden(r)
}

/// The Prometheus text for the overview (the `/metrics` endpoint wants the `metrics`
/// scope, which a read-only admin key may not have).
async fn metrics(State(s): State<UiState>) -> Response {
    let Some(engine) = s.backend.engine() else {
        return harden(Problem::unavailable("the server is still starting; retry in a moment").into_response());
    };
    let text = waygate_transport::http::metrics_text(&engine, None);
    harden(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

/// The credential a UI request carries in its cookie; changes must echo the session's
/// CSRF token in `X-CSRF-Token` (SameSite=Strict already keeps other sites' requests from
/// carrying the cookie; the token also stops a same-site page from driving the API).
pub(crate) async fn credential(
    sessions: &Sessions,
    backend: &dyn Backend,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Option<String>, String> {
    let Some(c) = cookie_value(headers) else {
        return Ok(None);
    };
    let Some(sess) = sessions.open(backend.store().as_ref(), c).await else {
        return Ok(None);
    };
    let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    let token = headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
    if !safe && token.is_none_or(|t| !constant_eq(t.as_bytes(), sess.csrf.as_bytes())) {
        return Err("this change needs the UI session's X-CSRF-Token header".into());
    }
    Ok(Some(sess.key))
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
