//! Configuration: the file format, its validation, and the merge of the four levels —
//! built-in defaults < config file < `WAYGATE_*` environment < command-line flags.
//!
//! Every error names where the bad value came from (file and line, or environment
//! variable), the key, and what was expected; unknown keys are refused with a hint.

pub mod catalog;
mod layers;
pub mod plugins;
pub mod restart;
mod schema;
pub mod security;
pub mod upgrade;
pub mod upstreams;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use waygate_security::Secret;

pub use catalog::{CatalogSection, VirtualServer};
pub use layers::{Layered, Source};
pub use plugins::{HookConfig, PinningSection, PluginsSection};
pub use schema::schema;
pub use security::{AuthSection, AuthzSection, PolicyRule};
pub use upstreams::{Upstream, UpstreamTls};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid configuration ({origin}): key `{key}`: {message}")]
    Value {
        origin: String,
        key: String,
        message: String,
    },
    #[error("{0}")]
    Other(String),
}

/// The newest file format; `waygate config migrate` upgrades the two before it.
pub const CURRENT_VERSION: u32 = 3;
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// The file as written (format version 3). Unknown keys are errors.
#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    pub version: Option<u32>,
    pub server: ServerSection,
    pub http: HttpSection,
    pub mcp: McpSection,
    pub plugins: PluginsSection,
    pub store: StoreSection,
    pub audit: AuditSection,
    pub limits: LimitsSection,
    pub auth: AuthSection,
    pub authz: AuthzSection,
    /// Authorization rules, evaluated deny-overrides (see `waygate_core::policy`).
    pub policies: Vec<PolicyRule>,
    /// What outbound connections (remote upstreams, HTTP tools) may reach (SSRF guard).
    pub outbound: OutboundSection,
    pub log: LogSection,
    /// Upstream MCP servers federated behind this gateway (imported or written by hand).
    pub upstreams: Vec<Upstream>,
    /// How exposed names are formed (prefixes, separator).
    pub catalog: CatalogSection,
    /// Virtual servers: named subsets of the catalog, each at `/servers/{name}/mcp`.
    pub servers: Vec<VirtualServer>,
    /// Guard and policy hooks around every call.
    pub hooks: Vec<HookConfig>,
    pub pinning: PinningSection,
    /// OpenTelemetry trace export (off unless `endpoint` is set).
    pub otel: OtelSection,
    /// The admin surface beside MCP (REST API, Swagger UI, compatibility routes).
    pub admin: AdminSection,
}

/// `[admin]`.
#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSection {
    /// Serve the Python Waygate's REST routes (`/mcp/execute`, `/plugins` …); default true.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compat_routes: Option<bool>,
}

/// `[otel]`: OTLP trace export.
#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct OtelSection {
    /// `http://collector:4318` (HTTP; `/v1/traces` is added) or `http://collector:4317` (gRPC).
    pub endpoint: Option<String>,
    /// `http/protobuf` (default) or `grpc`.
    pub protocol: Option<String>,
    pub service_name: Option<String>,
    /// Extra headers / gRPC metadata (vendor API keys; use `${env:NAME}`).
    #[schemars(with = "BTreeMap<String, String>")]
    pub headers: BTreeMap<String, Secret>,
    pub timeout_ms: Option<u64>,
    /// How long spans wait to be sent in one batch (default 1000 ms).
    pub batch_delay_ms: Option<u64>,
}

/// Rate limits, in MCP operations.
#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    /// Per caller (API key, else client IP) over HTTP; unset = unlimited.
    pub requests_per_second: Option<f64>,
    pub burst: Option<f64>,
    /// Per caller × tool; the key `*` applies to every tool without its own entry.
    pub tools: BTreeMap<String, ToolRate>,
    /// `redis://…`: share the buckets with every replica using the same Redis.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub redis_url: Option<Secret>,
}

