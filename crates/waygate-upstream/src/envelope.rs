//! The per-request `_meta` envelope the gateway sends a stateless (2026-07-28) upstream.

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
