//! `/api/v1/plugins…`: list, load, unload, reload, enable and disable plugins (native,
//! WASM, process and upstream), each change audited with its caller.

use axum::extract::State;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::backend::PluginAction;
use crate::extract::{Actor, AppState, Json, Path};
use crate::Problem;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, load))
        .routes(routes!(get, unload))
        .routes(routes!(action))
}

/// A plugin and its state.
#[derive(Serialize, Deserialize, ToSchema, Clone)]
pub struct PluginRow {
    pub name: String,
    /// `native`, `wasm`, `process` or `upstream`.
    pub tier: String,
    pub enabled: bool,
    /// `running`, `failed`, `disabled`, `stopped`, or an upstream's state.
    pub state: String,
    /// `config` (the file) or `runtime` (this API or the CLI).
    pub origin: String,
    pub tools: u64,
    pub resources: u64,
    pub prompts: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A WASM plugin's module path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// A WASM plugin's limits and grants, an upstream's live state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub limits: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub grants: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub upstream: Option<Value>,
}

#[derive(Serialize, ToSchema)]
pub struct PluginList {
    pub plugins: Vec<PluginRow>,
}

/// What to load: `{"wasm": {…}}` with the keys of a `[[plugins.wasm]]` entry (`name`,
/// `module`, `memory_mib`, `time_ms`, `instances`, `fs_read`, `env`, `http_hosts`,
/// `wall_clock`), or `{"builtin": "everything"}`.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub wasm: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builtin: Option<String>,
}

pub(crate) fn rows(v: Vec<Value>) -> Vec<PluginRow> {
    v.into_iter().filter_map(|r| serde_json::from_value(r).ok()).collect()
}

pub(crate) async fn find(state: &AppState, name: &str) -> Result<PluginRow, Problem> {
    rows(state.backend.plugins().await)
        .into_iter()
        .find(|p| p.name == name)
        .ok_or_else(|| Problem::not_found(format!("no plugin named {name:?}")).field("name"))
}

#[utoipa::path(get, path = "/api/v1/plugins", tag = "plugins",
    responses((status = 200, body = PluginList)))]
async fn list(State(state): State<AppState>) -> Json<PluginList> {
    Json(PluginList {
        plugins: rows(state.backend.plugins().await),
    })
}

#[utoipa::path(post, path = "/api/v1/plugins", tag = "plugins", request_body = PluginSpec,
    responses((status = 201, body = PluginRow),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A plugin of that name is loaded", body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json")))]
async fn load(
    State(state): State<AppState>,
    actor: Actor,
    Json(spec): Json<PluginSpec>,
) -> Result<(StatusCode, Json<PluginRow>), Problem> {
    let target = spec
        .wasm
        .as_ref()
        .and_then(|w| w.get("name"))
        .and_then(Value::as_str)
        .or(spec.builtin.as_deref())
        .unwrap_or("?")
        .to_string();
    let body = serde_json::to_value(&spec).unwrap_or(Value::Null);
    let r = state.backend.plugin_load(body).await;
    state.audit("admin/plugin.load", &target, r.is_ok(), &actor);
    let name = r?;
    Ok((StatusCode::CREATED, Json(find(&state, &name).await?)))
}

#[utoipa::path(get, path = "/api/v1/plugins/{name}", tag = "plugins",
    params(("name" = String, Path)),
    responses((status = 200, body = PluginRow), (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn get(State(state): State<AppState>, Path(name): Path<String>) -> Result<Json<PluginRow>, Problem> {
    Ok(Json(find(&state, &name).await?))
}

#[utoipa::path(delete, path = "/api/v1/plugins/{name}", tag = "plugins",
    params(("name" = String, Path)),
    responses((status = 204, description = "Unloaded"), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json")))]
async fn unload(State(state): State<AppState>, actor: Actor, Path(name): Path<String>) -> Result<StatusCode, Problem> {
    let r = state.backend.plugin_unload(&name).await;
    state.audit("admin/plugin.unload", &name, r.is_ok(), &actor);
    r.map(|()| StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/plugins/{name}/{action}", tag = "plugins",
    params(("name" = String, Path), ("action" = String, Path, description = "reload, enable or disable")),
    responses((status = 200, body = PluginRow), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json")))]
async fn action(
    State(state): State<AppState>,
    actor: Actor,
    Path((name, action)): Path<(String, String)>,
) -> Result<Json<PluginRow>, Problem> {
    let (a, what) = match action.as_str() {
        "reload" => (PluginAction::Reload, "admin/plugin.reload"),
        "enable" => (PluginAction::Enable, "admin/plugin.enable"),
        "disable" => (PluginAction::Disable, "admin/plugin.disable"),
        _ => {
            return Err(
                Problem::not_found(format!("unknown action {action:?}; use reload, enable or disable")).field("action"),
            )
        }
    };
    let r = state.backend.plugin_action(&name, a).await;
    state.audit(what, &name, r.is_ok(), &actor);
    r?;
    Ok(Json(find(&state, &name).await?))
}
