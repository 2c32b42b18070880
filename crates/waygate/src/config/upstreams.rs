//! `[[upstreams]]`: federated MCP servers, written the way people write them (a pasted
//! `mcpServers` entry with only `command` or `url` works), and how each one's tools are
//! named, filtered and corrected in the catalog.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ConfigError, FileConfig};

/// The longest wait any upstream setting may name.
const YEAR_SECS: u64 = 365 * 24 * 3600;

/// How to reach one upstream MCP server.
#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Upstream {
    pub name: String,
    /// `stdio`, `http` (Streamable HTTP) or `sse` (2024-11-05 HTTP+SSE). Optional: `command`
    /// implies `stdio`, `url` implies `http` with a fallback to `sse` when the server
    /// answers as a legacy one.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub transport: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Longest wait for one forwarded request (default 60).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    /// Longest wait to start/reach the server and finish the handshake (default 30).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_timeout_secs: Option<u64>,
    /// How often a quiet connection is pinged (default 30).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_interval_secs: Option<u64>,
    /// `auto` (ask `server/discover`, speak 2026-07-28 when offered, else the handshake),
    /// `session` (always the handshake) or `stateless` (only 2026-07-28). Default `auto`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub era: Option<String>,
    /// Longest wait for the caller to answer a question the upstream relays to it
    /// (sampling, elicitation, roots) before the call is cancelled (default 300).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_timeout_secs: Option<u64>,
    /// Calls forwarded to this upstream at once (default 1024, as Envoy; 0 = no cap) …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u64>,
    /// … and calls waiting for a slot beyond them; more get a "busy" error (default 1024).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_queue: Option<u64>,
    /// Consecutive failures (no answer in time, connection lost) after which calls are
    /// refused for `breaker_cooldown_secs` (default 5; 0 = no circuit breaker).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breaker_failures: Option<u64>,
    /// How long an open circuit refuses calls before one trial call (default 30).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breaker_cooldown_secs: Option<u64>,
    /// Starts of a stdio server allowed within `restart_window_secs` before it counts as
    /// crash-looping and waits (default 5; 0 = no limit) …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_restarts: Option<u64>,
    /// … (default 60).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_window_secs: Option<u64>,
    /// How long the upstream may be down before its tools leave the catalog (clients get
    /// `list_changed`; they return when it is back). Default 30.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub withdraw_after_secs: Option<u64>,
    /// `/ready` answers 503 while this upstream is not connected (default false).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
    /// Client request headers forwarded to this upstream. Nothing is forwarded unless named
    /// here — a client's `Authorization` only with `passthrough_headers = ["authorization"]`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub passthrough_headers: Vec<String>,
    /// `always`, `on-conflict` or `never` (default: `[catalog] prefix`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Prefix text instead of the upstream's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix_with: Option<String>,
    /// Which tools enter the catalog, and operators' corrections to their definitions.
    #[serde(skip_serializing_if = "ToolRules::is_empty")]
    pub tools: ToolRules,
    /// An OpenAPI 3.0/3.1 document (file path or http(s) URL, JSON or YAML) whose
    /// operations become tools; implies `transport = "openapi"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub openapi: Option<String>,
    /// Where an OpenAPI upstream's requests go (default: the document's first server).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Which of an OpenAPI document's operations become tools.
    #[serde(skip_serializing_if = "OperationRules::is_empty")]
    pub operations: OperationRules,
    /// TLS towards an `https://` upstream: a private CA, a client certificate.
    #[serde(skip_serializing_if = "UpstreamTls::is_empty")]
    pub tls: UpstreamTls,
}

/// `[upstreams.tls]`: PEM files (paths, or `${env:…}` / `${file:…}` references to them),
/// read when the upstream starts; the client certificate again whenever its files change.
#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamTls {
    /// CA certificates trusted for this upstream in addition to the public roots (an
    /// internal PKI); a bundle rotated on disk is used from the next handshake on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    /// Certificate chain presented when the upstream asks for one (mutual TLS) …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<String>,
    /// … and its private key (PKCS#8, PKCS#1 or SEC1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_key: Option<String>,
}

impl UpstreamTls {
    pub fn is_empty(&self) -> bool {
        self.ca.is_none() && self.client_cert.is_none() && self.client_key.is_none()
    }
}

/// `operations.include` / `operations.exclude`: `"GET /pets/*"`, `"/admin/*"`, `"DELETE"`,
/// `"tag:billing"`.
#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct OperationRules {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

