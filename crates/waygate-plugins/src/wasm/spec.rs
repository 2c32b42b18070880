//! What a WASM plugin is allowed to do, as written in the config (`[[plugins.wasm]]`) or
//! sent to the admin API. Every capability is off unless granted here.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One WASM plugin: where its module is and what it may use.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WasmSpec {
    /// Plugin name: config key, log field, collision prefix.
    pub name: String,
    /// Path of the `.wasm` (or `.wat`) module. A changed file is reloaded.
    pub module: PathBuf,
    /// Linear memory cap in MiB; a `memory.grow` past it traps the call.
    #[serde(default = "default_memory")]
    pub memory_mib: u32,
    /// Wall time per call (and per instantiation) in milliseconds.
    #[serde(default = "default_time")]
    pub time_ms: u64,
    /// Instances kept warm, which is also the number of concurrent calls.
    #[serde(default = "default_instances")]
    pub instances: usize,
    /// Consecutive traps after which the plugin is marked failed until reloaded.
    #[serde(default = "default_traps")]
    pub max_traps: u32,
    /// Largest answer (JSON bytes) a call may return.
    #[serde(default = "default_output")]
    pub max_output_bytes: usize,
    /// Directories the guest may read, as `"/host/dir"` (same path inside) or
    /// `"/host/dir:/guest/dir"`. Read-only; nothing else of the file system exists.
    #[serde(default)]
    pub fs_read: Vec<String>,
    /// Host environment variables passed through by name.
    #[serde(default)]
    pub env: Vec<String>,
    /// Hosts the `waygate.http_request` host function may reach (exact names, or
    /// `*.example.com`). Empty: no network.
    #[serde(default)]
    pub http_hosts: Vec<String>,
    /// Let the guest read the real time of day; otherwise the wall clock reads 0
    /// (the monotonic clock always works).
    #[serde(default)]
    pub wall_clock: bool,
    /// Handed to the guest's `waygate_init`.
    #[serde(default = "empty_object")]
    pub settings: Value,
}

fn default_memory() -> u32 {
    64
}
fn default_time() -> u64 {
    1000
}
fn default_instances() -> usize {
    4
}
fn default_traps() -> u32 {
    5
}
fn default_output() -> usize {
    4 << 20
}
fn empty_object() -> Value {
    Value::Object(Default::default())
}

impl WasmSpec {
    /// Check the values a deserializer cannot; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!(
                "name: {:?} must be non-empty letters, digits, '_' or '-'",
                self.name
            ));
        }
        if !(1..=4096).contains(&self.memory_mib) {
            return Err(format!("memory_mib: got {}, expected 1..=4096", self.memory_mib));
        }
        if !(1..=600_000).contains(&self.time_ms) {
            return Err(format!("time_ms: got {}, expected 1..=600000", self.time_ms));
        }
        if !(1..=256).contains(&self.instances) {
            return Err(format!("instances: got {}, expected 1..=256", self.instances));
        }
        if self.max_traps == 0 {
            return Err("max_traps: expected at least 1".into());
        }
        for d in &self.fs_read {
            let (host, _) = split_dir(d);
            if !std::path::Path::new(host).is_dir() {
                return Err(format!("fs_read: {host:?} is not a directory"));
            }
        }
        Ok(())
    }

    /// A spec with defaults for everything but the name and module.
    pub fn new(name: impl Into<String>, module: impl Into<PathBuf>) -> Self {
        WasmSpec {
            name: name.into(),
            module: module.into(),
            memory_mib: default_memory(),
            time_ms: default_time(),
            instances: default_instances(),
            max_traps: default_traps(),
            max_output_bytes: default_output(),
            fs_read: vec![],
            env: vec![],
            http_hosts: vec![],
            wall_clock: false,
            settings: empty_object(),
        }
    }
}

/// `"/host:/guest"` → (host, guest); `"/dir"` → (dir, dir).
pub(crate) fn split_dir(d: &str) -> (&str, &str) {
    match d.split_once(':') {
        Some((h, g)) if !g.is_empty() => (h, g),
        _ => (d, d),
    }
}

/// `api.example.com` matches itself; `*.example.com` matches any subdomain.
pub fn host_allowed(patterns: &[String], host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    patterns.iter().any(|p| {
        let p = p.to_ascii_lowercase();
        match p.strip_prefix("*.") {
            Some(suffix) => host.len() > suffix.len() + 1 && host.ends_with(&format!(".{suffix}")),
            None => p == host,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_match_exactly_or_by_subdomain() {
        let p = vec!["api.example.com".to_string(), "*.corp.test".to_string()];
        assert!(host_allowed(&p, "API.example.com"));
        assert!(host_allowed(&p, "a.corp.test"));
        assert!(!host_allowed(&p, "corp.test"));
        assert!(!host_allowed(&p, "evilcorp.test"));
        assert!(!host_allowed(&p, "api.example.com.evil.test"));
        assert!(!host_allowed(&[], "api.example.com"));
    }

    #[test]
    fn dirs_split_into_host_and_guest() {
        assert_eq!(split_dir("/a"), ("/a", "/a"));
        assert_eq!(split_dir("/a:/data"), ("/a", "/data"));
    }
}
