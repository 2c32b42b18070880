//! `/api/v1/catalog…`: the merged catalog as the gateway exposes it, each item with the
//! plugin or upstream it comes from and the name it has there.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::extract::{AppState, Json, Path, Query};
use crate::Problem;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(summary))
        .routes(routes!(tools))
        .routes(routes!(tool))
        .routes(routes!(resources))
        .routes(routes!(prompts))
}

/// Counts and name collisions.
#[derive(Serialize, ToSchema)]
pub struct CatalogSummary {
    pub tools: usize,
    pub resources: usize,
    pub resource_templates: usize,
    pub prompts: usize,
    /// Names two plugins both wanted (see `catalog.prefix`).
    pub name_collisions: Vec<String>,
    /// Virtual servers, each serving a view of this catalog at `/servers/{name}/mcp`.
    pub servers: Vec<String>,
}

/// A tool as the gateway exposes it.
#[derive(Serialize, ToSchema)]
pub struct ToolRow {
    /// The name clients call.
    pub name: String,
    /// The name its plugin or upstream knows it by.
    pub original_name: String,
    /// The plugin or upstream it comes from.
    pub origin: String,
    /// `native`, `wasm`, `process` or `upstream`.
    pub origin_tier: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub tags: Vec<String>,
    /// `approved` when tool pinning holds an approved digest of this definition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pin: Option<String>,
    /// The definition as a current-revision client lists it.
    #[schema(value_type = Object)]
    pub definition: Value,
}

#[derive(Serialize, ToSchema)]
pub struct ToolPage {
    pub items: Vec<ToolRow>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    pub total: usize,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ToolQuery {
    /// Substring of the name, title or description (case-insensitive).
    pub q: Option<String>,
    /// Only tools of this plugin or upstream.
    pub origin: Option<String>,
    /// Only tools with this tag.
    pub tag: Option<String>,
    /// Page size (1–1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}$")]
    pub cursor: Option<String>,
}

/// A resource, or a resource template, as exposed.
#[derive(Serialize, ToSchema)]
pub struct ResourceRow {
    /// The URI (or URI template) clients use.
    pub uri: String,
    /// The URI its plugin or upstream knows.
    pub original_uri: String,
    pub origin: String,
    pub template: bool,
    #[schema(value_type = Object)]
    pub definition: Value,
}

#[derive(Serialize, ToSchema)]
pub struct PromptRow {
    pub name: String,
    pub original_name: String,
    pub origin: String,
    #[schema(value_type = Object)]
    pub definition: Value,
}

#[derive(Serialize, ToSchema)]
pub struct ResourceList {
    pub items: Vec<ResourceRow>,
}

#[derive(Serialize, ToSchema)]
pub struct PromptList {
    pub items: Vec<PromptRow>,
}

#[utoipa::path(get, path = "/api/v1/catalog", tag = "catalog",
    responses((status = 200, body = CatalogSummary), (status = 503, body = Problem, content_type = "application/problem+json")))]
async fn summary(state: axum::extract::State<AppState>) -> Result<Json<CatalogSummary>, Problem> {
    let engine = state.engine()?;
    let c = engine.registry.catalog();
    Ok(Json(CatalogSummary {
        tools: c.tool_count(),
        resources: c.resource_entries().count(),
        resource_templates: c.template_entries().count(),
        prompts: c.prompt_entries().count(),
        name_collisions: c.collisions().to_vec(),
        servers: engine.view_names(),
    }))
}

/// Tier of each plugin, by name.
async fn tiers(state: &AppState) -> HashMap<String, String> {
    state
        .backend
        .plugins()
        .await
        .into_iter()
        .filter_map(|p| Some((p["name"].as_str()?.to_string(), p["tier"].as_str()?.to_string())))
        .collect()
}

/// `(plugin, tool)` pairs with an approved pin.
async fn pinned(state: &AppState) -> std::collections::HashSet<(String, String)> {
    match state.backend.store() {
        Some(s) => s
            .pins()
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|p| (p.plugin, p.tool))
            .collect(),
        None => Default::default(),
    }
}

fn row(
    t: &waygate_core::catalog::CatalogTool,
    tiers: &HashMap<String, String>,
    pinned: &std::collections::HashSet<(String, String)>,
) -> ToolRow {
    let definition = t.definition();
    let origin = t.route.plugin.name().to_string();
    let text = |k: &str| definition.get(k).and_then(Value::as_str).map(str::to_string);
    ToolRow {
        name: t.name.clone(),
        original_name: t.route.local_name.clone(),
        origin_tier: tiers.get(&origin).cloned().unwrap_or_else(|| "native".into()),
        pin: pinned
            .contains(&(origin.clone(), t.route.local_name.clone()))
            .then(|| "approved".to_string()),
        origin,
        title: text("title"),
        description: text("description"),
        tags: t.tags().iter().map(|s| s.to_string()).collect(),
        definition,
    }
}

