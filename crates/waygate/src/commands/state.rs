//! `waygate export` / `waygate import-state`: move a whole Waygate (configuration, plugin
//! state, upstreams, API keys, the requestState key, the encrypted credential store, tool
//! pins) to another instance. Secrets travel encrypted with AES-256-GCM under a key derived
//! from `WAYGATE_SECRET_KEY` with argon2id (see `sealing`); credential-store rows travel as
//! the ciphertext they already are.

use std::path::PathBuf;

use serde_json::{json, Value};

use super::CmdResult;
use crate::cli::Global;

const FORMAT: &str = "waygate-state";
const AAD: &[u8] = b"waygate-state-v1";

fn seal(plain: &[u8]) -> Result<Value, String> {
    let (nonce, ct) = crate::sealing::seal(plain, AAD)?;
    Ok(json!({ "alg": "AES-256-GCM", "kdf": crate::sealing::KDF, "nonce": nonce, "ciphertext": ct }))
}

fn open(sealed: &Value) -> Result<Vec<u8>, String> {
    let field = |k: &str| {
        sealed
            .get(k)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("secrets.{k} missing"))
    };
    crate::sealing::open(field("nonce")?, field("ciphertext")?, AAD)
        .map_err(|e| format!("cannot decrypt the secrets of the export: {e}"))
}

pub fn export(g: &Global, out: Option<PathBuf>) -> CmdResult {
    let l = super::load_config(g)?;
    let dir = super::data_dir(g);
    let progress = super::progress::Progress::new(6, "exporting");
    let doc = super::runtime()?.block_on(async {
        let store = super::open_store(g, &l).await?;
        progress.step("plugins");
        let plugins: Vec<Value> = store
            .plugin_states()
            .await?
            .into_iter()
            .map(|p| json!({ "name": p.name, "enabled": p.enabled, "settings": p.settings }))
            .collect();
        let upstreams: Vec<Value> = store
            .upstreams()
            .await?
            .into_iter()
            .map(|u| json!({ "name": u.name, "spec": u.spec }))
            .collect();
        progress.step("keys");
        let keys: Vec<Value> = store
            .keys()
            .await?
            .into_iter()
            .map(|k| {
                json!({ "id": k.id, "name": k.name, "hash": k.hash, "scopes": k.scopes,
                             "created_at": k.created_at, "expires_at": k.expires_at, "revoked_at": k.revoked_at })
            })
            .collect();
        progress.step("credentials");
        let credentials: Vec<Value> = store
            .secrets()
            .await?
            .into_iter()
            .map(|s| json!({ "name": s.name, "nonce": s.nonce, "ciphertext": s.ciphertext }))
            .collect();
        progress.step("tool pins");
        let pins: Vec<Value> = store
            .pins()
            .await?
            .into_iter()
            .map(|p| {
                json!({ "plugin": p.plugin, "tool": p.tool, "sha256": p.sha256, "definition": p.definition,
                        "approved_by": p.approved_by, "approved_at": p.approved_at })
            })
            .collect();
        progress.step("sealing secrets (argon2id)");
        let state_key = std::fs::read_to_string(dir.join("state.key")).ok();
        let secrets = serde_json::to_vec(&json!({ "api_keys": keys, "state_key": state_key }))?;
        store.close().await;
        Ok::<_, Box<dyn std::error::Error>>(json!({
            "format": FORMAT,
            "version": 2,
            "exported_at": waygate_core::util::rfc3339_now(),
            "config": l.raw,
            "plugins": plugins,
            "upstreams": upstreams,
            "tool_pins": pins,
            "credentials": credentials,
            "secrets": seal(&secrets)?,
        }))
    })?;
    progress.step("done");
    progress.finish();
    let text = serde_json::to_string_pretty(&doc)?;
    match out {
        Some(p) => {
            std::fs::write(&p, text)?;
            eprintln!("exported to {}", p.display());
        }
        None => println!("{text}"),
    }
    Ok(())
}

