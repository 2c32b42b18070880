//! What can go wrong talking to an upstream.

use serde_json::Value;

#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// The upstream answered with a JSON-RPC error.
    #[error("{message} (code {code})")]
    Rpc {
        code: i64,
        message: String,
        data: Option<Value>,
    },
    /// A task the upstream ran for a forwarded call ended in a JSON-RPC error: the call
    /// failed as a whole (not the tool reporting an error).
    #[error("task failed: {message} (code {code})")]
    TaskFailed {
        code: i64,
        message: String,
        data: Option<Value>,
    },
    #[error("no answer within {0} ms")]
    Timeout(u64),
    /// The process exited or the connection is gone.
    #[error("connection closed: {0}")]
    Closed(String),
    /// Could not start or reach the server.
    #[error("{0}")]
    Connect(String),
    /// One HTTP exchange failed on an upstream that is still there: an HTTP 5xx answer,
    /// or a connection that broke while the response was on its way. The call fails (it
    /// may have run, so it is not sent again); the upstream and its session stay up — one
    /// crashing handler or reset connection must not take the upstream away from everyone.
    #[error("{0}")]
    Exchange(String),
    /// The server sent something that is not MCP.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The server refused the request (HTTP 401/403): a credential problem, not a lost
    /// connection — a client's own forwarded token may be what it refused.
    #[error("{0}")]
    Refused(String),
    /// The caller cancelled; the upstream was told with `notifications/cancelled`.
    #[error("cancelled by the caller")]
    Cancelled,
    /// A stdio server went away when asked `server/discover` before `initialize`.
    #[error("the server ended on server/discover: {0}")]
    ProbeEnded(String),
}

impl UpstreamError {
    /// Whether the connection should be considered lost (reconnect), as opposed to a
    /// failed request on a healthy connection.
    pub fn is_connection_loss(&self) -> bool {
        matches!(self, Self::Closed(_) | Self::Connect(_))
    }

    /// The error object an `Rpc` error came with, for logs.
    pub(crate) fn from_error_object(e: &Value) -> UpstreamError {
        UpstreamError::Rpc {
            code: e.get("code").and_then(Value::as_i64).unwrap_or(-32603),
            message: e
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("error without a message")
                .to_string(),
            data: e.get("data").cloned(),
        }
    }
}
