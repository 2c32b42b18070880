//! Tool-definition pinning ("rug-pull" protection). Each pinned tool's definition (name,
//! title, description, schemas, annotations) is hashed; the first hash is approved (trust
//! on first use, unless `approve_new = false`) and stored. When a plugin later offers a
//! different definition under the same name, that tool is held back from the catalog —
//! callers see it as unknown — until an operator approves the new definition.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use waygate_core::policy::glob;
use waygate_core::{CatalogGate, Manifest};
use waygate_store::Store;

use crate::config::PinningSection;

/// A tool held back because its definition changed (or is new and unapproved).
#[derive(Debug, Clone)]
pub struct Held {
    pub sha256: String,
    pub approved_sha256: Option<String>,
    pub definition: Value,
}

type Key = (String, String);

pub struct PinGate {
    enabled: bool,
    plugins: Option<Vec<String>>,
    approve_new: bool,
    approved: RwLock<HashMap<Key, String>>,
    held: RwLock<BTreeMap<Key, Held>>,
    /// First-use approvals made while publishing (a sync path), written by a task.
    tofu: mpsc::UnboundedSender<(Key, String, Value)>,
    /// Each tool's last digest with the text it was taken of: every publish re-admits
    /// every plugin, and an unchanged definition (the same shared text) is not hashed again.
    digests: std::sync::Mutex<HashMap<Key, (Arc<str>, String)>>,
}

/// The part of a definition that the pin covers.
pub fn digest(def: &Value) -> String {
    let pinned = json!({
        "name": def.get("name"), "title": def.get("title"), "description": def.get("description"),
        "inputSchema": def.get("inputSchema"), "outputSchema": def.get("outputSchema"),
        "annotations": def.get("annotations"),
    });
    // serde_json's map is ordered by key, so this serialization is canonical.
    waygate_core::util::hex(&Sha256::digest(pinned.to_string().as_bytes()))
}

impl PinGate {
    /// Load the approvals from the store and start the writer for new ones.
    pub async fn open(cfg: &PinningSection, store: Store) -> std::sync::Arc<PinGate> {
        let approved = match store.pins().await {
            Ok(rows) => rows.into_iter().map(|p| ((p.plugin, p.tool), p.sha256)).collect(),
            Err(e) => {
                tracing::error!(error = %e, "cannot read tool pins; pinned tools with no approval are held back");
                HashMap::new()
            }
        };
        let (tx, mut rx) = mpsc::unbounded_channel::<(Key, String, Value)>();
        tokio::spawn(async move {
            while let Some(((plugin, tool), sha, def)) = rx.recv().await {
                if let Err(e) = store.put_pin(&plugin, &tool, &sha, &def.to_string(), "first-use").await {
                    tracing::warn!(%plugin, %tool, error = %e, "could not store a tool pin");
                }
            }
        });
        std::sync::Arc::new(PinGate {
            enabled: cfg.enabled.unwrap_or(true),
            plugins: cfg.plugins.clone(),
            approve_new: cfg.approve_new.unwrap_or(true),
            approved: RwLock::new(approved),
            held: RwLock::new(BTreeMap::new()),
            tofu: tx,
            digests: std::sync::Mutex::new(HashMap::new()),
        })
    }

    fn digest_of(&self, key: &Key, t: &waygate_core::ToolDef) -> String {
        let mut cache = self.digests.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((text, sha)) = cache.get(key) {
            if Arc::ptr_eq(text, t.text()) {
                return sha.clone();
            }
        }
        let sha = digest(&t.definition());
        cache.insert(key.clone(), (t.text().clone(), sha.clone()));
        sha
    }

    fn pinned(&self, plugin: &str) -> bool {
        self.enabled
            && match &self.plugins {
                Some(globs) => globs.iter().any(|g| glob(g, plugin)),
                None => !waygate_plugins::BUILTIN.contains(&plugin),
            }
    }

    pub fn held(&self) -> Vec<(String, String, Held)> {
        self.held
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|((p, t), h)| (p.clone(), t.clone(), h.clone()))
            .collect()
    }

    /// Take the approvals in the store (another replica approved a pin); true when they
    /// differ from what this replica holds, and the caller republishes the catalog.
    pub async fn reload(&self, store: &Store) -> bool {
        let rows = match store.pins().await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "cannot re-read tool pins; keeping the loaded ones");
                return false;
            }
        };
        let fresh: HashMap<Key, String> = rows.into_iter().map(|p| ((p.plugin, p.tool), p.sha256)).collect();
        let mut approved = self.approved.write().unwrap_or_else(|e| e.into_inner());
        let mut changed = false;
        for (k, sha) in fresh {
            if approved.get(&k) != Some(&sha) {
                approved.insert(k, sha);
                changed = true;
            }
        }
        changed
    }

    /// Approve the held definition of `plugin`/`tool`; the caller republishes the catalog.
    pub async fn approve(&self, store: &Store, plugin: &str, tool: &str, by: &str) -> Result<String, String> {
        let key = (plugin.to_string(), tool.to_string());
        let held = self
            .held
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned()
            .ok_or_else(|| format!("no held definition for {plugin}/{tool}"))?;
        store
            .put_pin(plugin, tool, &held.sha256, &held.definition.to_string(), by)
            .await
            .map_err(|e| format!("store: {e}"))?;
        self.approved
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone(), held.sha256.clone());
        self.held.write().unwrap_or_else(|e| e.into_inner()).remove(&key);
        Ok(held.sha256)
    }
}

impl CatalogGate for PinGate {
    fn admit(&self, plugin: &str, manifest: &Arc<Manifest>) -> Arc<Manifest> {
        let mut held = self.held.write().unwrap_or_else(|e| e.into_inner());
        held.retain(|(p, _), _| p != plugin);
        if !self.pinned(plugin) {
            return manifest.clone();
        }
        let mut approved = self.approved.write().unwrap_or_else(|e| e.into_inner());
        let keep: Vec<bool> = manifest
            .tools
            .iter()
            .map(|t| {
                let key = (plugin.to_string(), t.name().to_string());
                let sha = self.digest_of(&key, t);
                match approved.get(&key) {
                    Some(a) if *a == sha => true,
                    None if self.approve_new => {
                        approved.insert(key.clone(), sha.clone());
                        let _ = self.tofu.send((key, sha, t.definition()));
                        true
                    }
                    was => {
                        tracing::warn!(%plugin, tool = %key.1, "tool definition changed since it was approved; held back until re-approved");
                        let approved_sha256 = was.cloned();
                        held.insert(key, Held { sha256: sha, approved_sha256, definition: t.definition() });
                        false
                    }
                }
            })
            .collect();
        if keep.iter().all(|k| *k) {
            return manifest.clone();
        }
        let mut m = Manifest::clone(manifest);
        let mut it = keep.into_iter();
        m.tools.retain(|_| it.next().unwrap_or(false));
        Arc::new(m)
    }
}
