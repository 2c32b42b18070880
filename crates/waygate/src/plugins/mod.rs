//! The running plugin set: which plugins exist (from the config file, or loaded at
//! runtime through the admin API), whether each is enabled, and what is remembered in the
//! store so a restart comes back the same. The registry in `waygate-core` only holds what
//! is active; this layer decides what that is, and rebuilds the hook chain whenever the
//! plugins a hook points at change.

pub mod pinning;
mod runtime_upstreams;
mod spec;
mod sync;

pub use runtime_upstreams::Refusal;
pub use spec::{desired, instantiate, Instance, Spec};

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::{json, Value};
use waygate_core::hooks::{Conditions, HookChain, HookEntry, Mode};
use waygate_core::{Engine, Plugin, PluginRegistry};
use waygate_plugins::wasm::{WasmHook, WasmPlugin};
use waygate_store::Store;
use waygate_upstream::Upstream;

use crate::config::HookConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Config,
    Runtime,
}

struct Item {
    spec: Spec,
    origin: Origin,
    enabled: bool,
    /// The live WASM instance, for hooks and module-change checks.
    wasm: Option<Arc<WasmPlugin>>,
}

/// The plugin set of a running server.
pub struct PluginManager {
    pub registry: Arc<PluginRegistry>,
    engine: OnceLock<Arc<Engine>>,
    store: OnceLock<Store>,
    items: tokio::sync::Mutex<BTreeMap<String, Item>>,
    hooks: std::sync::Mutex<Vec<HookConfig>>,
    pub pins: OnceLock<Arc<pinning::PinGate>>,
    /// Live upstream clients by name, readable without the async lock (metrics, `/ready`).
    upstreams: std::sync::RwLock<BTreeMap<String, Arc<Upstream>>>,
    /// Why an upstream could not even be created (bad reference, unsupported transport).
    upstream_errors: std::sync::RwLock<BTreeMap<String, String>>,
    /// `[catalog]` of the file; with every upstream's shape it makes the naming rules.
    catalog_rules: std::sync::Mutex<crate::config::CatalogSection>,
}

impl PluginManager {
    pub fn new(registry: Arc<PluginRegistry>) -> Arc<Self> {
        Arc::new(PluginManager {
            registry,
            engine: OnceLock::new(),
            store: OnceLock::new(),
            items: tokio::sync::Mutex::new(BTreeMap::new()),
            hooks: std::sync::Mutex::new(Vec::new()),
            pins: OnceLock::new(),
            upstreams: std::sync::RwLock::new(BTreeMap::new()),
            upstream_errors: std::sync::RwLock::new(BTreeMap::new()),
            catalog_rules: Default::default(),
        })
    }

    pub fn set_engine(&self, engine: Arc<Engine>) {
        let _ = self.engine.set(engine);
    }

    /// Bring the config-defined plugins to `specs` (runtime-loaded ones are kept). With
    /// `builtin_only`, plugins that need the store first (WASM: pinned) wait for
    /// [`PluginManager::restore`].
    pub async fn apply_config(&self, specs: Vec<Spec>, hooks: Vec<HookConfig>, builtin_only: bool) {
        let mut items = self.items.lock().await;
        // Names first: the first catalog the new plugins enter is already shaped.
        let runtime = items
            .values()
            .filter(|i| i.origin == Origin::Runtime && !specs.iter().any(|s| s.name() == i.spec.name()))
            .map(|i| &i.spec);
        self.reshape(specs.iter().chain(runtime)).await;
        let gone: Vec<String> = items
            .iter()
            .filter(|(n, i)| i.origin == Origin::Config && !specs.iter().any(|s| s.name() == n.as_str()))
            .map(|(n, _)| n.clone())
            .collect();
        for n in gone {
            items.remove(&n);
            self.registry.unload(&n).await;
            self.forget_upstream(&n);
        }
        for spec in specs {
            if builtin_only && matches!(spec, Spec::Wasm(_) | Spec::Upstream(_)) {
                continue;
            }
            let name = spec.name().to_string();
            let enabled = match items.get(&name) {
                Some(i) if i.spec == spec && i.origin == Origin::Config => continue,
                Some(i) => i.enabled,
                None => true,
            };
            let mut item = Item {
                spec,
                origin: Origin::Config,
                enabled,
                wasm: None,
            };
            if enabled {
                if let Err(e) = self.start(&mut item).await {
                    tracing::error!(plugin = %name, error = %e, "plugin not loaded; continuing without it");
                }
            }
            items.insert(name, item);
        }
        *self.hooks.lock().unwrap_or_else(|e| e.into_inner()) = hooks;
        self.rebuild_hooks(&items);
    }

