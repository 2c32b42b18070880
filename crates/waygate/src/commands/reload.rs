//! Hot reload: on a change of the config file's contents (polled) or SIGHUP, load and
//! validate the new configuration; keep the old one if it is invalid; otherwise apply
//! what can change live (plugins, upstreams, views, hooks, policies, rate limits) and
//! snapshot it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::{self, Layered};

/// Plugins named on the command line, which a reload keeps.
#[derive(Clone, Debug, Default)]
pub struct CliPlugins {
    pub add: Vec<String>,
    pub no_demo: bool,
}

/// Applies configuration files: the watcher on a change or SIGHUP, the admin API on
/// demand. One at a time (the running configuration is behind a lock).
pub struct Reloader {
    pub path: PathBuf,
    current: tokio::sync::Mutex<Layered>,
    cli: CliPlugins,
    manager: Arc<crate::plugins::PluginManager>,
    engine: Arc<waygate_core::Engine>,
    ops: Arc<crate::ops::ServeOps>,
}

impl Reloader {
    pub fn new(
        path: PathBuf,
        current: Layered,
        cli: CliPlugins,
        manager: Arc<crate::plugins::PluginManager>,
        engine: Arc<waygate_core::Engine>,
        ops: Arc<crate::ops::ServeOps>,
    ) -> Arc<Self> {
        Arc::new(Reloader {
            path,
            current: tokio::sync::Mutex::new(current),
            cli,
            manager,
            engine,
            ops,
        })
    }

    /// Replace the file with `text` in one step (the old one kept as `.toml.bak`); the
    /// watcher or the caller then applies it.
    pub fn replace_file(&self, text: &str) -> std::io::Result<()> {
        let tmp = self.path.with_extension("toml.new");
        std::fs::write(&tmp, text)?;
        if self.path.exists() {
            let _ = std::fs::copy(&self.path, self.path.with_extension("toml.bak"));
        }
        std::fs::rename(&tmp, &self.path).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
    }

    /// The file as last applied.
    pub async fn applied_text(&self) -> Option<String> {
        self.current.lock().await.raw.clone()
    }

    /// Load, validate and apply the file as it is now; the sections that changed but need
    /// a restart. On an error the running configuration stays.
    pub async fn apply(&self, source: &str, actor: Option<Arc<str>>) -> Result<Vec<String>, config::ConfigError> {
        // systemd shows "reloading" meanwhile (and a Type=notify-reload unit waits for it).
        crate::systemd::reloading();
        let r = self.apply_now(source, actor).await;
        let status = match &r {
            Ok(restart) if restart.is_empty() => format!("configuration applied ({source})"),
            Ok(restart) => format!(
                "configuration applied ({source}); restart needed for {}",
                restart.join(", ")
            ),
            Err(e) => format!("configuration refused ({source}): {e}"),
        };
        crate::systemd::notify(&format!("READY=1\nSTATUS={status}"));
        r
    }

    async fn apply_now(&self, source: &str, actor: Option<Arc<str>>) -> Result<Vec<String>, config::ConfigError> {
        let mut current = self.current.lock().await;
        let mut next = config::layers_load(Some(&self.path), &config::env_overrides())?;
        // Command-line flags keep overriding the file across reloads.
        for (key, (src, origin)) in &current.sources {
            if *src == config::Source::Flag {
                match key.as_str() {
                    "server.listen" => next.cfg.server.listen = current.cfg.server.listen,
                    "store.url" => next.cfg.store.url = current.cfg.store.url.clone(),
                    _ => {}
                }
                next.set_flag(key, origin);
            }
        }
        let specs =
            crate::plugins::desired(&next.cfg, &self.cli.add, self.cli.no_demo).map_err(config::ConfigError::Other)?;
        let names: Vec<String> = specs.iter().map(|s| s.name().to_string()).collect();
        // Snapshot first: once any effect of a configuration is visible, its snapshot exists.
        if let Some(raw) = &next.raw {
            let snap = match self.ops.store.get() {
                Some(store) => store.snapshot_config(source, raw).await,
                None => Ok(0),
            };
            if let Err(e) = snap {
                tracing::warn!(error = %e, "could not snapshot the applied configuration");
            }
        }
        let (engine, manager) = (&self.engine, &self.manager);
        manager.set_catalog_rules(next.cfg.catalog.clone());
        *self.ops.config.write().unwrap_or_else(|e| e.into_inner()) = next.cfg.clone();
        engine.set_views(self.ops.views());
        manager.apply_config(specs, next.cfg.hooks.clone(), false).await;
        engine.set_passthrough(crate::upstreams::passthrough_names(&next.cfg.upstreams));
        if current.cfg.policies != next.cfg.policies || current.cfg.authz != next.cfg.authz {
            let policy = config::security::compile(&next.cfg.authz, &next.cfg.policies);
            tracing::info!(
                rules = policy.as_ref().map_or(0, |p| p.rule_count()),
                "authorization policy applied"
            );
            engine.set_policy(policy);
            engine.audit_admin(
                "admin/policy.apply",
                &self.path.display().to_string(),
                "ok",
                actor.clone(),
            );
        }
        if current.cfg.limits != next.cfg.limits {
            if let Some(live) = self.ops.limits.get() {
                live.apply(&next.cfg, engine);
                tracing::info!(
                    requests_per_second = ?next.cfg.limits.requests_per_second,
                    tool_rules = next.cfg.limits.tools.len(),
                    "rate limits applied"
                );
                engine.audit_admin(
                    "admin/limits.apply",
                    &self.path.display().to_string(),
                    "ok",
                    actor.clone(),
                );
            }
        }
        // Against what the process started with: a key changed by an earlier reload and
        // still waiting for a restart stays named.
        let restart_needed = self.ops.restart_needed();
        for key in &restart_needed {
            tracing::warn!(key = %key, "changed in the configuration; takes effect after a restart");
        }
        tracing::info!(plugins = ?names, tools = engine.registry.catalog().tool_count(), "configuration reloaded");
        engine.audit_admin("admin/config.reload", &self.path.display().to_string(), "ok", actor);
        *current = next;
        Ok(restart_needed)
    }
}

/// Watch the reloader's file until `stop`; apply valid changes.
pub async fn watch(reloader: Arc<Reloader>, stop: CancellationToken) {
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    // Compare with what was loaded, not with the file as it is now: an edit made while
    // the store was still opening must not be missed.
    let mut last = reloader.applied_text().await;
    loop {
        #[cfg(unix)]
        let hup_fut = async {
            match hup.as_mut() {
                Some(h) => {
                    h.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let hup_fut = std::future::pending::<()>();
        let forced = tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => false,
            _ = hup_fut => true,
        };
        reloader.manager.reload_changed_modules().await;
        let text = std::fs::read_to_string(&reloader.path).ok();
        // Applied through the API meanwhile: nothing new.
        if !forced && (text == last || text == reloader.applied_text().await) {
            last = text;
            continue;
        }
        last = text;
        if let Err(e) = reloader.apply("reload", None).await {
            tracing::error!(error = %e, "config reload refused; keeping the running configuration");
        }
    }
}
