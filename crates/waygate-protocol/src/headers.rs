//! Value encoding of the 2026-07-28 mirrored headers (`Mcp-Name`, `Mcp-Param-*`).
//!
//! A value that is not plain visible ASCII travels as `=?base64?<base64 of UTF-8>?=`;
//! servers decode before comparing with the body.

use base64::Engine;
use http::HeaderName;

// The header names read or written on every request, as constants: a lookup or insert by
// `&str` parses the name first (~1 k instructions each on the hot path).
pub const MCP_SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
pub const MCP_PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
pub const MCP_METHOD: HeaderName = HeaderName::from_static("mcp-method");
pub const MCP_NAME: HeaderName = HeaderName::from_static("mcp-name");
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

const PREFIX: &str = "=?base64?";
const SUFFIX: &str = "?=";

/// Decode a mirrored header value. `None` when the sentinel form is malformed or the
/// value contains characters a client may not send raw.
pub fn decode_value(raw: &str) -> Option<std::borrow::Cow<'_, str>> {
    if let Some(inner) = raw.strip_prefix(PREFIX).and_then(|r| r.strip_suffix(SUFFIX)) {
        let bytes = base64::engine::general_purpose::STANDARD.decode(inner).ok()?;
        return String::from_utf8(bytes).ok().map(std::borrow::Cow::Owned);
    }
    if raw.bytes().any(|b| !(b == b'\t' || (0x20..=0x7e).contains(&b))) {
        return None;
    }
    Some(std::borrow::Cow::Borrowed(raw))
}

/// Encode a value for a mirrored header: itself when it is plain visible ASCII (and does
/// not look like the sentinel form), else the base64 sentinel.
pub fn encode_value(s: &str) -> std::borrow::Cow<'_, str> {
    let plain = !s.starts_with(PREFIX) && s.bytes().all(|b| (0x20..=0x7e).contains(&b)) && s.trim() == s;
    if plain {
        std::borrow::Cow::Borrowed(s)
    } else {
        let b = base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
        std::borrow::Cow::Owned(format!("{PREFIX}{b}{SUFFIX}"))
    }
}

/// Compare a header value with the JSON value of the body it mirrors. Integers compare
/// numerically (`42` == `42.0`), booleans as `true`/`false`, strings exactly.
pub fn matches_json(header: &str, body: &serde_json::Value) -> bool {
    match body {
        serde_json::Value::String(s) => header == s,
        serde_json::Value::Bool(b) => header == if *b { "true" } else { "false" },
        serde_json::Value::Number(n) => match (header.parse::<f64>(), n.as_f64()) {
            (Ok(h), Some(b)) => h == b,
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_values_decode_back() {
        for v in [
            "echo",
            "tool with spaces",
            "ünïcode",
            " padded ",
            "=?base64?x?=",
            "a\nb",
        ] {
            assert_eq!(decode_value(&encode_value(v)).as_deref(), Some(v), "{v}");
        }
        assert_eq!(encode_value("echo"), "echo");
    }

    #[test]
    fn decodes_sentinel_and_plain() {
        assert_eq!(decode_value("echo").as_deref(), Some("echo"));
        assert_eq!(decode_value("=?base64?w6l0w6k=?=").as_deref(), Some("été"));
        assert_eq!(decode_value("=?base64?!!?="), None);
        assert_eq!(decode_value("a\u{1}b"), None);
    }

    #[test]
    fn numeric_comparison() {
        assert!(matches_json("42", &serde_json::json!(42.0)));
        assert!(matches_json("true", &serde_json::json!(true)));
        assert!(!matches_json("x", &serde_json::json!("y")));
    }
}
