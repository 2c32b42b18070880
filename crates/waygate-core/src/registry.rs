//! Owns the plugins and their lifecycle, and republishes the [`Catalog`] on every change.
//!
//! States: loaded → initialized → running, or failed / stopped. Loading a plugin runs its
//! `initialize`; a failure leaves it listed as failed and out of the catalog, never takes
//! the server down. Calls already running keep their `Arc` to the old catalog, so an
//! unload or reload never cuts an in-flight call short.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Mutex;

use crate::catalog::Catalog;
use crate::events::{Event, Events};
use crate::naming::{Claims, Shaping};
use crate::plugin::{Manifest, Plugin, PluginError, PluginInit};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginState {
    Loaded,
    Initialized,
    Running,
    Failed(String),
    Stopped,
}

impl PluginState {
    pub fn label(&self) -> &str {
        match self {
            Self::Loaded => "loaded",
            Self::Initialized => "initialized",
            Self::Running => "running",
            Self::Failed(_) => "failed",
            Self::Stopped => "stopped",
        }
    }
}

struct Entry {
    plugin: Arc<dyn Plugin>,
    settings: Value,
    state: PluginState,
    /// Shared with every catalog built from it (never deep-cloned per publish).
    manifest: Option<Arc<Manifest>>,
}

/// A summary row for CLIs and the admin API.
#[derive(Debug, Clone)]
pub struct PluginInfo {
    pub name: String,
    pub state: PluginState,
    pub tools: usize,
    pub resources: usize,
    pub prompts: usize,
}

/// How long an unload or reload waits for in-flight calls on the old instance.
const DRAIN: Duration = Duration::from_secs(30);

pub struct PluginRegistry {
    entries: Mutex<Vec<Entry>>,
    catalog: RwLock<Arc<Catalog>>,
    events: Events,
    page_size: usize,
    /// Tools held back from the catalog (tool-definition pinning), by plugin.
    gate: RwLock<Option<Arc<dyn CatalogGate>>>,
    /// Prefixes, filters and overrides per plugin.
    shaping: RwLock<Arc<Shaping>>,
    /// Who ever claimed each local name; keeps exposed names stable while a claimant is
    /// disabled or down.
    claims: std::sync::Mutex<Claims>,
}

/// Decides which tools of a plugin may enter the catalog (definition pinning).
pub trait CatalogGate: Send + Sync {
    /// The manifest without the tools that must not be served yet (the same `Arc` when
    /// all may be); called on every publish.
    fn admit(&self, plugin: &str, manifest: &Arc<Manifest>) -> Arc<Manifest>;
}

impl PluginRegistry {
    pub fn new(events: Events, page_size: usize) -> Self {
        PluginRegistry {
            entries: Mutex::new(Vec::new()),
            catalog: RwLock::new(Arc::new(Catalog::default())),
            events,
            page_size,
            gate: RwLock::new(None),
            shaping: RwLock::new(Arc::new(Shaping::default())),
            claims: std::sync::Mutex::new(Claims::default()),
        }
    }

    /// Install new naming rules, filters and overrides and rebuild the catalog (a config
    /// reload); an unchanged set does not touch the catalog.
    pub async fn set_shaping(&self, shaping: Shaping) {
        {
            let mut cur = self.shaping.write().unwrap_or_else(|e| e.into_inner());
            if **cur == shaping {
                return;
            }
            *cur = Arc::new(shaping);
        }
        self.republish().await;
    }

    /// The current catalog; cheap (one atomic increment).
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn events(&self) -> &Events {
        &self.events
    }

    /// Install the pinning gate and rebuild the catalog through it.
    pub async fn set_gate(&self, gate: Option<Arc<dyn CatalogGate>>) {
        *self.gate.write().unwrap_or_else(|e| e.into_inner()) = gate;
        self.republish().await;
    }

