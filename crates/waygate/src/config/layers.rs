//! Loading the levels: file (upgraded from older versions in memory), `${env:…}` and
//! `${file:…}` secret references, `WAYGATE_SECTION__KEY` environment overrides; and
//! remembering where every value came from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{upgrade, ConfigError, FileConfig, CURRENT_VERSION};

/// Where a value came from, lowest precedence first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    Default,
    File,
    Env,
    Flag,
}

impl Source {
    pub fn label(self) -> &'static str {
        match self {
            Source::Default => "default",
            Source::File => "file",
            Source::Env => "env",
            Source::Flag => "flag",
        }
    }
}

/// The merged configuration and the provenance of each set key.
#[derive(Debug, Clone)]
pub struct Layered {
    pub cfg: FileConfig,
    pub path: Option<PathBuf>,
    /// The file as written (secret references unresolved), for snapshots.
    pub raw: Option<String>,
    /// Dotted key → (level, origin such as `waygate.toml:7` or `WAYGATE_HTTP__MAX_BODY_BYTES`).
    pub sources: BTreeMap<String, (Source, String)>,
    /// Set when the file was an older format upgraded in memory.
    pub upgraded_from: Option<u32>,
}

impl Layered {
    pub fn source_of(&self, key: &str) -> (Source, String) {
        self.sources
            .get(key)
            .cloned()
            .unwrap_or((Source::Default, "built-in default".into()))
    }

    /// Record a command-line override.
    pub fn set_flag(&mut self, key: &str, flag: &str) {
        self.sources.insert(key.into(), (Source::Flag, flag.into()));
    }
}

/// Load `path` (if any) and the environment `env` (`(NAME, value)` pairs).
pub fn load(path: Option<&Path>, env: &[(String, String)]) -> Result<Layered, ConfigError> {
    let (mut value, raw) = match path {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read { path: p.into(), source })?;
            let v: toml::Value = toml::from_str(&text).map_err(|e| parse_error(p, &text, &e))?;
            (v, Some(text))
        }
        None => (toml::Value::Table(Default::default()), None),
    };
    let mut sources = BTreeMap::new();
    let origin = |key: &str| -> String {
        match (path, &raw) {
            (Some(p), Some(text)) => format!(
                "{}{}",
                p.display(),
                line_of(text, key).map(|l| format!(":{l}")).unwrap_or_default()
            ),
            _ => "built-in default".into(),
        }
    };
    let file_version = value.get("version").and_then(toml::Value::as_integer).map(|v| v as u32);
    let mut upgraded_from = None;
    if let Some(v) = file_version.filter(|v| *v < CURRENT_VERSION) {
        value = upgrade::upgrade(value, v).map_err(|m| ConfigError::Value {
            origin: origin("version"),
            key: "version".into(),
            message: m,
        })?;
        upgraded_from = Some(v);
    } else if let (Some(p), Some(text)) = (path, &raw) {
        // Parse the text itself once so errors point at a line.
        toml::from_str::<FileConfig>(text).map_err(|e| parse_error(p, text, &e))?;
    }
    if let toml::Value::Table(t) = &value {
        let mut keys = Vec::new();
        collect_keys("", t, &mut keys);
        for k in keys {
            let o = origin(&k);
            sources.insert(k, (Source::File, o));
        }
    }
    resolve_refs("", &mut value)?;
    for (name, raw_value) in env {
        let Some(rest) = name.strip_prefix("WAYGATE_") else {
            continue;
        };
        if !rest.contains("__") {
            continue; // WAYGATE_CONFIG, WAYGATE_LOG, … are command-line level settings.
        }
        let path: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
        set_path(&mut value, &path, parse_scalar(raw_value));
        sources.insert(path.join("."), (Source::Env, name.clone()));
    }
    let cfg = FileConfig::deserialize(value.clone()).map_err(|e| {
        let msg = hint(&e.to_string());
        let env_key = sources
            .iter()
            .find(|(_, (s, _))| *s == Source::Env)
            .map(|(_, (_, n))| n.clone());
        ConfigError::Value {
            origin: env_key
                .map(|n| format!("environment, e.g. {n}"))
                .unwrap_or_else(|| origin("")),
            key: "?".into(),
            message: msg,
        }
    })?;
    cfg.validate(&|key| sources.get(key).map(|(_, o)| o.clone()).unwrap_or_else(|| origin(key)))?;
    Ok(Layered {
        cfg,
        path: path.map(Path::to_path_buf),
        raw,
        sources,
        upgraded_from,
    })
}