/// Limits of one tool (or `*`).
#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ToolRate {
    /// Calls per second per caller × tool; unset = no per-tool quota.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_second: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burst: Option<f64>,
    /// Operations one call costs in the caller's overall bucket (default 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
    /// Calls of this tool running at once, across callers; more get an `isError` result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<usize>,
    /// A call running longer is cancelled and answered with an `isError` result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Results larger than this (serialized bytes) are cut, with a marker naming the size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_response_bytes: Option<usize>,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// Tools (globs) whose call arguments and results are logged, secrets redacted. Off by
    /// default: bodies can hold personal data.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bodies: Vec<String>,
    /// Bytes kept of each logged body (default 4096).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<usize>,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundSection {
    /// Loopback addresses (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_loopback: Option<bool>,
    /// RFC 1918, unique-local and carrier-grade NAT ranges (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_private: Option<bool>,
    /// Link-local addresses, where cloud metadata services live (default false).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_link_local: Option<bool>,
    /// Further refused networks, e.g. `["10.20.0.0/16"]`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deny_cidrs: Vec<String>,
}

impl OutboundSection {
    /// The runtime guard; invalid CIDRs are caught by validation first and skipped here.
    pub fn guard(&self) -> waygate_security::Guard {
        let d = waygate_security::Guard::default();
        waygate_security::Guard {
            allow_loopback: self.allow_loopback.unwrap_or(d.allow_loopback),
            allow_private: self.allow_private.unwrap_or(d.allow_private),
            allow_link_local: self.allow_link_local.unwrap_or(d.allow_link_local),
            deny: self
                .deny_cidrs
                .iter()
                .filter_map(|c| waygate_security::ssrf::parse_cidr(c))
                .collect(),
        }
    }
}

#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSection {
    /// Record every tool call, resource read and prompt get (default true).
    pub enabled: Option<bool>,
    /// Records that may wait for the database before new ones are dropped (default 10000).
    pub queue_capacity: Option<usize>,
    /// Tools (globs) whose arguments are stored in audit rows, secrets redacted; others get
    /// only the SHA-256 of their arguments.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub log_arguments: Vec<String>,
    /// Key that signs the audit chain's anchor; share it across replicas (`${env:NAME}`).
    /// Default: a random key kept in `<data-dir>/audit.key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub anchor_key: Option<Secret>,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    pub listen: Option<SocketAddr>,
    /// A second listener serving only `GET /metrics` without authentication (bind it to an
    /// internal interface); `/metrics` on the main port keeps needing the `metrics` scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
    pub name: Option<String>,
    pub instructions: Option<String>,
    /// PEM certificate chain (leaf first): `serve` terminates TLS itself (HTTP/2 + HTTP/1.1).
    /// A relative path is taken from the working directory. Reloaded when the file changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<String>,
    /// PEM private key of `tls_cert` (PKCS#8, PKCS#1 or SEC1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<String>,
    /// PEM CA certificates: with it, every client must present a certificate they issued
    /// (mutual TLS) — the handshake fails before any HTTP for one that does not. Watched:
    /// a bundle rotated on disk checks the next handshakes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client_ca: Option<String>,
}

impl ServerSection {
    /// The TLS files, when both are set.
    pub fn tls_files(&self) -> Option<waygate_transport::http::tls::TlsFiles> {
        Some(waygate_transport::http::tls::TlsFiles {
            cert: self.tls_cert.as_deref()?.into(),
            key: self.tls_key.as_deref()?.into(),
            client_ca: self.tls_client_ca.as_deref().map(Into::into),
        })
    }
}

#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    pub max_body_bytes: Option<usize>,
    pub allowed_hosts: Vec<String>,
    pub allowed_origins: Vec<String>,
    pub keepalive_secs: Option<u64>,
    /// Deepest JSON nesting accepted in a request (default 64).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_json_depth: Option<usize>,
    /// Most request headers accepted (default 64); more get 431.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_headers: Option<usize>,
    /// Seconds a client may take to send its request headers (default 10).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_timeout_secs: Option<u64>,
    /// Seconds a client may take to send its request body (default 30).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_timeout_secs: Option<u64>,
    /// Bytes queued for one client stream before a client that stopped reading is cut off
    /// (default 16 MiB).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_stream_buffer_bytes: Option<usize>,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct McpSection {
    /// Secret for sealing MRTR requestState; share it across replicas. Use `${env:NAME}`.
    #[schemars(with = "Option<String>")]
    pub state_key: Option<Secret>,
    pub session_idle_secs: Option<u64>,
    pub max_sessions: Option<usize>,
    pub page_size: Option<usize>,
    pub list_ttl_ms: Option<u64>,
    /// Check native and WASM tools' `structuredContent` against their `outputSchema`
    /// (default: on in debug builds only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validate_output: Option<bool>,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// `sqlite://PATH` (default: `<data-dir>/waygate.db`) or `postgres://…`.
    #[schemars(with = "Option<String>")]
    pub url: Option<Secret>,
}

