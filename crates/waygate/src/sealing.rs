//! AES-256-GCM sealing under a key derived from `WAYGATE_SECRET_KEY`: used for the secrets
//! of an export and for the encrypted credential store. The associated data binds each
//! ciphertext to its purpose (and a stored secret to its name), so a ciphertext moved to
//! another place does not decrypt.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use sha2::{Digest, Sha256};

fn cipher() -> Result<Aes256Gcm, String> {
    let secret = std::env::var("WAYGATE_SECRET_KEY")
        .map_err(|_| "set WAYGATE_SECRET_KEY (16+ characters) to encrypt or decrypt secrets")?;
    if secret.len() < 16 {
        return Err(format!(
            "WAYGATE_SECRET_KEY has {} characters; expected at least 16",
            secret.len()
        ));
    }
    let key = Sha256::digest(secret.as_bytes());
    Aes256Gcm::new_from_slice(&key).map_err(|e| e.to_string())
}

/// `(nonce, ciphertext)`, both base64.
pub fn seal(plain: &[u8], aad: &[u8]) -> Result<(String, String), String> {
    let mut nonce = [0u8; 12];
    getrandom::getrandom(&mut nonce).map_err(|e| format!("no randomness: {e}"))?;
    let ct = cipher()?
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad })
        .map_err(|_| "encryption failed")?;
    Ok((B64.encode(nonce), B64.encode(ct)))
}

pub fn open(nonce: &str, ciphertext: &str, aad: &[u8]) -> Result<Vec<u8>, String> {
    let nonce = B64.decode(nonce).map_err(|_| "nonce is not base64")?;
    let ct = B64.decode(ciphertext).map_err(|_| "ciphertext is not base64")?;
    if nonce.len() != 12 {
        return Err("nonce must be 12 bytes".into());
    }
    cipher()?
        .decrypt(Nonce::from_slice(&nonce), Payload { msg: &ct, aad })
        .map_err(|_| "wrong WAYGATE_SECRET_KEY or modified data".into())
}
