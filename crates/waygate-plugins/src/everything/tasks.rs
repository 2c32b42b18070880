//! Fixtures of the tasks extension scenarios (`io.modelcontextprotocol/tasks`): a sync
//! tool, task-capable tools that sleep, fail, break, or park for input.

use std::time::Duration;

use serde_json::{json, Map, Value};
use waygate_core::util::text_result;
use waygate_core::{CallContext, Invocation, Outcome, PluginError, ToolDef};

use crate::defs::{elicit, tool, tool_with, with};

fn task_tool(t: ToolDef, support: &str) -> ToolDef {
    with(t, json!({ "execution": { "taskSupport": support } }))
}

pub(super) fn tools() -> Vec<ToolDef> {
    vec![
        tool_with(
            "greet",
            "Sync-only greeting",
            json!({"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}),
        ),
        task_tool(
            tool_with(
                "slow_compute",
                "Sleeps `seconds` then returns; runs as a task",
                json!({"type":"object","properties":{"seconds":{"type":"number","minimum":0,"maximum":60},"label":{"type":"string"}}}),
            ),
            "optional",
        ),
        task_tool(
            tool(
                "failing_job",
                "Returns a tool execution error after about a second; task only",
            ),
            "required",
        ),
        task_tool(
            tool("protocol_error_job", "Fails with a protocol (JSON-RPC) error"),
            "optional",
        ),
        task_tool(
            tool_with(
                "confirm_delete",
                "Asks for confirmation, then 'deletes' a file",
                json!({"type":"object","properties":{"filename":{"type":"string"}}}),
            ),
            "optional",
        ),
        task_tool(tool("multi_input", "Asks two questions at once"), "optional"),
        task_tool(
            tool(
                "test_tool_with_task",
                "Asks for a name, then finishes the work as a task",
            ),
            "required",
        ),
    ]
}

fn confirm(msg: &str) -> Value {
    elicit(msg, json!({ "confirm": { "type": "boolean" } }), &["confirm"])
}

pub(super) async fn call(name: &str, inv: &Invocation, ctx: &CallContext) -> Option<Result<Outcome, PluginError>> {
    let nap = |ms: u64| tokio::time::sleep(Duration::from_millis(ms));
    Some(Ok(match name {
        "greet" => Outcome::Complete(text_result(format!(
            "Hello, {}!",
            inv.arg_str("name").unwrap_or("World")
        ))),
        "slow_compute" => {
            let secs = inv
                .arguments
                .get("seconds")
                .and_then(Value::as_f64)
                .unwrap_or(1.0)
                .clamp(0.0, 60.0);
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs_f64(secs)) => {}
                _ = ctx.cancel.cancelled() => return Some(Err(PluginError::ToolFailed("cancelled".into()))),
            }
            let label = inv.arg_str("label").unwrap_or("compute");
            Outcome::Complete(json!({
                "content": [{ "type": "text", "text": format!("{label}: done after {secs} s") }],
                "structuredContent": { "label": label, "seconds": secs }
            }))
        }
        "failing_job" => {
            nap(1000).await;
            return Some(Err(PluginError::ToolFailed("failing_job always fails".into())));
        }
        "protocol_error_job" => {
            nap(10).await;
            return Some(Err(PluginError::Internal("protocol_error_job broke on purpose".into())));
        }
        "confirm_delete" => {
            // Work happens before the question, so the call becomes a task first.
            tokio::task::yield_now().await;
            let file = inv.arg_str("filename").unwrap_or("file");
            match inv.input("confirm") {
                Some(r) if r.pointer("/content/confirm").and_then(Value::as_bool) == Some(true) => {
                    Outcome::Complete(text_result(format!("Deleted {file}")))
                }
                Some(_) => Outcome::Complete(text_result(format!("Kept {file}"))),
                None => {
                    let mut m = Map::new();
                    m.insert("confirm".into(), confirm(&format!("Delete {file}?")));
                    Outcome::InputRequired {
                        requests: m,
                        state: None,
                    }
                }
            }
        }
        "multi_input" => {
            tokio::task::yield_now().await;
            match (inv.input("first"), inv.input("second")) {
                (Some(a), Some(b)) => Outcome::Complete(text_result(format!(
                    "first={}, second={}",
                    a.pointer("/content/name").and_then(Value::as_str).unwrap_or("?"),
                    b.pointer("/content/name").and_then(Value::as_str).unwrap_or("?")
                ))),
                _ => {
                    let ask = |m: &str| {
                        elicit(
                            m,
                            json!({ "name": { "type": "string" }, "confirm": { "type": "boolean" } }),
                            &[],
                        )
                    };
                    let mut m = Map::new();
                    m.insert("first".into(), ask("First question"));
                    m.insert("second".into(), ask("Second question"));
                    Outcome::InputRequired {
                        requests: m,
                        state: None,
                    }
                }
            }
        }
        "test_tool_with_task" => match inv.input("user_name") {
            Some(r) => {
                nap(200).await;
                let who = r.pointer("/content/name").and_then(Value::as_str).unwrap_or("unknown");
                Outcome::Complete(text_result(format!("Task finished for user_name={who}")))
            }
            None => {
                let mut m = Map::new();
                m.insert(
                    "user_name".into(),
                    elicit("What is your name?", json!({ "name": { "type": "string" } }), &["name"]),
                );
                Outcome::InputRequired {
                    requests: m,
                    state: None,
                }
            }
        },
        _ => return None,
    }))
}
