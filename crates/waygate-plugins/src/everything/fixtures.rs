//! Handshake-era fixtures of the conformance suite: content kinds, logging, progress,
//! errors, sampling/elicitation (as input requests the engine turns into client requests),
//! JSON Schema 2020-12 preservation, prompts.

use std::time::Duration;

use serde_json::{json, Map, Value};
use waygate_core::util::text_result;
use waygate_core::{CallContext, Invocation, Outcome, PluginError, ToolDef};

use super::{AUDIO, IMAGE};
use crate::defs::{elicit, sample, tool, tool_with, user_text};

pub(super) fn tools() -> Vec<ToolDef> {
    vec![
        tool("test_simple_text", "Tests simple text content response"),
        tool("test_image_content", "Tests image content response"),
        tool("test_audio_content", "Tests audio content response"),
        tool("test_embedded_resource", "Tests embedded resource content response"),
        tool(
            "test_multiple_content_types",
            "Tests response with multiple content types (text, image, resource)",
        ),
        tool(
            "test_tool_with_logging",
            "Tests tool that emits log messages during execution",
        ),
        tool(
            "test_tool_with_progress",
            "Tests tool that reports progress notifications",
        ),
        tool("test_error_handling", "Tests error response handling"),
        tool(
            "test_reconnection",
            "Tests SSE stream disconnection and client reconnection (SEP-1699)",
        ),
        tool_with(
            "test_sampling",
            "Tests server-initiated sampling (LLM completion request)",
            json!({"type":"object","properties":{"prompt":{"type":"string","description":"The prompt to send to the LLM"}},"required":["prompt"]}),
        ),
        tool_with(
            "test_elicitation",
            "Tests server-initiated elicitation (user input request)",
            json!({"type":"object","properties":{"message":{"type":"string","description":"The message to show the user"}},"required":["message"]}),
        ),
        tool(
            "test_elicitation_sep1034_defaults",
            "Tests elicitation with default values per SEP-1034",
        ),
        tool(
            "test_elicitation_sep1330_enums",
            "Tests elicitation with enum schema improvements per SEP-1330",
        ),
        tool_with(
            "json_schema_2020_12_tool",
            "Tool with JSON Schema 2020-12 features for conformance testing (SEP-1613)",
            json_schema_2020_12(),
        ),
        tool_with(
            "test_custom_header",
            "Echoes a region that clients mirror into the Mcp-Param-Region header (SEP-2243)",
            json!({"type":"object","properties":{"region":{"type":"string","x-mcp-header":"Region"},"query":{"type":"string"}},"required":["region"]}),
        ),
    ]
}

fn json_schema_2020_12() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {
            "address": {
                "$anchor": "addressDef",
                "type": "object",
                "properties": { "street": { "type": "string" }, "city": { "type": "string" } }
            }
        },
        "properties": {
            "name": { "type": "string" },
            "address": { "$ref": "#/$defs/address" },
            "contactMethod": { "type": "string", "enum": ["phone", "email"] },
            "phone": { "type": "string" },
            "email": { "type": "string" }
        },
        "allOf": [{ "anyOf": [{ "required": ["phone"] }, { "required": ["email"] }] }],
        "if": { "properties": { "contactMethod": { "const": "phone" } }, "required": ["contactMethod"] },
        "then": { "required": ["phone"] },
        "else": { "required": ["email"] },
        "additionalProperties": false
    })
}

fn one(key: &str, req: Value) -> Outcome {
    let mut m = Map::new();
    m.insert(key.into(), req);
    Outcome::InputRequired {
        requests: m,
        state: None,
    }
}

fn elicit_summary(prefix: &str, r: &Value) -> Outcome {
    let action = r.get("action").and_then(Value::as_str).unwrap_or("unknown");
    let content = r.get("content").cloned().unwrap_or(json!({}));
    Outcome::Complete(text_result(format!("{prefix}: action={action}, content={content}")))
}

