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
