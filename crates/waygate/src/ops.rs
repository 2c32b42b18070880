//! What `serve` tells the operational endpoints: extra metric families (audit queue, store,
//! upstreams, process start), readiness reasons, and the diagnostics document behind
//! `/api/v1/diagnostics` (admin scope; secrets redacted).

use std::fmt::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use waygate_core::{BoxFuture, PluginRegistry};
use waygate_store::Store;
use waygate_transport::http::Operations;

use crate::audit_queue::AuditQueue;
use crate::config::FileConfig;

pub struct ServeOps {
    started: Instant,
    started_unix: f64,
    pub store: OnceLock<Store>,
    pub audit: OnceLock<Arc<AuditQueue>>,
    /// The store answered its last ping.
    pub store_up: Arc<AtomicBool>,
    registry: Arc<PluginRegistry>,
    /// The configuration in effect (replaced on reload).
    pub config: RwLock<FileConfig>,
    /// The configuration the process started with: what sections read only at start run.
    running: FileConfig,
    audit_enabled: bool,
    pub plugins: OnceLock<Arc<crate::plugins::PluginManager>>,
    pub engine: OnceLock<Arc<waygate_core::Engine>>,
    /// Virtual servers added through the admin API.
    pub runtime_servers: crate::admin::RuntimeServers,
    /// The rate limits a reload replaces (set once the engine is built).
    pub limits: OnceLock<crate::security::LiveLimits>,
}

impl ServeOps {
    pub fn new(
        registry: Arc<PluginRegistry>,
        config: FileConfig,
        store_up: Arc<AtomicBool>,
        audit_enabled: bool,
    ) -> Self {
        ServeOps {
            started: Instant::now(),
            started_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            store: OnceLock::new(),
            audit: OnceLock::new(),
            store_up,
            registry,
            running: config.clone(),
            config: RwLock::new(config),
            audit_enabled,
            plugins: OnceLock::new(),
            engine: OnceLock::new(),
            runtime_servers: Default::default(),
            limits: OnceLock::new(),
        }
    }

    /// Keys changed since start that take effect only after a restart.
    pub fn restart_needed(&self) -> Vec<String> {
        crate::config::restart::restart_needed(&self.running, &self.cfg())
    }

    /// Keys of a candidate that would take effect only after a restart.
    pub fn restart_needed_for(&self, candidate: &FileConfig) -> Vec<String> {
        crate::config::restart::restart_needed(&self.running, candidate)
    }

    /// The virtual servers to serve: the file's, then the runtime ones.
    pub fn views(&self) -> Vec<waygate_core::view::View> {
        crate::config::catalog::views(&self.runtime_servers.merged(&self.cfg()))
    }

