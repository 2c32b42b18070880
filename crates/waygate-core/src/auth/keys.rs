//! API keys. Keys look like `wg_<id>_<secret>`; only the SHA-256 of the whole key is kept
//! (keys carry 160 random bits, so a fast hash is enough), compared in constant time. The
//! key table is held in memory and replaced wholesale by whoever watches the store, so a
//! revocation written by another process takes effect within one refresh.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use sha2::{Digest, Sha256};

use super::{AuthError, Method, Principal};
use crate::util::{random_hex, unix_now};

/// One stored key, as the store returns it.
#[derive(Debug, Clone)]
pub struct KeyRecord {
    pub id: String,
    pub name: String,
    /// Lower-case hex SHA-256 of the full key.
    pub hash: String,
    pub scopes: Vec<String>,
    /// Unix seconds; `None` never expires.
    pub expires_at: Option<u64>,
    pub revoked: bool,
}

/// A freshly minted key: the secret is shown once and never stored.
pub struct NewKey {
    pub id: String,
    pub key: String,
    pub hash: String,
}

/// `Err(message)` when `s` is not a scope a key may carry: `mcp`, `admin`, `admin:read`,
/// `metrics`, `server:NAME` or a role name.
pub fn check_scope(s: &str) -> Result<(), String> {
    let ok = !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid scope {s:?}; expected mcp, admin, or a role name of letters, digits, '-', '_', '.', ':'"
        ))
    }
}

pub fn hash_key(key: &str) -> String {
    crate::util::hex(&Sha256::digest(key.as_bytes()))
}

/// Check a key made outside Waygate (`[auth] admin_key`) before it is stored: the shape
/// `verify` looks up (`wg_<id>_<secret>`) and enough secret to resist guessing. Returns the
/// id. The message never contains the key.
pub fn check_provided_key(key: &str) -> Result<&str, String> {
    let (id, secret) = key
        .strip_prefix("wg_")
        .and_then(|r| r.split_once('_'))
        .ok_or_else(|| "expected wg_<id>_<secret> (as `waygate keys create` prints)".to_string())?;
    if !(4..=32).contains(&id.len()) || !id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
        return Err("the <id> part must be 4 to 32 lower-case letters or digits".into());
    }
    if secret.len() < 32 || !secret.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!(
            "the <secret> part has {} characters; expected at least 32 letters or digits (e.g. `openssl rand -hex 20`)",
            secret.len()
        ));
    }
    Ok(id)
}

/// Mint a new key.
pub fn generate_key() -> NewKey {
    let id = random_hex(6);
    let key = format!("wg_{id}_{}", random_hex(20));
    let hash = hash_key(&key);
    NewKey { id, key, hash }
}

/// The stored lower-case hex digest as bytes (`None` for a malformed value, which then
/// never matches).
fn decode_hex32(h: &str) -> Option<[u8; 32]> {
    let b = h.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let nib = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (nib(b[2 * i])? << 4) | nib(b[2 * i + 1])?;
    }
    Some(out)
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Key id → the stored record and the principal it authenticates (built once per load).
type KeyTable = HashMap<String, (KeyRecord, Option<[u8; 32]>, Arc<Principal>)>;

/// The in-memory key table.
#[derive(Default, Clone)]
pub struct ApiKeys {
    keys: Arc<RwLock<KeyTable>>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} keys)", self.len())
    }
}

impl ApiKeys {
    pub fn replace(&self, records: Vec<KeyRecord>) {
        let map = records
            .into_iter()
            .map(|r| {
                let p = Principal::new(
                    r.id.clone(),
                    r.name.clone(),
                    r.scopes.clone(),
                    r.scopes.clone(),
                    Method::ApiKey,
                );
                let digest = decode_hex32(&r.hash);
                (r.id.clone(), (r, digest, Arc::new(p)))
            })
            .collect();
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = map;
    }

    pub fn len(&self) -> usize {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Check a presented key.
    pub fn verify(&self, presented: &str) -> Result<Arc<Principal>, AuthError> {
        let id = presented
            .strip_prefix("wg_")
            .and_then(|r| r.split_once('_'))
            .map(|(id, _)| id)
            .ok_or(AuthError::Invalid)?;
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let (rec, digest, principal) = keys.get(id).ok_or(AuthError::Invalid)?;
        let presented_digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        if !digest.is_some_and(|d| ct_eq(&presented_digest, &d)) {
            return Err(AuthError::Invalid);
        }
        if rec.revoked {
            return Err(AuthError::Revoked);
        }
        if rec.expires_at.is_some_and(|e| e <= unix_now()) {
            return Err(AuthError::Expired);
        }
        Ok(principal.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(k: &NewKey, revoked: bool, expires_at: Option<u64>) -> ApiKeys {
        let t = ApiKeys::default();
        t.replace(vec![KeyRecord {
            id: k.id.clone(),
            name: "n".into(),
            hash: k.hash.clone(),
            scopes: vec!["mcp".into()],
            expires_at,
            revoked,
        }]);
        t
    }

    #[test]
    fn verify_rules() {
        let k = generate_key();
        let t = table(&k, false, None);
        assert_eq!(t.verify(&k.key).unwrap().scopes, vec!["mcp"]);
        assert_eq!(t.verify(&k.key).unwrap().id, k.id);
        let mut forged = k.key.clone();
        let last = forged.pop();
        forged.push(if last == Some('0') { '1' } else { '0' });
        assert_eq!(t.verify(&forged), Err(AuthError::Invalid));
        assert_eq!(t.verify("wg_nope_x"), Err(AuthError::Invalid));
        let minted = generate_key();
        assert_eq!(check_provided_key(&minted.key), Ok(minted.id.as_str()));
        for bad in [
            "",
            "wg_",
            "wg_abc",
            "wg_ab_0123456789abcdef0123456789abcdef",
            "wg_abcd_short",
            "xx_abcd_0123456789abcdef0123456789abcdef",
        ] {
            let e = check_provided_key(bad).unwrap_err();
            assert!(
                bad.len() < 8 || !e.contains(bad),
                "the message must not echo the key: {e}"
            );
        }
        assert_eq!(table(&k, true, None).verify(&k.key), Err(AuthError::Revoked));
        assert_eq!(table(&k, false, Some(1)).verify(&k.key), Err(AuthError::Expired));
    }
}
