//! What a plugin is made from — a built-in name, the `system` settings, a WASM module, an
//! upstream entry — and which of them a configuration asks for.

use std::sync::Arc;

use serde_json::Value;
use waygate_core::Plugin;
use waygate_plugins::system::{System, SystemSpec};
use waygate_plugins::wasm::{WasmPlugin, WasmSpec};

use crate::config::FileConfig;

/// What a plugin is made from.
#[derive(Debug, Clone, PartialEq)]
pub enum Spec {
    Builtin(String),
    System(SystemSpec),
    Wasm(WasmSpec),
    /// A federated MCP server from `[[upstreams]]`.
    Upstream(Box<crate::upstreams::UpstreamEntry>),
}

impl Spec {
    pub fn name(&self) -> &str {
        match self {
            Spec::Builtin(n) => n,
            Spec::System(_) => "system",
            Spec::Wasm(w) => &w.name,
            Spec::Upstream(u) => &u.upstream.name,
        }
    }

    pub(super) fn tier(&self) -> &'static str {
        match self {
            Spec::Wasm(_) => "wasm",
            Spec::Upstream(_) => "upstream",
            _ => "native",
        }
    }

    /// From an admin request body: `{"wasm": {…}}` or `{"builtin": "everything"}`.
    pub fn from_request(v: &Value) -> Result<Spec, String> {
        if let Some(w) = v.get("wasm") {
            let spec: WasmSpec = serde_json::from_value(w.clone()).map_err(|e| format!("wasm: {e}"))?;
            spec.validate().map_err(|e| format!("wasm.{e}"))?;
            if !spec.module.is_file() {
                return Err(format!("wasm.module: {} is not a file", spec.module.display()));
            }
            return Ok(Spec::Wasm(spec));
        }
        match v.get("builtin").and_then(Value::as_str) {
            Some("system") => Err("the system plugin is configured in [plugins.system] of the config file".into()),
            Some(n) if waygate_plugins::BUILTIN.contains(&n) => Ok(Spec::Builtin(n.to_string())),
            Some(n) => Err(format!("unknown built-in plugin {n:?}")),
            None => Err("expected {\"wasm\": {\"name\": …, \"module\": …}} or {\"builtin\": NAME}".into()),
        }
    }
}

/// The plugins a configuration asks for, in load order (plus `--plugin` names).
pub fn desired(cfg: &FileConfig, add: &[String], no_demo: bool) -> Result<Vec<Spec>, String> {
    let mut out: Vec<Spec> = Vec::new();
    if !no_demo && cfg.plugins.demo.unwrap_or(true) {
        out.push(Spec::Builtin("demo".into()));
    }
    for n in cfg.plugins.enabled.iter().chain(add.iter()) {
        let spec = match n.as_str() {
            "system" => Spec::System(cfg.plugins.system.clone().unwrap_or_default()),
            n if waygate_plugins::BUILTIN.contains(&n) => Spec::Builtin(n.to_string()),
            _ => {
                return Err(format!(
                    "unknown plugin {n:?}; expected one of {}",
                    waygate_plugins::BUILTIN.join(", ")
                ))
            }
        };
        if !out.iter().any(|s| s.name() == spec.name()) {
            out.push(spec);
        }
    }
    out.extend(cfg.plugins.wasm.iter().cloned().map(Spec::Wasm));
    for (i, u) in cfg.upstreams.iter().enumerate() {
        if u.enabled == Some(false) {
            continue;
        }
        if out.iter().any(|s| s.name() == u.name) {
            return Err(format!(
                "upstreams[{i}].name: {:?} is already the name of a plugin; expected a unique name",
                u.name
            ));
        }
        out.push(Spec::Upstream(Box::new(crate::upstreams::UpstreamEntry {
            upstream: u.clone(),
            outbound: cfg.outbound.clone(),
        })));
    }
    Ok(out)
}

/// A plugin instance, and its WASM handle when it is one.
pub type Instance = (Arc<dyn Plugin>, Option<Arc<WasmPlugin>>);

/// A fresh instance of the plugin a spec describes (and the WASM handle, if it is one).
pub fn instantiate(spec: &Spec) -> Result<Instance, String> {
    Ok(match spec {
        Spec::Builtin(n) => (
            waygate_plugins::builtin(n).ok_or_else(|| format!("unknown plugin {n:?}"))?,
            None,
        ),
        Spec::System(s) => (
            Arc::new(System::new(s.clone()).map_err(|e| format!("plugins.system: {e}"))?),
            None,
        ),
        Spec::Wasm(w) => {
            let p = Arc::new(WasmPlugin::new(w.clone()));
            (p.clone(), Some(p))
        }
        Spec::Upstream(u) => {
            return Err(format!(
                "upstream {:?} is started by the plugin manager",
                u.upstream.name
            ))
        }
    })
}
