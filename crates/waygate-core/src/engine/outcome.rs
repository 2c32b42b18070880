//! How a request ended ("ok", "tool_error", "input_required", "task", "error"), for
//! metrics, spans and audit rows.

use serde_json::Value;
use waygate_protocol::{ErrorObject, Reply};

/// How a request ended, for metrics, spans and audit; a forwarded text is read at its top
/// level only.
pub(crate) fn outcome_of_reply(result: &Result<Reply, ErrorObject>) -> &'static str {
    match result {
        Ok(Reply::Raw(text)) => waygate_protocol::raw::Probe::outcome(text),
        Ok(Reply::Value(v)) => outcome_of_value(v),
        Err(_) => "error",
    }
}

fn outcome_of_value(v: &Value) -> &'static str {
    if v.get("isError").and_then(Value::as_bool) == Some(true) {
        return "tool_error";
    }
    match v.get("resultType").and_then(Value::as_str) {
        Some("input_required") => "input_required",
        Some("task") => "task",
        _ if v.get("task").is_some() => "task",
        _ => "ok",
    }
}

/// Position of an outcome in [`crate::metrics::OUTCOMES`] (tasks count as ok).
pub(crate) fn outcome_index(outcome: &str) -> usize {
    match outcome {
        "tool_error" => 1,
        "input_required" => 2,
        "error" => 3,
        _ => 0,
    }
}
