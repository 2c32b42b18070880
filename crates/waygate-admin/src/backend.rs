//! What the admin API needs from the process that embeds it. The engine and the store are
//! shared crates the API uses directly; the plugin manager, the configuration and its
//! reload live in the binary and come through [`Backend`].

use std::sync::Arc;

use serde_json::Value;
use waygate_core::{BoxFuture, Engine};
use waygate_store::Store;

use crate::Problem;

pub type Fut<'a, T> = BoxFuture<'a, Result<T, Problem>>;

/// What can be done to a plugin besides loading and unloading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginAction {
    Reload,
    Enable,
    Disable,
}

/// A tool definition held back because it changed since it was approved.
#[derive(Debug, Clone)]
pub struct HeldPin {
    pub plugin: String,
    pub tool: String,
    pub sha256: String,
    pub approved_sha256: Option<String>,
    pub definition: Value,
}

pub trait Backend: Send + Sync + 'static {
    /// `None` until the server finished starting.
    fn engine(&self) -> Option<Arc<Engine>>;
    /// `None` while the store is still opening.
    fn store(&self) -> Option<Store>;
    /// The diagnostics document (secrets redacted).
    fn diagnostics(&self) -> BoxFuture<'_, Value>;
    /// The log filter in effect, after replacing it with `new` when given.
    fn log_filter(&self, new: Option<&str>) -> Result<String, String>;

    /// Plugins as `waygate plugins list` shows them (name, tier, state, origin, counts …).
    fn plugins(&self) -> BoxFuture<'_, Vec<Value>>;
    /// Load a plugin from its spec (`{"name", "wasm"|"command"|…}`); its name.
    fn plugin_load(&self, spec: Value) -> Fut<'_, String>;
    fn plugin_unload<'a>(&'a self, name: &'a str) -> Fut<'a, ()>;
    fn plugin_action<'a>(&'a self, name: &'a str, action: PluginAction) -> Fut<'a, ()>;

    /// Upstreams (file and runtime) with their entry (secrets redacted) and live state.
    fn upstreams(&self) -> BoxFuture<'_, Vec<Value>>;
    /// Create or replace a runtime upstream from a config entry; `true` when created.
    fn upstream_put(&self, entry: Value) -> Fut<'_, bool>;
    fn upstream_remove<'a>(&'a self, name: &'a str) -> Fut<'a, ()>;

    /// Virtual servers (file and runtime) as entries with their origin.
    fn servers(&self) -> BoxFuture<'_, Vec<Value>>;
    /// Create or replace a runtime virtual server; `true` when created.
    fn server_put(&self, entry: Value) -> Fut<'_, bool>;
    fn server_remove<'a>(&'a self, name: &'a str) -> Fut<'a, ()>;

    /// Tool definitions held back by pinning.
    fn pins_held(&self) -> Vec<HeldPin>;
    /// Approve a held definition; its digest.
    fn pin_approve<'a>(&'a self, plugin: &'a str, tool: &'a str, by: &'a str) -> Fut<'a, String>;

    /// The effective configuration, flattened `section.key = value`, secrets redacted.
    fn config_effective(&self) -> Value;
    /// The authorization policy and rate-limit rules in effect.
    fn policies(&self) -> Value;
    /// Validate a candidate file exactly as a reload would; its problems name the key. When
    /// valid: the keys it changes that would take effect only after a restart.
    fn config_validate(&self, text: &str) -> Result<Vec<String>, Problem>;
    /// Validate, write and apply a configuration file (snapshotted); what needs a restart.
    fn config_apply<'a>(&'a self, text: &'a str, actor: &'a str) -> Fut<'a, Vec<String>>;
    /// Replace top-level sections of the configuration file (`{"authz": …, "policies": …}`,
    /// `{"limits": …}`; an absent or empty value removes the section), keeping the rest of
    /// the file as written, then validate, write and apply it exactly as
    /// [`Backend::config_apply`] does. A server started without a file gets
    /// `<data-dir>/waygate.toml`, which it reads on its next start.
    fn config_sections<'a>(&'a self, sections: Value, actor: &'a str) -> Fut<'a, Vec<String>>;
    /// Re-read the configuration file now; what needs a restart.
    fn config_reload(&self) -> Fut<'_, Vec<String>>;
    /// Re-read the API key table now (after a create, revoke or rotate).
    fn keys_changed(&self) -> BoxFuture<'_, ()>;
}
