//! What the gateway writes to an upstream: the per-request `_meta` envelope of a stateless
//! (2026-07-28) upstream, and the request message itself.

use serde_json::{json, Value};

/// The stateless revision the gateway speaks to upstreams that offer it.
pub(crate) const MODERN: &str = "2026-07-28";

/// The per-request envelope of the stateless era: who the gateway is, as a client, with
/// the capabilities (and log level) of the caller it acts for on this request.
pub(crate) fn envelope(caller: Option<&Caller>) -> Value {
    let mut env = json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": caller.map_or_else(|| json!({}), |c| c.capabilities.clone()),
        "io.modelcontextprotocol/clientInfo": {"name": "waygate", "version": env!("CARGO_PKG_VERSION")},
    });
    if let Some(level) = caller.and_then(|c| c.log_level) {
        env["io.modelcontextprotocol/logLevel"] = json!(level);
    }
    env
}

/// What a stateless upstream is told about the caller behind a request.
#[derive(Clone)]
pub struct Caller {
    /// The client capabilities the gateway can relay for this caller.
    pub capabilities: Value,
    pub log_level: Option<&'static str>,
}

pub(crate) fn to_bytes(msg: &Value) -> Vec<u8> {
    serde_json::to_vec(msg).unwrap_or_default()
}

/// A request written straight from its parts: the params tree is serialized once rather
/// than first copied into a message tree.
pub(crate) fn request_bytes(id: i64, method: &str, params: &Value) -> Vec<u8> {
    use std::io::Write;
    let mut out = Vec::with_capacity(256);
    let _ = write!(out, "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":");
    let _ = serde_json::to_writer(&mut out, method);
    out.extend_from_slice(b",\"params\":");
    let _ = serde_json::to_writer(&mut out, params);
    out.push(b'}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_written_from_its_parts_is_the_message() {
        let params = json!({"name": "echo \"x\"", "arguments": {"n": 1.5, "s": "é\n"}});
        let bytes = request_bytes(7, "tools/call", &params);
        let back: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            back,
            json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params})
        );
    }
}
