//! A tool the upstream runs only as a task (`execution.taskSupport: "required"`): the
//! gateway asks for a task and waits for its outcome with `tasks/result`, so to the engine
//! it is one call like any other — which the engine in turn runs as a task for its caller
//! when the caller wants one.
//!
//! Why not pass the upstream's task through: the caller's task must outlive a reconnect,
//! be owned by the caller's principal and answer `tasks/get` from any replica; the
//! gateway's own task store does all of that, so the upstream's task stays an
//! implementation detail of one forwarded call. What it costs: the call holds a slot of the
//! upstream's concurrency cap while the task runs, and `timeout_secs` bounds the whole task.

use serde_json::value::RawValue;
use serde_json::{json, Value};
use waygate_protocol::raw::{minify, Fields, ObjectWriter};

use crate::client::{Client, RequestOpts};
use crate::error::UpstreamError;
use crate::inbound::Answer;

/// `_meta` key a 2025-11-25 server puts on a task's result; it names the upstream's task,
/// which means nothing to the gateway's caller.
const RELATED_TASK: &str = "io.modelcontextprotocol/related-task";

/// Whether this connection can run `tools/call` as a task (2025-11-25 capabilities).
pub(crate) fn offered(c: &Client) -> bool {
    !c.is_modern()
        && c.capabilities
            .pointer("/tasks/requests/tools/call")
            .is_some_and(|v| !v.is_null())
}

/// `tools/call` as a task, then `tasks/result` until it ends. A server that answers the
/// first request with a plain result (it ran the tool at once) is taken at its word.
/// A task that ends in a JSON-RPC error failed as a whole ([`UpstreamError::TaskFailed`]),
/// which is not the tool reporting an error. `started` is cancelled once the upstream has
/// created its task (it asks before that, if at all — the questions reach the caller before
/// a task of the caller's exists).
pub(crate) async fn run(
    client: &Client,
    mut params: Value,
    opts: RequestOpts,
    started: Option<tokio_util::sync::CancellationToken>,
) -> Answer {
    params["task"] = json!({});
    let first = RequestOpts {
        timeout: opts.timeout,
        trace: opts.trace.clone(),
        link: opts.link.clone(),
        deadline: opts.deadline.clone(),
        caller: opts.caller.clone(),
        cancel: opts.cancel.clone(),
        headers: opts.headers.clone(),
        stateless: false,
    };
    let created = client.request_raw("tools/call", params, first).await?;
    let Some(task_id) = task_id_of(&created) else {
        return Ok(created);
    };
    if let Some(s) = started {
        s.cancel();
    }
    let cancel = opts.cancel.clone();
    match client
        .request_raw("tasks/result", json!({ "taskId": task_id }), opts)
        .await
    {
        Ok(raw) => Ok(without_related_task(raw)),
        Err(UpstreamError::Rpc { code, message, data }) => Err(UpstreamError::TaskFailed { code, message, data }),
        Err(e) => {
            // The caller gave up or the wait timed out: the task would run on upstream.
            if cancel.is_some_and(|c| c.is_cancelled()) || matches!(e, UpstreamError::Timeout(_)) {
                let _ = tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    client.request_raw("tasks/cancel", json!({ "taskId": task_id }), RequestOpts::default()),
                )
                .await;
            }
            Err(e)
        }
    }
}

/// The task id of a `CreateTaskResult` (`{"task": {"taskId": …}}`); `None` for anything else.
fn task_id_of(raw: &RawValue) -> Option<String> {
    let v: Value = serde_json::from_str(raw.get()).ok()?;
    v.pointer("/task/taskId").and_then(Value::as_str).map(str::to_string)
}

/// The result without the upstream's related-task marker; every other member is kept as
/// the server wrote it (only `_meta` is rewritten, and dropped when nothing else is in it).
fn without_related_task(raw: Box<RawValue>) -> Box<RawValue> {
    if !raw.get().contains(RELATED_TASK) {
        return raw;
    }
    let Ok(top) = Fields::parse(raw.get()) else {
        return raw;
    };
    let mut out = ObjectWriter::with_capacity(raw.get().len());
    for (k, v) in &top.0 {
        if k.0 != "_meta" {
            out.member(&k.0, &minify(v.get()));
            continue;
        }
        let Ok(mut meta) = serde_json::from_str::<serde_json::Map<String, Value>>(v.get()) else {
            out.member(&k.0, &minify(v.get()));
            continue;
        };
        meta.remove(RELATED_TASK);
        if !meta.is_empty() {
            out.member("_meta", &Value::Object(meta).to_string());
        }
    }
    RawValue::from_string(out.finish()).unwrap_or(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_string()).unwrap()
    }

    #[test]
    fn a_created_task_is_told_from_a_plain_result() {
        assert_eq!(
            task_id_of(&raw(r#"{"task":{"taskId":"t1","status":"working"}}"#)).as_deref(),
            Some("t1")
        );
        assert_eq!(task_id_of(&raw(r#"{"content":[],"isError":false}"#)), None);
        assert_eq!(task_id_of(&raw(r#"{"task":{"status":"working"}}"#)), None);
    }

    #[test]
    fn the_upstreams_task_marker_is_dropped_and_nothing_else() {
        let r = without_related_task(raw(
            r#"{"content":[{"type":"text","text":"x"}],"_meta":{"io.modelcontextprotocol/related-task":{"taskId":"t1"}}}"#,
        ));
        assert_eq!(r.get(), r#"{"content":[{"type":"text","text":"x"}]}"#);
        let r = without_related_task(raw(
            r#"{"isError":true,"_meta":{"io.modelcontextprotocol/related-task":{"taskId":"t1"},"k":1}}"#,
        ));
        assert_eq!(r.get(), r#"{"isError":true,"_meta":{"k":1}}"#);
        let kept = r#"{"b":1, "a":2}"#;
        assert_eq!(without_related_task(raw(kept)).get(), kept);
    }
}
