//! Built-in native plugins, and the table that turns a plugin name from the config or the
//! command line into an instance.

pub mod defs;
pub mod demo;
pub mod everything;
pub mod guards;
pub mod outbound;
pub mod system;
pub mod wasm;

use std::sync::Arc;

use waygate_core::Plugin;

/// Names accepted by `--plugin` / `[plugins]`.
pub const BUILTIN: [&str; 3] = ["demo", "everything", "system"];

/// Instantiate a built-in plugin by name.
pub fn builtin(name: &str) -> Option<Arc<dyn Plugin>> {
    match name {
        "demo" => Some(Arc::new(demo::Demo)),
        "everything" => Some(Arc::new(everything::Everything::default())),
        // Unconfigured, the system plugin offers nothing; see `system::System::new`.
        "system" => system::System::new(system::SystemSpec::default())
            .ok()
            .map(|s| Arc::new(s) as Arc<dyn Plugin>),
        _ => None,
    }
}
