//! The Python Waygate's REST routes, for its clients: `X-API-Key` (the router accepts it
//! everywhere), `X-RateLimit-*` headers, and its error envelope
//! `{"error": {"code", "message", "details", "timestamp", "request_id"}}`. Tool calls take
//! the same path as MCP and `/api/v1/tools/{name}/call`. Deprecated but supported; off with
//! `[admin] compat_routes = false`. `/mcp` itself stays the MCP endpoint: these are
//! distinct paths below it.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use waygate_protocol::ProtocolVersion;
use waygate_transport::http::Access;

use crate::api::plugins::{find, rows, PluginRow};
use crate::api::tools::{prepare, run};
use crate::backend::PluginAction;
use crate::extract::{Actor, AppState, Json, Path};
use crate::Problem;

const ROUTES: [&str; 7] = [
    "/mcp/execute",
    "/mcp/status",
    "/mcp/commands",
    "/mcp/tools",
    "/mcp/tools/execute",
    "/mcp/servers",
    "/plugins",
];

/// Whether `path` is one of the compatibility routes.
pub fn owns(path: &str) -> bool {
    ROUTES.contains(&path)
        || path
            .strip_prefix("/plugins/")
            .is_some_and(|n| !n.is_empty() && !n.contains('/'))
        || path
            .strip_prefix("/diagnostics/")
            .is_some_and(|k| !k.is_empty() && !k.contains('/'))
}

pub fn access(method: &Method, path: &str) -> Access {
    let read = matches!(*method, Method::GET | Method::HEAD);
    match path {
        p if p.starts_with("/mcp/") => Access::Scope("mcp"),
        _ if read => Access::Scope("admin:read"),
        _ => Access::Scope("admin"),
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(execute))
        .routes(routes!(status))
        .routes(routes!(commands))
        .routes(routes!(tools))
        .routes(routes!(tools_execute))
        .routes(routes!(servers))
        .routes(routes!(plugins))
        .routes(routes!(plugin))
        .routes(routes!(plugins_reload))
        .routes(routes!(diagnostics))
        .layer(axum::middleware::from_fn(envelope))
}

/// The Python Waygate's error body.
#[derive(Serialize, ToSchema)]
pub struct CompatError {
    pub error: CompatErrorBody,
}

#[derive(Serialize, ToSchema)]
pub struct CompatErrorBody {
    /// `BAD_REQUEST`, `UNAUTHORIZED`, `FORBIDDEN`, `NOT_FOUND`, `RATE_LIMITED`, `TIMEOUT`,
    /// `UPSTREAM_ERROR`, `UNAVAILABLE`, `INTERNAL_ERROR`.
    pub code: String,
    pub message: String,
    #[schema(value_type = Object)]
    pub details: Value,
    /// RFC 3339, UTC.
    pub timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

fn code_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 413 | 415 | 422 => "BAD_REQUEST",
        401 => "UNAUTHORIZED",
        403 => "FORBIDDEN",
        404 => "NOT_FOUND",
        405 => "METHOD_NOT_ALLOWED",
        409 => "CONFLICT",
        429 => "RATE_LIMITED",
        502 => "UPSTREAM_ERROR",
        503 => "UNAVAILABLE",
        504 => "TIMEOUT",
        _ => "INTERNAL_ERROR",
    }
}

fn rfc3339_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// An error in the envelope.
pub fn error(status: StatusCode, message: &str, field: Option<&str>) -> Response {
    let details = match field {
        Some(f) => json!({ "field": f }),
        None => json!({}),
    };
    let body = CompatError {
        error: CompatErrorBody {
            code: code_of(status).into(),
            message: message.into(),
            details,
            timestamp: rfc3339_now(),
            request_id: None,
        },
    };
    (status, axum::Json(body)).into_response()
}

