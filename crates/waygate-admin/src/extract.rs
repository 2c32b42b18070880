//! Extractors whose rejections are problem documents, the caller the router authenticated,
//! and the state every handler shares.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use serde::Serialize;
use waygate_core::Engine;
use waygate_store::Store;
use waygate_transport::http::SurfaceCaller;

use crate::{Backend, Problem};

/// A JSON body (or answer); a body that does not parse is a 400 naming the field.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(Problem))]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(Problem))]
pub struct Query<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(Problem))]
pub struct Path<T>(pub T);

/// Who is calling, as the router authenticated it (anonymous under `--no-auth`).
#[derive(Clone, Default)]
pub struct Actor(pub SurfaceCaller);

impl Actor {
    /// `id:name` for audit rows, `anonymous` without a principal.
    pub fn label(&self) -> Arc<str> {
        self.0
            .principal
            .as_ref()
            .map_or_else(|| Arc::from("anonymous"), |p| p.label.clone())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Actor {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        Ok(Actor(
            parts.extensions.get::<SurfaceCaller>().cloned().unwrap_or_default(),
        ))
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub backend: Arc<dyn Backend>,
}

impl AppState {
    pub fn engine(&self) -> Result<Arc<Engine>, Problem> {
        self.backend
            .engine()
            .ok_or_else(|| Problem::unavailable("the server is still starting; retry in a moment"))
    }

    pub fn store(&self) -> Result<Store, Problem> {
        self.backend
            .store()
            .ok_or_else(|| Problem::unavailable("the store is not open yet; retry in a moment"))
    }

    /// Record an administrative change with its caller.
    pub fn audit(&self, action: &'static str, target: &str, ok: bool, actor: &Actor) {
        if let Some(e) = self.backend.engine() {
            e.audit_admin(action, target, if ok { "ok" } else { "error" }, Some(actor.label()));
        }
    }
}

/// A store failure as a problem (the message names no secret: URLs are redacted by the store).
pub fn store_problem(e: waygate_store::StoreError) -> Problem {
    Problem::unavailable(format!("store: {e}"))
}
