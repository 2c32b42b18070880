//! `waygate keys create|list|revoke|rotate`, and what `serve` uses: the first admin key and
//! the refresh of the in-memory key table from the store.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use waygate_core::auth::{generate_key, ApiKeys, KeyRecord};
use waygate_store::Store;

use super::CmdResult;
use crate::cli::{Global, KeysCommand};

pub fn run(g: &Global, cmd: KeysCommand) -> CmdResult {
    if super::remote_admin::keys_target(&cmd).is_some() {
        return super::remote_admin::keys(g, cmd);
    }
    let l = super::load_config(g)?;
    super::runtime()?.block_on(async {
        let store = super::open_store(g, &l).await?;
        match cmd {
            KeysCommand::Create {
                name,
                scopes,
                expires_in_days,
                server,
            } => {
                let scopes: Vec<String> = scopes
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                for s in &scopes {
                    waygate_core::auth::check_scope(s)?;
                }
                let expires = expires_in_days.map(|d| now_ms() + (d as i64) * 86_400_000);
                let key = create(&store, &name, &scopes, expires).await?;
                let id = key.split('_').nth(1).unwrap_or_default();
                crate::audit_queue::record_admin(
                    &store,
                    "admin/keys.create",
                    &format!("{id} {name} [{}]", scopes.join(",")),
                )
                .await;
                let v = created(id, &name, &scopes, &key, expires);
                super::remote::say(&server, &v, &key);
                if !server.json {
                    eprintln!(
                        "created key for {name:?} (scopes: {}); it is shown only once",
                        scopes.join(",")
                    );
                }
            }
            KeysCommand::List { server } => {
                // The API's shape, so scripts read the same JSON offline and with --url.
                let now = now_ms();
                let rows: Vec<serde_json::Value> = store
                    .keys()
                    .await?
                    .into_iter()
                    .map(|k| {
                        let state = match (k.revoked_at, k.expires_at) {
                            (Some(_), _) => "revoked",
                            (None, Some(e)) if e <= now => "expired",
                            _ => "active",
                        };
                        let mut row = serde_json::json!({
                            "id": k.id, "name": k.name, "scopes": k.scopes,
                            "state": state, "created_at": k.created_at,
                        });
                        for (f, v) in [("expires_at", k.expires_at), ("revoked_at", k.revoked_at)] {
                            if let Some(v) = v {
                                row[f] = v.into();
                            }
                        }
                        row
                    })
                    .collect();
                let v = serde_json::json!({ "keys": rows });
                super::remote::print(&server, &v, |v| super::remote_admin::key_table(&v["keys"]));
            }
            KeysCommand::Revoke { id, server } => {
                if !store.revoke_key(&id).await? {
                    return Err(format!("no active key with id {id:?}; see `waygate keys list`").into());
                }
                crate::audit_queue::record_admin(&store, "admin/keys.revoke", &id).await;
                let v = serde_json::json!({ "id": id, "state": "revoked" });
                super::remote::say(&server, &v, &format!("revoked {id}"));
            }
            KeysCommand::Rotate { id, server } => {
                let old = store
                    .keys()
                    .await?
                    .into_iter()
                    .find(|k| k.id == id && k.revoked_at.is_none());
                let old = old.ok_or_else(|| format!("no active key with id {id:?}; see `waygate keys list`"))?;
                let key = create(&store, &old.name, &old.scopes, old.expires_at).await?;
                store.revoke_key(&id).await?;
                crate::audit_queue::record_admin(&store, "admin/keys.rotate", &id).await;
                let new_id = key.split('_').nth(1).unwrap_or_default();
                let v = created(new_id, &old.name, &old.scopes, &key, old.expires_at);
                super::remote::say(&server, &v, &key);
                if !server.json {
                    eprintln!("rotated {id}: the old key is revoked, the new one is shown only once");
                }
            }
        }
        // Replicas on PostgreSQL take the change at once (they also re-read every second).
        crate::fleet::announce(&store, crate::fleet::Change::Keys).await;
        store.close().await;
        Ok(())
    })
}

/// A key just made, shaped like the API's answer (`--json`).
fn created(id: &str, name: &str, scopes: &[String], key: &str, expires_at: Option<i64>) -> serde_json::Value {
    let mut v = serde_json::json!({ "id": id, "name": name, "scopes": scopes, "key": key });
    if let Some(e) = expires_at {
        v["expires_at"] = e.into();
    }
    v
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

async fn create(
    store: &Store,
    name: &str,
    scopes: &[String],
    expires_at: Option<i64>,
) -> Result<String, Box<dyn std::error::Error>> {
    let k = generate_key();
    store.create_key(&k.id, name, &k.hash, scopes, expires_at).await?;
    Ok(k.key)
}

/// Add `[auth] admin_key` to the key table when its id is absent. Replicas starting together
/// may race on the insert: the loser re-reads and accepts the winner's row when it holds
/// the same key. A different key under that id is an error rather than a silent takeover.
pub async fn provision_admin_key(store: &Store, key: &str) -> Result<(), Box<dyn std::error::Error>> {
    let id = waygate_core::auth::check_provided_key(key).map_err(|m| format!("auth.admin_key: {m}"))?;
    let hash = waygate_core::auth::hash_key(key);
    let same = |rows: &[waygate_store::KeyRow]| rows.iter().find(|r| r.id == id).map(|r| r.hash == hash);
    match same(&store.keys().await?) {
        Some(true) => return Ok(()),
        Some(false) => {
            return Err(format!("auth.admin_key: the key table already has a different key with id {id:?}").into())
        }
        None => {}
    }
    let scopes = ["admin".to_string(), "mcp".to_string()];
    if let Err(e) = store.create_key(id, "admin (provisioned)", &hash, &scopes, None).await {
        if same(&store.keys().await?) != Some(true) {
            return Err(e.into());
        }
    }
    tracing::info!(id, "provisioned the admin key from [auth] admin_key");
    Ok(())
}

/// On a store with no keys at all, create an admin key and return it (to print once).
pub async fn first_admin_key(store: &Store) -> Result<Option<String>, Box<dyn std::error::Error>> {
    if !store.keys().await?.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        create(store, "admin", &["admin".into(), "mcp".into()], None).await?,
    ))
}

async fn load(store: &Store, keys: &ApiKeys) -> Result<(), waygate_store::StoreError> {
    let rows = store.keys().await?;
    keys.replace(
        rows.into_iter()
            .map(|r| KeyRecord {
                id: r.id,
                name: r.name,
                hash: r.hash,
                scopes: r.scopes,
                expires_at: r.expires_at.map(|ms| (ms / 1000).max(0) as u64),
                revoked: r.revoked_at.is_some(),
            })
            .collect(),
    );
    Ok(())
}

/// Reload the key table now (after a change through the admin API).
pub async fn refresh(store: &Store, keys: &ApiKeys) {
    if let Err(e) = load(store, keys).await {
        tracing::warn!(error = %e, "API key refresh failed; keeping the last key table");
    }
}

/// Load the key table now, then refresh it every second so revocations made by
/// `waygate keys` (another process, maybe another replica) apply at once. A store outage
/// keeps the last table.
pub async fn keep_fresh(store: Store, keys: ApiKeys, stop: CancellationToken) {
    if let Err(e) = load(&store, &keys).await {
        tracing::error!(error = %e, "cannot load API keys");
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {
                if let Err(e) = load(&store, &keys).await {
                    tracing::warn!(error = %e, "API key refresh failed; keeping the last key table");
                }
            }
        }
    }
}
