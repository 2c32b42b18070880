//! 2026-07-28 fixtures: multi round-trip requests (`input_required`), capability checks,
//! request-scoped logging and progress, and the list-change triggers for listen streams.

use serde_json::{json, Map, Value};
use waygate_core::util::text_result;
use waygate_core::{CallContext, Event, Events, Invocation, Outcome, PluginError, ToolDef};

use crate::defs::{elicit, roots, sample, tool};

pub(super) fn tools() -> Vec<ToolDef> {
    vec![
        tool("test_missing_capability", "Test tool requiring sampling"),
        tool(
            "test_input_required_result_elicitation",
            "MRTR: returns InputRequiredResult with elicitation request",
        ),
        tool(
            "test_input_required_result_sampling",
            "MRTR: returns InputRequiredResult with sampling request",
        ),
        tool(
            "test_input_required_result_list_roots",
            "MRTR: returns InputRequiredResult with roots/list request",
        ),
        tool(
            "test_input_required_result_request_state",
            "MRTR: returns InputRequiredResult with requestState",
        ),
        tool(
            "test_input_required_result_multiple_inputs",
            "MRTR: returns InputRequiredResult with multiple input requests",
        ),
        tool(
            "test_input_required_result_multi_round",
            "MRTR: multi-round InputRequiredResult workflow",
        ),
        tool(
            "test_input_required_result_tampered_state",
            "MRTR: HMAC-signed requestState integrity test",
        ),
        tool(
            "test_input_required_result_capabilities",
            "MRTR: respects client capabilities in inputRequests",
        ),
        tool(
            "test_streaming_elicitation",
            "Diagnostic tool validating response progress streams",
        ),
        tool("test_logging_tool", "Diagnostic logging validator tool"),
        tool(
            "test_trigger_tool_change",
            "Announces a tools list change to open listen streams",
        ),
        tool(
            "test_trigger_prompt_change",
            "Announces a prompts list change to open listen streams",
        ),
    ]
}

fn ask(pairs: Vec<(&str, Value)>, state: Option<Value>) -> Outcome {
    let requests: Map<String, Value> = pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    Outcome::InputRequired { requests, state }
}

fn field<'a>(inv: &'a Invocation, key: &str, field: &str) -> &'a str {
    inv.input(key)
        .and_then(|r| r.get("content"))
        .and_then(|c| c.get(field))
        .and_then(Value::as_str)
        .unwrap_or("unknown")
}

fn name_request(msg: &str) -> Value {
    elicit(msg, json!({ "name": { "type": "string" } }), &["name"])
}

fn confirm_request() -> Value {
    elicit("Please confirm", json!({ "ok": { "type": "boolean" } }), &["ok"])
}

fn root_count(inv: &Invocation, key: &str) -> usize {
    inv.input(key)
        .and_then(|r| r.get("roots"))
        .and_then(Value::as_array)
        .map_or(0, Vec::len)
}

