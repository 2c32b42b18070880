//! AES-256-GCM sealing under a key derived from `WAYGATE_SECRET_KEY`: used for the secrets
//! of an export and for the encrypted credential store. The associated data binds each
//! ciphertext to its purpose (and a stored secret to its name), so a ciphertext moved to
//! another place does not decrypt.
//!
//! The key is derived with **argon2id** (19 MiB, 2 passes, 1 lane — OWASP's baseline) and a
//! random 16-byte salt per sealed value. `WAYGATE_SECRET_KEY` is typed by an operator and
//! may be a passphrase, not 32 random bytes, so a memory-hard KDF is what makes a stolen
//! database or export expensive to brute-force; HKDF alone would only be right for a key
//! that is already high-entropy. The salt travels with the ciphertext (in the nonce field:
//! `v2:<salt>:<nonce>`), so each sealed value is self-contained and a store row or an export
//! opens anywhere the same `WAYGATE_SECRET_KEY` is set. Derived keys are cached per salt for
//! the life of the process. Values sealed by earlier versions (`SHA-256(key)`, a bare nonce)
//! still open; they are re-sealed in the new form the next time they are written.

use std::collections::HashMap;
use std::sync::Mutex;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use sha2::{Digest, Sha256};

/// The KDF as the export document names it.
pub const KDF: &str = "argon2id(m=19456 KiB, t=2, p=1, salt per value)";

fn passphrase() -> Result<String, String> {
    let secret = std::env::var("WAYGATE_SECRET_KEY")
        .map_err(|_| "set WAYGATE_SECRET_KEY (16+ characters) to encrypt or decrypt secrets")?;
    if secret.len() < 16 {
        return Err(format!(
            "WAYGATE_SECRET_KEY has {} characters; expected at least 16",
            secret.len()
        ));
    }
    Ok(secret)
}

/// (SHA-256 of the passphrase, salt) → derived key; argon2id is deliberately slow.
type Derived = HashMap<([u8; 32], [u8; 16]), [u8; 32]>;
static KEYS: Mutex<Option<Derived>> = Mutex::new(None);

fn derive(pass: &str, salt: &[u8; 16]) -> Result<[u8; 32], String> {
    let id: [u8; 32] = Sha256::digest(pass.as_bytes()).into();
    let mut cache = KEYS.lock().unwrap_or_else(|e| e.into_inner());
    let map = cache.get_or_insert_with(HashMap::new);
    if let Some(k) = map.get(&(id, *salt)) {
        return Ok(*k);
    }
    let params = argon2::Params::new(19_456, 2, 1, Some(32)).map_err(|e| e.to_string())?;
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut key = [0u8; 32];
    a.hash_password_into(pass.as_bytes(), salt, &mut key)
        .map_err(|e| format!("key derivation failed: {e}"))?;
    map.insert((id, *salt), key);
    Ok(key)
}

fn cipher(key: &[u8; 32]) -> Result<Aes256Gcm, String> {
    Aes256Gcm::new_from_slice(key).map_err(|e| e.to_string())
}

/// `(nonce field, ciphertext)`, both text; the nonce field carries the salt.
pub fn seal(plain: &[u8], aad: &[u8]) -> Result<(String, String), String> {
    seal_with(&passphrase()?, plain, aad)
}

fn seal_with(pass: &str, plain: &[u8], aad: &[u8]) -> Result<(String, String), String> {
    let mut salt = [0u8; 16];
    let mut nonce = [0u8; 12];
    getrandom::getrandom(&mut salt).map_err(|e| format!("no randomness: {e}"))?;
    getrandom::getrandom(&mut nonce).map_err(|e| format!("no randomness: {e}"))?;
    let ct = cipher(&derive(pass, &salt)?)?
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad })
        .map_err(|_| "encryption failed")?;
    Ok((format!("v2:{}:{}", B64.encode(salt), B64.encode(nonce)), B64.encode(ct)))
}

pub fn open(nonce: &str, ciphertext: &str, aad: &[u8]) -> Result<Vec<u8>, String> {
    open_with(&passphrase()?, nonce, ciphertext, aad)
}

fn open_with(pass: &str, nonce: &str, ciphertext: &str, aad: &[u8]) -> Result<Vec<u8>, String> {
    let ct = B64.decode(ciphertext).map_err(|_| "ciphertext is not base64")?;
    let (key, nonce) = match nonce.strip_prefix("v2:") {
        Some(rest) => {
            let (salt, nonce) = rest.split_once(':').ok_or("malformed v2 nonce field")?;
            let salt: [u8; 16] = B64
                .decode(salt)
                .ok()
                .and_then(|s| s.try_into().ok())
                .ok_or("salt must be 16 bytes of base64")?;
            (
                derive(pass, &salt)?,
                B64.decode(nonce).map_err(|_| "nonce is not base64")?,
            )
        }
        // Sealed before argon2id: the key was SHA-256 of the passphrase.
        None => (
            Sha256::digest(pass.as_bytes()).into(),
            B64.decode(nonce).map_err(|_| "nonce is not base64")?,
        ),
    };
    if nonce.len() != 12 {
        return Err("nonce must be 12 bytes".into());
    }
    cipher(&key)?
        .decrypt(Nonce::from_slice(&nonce), Payload { msg: &ct, aad })
        .map_err(|_| "wrong WAYGATE_SECRET_KEY or modified data".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_salted_and_legacy() {
        let pass = "a passphrase, not random bytes";
        let (n1, c1) = seal_with(pass, b"hunter2", b"ctx").unwrap();
        let (n2, c2) = seal_with(pass, b"hunter2", b"ctx").unwrap();
        assert!(
            n1.starts_with("v2:") && n1 != n2 && c1 != c2,
            "fresh salt and nonce each time"
        );
        assert_eq!(open_with(pass, &n1, &c1, b"ctx").unwrap(), b"hunter2");
        assert!(open_with(pass, &n1, &c1, b"other purpose").is_err());
        assert!(open_with("another passphrase entirely", &n1, &c1, b"ctx").is_err());
        // A value sealed by the previous format (SHA-256 key, bare nonce) still opens.
        let key: [u8; 32] = Sha256::digest(pass.as_bytes()).into();
        let nonce = [7u8; 12];
        let ct = cipher(&key)
            .unwrap()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: b"old",
                    aad: b"ctx",
                },
            )
            .unwrap();
        assert_eq!(
            open_with(pass, &B64.encode(nonce), &B64.encode(ct), b"ctx").unwrap(),
            b"old"
        );
    }
}