    /// Rebuild the catalog (after a pin approval, say).
    pub async fn republish(&self) {
        let entries = self.entries.lock().await;
        self.publish(&entries);
    }

    /// Add and initialize a plugin. A plugin of the same name is replaced (a reload): the
    /// new one serves as soon as it is initialized, the old one drains and shuts down.
    /// If the replacement fails to initialize, a running predecessor keeps serving.
    pub async fn load(&self, plugin: Arc<dyn Plugin>, settings: Value) -> Result<(), PluginError> {
        let name = plugin.name().to_string();
        let mut entries = self.entries.lock().await;
        let init = PluginInit {
            settings: settings.clone(),
            events: self.events.clone(),
        };
        let result = plugin.initialize(&init).await;
        let pos = entries.iter().position(|e| e.plugin.name() == name);
        let (manifest, state, outcome) = match result {
            Ok(m) => {
                tracing::info!(plugin = %name, tools = m.tools.len(), "plugin running");
                (Some(Arc::new(m)), PluginState::Running, Ok(()))
            }
            Err(e) => {
                tracing::error!(plugin = %name, error = %e, "plugin failed to initialize");
                if let Some(i) = pos {
                    if entries[i].state == PluginState::Running {
                        tracing::warn!(plugin = %name, "reload failed; the previous instance keeps serving");
                        return Err(e);
                    }
                }
                (None, PluginState::Failed(e.to_string()), Err(e))
            }
        };
        let entry = Entry {
            plugin: plugin.clone(),
            settings,
            state,
            manifest,
        };
        let old = match pos {
            Some(i) => Some(std::mem::replace(&mut entries[i], entry)),
            None => {
                entries.push(entry);
                None
            }
        };
        self.publish(&entries);
        drop(entries);
        if let Some(old) = old {
            if !Arc::ptr_eq(&old.plugin, &plugin) {
                tokio::spawn(retire(old.plugin));
            }
        }
        outcome
    }

    /// Re-run `initialize` of a loaded plugin with its settings (a WASM plugin re-reads
    /// its module file; in-flight calls finish on the previous instance).
    pub async fn reload(&self, name: &str) -> Result<(), PluginError> {
        let (plugin, settings) = self.find(name).await?;
        self.load(plugin, settings).await
    }

    /// Replace a plugin by a new instance (a changed spec or module), draining the old one.
    pub async fn replace(&self, plugin: Arc<dyn Plugin>) -> Result<(), PluginError> {
        let settings = self
            .find(plugin.name())
            .await
            .map(|(_, s)| s)
            .unwrap_or(Value::Object(Default::default()));
        self.load(plugin, settings).await
    }

    async fn find(&self, name: &str) -> Result<(Arc<dyn Plugin>, Value), PluginError> {
        let entries = self.entries.lock().await;
        let e = entries
            .iter()
            .find(|e| e.plugin.name() == name)
            .ok_or_else(|| PluginError::NotFound(format!("plugin {name:?} is not loaded")))?;
        Ok((e.plugin.clone(), e.settings.clone()))
    }

    /// Take a plugin out of the catalog but keep it listed as stopped; in-flight calls
    /// drain first. False when it is not loaded.
    pub async fn disable(&self, name: &str) -> bool {
        let mut entries = self.entries.lock().await;
        let Some(e) = entries.iter_mut().find(|e| e.plugin.name() == name) else {
            return false;
        };
        e.state = PluginState::Stopped;
        e.manifest = None;
        let plugin = e.plugin.clone();
        self.publish(&entries);
        drop(entries);
        drain(&plugin, 1).await;
        plugin.shutdown().await;
        tracing::info!(plugin = %name, "plugin disabled");
        true
    }

    /// Start a stopped (or failed) plugin again.
    pub async fn enable(&self, name: &str) -> Result<(), PluginError> {
        self.reload(name).await
    }

