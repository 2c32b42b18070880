//! The `everything` plugin: the exact fixture surface the official MCP conformance suite
//! expects (the reference "everything server"), for both the handshake-era and the
//! 2026-07-28 scenarios. Enable with `waygate serve --plugin everything`.

mod fixtures;
mod mrtr;
mod tasks;

use std::time::Duration;

use serde_json::{json, Value};
use waygate_core::{
    BoxFuture, CallContext, Event, Invocation, Manifest, Outcome, Plugin, PluginError, PluginInit, Target,
};

use crate::defs::{prompt, resource, template, text_contents};

pub(crate) const IMAGE: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
pub(crate) const AUDIO: &str = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=";
const WATCHED: &str = "test://watched-resource";

#[derive(Default)]
pub struct Everything {
    events: std::sync::OnceLock<waygate_core::Events>,
}

impl Plugin for Everything {
    fn name(&self) -> &str {
        "everything"
    }

    fn initialize<'a>(&'a self, init: &'a PluginInit) -> BoxFuture<'a, Result<Manifest, PluginError>> {
        Box::pin(async move {
            if self.events.set(init.events.clone()).is_ok() {
                // The watched resource changes every 3 s, as the reference fixture says.
                let ev = init.events.clone();
                tokio::spawn(async move {
                    let mut t = tokio::time::interval(Duration::from_secs(3));
                    t.tick().await;
                    loop {
                        t.tick().await;
                        ev.emit(Event::ResourceUpdated(WATCHED.into()));
                    }
                });
            }
            let mut tools = fixtures::tools();
            tools.extend(mrtr::tools());
            tools.extend(tasks::tools());
            Ok(Manifest {
                tools,
                resources: vec![
                    resource(
                        "test://static-text",
                        "static-text",
                        "Static Text Resource",
                        "A static text resource for testing",
                        "text/plain",
                    ),
                    resource(
                        "test://static-binary",
                        "static-binary",
                        "Static Binary Resource",
                        "A static binary resource (image) for testing",
                        "image/png",
                    ),
                    resource(
                        WATCHED,
                        "watched-resource",
                        "Watched Resource",
                        "A resource that auto-updates every 3 seconds",
                        "text/plain",
                    ),
                    resource(
                        "test://stateless-static-text",
                        "Stateless Static Text",
                        "Stateless Static Text",
                        "A static text resource served on the draft path",
                        "text/plain",
                    ),
                ],
                resource_templates: vec![template(
                    "test://template/{id}/data",
                    "template",
                    "Resource Template",
                    "A resource template with parameter substitution",
                    "application/json",
                )],
                prompts: vec![
                    prompt(
                        "test_simple_prompt",
                        "Simple Test Prompt",
                        "A simple prompt without arguments",
                        &[],
                    ),
                    prompt(
                        "test_prompt_with_arguments",
                        "Prompt With Arguments",
                        "A prompt with required arguments",
                        &[
                            ("arg1", "First test argument", true),
                            ("arg2", "Second test argument", true),
                        ],
                    ),
                    prompt(
                        "test_prompt_with_embedded_resource",
                        "Prompt With Embedded Resource",
                        "A prompt that includes an embedded resource",
                        &[("resourceUri", "URI of the resource to embed", true)],
                    ),
                    prompt(
                        "test_prompt_with_image",
                        "Prompt With Image",
                        "A prompt that includes image content",
                        &[],
                    ),
                    prompt(
                        "test_input_required_result_prompt",
                        "MRTR Prompt",
                        "MRTR: prompt that requires elicitation input",
                        &[],
                    ),
                ],
                completions: true,
                instructions: None,
            })
        })
    }

    fn execute<'a>(&'a self, inv: &'a Invocation, ctx: &'a CallContext) -> BoxFuture<'a, Result<Outcome, PluginError>> {
        Box::pin(async move {
            match &inv.target {
                Target::Tool(name) => {
                    if let Some(r) = mrtr::call(name, inv, ctx, self.events.get()) {
                        return r;
                    }
                    if let Some(r) = tasks::call(name, inv, ctx).await {
                        return r;
                    }
                    fixtures::call(name, inv, ctx).await
                }
                Target::Resource(uri) => read(uri, inv),
                Target::Prompt(name) => fixtures::prompt(name, inv),
                Target::Complete { reference } => Ok(Outcome::Complete(complete(reference, &inv.arguments))),
            }
        })
    }
}

fn read(uri: &str, inv: &Invocation) -> Result<Outcome, PluginError> {
    Ok(Outcome::Complete(match uri {
        "test://static-text" => text_contents(uri, "text/plain", "This is the content of the static text resource."),
        "test://static-binary" => json!({ "contents": [{ "uri": uri, "mimeType": "image/png", "blob": IMAGE }] }),
        WATCHED => text_contents(uri, "text/plain", "Watched resource content"),
        "test://stateless-static-text" => {
            text_contents(uri, "text/plain", "Static text content from the stateless draft path.")
        }
        _ => {
            let id = inv
                .arg_str("id")
                .ok_or_else(|| PluginError::NotFound(uri.to_string()))?;
            let body = json!({ "id": id, "templateTest": true, "data": format!("Data for ID: {id}") });
            text_contents(uri, "application/json", &body.to_string())
        }
    }))
}

/// Prefix completion over a few fixed candidates per argument.
fn complete(reference: &Value, params: &Value) -> Value {
    let arg = params
        .pointer("/argument/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let prefix = params
        .pointer("/argument/value")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let candidates: &[&str] = match (reference.get("name").and_then(Value::as_str), arg) {
        (Some("test_prompt_with_arguments"), _) => &["alpha", "beta", "gamma", "delta"],
        (_, "id") => &["1", "2", "3", "42"],
        _ => &[],
    };
    let values: Vec<&str> = candidates.iter().copied().filter(|c| c.starts_with(prefix)).collect();
    json!({ "completion": { "values": values, "total": values.len(), "hasMore": false } })
}
