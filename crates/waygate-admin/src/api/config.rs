//! `/api/v1/config…`: the effective configuration (secrets redacted), validation of a
//! candidate file with the config file's own messages, applying one, reload, snapshots
//! with diff and rollback.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::extract::{store_problem, Actor, AppState, Json, Path, Query};
use crate::Problem;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(effective, apply))
        .routes(routes!(validate))
        .routes(routes!(reload))
        .routes(routes!(snapshots))
        .routes(routes!(snapshot))
        .routes(routes!(diff))
        .routes(routes!(rollback))
}

/// The configuration in effect, one `section.key` per entry, secrets redacted.
#[derive(Serialize, ToSchema)]
pub struct EffectiveConfig {
    #[schema(value_type = Object)]
    pub config: Value,
}

/// A candidate configuration file (TOML).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigText {
    pub toml: String,
}

/// The verdict on a candidate: the same checks and messages as a reload.
#[derive(Serialize, ToSchema)]
pub struct Validation {
    pub valid: bool,
    /// What is wrong, each naming the line or key (`field`).
    pub problems: Vec<Problem>,
    /// Keys the candidate changes (against what the server started with) that would take
    /// effect only after a restart.
    pub restart_needed: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Applied {
    /// Sections that changed and take effect only after a restart.
    pub restart_needed: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SnapshotRow {
    pub id: i64,
    /// Unix milliseconds.
    pub created_at: i64,
    /// What applied it: `start`, `reload`, `api`, `rollback`.
    pub source: String,
    pub sha256: String,
}

#[derive(Serialize, ToSchema)]
pub struct SnapshotList {
    pub snapshots: Vec<SnapshotRow>,
}

#[derive(Serialize, ToSchema)]
pub struct SnapshotDoc {
    #[serde(flatten)]
    pub row: SnapshotRow,
    /// The file as applied, literal secret values redacted.
    pub content: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DiffQuery {
    /// The snapshot to compare with; the newest snapshot when absent.
    pub against: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct SnapshotDiff {
    pub from: i64,
    pub to: i64,
    /// Unified-style lines: `-` only in `from`, `+` only in `to`, ` ` in both.
    pub lines: Vec<String>,
}

#[utoipa::path(get, path = "/api/v1/config", tag = "config", responses((status = 200, body = EffectiveConfig)))]
async fn effective(State(state): State<AppState>) -> Json<EffectiveConfig> {
    Json(EffectiveConfig {
        config: state.backend.config_effective(),
    })
}

#[utoipa::path(post, path = "/api/v1/config/validate", tag = "config", request_body = ConfigText,
    responses((status = 200, description = "The verdict; an invalid candidate is `valid: false` with its problems", body = Validation),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json")))]
async fn validate(State(state): State<AppState>, Json(c): Json<ConfigText>) -> Json<Validation> {
    let checked = still_redacted(&c.toml).map_or_else(|| state.backend.config_validate(&c.toml), Err);
    let (restart_needed, problems) = match checked {
        Ok(keys) => (keys, Vec::new()),
        Err(p) => (Vec::new(), vec![p]),
    };
    Json(Validation {
        valid: problems.is_empty(),
        problems,
        restart_needed,
    })
}

#[utoipa::path(put, path = "/api/v1/config", tag = "config", request_body = ConfigText,
    responses((status = 200, description = "Written, snapshotted and applied", body = Applied),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The server runs without a config file to write", body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json")))]
async fn apply(
    State(state): State<AppState>,
    actor: Actor,
    Json(c): Json<ConfigText>,
) -> Result<Json<Applied>, Problem> {
    if let Some(p) = still_redacted(&c.toml) {
        return Err(p);
    }
    let label = actor.label();
    let r = state.backend.config_apply(&c.toml, &label).await;
    state.audit("admin/config.apply", "api", r.is_ok(), &actor);
    Ok(Json(Applied { restart_needed: r? }))
}

#[utoipa::path(post, path = "/api/v1/config/reload", tag = "config",
    responses((status = 200, body = Applied),
        (status = 400, description = "The file on disk does not validate; the running configuration is kept", body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json")))]
async fn reload(State(state): State<AppState>, actor: Actor) -> Result<Json<Applied>, Problem> {
    let r = state.backend.config_reload().await;
    state.audit("admin/config.reload", "api", r.is_ok(), &actor);
    Ok(Json(Applied { restart_needed: r? }))
}

fn row(s: &waygate_store::Snapshot) -> SnapshotRow {
    SnapshotRow {
        id: s.id,
        created_at: s.created_at,
        source: s.source.clone(),
        sha256: s.sha256.clone(),
    }
}

#[utoipa::path(get, path = "/api/v1/config/snapshots", tag = "config",
    responses((status = 200, body = SnapshotList), (status = 503, body = Problem, content_type = "application/problem+json")))]
async fn snapshots(State(state): State<AppState>) -> Result<Json<SnapshotList>, Problem> {
    let list = state.store()?.snapshots(100).await.map_err(store_problem)?;
    Ok(Json(SnapshotList {
        snapshots: list.iter().map(row).collect(),
    }))
}

async fn load(state: &AppState, id: i64) -> Result<waygate_store::Snapshot, Problem> {
    state
        .store()?
        .snapshot(id)
        .await
        .map_err(store_problem)?
        .ok_or_else(|| Problem::not_found(format!("no snapshot {id}")).field("id"))
}

#[utoipa::path(get, path = "/api/v1/config/snapshots/{id}", tag = "config", params(("id" = i64, Path)),
    responses((status = 200, body = SnapshotDoc), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")))]
async fn snapshot(State(state): State<AppState>, Path(id): Path<i64>) -> Result<Json<SnapshotDoc>, Problem> {
    let s = load(&state, id).await?;
    Ok(Json(SnapshotDoc {
        row: row(&s),
        content: crate::redact::toml_text(&s.content),
    }))
}

#[utoipa::path(get, path = "/api/v1/config/snapshots/{id}/diff", tag = "config", params(("id" = i64, Path), DiffQuery),
    responses((status = 200, body = SnapshotDiff), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")))]
async fn diff(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(q): Query<DiffQuery>,
) -> Result<Json<SnapshotDiff>, Problem> {
    let from = load(&state, id).await?;
    let to = match q.against {
        Some(a) => load(&state, a).await?,
        None => state
            .store()?
            .snapshots(1)
            .await
            .map_err(store_problem)?
            .into_iter()
            .next()
            .ok_or_else(|| Problem::not_found("no snapshots yet"))?,
    };
    let (a, b) = (
        crate::redact::toml_text(&from.content),
        crate::redact::toml_text(&to.content),
    );
    Ok(Json(SnapshotDiff {
        from: from.id,
        to: to.id,
        lines: crate::diff::lines(&a, &b),
    }))
}

#[utoipa::path(post, path = "/api/v1/config/snapshots/{id}/rollback", tag = "config", params(("id" = i64, Path)),
    responses((status = 200, description = "The snapshot is the configuration file again, applied", body = Applied),
        (status = 400, description = "The snapshot does not validate any more", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")))]
async fn rollback(State(state): State<AppState>, actor: Actor, Path(id): Path<i64>) -> Result<Json<Applied>, Problem> {
    let s = load(&state, id).await?;
    let label = actor.label();
    let r = state.backend.config_apply(&s.content, &label).await;
    state.audit("admin/config.rollback", &id.to_string(), r.is_ok(), &actor);
    Ok(Json(Applied { restart_needed: r? }))
}

/// A candidate copied from a redacted view (`GET /config/snapshots/{id}`, the UI's editor)
/// that still holds the placeholder would overwrite a real secret with it: refuse, naming
/// the line and key.
fn still_redacted(text: &str) -> Option<Problem> {
    let (n, line) = text.lines().enumerate().find(|(_, l)| l.contains("\"<redacted>\""))?;
    let key = line.split('=').next().unwrap_or_default().trim().to_string();
    let msg = format!(
        "line {}: {key} still holds the placeholder \"<redacted>\" from a redacted view; \
         write the real value or a ${{secret:NAME}} / ${{env:NAME}} reference",
        n + 1
    );
    Some(Problem::bad_request(msg).field(key))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_redacted_placeholder_is_refused_with_its_line_and_key() {
        let p = super::still_redacted("version = 3\n[otel]\nheaders = { authorization = \"<redacted>\" }\n").unwrap();
        assert!(p.to_string().contains("line 3"), "{p}");
        assert!(super::still_redacted("version = 3\n").is_none());
    }
}
