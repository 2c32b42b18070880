//! What an upstream offers, turned into the manifest the catalog is built from.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Value};
use waygate_core::plugin::{PromptDef, ResourceDef, ResourceTemplateDef, ToolDef};
use waygate_core::Manifest;

use crate::client::Client;
use crate::error::UpstreamError;

/// What a forwarded call needs to know about the upstream's tools beyond their listing.
#[derive(Default)]
pub(crate) struct ToolNotes {
    /// Tools it runs only as tasks (`execution.taskSupport: "required"`), which the gateway
    /// must call as tasks.
    pub task_only: HashSet<String>,
    /// Arguments a stateless HTTP request must mirror in `Mcp-Param-*` headers
    /// (`x-mcp-header`), per tool: `(header suffix, property)`.
    pub header_params: HashMap<String, Vec<(String, String)>>,
}

/// What the server offers, as a plugin manifest (tools that cannot be served are skipped
/// and logged, not fatal), and the [`ToolNotes`] its calls need.
pub(crate) async fn manifest(c: &Client, upstream: &str) -> Result<(Manifest, ToolNotes), UpstreamError> {
    let mut notes = ToolNotes::default();
    let mut m = Manifest {
        instructions: c.instructions.clone(),
        ..Manifest::default()
    };
    if c.offers("tools") {
        for t in c.list_all("tools/list", "tools").await? {
            match admit_tool(t) {
                Ok(def) => {
                    let name = def["name"].as_str().unwrap_or_default().to_string();
                    let headers = waygate_core::catalog::header_params(&def);
                    if !headers.is_empty() {
                        notes.header_params.insert(name.clone(), headers);
                    }
                    if def.pointer("/execution/taskSupport").and_then(Value::as_str) == Some("required") {
                        notes.task_only.insert(name);
                    }
                    m.tools.push(ToolDef::new(def))
                }
                Err(why) => tracing::warn!(upstream = %upstream, %why, "upstream tool skipped"),
            }
        }
    }
    if c.offers("resources") {
        m.resources = named(c.list_all("resources/list", "resources").await?, "uri")
            .map(|definition| ResourceDef { definition })
            .collect();
        // Templates are optional even for servers that offer resources.
        if let Ok(t) = c.list_all("resources/templates/list", "resourceTemplates").await {
            m.resource_templates = named(t, "uriTemplate")
                .map(|definition| ResourceTemplateDef { definition })
                .collect();
        }
    }
    if c.offers("prompts") {
        m.prompts = named(c.list_all("prompts/list", "prompts").await?, "name")
            .map(|definition| PromptDef { definition })
            .collect();
    }
    m.completions = c.offers("completions");
    Ok((m, notes))
}

/// Items whose `key` is a non-empty string (a malformed entry is dropped, not fatal).
fn named(items: Vec<Value>, key: &'static str) -> impl Iterator<Item = Value> {
    items
        .into_iter()
        .filter(move |v| v.get(key).and_then(Value::as_str).is_some_and(|s| !s.is_empty()))
}

/// A tool definition the catalog can serve: a sane name and an object input schema.
fn admit_tool(mut t: Value) -> Result<Value, String> {
    let name = t.get("name").and_then(Value::as_str).ok_or("a tool without a name")?;
    if name.is_empty() || name.len() > 128 || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("tool name {name:?} is not a valid MCP tool name"));
    }
    if !t.get("inputSchema").is_some_and(Value::is_object) {
        t["inputSchema"] = json!({"type": "object"});
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_servable_tool_definitions_are_admitted() {
        let ok = admit_tool(json!({"name": "search", "description": "d", "x-extra": 1})).unwrap();
        assert_eq!(
            ok["inputSchema"],
            json!({"type": "object"}),
            "a missing schema becomes an empty object schema"
        );
        assert_eq!(ok["x-extra"], 1, "unknown fields pass through");
        for bad in [
            json!({"description": "no name"}),
            json!({"name": ""}),
            json!({"name": "has space"}),
            json!({"name": "line\nbreak"}),
            json!({"name": "x".repeat(129)}),
            json!({"name": 42}),
        ] {
            assert!(admit_tool(bad.clone()).is_err(), "{bad}");
        }
        let kept: Vec<Value> = named(vec![json!({"uri": "a://b"}), json!({"uri": ""}), json!({})], "uri").collect();
        assert_eq!(kept, vec![json!({"uri": "a://b"})]);
    }
}
