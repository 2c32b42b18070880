//! `/api/v1/audit…` and `/api/v1/pins…`: the audit trail (filtered, newest first, cursor
//! pagination, chain verification) and tool pins (held definitions, their diff, approval).

use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::extract::{store_problem, Actor, AppState, Json, Path, Query};
use crate::Problem;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(query))
        .routes(routes!(verify))
        .routes(routes!(pins))
        .routes(routes!(approve))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only records whose method is this (`tools/call`, `admin/keys.create` …); a
    /// trailing `*` matches a prefix (`admin/*`).
    pub method: Option<String>,
    /// Only records whose target (tool name, URI, admin object) contains this.
    pub target: Option<String>,
    /// Only records of this caller (`id:name`, or a part of it).
    pub principal: Option<String>,
    /// `ok`, `error`, `denied` …
    pub outcome: Option<String>,
    /// Only records at or after this time (Unix milliseconds).
    pub since: Option<i64>,
    /// Only records before this time (Unix milliseconds).
    pub until: Option<i64>,
    /// Records per page (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[1-9][0-9]{0,17}:[0-9]{1,18}$")]
    pub cursor: Option<String>,
}

/// One audit record with its place in the hash chain.
#[derive(Serialize, ToSchema)]
pub struct AuditEntry {
    /// The chain row holding the record (rows hold segments of records written together).
    pub seq: i64,
    /// The record's place in its row.
    pub index: usize,
    /// Unix milliseconds when the operation started.
    pub ts: i64,
    /// principal, client, transport, version, method, target, args_sha256, outcome,
    /// error, latency_us, correlation_id.
    #[schema(value_type = Object)]
    pub record: Value,
    /// The row's chain hash.
    pub hash: String,
}

#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    /// Pass as `cursor` for older records; absent when the trail is exhausted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Rows read per store round trip, and at most per request, while filtering.
const CHUNK: i64 = 200;
const SCAN_LIMIT: usize = 20_000;

fn keep(q: &AuditQuery, r: &Value) -> bool {
    let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or_default();
    let ts = r.get("ts_ms").and_then(Value::as_i64).unwrap_or_default();
    q.since.is_none_or(|t| ts >= t)
        && q.until.is_none_or(|t| ts < t)
        && q.method.as_deref().is_none_or(|m| match m.strip_suffix('*') {
            Some(prefix) => s("method").starts_with(prefix),
            None => s("method") == m,
        })
        && q.target.as_deref().is_none_or(|t| s("target").contains(t))
        && q.principal.as_deref().is_none_or(|p| s("principal").contains(p))
        && q.outcome.as_deref().is_none_or(|o| s("outcome") == o)
}