/// Problems become the envelope (with the request id), and every answer carries the
/// caller's rate-limit state (`X-RateLimit-Limit/Remaining/Reset`).
async fn envelope(actor: Actor, req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let (mut parts, body) = resp.into_parts();
    let is_problem = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == crate::problem::PROBLEM_JSON.as_bytes());
    let mut resp = if is_problem {
        let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
        let p: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let msg = p["detail"].as_str().unwrap_or("error");
        let mut r = error(parts.status, msg, p["field"].as_str());
        if let Some(id) = &actor.0.correlation_id {
            let (mut rp, rb) = r.into_parts();
            let bytes = axum::body::to_bytes(rb, 1 << 20).await.unwrap_or_default();
            let mut v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            v["error"]["request_id"] = json!(&**id);
            rp.headers.remove(http::header::CONTENT_LENGTH);
            r = Response::from_parts(rp, axum::body::Body::from(serde_json::to_vec(&v).unwrap_or_default()));
        }
        parts.headers.remove(http::header::CONTENT_TYPE);
        parts.headers.remove(http::header::CONTENT_LENGTH);
        for (k, v) in parts.headers.iter() {
            r.headers_mut().insert(k.clone(), v.clone());
        }
        r
    } else {
        Response::from_parts(parts, body)
    };
    // Always sent, as the Python Waygate did: without a caller limit the counts are
    // `UNLIMITED` (documented on every compat response).
    waygate_transport::http::rate_headers(resp.headers_mut(), actor.0.rate.zip(actor.0.rate_remaining));
    resp
}

/// `POST /mcp/execute`.
#[derive(Deserialize, ToSchema)]
pub struct ExecuteRequest {
    /// The tool to run (its exposed name).
    pub action: String,
    /// The tool's arguments.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub params: Map<String, Value>,
    /// Free-form caller context; accepted for compatibility and not used.
    #[serde(default)]
    #[schema(value_type = Object)]
    #[allow(dead_code)]
    pub context: Option<Value>,
    /// Seconds before the call is cancelled (default 30, at most 3600).
    #[serde(default)]
    #[schema(minimum = 0.001, maximum = 3600)]
    pub timeout: Option<f64>,
}

#[derive(Serialize, ToSchema)]
pub struct ExecuteResponse {
    /// `success`, or `error` when the tool reported a failure (`isError`).
    pub status: String,
    /// The MCP `CallToolResult`.
    #[schema(value_type = Object)]
    pub result: Value,
    pub execution_time_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

fn timeout_of(t: Option<f64>) -> Result<Duration, Problem> {
    match t {
        None => Ok(Duration::from_secs(30)),
        Some(s) if s.is_finite() && s > 0.0 && s <= 3600.0 => Ok(Duration::from_secs_f64(s)),
        Some(s) => Err(Problem::bad_request(format!("timeout {s} is out of range (0, 3600] seconds")).field("timeout")),
    }
}

async fn call(
    state: &AppState,
    actor: &Actor,
    name: String,
    args: Map<String, Value>,
    timeout: Duration,
) -> Result<Json<ExecuteResponse>, Problem> {
    let started = std::time::Instant::now();
    let (engine, ctx, params) = prepare(state, actor, name, args, ProtocolVersion::LATEST_MODERN)?;
    let result = run(&engine, &ctx, params, Some(timeout)).await?;
    let failed = result.get("isError").and_then(Value::as_bool) == Some(true);
    Ok(Json(ExecuteResponse {
        status: if failed { "error" } else { "success" }.into(),
        result,
        execution_time_ms: started.elapsed().as_millis() as u64,
        request_id: actor.0.correlation_id.as_deref().map(str::to_string),
    }))
}

#[utoipa::path(post, path = "/mcp/execute", tag = "compatibility", request_body = ExecuteRequest,
    responses((status = 200, body = ExecuteResponse),
        (status = 400, body = CompatError), (status = 404, body = CompatError), (status = 415, body = CompatError),
        (status = 502, body = CompatError), (status = 503, body = CompatError), (status = 504, body = CompatError)))]
async fn execute(
    State(state): State<AppState>,
    actor: Actor,
    Json(req): Json<ExecuteRequest>,
) -> Result<Json<ExecuteResponse>, Problem> {
    let timeout = timeout_of(req.timeout)?;
    call(&state, &actor, req.action, req.params, timeout).await
}

/// `POST /mcp/tools/execute`.
#[derive(Deserialize, ToSchema)]
pub struct ToolExecuteRequest {
    /// The plugin or upstream.
    pub server_name: String,
    /// The tool's name on that server.
    pub tool_name: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub parameters: Map<String, Value>,
}