    /// Remove a plugin from the catalog and shut it down once its calls drained. False
    /// when it was not loaded. Its names are forgotten: it is gone for good.
    pub async fn unload(&self, name: &str) -> bool {
        self.remove(name, true).await
    }

    /// Like [`PluginRegistry::unload`] for a plugin that is only switched off: it keeps its
    /// claim on its names, so the plugins it shares names with keep theirs.
    pub async fn unload_disabled(&self, name: &str) -> bool {
        self.remove(name, false).await
    }

    async fn remove(&self, name: &str, forget: bool) -> bool {
        let mut entries = self.entries.lock().await;
        let Some(i) = entries.iter().position(|e| e.plugin.name() == name) else {
            return false;
        };
        let e = entries.remove(i);
        if forget {
            self.claims.lock().unwrap_or_else(|e| e.into_inner()).forget(name);
        }
        self.publish(&entries);
        drop(entries);
        tokio::spawn(retire(e.plugin));
        tracing::info!(plugin = %name, "plugin unloaded");
        true
    }

    /// The plugin instance by name (to ask a WASM plugin whether its module changed).
    pub async fn get(&self, name: &str) -> Option<Arc<dyn Plugin>> {
        self.find(name).await.ok().map(|(p, _)| p)
    }

    pub async fn list(&self) -> Vec<PluginInfo> {
        self.entries
            .lock()
            .await
            .iter()
            .map(|e| PluginInfo {
                name: e.plugin.name().to_string(),
                state: match (&e.state, e.plugin.failure()) {
                    (PluginState::Running, Some(why)) => PluginState::Failed(why),
                    (s, _) => s.clone(),
                },
                tools: e.manifest.as_ref().map_or(0, |m| m.tools.len()),
                resources: e
                    .manifest
                    .as_ref()
                    .map_or(0, |m| m.resources.len() + m.resource_templates.len()),
                prompts: e.manifest.as_ref().map_or(0, |m| m.prompts.len()),
            })
            .collect()
    }

    /// Shut every plugin down (process exit).
    pub async fn shutdown_all(&self) {
        let mut entries = self.entries.lock().await;
        for e in entries.iter_mut() {
            e.plugin.shutdown().await;
            e.state = PluginState::Stopped;
        }
    }

    fn publish(&self, entries: &[Entry]) {
        let started = std::time::Instant::now();
        let gate = self.gate.read().unwrap_or_else(|e| e.into_inner()).clone();
        let running: Vec<(Arc<dyn Plugin>, Arc<Manifest>)> = entries
            .iter()
            .filter_map(|e| {
                let m = e.manifest.as_ref()?;
                let m = match &gate {
                    Some(g) => g.admit(e.plugin.name(), m),
                    None => m.clone(),
                };
                Some((e.plugin.clone(), m))
            })
            .collect();
        let shaping = self.shaping.read().unwrap_or_else(|e| e.into_inner()).clone();
        let catalog = {
            let mut claims = self.claims.lock().unwrap_or_else(|e| e.into_inner());
            for (p, m) in &running {
                let claimant = claims.join(p.as_ref());
                let shape = shaping.shape(p.name());
                for t in m.tools.iter().filter(|t| shape.is_none_or(|s| s.admits(t.name()))) {
                    // Most publishes repeat known claims: no allocation for those.
                    match claims.tools.get_mut(t.name()) {
                        Some(set) if set.contains(&claimant) => {}
                        Some(set) => {
                            set.insert(claimant.clone());
                        }
                        None => {
                            claims
                                .tools
                                .insert(t.name().to_string(), [claimant.clone()].into_iter().collect());
                        }
                    }
                }
                for pr in &m.prompts {
                    claims
                        .prompts
                        .entry(pr.name().to_string())
                        .or_default()
                        .insert(claimant.clone());
                }
                let uris = m.resources.iter().map(|r| r.uri());
                for uri in uris.chain(m.resource_templates.iter().map(|t| t.uri_template())) {
                    claims
                        .resources
                        .entry(uri.to_string())
                        .or_default()
                        .insert(claimant.clone());
                }
            }
            let prev = self.catalog.read().unwrap_or_else(|e| e.into_inner()).clone();
            Arc::new(Catalog::build(&running, self.page_size, &shaping, &claims, Some(&prev)))
        };
        tracing::debug!(
            tools = catalog.tool_count(),
            us = started.elapsed().as_micros() as u64,
            "catalog rebuilt"
        );
        for name in catalog.collisions() {
            tracing::warn!(%name, "two plugins want the same exposed name; both stay callable, one under its prefix");
        }
        let old = std::mem::replace(
            &mut *self.catalog.write().unwrap_or_else(|e| e.into_inner()),
            catalog.clone(),
        );
        let big = old.tool_count() >= 1000;
        // Only the lists that changed are announced: an upstream that floods list_changed
        // with the same lists costs its clients nothing.
        let (was, now) = (old.fingerprint(), catalog.fingerprint());
        if was.tools != now.tools {
            self.events.emit(Event::ToolsChanged);
        }
        if was.prompts != now.prompts {
            self.events.emit(Event::PromptsChanged);
        }
        if was.resources != now.resources {
            self.events.emit(Event::ResourcesChanged);
        }
        drop(old);
        if big {
            trim_heap();
        }
    }
}