/// Keys whose values are secrets: redacted in every output.
pub const SECRET_KEYS: [&str; 4] = ["mcp.state_key", "store.url", "limits.redis_url", "auth.admin_key"];

impl FileConfig {
    /// Check values that parse but make no sense. `origin` names the file or env var.
    pub fn validate(&self, origin_of: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
        let err = |key: &str, message: String| ConfigError::Value {
            origin: origin_of(key),
            key: key.into(),
            message,
        };
        if let Some(v) = self.version {
            if v != CURRENT_VERSION {
                return Err(err(
                    "version",
                    format!("got {v}, expected {CURRENT_VERSION} (run `waygate config migrate FILE` for older files)"),
                ));
            }
        }
        if self.http.max_body_bytes == Some(0) {
            return Err(err(
                "http.max_body_bytes",
                "got 0, expected a positive number of bytes".into(),
            ));
        }
        if self.mcp.page_size == Some(0) {
            return Err(err("mcp.page_size", "got 0, expected at least 1".into()));
        }
        if let Some(k) = self.mcp.state_key.as_ref().map(Secret::expose) {
            if k.len() < 16 {
                return Err(err(
                    "mcp.state_key",
                    format!("got {} characters, expected at least 16", k.len()),
                ));
            }
        }
        if let Some(k) = self.auth.admin_key.as_ref().map(Secret::expose) {
            waygate_core::auth::check_provided_key(k).map_err(|m| err("auth.admin_key", m))?;
        }
        if let Some(u) = self.store.url.as_ref().map(Secret::expose) {
            if !(u.starts_with("sqlite:") || u.starts_with("postgres://") || u.starts_with("postgresql://")) {
                return Err(err(
                    "store.url",
                    format!(
                        "got {:?}, expected sqlite://PATH or postgres://USER@HOST/DB",
                        waygate_security::redact::redact_url(u)
                    ),
                ));
            }
        }
        if let Some(r) = self.limits.requests_per_second {
            if !(r > 0.0 && r.is_finite()) {
                return Err(err(
                    "limits.requests_per_second",
                    format!("got {r}, expected a positive number"),
                ));
            }
        }
        for (tool, r) in &self.limits.tools {
            for (k, v) in [("per_second", r.per_second), ("burst", r.burst), ("cost", r.cost)] {
                if let Some(v) = v.filter(|v| !(*v > 0.0 && v.is_finite())) {
                    return Err(err(
                        &format!("limits.tools.{tool}.{k}"),
                        format!("got {v}, expected a positive number"),
                    ));
                }
            }
            if r.max_concurrent == Some(0) || r.timeout_ms == Some(0) || r.max_response_bytes.is_some_and(|m| m < 256) {
                return Err(err(
                    &format!("limits.tools.{tool}"),
                    "max_concurrent and timeout_ms must be at least 1, max_response_bytes at least 256".into(),
                ));
            }
        }
        if let Some(u) = self.limits.redis_url.as_ref().map(Secret::expose) {
            if !(u.starts_with("redis://") || u.starts_with("rediss://") || u.starts_with("redis+unix://")) {
                return Err(err(
                    "limits.redis_url",
                    "expected redis://[:PASSWORD@]HOST:PORT[/DB] or rediss://…".into(),
                ));
            }
        }
        for (k, v) in [
            ("http.max_json_depth", self.http.max_json_depth),
            ("http.max_headers", self.http.max_headers),
        ] {
            if v == Some(0) {
                return Err(err(k, "got 0, expected at least 1".into()));
            }
        }
        if self.server.tls_cert.is_some() != self.server.tls_key.is_some() {
            let missing = if self.server.tls_cert.is_some() {
                "server.tls_key"
            } else {
                "server.tls_cert"
            };
            return Err(err(
                missing,
                "is missing; expected both server.tls_cert and server.tls_key (PEM files) or neither".into(),
            ));
        }
        if self.server.tls_client_ca.is_some() && self.server.tls_cert.is_none() {
            return Err(err(
                "server.tls_client_ca",
                "needs TLS; expected server.tls_cert and server.tls_key as well".into(),
            ));
        }
        for (key, addr) in [
            ("server.listen", self.server.listen),
            ("server.metrics_listen", self.server.metrics_listen),
        ] {
            let Some(addr) = addr.filter(|a| !a.ip().is_loopback()) else {
                continue;
            };
            if self.http.allowed_hosts.is_empty() {
                return Err(err(
                    "http.allowed_hosts",
                    format!(
                        "is empty, but {key} = \"{addr}\" is not loopback; expected the host names clients use \
                         (e.g. [\"mcp.example.com\"]), or [\"*\"] to accept any Host without DNS-rebinding protection"
                    ),
                ));
            }
        }
        security::validate(&self.auth, &self.authz, &self.policies, &err)?;
        for (i, c) in self.outbound.deny_cidrs.iter().enumerate() {
            if waygate_security::ssrf::parse_cidr(c).is_none() {
                return Err(err(
                    &format!("outbound.deny_cidrs[{i}]"),
                    format!("got {c:?}, expected a network like 10.0.0.0/8 or fd00::/8"),
                ));
            }
        }
        upstreams::validate(self, &err)?;
        catalog::validate(self, &err)?;
        if let Some(p) = self.otel.protocol.as_deref() {
            if p != "grpc" && p != "http/protobuf" {
                return Err(err(
                    "otel.protocol",
                    format!("got {p:?}, expected grpc or http/protobuf"),
                ));
            }
        }
        if let Some(e) = self.otel.endpoint.as_deref() {
            if url::Url::parse(e).map_or(true, |u| !matches!(u.scheme(), "http" | "https")) {
                return Err(err(
                    "otel.endpoint",
                    format!("got {e:?}, expected an http:// or https:// URL"),
                ));
            }
        }
        if let Err((key, message)) = plugins::validate(&self.plugins, &self.hooks) {
            return Err(err(&key, message));
        }
        Ok(())
    }

