//! Waygate's admin surface: the `/api/v1` REST API (catalog, plugins, upstreams, virtual
//! servers, keys, pins, audit, configuration, operations, REST tool calls), its OpenAPI 3.1
//! document generated from the handlers, Swagger UI with embedded assets, and the Python
//! Waygate's compatibility routes. It runs on axum; the MCP hot path stays on plain hyper
//! in the transport, which authenticates and rate-limits before handing a request here.

mod api;
mod backend;
mod compat;
mod diff;
mod docs;
mod extract;
mod problem;
mod redact;
mod surface;
mod ui;

pub use backend::{Backend, Fut, HeldPin, PluginAction};
pub use problem::Problem;
pub use surface::{Admin, AdminOptions};

/// The OpenAPI document as served at `/api/v1/openapi.json`.
pub fn openapi(options: &AdminOptions) -> utoipa::openapi::OpenApi {
    surface::routes(options).1
}
pub use diff::lines as diff_lines;
