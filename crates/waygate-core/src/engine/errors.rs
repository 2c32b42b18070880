//! How plugin failures become what each revision expects (an `isError` result or a
//! JSON-RPC error), and which client capabilities an input request needs.

use serde_json::{json, Map, Value};
use waygate_protocol::{codes, methods, ErrorObject, ProtocolVersion};

use super::calls::Kind;
use crate::plugin::PluginError;
use crate::util::error_result;

pub(super) fn not_found_resource(uri: &str, version: ProtocolVersion) -> ErrorObject {
    let code = if version.is_modern() {
        codes::INVALID_PARAMS
    } else {
        codes::RESOURCE_NOT_FOUND
    };
    ErrorObject::new(code, format!("Resource not found: {uri}")).with_data(json!({ "uri": uri }))
}

/// A tool failure the model can read becomes an `isError` result; everything else an error.
pub(super) fn tool_error_or(
    kind: Kind,
    e: PluginError,
    version: ProtocolVersion,
    name: &str,
) -> Result<Value, ErrorObject> {
    match (kind, e) {
        // Since 2025-11-25 argument validation failures are tool errors the model can fix.
        (Kind::Tool, PluginError::ToolFailed(msg)) | (Kind::Tool, PluginError::InvalidParams(msg)) => {
            Ok(error_result(msg))
        }
        (Kind::Tool, PluginError::MissingCapability(c)) if !version.is_modern() => Ok(error_result(format!(
            "this tool needs a client capability the client did not declare: {c}"
        ))),
        (kind, e) => Err(map_error(kind, e, version, name)),
    }
}

pub(crate) fn map_error(kind: Kind, e: PluginError, version: ProtocolVersion, name: &str) -> ErrorObject {
    match e {
        PluginError::NotFound(what) if kind == Kind::Resource => {
            let mut err = not_found_resource(name, version);
            if !what.is_empty() && what != name {
                err.message = format!("Resource not found: {name} ({what})");
            }
            err
        }
        PluginError::NotFound(what) => ErrorObject::invalid_params(format!("Not found: {what}")),
        PluginError::InvalidParams(m) => ErrorObject::invalid_params(format!("Invalid params: {m}")),
        PluginError::MissingCapability(c) => {
            if version.is_modern() {
                ErrorObject::missing_capability(c)
            } else {
                ErrorObject::invalid_request(format!("the client did not declare a required capability: {c}"))
            }
        }
        PluginError::ToolFailed(m) | PluginError::Internal(m) => ErrorObject::internal(m),
    }
}

/// The capabilities the embedded input requests need that the client did not declare.
pub(super) fn missing_capabilities(caps: &Value, requests: &Map<String, Value>) -> Option<Value> {
    let mut missing = Map::new();
    for req in requests.values() {
        let m = req.get("method").and_then(Value::as_str).unwrap_or_default();
        let p = req.get("params");
        match m {
            methods::ELICITATION_CREATE => {
                let url_mode = p.and_then(|p| p.get("mode")).and_then(Value::as_str) == Some("url");
                let e = caps.get("elicitation");
                let ok = match (e, url_mode) {
                    (None, _) => false,
                    (Some(e), true) => e.get("url").is_some(),
                    // `elicitation: {}` means form only; `{url: {}}` alone means URL only.
                    (Some(e), false) => e.get("form").is_some() || e.get("url").is_none(),
                };
                if !ok {
                    missing.insert(
                        "elicitation".into(),
                        if url_mode {
                            json!({"url": {}})
                        } else {
                            json!({"form": {}})
                        },
                    );
                }
            }
            methods::SAMPLING_CREATE => {
                let needs_tools = p.is_some_and(|p| p.get("tools").is_some());
                match caps.get("sampling") {
                    None => {
                        missing.insert(
                            "sampling".into(),
                            if needs_tools { json!({"tools": {}}) } else { json!({}) },
                        );
                    }
                    Some(s) if needs_tools && s.get("tools").is_none() => {
                        missing.insert("sampling".into(), json!({"tools": {}}));
                    }
                    _ => {}
                }
            }
            methods::ROOTS_LIST if caps.get("roots").is_none() => {
                missing.insert("roots".into(), json!({}));
            }
            _ => {}
        }
    }
    (!missing.is_empty()).then_some(Value::Object(missing))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_checks() {
        let reqs: Map<String, Value> = serde_json::from_value(json!({
            "a": {"method": "elicitation/create", "params": {"message": "x"}},
            "b": {"method": "roots/list"}
        }))
        .unwrap();
        assert_eq!(
            missing_capabilities(&json!({"elicitation": {}, "roots": {}}), &reqs),
            None
        );
        assert_eq!(
            missing_capabilities(&json!({"elicitation": {}}), &reqs),
            Some(json!({"roots": {}}))
        );
        assert_eq!(
            missing_capabilities(&json!({"elicitation": {"url": {}}, "roots": {}}), &reqs),
            Some(json!({"elicitation": {"form": {}}}))
        );
    }
}
