//! `/api/v1/policies` and `/api/v1/limits`: the authorization rules (`[authz]` +
//! `[[policies]]`) and the rate-limit rules (`[limits]`) in effect, and replacing either
//! section without rewriting the rest of the configuration file. A write goes through the
//! same path as `PUT /api/v1/config`: the section is merged into the file, validated with
//! the file's own messages (naming the key, e.g. `policies[0].effect`), written,
//! snapshotted, applied without a restart and audited.

use std::collections::BTreeMap;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::config::Applied;
use crate::extract::{Actor, AppState, Json};
use crate::Problem;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(policies, set_policies))
        .routes(routes!(limits, set_limits))
}

/// `[authz]`.
#[derive(Serialize, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct AuthzDoc {
    /// `allow` (the default) or `deny`: what a tool call, resource read or prompt get gets
    /// when no rule matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

/// One `[[policies]]` rule. Subjects (any of principals, roles, scopes; none = everyone)
/// and targets are globs with `*` and `?`; rules combine deny-overrides.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyRuleDoc {
    /// Unique among the rules.
    pub name: String,
    /// `allow` or `deny`.
    pub effect: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub principals: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// MCP methods (`tools/call`, `resources/*` …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompts: Vec<String>,
}

/// The authorization section: `[authz]` and every `[[policies]]` rule.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicySet {
    #[serde(default)]
    pub authz: AuthzDoc,
    /// The rules, replacing every rule in effect (an empty list removes them all).
    pub policies: Vec<PolicyRuleDoc>,
}

/// Limits of one tool (or of `*`, every tool without its own entry).
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolRateDoc {
    /// Calls per second per caller × tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_second: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<f64>,
    /// Operations one call costs in the caller's overall bucket (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
    /// Calls running at once, across callers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0)]
    pub max_concurrent: Option<u64>,
    /// A call running longer is cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0)]
    pub timeout_ms: Option<u64>,
    /// Results larger than this (serialized bytes) are cut, with a marker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0)]
    pub max_response_bytes: Option<u64>,
}

/// `[limits]`: rate limits counted in MCP operations.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsDoc {
    /// Per caller (API key, else client IP) over HTTP; unset = unlimited.
    #[serde(default)]
    pub requests_per_second: Option<f64>,
    /// The caller's bucket size (default: `requests_per_second`).
    #[serde(default)]
    pub burst: Option<f64>,
    /// Per tool name (`*` = every tool without its own entry).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tools: BTreeMap<String, ToolRateDoc>,
    /// `redis://…` (or `${env:NAME}`): share the buckets with the other replicas; applies
    /// after a restart. `"<redacted>"`, as read back, keeps the current value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
}

/// The authorization and rate-limit rules in effect (secrets redacted).
#[derive(Serialize, ToSchema)]
pub struct PolicyState {
    pub authz: AuthzDoc,
    pub policies: Vec<PolicyRuleDoc>,
    pub limits: LimitsDoc,
}

#[utoipa::path(get, path = "/api/v1/policies", tag = "operations",
    responses((status = 200, description = "Authorization rules and rate-limit rules in effect", body = PolicyState)))]
async fn policies(State(state): State<AppState>) -> Json<Value> {
    Json(state.backend.policies())
}

#[utoipa::path(get, path = "/api/v1/limits", tag = "operations",
    responses((status = 200, description = "The `[limits]` section in effect (the Redis URL redacted)", body = LimitsDoc)))]
async fn limits(State(state): State<AppState>) -> Json<Value> {
    let mut v = state.backend.policies();
    Json(
        v.get_mut("limits")
            .map(Value::take)
            .unwrap_or_else(|| Value::Object(Map::new())),
    )
}

/// `{name: section}` as JSON for the backend.
fn sections(pairs: Vec<(&str, Result<Value, serde_json::Error>)>) -> Result<Value, Problem> {
    let mut m = Map::new();
    for (k, v) in pairs {
        let v = v.map_err(|e| Problem::bad_request(format!("{k}: {e}")).field(k))?;
        m.insert(k.to_string(), v);
    }
    Ok(Value::Object(m))
}

#[utoipa::path(put, path = "/api/v1/policies", tag = "operations", request_body = PolicySet,
    responses((status = 200, description = "Merged into the configuration file, snapshotted and applied to the next request", body = Applied),
        (status = 400, description = "The rules do not validate; `field` names the key (e.g. `policies[0].effect`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The configuration file on disk does not parse", body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json")))]
async fn set_policies(
    State(state): State<AppState>,
    actor: Actor,
    Json(set): Json<PolicySet>,
) -> Result<Json<Applied>, Problem> {
    let body = sections(vec![
        ("authz", serde_json::to_value(&set.authz)),
        ("policies", serde_json::to_value(&set.policies)),
    ])?;
    let label = actor.label();
    let r = state.backend.config_sections(body, &label).await;
    let target = format!("{} rules", set.policies.len());
    state.audit("admin/policies.set", &target, r.is_ok(), &actor);
    Ok(Json(Applied { restart_needed: r? }))
}

#[utoipa::path(put, path = "/api/v1/limits", tag = "operations", request_body = LimitsDoc,
    responses((status = 200, description = "Merged into the configuration file, snapshotted and applied to the next request (a changed `redis_url` after a restart)", body = Applied),
        (status = 400, description = "The limits do not validate; `field` names the key (e.g. `limits.requests_per_second`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The configuration file on disk does not parse", body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json")))]
async fn set_limits(
    State(state): State<AppState>,
    actor: Actor,
    Json(limits): Json<LimitsDoc>,
) -> Result<Json<Applied>, Problem> {
    let body = sections(vec![("limits", serde_json::to_value(&limits))])?;
    let label = actor.label();
    let r = state.backend.config_sections(body, &label).await;
    state.audit("admin/limits.set", "limits", r.is_ok(), &actor);
    Ok(Json(Applied { restart_needed: r? }))
}