pub fn import_state(g: &Global, file: PathBuf, dry_run: bool) -> CmdResult {
    let text = std::fs::read_to_string(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", file.display()))?;
    if doc.get("format").and_then(Value::as_str) != Some(FORMAT) {
        return Err(format!("{} is not a Waygate export (format {FORMAT:?})", file.display()).into());
    }
    if !matches!(doc.get("version").and_then(Value::as_u64), Some(1 | 2)) {
        return Err(format!("{}: unsupported export version; expected 1 or 2", file.display()).into());
    }
    let secrets: Value = serde_json::from_slice(&open(doc.get("secrets").ok_or("secrets missing")?)?)?;
    let keys = secrets
        .get("api_keys")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let plugins = doc
        .get("plugins")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let upstreams = doc
        .get("upstreams")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let list = |k: &str| doc.get(k).and_then(Value::as_array).cloned().unwrap_or_default();
    let (pins, credentials) = (list("tool_pins"), list("credentials"));
    // Stored secrets are opened once here, so a wrong key fails before anything is written.
    for c in &credentials {
        let field = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or_default();
        crate::sealing::open(field("nonce"), field("ciphertext"), &super::secrets::aad(field("name")))
            .map_err(|e| format!("credential {:?} of the export cannot be opened: {e}", field("name")))?;
    }
    println!(
        "{}: {} plugin state(s), {} upstream(s), {} API key(s), {} stored secret(s), {} tool pin(s), config: {}",
        file.display(),
        plugins.len(),
        upstreams.len(),
        keys.len(),
        credentials.len(),
        pins.len(),
        if doc.get("config").is_some_and(Value::is_string) {
            "yes"
        } else {
            "no"
        }
    );
    if dry_run {
        println!("dry run: nothing written");
        return Ok(());
    }
    let l = super::load_config(g)?;
    let dir = super::data_dir(g);
    let config_path = l.path.clone().unwrap_or_else(|| dir.join("waygate.toml"));
    if let Some(cfg) = doc.get("config").and_then(Value::as_str) {
        let tmp = config_path.with_extension("toml.import-state");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(&tmp, cfg)?;
        if let Err(e) = crate::config::layers_load(Some(&tmp), &[]) {
            let _ = std::fs::remove_file(&tmp);
            return Err(format!("the exported configuration does not validate here: {e}").into());
        }
        if config_path.exists() {
            std::fs::copy(&config_path, config_path.with_extension("toml.bak"))?;
        }
        std::fs::rename(&tmp, &config_path)?;
    }
    if let Some(k) = secrets.get("state_key").and_then(Value::as_str) {
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("state.key"), k)?;
    }
    super::runtime()?.block_on(async {
        let store = super::open_store(g, &l).await?;
        for p in &plugins {
            let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
            let settings = p.get("settings").and_then(Value::as_str).unwrap_or("{}");
            store
                .set_plugin_state(
                    name,
                    p.get("enabled").and_then(Value::as_bool).unwrap_or(false),
                    settings,
                )
                .await?;
        }
        for u in &upstreams {
            let (Some(n), Some(s)) = (
                u.get("name").and_then(Value::as_str),
                u.get("spec").and_then(Value::as_str),
            ) else {
                continue;
            };
            store.put_upstream(n, s).await?;
        }
        let existing: Vec<String> = store.keys().await?.into_iter().map(|k| k.id).collect();
        let mut added = 0;
        for k in &keys {
            let id = k.get("id").and_then(Value::as_str).unwrap_or_default();
            if id.is_empty() || existing.iter().any(|e| e == id) {
                continue;
            }
            let scopes: Vec<String> = k
                .get("scopes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect();
            let hash = k.get("hash").and_then(Value::as_str).unwrap_or_default();
            store
                .create_key(
                    id,
                    k.get("name").and_then(Value::as_str).unwrap_or("imported"),
                    hash,
                    &scopes,
                    k.get("expires_at").and_then(Value::as_i64),
                )
                .await?;
            if k.get("revoked_at").is_some_and(|r| !r.is_null()) {
                store.revoke_key(id).await?;
            }
            added += 1;
        }
        for c in &credentials {
            let field = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or_default();
            store
                .put_secret(field("name"), field("nonce"), field("ciphertext"))
                .await?;
        }
        for p in &pins {
            let field = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or_default();
            if field("plugin").is_empty() || field("tool").is_empty() {
                continue;
            }
            store
                .put_pin(
                    field("plugin"),
                    field("tool"),
                    field("sha256"),
                    field("definition"),
                    field("approved_by"),
                )
                .await?;
        }
        if let Some(cfg) = doc.get("config").and_then(Value::as_str) {
            store.snapshot_config("import-state", cfg).await?;
        }
        store.close().await;
        println!(
            "imported into {}: {added} new API key(s); config at {}",
            super::store_url(g, &l),
            config_path.display()
        );
        Ok(())
    })
}
