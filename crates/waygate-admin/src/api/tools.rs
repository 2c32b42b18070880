//! `POST /api/v1/tools/{name}/call`: a catalog tool for clients that do not speak MCP —
//! the same engine path as an MCP `tools/call` (authorization, argument validation, rate
//! limits, hooks, audit), with the MCP result as the body. `Accept: text/event-stream`
//! streams progress then the result; `"task": {}` runs it as a task polled under
//! `/api/v1/tasks/{id}`.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, HeaderValue, StatusCode};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use waygate_core::{CallContext, Engine};
use waygate_protocol::{codes, ErrorObject, ProtocolVersion};

use crate::extract::{Actor, AppState, Json, Path};
use crate::Problem;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(call))
        .routes(routes!(task_get, task_cancel))
        .routes(routes!(task_result))
}

/// The arguments of a REST tool call.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct CallRequest {
    /// The tool's arguments; checked against its `inputSchema`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub arguments: Map<String, Value>,
    /// Run as a task (`{"ttl": ms}` optional) and answer with its handle at once.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub task: Option<Map<String, Value>>,
}

/// An MCP `CallToolResult` (or, for a task, `{"task": {...}}`).
#[derive(serde::Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallToolResult {
    /// Text, image, audio, resource-link or embedded-resource items.
    #[schema(value_type = Vec<Object>)]
    content: Vec<Value>,
    #[schema(value_type = Option<Object>)]
    structured_content: Option<Value>,
    is_error: Option<bool>,
    #[schema(value_type = Option<Object>)]
    task: Option<Value>,
}

/// The context a REST caller's request runs in: a stateless current-revision request
/// without client capabilities (a REST client cannot answer sampling or elicitation).
fn context(actor: &Actor, version: ProtocolVersion) -> CallContext {
    let mut ctx = CallContext::detached(version);
    ctx.transport = waygate_core::context::TransportKind::StreamableHttp;
    ctx.principal = actor.0.principal.clone();
    ctx.correlation_id = actor.0.correlation_id.clone();
    ctx.forwarded = actor.0.forwarded.clone();
    ctx
}

/// A JSON-RPC error as a problem with the status an HTTP client expects.
fn problem_of(e: &ErrorObject) -> Problem {
    let status = match e.code {
        codes::INVALID_PARAMS if e.message.starts_with("Unknown tool") => StatusCode::NOT_FOUND,
        codes::INVALID_PARAMS | codes::INVALID_REQUEST => StatusCode::BAD_REQUEST,
        codes::METHOD_NOT_FOUND => StatusCode::BAD_REQUEST,
        codes::RESOURCE_NOT_FOUND => StatusCode::NOT_FOUND,
        codes::RATE_LIMITED => StatusCode::TOO_MANY_REQUESTS,
        codes::MISSING_CLIENT_CAPABILITY => StatusCode::BAD_REQUEST,
        codes::REQUEST_CANCELLED => StatusCode::CONFLICT,
        _ => StatusCode::BAD_GATEWAY,
    };
    Problem::new(status, e.message.clone())
}

fn wants_stream(h: &HeaderMap) -> bool {
    h.get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/event-stream") && !a.contains("application/json"))
}

#[utoipa::path(post, path = "/api/v1/tools/{name}/call", tag = "tools",
    params(("name" = String, Path, description = "Exposed tool name")),
    request_body = CallRequest,
    responses(
        (status = 200, description = "The MCP result (`isError` true when the tool failed); with `Accept: text/event-stream`, progress notifications then a JSON-RPC response as SSE", body = CallToolResult),
        (status = 400, description = "Arguments do not satisfy the tool's inputSchema, or the body is malformed", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tool (or one this caller may not use)", body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The tool's plugin or upstream failed", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")))]
async fn call(
    State(state): State<AppState>,
    actor: Actor,
    Path(name): Path<String>,
    headers: HeaderMap,
    Json(req): Json<CallRequest>,
) -> Result<Response, Problem> {
    let version = if req.task.is_some() {
        ProtocolVersion::V2025_11_25
    } else {
        ProtocolVersion::LATEST_MODERN
    };
    let (engine, ctx, mut params) = prepare(&state, &actor, name, req.arguments, version)?;
    if let Some(t) = req.task {
        params.insert("task".into(), Value::Object(t));
    }
    if wants_stream(&headers) {
        return Ok(stream(engine, params, ctx));
    }
    run(&engine, &ctx, params, None)
        .await
        .map(|v| axum::Json(v).into_response())
}

/// The engine, the caller's context and the `tools/call` params of a checked call.
pub(crate) type Prepared = (Arc<Engine>, CallContext, Map<String, Value>);

/// Everything a REST call checks before the engine runs it — the same answers MCP gives
/// (an unknown and a forbidden tool look alike), as problems naming the field.
pub(crate) fn prepare(
    state: &AppState,
    actor: &Actor,
    name: String,
    arguments: Map<String, Value>,
    version: ProtocolVersion,
) -> Result<Prepared, Problem> {
    let engine = state.engine()?;
    // A key limited to virtual servers calls tools only through them.
    if actor
        .0
        .principal
        .as_deref()
        .is_some_and(waygate_core::view::limited_to_servers)
    {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "this credential is limited to virtual servers (/servers/{name}/mcp)",
        ));
    }
    let ctx = context(actor, version);
    if !engine.may_call_tool(&name, &ctx) {
        return Err(Problem::not_found(format!("Unknown tool: {name}")).field("name"));
    }
    let arguments = Value::Object(arguments);
    if let Some(t) = engine.registry.catalog().tool(&name) {
        if let Err(why) = t.check_arguments(&arguments) {
            return Err(Problem::bad_request(format!("Invalid arguments for tool {name}: {why}")).field("arguments"));
        }
    }
    let mut params = Map::new();
    params.insert("name".into(), Value::String(name));
    params.insert("arguments".into(), arguments);
    Ok((engine, ctx, params))
}