fn parse_error(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let mut message = hint(e.message().trim());
    if let Some(span) = e.span() {
        let start = span.start.min(text.len());
        let line = text[..start].matches('\n').count() + 1;
        let src = text.lines().nth(line - 1).unwrap_or("").trim();
        message = format!("line {line} (`{src}`): {message}");
    }
    ConfigError::Parse {
        path: path.into(),
        message,
    }
}

/// Append "did you mean" to serde's unknown-field messages.
fn hint(msg: &str) -> String {
    let Some(rest) = msg.split("unknown field `").nth(1) else {
        return msg.to_string();
    };
    let Some((bad, expected)) = rest.split_once('`') else {
        return msg.to_string();
    };
    let best = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|c| (edit_distance(bad, c), c))
        .min()
        .filter(|(d, c)| *d <= (c.len() / 2).max(2));
    match best {
        Some((_, c)) => format!("{msg}; did you mean `{c}`?"),
        None => msg.to_string(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push((prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn line_of(text: &str, key: &str) -> Option<usize> {
    let leaf = key.rsplit('.').next()?;
    if leaf.is_empty() {
        return None;
    }
    text.lines()
        .position(|l| {
            let t = l.trim_start();
            t.starts_with(leaf) && t[leaf.len()..].trim_start().starts_with('=')
        })
        .map(|i| i + 1)
}

fn collect_keys(prefix: &str, t: &toml::Table, out: &mut Vec<String>) {
    for (k, v) in t {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(inner) => collect_keys(&key, inner, out),
            _ => out.push(key),
        }
    }
}

fn set_path(v: &mut toml::Value, path: &[String], leaf: toml::Value) {
    let mut cur = v;
    for (i, p) in path.iter().enumerate() {
        let toml::Value::Table(t) = cur else { return };
        if i == path.len() - 1 {
            t.insert(p.clone(), leaf);
            return;
        }
        cur = t
            .entry(p.clone())
            .or_insert_with(|| toml::Value::Table(Default::default()));
    }
}

/// `8080` → integer, `true` → bool, `["a","b"]` → array, anything else → string.
fn parse_scalar(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

/// Replace `${env:NAME}` and `${file:PATH}` inside string values.
fn resolve_refs(key: &str, v: &mut toml::Value) -> Result<(), ConfigError> {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t.iter_mut() {
                if key.is_empty() && k == "upstreams" {
                    // Upstream secrets are resolved when the upstream starts, so a missing
                    // variable disables that upstream instead of the whole server.
                    continue;
                }
                let child = if key.is_empty() {
                    k.clone()
                } else {
                    format!("{key}.{k}")
                };
                resolve_refs(&child, v)?;
            }
        }
        toml::Value::Array(a) => {
            for v in a {
                resolve_refs(key, v)?;
            }
        }
        toml::Value::String(s) if s.contains("${") => *s = expand(key, s)?,
        _ => {}
    }
    Ok(())
}

pub(crate) fn expand(key: &str, s: &str) -> Result<String, ConfigError> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| bad_ref(key, "unterminated ${…} reference"))?;
        let (kind, arg) = after[..end]
            .split_once(':')
            .ok_or_else(|| bad_ref(key, "expected ${env:NAME} or ${file:PATH}"))?;
        let value = match kind {
            "env" => std::env::var(arg).map_err(|_| bad_ref(key, &format!("environment variable {arg} is not set")))?,
            "file" => std::fs::read_to_string(arg)
                .map(|v| v.trim_end_matches(['\n', '\r']).to_string())
                .map_err(|e| bad_ref(key, &format!("cannot read {arg}: {e}")))?,
            "secret" => {
                return Err(bad_ref(
                    key,
                    "${secret:NAME} comes from the encrypted credential store and is only resolved for upstream env and headers, when the upstream starts",
                ))
            }
            other => {
                return Err(bad_ref(
                    key,
                    &format!("unknown reference kind {other:?}; expected env, file or secret"),
                ))
            }
        };
        // Whatever came through a reference is a secret in every output from now on.
        waygate_security::redact::register(&value);
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn bad_ref(key: &str, m: &str) -> ConfigError {
    ConfigError::Value {
        origin: "secret reference".into(),
        key: key.into(),
        message: m.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (PathBuf, impl Drop) {
        struct Rm(PathBuf);
        impl Drop for Rm {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
        let p = std::env::temp_dir().join(format!(
            "wg-cfg-{}-{:?}.toml",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::write(&p, text).unwrap();
        (p.clone(), Rm(p))
    }

    #[test]
    fn unknown_key_names_file_line_and_suggests() {
        let (p, _g) = write("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n");
        let e = load(Some(&p), &[]).unwrap_err().to_string();
        assert!(
            e.contains("line 3") && e.contains("lisen") && e.contains("did you mean `listen`"),
            "{e}"
        );
    }

    #[test]
    fn bad_values_are_named() {
        let (p, _g) = write("[plugins]\nenabled = [\"nope\"]\n");
        let e = load(Some(&p), &[]).unwrap_err().to_string();
        assert!(
            e.contains("plugins.enabled") && e.contains("nope") && e.contains(":2"),
            "{e}"
        );
        let (p, _g) = write("[server]\nlisten = \"nowhere\"\n");
        let e = load(Some(&p), &[]).unwrap_err().to_string();
        assert!(e.contains("listen") && e.contains("line 2"), "{e}");
    }

    #[test]
    fn bad_upstream_values_are_named() {
        for (text, key, expected) in [
            (
                "[[upstreams]]\nname = \"a\"\ntransport = \"http\"\nurl = \"http://127.0.0.1:1/mcp\"\nheaders = { \"Bad Header\" = \"x\" }\n",
                "upstreams[0].headers",
                "HTTP header name",
            ),
            (
                "[[upstreams]]\nname = \"a\"\ntransport = \"http\"\nurl = \"http://127.0.0.1:1/mcp\"\nheaders = { X-Key = \"a\\nb\" }\n",
                "upstreams[0].headers.X-Key",
                "line break",
            ),
            (
                "[[upstreams]]\nname = \"a\"\ntransport = \"stdio\"\ncommand = \"x\"\nhealth_interval_secs = 0\n",
                "upstreams[0].health_interval_secs",
                "≥ 1",
            ),
            (
                "[[upstreams]]\nname = \"a\"\ntransport = \"stdio\"\n",
                "upstreams[0].command",
                "needs a command",
            ),
        ] {
            let (p, _g) = write(text);
            let e = load(Some(&p), &[]).unwrap_err().to_string();
            assert!(e.contains(key) && e.contains(expected), "{e}");
        }
    }

    #[test]
    fn env_overrides_file_and_is_tracked() {
        let (p, _g) = write("[http]\nmax_body_bytes = 10\n");
        let env = vec![
            ("WAYGATE_HTTP__MAX_BODY_BYTES".to_string(), "20".to_string()),
            ("WAYGATE_LOG".into(), "x".into()),
        ];
        let l = load(Some(&p), &env).unwrap();
        assert_eq!(l.cfg.http.max_body_bytes, Some(20));
        assert_eq!(l.source_of("http.max_body_bytes").0, Source::Env);
        let bad = vec![("WAYGATE_HTTP__MAX_BODY_BYTES".to_string(), "0".to_string())];
        let e = load(Some(&p), &bad).unwrap_err().to_string();
        assert!(e.contains("WAYGATE_HTTP__MAX_BODY_BYTES"), "{e}");
    }

    #[test]
    fn secret_references_resolve() {
        std::env::set_var("WG_TEST_SECRET", "0123456789abcdef-secret");
        let (p, _g) = write("[mcp]\nstate_key = \"${env:WG_TEST_SECRET}\"\n");
        assert_eq!(
            load(Some(&p), &[])
                .unwrap()
                .cfg
                .mcp
                .state_key
                .as_ref()
                .map(|s| s.expose().to_string())
                .as_deref(),
            Some("0123456789abcdef-secret")
        );
        let (p, _g) = write("[mcp]\nstate_key = \"${env:WG_TEST_MISSING}\"\n");
        let e = load(Some(&p), &[]).unwrap_err().to_string();
        assert!(e.contains("WG_TEST_MISSING") && e.contains("mcp.state_key"), "{e}");
    }
}