/// Hand freed heap back to the OS (a big replaced catalog would otherwise stay resident).
/// Requests still holding the old catalog free it later; the next swap trims that.
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own arenas; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Keep a long-running server's heap close to what it uses, before any thread starts.
///
/// glibc's defaults suit short programs: up to 8 arenas per core (each keeps its own free
/// lists, so memory freed on one thread is not reused by another), and a "dynamic" mmap
/// threshold that, after the first large buffer is freed, serves every later one of that
/// size from the heap, where it stays. On the echo benchmark (c=64, API key + audit) this
/// and the audit writer's reused buffers take ~1.5 MB off the anonymous memory after the run
/// (BENCHMARKS.md, issue 17 section).
/// On one CPU (a pinned process, a 1-vCPU container) there is one runtime worker, so a
/// second arena would only keep the database and audit threads' free memory apart from
/// it (measured 0.5–1 MB after the c=64 run, no throughput change).
/// An operator's `MALLOC_ARENA_MAX` / `MALLOC_MMAP_THRESHOLD_` / `MALLOC_TRIM_THRESHOLD_`
/// still win (the setting is left alone when its variable is set).
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    let arenas = match std::thread::available_parallelism() {
        Ok(n) if n.get() == 1 => 1,
        _ => 2,
    };
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    for (var, param, value) in [
        ("MALLOC_ARENA_MAX", libc::M_ARENA_MAX, arenas),
        ("MALLOC_MMAP_THRESHOLD_", libc::M_MMAP_THRESHOLD, 256 * 1024),
        ("MALLOC_TRIM_THRESHOLD_", libc::M_TRIM_THRESHOLD, 512 * 1024),
    ] {
        if std::env::var_os(var).is_none() {
            // SAFETY: mallopt only sets glibc's tunables; called before other threads run.
            unsafe {
                libc::mallopt(param, value);
            }
        }
    }
}

