//! What a forwarded request carries besides the caller's message: the HTTP headers (the
//! caller's correlation id, the client headers the upstream asked for, the mirrored
//! `Mcp-Param-*` arguments) and the params tree where the gateway must build one.

use http::{HeaderName, HeaderValue};
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
    pub(super) fn mirror_params(&self, tool: &str, args: &Value, out: &mut Vec<(HeaderName, HeaderValue)>) {
        let notes = self.tool_notes.read().unwrap_or_else(|e| e.into_inner());
        for (header, prop) in notes.header_params.get(tool).into_iter().flatten() {
            let value = match args.get(prop) {
                Some(Value::String(s)) => waygate_protocol::headers::encode_value(s).into_owned(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(Value::Number(n)) => n.to_string(),
                _ => continue,
            };
            let name = HeaderName::from_bytes(format!("mcp-param-{header}").as_bytes());
            if let (Ok(k), Ok(v)) = (name, HeaderValue::from_str(&value)) {
                out.push((k, v));
            }
        }
    }

    /// HTTP headers for a forwarded request: the caller's correlation id (so the upstream's
    /// logs and audit carry the same id) and the client headers this upstream asked for.
    /// Built as header names and values once: the HTTP wire inserts them as they are.
    pub(super) fn forwarded(&self, ctx: &CallContext) -> Vec<(HeaderName, HeaderValue)> {
        if let Wiring::Stdio(_) = self.spec.wiring {
            return Vec::new();
        }
        // Room for what the client adds per call (method, name, trace context).
        let mut out = Vec::with_capacity(6);
        if let Some(Ok(v)) = ctx.correlation_id.as_deref().map(HeaderValue::from_str) {
            out.push((waygate_protocol::headers::X_REQUEST_ID, v));
        }
        if let Some(f) = &ctx.forwarded {
            let wanted = f
                .iter()
                .filter(|(k, _)| self.spec.passthrough.iter().any(|p| p == &**k))
                .filter(|(k, _)| !NOT_FORWARDED.contains(&&**k));
            for (k, v) in wanted {
                if let (Ok(k), Ok(v)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) {
                    out.push((k, v));
                }
            }
        }
        out
    }
}

/// `{"name": n, "arguments": a}` by cloning the arguments, not by a trip through the
/// serializer (which `json!` takes for a borrowed value).
pub(super) fn named(name: &str, arguments: &Value, meta: Option<&serde_json::Map<String, Value>>) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("name".into(), Value::String(name.into()));
    m.insert("arguments".into(), arguments.clone());
    if let Some(own) = meta {
        m.insert("_meta".into(), Value::Object(own.clone()));
    }
    Value::Object(m)
}
