//! The `demo` plugin, on by default: a handful of useful tools, a resource and a prompt,
//! so `waygate serve` does something real out of the box.

use std::time::Duration;

use serde_json::{json, Map, Value};
use waygate_core::util::{rfc3339_now, text_result};
use waygate_core::{BoxFuture, CallContext, Invocation, Manifest, Outcome, Plugin, PluginError, PluginInit, Target};

use crate::defs::{elicit, prompt, resource, text_contents, tool_with, user_text, with};

pub struct Demo;

const README: &str = "Waygate demo plugin.\n\nTools: echo, add, now, countdown, ask_name.\nPrompt: greet.\n";

impl Plugin for Demo {
    fn name(&self) -> &str {
        "demo"
    }

    fn initialize<'a>(&'a self, _init: &'a PluginInit) -> BoxFuture<'a, Result<Manifest, PluginError>> {
        Box::pin(async {
            Ok(Manifest {
                tools: vec![
                    with(
                        tool_with(
                            "echo",
                            "Returns the given text unchanged.",
                            json!({"type":"object","properties":{"text":{"type":"string","description":"Text to echo"}},"required":["text"]}),
                        ),
                        json!({"title": "Echo", "annotations": {"readOnlyHint": true, "idempotentHint": true, "openWorldHint": false}}),
                    ),
                    with(
                        tool_with(
                            "add",
                            "Adds two numbers.",
                            json!({"type":"object","properties":{"a":{"type":"number"},"b":{"type":"number"}},"required":["a","b"]}),
                        ),
                        json!({
                            "title": "Add",
                            "outputSchema": {"type":"object","properties":{"sum":{"type":"number"}},"required":["sum"]},
                            "annotations": {"readOnlyHint": true, "idempotentHint": true, "openWorldHint": false}
                        }),
                    ),
                    with(
                        tool_with("now", "Current time in UTC (RFC 3339).", json!({"type":"object","additionalProperties":false})),
                        json!({"annotations": {"readOnlyHint": true, "openWorldHint": false}}),
                    ),
                    with(
                        tool_with(
                            "countdown",
                            "Counts down from n (max 60), one step per 100 ms, reporting progress. Runs as a task when the client supports tasks.",
                            json!({"type":"object","properties":{"n":{"type":"integer","minimum":0,"maximum":60}},"required":["n"]}),
                        ),
                        json!({"execution": {"taskSupport": "optional"}, "annotations": {"readOnlyHint": true}}),
                    ),
                    tool_with(
                        "ask_name",
                        "Asks the user for their name (elicitation) and greets them.",
                        json!({"type":"object","additionalProperties":false}),
                    ),
                ],
                resources: vec![resource("demo://readme", "readme", "Demo README", "What the demo plugin offers", "text/plain")],
                prompts: vec![prompt("greet", "Greeting", "Write a short greeting for someone", &[("name", "Who to greet", true)])],
                ..Default::default()
            })
        })
    }

    fn execute<'a>(&'a self, inv: &'a Invocation, ctx: &'a CallContext) -> BoxFuture<'a, Result<Outcome, PluginError>> {
        Box::pin(async move {
            match &inv.target {
                Target::Tool(t) => tool(t, inv, ctx).await,
                Target::Resource(uri) if uri == "demo://readme" => {
                    Ok(Outcome::Complete(text_contents(uri, "text/plain", README)))
                }
                Target::Prompt(p) if p == "greet" => {
                    let name = inv
                        .arg_str("name")
                        .ok_or_else(|| PluginError::InvalidParams("missing required argument \"name\"".into()))?;
                    Ok(Outcome::Complete(json!({
                        "description": "A short greeting",
                        "messages": [user_text(&format!("Write a short, friendly greeting for {name}."))]
                    })))
                }
                other => Err(PluginError::NotFound(format!("{other:?}"))),
            }
        })
    }
}

async fn tool(name: &str, inv: &Invocation, ctx: &CallContext) -> Result<Outcome, PluginError> {
    let a = &inv.arguments;
    match name {
        "echo" => {
            let text = a
                .get("text")
                .and_then(Value::as_str)
                .ok_or_else(|| PluginError::InvalidParams("\"text\" (string) is required".into()))?;
            Ok(Outcome::Complete(text_result(text)))
        }
        "add" => {
            let num = |k: &str| {
                a.get(k)
                    .and_then(Value::as_f64)
                    .ok_or_else(|| PluginError::InvalidParams(format!("\"{k}\" (number) is required")))
            };
            let sum = num("a")? + num("b")?;
            let structured = json!({ "sum": sum });
            Ok(Outcome::Complete(json!({
                "content": [{ "type": "text", "text": structured.to_string() }],
                "structuredContent": structured,
            })))
        }
        "now" => Ok(Outcome::Complete(text_result(rfc3339_now()))),
        "countdown" => {
            let n = a
                .get("n")
                .and_then(Value::as_u64)
                .filter(|n| *n <= 60)
                .ok_or_else(|| PluginError::InvalidParams("\"n\" must be an integer from 0 to 60".into()))?;
            for i in 0..n {
                if ctx.cancel.is_cancelled() {
                    return Err(PluginError::ToolFailed("cancelled".into()));
                }
                ctx.progress(i as f64, Some(n as f64), Some(&format!("{} left", n - i)));
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    _ = ctx.cancel.cancelled() => return Err(PluginError::ToolFailed("cancelled".into())),
                }
            }
            ctx.progress(n as f64, Some(n as f64), Some("done"));
            Ok(Outcome::Complete(text_result(format!("Counted down from {n}."))))
        }
        "ask_name" => match inv.input("name") {
            Some(answer) => {
                let action = answer.get("action").and_then(Value::as_str).unwrap_or("cancel");
                let who = answer.pointer("/content/name").and_then(Value::as_str);
                Ok(Outcome::Complete(match (action, who) {
                    ("accept", Some(n)) => text_result(format!("Hello, {n}!")),
                    _ => text_result(format!("No name given ({action}).")),
                }))
            }
            None => {
                let mut r = Map::new();
                r.insert(
                    "name".into(),
                    elicit(
                        "What is your name?",
                        json!({"name": {"type": "string", "title": "Name"}}),
                        &["name"],
                    ),
                );
                Ok(Outcome::InputRequired {
                    requests: r,
                    state: None,
                })
            }
        },
        other => Err(PluginError::NotFound(format!("tool {other}"))),
    }
}
