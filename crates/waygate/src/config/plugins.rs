//! `[plugins]` (built-in, system and WASM plugins), `[[hooks]]` (the guard chain) and
//! `[pinning]` (tool-definition pinning).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use waygate_plugins::system::SystemSpec;
use waygate_plugins::wasm::WasmSpec;

#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsSection {
    /// Built-in plugins to enable in addition to `demo` (`everything`, `system`).
    pub enabled: Vec<String>,
    /// Set false to start without the demo plugin.
    pub demo: Option<bool>,
    /// Confinement of the `system` plugin (used when `system` is enabled).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub system: Option<SystemSpec>,
    /// Sandboxed WebAssembly plugins.
    #[schemars(with = "Vec<serde_json::Map<String, serde_json::Value>>")]
    pub wasm: Vec<WasmSpec>,
}

/// One hook on the chain.
#[derive(Debug, Deserialize, Serialize, Clone, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HookConfig {
    /// Label in logs, metrics and denial messages.
    pub name: String,
    /// `redact_secrets`, `deny_list`, `output_limit` or `wasm`.
    pub kind: String,
    /// For `kind = "wasm"`: the WASM plugin that implements the hook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    /// Lower runs first.
    #[serde(default = "default_priority")]
    pub priority: i32,
    /// `enforce`, `permissive` or `disabled`.
    #[serde(default = "default_mode")]
    pub mode: String,
    /// Globs on tool/prompt names and resource URIs; empty = all.
    #[serde(default)]
    pub tools: Vec<String>,
    /// Globs on the serving plugin's name; empty = all.
    #[serde(default)]
    pub plugins: Vec<String>,
    /// Globs on `key-id:name` of the caller; empty = all.
    #[serde(default)]
    pub principals: Vec<String>,
    /// `tool`, `resource`, `prompt`; empty = all.
    #[serde(default)]
    pub kinds: Vec<String>,
    #[serde(default = "default_hook_timeout")]
    pub timeout_ms: u64,
    /// Kind-specific settings (patterns, max_bytes, …).
    #[serde(default = "empty_object")]
    pub settings: Value,
}

fn default_priority() -> i32 {
    100
}
fn default_mode() -> String {
    "enforce".into()
}
fn default_hook_timeout() -> u64 {
    1000
}
fn empty_object() -> Value {
    Value::Object(Default::default())
}

pub const HOOK_KINDS: [&str; 4] = ["redact_secrets", "deny_list", "output_limit", "wasm"];

/// Tool-definition pinning: a tool's definition is hashed when first approved; a changed
/// definition is held back from the catalog until approved again.
#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PinningSection {
    /// On by default.
    pub enabled: Option<bool>,
    /// Plugins (globs) whose tools are pinned; default: every WASM plugin (later also
    /// every upstream). Built-in plugins are part of the binary and not pinned.
    pub plugins: Option<Vec<String>>,
    /// Approve a tool seen for the first time (trust on first use). Default true; false
    /// holds new tools back until approved too.
    pub approve_new: Option<bool>,
}

/// Validate plugins, hooks and pinning; `Err((key, message))`.
pub fn validate(p: &PluginsSection, hooks: &[HookConfig]) -> Result<(), (String, String)> {
    for n in &p.enabled {
        if !waygate_plugins::BUILTIN.contains(&n.as_str()) {
            return Err((
                "plugins.enabled".into(),
                format!(
                    "unknown plugin {n:?}; expected one of {}",
                    waygate_plugins::BUILTIN.join(", ")
                ),
            ));
        }
    }
    if let Some(s) = &p.system {
        s.validate().map_err(|m| ("plugins.system".to_string(), m))?;
    }
    let mut names: Vec<&str> = waygate_plugins::BUILTIN.to_vec();
    for (i, w) in p.wasm.iter().enumerate() {
        let key = format!("plugins.wasm[{i}]");
        if names.contains(&w.name.as_str()) {
            return Err((
                format!("{key}.name"),
                format!("{:?} is already taken by another plugin", w.name),
            ));
        }
        w.validate().map_err(|m| (key.clone(), m))?;
        if !w.module.is_file() {
            return Err((format!("{key}.module"), format!("{} is not a file", w.module.display())));
        }
        names.push(&w.name);
    }
    for (i, h) in hooks.iter().enumerate() {
        let key = format!("hooks[{i}]");
        if waygate_core::hooks::Mode::parse(&h.mode).is_none() {
            return Err((
                format!("{key}.mode"),
                format!("got {:?}, expected enforce, permissive or disabled", h.mode),
            ));
        }
        match h.kind.as_str() {
            "wasm" => {
                let Some(pl) = &h.plugin else {
                    return Err((
                        format!("{key}.plugin"),
                        "a wasm hook names the WASM plugin that implements it".into(),
                    ));
                };
                if !p.wasm.iter().any(|w| &w.name == pl) {
                    return Err((
                        format!("{key}.plugin"),
                        format!("{pl:?} is not a configured WASM plugin"),
                    ));
                }
            }
            k => match waygate_plugins::guards::builtin(k, &h.settings) {
                None => {
                    return Err((
                        format!("{key}.kind"),
                        format!("got {k:?}, expected one of {}", HOOK_KINDS.join(", ")),
                    ))
                }
                Some(Err(m)) => return Err((format!("{key}.{}", m.split(':').next().unwrap_or("settings")), m)),
                Some(Ok(_)) => {}
            },
        }
        if h.timeout_ms == 0 {
            return Err((format!("{key}.timeout_ms"), "expected at least 1".into()));
        }
    }
    Ok(())
}