pub(super) async fn call(name: &str, inv: &Invocation, ctx: &CallContext) -> Result<Outcome, PluginError> {
    let sleep = || tokio::time::sleep(Duration::from_millis(50));
    Ok(match name {
        "test_simple_text" => Outcome::Complete(text_result("This is a simple text response for testing.")),
        "test_image_content" => {
            Outcome::Complete(json!({ "content": [{ "type": "image", "data": IMAGE, "mimeType": "image/png" }] }))
        }
        "test_audio_content" => {
            Outcome::Complete(json!({ "content": [{ "type": "audio", "data": AUDIO, "mimeType": "audio/wav" }] }))
        }
        "test_embedded_resource" => Outcome::Complete(json!({ "content": [{ "type": "resource", "resource": {
            "uri": "test://embedded-resource", "mimeType": "text/plain", "text": "This is an embedded resource content." } }] })),
        "test_multiple_content_types" => Outcome::Complete(json!({ "content": [
            { "type": "text", "text": "Multiple content types test:" },
            { "type": "image", "data": IMAGE, "mimeType": "image/png" },
            { "type": "resource", "resource": { "uri": "test://mixed-content-resource", "mimeType": "application/json",
              "text": json!({ "test": "data", "value": 123 }).to_string() } }
        ] })),
        "test_tool_with_logging" => {
            ctx.log("info", None, json!("Tool execution started"));
            sleep().await;
            ctx.log("info", None, json!("Tool processing data"));
            sleep().await;
            ctx.log("info", None, json!("Tool execution completed"));
            Outcome::Complete(text_result("Tool with logging executed successfully"))
        }
        "test_tool_with_progress" => {
            for (i, p) in [0.0, 50.0, 100.0].into_iter().enumerate() {
                if i > 0 {
                    sleep().await;
                }
                ctx.progress(p, Some(100.0), Some(&format!("Completed step {p} of 100")));
            }
            let token = match &ctx.progress_token {
                Some(Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
                None => "0".into(),
            };
            Outcome::Complete(text_result(token))
        }
        "test_error_handling" => {
            return Err(PluginError::ToolFailed(
                "This tool intentionally returns an error for testing".into(),
            ))
        }
        "test_reconnection" => {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Outcome::Complete(text_result(
                "Reconnection test completed successfully. If you received this, the client properly reconnected after stream closure.",
            ))
        }
        "test_sampling" => match inv.input("sampling") {
            Some(r) => {
                let text = r
                    .pointer("/content/text")
                    .and_then(Value::as_str)
                    .unwrap_or("No response");
                Outcome::Complete(text_result(format!("LLM response: {text}")))
            }
            None => one("sampling", sample(inv.arg_str("prompt").unwrap_or(""), 100)),
        },
        "test_elicitation" => match inv.input("elicitation") {
            Some(r) => elicit_summary("User response", r),
            None => one(
                "elicitation",
                elicit(
                    inv.arg_str("message").unwrap_or("Please respond"),
                    json!({ "response": { "type": "string", "description": "User's response" } }),
                    &["response"],
                ),
            ),
        },
        "test_elicitation_sep1034_defaults" => match inv.input("elicitation") {
            Some(r) => elicit_summary("Elicitation completed", r),
            None => one(
                "elicitation",
                elicit(
                    "Please review and update the form fields with defaults",
                    json!({
                        "name": { "type": "string", "description": "User name", "default": "John Doe" },
                        "age": { "type": "integer", "description": "User age", "default": 30 },
                        "score": { "type": "number", "description": "User score", "default": 95.5 },
                        "status": { "type": "string", "description": "User status", "enum": ["active", "inactive", "pending"], "default": "active" },
                        "verified": { "type": "boolean", "description": "Verification status", "default": true }
                    }),
                    &[],
                ),
            ),
        },
        "test_elicitation_sep1330_enums" => match inv.input("elicitation") {
            Some(r) => elicit_summary("Elicitation completed", r),
            None => one(
                "elicitation",
                elicit(
                    "Please select options from the enum fields",
                    json!({
                        "untitledSingle": { "type": "string", "description": "Select one option", "enum": ["option1", "option2", "option3"] },
                        "titledSingle": { "type": "string", "description": "Select one option with titles", "oneOf": [
                            { "const": "value1", "title": "First Option" }, { "const": "value2", "title": "Second Option" },
                            { "const": "value3", "title": "Third Option" } ] },
                        "legacyEnum": { "type": "string", "description": "Select one option (legacy)", "enum": ["opt1", "opt2", "opt3"],
                            "enumNames": ["Option One", "Option Two", "Option Three"] },
                        "untitledMulti": { "type": "array", "description": "Select multiple options", "minItems": 1, "maxItems": 3,
                            "items": { "type": "string", "enum": ["option1", "option2", "option3"] } },
                        "titledMulti": { "type": "array", "description": "Select multiple options with titles", "minItems": 1, "maxItems": 3,
                            "items": { "anyOf": [ { "const": "value1", "title": "First Choice" }, { "const": "value2", "title": "Second Choice" },
                                { "const": "value3", "title": "Third Choice" } ] } }
                    }),
                    &[],
                ),
            ),
        },
        "json_schema_2020_12_tool" => Outcome::Complete(text_result(format!(
            "JSON Schema 2020-12 tool called with: {}",
            inv.arguments
        ))),
        "test_custom_header" => {
            let region = inv
                .arg_str("region")
                .ok_or_else(|| PluginError::InvalidParams("\"region\" (string) is required".into()))?;
            Outcome::Complete(text_result(format!("region={region}")))
        }
        other => return Err(PluginError::NotFound(format!("tool {other}"))),
    })
}

pub(super) fn prompt(name: &str, inv: &Invocation) -> Result<Outcome, PluginError> {
    let need = |k: &str| {
        inv.arg_str(k)
            .ok_or_else(|| PluginError::InvalidParams(format!("missing required argument {k:?}")))
    };
    Ok(Outcome::Complete(match name {
        "test_simple_prompt" => json!({ "messages": [user_text("This is a simple prompt for testing.")] }),
        "test_prompt_with_arguments" => {
            let (a1, a2) = (need("arg1")?, need("arg2")?);
            json!({ "messages": [user_text(&format!("Prompt with arguments: arg1='{a1}', arg2='{a2}'"))] })
        }
        "test_prompt_with_embedded_resource" => {
            let uri = need("resourceUri")?;
            json!({ "messages": [
                { "role": "user", "content": { "type": "resource", "resource": {
                    "uri": uri, "mimeType": "text/plain", "text": "Embedded resource content for testing." } } },
                user_text("Please process the embedded resource above.")
            ] })
        }
        "test_prompt_with_image" => json!({ "messages": [
            { "role": "user", "content": { "type": "image", "data": IMAGE, "mimeType": "image/png" } },
            user_text("Please analyze the image above.")
        ] }),
        "test_input_required_result_prompt" => match inv.input("user_context") {
            Some(r) => {
                let c = r
                    .pointer("/content/context")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown");
                json!({ "messages": [user_text(&format!("Prompt with context: {c}"))] })
            }
            None => {
                return Ok(one(
                    "user_context",
                    elicit(
                        "What context should the prompt use?",
                        json!({ "context": { "type": "string" } }),
                        &["context"],
                    ),
                ))
            }
        },
        other => return Err(PluginError::NotFound(format!("prompt {other}"))),
    }))
}