    /// Every leaf as `dotted.key = value` (secrets redacted), for `config show`.
    pub fn flatten(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut shown = self.clone();
        if let Some(j) = shown.auth.jwt.as_mut() {
            for k in &mut j.keys {
                if k.secret.is_some() {
                    k.secret = Some(Secret::new("<redacted>"));
                }
            }
        }
        if let Ok(v) = toml::Value::try_from(&shown) {
            flatten_into("", &v, &mut out);
        }
        for k in SECRET_KEYS {
            if let Some(v) = out.get_mut(k) {
                *v = "\"<redacted>\"".into();
            }
        }
        // Values that came through ${env:…}/${file:…} and URL credentials, in any key.
        for v in out.values_mut() {
            if let std::borrow::Cow::Owned(clean) = waygate_security::scrub(v) {
                *v = clean;
            }
        }
        out
    }
}

fn flatten_into(prefix: &str, v: &toml::Value, out: &mut BTreeMap<String, String>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten_into(&key, v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// Resolve the config file path: the flag, else `<data-dir>/waygate.toml` if present.
pub fn resolve_path(flag: Option<&Path>, data_dir: &Path) -> Option<PathBuf> {
    if let Some(p) = flag {
        return Some(p.to_path_buf());
    }
    let p = data_dir.join("waygate.toml");
    p.exists().then_some(p)
}

/// The `WAYGATE_SECTION__KEY` variables of this process: the environment level of the
/// configuration, the same for `serve`, reloads, `config validate` and the admin API.
pub fn env_overrides() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with("WAYGATE_") && k.contains("__"))
        .collect()
}

/// Load the file and environment levels (see [`layers`]).
pub fn layers_load(path: Option<&Path>, env: &[(String, String)]) -> Result<Layered, ConfigError> {
    layers::load(path, env)
}

/// Expand `${env:…}` / `${file:…}` in one value (used when starting upstreams).
pub fn expand_refs(key: &str, value: &str) -> Result<String, ConfigError> {
    layers::expand(key, value)
}
