//! The binary's side of the admin API (`waygate-admin`): what only `serve` holds — the
//! plugin manager, the configuration and its reloader, the pin gate — behind the
//! [`Backend`] trait. The HTTP surface, its document and validation live in the crate.

mod sections;
mod servers;

use std::sync::{Arc, OnceLock};

use serde_json::{json, Value};
use waygate_admin::{Backend, Fut, HeldPin, PluginAction, Problem};
use waygate_core::{BoxFuture, Engine};
use waygate_store::Store;
use waygate_transport::http::Operations;

use crate::commands::reload::Reloader;
use crate::config::{self, ConfigError};
use crate::fleet::Change;
use crate::ops::ServeOps;
use crate::plugins::Spec;

pub use servers::RuntimeServers;

pub struct ServeBackend {
    pub ops: Arc<ServeOps>,
    /// Applies configuration files: the one given, else `<data-dir>/waygate.toml`, which
    /// may not exist yet (a write through the API creates it).
    pub reloader: OnceLock<Arc<Reloader>>,
    /// One write of the file at a time (a section write reads, merges and replaces it).
    pub writes: tokio::sync::Mutex<()>,
    /// Refreshes the API key table right after a change (set once the store is open).
    pub keys: OnceLock<(Store, waygate_core::auth::ApiKeys)>,
}

fn refusal((code, msg, field): crate::plugins::Refusal) -> Problem {
    let p = Problem::with_status(code, msg);
    match field {
        Some(f) => p.field(f),
        None => p,
    }
}

fn plain((code, msg): (u16, String)) -> Problem {
    Problem::with_status(code, msg)
}

/// A configuration error as a problem naming the key.
pub fn config_problem(e: ConfigError, shown_path: Option<(&std::path::Path, &str)>) -> Problem {
    let mut text = e.to_string();
    if let Some((p, name)) = shown_path {
        text = text.replace(&p.display().to_string(), name);
    }
    match e {
        ConfigError::Value { key, .. } => Problem::bad_request(text).field(key),
        _ => Problem::bad_request(text),
    }
}

impl ServeBackend {
    fn manager(&self) -> Result<&Arc<crate::plugins::PluginManager>, Problem> {
        self.ops
            .plugins
            .get()
            .ok_or_else(|| Problem::unavailable("the server is still starting; retry in a moment"))
    }

    fn reloader(&self) -> Result<&Arc<Reloader>, Problem> {
        self.reloader
            .get()
            .ok_or_else(|| Problem::unavailable("the server is still starting; retry in a moment"))
    }

    fn cfg(&self) -> config::FileConfig {
        self.ops.config.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Tell the other replicas (PostgreSQL fleets) that `change` happened here.
    async fn announce(&self, change: Change) {
        if let Some(store) = self.ops.store.get() {
            crate::fleet::announce(store, change).await;
        }
    }
}

impl Backend for ServeBackend {
    fn engine(&self) -> Option<Arc<Engine>> {
        self.ops.engine.get().cloned()
    }

    fn store(&self) -> Option<Store> {
        self.ops.store.get().cloned()
    }

    fn diagnostics(&self) -> BoxFuture<'_, Value> {
        self.ops.diagnostics()
    }

    fn log_filter(&self, new: Option<&str>) -> Result<String, String> {
        self.ops.log_filter(new)
    }

