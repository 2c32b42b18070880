//! The admin UI's session: the API key the operator logged in with, sealed (AES-256-GCM)
//! into an HttpOnly, Secure, SameSite=Strict cookie, with an expiry and a CSRF token.
//!
//! Why a sealed cookie rather than a session table: every replica of a fleet opens it with
//! the key kept in the shared store (`meta` key `ui_session_key`), so a load balancer needs
//! no sticky routing, and the front door authenticates the unsealed key exactly like an
//! `Authorization` header — a revoked or rotated key ends every UI session at once, and
//! scopes, rate limits and audit apply unchanged. The key never reaches the page's script
//! (HttpOnly), a URL or local storage. Logging out clears the cookie and remembers the
//! session id on this replica until it would have expired.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use waygate_store::Store;

/// The cookie's name.
pub const COOKIE: &str = "waygate_ui";
/// How long a login lasts.
pub const LIFETIME: Duration = Duration::from_secs(8 * 3600);
const META_KEY: &str = "ui_session_key";
const AAD: &[u8] = b"waygate-ui-session-v1";

/// What the cookie carries.
#[derive(Serialize, Deserialize, Clone)]
pub struct Session {
    /// The API key, presented to the front door as a bearer credential.
    pub key: String,
    /// Unix seconds after which the session is refused.
    pub exp: u64,
    /// Identifies the session for logout.
    pub sid: String,
    /// Sent back by the page in `X-CSRF-Token` on every change.
    pub csrf: String,
}

pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Session {
    pub fn new(key: String) -> Self {
        Session {
            key,
            exp: now() + LIFETIME.as_secs(),
            sid: waygate_core::util::random_hex(16),
            csrf: waygate_core::util::random_hex(16),
        }
    }
}

/// Seals and opens sessions; the sealing key comes from the store once and is cached.
#[derive(Default)]
pub struct Sessions {
    key: Mutex<Option<[u8; 32]>>,
    /// Logged-out session ids and when they would have expired.
    ended: Mutex<HashMap<String, u64>>,
}

impl Sessions {
    /// The sealing key: the stored one, or a new random one stored for every replica.
    async fn key(&self, store: Option<&Store>, fresh: bool) -> Option<[u8; 32]> {
        if !fresh {
            if let Some(k) = *self.key.lock().unwrap_or_else(|e| e.into_inner()) {
                return Some(k);
            }
        }
        let store = store?;
        let parse = |s: &str| -> Option<[u8; 32]> { B64.decode(s).ok()?.try_into().ok() };
        let stored = store.meta_get(META_KEY).await.ok()?.and_then(|s| parse(&s));
        let k = match stored {
            Some(k) => k,
            None => {
                let mut k = [0u8; 32];
                waygate_core::util::fill_random(&mut k);
                store.meta_put(META_KEY, &B64.encode(k)).await.ok()?;
                // Another replica may have stored its own at the same moment: use what won.
                store.meta_get(META_KEY).await.ok()?.and_then(|s| parse(&s))?
            }
        };
        *self.key.lock().unwrap_or_else(|e| e.into_inner()) = Some(k);
        Some(k)
    }

    pub async fn seal(&self, store: Option<&Store>, s: &Session) -> Option<String> {
        let key = self.key(store, false).await?;
        let plain = serde_json::to_vec(s).ok()?;
        let mut nonce = [0u8; 12];
        waygate_core::util::fill_random(&mut nonce);
        let cipher = Aes256Gcm::new_from_slice(&key).ok()?;
        let mut out = nonce.to_vec();
        out.extend(
            cipher
                .encrypt(Nonce::from_slice(&nonce), Payload { msg: &plain, aad: AAD })
                .ok()?,
        );
        Some(B64.encode(out))
    }

    /// The live session in `cookie`, or `None` (forged, expired, logged out, or sealed
    /// under a key this replica has not seen yet — then the stored key is read again).
    pub async fn open(&self, store: Option<&Store>, cookie: &str) -> Option<Session> {
        let raw = B64.decode(cookie).ok()?;
        if raw.len() < 12 + 16 {
            return None;
        }
        let (nonce, ct) = raw.split_at(12);
        let try_open = |key: [u8; 32]| -> Option<Session> {
            let cipher = Aes256Gcm::new_from_slice(&key).ok()?;
            let plain = cipher
                .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: AAD })
                .ok()?;
            serde_json::from_slice(&plain).ok()
        };
        let s = match try_open(self.key(store, false).await?) {
            Some(s) => s,
            None => try_open(self.key(store, true).await?)?,
        };
        let t = now();
        if s.exp <= t {
            return None;
        }
        let mut ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        ended.retain(|_, exp| *exp > t);
        if ended.contains_key(&s.sid) {
            return None;
        }
        Some(s)
    }

    pub fn end(&self, s: &Session) {
        let mut ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        if ended.len() < 100_000 {
            ended.insert(s.sid.clone(), s.exp);
        }
    }
}

/// The session cookie's value among the request's cookies.
pub fn cookie_value(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(n, _)| *n == COOKIE)
        .map(|(_, v)| v)
}

/// `Set-Cookie` for a new session, or (with `None`) one that deletes it.
pub fn set_cookie(value: Option<&str>) -> String {
    match value {
        Some(v) => format!(
            "{COOKIE}={v}; Path=/; Max-Age={}; HttpOnly; Secure; SameSite=Strict",
            LIFETIME.as_secs()
        ),
        None => format!("{COOKIE}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sealed_sessions_open_only_unchanged_unexpired_and_not_ended() {
        let s = Sessions::default();
        *s.key.lock().unwrap() = Some([7u8; 32]);
        let sess = Session::new("wg_secret".into());
        let c = s.seal(None, &sess).await.unwrap();
        assert!(!c.contains("wg_secret"));
        assert_eq!(s.open(None, &c).await.unwrap().key, "wg_secret");
        // One flipped byte and it is refused.
        let mut raw = B64.decode(&c).unwrap();
        raw[20] ^= 1;
        assert!(s.open(None, &B64.encode(raw)).await.is_none());
        assert!(s.open(None, "garbage").await.is_none());
        let mut old = Session::new("k".into());
        old.exp = now() - 1;
        let c_old = s.seal(None, &old).await.unwrap();
        assert!(s.open(None, &c_old).await.is_none());
        s.end(&sess);
        assert!(s.open(None, &c).await.is_none());
    }

    #[test]
    fn cookie_is_found_among_others() {
        let mut h = http::HeaderMap::new();
        h.insert(http::header::COOKIE, "a=1; waygate_ui=xyz; b=2".parse().unwrap());
        assert_eq!(cookie_value(&h), Some("xyz"));
        assert!(set_cookie(Some("v")).contains("HttpOnly; Secure; SameSite=Strict"));
    }
}