#[utoipa::path(get, path = "/api/v1/catalog/tools", tag = "catalog", params(ToolQuery),
    responses((status = 200, body = ToolPage), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")))]
async fn tools(state: axum::extract::State<AppState>, Query(q): Query<ToolQuery>) -> Result<Json<ToolPage>, Problem> {
    let engine = state.engine()?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::bad_request(format!("limit {limit} is out of range 1..=1000")).field("limit"));
    }
    let start: usize = match q.cursor.as_deref() {
        None | Some("") => 0,
        Some(c) => c
            .parse()
            .map_err(|_| Problem::bad_request(format!("cursor {c:?} is not one this API issued")).field("cursor"))?,
    };
    let c = engine.registry.catalog();
    let (tiers, pinned) = (tiers(&state).await, pinned(&state).await);
    let needle = q.q.as_deref().map(str::to_lowercase);
    let matches = |t: &&waygate_core::catalog::CatalogTool| {
        q.origin.as_deref().is_none_or(|o| t.route.plugin.name() == o)
            && q.tag.as_deref().is_none_or(|g| t.tags().iter().any(|x| &**x == g))
            && needle.as_deref().is_none_or(|n| {
                t.name.to_lowercase().contains(n) || {
                    let d = t.definition();
                    ["title", "description"].iter().any(|k| {
                        d.get(k)
                            .and_then(Value::as_str)
                            .is_some_and(|s| s.to_lowercase().contains(n))
                    })
                }
            })
    };
    let all: Vec<&waygate_core::catalog::CatalogTool> = c.tools().iter().filter(matches).collect();
    let total = all.len();
    let end = start.saturating_add(limit as usize).min(total);
    let items = all
        .get(start.min(total)..end)
        .unwrap_or_default()
        .iter()
        .map(|t| row(t, &tiers, &pinned))
        .collect();
    Ok(Json(ToolPage {
        items,
        next_cursor: (end < total).then(|| end.to_string()),
        total,
    }))
}

#[utoipa::path(get, path = "/api/v1/catalog/tools/{name}", tag = "catalog",
    params(("name" = String, Path, description = "Exposed tool name")),
    responses((status = 200, body = ToolRow), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")))]
async fn tool(state: axum::extract::State<AppState>, Path(name): Path<String>) -> Result<Json<ToolRow>, Problem> {
    let engine = state.engine()?;
    let c = engine.registry.catalog();
    let t = c
        .tool(&name)
        .ok_or_else(|| Problem::not_found(format!("no tool named {name:?} in the catalog")).field("name"))?;
    Ok(Json(row(t, &tiers(&state).await, &pinned(&state).await)))
}

#[utoipa::path(get, path = "/api/v1/catalog/resources", tag = "catalog",
    responses((status = 200, body = ResourceList), (status = 503, body = Problem, content_type = "application/problem+json")))]
async fn resources(state: axum::extract::State<AppState>) -> Result<Json<ResourceList>, Problem> {
    let engine = state.engine()?;
    let c = engine.registry.catalog();
    let mut items: Vec<ResourceRow> = c
        .resource_entries()
        .map(|(d, r)| ResourceRow {
            uri: d["uri"].as_str().unwrap_or_default().to_string(),
            original_uri: r.local_name.clone(),
            origin: r.plugin.name().to_string(),
            template: false,
            definition: d.clone(),
        })
        .collect();
    items.extend(c.template_entries().map(|(d, r)| ResourceRow {
        uri: d["uriTemplate"].as_str().unwrap_or_default().to_string(),
        original_uri: r.local_name.clone(),
        origin: r.plugin.name().to_string(),
        template: true,
        definition: d.clone(),
    }));
    Ok(Json(ResourceList { items }))
}

#[utoipa::path(get, path = "/api/v1/catalog/prompts", tag = "catalog",
    responses((status = 200, body = PromptList), (status = 503, body = Problem, content_type = "application/problem+json")))]
async fn prompts(state: axum::extract::State<AppState>) -> Result<Json<PromptList>, Problem> {
    let engine = state.engine()?;
    let c = engine.registry.catalog();
    let items = c
        .prompt_entries()
        .map(|(d, r)| PromptRow {
            name: d["name"].as_str().unwrap_or_default().to_string(),
            original_name: r.local_name.clone(),
            origin: r.plugin.name().to_string(),
            definition: d.clone(),
        })
        .collect();
    Ok(Json(PromptList { items }))
}

/// Every tool `keep` accepts, on one page.
pub(crate) async fn page_of(
    state: &AppState,
    keep: impl Fn(&waygate_core::catalog::CatalogTool) -> bool,
) -> Result<Json<ToolPage>, Problem> {
    let engine = state.engine()?;
    let c = engine.registry.catalog();
    let (tiers, pinned) = (tiers(state).await, pinned(state).await);
    let items: Vec<ToolRow> = c
        .tools()
        .iter()
        .filter(|t| keep(t))
        .map(|t| row(t, &tiers, &pinned))
        .collect();
    Ok(Json(ToolPage {
        total: items.len(),
        items,
        next_cursor: None,
    }))
}
