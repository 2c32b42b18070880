//! Integrity protection of MRTR `requestState`.
//!
//! The state a handler attaches to `input_required` travels through the client, so it is
//! attacker-controlled when it comes back. It is sealed as
//! `base64url(payload) "." base64url(HMAC-SHA256(key, base64url(payload)))`, where the
//! payload binds the method, the target (tool/prompt/URI), an expiry and the handler's own
//! state. The key comes from config, so any replica sharing it can open what another sealed.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::util::{random_hex, unix_now};

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StateError {
    #[error("requestState is malformed")]
    Malformed,
    #[error("requestState integrity check failed")]
    BadSignature,
    #[error("requestState was issued for a different request")]
    WrongRequest,
    #[error("requestState has expired; start the request again")]
    Expired,
}

#[derive(Clone)]
pub struct StateSealer {
    key: Vec<u8>,
    ttl_secs: u64,
}

impl StateSealer {
    pub fn new(key: Vec<u8>, ttl_secs: u64) -> Self {
        StateSealer { key, ttl_secs }
    }

    fn mac(&self, data: &[u8]) -> HmacSha256 {
        // HMAC accepts keys of any length.
        let mut m = <HmacSha256 as Mac>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!());
        m.update(data);
        m
    }

    pub fn seal(&self, method: &str, target: &str, state: &Value) -> String {
        let payload = json!({
            "m": method,
            "t": target,
            "e": unix_now() + self.ttl_secs,
            "n": random_hex(8),
            "s": state,
        });
        let body = B64.encode(serde_json::to_vec(&payload).unwrap_or_default());
        let sig = B64.encode(self.mac(body.as_bytes()).finalize().into_bytes());
        format!("{body}.{sig}")
    }

    /// Verify and return the handler's state.
    pub fn open(&self, sealed: &str, method: &str, target: &str) -> Result<Value, StateError> {
        let (body, sig) = sealed.split_once('.').ok_or(StateError::Malformed)?;
        let sig = B64.decode(sig).map_err(|_| StateError::BadSignature)?;
        self.mac(body.as_bytes())
            .verify_slice(&sig)
            .map_err(|_| StateError::BadSignature)?;
        let raw = B64.decode(body).map_err(|_| StateError::Malformed)?;
        let mut payload: Value = serde_json::from_slice(&raw).map_err(|_| StateError::Malformed)?;
        if payload["m"] != method || payload["t"] != target {
            return Err(StateError::WrongRequest);
        }
        if payload["e"].as_u64().unwrap_or(0) < unix_now() {
            return Err(StateError::Expired);
        }
        Ok(payload.get_mut("s").map(Value::take).unwrap_or(Value::Null))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_tamper() {
        let s = StateSealer::new(b"k".to_vec(), 60);
        let sealed = s.seal("tools/call", "t", &json!({"round": 1}));
        assert_eq!(s.open(&sealed, "tools/call", "t").unwrap()["round"], 1);
        assert_eq!(s.open(&sealed, "tools/call", "other"), Err(StateError::WrongRequest));
        let mut bad = sealed.clone();
        bad.replace_range(0..1, if sealed.starts_with('e') { "f" } else { "e" });
        assert_eq!(s.open(&bad, "tools/call", "t"), Err(StateError::BadSignature));
        assert_eq!(s.open("garbage", "tools/call", "t"), Err(StateError::Malformed));
        let other = StateSealer::new(b"k2".to_vec(), 60);
        assert_eq!(other.open(&sealed, "tools/call", "t"), Err(StateError::BadSignature));
    }

    #[test]
    fn expired_state_is_refused() {
        let s = StateSealer::new(b"k".to_vec(), 0);
        let sealed = s.seal("tools/call", "t", &Value::Null);
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert_eq!(s.open(&sealed, "tools/call", "t"), Err(StateError::Expired));
    }
}
