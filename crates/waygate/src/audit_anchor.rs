//! The key that signs the audit chain's anchor, and the local copy of the signed head.
//!
//! The anchor row lives in the store (so every replica of a fleet moves it); its key does
//! not: `[audit] anchor_key` (share it across replicas, like `mcp.state_key`), else a random
//! key created once in `<data-dir>/audit.key` (mode 0600). Someone who can write the database
//! but not read that key cannot delete the newest records and re-sign the head.
//!
//! A copy of the newest head this process wrote is kept in `<data-dir>/audit.head`: an
//! attacker with database access who saved an old anchor row and puts it back after
//! deleting everything after it is caught there, on the machine that wrote the head.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::{json, Value};
use waygate_store::{anchor_mac, Anchor, AnchorCheck, Store};

static KEY: OnceLock<Vec<u8>> = OnceLock::new();
static HEAD: OnceLock<PathBuf> = OnceLock::new();

/// Load (or create) the anchor key for this process; idempotent.
pub fn install(cfg: &crate::config::FileConfig, dir: &Path) {
    if KEY.get().is_some() {
        return;
    }
    let key = match cfg.audit.anchor_key.as_ref() {
        Some(k) => Some(k.expose().as_bytes().to_vec()),
        None => file_key(&dir.join("audit.key")),
    };
    if let Some(k) = key {
        let _ = KEY.set(k);
        let _ = HEAD.set(dir.join("audit.head"));
    }
}

fn file_key(path: &Path) -> Option<Vec<u8>> {
    if let Ok(k) = std::fs::read_to_string(path) {
        return Some(k.trim().as_bytes().to_vec());
    }
    let k = waygate_core::util::random_hex(32);
    let _ = std::fs::create_dir_all(path.parent()?);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    match opts.open(path) {
        Ok(mut f) => {
            std::io::Write::write_all(&mut f, k.as_bytes()).ok()?;
            Some(k.into_bytes())
        }
        // Another process created it first: use theirs.
        Err(_) => std::fs::read_to_string(path).ok().map(|k| k.trim().as_bytes().to_vec()),
    }
}

pub fn key() -> Option<&'static [u8]> {
    KEY.get().map(Vec::as_slice)
}

/// Keep the newest head this process signed (atomically replaced).
pub fn write_head(a: &Anchor) {
    let Some(path) = HEAD.get() else { return };
    let tmp = path.with_extension("head.tmp");
    let doc = json!({ "seq": a.seq, "hash": a.hash, "mac": a.mac });
    if std::fs::write(&tmp, doc.to_string())
        .and_then(|_| std::fs::rename(&tmp, path))
        .is_err()
    {
        tracing::warn!(path = %path.display(), "could not write the local audit head");
    }
}

/// Append, anchored when a key is installed; the local head follows.
pub async fn append(store: &Store, rows: &[(i64, String)]) -> Result<(), waygate_store::StoreError> {
    if let Some(head) = store.audit_append_anchored(rows, key()).await? {
        write_head(&head);
    }
    Ok(())
}

/// `audit verify`: the chain, its anchor, and the local head. `Err(reason)` on any finding.
pub async fn verify(store: &Store) -> Result<String, String> {
    let (chain, anchor) = store.audit_verify_anchored(key()).await.map_err(|e| e.to_string())?;
    if let Some(seq) = chain.first_bad {
        return Err(format!(
            "audit chain broken at record {seq}: it or an earlier link was altered, inserted or removed"
        ));
    }
    let end = match anchor {
        AnchorCheck::Ok => "end anchored".to_string(),
        AnchorCheck::NoKey => "end NOT verified (no anchor key: set [audit] anchor_key or keep <data-dir>/audit.key)".into(),
        AnchorCheck::Missing => {
            return Err("the audit anchor is missing although records exist: the newest records may have been deleted (or they predate anchoring; the next audited call anchors the chain again)".into())
        }
        AnchorCheck::Forged => return Err("the audit anchor's signature is wrong: it was forged or written with another anchor key".into()),
        AnchorCheck::Truncated { anchored, last } => {
            return Err(format!(
                "audit trail truncated: the anchor names segment {anchored}, but the chain now ends at {last}"
            ))
        }
        AnchorCheck::Unanchored { anchored, last } => {
            return Err(format!(
                "segments {}..={last} were appended after the anchor ({anchored}) by a writer without the anchor key",
                anchored + 1
            ))
        }
    };
    // The local head: never behind the stored anchor, and its row still there.
    if let (Some(path), Some(k)) = (HEAD.get(), key()) {
        if let Ok(text) = std::fs::read_to_string(path) {
            let v: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            let (seq, hash, mac) = (
                v["seq"].as_i64().unwrap_or(-1),
                v["hash"].as_str().unwrap_or_default(),
                v["mac"].as_str().unwrap_or_default(),
            );
            if anchor_mac(k, seq, hash) != mac {
                return Err(format!("{}: the local audit head's signature is wrong", path.display()));
            }
            if store.audit_hash_at(seq).await.map_err(|e| e.to_string())?.as_deref() != Some(hash) {
                return Err(format!(
                    "audit trail truncated: this machine anchored segment {seq}, which is gone or different (the stored anchor was rolled back)"
                ));
            }
        }
    }
    Ok(format!("ok: {} audit segment(s), hash chain intact, {end}", chain.rows))
}
