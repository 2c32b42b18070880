//! Upstreams managed at runtime (admin API, `waygate upstreams …`): validated exactly as
//! `[[upstreams]]` entries are, stored in the store's `upstreams` table, applied without a
//! restart and restored on the next start.
//!
//! Precedence: a name defined in the config file belongs to the file. Adding a runtime
//! upstream under such a name is refused (409); if the file later defines a name a stored
//! runtime upstream has, the file's entry is served and the stored one is ignored (with a
//! warning) until it is removed.

use serde_json::{json, Value};
use waygate_store::Store;

use super::{Item, Origin, PluginManager, Spec};
use crate::config::{FileConfig, Upstream};
use crate::upstreams::UpstreamEntry;

/// A failed change: HTTP status, message, and the field at fault when there is one.
pub type Refusal = (u16, String, Option<String>);

impl PluginManager {
    /// Check an entry as the config file would be checked, in the context of `cfg`.
    fn check_entry(cfg: &FileConfig, u: &Upstream) -> Result<(), Refusal> {
        let mut probe = cfg.clone();
        probe.upstreams = vec![u.clone()];
        probe.servers.clear();
        probe.validate(&|_| "request body".into()).map_err(|e| match e {
            crate::config::ConfigError::Value { key, message, .. } => {
                let field = key.strip_prefix("upstreams[0].").unwrap_or(&key).to_string();
                (422, format!("{field}: {message}"), Some(field))
            }
            e => (422, e.to_string(), None),
        })
    }

    /// Add or change a runtime upstream; `Ok(true)` when it was created.
    pub async fn put_upstream(&self, cfg: &FileConfig, u: Upstream) -> Result<bool, Refusal> {
        Self::check_entry(cfg, &u)?;
        let name = u.name.clone();
        let mut items = self.items.lock().await;
        let created = match items.get(&name) {
            Some(i) if i.origin == Origin::Config => {
                let what = if matches!(i.spec, Spec::Upstream(_)) {
                    "upstream"
                } else {
                    "plugin"
                };
                return Err((
                    409,
                    format!("{name:?} is a {what} from the config file; change it there"),
                    Some("name".into()),
                ));
            }
            Some(i) if !matches!(i.spec, Spec::Upstream(_)) => {
                return Err((409, format!("{name:?} is the name of a plugin"), Some("name".into())));
            }
            Some(_) => false,
            None => true,
        };
        let spec = Spec::Upstream(Box::new(UpstreamEntry {
            upstream: u.clone(),
            outbound: cfg.outbound.clone(),
        }));
        let enabled = items.get(&name).is_none_or(|i| i.enabled) && u.enabled != Some(false);
        let mut item = Item {
            spec,
            origin: Origin::Runtime,
            enabled,
            wasm: None,
        };
        let others = items.iter().filter(|(n, _)| **n != name).map(|(_, i)| &i.spec);
        self.reshape(others.chain(std::iter::once(&item.spec))).await;
        if let Some(store) = self.store.get() {
            let doc = serde_json::to_string(&u).unwrap_or_default();
            if let Err(e) = store.put_upstream(&name, &doc).await {
                return Err((503, format!("the store did not take the change: {e}"), None));
            }
        }
        if enabled {
            // A changed entry replaces the running client (which drains); a failure to
            // start is reported on the upstream's row, not as a refused change.
            if let Err(e) = self.install(&mut item, !created).await {
                tracing::warn!(upstream = %name, error = %e, "runtime upstream stored but not started");
            }
        } else if !created {
            self.registry.unload_disabled(&name).await;
            self.forget_upstream(&name);
        }
        self.persist(&name, Some(&item)).await;
        items.insert(name, item);
        self.rebuild_hooks(&items);
        Ok(created)
    }

