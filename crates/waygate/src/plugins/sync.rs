//! Catching up with changes another replica made (issue 16): the store is the truth for
//! runtime upstreams, runtime plugins and enabled/disabled choices; these bring the
//! running set in line with it. Each is idempotent, so a NOTIFY that arrives twice, or
//! the periodic reconcile, changes nothing when nothing changed.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Origin, PluginManager, Spec};
use crate::config::{FileConfig, Upstream};

impl PluginManager {
    /// Start, replace or stop runtime upstreams to match the store's `upstreams` table.
    pub async fn sync_upstreams(&self, cfg: &FileConfig) {
        let Some(store) = self.store.get() else { return };
        let rows = match store.upstreams().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read stored upstreams; keeping the running set");
                return;
            }
        };
        let mut wanted: BTreeMap<String, Upstream> = BTreeMap::new();
        for row in rows {
            match serde_json::from_str::<Upstream>(&row.spec) {
                Ok(u) => {
                    wanted.insert(row.name, u);
                }
                Err(e) => tracing::warn!(upstream = %row.name, error = %e, "stored upstream unreadable; skipped"),
            }
        }
        let running: BTreeMap<String, Value> = {
            let items = self.items.lock().await;
            items
                .iter()
                .filter(|(_, i)| i.origin == Origin::Runtime)
                .filter_map(|(n, i)| match &i.spec {
                    Spec::Upstream(e) => Some((n.clone(), serde_json::to_value(&e.upstream).unwrap_or(Value::Null))),
                    _ => None,
                })
                .collect()
        };
        for (name, u) in wanted.iter() {
            if cfg.upstreams.iter().any(|f| f.name == *name) {
                continue;
            }
            let same = running
                .get(name)
                .is_some_and(|v| *v == serde_json::to_value(u).unwrap_or(Value::Null));
            if !same {
                match self.put_upstream(cfg, u.clone()).await {
                    Ok(_) => tracing::info!(upstream = %name, "runtime upstream changed on another replica; applied"),
                    Err((_, e, _)) => {
                        tracing::warn!(upstream = %name, error = %e, "runtime upstream from the store not applied")
                    }
                }
            }
        }
        for name in running.keys().filter(|n| !wanted.contains_key(*n)) {
            if let Err((_, e, _)) = self.remove_upstream(name).await {
                tracing::warn!(upstream = %name, error = %e, "runtime upstream removed elsewhere; not removed here");
            } else {
                tracing::info!(upstream = %name, "runtime upstream removed on another replica; stopped");
            }
        }
    }

    /// Load, unload, enable or disable plugins to match the store's plugin states.
    pub async fn sync_plugins(&self) {
        let Some(store) = self.store.get() else { return };
        let rows = match store.plugin_states().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read stored plugin states; keeping the running set");
                return;
            }
        };
        let (known, runtime): (BTreeMap<String, bool>, Vec<String>) = {
            let items = self.items.lock().await;
            (
                items.iter().map(|(n, i)| (n.clone(), i.enabled)).collect(),
                items
                    .iter()
                    .filter(|(_, i)| i.origin == Origin::Runtime && !matches!(i.spec, Spec::Upstream(_)))
                    .map(|(n, _)| n.clone())
                    .collect(),
            )
        };
        for row in &rows {
            let doc: Value = serde_json::from_str(&row.settings).unwrap_or(Value::Null);
            match known.get(&row.name) {
                Some(on) if *on != row.enabled => {
                    if let Err((_, e)) = self.set_enabled(&row.name, row.enabled).await {
                        tracing::warn!(plugin = %row.name, error = %e, "enable/disable from another replica not applied");
                    }
                }
                Some(_) => {}
                None if doc.get("origin").and_then(Value::as_str) == Some("runtime") => {
                    match doc.get("spec").map(Spec::from_request) {
                        Some(Ok(spec)) => match self.load(spec).await {
                            Ok(()) => {
                                if !row.enabled {
                                    let _ = self.set_enabled(&row.name, false).await;
                                }
                                tracing::info!(plugin = %row.name, "plugin loaded on another replica; loaded here")
                            }
                            Err((_, e)) => {
                                tracing::warn!(plugin = %row.name, error = %e, "plugin from another replica not loaded")
                            }
                        },
                        _ => tracing::warn!(plugin = %row.name, "stored plugin spec unreadable; skipped"),
                    }
                }
                None => {}
            }
        }
        for name in runtime.iter().filter(|n| !rows.iter().any(|r| r.name == **n)) {
            match self.unload(name).await {
                Ok(()) => tracing::info!(plugin = %name, "plugin unloaded on another replica; unloaded here"),
                Err((_, e)) => tracing::warn!(plugin = %name, error = %e, "unload from another replica not applied"),
            }
        }
    }
}