    fn cfg(&self) -> FileConfig {
        self.config.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

impl Operations for ServeOps {
    fn render_metrics(&self, out: &mut String) {
        let (depth, written, dropped) = match self.audit.get() {
            Some(q) => (
                q.depth() as u64,
                q.written.load(Ordering::Relaxed),
                q.dropped.load(Ordering::Relaxed),
            ),
            None => (0, 0, 0),
        };
        family(
            out,
            "waygate_audit_queue_depth",
            "gauge",
            "Audit records waiting for the database.",
        );
        let _ = writeln!(out, "waygate_audit_queue_depth {depth}");
        family(
            out,
            "waygate_audit_records_written_total",
            "counter",
            "Audit records stored.",
        );
        let _ = writeln!(out, "waygate_audit_records_written_total {written}");
        family(
            out,
            "waygate_audit_records_dropped_total",
            "counter",
            "Audit records dropped because the queue was full.",
        );
        let _ = writeln!(out, "waygate_audit_records_dropped_total {dropped}");
        family(
            out,
            "waygate_store_up",
            "gauge",
            "1 when the store answered its last ping.",
        );
        let _ = writeln!(
            out,
            "waygate_store_up {}",
            u8::from(self.store_up.load(Ordering::Relaxed))
        );
        family(
            out,
            "waygate_upstreams_configured",
            "gauge",
            "Upstream MCP servers in the configuration.",
        );
        let n = self.config.read().unwrap_or_else(|e| e.into_inner()).upstreams.len();
        let _ = writeln!(out, "waygate_upstreams_configured {n}");
        let catalog = self.registry.catalog();
        family(
            out,
            "waygate_catalog_name_collisions",
            "gauge",
            "Names two plugins both wanted bare (prefix = never) or whose prefixed forms met.",
        );
        let _ = writeln!(out, "waygate_catalog_name_collisions {}", catalog.collisions().len());
        family(
            out,
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since the Unix epoch.",
        );
        let _ = writeln!(out, "process_start_time_seconds {:.3}", self.started_unix);
        if let Some(e) = self.engine.get() {
            e.hooks().render(out);
        }
        if let Some(m) = self.plugins.get() {
            waygate_upstream::render_metrics(&m.upstreams(), out);
        }
    }

    /// Required upstreams that are not connected (the store and config are checked by the
    /// transport itself).
    fn not_ready(&self) -> Vec<String> {
        let live: std::collections::HashMap<String, Arc<waygate_upstream::Upstream>> = self
            .plugins
            .get()
            .map(|m| m.upstreams())
            .unwrap_or_default()
            .into_iter()
            .map(|u| (u.upstream_name().to_string(), u))
            .collect();
        let cfg = self.config.read().unwrap_or_else(|e| e.into_inner());
        cfg.upstreams
            .iter()
            .filter(|u| u.required == Some(true) && u.enabled != Some(false))
            .filter_map(|u| match live.get(&u.name) {
                Some(up) if up.status() == waygate_upstream::Status::Up => None,
                Some(up) => Some(format!(
                    "required upstream {} is {}: {}",
                    u.name,
                    up.status().label(),
                    up.describe()["last_error"].as_str().unwrap_or("not connected")
                )),
                None => Some(match self.plugins.get().and_then(|m| m.upstream_error(&u.name)) {
                    Some(why) => format!("required upstream {} could not be started: {why}", u.name),
                    None => format!("required upstream {} is not running", u.name),
                }),
            })
            .collect()
    }

    fn degraded(&self) -> Vec<String> {
        let mut up = self.plugins.get().map(|m| m.upstreams()).unwrap_or_default();
        up.sort_by(|a, b| a.upstream_name().cmp(b.upstream_name()));
        up.iter().filter_map(|u| u.degraded()).collect()
    }

    fn log_filter(&self, new: Option<&str>) -> Result<String, String> {
        if let Some(f) = new {
            crate::logging::set(f)?;
        }
        Ok(crate::logging::current())
    }

    fn diagnostics(&self) -> BoxFuture<'_, Value> {
        Box::pin(async move {
            let cfg = self.cfg();
            let store = match self.store.get() {
                None => json!({"state": "opening"}),
                Some(s) => {
                    let status = s.status().await;
                    json!({
                        "url": s.url(),
                        "reachable": self.store_up.load(Ordering::Relaxed),
                        "schema_version": s.schema_version().await.ok(),
                        "pending_migrations": status.as_ref().map(|st| st.iter().filter(|m| !m.applied).count()).ok(),
                        "error": status.err().map(|e| e.to_string()),
                    })
                }
            };
            let plugins: Vec<Value> = match self.plugins.get() {
                Some(m) => m.list().await,
                None => self
                    .registry
                    .list()
                    .await
                    .into_iter()
                    .map(|p| json!({"name": p.name, "state": p.state.label(), "tools": p.tools, "resources": p.resources, "prompts": p.prompts}))
                    .collect(),
            };
            let hooks = self.engine.get().map(|e| e.hooks().describe()).unwrap_or_default();
            let live: Vec<Arc<waygate_upstream::Upstream>> =
                self.plugins.get().map(|m| m.upstreams()).unwrap_or_default();
            let upstreams: Vec<Value> = cfg
                .upstreams
                .iter()
                .map(|u| {
                    let mut row = match live.iter().find(|l| l.upstream_name() == u.name) {
                        Some(l) => l.describe(),
                        None if u.enabled == Some(false) => json!({"state": "disabled"}),
                        None => json!({
                            "state": "not started",
                            "last_error": self.plugins.get().and_then(|m| m.upstream_error(&u.name)),
                        }),
                    };
                    row["name"] = json!(u.name);
                    if row.get("transport").is_none() {
                        row["transport"] = json!(u.transport_kind());
                    }
                    row["enabled"] = json!(u.enabled.unwrap_or(true));
                    row["required"] = json!(u.required.unwrap_or(false));
                    row
                })
                .collect();
            let audit = match self.audit.get() {
                Some(q) => json!({
                    "enabled": self.audit_enabled,
                    "queue_depth": q.depth(),
                    "written": q.written.load(Ordering::Relaxed),
                    "dropped": q.dropped.load(Ordering::Relaxed),
                }),
                None => json!({"enabled": self.audit_enabled}),
            };
            let config: serde_json::Map<String, Value> =
                cfg.flatten().into_iter().map(|(k, v)| (k, Value::String(v))).collect();
            let mut diag = json!({
                "version": env!("CARGO_PKG_VERSION"),
                "uptime_secs": self.started.elapsed().as_secs(),
                "store": store,
                "restart_needed": self.restart_needed(),
                "plugins": plugins,
                "catalog_tools": self.registry.catalog().tool_count(),
                "catalog": {
                    "tools": self.registry.catalog().tool_count(),
                    "name_collisions": self.registry.catalog().collisions(),
                    "servers": cfg.servers.iter().map(|s| &s.name).collect::<Vec<_>>(),
                },
                "hooks": hooks,
                "upstreams": upstreams,
                "rate_limits": {
                    "requests_per_second": cfg.limits.requests_per_second,
                    "burst": cfg.limits.burst,
                    "shared_via_redis": cfg.limits.redis_url.is_some(),
                    "tools": cfg.limits.tools.keys().collect::<Vec<_>>(),
                },
                "authorization": {"default": cfg.authz.default.as_deref().unwrap_or("allow"), "rules": cfg.policies.len()},
                "jwt": cfg.auth.jwt.as_ref().map(|j| json!({"issuer": j.issuer, "jwks_url": j.jwks_url})),
                "audit": audit,
                "config": config,
            });
            // Upstream errors, URLs and anything else quoted here: no secret gets out.
            waygate_security::redact::scrub_json(&mut diag);
            diag
        })
    }
}