/// `seq:index` — the next page holds records older than this one.
fn parse_cursor(c: &str) -> Option<(i64, usize)> {
    let (seq, idx) = c.split_once(':')?;
    let seq: i64 = seq.parse().ok()?;
    (seq > 0).then_some((seq, idx.parse().ok()?))
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = AuditPage),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")))]
async fn query(State(state): State<AppState>, Query(q): Query<AuditQuery>) -> Result<Json<AuditPage>, Problem> {
    let limit = q.limit.unwrap_or(50) as usize;
    if !(1..=500).contains(&limit) {
        return Err(Problem::bad_request(format!("limit {limit} is out of range 1..=500")).field("limit"));
    }
    // Records strictly older than (seq, index), newest first.
    let (mut before, mut below) = match q.cursor.as_deref() {
        None | Some("") => (i64::MAX, usize::MAX),
        Some(c) => parse_cursor(c)
            .ok_or_else(|| Problem::bad_request(format!("cursor {c:?} is not one this API issued")).field("cursor"))?,
    };
    let store = state.store()?;
    let mut items = Vec::new();
    let mut scanned = 0usize;
    // Filtering happens here, so one request reads at most SCAN_LIMIT records and hands
    // back a cursor where it stopped.
    let next = 'scan: loop {
        let bound = if below == usize::MAX {
            before
        } else {
            before.saturating_add(1)
        };
        let rows = store.audit_before(bound, CHUNK).await.map_err(store_problem)?;
        if rows.is_empty() {
            break None;
        }
        for row in rows {
            let records = match serde_json::from_str::<Value>(&row.record).unwrap_or(Value::Null) {
                Value::Array(a) => a,
                one => vec![one],
            };
            let top = if row.seq == before {
                below.min(records.len())
            } else {
                records.len()
            };
            for (index, record) in records.into_iter().enumerate().take(top).rev() {
                (before, below) = (row.seq, index);
                scanned += 1;
                if keep(&q, &record) {
                    items.push(AuditEntry {
                        seq: row.seq,
                        index,
                        ts: record.get("ts_ms").and_then(Value::as_i64).unwrap_or(row.ts),
                        record,
                        hash: row.hash.clone(),
                    });
                }
                if items.len() == limit || scanned >= SCAN_LIMIT {
                    break 'scan Some(format!("{before}:{below}"));
                }
            }
            // This row is done: the next fetch starts below it.
            (before, below) = (row.seq, usize::MAX);
        }
    };
    Ok(Json(AuditPage {
        items,
        next_cursor: next,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct AuditVerification {
    /// Rows checked.
    pub rows: u64,
    /// Whether every row's hash and link match.
    pub intact: bool,
    /// The first row whose hash or link does not match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad: Option<i64>,
}

#[utoipa::path(post, path = "/api/v1/audit/verify", tag = "audit",
    responses((status = 200, body = AuditVerification), (status = 503, body = Problem, content_type = "application/problem+json")))]
async fn verify(State(state): State<AppState>) -> Result<Json<AuditVerification>, Problem> {
    let c = state.store()?.audit_verify().await.map_err(store_problem)?;
    Ok(Json(AuditVerification {
        rows: c.rows,
        intact: c.first_bad.is_none(),
        first_bad: c.first_bad,
    }))
}

/// A tool definition held back because it changed since it was approved.
#[derive(Serialize, ToSchema)]
pub struct HeldPinRow {
    pub plugin: String,
    pub tool: String,
    /// Digest of the definition now offered.
    pub sha256: String,
    /// Digest of the approved one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved_sha256: Option<String>,
    #[schema(value_type = Object)]
    pub definition: Value,
    /// The approved definition, when the store still has it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub approved_definition: Option<Value>,
    /// Top-level keys whose value differs (`description`, `inputSchema` …).
    pub changed: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PinList {
    pub held: Vec<HeldPinRow>,
    /// Approved digests, `plugin/tool`.
    pub approved: Vec<String>,
}

#[utoipa::path(get, path = "/api/v1/pins", tag = "pins",
    responses((status = 200, body = PinList)))]
async fn pins(State(state): State<AppState>) -> Result<Json<PinList>, Problem> {
    let stored = match state.backend.store() {
        Some(s) => s.pins().await.map_err(store_problem)?,
        None => Vec::new(),
    };
    let held = state
        .backend
        .pins_held()
        .into_iter()
        .map(|h| {
            let approved_definition = stored
                .iter()
                .find(|p| p.plugin == h.plugin && p.tool == h.tool)
                .and_then(|p| serde_json::from_str::<Value>(&p.definition).ok());
            let changed = changed_keys(approved_definition.as_ref(), &h.definition);
            HeldPinRow {
                plugin: h.plugin,
                tool: h.tool,
                sha256: h.sha256,
                approved_sha256: h.approved_sha256,
                definition: h.definition,
                approved_definition,
                changed,
            }
        })
        .collect();
    let approved = stored.iter().map(|p| format!("{}/{}", p.plugin, p.tool)).collect();
    Ok(Json(PinList { held, approved }))
}

fn changed_keys(old: Option<&Value>, new: &Value) -> Vec<String> {
    let (Some(Value::Object(a)), Value::Object(b)) = (old, new) else {
        return Vec::new();
    };
    let mut keys: Vec<String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

#[derive(Serialize, ToSchema)]
pub struct Approved {
    pub plugin: String,
    pub tool: String,
    pub sha256: String,
}

#[utoipa::path(post, path = "/api/v1/pins/{plugin}/{tool}/approve", tag = "pins",
    params(("plugin" = String, Path), ("tool" = String, Path, description = "The tool's name in its plugin")),
    responses((status = 200, body = Approved),
        (status = 404, description = "No held definition of that tool", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")))]
async fn approve(
    State(state): State<AppState>,
    actor: Actor,
    Path((plugin, tool)): Path<(String, String)>,
) -> Result<Json<Approved>, Problem> {
    let by = actor.label();
    let r = state.backend.pin_approve(&plugin, &tool, &by).await;
    state.audit("admin/pin.approve", &format!("{plugin}/{tool}"), r.is_ok(), &actor);
    Ok(Json(Approved {
        sha256: r?,
        plugin,
        tool,
    }))
}