    /// `[catalog]` from the file (applied with the next [`PluginManager::apply_config`]).
    pub fn set_catalog_rules(&self, rules: crate::config::CatalogSection) {
        *self.catalog_rules.lock().unwrap_or_else(|e| e.into_inner()) = rules;
    }

    /// Install the naming rules for these plugins' upstream entries.
    async fn reshape<'a>(&self, specs: impl Iterator<Item = &'a Spec>) {
        let rules = self.catalog_rules.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let ups = specs.filter_map(|s| match s {
            Spec::Upstream(e) => Some(&e.upstream),
            _ => None,
        });
        self.registry
            .set_shaping(crate::config::catalog::shaping_of(&rules, ups))
            .await;
    }

    async fn start(&self, item: &mut Item) -> Result<(), String> {
        self.install(item, false).await
    }

    /// Create an instance from the item's spec and hand it to the registry (a load, or a
    /// replacement that drains the old one). An instance the registry did not keep — a
    /// replacement that failed while its predecessor keeps serving — is shut down at once,
    /// so an upstream's supervisor or child process never outlives it.
    async fn install(&self, item: &mut Item, replace: bool) -> Result<(), String> {
        let (plugin, wasm, upstream) = match &item.spec {
            Spec::Upstream(e) => {
                let started = crate::upstreams::start(e, self.store.get(), Arc::downgrade(&self.registry)).await;
                let mut errors = self.upstream_errors.write().unwrap_or_else(|e| e.into_inner());
                let up = match started {
                    Ok(up) => {
                        errors.remove(&e.upstream.name);
                        up
                    }
                    Err(why) => {
                        errors.insert(e.upstream.name.clone(), why.clone());
                        return Err(why);
                    }
                };
                drop(errors);
                (up.clone() as Arc<dyn Plugin>, None, Some(up))
            }
            spec => {
                let (p, w) = instantiate(spec)?;
                (p, w, None)
            }
        };
        let result = if replace {
            self.registry.replace(plugin.clone()).await
        } else {
            self.registry.load(plugin.clone(), json!({})).await
        };
        let kept = self
            .registry
            .get(plugin.name())
            .await
            .is_some_and(|p| Arc::ptr_eq(&p, &plugin));
        if kept {
            item.wasm = wasm;
            if let Some(up) = upstream {
                let name = up.upstream_name().to_string();
                self.upstreams
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(name, up);
            }
        } else {
            plugin.shutdown().await;
        }
        result.map_err(|e| e.to_string())
    }

    /// Why a configured upstream could not be created, if it could not.
    pub fn upstream_error(&self, name: &str) -> Option<String> {
        self.upstream_errors
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    fn forget_upstream(&self, name: &str) {
        self.upstreams.write().unwrap_or_else(|e| e.into_inner()).remove(name);
    }

    /// The upstream clients of enabled upstreams.
    pub fn upstreams(&self) -> Vec<Arc<Upstream>> {
        self.upstreams
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// After the store opened: install pinning, restore runtime-loaded plugins and
    /// enabled/disabled choices, then load the plugins that waited for it.
    pub async fn restore(
        &self,
        store: Store,
        pins: Arc<pinning::PinGate>,
        specs: Vec<Spec>,
        hooks: Vec<HookConfig>,
        outbound: &crate::config::OutboundSection,
    ) {
        let _ = self.store.set(store.clone());
        let _ = self.pins.set(pins.clone());
        self.registry.set_gate(Some(pins)).await;
        self.restore_upstreams(&store, &specs, outbound).await;
        let rows = match store.plugin_states().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "could not read stored plugin state; using the config alone");
                vec![]
            }
        };
        {
            let mut items = self.items.lock().await;
            for row in rows {
                let doc: Value = serde_json::from_str(&row.settings).unwrap_or(Value::Null);
                if doc.get("origin").and_then(Value::as_str) == Some("runtime") {
                    match doc.get("spec").map(Spec::from_request) {
                        Some(Ok(spec)) => {
                            let mut item = Item {
                                spec,
                                origin: Origin::Runtime,
                                enabled: row.enabled,
                                wasm: None,
                            };
                            if row.enabled {
                                if let Err(e) = self.start(&mut item).await {
                                    tracing::error!(plugin = %row.name, error = %e, "stored plugin not loaded");
                                }
                            }
                            items.insert(row.name, item);
                        }
                        _ => tracing::warn!(plugin = %row.name, "stored plugin spec unreadable; skipped"),
                    }
                } else if !row.enabled {
                    // A config plugin disabled at runtime stays disabled across restarts.
                    if let Some(i) = items.get_mut(&row.name) {
                        i.enabled = false;
                        i.wasm = None;
                        self.registry.unload(&row.name).await;
                    } else if let Some(spec) = specs.iter().find(|s| s.name() == row.name) {
                        items.insert(
                            row.name,
                            Item {
                                spec: spec.clone(),
                                origin: Origin::Config,
                                enabled: false,
                                wasm: None,
                            },
                        );
                    }
                }
            }
        }
        self.apply_config(specs, hooks, false).await;
    }

    async fn persist(&self, name: &str, item: Option<&Item>) {
        let Some(store) = self.store.get() else { return };
        let r = match item {
            None => store.delete_plugin_state(name).await.map(|_| ()),
            Some(i) => {
                let doc = match (&i.origin, &i.spec) {
                    // The entry itself lives in the `upstreams` table.
                    (Origin::Runtime, Spec::Upstream(_)) => json!({"origin": "runtime-upstream"}),
                    (Origin::Runtime, Spec::Wasm(w)) => json!({"origin": "runtime", "spec": {"wasm": w}}),
                    (Origin::Runtime, s) => json!({"origin": "runtime", "spec": {"builtin": s.name()}}),
                    (Origin::Config, _) => json!({"origin": "config"}),
                };
                store.set_plugin_state(name, i.enabled, &doc.to_string()).await
            }
        };
        if let Err(e) = r {
            tracing::warn!(plugin = %name, error = %e, "could not record plugin state");
        }
    }

    /// Load a new plugin at runtime (remembered across restarts).
    pub async fn load(&self, spec: Spec) -> Result<(), (u16, String)> {
        let name = spec.name().to_string();
        let mut items = self.items.lock().await;
        if items.contains_key(&name) {
            return Err((
                409,
                format!("a plugin named {name:?} exists; reload or unload it first"),
            ));
        }
        let mut item = Item {
            spec,
            origin: Origin::Runtime,
            enabled: true,
            wasm: None,
        };
        self.start(&mut item).await.map_err(|e| (422, e))?;
        self.persist(&name, Some(&item)).await;
        items.insert(name, item);
        self.rebuild_hooks(&items);
        Ok(())
    }

    pub async fn unload(&self, name: &str) -> Result<(), (u16, String)> {
        let mut items = self.items.lock().await;
        match items.get(name).map(|i| i.origin) {
            None => Err((404, format!("no plugin named {name:?}"))),
            Some(Origin::Config) => Err((
                409,
                format!("{name:?} comes from the config file: disable it, or remove it from the file"),
            )),
            Some(Origin::Runtime) => {
                items.remove(name);
                self.registry.unload(name).await;
                self.persist(name, None).await;
                self.rebuild_hooks(&items);
                Ok(())
            }
        }
    }

    /// Re-create the plugin from its spec (a WASM module is read and compiled again); the
    /// old instance drains. If the new one fails, the old one keeps serving.
    pub async fn reload(&self, name: &str) -> Result<(), (u16, String)> {
        let mut items = self.items.lock().await;
        let item = items
            .get_mut(name)
            .ok_or_else(|| (404, format!("no plugin named {name:?}")))?;
        if !item.enabled {
            return Err((409, format!("{name:?} is disabled; enable it")));
        }
        self.install(item, true).await.map_err(|e| (422, e))?;
        self.rebuild_hooks(&items);
        Ok(())
    }

    pub async fn set_enabled(&self, name: &str, on: bool) -> Result<(), (u16, String)> {
        let mut items = self.items.lock().await;
        let item = items
            .get_mut(name)
            .ok_or_else(|| (404, format!("no plugin named {name:?}")))?;
        if item.enabled == on {
            return Ok(());
        }
        if on {
            self.start(item).await.map_err(|e| (422, e))?;
        } else {
            self.registry.unload_disabled(name).await;
            self.forget_upstream(name);
            item.wasm = None;
        }
        item.enabled = on;
        let item = &items[name];
        self.persist(name, Some(item)).await;
        self.rebuild_hooks(&items);
        Ok(())
    }

    /// Reload WASM plugins whose module file changed (a new version dropped in place).
    pub async fn reload_changed_modules(&self) {
        let changed: Vec<String> = {
            let items = self.items.lock().await;
            items
                .iter()
                .filter(|(_, i)| i.wasm.as_ref().is_some_and(|w| w.module_changed()))
                .map(|(n, _)| n.clone())
                .collect()
        };
        for name in changed {
            match self.reload(&name).await {
                Ok(()) => tracing::info!(plugin = %name, "module file changed; plugin reloaded"),
                Err((_, e)) => {
                    tracing::error!(plugin = %name, error = %e, "module file changed; reload failed, previous version keeps serving")
                }
            }
        }
    }

    /// Rows for the CLI and the admin API.
    pub async fn list(&self) -> Vec<Value> {
        let live: BTreeMap<String, waygate_core::PluginInfo> = self
            .registry
            .list()
            .await
            .into_iter()
            .map(|p| (p.name.clone(), p))
            .collect();
        let items = self.items.lock().await;
        let ups = self.upstreams.read().unwrap_or_else(|e| e.into_inner()).clone();
        items
            .iter()
            .map(|(name, i)| {
                let info = live.get(name);
                let (state, error) = match (i.enabled, info.map(|p| &p.state)) {
                    (true, _) if matches!(i.spec, Spec::Upstream(_)) => match ups.get(name) {
                        Some(u) => (u.status().label().to_string(), None),
                        None => ("stopped".into(), None),
                    },
                    (false, _) => ("disabled".to_string(), None),
                    (true, Some(waygate_core::PluginState::Failed(why))) => ("failed".into(), Some(why.clone())),
                    (true, Some(s)) => (s.label().to_string(), None),
                    (true, None) => ("stopped".into(), None),
                };
                let mut row = json!({
                    "name": name, "tier": i.spec.tier(), "enabled": i.enabled, "state": state,
                    "origin": if i.origin == Origin::Config { "config" } else { "runtime" },
                    "tools": info.map_or(0, |p| p.tools), "resources": info.map_or(0, |p| p.resources),
                    "prompts": info.map_or(0, |p| p.prompts),
                });
                if let Some(e) = error {
                    row["error"] = json!(e);
                }
                if let (Spec::Upstream(e), Some(u)) = (&i.spec, ups.get(name)) {
                    row["upstream"] = u.describe();
                    row["required"] = json!(e.upstream.required.unwrap_or(false));
                }
                if let Spec::Wasm(w) = &i.spec {
                    row["module"] = json!(w.module);
                    row["version"] = json!(i.wasm.as_ref().and_then(|p| p.version()));
                    row["limits"] = json!({"memory_mib": w.memory_mib, "time_ms": w.time_ms, "instances": w.instances});
                    row["grants"] = json!({"fs_read": w.fs_read, "env": w.env, "http_hosts": w.http_hosts, "wall_clock": w.wall_clock});
                }
                row
            })
            .collect()
    }

    /// Build the hook chain from the config and the live WASM plugins.
    fn rebuild_hooks(&self, items: &BTreeMap<String, Item>) {
        let Some(engine) = self.engine.get() else { return };
        let cfgs = self.hooks.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut entries = Vec::new();
        for h in &cfgs {
            let hook: Arc<dyn waygate_core::hooks::Hook> = match h.kind.as_str() {
                "wasm" => {
                    let live = h
                        .plugin
                        .as_ref()
                        .and_then(|p| items.get(p))
                        .and_then(|i| i.wasm.clone());
                    match live {
                        Some(w) => Arc::new(WasmHook(w)),
                        None => {
                            // An enforcing hook whose code is missing must not fail open.
                            tracing::error!(hook = %h.name, "hook plugin is not running; calls it covers are denied");
                            Arc::new(Missing(h.plugin.clone().unwrap_or_default()))
                        }
                    }
                }
                k => match waygate_plugins::guards::builtin(k, &h.settings) {
                    Some(Ok(hook)) => hook,
                    other => {
                        let e = match other {
                            Some(Err(e)) => e,
                            _ => format!("unknown hook kind {k:?}"),
                        };
                        tracing::error!(hook = %h.name, error = %e, "hook not built");
                        Arc::new(Missing(h.name.clone()))
                    }
                },
            };
            let when = Conditions {
                targets: h.tools.clone(),
                plugins: h.plugins.clone(),
                principals: h.principals.clone(),
                kinds: h.kinds.clone(),
            };
            let mode = Mode::parse(&h.mode).unwrap_or(Mode::Enforce);
            entries.push(HookEntry::new(
                h.name.clone(),
                hook,
                h.priority,
                mode,
                when,
                Duration::from_millis(h.timeout_ms),
            ));
        }
        engine.set_hooks(HookChain::new(entries));
    }
}

/// Stands in for a hook whose implementation is not available: fails every run, so an
/// `enforce` hook denies and a `permissive` one logs.
struct Missing(String);

impl waygate_core::hooks::Hook for Missing {
    fn kind(&self) -> &str {
        "missing"
    }
    fn pre<'a>(
        &'a self,
        _t: &'a waygate_core::hooks::HookTarget<'a>,
        _v: &'a mut Value,
    ) -> waygate_core::BoxFuture<'a, Result<waygate_core::hooks::Verdict, String>> {
        Box::pin(async move { Err(format!("{} is not available", self.0)) })
    }
}
