//! Configuration file format and the merge of defaults < file < environment < flags.
//!
//! Every error names the file, the key and what was expected; unknown keys are refused,
//! so a typo never silently does nothing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config file {path}: key `{key}`: {message}")]
    Value {
        path: PathBuf,
        key: String,
        message: String,
    },
    #[error("{0}")]
    Other(String),
}

/// The file as written. Unknown keys are errors.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    pub version: Option<u32>,
    pub server: ServerSection,
    pub http: HttpSection,
    pub mcp: McpSection,
    pub plugins: PluginsSection,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    pub listen: Option<SocketAddr>,
    pub name: Option<String>,
    pub instructions: Option<String>,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    pub max_body_bytes: Option<usize>,
    pub allowed_hosts: Vec<String>,
    pub allowed_origins: Vec<String>,
    pub keepalive_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct McpSection {
    /// Secret for sealing MRTR requestState; share it across replicas.
    pub state_key: Option<String>,
    pub session_idle_secs: Option<u64>,
    pub max_sessions: Option<usize>,
    pub page_size: Option<usize>,
    pub list_ttl_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsSection {
    /// Built-in plugins to enable in addition to `demo`.
    pub enabled: Vec<String>,
    /// Set false to start without the demo plugin.
    pub demo: Option<bool>,
}

pub const CURRENT_VERSION: u32 = 1;
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Load a file; `None` path → defaults.
pub fn load(path: Option<&Path>) -> Result<FileConfig, ConfigError> {
    let Some(path) = path else {
        return Ok(FileConfig::default());
    };
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.into(),
        source,
    })?;
    parse(path, &text)
}

pub fn parse(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    let cfg: FileConfig = toml::from_str(text).map_err(|e| {
        let mut message = e.message().to_string();
        if let Some(span) = e.span() {
            let start = span.start.min(text.len());
            let line = text[..start].matches('\n').count() + 1;
            let src = text.lines().nth(line - 1).unwrap_or("").trim();
            message = format!("line {line} (`{src}`): {}", message.trim());
        }
        ConfigError::Parse {
            path: path.into(),
            message,
        }
    })?;
    validate(path, &cfg)?;
    Ok(cfg)
}

fn validate(path: &Path, cfg: &FileConfig) -> Result<(), ConfigError> {
    let err = |key: &str, message: String| ConfigError::Value {
        path: path.into(),
        key: key.into(),
        message,
    };
    if let Some(v) = cfg.version {
        if v == 0 || v > CURRENT_VERSION {
            return Err(err("version", format!("got {v}, expected 1..={CURRENT_VERSION}")));
        }
    }
    if cfg.http.max_body_bytes == Some(0) {
        return Err(err(
            "http.max_body_bytes",
            "got 0, expected a positive number of bytes".into(),
        ));
    }
    if cfg.mcp.page_size == Some(0) {
        return Err(err("mcp.page_size", "got 0, expected at least 1".into()));
    }
    if let Some(k) = &cfg.mcp.state_key {
        if k.len() < 16 {
            return Err(err(
                "mcp.state_key",
                format!("got {} characters, expected at least 16", k.len()),
            ));
        }
    }
    for p in &cfg.plugins.enabled {
        if !waygate_plugins::BUILTIN.contains(&p.as_str()) {
            return Err(err(
                "plugins.enabled",
                format!(
                    "unknown plugin {p:?}; expected one of {}",
                    waygate_plugins::BUILTIN.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Resolve the config file path: the flag, else `<data-dir>/waygate.toml` if present.
pub fn resolve_path(flag: Option<&Path>, data_dir: &Path) -> Option<PathBuf> {
    if let Some(p) = flag {
        return Some(p.to_path_buf());
    }
    let p = data_dir.join("waygate.toml");
    p.exists().then_some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_names_file_and_line() {
        let e = parse(Path::new("w.toml"), "[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("w.toml") && e.contains("line 3") && e.contains("lisen"),
            "{e}"
        );
    }

    #[test]
    fn bad_values_are_named() {
        let e = parse(Path::new("w.toml"), "[plugins]\nenabled = [\"nope\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("plugins.enabled") && e.contains("nope"), "{e}");
        let e = parse(Path::new("w.toml"), "[server]\nlisten = \"nowhere\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("listen"), "{e}");
    }
}
