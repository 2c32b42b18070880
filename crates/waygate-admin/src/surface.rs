//! The admin surface as the transport sees it: which paths it owns, what access each
//! needs, and the axum router that serves them.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::response::IntoResponse;
use axum::Router;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use hyper::body::{Frame, Incoming};
use tower::ServiceExt;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;
use waygate_core::BoxFuture;
use waygate_transport::http::{Access, AdminSurface, Body};

use crate::extract::AppState;
use crate::{api, compat, docs, ui, Backend, Problem};

/// Switches of the admin surface (`[admin]` in the config file).
#[derive(Debug, Clone)]
pub struct AdminOptions {
    /// Serve the Python Waygate's routes (`/mcp/execute`, `/plugins` …).
    pub compat_routes: bool,
}

impl Default for AdminOptions {
    fn default() -> Self {
        AdminOptions { compat_routes: true }
    }
}

pub struct Admin {
    router: Router,
    options: AdminOptions,
    backend: Arc<dyn Backend>,
    sessions: Arc<ui::Sessions>,
}

/// Every route and the document describing them.
pub(crate) fn routes(options: &AdminOptions) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let mut r = OpenApiRouter::with_openapi(docs::ApiDoc::openapi())
        .merge(api::catalog::router())
        .merge(api::tools::router())
        .merge(api::plugins::router())
        .merge(api::upstreams::router())
        .merge(api::keys::router())
        .merge(api::audit::router())
        .merge(api::config::router())
        .merge(api::ops::router())
        .merge(api::policies::router());
    if options.compat_routes {
        r = r.merge(compat::router());
    }
    let (router, doc) = r.split_for_parts();
    (router, docs::finish(doc))
}

async fn not_found(uri: http::Uri) -> Problem {
    Problem::not_found(format!("no such endpoint {:?}; see /api/v1/openapi.json", uri.path()))
}

async fn method_not_allowed(method: Method, uri: http::Uri) -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not supported on {}", uri.path()),
    )
}

impl Admin {
    pub fn new(backend: Arc<dyn Backend>, options: AdminOptions) -> Self {
        let (router, doc) = routes(&options);
        let sessions = Arc::new(ui::Sessions::default());
        let ui = ui::router(ui::UiState {
            backend: backend.clone(),
            sessions: sessions.clone(),
        });
        let router = router
            .merge(SwaggerUi::new("/docs").url("/api/v1/openapi.json", doc))
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .with_state(AppState {
                backend: backend.clone(),
            })
            .merge(ui);
        Admin {
            router,
            options,
            backend,
            sessions,
        }
    }

    fn compat_path(&self, path: &str) -> bool {
        self.options.compat_routes && compat::owns(path)
    }
}

impl AdminSurface for Admin {
    fn access(&self, method: &Method, path: &str, _: &HeaderMap) -> Option<Access> {
        let read = matches!(*method, Method::GET | Method::HEAD);
        Some(match path {
            "/api/v1/openapi.json" | "/docs" => Access::Public,
            p if ui::public(p) => Access::Public,
            "/ui/login" | "/ui/session" | "/ui/logout" | "/ui/metrics" => Access::Scope("admin:read"),
            p if p.starts_with("/ui/") => Access::Public,
            p if p.starts_with("/docs/") => Access::Public,
            p if p.starts_with("/api/v1/tools/") || p.starts_with("/api/v1/tasks/") => Access::Scope("mcp"),
            p if p.starts_with("/api/") && read => Access::Scope("admin:read"),
            p if p.starts_with("/api/") => Access::Scope("admin"),
            p if self.compat_path(p) => compat::access(method, p),
            _ => return None,
        })
    }

    fn session_credential<'a>(
        &'a self,
        method: &'a Method,
        path: &'a str,
        headers: &'a HeaderMap,
    ) -> BoxFuture<'a, Result<Option<String>, String>> {
        Box::pin(async move {
            // Only the API and the UI's own endpoints; never MCP or the compatibility routes,
            // and a login always presents its key afresh.
            if !(path.starts_with("/api/") || path.starts_with("/ui/")) || path == "/ui/login" {
                return Ok(None);
            }
            ui::credential(&self.sessions, self.backend.as_ref(), method, headers).await
        })
    }

    fn call(&self, req: Request<Incoming>) -> BoxFuture<'static, Response<Body>> {
        let router = self.router.clone();
        Box::pin(async move {
            let resp = match router.oneshot(req).await {
                Ok(r) => r,
                Err(e) => match e {},
            };
            resp.map(|b| Body::Boxed(Box::pin(Quiet(b))))
        })
    }

    fn cost(&self, path: &str) -> Option<String> {
        let name = path.strip_prefix("/api/v1/tools/")?.strip_suffix("/call")?;
        Some(percent_decode(name))
    }

    fn rate_headers(&self, path: &str) -> bool {
        self.compat_path(path)
    }

    fn refusal(&self, path: &str, status: StatusCode, message: &str) -> Option<Response<Body>> {
        let r = if path.starts_with("/api/") {
            Problem::new(status, message).into_response()
        } else if self.compat_path(path) {
            compat::error(status, message, None)
        } else {
            return None;
        };
        Some(r.map(|b| Body::Boxed(Box::pin(Quiet(b)))))
    }
}

/// `%XX` sequences decoded (a tool name in a path segment); invalid UTF-8 stays encoded.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_string())
}

/// An axum body whose errors end the stream (logged) instead of failing the connection.
struct Quiet(axum::body::Body);

impl hyper::body::Body for Quiet {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match Pin::new(&mut self.0).poll_frame(cx) {
            Poll::Ready(Some(Ok(f))) => Poll::Ready(Some(Ok(f))),
            Poll::Ready(Some(Err(e))) => {
                tracing::debug!(error = %e, "admin response body failed; ending it");
                Poll::Ready(None)
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.0.size_hint()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tool_names_in_paths_are_decoded() {
        assert_eq!(super::percent_decode("a%2Fb.c"), "a/b.c");
        assert_eq!(super::percent_decode("%zz%"), "%zz%");
    }
}
