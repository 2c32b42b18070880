//! `/api/v1/upstreams…` and `/api/v1/servers…`: upstream MCP servers and virtual servers,
//! created and changed at runtime with the validation of the config file.

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
        .routes(routes!(list, create))
        .routes(routes!(get, replace, remove))
        .routes(routes!(restart))
        .routes(routes!(tools))
        .routes(routes!(servers, server_create))
        .routes(routes!(server_get, server_replace, server_remove))
}

/// An upstream: its entry as configured (literal header and environment values redacted)
/// and its live state.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct UpstreamRow {
    pub name: String,
    /// `stdio`, `http`, `sse` or `openapi`.
    pub transport: String,
    pub enabled: bool,
    /// `up`, `connecting`, `backoff`, `down`, `disabled`, `stopped` …
    pub state: String,
    /// `config` or `runtime`.
    pub origin: String,
    pub tools: u64,
    pub resources: u64,
    pub prompts: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The `[[upstreams]]` entry (secrets redacted).
    #[schema(value_type = Object)]
    pub entry: Value,
    /// Live state: restarts, last error, protocol version, server info, call counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub upstream: Option<Value>,
}

#[derive(Serialize, ToSchema)]
pub struct UpstreamList {
    pub upstreams: Vec<UpstreamRow>,
}

/// A `[[upstreams]]` entry: `name` plus `command`/`args`/`env`, `url`/`headers`, or
/// `openapi`/`base_url`, and the shaping keys (`prefix`, `tools.allow` …).
#[derive(Deserialize, Serialize, ToSchema)]
pub struct UpstreamEntry {
    #[serde(default)]
    pub name: String,
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub rest: serde_json::Map<String, Value>,
}

async fn rows(state: &AppState) -> Vec<UpstreamRow> {
    state
        .backend
        .upstreams()
        .await
        .into_iter()
        .filter_map(|r| serde_json::from_value(r).ok())
        .collect()
}

async fn find(state: &AppState, name: &str) -> Result<UpstreamRow, Problem> {
    rows(state)
        .await
        .into_iter()
        .find(|u| u.name == name)
        .ok_or_else(|| Problem::not_found(format!("no upstream named {name:?}")).field("name"))
}

#[utoipa::path(get, path = "/api/v1/upstreams", tag = "upstreams", responses((status = 200, body = UpstreamList)))]
async fn list(State(state): State<AppState>) -> Json<UpstreamList> {
    Json(UpstreamList {
        upstreams: rows(&state).await,
    })
}