    fn plugins(&self) -> BoxFuture<'_, Vec<Value>> {
        Box::pin(async move {
            match self.ops.plugins.get() {
                Some(m) => m.list().await,
                None => Vec::new(),
            }
        })
    }

    fn plugin_load(&self, spec: Value) -> Fut<'_, String> {
        Box::pin(async move {
            let spec = Spec::from_request(&spec).map_err(Problem::bad_request)?;
            let name = spec.name().to_string();
            self.manager()?.load(spec).await.map_err(plain)?;
            self.announce(Change::Plugins).await;
            Ok(name)
        })
    }

    fn plugin_unload<'a>(&'a self, name: &'a str) -> Fut<'a, ()> {
        Box::pin(async move {
            self.manager()?.unload(name).await.map_err(plain)?;
            self.announce(Change::Plugins).await;
            Ok(())
        })
    }

    fn plugin_action<'a>(&'a self, name: &'a str, action: PluginAction) -> Fut<'a, ()> {
        Box::pin(async move {
            let m = self.manager()?;
            match action {
                PluginAction::Reload => m.reload(name).await,
                PluginAction::Enable => m.set_enabled(name, true).await,
                PluginAction::Disable => m.set_enabled(name, false).await,
            }
            .map_err(plain)?;
            if !matches!(action, PluginAction::Reload) {
                self.announce(Change::Plugins).await;
            }
            Ok(())
        })
    }

    fn upstreams(&self) -> BoxFuture<'_, Vec<Value>> {
        Box::pin(async move {
            match self.ops.plugins.get() {
                Some(m) => m.list_upstreams().await,
                None => Vec::new(),
            }
        })
    }

    fn upstream_put(&self, entry: Value) -> Fut<'_, bool> {
        Box::pin(async move {
            let entry: config::Upstream = serde_json::from_value(entry)
                .map_err(|e| Problem::bad_request(format!("not an upstream entry: {e}")))?;
            if entry.name.is_empty() {
                return Err(Problem::bad_request("name: missing").field("name"));
            }
            let cfg = self.cfg();
            let created = self.manager()?.put_upstream(&cfg, entry).await.map_err(refusal)?;
            self.announce(Change::Upstreams).await;
            Ok(created)
        })
    }

    fn upstream_remove<'a>(&'a self, name: &'a str) -> Fut<'a, ()> {
        Box::pin(async move {
            self.manager()?.remove_upstream(name).await.map_err(refusal)?;
            self.announce(Change::Upstreams).await;
            Ok(())
        })
    }

    fn servers(&self) -> BoxFuture<'_, Vec<Value>> {
        Box::pin(async move {
            let cfg = self.cfg();
            let mut rows: Vec<Value> = cfg
                .servers
                .iter()
                .map(|s| json!({"origin": "config", "entry": s}))
                .collect();
            rows.extend(
                self.ops
                    .runtime_servers
                    .list()
                    .into_iter()
                    .filter(|s| !cfg.servers.iter().any(|f| f.name == s.name))
                    .map(|s| json!({"origin": "runtime", "entry": s})),
            );
            rows
        })
    }

    fn server_put(&self, entry: Value) -> Fut<'_, bool> {
        Box::pin(async move {
            let cfg = self.cfg();
            let store = self
                .store()
                .ok_or_else(|| Problem::unavailable("the store is not open yet"))?;
            let created = self.ops.runtime_servers.put(&cfg, &store, entry).await?;
            if let Some(e) = self.engine() {
                e.set_views(self.ops.views());
            }
            self.announce(Change::Servers).await;
            Ok(created)
        })
    }

    fn server_remove<'a>(&'a self, name: &'a str) -> Fut<'a, ()> {
        Box::pin(async move {
            let cfg = self.cfg();
            let store = self
                .store()
                .ok_or_else(|| Problem::unavailable("the store is not open yet"))?;
            self.ops.runtime_servers.remove(&cfg, &store, name).await?;
            if let Some(e) = self.engine() {
                e.set_views(self.ops.views());
            }
            self.announce(Change::Servers).await;
            Ok(())
        })
    }

    fn pins_held(&self) -> Vec<HeldPin> {
        self.ops
            .plugins
            .get()
            .and_then(|m| m.pins.get())
            .map(|p| p.held())
            .unwrap_or_default()
            .into_iter()
            .map(|(plugin, tool, h)| HeldPin {
                plugin,
                tool,
                sha256: h.sha256,
                approved_sha256: h.approved_sha256,
                definition: h.definition,
            })
            .collect()
    }

    fn pin_approve<'a>(&'a self, plugin: &'a str, tool: &'a str, by: &'a str) -> Fut<'a, String> {
        Box::pin(async move {
            let m = self.manager()?;
            let (Some(pins), Some(store)) = (m.pins.get(), self.ops.store.get()) else {
                return Err(Problem::unavailable("pinning is not ready (store not open yet)"));
            };
            let sha = pins
                .approve(store, plugin, tool, by)
                .await
                .map_err(Problem::not_found)?;
            m.registry.republish().await;
            self.announce(Change::Pins).await;
            Ok(sha)
        })
    }

    fn config_effective(&self) -> Value {
        let mut v: serde_json::Map<String, Value> = self
            .cfg()
            .flatten()
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect::<serde_json::Map<_, _>>();
        let mut out = Value::Object(std::mem::take(&mut v));
        waygate_security::redact::scrub_json(&mut out);
        out
    }

    fn policies(&self) -> Value {
        let cfg = self.cfg();
        let mut v = json!({
            "authz": cfg.authz,
            "policies": cfg.policies,
            "limits": cfg.limits,
        });
        if let Some(l) = v.get_mut("limits").and_then(Value::as_object_mut) {
            if l.get("redis_url").is_some_and(|u| !u.is_null()) {
                l.insert("redis_url".into(), json!("<redacted>"));
            }
        }
        waygate_security::redact::scrub_json(&mut v);
        v
    }

    fn config_validate(&self, text: &str) -> Result<Vec<String>, Problem> {
        let candidate = validate_text(self.reloader.get().map(|r| r.path.as_path()), text)?;
        Ok(self.ops.restart_needed_for(&candidate))
    }

    fn config_apply<'a>(&'a self, text: &'a str, actor: &'a str) -> Fut<'a, Vec<String>> {
        Box::pin(async move {
            let _one = self.writes.lock().await;
            self.write_and_apply(text, actor).await
        })
    }

    fn config_sections<'a>(&'a self, sections: Value, actor: &'a str) -> Fut<'a, Vec<String>> {
        Box::pin(async move {
            let _one = self.writes.lock().await;
            let r = self.reloader()?;
            let current = match std::fs::read_to_string(&r.path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                Err(e) => return Err(Problem::unavailable(format!("cannot read the config file: {e}"))),
            };
            let text = sections::merge(&current, &sections)?;
            self.write_and_apply(&text, actor).await
        })
    }

    fn config_reload(&self) -> Fut<'_, Vec<String>> {
        Box::pin(async move {
            let r = self.reloader()?;
            if !r.path.exists() {
                return Err(Problem::conflict(
                    "this server runs without a configuration file; start it with --config FILE, create waygate.toml in the data directory, or write one with PUT /api/v1/config",
                ));
            }
            r.apply("reload", None).await.map_err(|e| config_problem(e, None))
        })
    }

    fn keys_changed(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some((store, keys)) = self.keys.get() {
                crate::commands::keys::refresh(store, keys).await;
                crate::fleet::announce(store, Change::Keys).await;
            }
        })
    }
}

