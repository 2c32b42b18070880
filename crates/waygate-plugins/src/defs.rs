//! Terse constructors for manifest entries, so plugin code reads like a table.

use serde_json::{json, Value};
use waygate_core::{PromptDef, ResourceDef, ResourceTemplateDef, ToolDef};

/// A tool taking no arguments.
pub fn tool(name: &str, description: &str) -> ToolDef {
    tool_with(name, description, json!({ "type": "object", "properties": {} }))
}

pub fn tool_with(name: &str, description: &str, input_schema: Value) -> ToolDef {
    ToolDef::new(json!({ "name": name, "description": description, "inputSchema": input_schema }))
}

/// Add fields (title, annotations, outputSchema, execution, …) to a tool.
pub fn with(t: ToolDef, extra: Value) -> ToolDef {
    let mut def = t.definition();
    if let (Some(d), Some(e)) = (def.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            d.insert(k.clone(), v.clone());
        }
    }
    ToolDef::new(def)
}

pub fn resource(uri: &str, name: &str, title: &str, description: &str, mime: &str) -> ResourceDef {
    ResourceDef {
        definition: json!({ "uri": uri, "name": name, "title": title, "description": description, "mimeType": mime }),
    }
}

pub fn template(uri_template: &str, name: &str, title: &str, description: &str, mime: &str) -> ResourceTemplateDef {
    ResourceTemplateDef {
        definition: json!({ "uriTemplate": uri_template, "name": name, "title": title, "description": description, "mimeType": mime }),
    }
}

/// A prompt; `args` are `(name, description, required)`.
pub fn prompt(name: &str, title: &str, description: &str, args: &[(&str, &str, bool)]) -> PromptDef {
    let mut d = json!({ "name": name, "title": title, "description": description });
    if !args.is_empty() {
        d["arguments"] = args
            .iter()
            .map(|(n, desc, req)| json!({ "name": n, "description": desc, "required": req }))
            .collect();
    }
    PromptDef { definition: d }
}

/// `{uri, mimeType, text}` contents of a text resource read.
pub fn text_contents(uri: &str, mime: &str, text: &str) -> Value {
    json!({ "contents": [{ "uri": uri, "mimeType": mime, "text": text }] })
}

/// A one-message prompt result.
pub fn user_text(text: &str) -> Value {
    json!({ "role": "user", "content": { "type": "text", "text": text } })
}

/// An elicitation input request for a form with the given properties and required keys.
pub fn elicit(message: &str, properties: Value, required: &[&str]) -> Value {
    json!({
        "method": "elicitation/create",
        "params": {
            "message": message,
            "requestedSchema": { "type": "object", "properties": properties, "required": required }
        }
    })
}

/// A sampling input request with one user message.
pub fn sample(text: &str, max_tokens: u32) -> Value {
    json!({
        "method": "sampling/createMessage",
        "params": { "messages": [{ "role": "user", "content": { "type": "text", "text": text } }], "maxTokens": max_tokens }
    })
}

pub fn roots() -> Value {
    json!({ "method": "roots/list", "params": {} })
}