/// Run a prepared call to its end (or `timeout`, which cancels it).
pub(crate) async fn run(
    engine: &Arc<Engine>,
    ctx: &CallContext,
    params: Map<String, Value>,
    timeout: Option<std::time::Duration>,
) -> Result<Value, Problem> {
    let call = engine.handle("tools/call", Some(params), ctx);
    let r = match timeout {
        Some(t) => match tokio::time::timeout(t, call).await {
            Ok(r) => r,
            Err(_) => {
                ctx.cancel.cancel();
                return Err(Problem::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    format!("the tool did not finish within {} ms", t.as_millis()),
                ));
            }
        },
        None => call.await,
    };
    ctx.cancel.cancel();
    r.map_err(|e| problem_of(&e))
}

/// Progress notifications as they come, then the JSON-RPC response, as SSE.
fn stream(engine: Arc<Engine>, mut params: Map<String, Value>, mut ctx: CallContext) -> Response {
    let (tx, rx) = waygate_core::outq::channel();
    let token = Value::String("rest".into());
    params.insert("_meta".into(), json!({"progressToken": token}));
    ctx.progress_token = Some(token);
    ctx.out = Some(tx.clone());
    tokio::spawn(async move {
        let r = engine.handle("tools/call", Some(params), &ctx).await;
        let id = waygate_protocol::Id::Str("rest".into());
        let _ = tx.send(waygate_protocol::jsonrpc::encode_response(Some(&id), r.as_ref()));
        // Dropping the last sender ends the stream.
        drop(ctx);
    });
    let body = waygate_transport::http::Body::sse(rx, Some(std::time::Duration::from_secs(15)), None);
    let mut r = axum::body::Body::new(body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

async fn task_method(state: &AppState, actor: &Actor, method: &str, id: String) -> Result<Json<Value>, Problem> {
    let engine = state.engine()?;
    let ctx = context(actor, ProtocolVersion::V2025_11_25);
    let mut params = Map::new();
    params.insert("taskId".into(), Value::String(id));
    engine.handle(method, Some(params), &ctx).await.map(Json).map_err(|e| {
        let mut p = problem_of(&e);
        if e.code == codes::INVALID_PARAMS {
            p = Problem::not_found(e.message).field("id");
        }
        p
    })
}

#[utoipa::path(get, path = "/api/v1/tasks/{id}", tag = "tools",
    params(("id" = String, Path, description = "Task id from a call made with `task`")),
    responses((status = 200, description = "The task's state", body = Object),
        (status = 404, description = "No such task of this caller", body = Problem, content_type = "application/problem+json")))]
async fn task_get(State(state): State<AppState>, actor: Actor, Path(id): Path<String>) -> Result<Json<Value>, Problem> {
    task_method(&state, &actor, "tasks/get", id).await
}

#[utoipa::path(get, path = "/api/v1/tasks/{id}/result", tag = "tools",
    params(("id" = String, Path, description = "Task id")),
    responses((status = 200, description = "The tool's result, once the task is done (waits for it)", body = CallToolResult),
        (status = 404, description = "No such task of this caller", body = Problem, content_type = "application/problem+json")))]
async fn task_result(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    task_method(&state, &actor, "tasks/result", id).await
}

#[utoipa::path(delete, path = "/api/v1/tasks/{id}", tag = "tools",
    params(("id" = String, Path, description = "Task id")),
    responses((status = 200, description = "The cancelled task", body = Object),
        (status = 400, description = "The task already finished", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such task of this caller", body = Problem, content_type = "application/problem+json")))]
async fn task_cancel(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    task_method(&state, &actor, "tasks/cancel", id).await
}