impl OperationRules {
    pub fn is_empty(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }
}

/// `tools.allow` / `tools.deny` globs on the upstream's own tool names, and
/// `tools.overrides.<name>` corrections.
#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ToolRules {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub overrides: BTreeMap<String, ToolOverride>,
}

impl ToolRules {
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty() && self.overrides.is_empty()
    }
}

/// A corrected title, description or annotations (merged key by key) for one tool.
#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ToolOverride {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Upstream {
    /// The transport in effect: the configured one, or the one `command` / `url` implies.
    pub fn transport_kind(&self) -> &str {
        match self.transport.as_str() {
            "" if self.openapi.is_some() => "openapi",
            "" if self.command.is_some() && self.url.is_none() => "stdio",
            "" if self.url.is_some() && self.command.is_none() => "http",
            t => t,
        }
    }

    /// Whether the transport was implied by `url` (then a legacy SSE server is accepted too).
    pub fn sse_fallback(&self) -> bool {
        self.transport.is_empty() && self.transport_kind() == "http"
    }
}

type Err<'a> = &'a dyn Fn(&str, String) -> ConfigError;

pub(super) fn validate(cfg: &FileConfig, err: Err<'_>) -> Result<(), ConfigError> {
    let guard = cfg.outbound.guard();
    let mut seen = std::collections::HashSet::new();
    for (i, u) in cfg.upstreams.iter().enumerate() {
        let key = format!("upstreams[{i}]");
        if u.name.is_empty() || !u.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err(err(
                &format!("{key}.name"),
                format!("got {:?}, expected letters, digits, '-', '_' or '.'", u.name),
            ));
        }
        if u.enabled != Some(false) && plugin_names(cfg).any(|p| p == u.name) {
            return Err(err(
                &format!("{key}.name"),
                format!("{:?} is already the name of a plugin; expected a unique name", u.name),
            ));
        }
        if let Some(url) = u.url.as_deref().filter(|x| !x.contains("${")) {
            if let Err(e) = guard.check_url(url) {
                return Err(err(&format!("{key}.url"), e.to_string()));
            }
        }
        if let Some(era) = u
            .era
            .as_deref()
            .filter(|e| !["auto", "session", "stateless"].contains(e))
        {
            return Err(err(
                &format!("{key}.era"),
                format!("got {era:?}, expected auto, session or stateless"),
            ));
        }
        for (k, v) in [
            ("timeout_secs", u.timeout_secs),
            ("connect_timeout_secs", u.connect_timeout_secs),
            ("health_interval_secs", u.health_interval_secs),
            ("input_timeout_secs", u.input_timeout_secs),
            ("breaker_cooldown_secs", u.breaker_cooldown_secs),
            ("restart_window_secs", u.restart_window_secs),
            ("withdraw_after_secs", u.withdraw_after_secs),
        ] {
            if v == Some(0) {
                return Err(err(
                    &format!("{key}.{k}"),
                    "got 0, expected a number of seconds ≥ 1".into(),
                ));
            }
            if let Some(n) = v.filter(|n| *n > YEAR_SECS) {
                return Err(err(
                    &format!("{key}.{k}"),
                    format!("got {n}, expected at most {YEAR_SECS} (one year)"),
                ));
            }
        }
        for (k, v, max) in [
            ("max_concurrency", u.max_concurrency, 100_000),
            ("max_queue", u.max_queue, 1_000_000),
            ("breaker_failures", u.breaker_failures, 10_000),
            ("max_restarts", u.max_restarts, 10_000),
        ] {
            if let Some(n) = v.filter(|n| *n > max) {
                return Err(err(&format!("{key}.{k}"), format!("got {n}, expected at most {max}")));
            }
        }
        for (h, v) in &u.headers {
            if h.is_empty() || !h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return Err(err(
                    &format!("{key}.headers"),
                    format!("got {h:?}, expected an HTTP header name"),
                ));
            }
            if v.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                return Err(err(
                    &format!("{key}.headers.{h}"),
                    "the value contains a line break or NUL; expected one line".into(),
                ));
            }
        }
        for h in &u.passthrough_headers {
            if h.is_empty() || !h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return Err(err(
                    &format!("{key}.passthrough_headers"),
                    format!("got {h:?}, expected an HTTP header name"),
                ));
            }
        }
        if !seen.insert(u.name.clone()) {
            return Err(err(
                &format!("{key}.name"),
                format!("duplicate upstream name {:?}", u.name),
            ));
        }
        if let Some(p) = &u.prefix {
            if waygate_core::naming::Prefix::parse(p).is_none() {
                return Err(err(
                    &format!("{key}.prefix"),
                    format!("got {p:?}, expected always, on-conflict or never"),
                ));
            }
        }
        if let Some(p) = &u.prefix_with {
            waygate_core::naming::Shaping::check_text("the prefix", p)
                .map_err(|m| err(&format!("{key}.prefix_with"), m))?;
        }
        for (k, globs) in [("allow", &u.tools.allow), ("deny", &u.tools.deny)] {
            if let Some(g) = globs.iter().find(|g| g.is_empty()) {
                return Err(err(
                    &format!("{key}.tools.{k}"),
                    format!("got {g:?}, expected a tool name or glob"),
                ));
            }
        }
        if u.openapi.is_some() && (u.command.is_some() || u.url.is_some()) {
            return Err(err(
                &format!("{key}.openapi"),
                "an OpenAPI upstream is reached through base_url; expected no command or url beside openapi".into(),
            ));
        }
        if let Some(b) = u.base_url.as_deref().filter(|x| !x.contains("${")) {
            if !(b.starts_with("http://") || b.starts_with("https://")) {
                return Err(err(
                    &format!("{key}.base_url"),
                    format!("got {b:?}, expected an http:// or https:// URL"),
                ));
            }
            if let Err(e) = guard.check_url(b) {
                return Err(err(&format!("{key}.base_url"), e.to_string()));
            }
        }
        if let Err(e) = waygate_upstream::OpenApiFilter::parse(&u.operations.include, &u.operations.exclude) {
            return Err(err(&format!("{key}.operations"), e));
        }
        if !u.tls.is_empty() && !matches!(u.transport_kind(), "http" | "sse" | "openapi") {
            return Err(err(
                &format!("{key}.tls"),
                "set on a stdio upstream; expected it only on http, sse or openapi upstreams".into(),
            ));
        }
        if u.tls.client_cert.is_some() != u.tls.client_key.is_some() {
            let missing = if u.tls.client_cert.is_none() {
                "client_cert"
            } else {
                "client_key"
            };
            return Err(err(
                &format!("{key}.tls.{missing}"),
                "missing; a client certificate needs both client_cert and client_key".into(),
            ));
        }
        if u.transport.is_empty() && u.command.is_some() && u.url.is_some() {
            return Err(err(
                &format!("{key}.transport"),
                "both command and url are set; expected one of them, or transport = \"stdio\" | \"http\" | \"sse\""
                    .into(),
            ));
        }
        match u.transport_kind() {
            "stdio" if u.command.as_deref().is_some_and(|c| !c.is_empty()) => {}
            "stdio" => {
                return Err(err(
                    &format!("{key}.command"),
                    "a stdio upstream needs a command".into(),
                ))
            }
            "http" | "sse"
                if u.url
                    .as_deref()
                    .is_some_and(|x| x.starts_with("http://") || x.starts_with("https://") || x.starts_with("${")) => {}
            "http" | "sse" => {
                return Err(err(
                    &format!("{key}.url"),
                    format!("got {:?}, expected an http:// or https:// URL", u.url),
                ))
            }
            "openapi" if u.openapi.as_deref().is_some_and(|d| !d.trim().is_empty()) => {}
            "openapi" => {
                return Err(err(
                    &format!("{key}.openapi"),
                    "expected the path or URL of an OpenAPI document".into(),
                ))
            }
            "" => {
                return Err(err(
                    &format!("{key}.command"),
                    "expected a command (a stdio server), a url (a remote server) or openapi (a REST API)".into(),
                ))
            }
            other => {
                return Err(err(
                    &format!("{key}.transport"),
                    format!("got {other:?}, expected stdio, http, sse or openapi"),
                ))
            }
        }
    }
    Ok(())
}

/// The names plugins take before upstreams are added (`serve` refuses an upstream that
/// reuses one, so `config validate` does too).
fn plugin_names(cfg: &FileConfig) -> impl Iterator<Item = &str> {
    let demo = cfg.plugins.demo.unwrap_or(true).then_some("demo");
    demo.into_iter()
        .chain(cfg.plugins.enabled.iter().map(String::as_str))
        .chain(cfg.plugins.wasm.iter().map(|w| w.name.as_str()))
}
