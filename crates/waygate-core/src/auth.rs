//! API-key authentication. Keys look like `wg_<id>_<secret>`; only the SHA-256 of the whole
//! key is kept (keys carry 160 random bits, so a fast hash is enough), compared in constant
//! time. The key table is held in memory and replaced wholesale by whoever watches the
//! store, so a revocation written by another process takes effect within one refresh.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use sha2::{Digest, Sha256};

use crate::util::{random_hex, unix_now};

/// Who is calling, after authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub key_id: String,
    pub name: String,
    pub scopes: Vec<String>,
}

impl Principal {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope || s == "admin")
    }
}

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

/// Why a request was not authenticated. Messages never echo the presented key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("authentication required: send Authorization: Bearer <api key> or X-API-Key")]
    Missing,
    #[error("invalid API key")]
    Invalid,
    #[error("API key has expired")]
    Expired,
    #[error("API key has been revoked")]
    Revoked,
}

/// A freshly minted key: the secret is shown once and never stored.
pub struct NewKey {
    pub id: String,
    pub key: String,
    pub hash: String,
}

pub fn hash_key(key: &str) -> String {
    crate::util::hex(&Sha256::digest(key.as_bytes()))
}

/// Mint a new key.
pub fn generate_key() -> NewKey {
    let id = random_hex(6);
    let key = format!("wg_{id}_{}", random_hex(20));
    let hash = hash_key(&key);
    NewKey { id, key, hash }
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The in-memory key table.
#[derive(Default, Clone)]
pub struct ApiKeys {
    keys: Arc<RwLock<HashMap<String, KeyRecord>>>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} keys)", self.len())
    }
}

impl ApiKeys {
    pub fn replace(&self, records: Vec<KeyRecord>) {
        let map = records.into_iter().map(|r| (r.id.clone(), r)).collect();
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = map;
    }

    pub fn len(&self) -> usize {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Check a presented key.
    pub fn verify(&self, presented: &str) -> Result<Principal, AuthError> {
        let id = presented
            .strip_prefix("wg_")
            .and_then(|r| r.split_once('_'))
            .map(|(id, _)| id)
            .ok_or(AuthError::Invalid)?;
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let rec = keys.get(id).ok_or(AuthError::Invalid)?;
        if !ct_eq(hash_key(presented).as_bytes(), rec.hash.as_bytes()) {
            return Err(AuthError::Invalid);
        }
        if rec.revoked {
            return Err(AuthError::Revoked);
        }
        if rec.expires_at.is_some_and(|e| e <= unix_now()) {
            return Err(AuthError::Expired);
        }
        Ok(Principal {
            key_id: rec.id.clone(),
            name: rec.name.clone(),
            scopes: rec.scopes.clone(),
        })
    }

    /// Authenticate from request headers (`Authorization: Bearer …` or `X-API-Key`).
    pub fn authenticate(&self, authorization: Option<&str>, x_api_key: Option<&str>) -> Result<Principal, AuthError> {
        let presented = match (authorization, x_api_key) {
            (Some(a), _) => {
                let (scheme, token) = a.trim().split_once(' ').ok_or(AuthError::Invalid)?;
                if !scheme.eq_ignore_ascii_case("bearer") {
                    return Err(AuthError::Invalid);
                }
                token.trim()
            }
            (None, Some(k)) => k.trim(),
            (None, None) => return Err(AuthError::Missing),
        };
        self.verify(presented)
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
        assert_eq!(
            t.authenticate(Some(&format!("Bearer {}", k.key)), None).unwrap().key_id,
            k.id
        );
        assert!(t.authenticate(None, Some(&k.key)).is_ok());
        assert_eq!(t.authenticate(None, None), Err(AuthError::Missing));
        assert_eq!(
            t.authenticate(Some(&format!("Basic {}", k.key)), None),
            Err(AuthError::Invalid)
        );
        let mut forged = k.key.clone();
        let last = forged.pop();
        forged.push(if last == Some('0') { '1' } else { '0' });
        assert_eq!(t.verify(&forged), Err(AuthError::Invalid));
        assert_eq!(t.verify("wg_nope_x"), Err(AuthError::Invalid));
        assert_eq!(table(&k, true, None).verify(&k.key), Err(AuthError::Revoked));
        assert_eq!(table(&k, false, Some(1)).verify(&k.key), Err(AuthError::Expired));
    }
}