impl ServeBackend {
    /// Validate `text` as the configuration file, replace the file with it (creating it
    /// when the server started without one) and apply it (snapshotted).
    async fn write_and_apply(&self, text: &str, actor: &str) -> Result<Vec<String>, Problem> {
        let r = self.reloader()?;
        validate_text(Some(&r.path), text)?;
        r.replace_file(text)
            .map_err(|e| Problem::unavailable(format!("cannot replace the config file: {e}")))?;
        let restart = r
            .apply("api", Some(Arc::from(actor)))
            .await
            .map_err(|e| config_problem(e, None))?;
        self.announce(Change::Config).await;
        Ok(restart)
    }
}

/// Validate `text` as the configuration file, as a reload would: written beside the real
/// file (so relative `${file:…}` references resolve the same way), messages naming it
/// `candidate`.
fn validate_text(beside: Option<&std::path::Path>, text: &str) -> Result<config::FileConfig, Problem> {
    let dir = beside
        .and_then(|p| p.parent())
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir);
    let mut rnd = [0u8; 8];
    let _ = getrandom::getrandom(&mut rnd);
    let tmp = dir.join(format!(
        ".waygate-candidate-{}.toml",
        rnd.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ));
    std::fs::write(&tmp, text).map_err(|e| Problem::unavailable(format!("cannot stage the candidate: {e}")))?;
    let r = config::layers_load(Some(&tmp), &config::env_overrides());
    let _ = std::fs::remove_file(&tmp);
    r.map(|l| l.cfg)
        .map_err(|e| config_problem(e, Some((&tmp, "candidate"))))
}
