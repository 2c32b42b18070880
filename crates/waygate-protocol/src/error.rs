//! JSON-RPC error objects and the codes MCP assigns.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Error codes, named as the spec names them.
pub mod codes {
    pub const PARSE_ERROR: i32 = -32700;
    pub const INVALID_REQUEST: i32 = -32600;
    pub const METHOD_NOT_FOUND: i32 = -32601;
    pub const INVALID_PARAMS: i32 = -32602;
    pub const INTERNAL_ERROR: i32 = -32603;
    /// Legacy revisions only (2025-03-26 … 2025-11-25); 2026-07-28 uses -32602.
    pub const RESOURCE_NOT_FOUND: i32 = -32002;
    /// Implementation-defined server error: a batch item over the caller's rate limit.
    pub const RATE_LIMITED: i32 = -32029;
    pub const HEADER_MISMATCH: i32 = -32020;
    pub const MISSING_CLIENT_CAPABILITY: i32 = -32021;
    pub const UNSUPPORTED_PROTOCOL_VERSION: i32 = -32022;
    /// Implementation-defined (legacy range): the request was cancelled or timed out.
    pub const REQUEST_CANCELLED: i32 = -32800;
}

/// The `error` member of a JSON-RPC error response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorObject {
    pub code: i32,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl ErrorObject {
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }
    pub fn parse(msg: impl Into<String>) -> Self {
        Self::new(codes::PARSE_ERROR, msg)
    }
    pub fn invalid_request(msg: impl Into<String>) -> Self {
        Self::new(codes::INVALID_REQUEST, msg)
    }
    pub fn method_not_found(method: &str) -> Self {
        Self::new(codes::METHOD_NOT_FOUND, format!("Method not found: {method}"))
            .with_data(serde_json::json!({ "method": method }))
    }
    pub fn invalid_params(msg: impl Into<String>) -> Self {
        Self::new(codes::INVALID_PARAMS, msg)
    }
    pub fn internal(msg: impl Into<String>) -> Self {
        Self::new(codes::INTERNAL_ERROR, msg)
    }
    pub fn header_mismatch(msg: impl Into<String>) -> Self {
        Self::new(codes::HEADER_MISMATCH, msg)
    }
    pub fn unsupported_version(requested: &str, supported: &[&str]) -> Self {
        Self::new(
            codes::UNSUPPORTED_PROTOCOL_VERSION,
            format!(
                "Unsupported protocol version {requested:?}; supported: {}",
                supported.join(", ")
            ),
        )
        .with_data(serde_json::json!({ "supported": supported, "requested": requested }))
    }
    pub fn missing_capability(required: Value) -> Self {
        Self::new(
            codes::MISSING_CLIENT_CAPABILITY,
            format!("Missing required client capability: {required}"),
        )
        .with_data(serde_json::json!({ "requiredCapabilities": required }))
    }

    /// True for the errors that tell a dual-era client "this server speaks the stateless
    /// revision; fix the request instead of falling back to `initialize`".
    pub fn is_modern_signal(&self) -> bool {
        matches!(
            self.code,
            codes::HEADER_MISMATCH | codes::MISSING_CLIENT_CAPABILITY | codes::UNSUPPORTED_PROTOCOL_VERSION
        )
    }
}

impl std::fmt::Display for ErrorObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}
