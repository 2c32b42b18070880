//! Virtual servers added at runtime (admin API): validated exactly as `[[servers]]`
//! entries are, kept in the store (`meta` key `runtime_servers`), served at once and
//! restored on the next start. A name the config file defines belongs to the file.

use std::sync::RwLock;

use serde_json::Value;
use waygate_admin::Problem;
use waygate_store::Store;

use crate::config::{catalog::VirtualServer, ConfigError, FileConfig};

const META_KEY: &str = "runtime_servers";

#[derive(Default)]
pub struct RuntimeServers(RwLock<Vec<VirtualServer>>);

impl RuntimeServers {
    pub fn list(&self) -> Vec<VirtualServer> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Load the stored ones (at start, and when another replica changed them).
    pub async fn restore(&self, store: &Store) {
        let stored = match store.meta_get(META_KEY).await {
            Ok(Some(text)) => serde_json::from_str::<Vec<VirtualServer>>(&text).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "stored runtime virtual servers unreadable; ignored");
                Vec::new()
            }),
            Ok(None) => Vec::new(),
            Err(e) => {
                tracing::warn!(error = %e, "could not read stored runtime virtual servers; keeping the loaded ones");
                return;
            }
        };
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = stored;
    }

    /// The file's servers, then the runtime ones the file does not name.
    pub fn merged(&self, cfg: &FileConfig) -> FileConfig {
        let mut out = cfg.clone();
        for s in self.list() {
            if !out.servers.iter().any(|f| f.name == s.name) {
                out.servers.push(s);
            }
        }
        out
    }

    async fn save(&self, store: &Store, list: Vec<VirtualServer>) -> Result<(), Problem> {
        let text = serde_json::to_string(&list).unwrap_or_else(|_| "[]".into());
        store
            .meta_put(META_KEY, &text)
            .await
            .map_err(|e| Problem::unavailable(format!("store: {e}")))?;
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = list;
        Ok(())
    }

    /// Add or replace one; `true` when created.
    pub async fn put(&self, cfg: &FileConfig, store: &Store, entry: Value) -> Result<bool, Problem> {
        let s: VirtualServer = serde_json::from_value(entry)
            .map_err(|e| Problem::bad_request(format!("not a virtual server entry: {e}")))?;
        if cfg.servers.iter().any(|f| f.name == s.name) {
            return Err(Problem::conflict(format!(
                "{:?} is a virtual server from the config file; change it there",
                s.name
            ))
            .field("name"));
        }
        let mut probe = cfg.clone();
        probe.servers = vec![s.clone()];
        probe.validate(&|_| "request body".into()).map_err(|e| match e {
            ConfigError::Value { key, message, .. } => {
                let field = key.strip_prefix("servers[0].").unwrap_or(&key).to_string();
                Problem::with_status(422, format!("{field}: {message}")).field(field)
            }
            e => Problem::with_status(422, e.to_string()),
        })?;
        let mut list = self.list();
        let created = match list.iter_mut().find(|x| x.name == s.name) {
            Some(x) => {
                *x = s;
                false
            }
            None => {
                list.push(s);
                true
            }
        };
        self.save(store, list).await?;
        Ok(created)
    }

    pub async fn remove(&self, cfg: &FileConfig, store: &Store, name: &str) -> Result<(), Problem> {
        if cfg.servers.iter().any(|f| f.name == name) {
            return Err(Problem::conflict(format!(
                "{name:?} is a virtual server from the config file; remove it there"
            ))
            .field("name"));
        }
        let mut list = self.list();
        let before = list.len();
        list.retain(|s| s.name != name);
        if list.len() == before {
            return Err(Problem::not_found(format!("no virtual server named {name:?}")).field("name"));
        }
        self.save(store, list).await
    }
}
