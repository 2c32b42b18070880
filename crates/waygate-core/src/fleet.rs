//! The seam between the engine and whatever lets replicas share sessions (the binary
//! implements it over PostgreSQL): session rows, answers that landed on the wrong replica,
//! and the tag that keeps this replica's server-to-client request ids unique.
//!
//! The engine never waits on the share for a session it already holds: a request that
//! lands where its session was created costs what it cost before. Only a cache miss (a
//! session created elsewhere), `initialize` (the row must exist before the client can use
//! it elsewhere) and DELETE go to the store.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A boxed future the share returns; `'static` so the engine may spawn it.
pub type ShareFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What a session carries between replicas. The owner and the virtual server are row
/// columns (checked before this is opened), not part of the document.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SessionState {
    /// The negotiated protocol revision.
    pub version: String,
    /// The client's declared capabilities.
    pub caps: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<Value>,
    /// The `logging/setLevel` rank; 255 = never set.
    pub level: u8,
    /// Subscribed resource URIs.
    #[serde(default)]
    pub subs: Vec<String>,
}

/// A stored session as the share hands it back.
#[derive(Debug, Clone)]
pub struct SharedSession {
    pub id: String,
    pub owner: Option<String>,
    pub view: Option<String>,
    pub state: SessionState,
}

/// Where sessions are shared. Every method is best effort from the engine's point of view
/// except `save` at `initialize` and `load`, whose failures make the session unknown.
pub trait SessionShare: Send + Sync {
    /// Write (insert or replace) a session row, and tell replicas caching it.
    fn save(&self, s: SharedSession, announce: bool) -> ShareFuture<bool>;
    /// Read a session row.
    fn load(&self, id: &str) -> ShareFuture<Option<SharedSession>>;
    /// Delete a session row and tell every replica to drop its copy.
    fn end(&self, id: &str) -> ShareFuture<()>;
    /// Hand a client's answer (`{"result": …}` or `{"error": …}`) to the replica waiting
    /// for request `request` of session `session`.
    fn forward_answer(&self, session: &str, request: &str, outcome: Value) -> ShareFuture<()>;
}

/// Where tasks are shared: every status change is written through, and a replica that
/// does not run a task reads it from here and signals the one that does.
pub trait TaskShare: Send + Sync {
    /// Write a task's document (see `tasks::render`), kept `keep_ms` from now; `seq`
    /// grows with each change so a late write of an older state is dropped.
    fn save(&self, id: &str, owner: Option<&str>, tool: &str, doc: Value, seq: u64, keep_ms: u64) -> ShareFuture<()>;
    /// The task `id` if `owner` holds it: its tool and document.
    fn load(&self, id: &str, owner: Option<&str>) -> ShareFuture<Option<(String, Value)>>;
    /// The owner's tasks: tool and document each.
    fn list(&self, owner: Option<&str>) -> ShareFuture<Vec<(String, Value)>>;
    /// Hand `{"cancel": true}` or `{"answers": {…}}` to the replica running task `id`.
    fn signal(&self, id: &str, signal: Value) -> ShareFuture<()>;
}

/// Installed once by the binary; `None` on a single replica.
pub(crate) type ShareSlot = OnceLock<Arc<dyn SessionShare>>;

/// A short random tag naming this process among replicas (in request ids and logs).
pub fn replica_tag() -> &'static str {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| crate::util::random_hex(4))
}

/// A JSON-RPC outcome as the document `forward_answer` carries.
pub fn outcome_to_json(outcome: &Result<Value, waygate_protocol::ErrorObject>) -> Value {
    match outcome {
        Ok(v) => serde_json::json!({ "result": v }),
        Err(e) => serde_json::json!({ "error": e }),
    }
}

/// The inverse of [`outcome_to_json`]; `None` for a document that is neither.
pub fn outcome_from_json(v: Value) -> Option<Result<Value, waygate_protocol::ErrorObject>> {
    let Value::Object(mut m) = v else { return None };
    if let Some(r) = m.remove("result") {
        return Some(Ok(r));
    }
    let e = m.remove("error")?;
    serde_json::from_value(e).ok().map(Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_round_trip() {
        let ok = Ok(serde_json::json!({"action": "accept"}));
        assert_eq!(outcome_from_json(outcome_to_json(&ok)), Some(ok));
        let err = Err(waygate_protocol::ErrorObject::invalid_params("no"));
        let back = outcome_from_json(outcome_to_json(&err)).and_then(Result::err);
        assert_eq!(back.map(|e| e.code), Some(-32602));
        assert!(outcome_from_json(serde_json::json!([1])).is_none());
    }

    #[test]
    fn state_survives_json() {
        let s = SessionState {
            version: "2025-06-18".into(),
            caps: serde_json::json!({"elicitation": {}}),
            info: None,
            level: 3,
            subs: vec!["test://a".into()],
        };
        let text = serde_json::to_string(&s).unwrap_or_default();
        let back: SessionState = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{text}"));
        assert_eq!(back, s);
    }
}
