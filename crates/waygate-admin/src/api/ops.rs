//! `/api/v1/diagnostics`, `/api/v1/log-level`, `/api/v1/hooks`.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::extract::{Actor, AppState, Json};
use crate::Problem;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(diagnostics))
        .routes(routes!(log_level, set_log_level))
        .routes(routes!(hooks))
}

#[utoipa::path(get, path = "/api/v1/diagnostics", tag = "operations",
    responses((status = 200, description = "Version, uptime, store, plugins, upstreams, catalog, hooks, limits, audit queue and the effective configuration (secrets redacted)", body = Object)))]
async fn diagnostics(State(state): State<AppState>) -> Json<Value> {
    Json(state.backend.diagnostics().await)
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogFilter {
    /// A `tracing` filter: `info`, `debug,waygate_core=trace` …
    #[schema(example = "info,waygate_core=debug")]
    pub filter: String,
}

#[utoipa::path(get, path = "/api/v1/log-level", tag = "operations", responses((status = 200, body = LogFilter)))]
async fn log_level(State(state): State<AppState>) -> Result<Json<LogFilter>, Problem> {
    let filter = state.backend.log_filter(None).map_err(Problem::bad_request)?;
    Ok(Json(LogFilter { filter }))
}

#[utoipa::path(put, path = "/api/v1/log-level", tag = "operations", request_body = LogFilter,
    responses((status = 200, body = LogFilter),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json")))]
async fn set_log_level(
    State(state): State<AppState>,
    actor: Actor,
    Json(f): Json<LogFilter>,
) -> Result<Json<LogFilter>, Problem> {
    let r = state.backend.log_filter(Some(&f.filter));
    state.audit("admin/log.level", &f.filter, r.is_ok(), &actor);
    let filter = r.map_err(|m| Problem::bad_request(m).field("filter"))?;
    Ok(Json(LogFilter { filter }))
}

#[derive(Serialize, ToSchema)]
pub struct HookList {
    /// The guard and policy hooks around calls, in order.
    #[schema(value_type = Vec<Object>)]
    pub hooks: Value,
}

#[utoipa::path(get, path = "/api/v1/hooks", tag = "operations", responses((status = 200, body = HookList)))]
async fn hooks(State(state): State<AppState>) -> Json<HookList> {
    let hooks = state
        .backend
        .engine()
        .map(|e| e.hooks().describe())
        .map(|v| serde_json::to_value(v).unwrap_or(Value::Null))
        .unwrap_or(Value::Array(Vec::new()));
    Json(HookList { hooks })
}