/// `None` when `name` is not one of these fixtures.
pub(super) fn call(
    name: &str,
    inv: &Invocation,
    ctx: &CallContext,
    events: Option<&Events>,
) -> Option<Result<Outcome, PluginError>> {
    let state_kind = inv.state.as_ref().and_then(|s| s.get("kind")).and_then(Value::as_str);
    Some(Ok(match name {
        "test_missing_capability" => {
            if !ctx.has_capability("sampling") {
                return Some(Err(PluginError::MissingCapability(json!({ "sampling": {} }))));
            }
            Outcome::Complete(text_result("Success"))
        }
        "test_input_required_result_elicitation" => match inv.input("user_name") {
            Some(_) => Outcome::Complete(text_result(format!("Hello, {}!", field(inv, "user_name", "name")))),
            None => ask(vec![("user_name", name_request("What is your name?"))], None),
        },
        "test_input_required_result_sampling" => match inv.input("sample_request") {
            Some(r) => {
                let text = r
                    .pointer("/content/text")
                    .and_then(Value::as_str)
                    .unwrap_or("no response");
                Outcome::Complete(text_result(format!("Sampling result: {text}")))
            }
            None => ask(
                vec![("sample_request", sample("What is the capital of France?", 100))],
                None,
            ),
        },
        "test_input_required_result_list_roots" => match inv.input("roots_request") {
            Some(_) => Outcome::Complete(text_result(format!(
                "Found {} root(s)",
                root_count(inv, "roots_request")
            ))),
            None => ask(vec![("roots_request", roots())], None),
        },
        "test_input_required_result_request_state" => {
            let ok = inv
                .input("confirm")
                .and_then(|r| r.pointer("/content/ok"))
                .and_then(Value::as_bool)
                == Some(true);
            if state_kind == Some("request-state") && ok {
                Outcome::Complete(text_result("state-ok: requestState validated"))
            } else {
                ask(
                    vec![("confirm", confirm_request())],
                    Some(json!({ "kind": "request-state" })),
                )
            }
        }
        "test_input_required_result_multiple_inputs" => {
            let all = ["user_name", "greeting", "client_roots"]
                .iter()
                .all(|k| inv.input(k).is_some());
            if state_kind == Some("multiple-inputs") && all {
                let greeting = inv
                    .input("greeting")
                    .and_then(|r| r.pointer("/content/text"))
                    .and_then(Value::as_str)
                    .unwrap_or("Hello there!");
                Outcome::Complete(text_result(format!(
                    "Name: {}; Greeting: {greeting}; Roots: {}",
                    field(inv, "user_name", "name"),
                    root_count(inv, "client_roots")
                )))
            } else {
                ask(
                    vec![
                        ("user_name", name_request("What is your name?")),
                        ("greeting", sample("Generate a greeting", 50)),
                        ("client_roots", roots()),
                    ],
                    Some(json!({ "kind": "multiple-inputs" })),
                )
            }
        }
        "test_input_required_result_multi_round" => {
            let round = inv.state.as_ref().and_then(|s| s.get("round")).and_then(Value::as_u64);
            let step1 = || {
                ask(
                    vec![("step1", name_request("Step 1: What is your name?"))],
                    Some(json!({ "round": 1 })),
                )
            };
            match round {
                Some(1) if inv.input("step1").is_some() => ask(
                    vec![(
                        "step2",
                        elicit(
                            "Step 2: What is your favorite color?",
                            json!({ "color": { "type": "string" } }),
                            &["color"],
                        ),
                    )],
                    Some(json!({ "round": 2, "name": field(inv, "step1", "name") })),
                ),
                Some(2) if inv.input("step2").is_some() => {
                    let who = inv
                        .state
                        .as_ref()
                        .and_then(|s| s.get("name"))
                        .and_then(Value::as_str)
                        .unwrap_or("friend");
                    Outcome::Complete(text_result(format!(
                        "Multi-round complete for {who} who likes {}",
                        field(inv, "step2", "color")
                    )))
                }
                _ => step1(),
            }
        }
        "test_input_required_result_tampered_state" => {
            // The engine has already verified the seal; a tampered state never gets here.
            if state_kind == Some("tamper-test") && inv.input("confirm").is_some() {
                Outcome::Complete(text_result("integrity-ok: state verified"))
            } else {
                ask(
                    vec![("confirm", confirm_request())],
                    Some(json!({ "kind": "tamper-test" })),
                )
            }
        }
        "test_input_required_result_capabilities" => {
            if let Some(r) = inv.input_responses.as_ref().filter(|r| !r.is_empty()) {
                let keys: Vec<&str> = r.keys().map(String::as_str).collect();
                return Some(Ok(Outcome::Complete(text_result(format!(
                    "capabilities-ok: received {}",
                    keys.join(",")
                )))));
            }
            let mut reqs = Vec::new();
            if ctx.has_capability("elicitation") {
                reqs.push((
                    "elicit_input",
                    elicit(
                        "Elicitation input",
                        json!({ "value": { "type": "string" } }),
                        &["value"],
                    ),
                ));
            }
            if ctx.has_capability("sampling") {
                reqs.push(("sample_input", sample("Sample request", 50)));
            }
            if reqs.is_empty() {
                Outcome::Complete(text_result("No supported capabilities declared"))
            } else {
                ask(reqs, Some(json!({ "kind": "capabilities-test" })))
            }
        }
        "test_streaming_elicitation" => {
            ctx.progress(50.0, Some(100.0), Some("halfway"));
            Outcome::Complete(text_result("Streaming complete"))
        }
        "test_logging_tool" => {
            ctx.log("info", Some("everything"), json!("Diagnostic trace logging activated"));
            Outcome::Complete(text_result("Logging evaluated"))
        }
        "test_trigger_tool_change" | "test_trigger_prompt_change" => {
            if let Some(ev) = events {
                ev.emit(if name == "test_trigger_tool_change" {
                    Event::ToolsChanged
                } else {
                    Event::PromptsChanged
                });
            }
            Outcome::Complete(text_result("Mutation triggered"))
        }
        _ => return None,
    }))
}