    /// Remove a runtime upstream for good.
    pub async fn remove_upstream(&self, name: &str) -> Result<(), Refusal> {
        let mut items = self.items.lock().await;
        match items.get(name) {
            None => return Err((404, format!("no upstream named {name:?}"), None)),
            Some(i) if !matches!(i.spec, Spec::Upstream(_)) => {
                return Err((404, format!("{name:?} is a plugin, not an upstream"), None))
            }
            Some(i) if i.origin == Origin::Config => {
                return Err((
                    409,
                    format!("{name:?} comes from the config file: remove it there, or disable it"),
                    None,
                ))
            }
            Some(_) => {}
        }
        if let Some(store) = self.store.get() {
            if let Err(e) = store.delete_upstream(name).await {
                return Err((503, format!("the store did not take the change: {e}"), None));
            }
        }
        items.remove(name);
        self.registry.unload(name).await;
        self.forget_upstream(name);
        self.persist(name, None).await;
        self.reshape(items.values().map(|i| &i.spec)).await;
        self.rebuild_hooks(&items);
        Ok(())
    }

    /// Every upstream (file and runtime) with its origin, entry (see [`shown_entry`]) and
    /// live state.
    pub async fn list_upstreams(&self) -> Vec<Value> {
        let rows = self.list().await;
        let items = self.items.lock().await;
        items
            .iter()
            .filter_map(|(name, i)| {
                let Spec::Upstream(e) = &i.spec else { return None };
                let mut row = rows.iter().find(|r| r["name"] == *name).cloned().unwrap_or(json!({}));
                row["entry"] = shown_entry(&e.upstream);
                row["transport"] = row
                    .pointer("/upstream/transport")
                    .cloned()
                    .unwrap_or_else(|| json!(e.upstream.transport_kind()));
                Some(row)
            })
            .collect()
    }

    /// Start the stored runtime upstreams (before the stored enabled/disabled choices are
    /// applied). A name the file now defines is left to the file.
    pub(super) async fn restore_upstreams(
        &self,
        store: &Store,
        specs: &[Spec],
        outbound: &crate::config::OutboundSection,
    ) {
        let rows = match store.upstreams().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "could not read stored upstreams");
                return;
            }
        };
        let mut items = self.items.lock().await;
        for row in rows {
            if specs.iter().any(|s| s.name() == row.name) {
                tracing::warn!(upstream = %row.name, "the config file defines this name; the stored runtime upstream is ignored");
                continue;
            }
            let u: Upstream = match serde_json::from_str(&row.spec) {
                Ok(u) => u,
                Err(e) => {
                    tracing::warn!(upstream = %row.name, error = %e, "stored upstream unreadable; skipped");
                    continue;
                }
            };
            let mut item = Item {
                spec: Spec::Upstream(Box::new(UpstreamEntry {
                    upstream: u,
                    outbound: outbound.clone(),
                })),
                origin: Origin::Runtime,
                enabled: true,
                wasm: None,
            };
            let others = items.values().map(|i| &i.spec).chain(specs.iter());
            self.reshape(others.chain(std::iter::once(&item.spec))).await;
            if let Err(e) = self.start(&mut item).await {
                tracing::error!(upstream = %row.name, error = %e, "stored upstream not started");
            }
            items.insert(row.name, item);
        }
    }
}

/// An entry as the API shows it: header and environment values given literally are
/// replaced by `<redacted>` (references like `${secret:NAME}` are shown as written, they
/// hold no secret), URL credentials are redacted, and known secret values are scrubbed.
fn shown_entry(u: &Upstream) -> Value {
    let mut v = serde_json::to_value(u).unwrap_or(Value::Null);
    let is_reference = |s: &str| {
        let t = s.trim();
        t.starts_with("${") && t.ends_with('}') && t.matches("${").count() == 1
    };
    for key in ["headers", "env"] {
        if let Some(map) = v.get_mut(key).and_then(Value::as_object_mut) {
            for val in map.values_mut() {
                if !val.as_str().is_some_and(is_reference) {
                    *val = json!("<redacted>");
                }
            }
        }
    }
    for (key, url) in [("url", &u.url), ("base_url", &u.base_url), ("openapi", &u.openapi)] {
        if let Some(url) = url.as_deref() {
            v[key] = json!(waygate_security::redact::redact_url(url));
        }
    }
    waygate_security::redact::scrub_json(&mut v);
    v
}
