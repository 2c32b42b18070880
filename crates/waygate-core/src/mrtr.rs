//! Protection of MRTR `requestState`.
//!
//! The state a handler attaches to `input_required` travels through the client, so it is
//! attacker-controlled when it comes back. It is sealed with AES-256-GCM as
//! `"v1." base64url(nonce ‖ ciphertext ‖ tag)`, the method and target (tool, prompt or URI)
//! as associated data. Inside: the owning principal, a digest of the request's arguments,
//! an expiry and the handler's own state.
//!
//! Why encrypted and not only signed: the handler state is a plugin's (and, through the
//! gateway, an upstream's) internal data — intermediate answers, upstream correlation ids.
//! A client needs none of it, so it sees none of it. AEAD gives the integrity check too.
//!
//! Why not single-use: the 2026-07-28 revision does not make `requestState` single-use (a
//! client may retry after a lost answer, and a server may ask again). What makes a replay
//! useless is the binding: another principal, other arguments, another method or target,
//! or an expired state are all refused. A handler that needs exactly-once effects keeps
//! its own record keyed by data inside its state.
//!
//! The key is derived with HKDF-SHA256 from `[mcp] state_key`, so replicas that share that
//! key open each other's state, and the raw configured secret is never the cipher key.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde_json::{json, Value};

use crate::util::unix_now;

const PREFIX: &str = "v1.";
const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StateError {
    #[error("requestState is malformed")]
    Malformed,
    #[error("requestState integrity check failed")]
    BadSignature,
    #[error("requestState was issued for a different request")]
    WrongRequest,
    #[error("requestState was issued to a different caller")]
    WrongCaller,
    #[error("requestState has expired; start the request again")]
    Expired,
}

/// What a sealed state is bound to, besides method and target.
#[derive(Clone, Copy)]
pub struct Binding<'a> {
    /// `Principal::id` of the caller, `None` when unauthenticated.
    pub owner: Option<&'a str>,
    /// SHA-256 of the request's arguments (see `audit::digest_json`).
    pub args: &'a [u8; 32],
}

#[derive(Clone)]
pub struct StateSealer {
    cipher: Aes256Gcm,
    ttl_secs: u64,
}

impl StateSealer {
    pub fn new(key: Vec<u8>, ttl_secs: u64) -> Self {
        let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(b"waygate mrtr"), &key);
        let mut okm = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's 8160-byte output limit.
        let _ = hk.expand(b"requestState aes-256-gcm v1", &mut okm);
        StateSealer {
            cipher: Aes256Gcm::new(&okm.into()),
            ttl_secs,
        }
    }

    fn aad(method: &str, target: &str) -> Vec<u8> {
        let mut a = Vec::with_capacity(method.len() + target.len() + 1);
        a.extend_from_slice(method.as_bytes());
        a.push(0);
        a.extend_from_slice(target.as_bytes());
        a
    }

    pub fn seal(&self, method: &str, target: &str, bind: Binding<'_>, state: &Value) -> String {
        let payload = json!({
            "o": bind.owner,
            "d": B64.encode(bind.args),
            "e": unix_now() + self.ttl_secs,
            "s": state,
        });
        let plain = serde_json::to_vec(&payload).unwrap_or_default();
        let mut nonce = [0u8; NONCE_LEN];
        crate::util::fill_random(&mut nonce);
        let aad = Self::aad(method, target);
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: &plain, aad: &aad })
            .unwrap_or_default();
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        format!("{PREFIX}{}", B64.encode(out))
    }

    /// Verify and return the handler's state.
    pub fn open(&self, sealed: &str, method: &str, target: &str, bind: Binding<'_>) -> Result<Value, StateError> {
        let body = sealed.strip_prefix(PREFIX).ok_or(StateError::Malformed)?;
        let raw = B64.decode(body).map_err(|_| StateError::Malformed)?;
        if raw.len() < NONCE_LEN + 16 {
            return Err(StateError::Malformed);
        }
        let (nonce, ct) = raw.split_at(NONCE_LEN);
        // A state sealed for another method or target fails here too (associated data).
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: &Self::aad(method, target),
                },
            )
            .map_err(|_| StateError::BadSignature)?;
        let mut payload: Value = serde_json::from_slice(&plain).map_err(|_| StateError::Malformed)?;
        if payload["o"].as_str() != bind.owner {
            return Err(StateError::WrongCaller);
        }
        if payload["d"].as_str() != Some(B64.encode(bind.args).as_str()) {
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

    const ARGS: [u8; 32] = [7; 32];

    fn alice() -> Binding<'static> {
        Binding {
            owner: Some("alice"),
            args: &ARGS,
        }
    }

    #[test]
    fn seal_open_and_tamper() {
        let s = StateSealer::new(b"k".to_vec(), 60);
        let sealed = s.seal(
            "tools/call",
            "t",
            alice(),
            &json!({"round": 1, "secret": "upstream-id-42"}),
        );
        assert!(
            !sealed.contains("upstream") && !sealed.contains("alice"),
            "state is readable: {sealed}"
        );
        assert_eq!(s.open(&sealed, "tools/call", "t", alice()).unwrap()["round"], 1);
        assert_eq!(
            s.open(&sealed, "tools/call", "other", alice()),
            Err(StateError::BadSignature)
        );
        assert_eq!(
            s.open(&sealed, "prompts/get", "t", alice()),
            Err(StateError::BadSignature)
        );
        let bob = Binding {
            owner: Some("bob"),
            args: &ARGS,
        };
        assert_eq!(s.open(&sealed, "tools/call", "t", bob), Err(StateError::WrongCaller));
        let anon = Binding {
            owner: None,
            args: &ARGS,
        };
        assert_eq!(s.open(&sealed, "tools/call", "t", anon), Err(StateError::WrongCaller));
        let other_args = Binding {
            owner: Some("alice"),
            args: &[8; 32],
        };
        assert_eq!(
            s.open(&sealed, "tools/call", "t", other_args),
            Err(StateError::WrongRequest)
        );
        let mut bad = sealed.clone().into_bytes();
        let i = bad.len() - 5;
        bad[i] = if bad[i] == b'A' { b'B' } else { b'A' };
        let bad = String::from_utf8(bad).unwrap();
        assert_eq!(s.open(&bad, "tools/call", "t", alice()), Err(StateError::BadSignature));
        assert_eq!(
            s.open("garbage", "tools/call", "t", alice()),
            Err(StateError::Malformed)
        );
        assert_eq!(
            s.open("v1.AAAA", "tools/call", "t", alice()),
            Err(StateError::Malformed)
        );
        let other = StateSealer::new(b"k2".to_vec(), 60);
        assert_eq!(
            other.open(&sealed, "tools/call", "t", alice()),
            Err(StateError::BadSignature)
        );
    }

    #[test]
    fn expired_state_is_refused() {
        let s = StateSealer::new(b"k".to_vec(), 0);
        let sealed = s.seal("tools/call", "t", alice(), &Value::Null);
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert_eq!(s.open(&sealed, "tools/call", "t", alice()), Err(StateError::Expired));
    }
}
