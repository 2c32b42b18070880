//! Which era a request belongs to, and the validation of the 2026-07-28 `_meta` envelope.
//!
//! Classification (digest §7.2): a request is modern when it carries
//! `_meta["io.modelcontextprotocol/protocolVersion"]` or a transport-level version that is
//! not a handshake-era revision; everything else is legacy and needs a session (or the
//! headerless 2025-03-26 default).

use serde_json::{Map, Value};
use waygate_protocol::{meta, ErrorObject, ProtocolVersion};

/// The per-request envelope of a modern request, validated.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub version: ProtocolVersion,
    pub client_caps: Value,
    pub client_info: Option<Value>,
    pub log_level: Option<u8>,
    pub progress_token: Option<Value>,
}

/// True when the params carry the modern envelope's version key.
pub fn has_envelope(params: Option<&Map<String, Value>>) -> bool {
    params
        .and_then(|p| p.get("_meta"))
        .and_then(Value::as_object)
        .is_some_and(|m| m.contains_key(meta::PROTOCOL_VERSION))
}

/// True when a version header value names a handshake-era revision.
pub fn is_legacy_version(v: &str) -> bool {
    ProtocolVersion::parse(v).is_some_and(|v| !v.is_modern())
}

/// The version string the envelope claims, if any (for header cross-checks).
pub fn envelope_version(params: Option<&Map<String, Value>>) -> Option<&str> {
    params?.get("_meta")?.get(meta::PROTOCOL_VERSION)?.as_str()
}

/// Validate the envelope: missing fields → -32602, unknown or handshake-only version →
/// -32022, bad log level → -32602. The capabilities and client info are moved out of
/// `params._meta` rather than copied (this runs on every modern request).
pub fn parse_envelope(params: Option<&mut Map<String, Value>>) -> Result<Envelope, ErrorObject> {
    let m = params
        .and_then(|p| p.get_mut("_meta"))
        .and_then(Value::as_object_mut)
        .ok_or_else(|| missing("params._meta"))?;
    let version_str = m
        .get(meta::PROTOCOL_VERSION)
        .ok_or_else(|| missing(&format!("params._meta[\"{}\"]", meta::PROTOCOL_VERSION)))?
        .as_str()
        .ok_or_else(|| {
            ErrorObject::invalid_params(format!(
                "Invalid params: _meta[\"{}\"] must be a string",
                meta::PROTOCOL_VERSION
            ))
        })?;
    let version = match ProtocolVersion::parse(version_str) {
        Some(v) if v.is_modern() => Ok(v),
        _ => Err(ErrorObject::unsupported_version(
            version_str,
            &ProtocolVersion::supported_strings(),
        )),
    };
    match m.get(meta::CLIENT_CAPABILITIES) {
        None => return Err(missing(&format!("params._meta[\"{}\"]", meta::CLIENT_CAPABILITIES))),
        Some(c) if !c.is_object() => {
            return Err(ErrorObject::invalid_params(format!(
                "Invalid params: _meta[\"{}\"] must be an object",
                meta::CLIENT_CAPABILITIES
            )))
        }
        Some(_) => {}
    }
    let version = version?;
    let log_level = match m.get(meta::LOG_LEVEL) {
        None | Some(Value::Null) => None,
        Some(Value::String(l)) => Some(meta::log_level_rank(l).ok_or_else(|| {
            ErrorObject::invalid_params(format!(
                "Invalid params: unknown log level {l:?}; expected one of {}",
                meta::LOG_LEVELS.join(", ")
            ))
        })?),
        Some(other) => {
            return Err(ErrorObject::invalid_params(format!(
                "Invalid params: log level must be a string, got {other}"
            )))
        }
    };
    Ok(Envelope {
        version,
        client_caps: m.remove(meta::CLIENT_CAPABILITIES).unwrap_or_default(),
        client_info: m.remove(meta::CLIENT_INFO),
        log_level,
        progress_token: m
            .get(meta::PROGRESS_TOKEN)
            .filter(|t| t.is_string() || t.is_i64())
            .cloned(),
    })
}

fn missing(what: &str) -> ErrorObject {
    ErrorObject::invalid_params(format!(
        "Invalid params: missing required {what} of the 2026-07-28 request envelope"
    ))
}

/// The progress token of a legacy request (`params._meta.progressToken`).
pub fn legacy_progress_token(params: Option<&Map<String, Value>>) -> Option<Value> {
    params?
        .get("_meta")?
        .get(meta::PROGRESS_TOKEN)
        .filter(|t| t.is_string() || t.is_i64())
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use waygate_protocol::codes;

    fn p(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn envelope_rules() {
        let ok = p(json!({"_meta": {meta::PROTOCOL_VERSION: "2026-07-28", meta::CLIENT_CAPABILITIES: {}}}));
        assert!(parse_envelope(Some(&mut ok.clone())).is_ok());
        let no_caps = p(json!({"_meta": {meta::PROTOCOL_VERSION: "2026-07-28"}}));
        assert_eq!(
            parse_envelope(Some(&mut no_caps.clone())).unwrap_err().code,
            codes::INVALID_PARAMS
        );
        let old = p(json!({"_meta": {meta::PROTOCOL_VERSION: "2025-11-25", meta::CLIENT_CAPABILITIES: {}}}));
        let e = parse_envelope(Some(&mut old.clone())).unwrap_err();
        assert_eq!(e.code, codes::UNSUPPORTED_PROTOCOL_VERSION);
        assert_eq!(e.data.unwrap()["requested"], "2025-11-25");
        let lvl = p(
            json!({"_meta": {meta::PROTOCOL_VERSION: "2026-07-28", meta::CLIENT_CAPABILITIES: {}, meta::LOG_LEVEL: "loud"}}),
        );
        assert_eq!(
            parse_envelope(Some(&mut lvl.clone())).unwrap_err().code,
            codes::INVALID_PARAMS
        );
        assert_eq!(parse_envelope(None).unwrap_err().code, codes::INVALID_PARAMS);
    }
}
