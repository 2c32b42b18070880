//! Hot reload: on a change of the config file's contents (polled) or SIGHUP, load and
//! validate the new configuration; keep the old one if it is invalid; otherwise apply
//! what can change live (the plugin set) and snapshot it.

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

/// Watch `path` until `stop`; apply valid changes.
pub async fn watch(
    path: PathBuf,
    mut current: Layered,
    cli: CliPlugins,
    manager: Arc<crate::plugins::PluginManager>,
    engine: Arc<waygate_core::Engine>,
    ops: Arc<crate::ops::ServeOps>,
    stop: CancellationToken,
) {
    let registry = engine.registry.clone();
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    // Compare with what was loaded, not with the file as it is now: an edit made while
    // the store was still opening must not be missed.
    let mut last = current.raw.clone();
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
        manager.reload_changed_modules().await;
        let text = std::fs::read_to_string(&path).ok();
        if !forced && text == last {
            continue;
        }
        last = text;
        let env: Vec<(String, String)> = std::env::vars().filter(|(k, _)| k.starts_with("WAYGATE_")).collect();
        let next = match config::layers_load(Some(&path), &env) {
            Ok(mut n) => {
                // Command-line flags keep overriding the file across reloads.
                for (key, (source, origin)) in &current.sources {
                    if *source == config::Source::Flag {
                        match key.as_str() {
                            "server.listen" => n.cfg.server.listen = current.cfg.server.listen,
                            "store.url" => n.cfg.store.url = current.cfg.store.url.clone(),
                            _ => {}
                        }
                        n.set_flag(key, origin);
                    }
                }
                n
            }
            Err(e) => {
                tracing::error!(error = %e, "config reload refused; keeping the running configuration");
                continue;
            }
        };
        let specs = match crate::plugins::desired(&next.cfg, &cli.add, cli.no_demo) {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "config reload refused; keeping the running configuration");
                continue;
            }
        };
        let names: Vec<String> = specs.iter().map(|s| s.name().to_string()).collect();
        // Snapshot first: once any effect of a configuration is visible, its snapshot exists.
        if let Some(raw) = &next.raw {
            let snap = match ops.store.get() {
                Some(store) => store.snapshot_config("reload", raw).await,
                None => Ok(0),
            };
            if let Err(e) = snap {
                tracing::warn!(error = %e, "could not snapshot the applied configuration");
            }
        }
        manager.set_catalog_rules(next.cfg.catalog.clone());
        engine.set_views(config::catalog::views(&next.cfg));
        manager.apply_config(specs, next.cfg.hooks.clone(), false).await;
        engine.set_passthrough(crate::upstreams::passthrough_names(&next.cfg.upstreams));
        if current.cfg.policies != next.cfg.policies || current.cfg.authz != next.cfg.authz {
            let policy = config::security::compile(&next.cfg.authz, &next.cfg.policies);
            tracing::info!(
                rules = policy.as_ref().map_or(0, |p| p.rule_count()),
                "authorization policy applied"
            );
            engine.set_policy(policy);
            engine.audit_admin("admin/policy.apply", &path.display().to_string(), "ok", None);
        }
        let restart_needed: Vec<&str> = [
            ("server", current.cfg.server != next.cfg.server),
            ("http", current.cfg.http != next.cfg.http),
            ("mcp", current.cfg.mcp != next.cfg.mcp),
            ("store", current.cfg.store != next.cfg.store),
            ("auth", current.cfg.auth != next.cfg.auth),
            ("limits", current.cfg.limits != next.cfg.limits),
            ("pinning", current.cfg.pinning != next.cfg.pinning),
        ]
        .into_iter()
        .filter_map(|(s, changed)| changed.then_some(s))
        .collect();
        if !restart_needed.is_empty() {
            tracing::warn!(sections = ?restart_needed, "these sections changed and take effect after a restart");
        }
        tracing::info!(plugins = ?names, tools = registry.catalog().tool_count(), "configuration reloaded");
        engine.audit_admin("admin/config.reload", &path.display().to_string(), "ok", None);
        *ops.config.write().unwrap_or_else(|e| e.into_inner()) = next.cfg.clone();
        current = next;
    }
}