#[utoipa::path(post, path = "/mcp/tools/execute", tag = "compatibility", request_body = ToolExecuteRequest,
    responses((status = 200, body = ExecuteResponse),
        (status = 400, body = CompatError), (status = 404, body = CompatError), (status = 415, body = CompatError),
        (status = 502, body = CompatError), (status = 503, body = CompatError), (status = 504, body = CompatError)))]
async fn tools_execute(
    State(state): State<AppState>,
    actor: Actor,
    Json(req): Json<ToolExecuteRequest>,
) -> Result<Json<ExecuteResponse>, Problem> {
    let engine = state.engine()?;
    let exposed = engine
        .registry
        .catalog()
        .tools()
        .iter()
        .find(|t| t.route.plugin.name() == req.server_name && t.route.local_name == req.tool_name)
        .map(|t| t.name.clone());
    let Some(name) = exposed else {
        let msg = format!("Unknown tool: {}/{}", req.server_name, req.tool_name);
        return Err(Problem::not_found(msg).field("tool_name"));
    };
    call(&state, &actor, name, req.parameters, Duration::from_secs(30)).await
}

#[derive(Serialize, ToSchema)]
pub struct StatusDoc {
    /// `ok`, or `degraded` when a plugin failed or an upstream is not up.
    pub status: String,
    pub version: String,
    pub tools: usize,
    pub servers: usize,
    pub timestamp: String,
}

#[utoipa::path(get, path = "/mcp/status", tag = "compatibility",
    responses((status = 200, body = StatusDoc), (status = 503, body = CompatError)))]
async fn status(State(state): State<AppState>) -> Result<Json<StatusDoc>, Problem> {
    let engine = state.engine()?;
    let plugins = rows(state.backend.plugins().await);
    let degraded = plugins
        .iter()
        .any(|p| p.enabled && !matches!(p.state.as_str(), "running" | "up" | "ready"));
    Ok(Json(StatusDoc {
        status: if degraded { "degraded" } else { "ok" }.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        tools: engine.registry.catalog().tool_count(),
        servers: plugins.len(),
        timestamp: rfc3339_now(),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct CompatTool {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The plugin or upstream it comes from.
    pub server: String,
    #[schema(value_type = Object)]
    pub input_schema: Value,
}

#[derive(Serialize, ToSchema)]
pub struct CompatTools {
    pub tools: Vec<CompatTool>,
}

/// The tools this caller may call (the policy and its key's limits applied).
fn visible_tools(state: &AppState, actor: &Actor) -> Result<Vec<CompatTool>, Problem> {
    let engine = state.engine()?;
    let mut ctx = waygate_core::CallContext::detached(ProtocolVersion::LATEST_MODERN);
    ctx.principal = actor.0.principal.clone();
    let c = engine.registry.catalog();
    Ok(c.tools()
        .iter()
        .filter(|t| engine.may_call_tool(&t.name, &ctx))
        .map(|t| {
            let d = t.definition();
            CompatTool {
                name: t.name.clone(),
                description: d.get("description").and_then(Value::as_str).map(str::to_string),
                server: t.route.plugin.name().to_string(),
                input_schema: d.get("inputSchema").cloned().unwrap_or(json!({"type": "object"})),
            }
        })
        .collect())
}

#[utoipa::path(get, path = "/mcp/tools", tag = "compatibility",
    responses((status = 200, body = CompatTools), (status = 503, body = CompatError)))]
async fn tools(State(state): State<AppState>, actor: Actor) -> Result<Json<CompatTools>, Problem> {
    Ok(Json(CompatTools {
        tools: visible_tools(&state, &actor)?,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct CompatCommand {
    /// The `action` for `/mcp/execute`.
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[schema(value_type = Object)]
    pub parameters: Value,
}

#[derive(Serialize, ToSchema)]
pub struct CompatCommands {
    pub commands: Vec<CompatCommand>,
}

#[utoipa::path(get, path = "/mcp/commands", tag = "compatibility",
    responses((status = 200, body = CompatCommands), (status = 503, body = CompatError)))]
async fn commands(State(state): State<AppState>, actor: Actor) -> Result<Json<CompatCommands>, Problem> {
    let commands = visible_tools(&state, &actor)?
        .into_iter()
        .map(|t| CompatCommand {
            name: t.name,
            description: t.description,
            parameters: t.input_schema,
        })
        .collect();
    Ok(Json(CompatCommands { commands }))
}

#[derive(Serialize, ToSchema)]
pub struct CompatServer {
    pub name: String,
    /// `running`, `failed`, `disabled`, or an upstream's state.
    pub status: String,
    /// `native`, `wasm`, `process` or `upstream`.
    pub kind: String,
    pub tools: u64,
}

#[derive(Serialize, ToSchema)]
pub struct CompatServers {
    pub servers: Vec<CompatServer>,
}

#[utoipa::path(get, path = "/mcp/servers", tag = "compatibility", responses((status = 200, body = CompatServers)))]
async fn servers(State(state): State<AppState>) -> Json<CompatServers> {
    let servers = rows(state.backend.plugins().await)
        .into_iter()
        .map(|p| CompatServer {
            name: p.name,
            status: p.state,
            kind: p.tier,
            tools: p.tools,
        })
        .collect();
    Json(CompatServers { servers })
}

#[derive(Serialize, ToSchema)]
pub struct CompatPlugins {
    pub plugins: Vec<PluginRow>,
}

#[utoipa::path(get, path = "/plugins", tag = "compatibility", responses((status = 200, body = CompatPlugins)))]
async fn plugins(State(state): State<AppState>) -> Json<CompatPlugins> {
    Json(CompatPlugins {
        plugins: rows(state.backend.plugins().await),
    })
}

#[utoipa::path(get, path = "/plugins/{name}", tag = "compatibility", params(("name" = String, Path)),
    responses((status = 200, body = PluginRow), (status = 404, body = CompatError)))]
async fn plugin(State(state): State<AppState>, Path(name): Path<String>) -> Result<Json<PluginRow>, Problem> {
    Ok(Json(find(&state, &name).await?))
}

#[derive(Serialize, ToSchema)]
pub struct Reloaded {
    pub reloaded: Vec<String>,
    /// Plugins that failed to reload, with the reason.
    #[schema(value_type = Object)]
    pub failed: Map<String, Value>,
}

#[utoipa::path(post, path = "/plugins/reload", tag = "compatibility",
    responses((status = 200, description = "Every enabled plugin reloaded", body = Reloaded)))]