/// Wait until only `keep` references to the plugin remain (calls in flight hold one each,
/// through the catalog they started with), at most [`DRAIN`].
async fn drain(plugin: &Arc<dyn Plugin>, keep: usize) {
    let start = tokio::time::Instant::now();
    // Published catalogs that no request holds any more are already dropped, so what is
    // left are calls still running on the old instance.
    while Arc::strong_count(plugin) > keep + 1 && start.elapsed() < DRAIN {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if Arc::strong_count(plugin) > keep + 1 {
        tracing::warn!(
            plugin = plugin.name(),
            "calls still running after the drain timeout; shutting down anyway"
        );
    }
}

/// Drain a replaced or removed instance, then shut it down.
async fn retire(plugin: Arc<dyn Plugin>) {
    drain(&plugin, 0).await;
    plugin.shutdown().await;
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use serde_json::json;

    use super::*;
    use crate::plugin::{BoxFuture, Invocation, Outcome, ToolDef};
    use crate::CallContext;

    /// A plugin whose one tool takes 300 ms and which records its shutdown.
    struct Slow {
        version: &'static str,
        shut: Arc<AtomicBool>,
        fail_init: bool,
    }

    impl Plugin for Slow {
        fn name(&self) -> &str {
            "slow"
        }
        fn initialize<'a>(&'a self, _i: &'a PluginInit) -> BoxFuture<'a, Result<Manifest, PluginError>> {
            Box::pin(async move {
                if self.fail_init {
                    return Err(PluginError::Internal("broken build".into()));
                }
                Ok(Manifest {
                    tools: vec![ToolDef::new(json!({"name": "work", "inputSchema": {"type": "object"}}))],
                    ..Default::default()
                })
            })
        }
        fn execute<'a>(
            &'a self,
            _i: &'a Invocation,
            _c: &'a CallContext,
        ) -> BoxFuture<'a, Result<Outcome, PluginError>> {
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                // A call that outlives its instance's shutdown would see this flag set.
                assert!(!self.shut.load(Ordering::SeqCst), "shut down under a running call");
                Ok(Outcome::Complete(json!({"version": self.version})))
            })
        }
        fn shutdown(&self) -> BoxFuture<'_, ()> {
            self.shut.store(true, Ordering::SeqCst);
            Box::pin(async {})
        }
    }

    fn slow(version: &'static str, fail_init: bool) -> (Arc<dyn Plugin>, Arc<AtomicBool>) {
        let shut = Arc::new(AtomicBool::new(false));
        (
            Arc::new(Slow {
                version,
                shut: shut.clone(),
                fail_init,
            }),
            shut,
        )
    }

    async fn call(reg: &PluginRegistry) -> Value {
        let catalog = reg.catalog();
        let plugin = catalog.tool("work").expect("tool").route.plugin.clone();
        drop(catalog);
        let inv = Invocation {
            target: crate::Target::Tool("work".into()),
            arguments: json!({}),
            input_responses: None,
            state: None,
            raw_arguments: None,
            caller_meta: None,
        };
        let ctx = CallContext::detached(waygate_protocol::ProtocolVersion::V2025_11_25);
        match plugin.execute(&inv, &ctx).await.expect("call") {
            Outcome::Complete(v) => v,
            Outcome::Forward(raw) => Outcome::forwarded_value(&raw),
            Outcome::InputRequired { .. } => unreachable!(),
        }
    }

    #[tokio::test]
    async fn a_replacement_drains_calls_in_flight_and_a_broken_one_keeps_the_old() {
        let reg = Arc::new(PluginRegistry::new(Events::new(), 50));
        let (v1, v1_shut) = slow("v1", false);
        reg.load(v1, json!({})).await.unwrap();
        let r2 = reg.clone();
        let in_flight = tokio::spawn(async move { call(&r2).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        // A broken new version is refused; v1 keeps serving.
        let (broken, _) = slow("broken", true);
        assert!(reg.replace(broken).await.is_err());
        assert_eq!(reg.list().await[0].state, PluginState::Running);
        let (v2, _) = slow("v2", false);
        reg.replace(v2).await.unwrap();
        // New calls go to v2 at once; v1 finishes its call before it is shut down.
        assert_eq!(call(&reg).await["version"], "v2");
        assert_eq!(in_flight.await.unwrap()["version"], "v1");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(v1_shut.load(Ordering::SeqCst), "v1 shut down after draining");
        assert!(reg.disable("slow").await);
        assert!(reg.catalog().tool("work").is_none());
        assert_eq!(reg.list().await[0].state, PluginState::Stopped);
    }
}
