//! `_meta` keys of the 2026-07-28 per-request envelope and of results.

pub const PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
pub const CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
pub const CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
pub const LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
pub const SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
pub const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";
pub const RELATED_TASK: &str = "io.modelcontextprotocol/related-task";
pub const PROGRESS_TOKEN: &str = "progressToken";
pub const TASKS_EXTENSION: &str = "io.modelcontextprotocol/tasks";
/// Waygate's own `_meta` key on a server→client request made from an MRTR input request:
/// the request's key, so a gateway relaying it to a stateless client can keep it.
pub const INPUT_KEY: &str = "io.waygate/inputKey";

/// Whether a `_meta` key's prefix is reserved for MCP itself: its second label is
/// `modelcontextprotocol` or `mcp` (`io.modelcontextprotocol/`, `dev.mcp/`), or, in the
/// 2025-06-18 form, such a label is followed by another (`modelcontextprotocol.io/`).
/// `com.example.mcp/` and unprefixed keys are not.
pub fn is_reserved_key(key: &str) -> bool {
    // Nearly every reserved key a request carries: decided without splitting.
    if key.starts_with("io.modelcontextprotocol/") {
        return true;
    }
    let Some(slash) = key.bytes().position(|b| b == b'/') else {
        return false;
    };
    let prefix = &key[..slash];
    let ours = |l: &str| l == "modelcontextprotocol" || l == "mcp";
    let last = prefix.split('.').count() - 1;
    prefix
        .split('.')
        .enumerate()
        .any(|(i, l)| ours(l) && (i == 1 || i < last))
}

/// RFC 5424 levels in increasing severity, as MCP logging names them.
pub const LOG_LEVELS: [&str; 8] = [
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];

/// Severity rank of a level name, `None` when the name is not a level.
pub fn log_level_rank(level: &str) -> Option<u8> {
    LOG_LEVELS.iter().position(|l| *l == level).map(|p| p as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_prefixes_are_the_specs() {
        for k in [
            PROTOCOL_VERSION,
            RELATED_TASK,
            "dev.mcp/x",
            "org.modelcontextprotocol.api/x",
            "com.mcp.tools/x",
            "modelcontextprotocol.io/x",
            "mcp.dev/x",
        ] {
            assert!(is_reserved_key(k), "{k}");
        }
        for k in [
            "com.example.mcp/x",
            "com.example/tenant",
            "traceparent",
            PROGRESS_TOKEN,
            "mcp/x",
            "a/b/c",
        ] {
            assert!(!is_reserved_key(k), "{k}");
        }
    }
}