async fn plugins_reload(State(state): State<AppState>, actor: Actor) -> Json<Reloaded> {
    let (mut reloaded, mut failed) = (Vec::new(), Map::new());
    for p in rows(state.backend.plugins().await).into_iter().filter(|p| p.enabled) {
        let r = state.backend.plugin_action(&p.name, PluginAction::Reload).await;
        state.audit("admin/plugin.reload", &p.name, r.is_ok(), &actor);
        match r {
            Ok(()) => reloaded.push(p.name),
            Err(e) => {
                failed.insert(p.name, json!(e.detail));
            }
        }
    }
    Json(Reloaded { reloaded, failed })
}

#[utoipa::path(get, path = "/diagnostics/{kind}", tag = "compatibility",
    params(("kind" = String, Path, description = "connection, performance or errors")),
    responses((status = 200, body = Object), (status = 404, body = CompatError)))]
async fn diagnostics(State(state): State<AppState>, Path(kind): Path<String>) -> Result<Json<Value>, Problem> {
    let d = state.backend.diagnostics().await;
    let pick = |keys: &[&str]| -> Value {
        Value::Object(
            keys.iter()
                .filter_map(|k| Some((k.to_string(), d.get(*k)?.clone())))
                .collect(),
        )
    };
    Ok(Json(match kind.as_str() {
        "connection" => pick(&["version", "uptime_secs", "store", "upstreams"]),
        "performance" => pick(&["uptime_secs", "catalog", "rate_limits", "audit"]),
        "errors" => {
            let failing: Vec<Value> = d["plugins"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(d["upstreams"].as_array().into_iter().flatten())
                .filter(|p| p.get("error").or(p.get("last_error")).is_some_and(|e| !e.is_null()))
                .cloned()
                .collect();
            json!({ "errors": failing, "name_collisions": d["catalog"]["name_collisions"] })
        }
        _ => {
            return Err(Problem::not_found(format!(
                "no diagnostics {kind:?}; use connection, performance or errors"
            ))
            .field("kind"))
        }
    }))
}