#[utoipa::path(get, path = "/api/v1/upstreams/{name}", tag = "upstreams", params(("name" = String, Path)),
    responses((status = 200, body = UpstreamRow), (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn get(State(state): State<AppState>, Path(name): Path<String>) -> Result<Json<UpstreamRow>, Problem> {
    Ok(Json(find(&state, &name).await?))
}

async fn put(
    state: &AppState,
    actor: &Actor,
    entry: UpstreamEntry,
) -> Result<(StatusCode, Json<UpstreamRow>), Problem> {
    let name = entry.name.clone();
    let body = serde_json::to_value(&entry).unwrap_or(Value::Null);
    let r = state.backend.upstream_put(body).await;
    state.audit("admin/upstream.put", &name, r.is_ok(), actor);
    let created = r?;
    let code = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((code, Json(find(state, &name).await?)))
}

#[utoipa::path(post, path = "/api/v1/upstreams", tag = "upstreams", request_body = UpstreamEntry,
    responses((status = 201, body = UpstreamRow),
        (status = 400, description = "The body is not an entry", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The entry does not validate (the message and `field` name the key)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "An upstream of that name exists", body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json")))]
async fn create(
    State(state): State<AppState>,
    actor: Actor,
    Json(entry): Json<UpstreamEntry>,
) -> Result<(StatusCode, Json<UpstreamRow>), Problem> {
    if rows(&state).await.iter().any(|u| u.name == entry.name) {
        return Err(Problem::conflict(format!(
            "an upstream named {:?} exists; PUT /api/v1/upstreams/{} changes it",
            entry.name, entry.name
        ))
        .field("name"));
    }
    put(&state, &actor, entry).await
}

#[utoipa::path(put, path = "/api/v1/upstreams/{name}", tag = "upstreams", params(("name" = String, Path)),
    request_body = UpstreamEntry,
    responses((status = 200, body = UpstreamRow), (status = 201, body = UpstreamRow),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The entry does not validate", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The config file defines this upstream", body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json")))]
async fn replace(
    State(state): State<AppState>,
    actor: Actor,
    Path(name): Path<String>,
    Json(mut entry): Json<UpstreamEntry>,
) -> Result<(StatusCode, Json<UpstreamRow>), Problem> {
    if entry.name.is_empty() {
        entry.name = name;
    } else if entry.name != name {
        return Err(Problem::bad_request(format!("body names {:?}, the path {name:?}", entry.name)).field("name"));
    }
    put(&state, &actor, entry).await
}

#[utoipa::path(delete, path = "/api/v1/upstreams/{name}", tag = "upstreams", params(("name" = String, Path)),
    responses((status = 204, description = "Removed"), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The config file defines this upstream", body = Problem, content_type = "application/problem+json")))]
async fn remove(State(state): State<AppState>, actor: Actor, Path(name): Path<String>) -> Result<StatusCode, Problem> {
    let r = state.backend.upstream_remove(&name).await;
    state.audit("admin/upstream.remove", &name, r.is_ok(), &actor);
    r.map(|()| StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/upstreams/{name}/restart", tag = "upstreams", params(("name" = String, Path)),
    responses((status = 200, body = UpstreamRow), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json")))]
async fn restart(
    State(state): State<AppState>,
    actor: Actor,
    Path(name): Path<String>,
) -> Result<Json<UpstreamRow>, Problem> {
    find(&state, &name).await?;
    let r = state.backend.plugin_action(&name, PluginAction::Reload).await;
    state.audit("admin/upstream.restart", &name, r.is_ok(), &actor);
    r?;
    Ok(Json(find(&state, &name).await?))
}

#[utoipa::path(get, path = "/api/v1/upstreams/{name}/tools", tag = "upstreams", params(("name" = String, Path)),
    responses((status = 200, body = super::catalog::ToolPage), (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn tools(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<super::catalog::ToolPage>, Problem> {
    find(&state, &name).await?;
    super::catalog::page_of(&state, |t| t.route.plugin.name() == name).await
}

/// A virtual server: a named view of the catalog at `/servers/{name}/mcp`.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ServerRow {
    pub name: String,
    /// `config` or `runtime`.
    pub origin: String,
    /// The `[[servers]]` entry.
    #[schema(value_type = Object)]
    pub entry: Value,
    /// Exposed names of the tools it serves.
    pub tools: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ServerList {
    pub servers: Vec<ServerRow>,
}

/// A `[[servers]]` entry, for `POST /api/v1/servers`.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerEntry {
    /// A URL path segment: `/servers/{name}/mcp`.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub name: String,
    /// `"<plugin-or-upstream>/<tool glob>"` or a plugin name; at least one.
    #[schema(min_items = 1)]
    pub include: Vec<Pattern>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<Pattern>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// Annotations this server sets on every tool it serves.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    #[schema(value_type = Object)]
    pub annotations: serde_json::Map<String, Value>,
    /// Select tools carrying any of these tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Only keys with one of these scopes may enter.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Only principals with one of these roles may enter.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

/// A virtual server's selection and presentation, for `PUT /api/v1/servers/{name}` (the
/// name is the path's).
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerBody {
    /// `"<plugin-or-upstream>/<tool glob>"` or a plugin name; at least one.
    #[schema(min_items = 1)]
    pub include: Vec<Pattern>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<Pattern>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// Annotations this server sets on every tool it serves.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    #[schema(value_type = Object)]
    pub annotations: serde_json::Map<String, Value>,
    /// Select tools carrying any of these tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Only keys with one of these scopes may enter.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Only principals with one of these roles may enter.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

/// A selection pattern; not empty and not starting with `/`.
#[derive(Deserialize, Serialize, ToSchema)]
#[schema(pattern = "^[^/]")]
pub struct Pattern(pub String);

async fn server_rows(state: &AppState) -> Vec<ServerRow> {
    let engine = state.backend.engine();
    state
        .backend
        .servers()
        .await
        .into_iter()
        .filter_map(|r| {
            let name = r["entry"]["name"].as_str()?.to_string();
            let tools = engine
                .as_ref()
                .and_then(|e| e.view(&name).map(|v| (e.clone(), v)))
                .map(|(e, v)| {
                    let c = e.registry.catalog();
                    c.tools()
                        .iter()
                        .filter(|t| v.admits(&c, waygate_core::policy::Target::Tool(&t.name)))
                        .map(|t| t.name.clone())
                        .collect()
                })
                .unwrap_or_default();
            Some(ServerRow {
                name,
                origin: r["origin"].as_str().unwrap_or("config").to_string(),
                entry: r["entry"].clone(),
                tools,
            })
        })
        .collect()
}

async fn server_find(state: &AppState, name: &str) -> Result<ServerRow, Problem> {
    server_rows(state)
        .await
        .into_iter()
        .find(|s| s.name == name)
        .ok_or_else(|| Problem::not_found(format!("no virtual server named {name:?}")).field("name"))
}

#[utoipa::path(get, path = "/api/v1/servers", tag = "servers", responses((status = 200, body = ServerList)))]
async fn servers(State(state): State<AppState>) -> Json<ServerList> {
    Json(ServerList {
        servers: server_rows(&state).await,
    })
}

#[utoipa::path(get, path = "/api/v1/servers/{name}", tag = "servers", params(("name" = String, Path)),
    responses((status = 200, body = ServerRow), (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn server_get(State(state): State<AppState>, Path(name): Path<String>) -> Result<Json<ServerRow>, Problem> {
    Ok(Json(server_find(&state, &name).await?))
}

async fn server_put(
    state: &AppState,
    actor: &Actor,
    name: String,
    mut body: Value,
) -> Result<(StatusCode, Json<ServerRow>), Problem> {
    body["name"] = Value::String(name.clone());
    let r = state.backend.server_put(body).await;
    state.audit("admin/server.put", &name, r.is_ok(), actor);
    let created = r?;
    let code = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((code, Json(server_find(state, &name).await?)))
}

#[utoipa::path(post, path = "/api/v1/servers", tag = "servers", request_body = ServerEntry,
    responses((status = 201, body = ServerRow),
        (status = 400, description = "The body is not an entry", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The entry does not validate (the message and `field` name the key)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A virtual server of that name exists", body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json")))]
async fn server_create(
    State(state): State<AppState>,
    actor: Actor,
    Json(entry): Json<ServerEntry>,
) -> Result<(StatusCode, Json<ServerRow>), Problem> {
    if server_rows(&state).await.iter().any(|s| s.name == entry.name) {
        return Err(Problem::conflict(format!(
            "a virtual server named {:?} exists; PUT /api/v1/servers/{} changes it",
            entry.name, entry.name
        ))
        .field("name"));
    }
    let name = entry.name.clone();
    let body = serde_json::to_value(&entry).unwrap_or(Value::Null);
    server_put(&state, &actor, name, body).await
}

#[utoipa::path(put, path = "/api/v1/servers/{name}", tag = "servers", params(("name" = String, Path)),
    request_body = ServerBody,
    responses((status = 200, body = ServerRow), (status = 201, body = ServerRow),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The entry does not validate", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The config file defines this server", body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json")))]
async fn server_replace(
    State(state): State<AppState>,
    actor: Actor,
    Path(name): Path<String>,
    Json(body): Json<ServerBody>,
) -> Result<(StatusCode, Json<ServerRow>), Problem> {
    let body = serde_json::to_value(&body).unwrap_or(Value::Null);
    server_put(&state, &actor, name, body).await
}

#[utoipa::path(delete, path = "/api/v1/servers/{name}", tag = "servers", params(("name" = String, Path)),
    responses((status = 204, description = "Removed"), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The config file defines this server", body = Problem, content_type = "application/problem+json")))]
async fn server_remove(
    State(state): State<AppState>,
    actor: Actor,
    Path(name): Path<String>,
) -> Result<StatusCode, Problem> {
    let r = state.backend.server_remove(&name).await;
    state.audit("admin/server.remove", &name, r.is_ok(), &actor);
    r.map(|()| StatusCode::NO_CONTENT)
}
