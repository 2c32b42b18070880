//! What a forwarded request carries besides the caller's message: the HTTP headers (the
//! caller's correlation id, the client headers the upstream asked for, the mirrored
//! `Mcp-Param-*` arguments) and the params tree where the gateway must build one.

use serde_json::Value;
use waygate_core::CallContext;

use super::{Shared, Wiring};

/// Never forwarded from a client, whatever `passthrough_headers` says: they belong to the
/// gateway's own connection and session with the upstream.
const NOT_FORWARDED: [&str; 10] = [
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "accept",
    "mcp-session-id",
    "mcp-protocol-version",
    "traceparent",
    "tracestate",
];

impl Shared {
    /// `Mcp-Param-*` headers for the arguments the tool's schema says a stateless HTTP
    /// request mirrors (`x-mcp-header`); the server checks them against the body.
    pub(super) fn mirror_params(&self, tool: &str, args: &Value, out: &mut Vec<(Box<str>, Box<str>)>) {
        let notes = self.tool_notes.read().unwrap_or_else(|e| e.into_inner());
        for (header, prop) in notes.header_params.get(tool).into_iter().flatten() {
            let value = match args.get(prop) {
                Some(Value::String(s)) => waygate_protocol::headers::encode_value(s).into_owned(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(Value::Number(n)) => n.to_string(),
                _ => continue,
            };
            out.push((format!("mcp-param-{header}").into(), value.into()));
        }
    }

    /// HTTP headers for a forwarded request: the caller's correlation id (so the upstream's
    /// logs and audit carry the same id) and the client headers this upstream asked for.
    pub(super) fn forwarded(&self, ctx: &CallContext) -> Vec<(Box<str>, Box<str>)> {
        if let Wiring::Stdio(_) = self.spec.wiring {
            return Vec::new();
        }
        let mut out: Vec<(Box<str>, Box<str>)> = Vec::new();
        if let Some(c) = &ctx.correlation_id {
            out.push(("x-request-id".into(), (**c).into()));
        }
        if let Some(f) = &ctx.forwarded {
            out.extend(
                f.iter()
                    .filter(|(k, _)| self.spec.passthrough.iter().any(|p| p == &**k))
                    .filter(|(k, _)| !NOT_FORWARDED.contains(&&**k))
                    .cloned(),
            );
        }
        out
    }
}

/// `{"name": n, "arguments": a}` by cloning the arguments, not by a trip through the
/// serializer (which `json!` takes for a borrowed value).
pub(super) fn named(name: &str, arguments: &Value) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("name".into(), Value::String(name.into()));
    m.insert("arguments".into(), arguments.clone());
    Value::Object(m)
}
