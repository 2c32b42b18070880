//! From an `[[upstreams]]` entry to a running federation client: references resolved
//! (`${secret:…}` from the store, `${env:…}`/`${file:…}`), the HTTP client built with the
//! SSRF guard, timeouts defaulted. Also the one-shot probe `doctor` and `import --verify`
//! use, so they check upstreams with exactly the code that serves them.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use serde_json::Value;
use waygate_core::PluginRegistry;
use waygate_store::Store;
use waygate_upstream::{
    Client, Containment, Era, HttpMode, HttpTarget, OpenApiTarget, StdioTarget, Target, Upstream, UpstreamSpec, Wiring,
};

use crate::config::{OutboundSection, Upstream as UpstreamConfig};

/// What a plugin [`crate::plugins::Spec`] holds for an upstream: its entry and the
/// outbound rules its connections obey (a change to either restarts it).
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamEntry {
    pub upstream: UpstreamConfig,
    pub outbound: OutboundSection,
}

/// The rustls configuration of `[upstreams.tls]`, `None` when it is empty (public roots).
async fn tls_config(
    key: &str,
    tls: &crate::config::UpstreamTls,
    store: Option<&Store>,
) -> Result<Option<Arc<waygate_upstream::tls::ClientConfig>>, String> {
    if tls.is_empty() {
        return Ok(None);
    }
    // Each path may be a `${env:…}` / `${file:…}` reference; errors name `{key}.tls.{name}`.
    let resolved = |name: &str, v: &Option<String>| {
        let k = format!("{key}.tls.{name}");
        let v = v.clone();
        async move {
            let p = match v {
                Some(v) => Some(std::path::PathBuf::from(resolve(&k, &v, store).await?)),
                None => None,
            };
            Ok::<_, String>((k, p))
        }
    };
    let ca = resolved("ca", &tls.ca).await?;
    let cert = resolved("client_cert", &tls.client_cert).await?;
    let client_key = resolved("client_key", &tls.client_key).await?;
    fn at((k, p): &(String, Option<std::path::PathBuf>)) -> Option<(&str, &std::path::Path)> {
        p.as_deref().map(|p| (k.as_str(), p))
    }
    waygate_upstream::tls::client_config(waygate_upstream::tls::TlsPaths {
        ca: at(&ca),
        client_cert: at(&cert),
        client_key: at(&client_key),
    })
    .map(Some)
}

async fn resolve(key: &str, value: &str, store: Option<&Store>) -> Result<String, String> {
    let v = if value.contains("${secret:") {
        let s = store.ok_or_else(|| format!("{key}: ${{secret:…}} needs the store, which is not open"))?;
        crate::commands::secrets::resolve(s, value)
            .await
            .map_err(|e| format!("{key}: {e}"))?
    } else {
        value.to_string()
    };
    crate::config::expand_refs(key, &v).map_err(|e| e.to_string())
}

/// The federation client's spec for an entry.
pub async fn spec_of(e: &UpstreamEntry, store: Option<&Store>) -> Result<UpstreamSpec, String> {
    let u = &e.upstream;
    let key = format!("upstreams.{}", u.name);
    let wiring = match u.transport_kind() {
        "stdio" => {
            let mut env = Vec::new();
            for (k, v) in &u.env {
                env.push((k.clone(), resolve(&format!("{key}.env.{k}"), v, store).await?));
            }
            Wiring::Stdio(StdioTarget {
                command: u.command.clone().ok_or_else(|| format!("{key}.command: missing"))?,
                args: u.args.clone(),
                env,
                cwd: u.cwd.as_ref().map(Into::into),
            })
        }
        kind @ ("http" | "sse") => {
            let raw = u.url.as_deref().ok_or_else(|| format!("{key}.url: missing"))?;
            let url = resolve(&format!("{key}.url"), raw, store).await?;
            let guard = e.outbound.guard();
            guard.check_url(&url).map_err(|err| format!("{key}.url: {err}"))?;
            let url = reqwest::Url::parse(&url).map_err(|err| format!("{key}.url: {err}"))?;
            let mut headers = Vec::new();
            for (k, v) in &u.headers {
                headers.push((k.clone(), resolve(&format!("{key}.headers.{k}"), v, store).await?));
            }
            let tls = tls_config(&key, &u.tls, store).await?;
            let mut builder = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(Duration::from_secs(10));
            if let Some(cfg) = &tls {
                builder = builder.use_preconfigured_tls((**cfg).clone());
            }
            let client = guard
                .client(builder)
                .map_err(|err| format!("{key}: http client: {err}"))?;
            let mode = match kind {
                "sse" => HttpMode::Sse,
                _ if u.sse_fallback() => HttpMode::Auto,
                _ => HttpMode::Streamable,
            };
            Wiring::Http(HttpTarget {
                url,
                headers,
                client,
                resolver: guard.resolver(),
                mode,
                tls,
            })
        }
        "openapi" => {
            let raw = u.openapi.as_deref().ok_or_else(|| format!("{key}.openapi: missing"))?;
            let document = resolve(&format!("{key}.openapi"), raw, store).await?;
            let guard = e.outbound.guard();
            if document.starts_with("http://") || document.starts_with("https://") {
                guard
                    .check_url(&document)
                    .map_err(|err| format!("{key}.openapi: {err}"))?;
            }
            let base_url = match &u.base_url {
                Some(b) => {
                    let b = resolve(&format!("{key}.base_url"), b, store).await?;
                    guard.check_url(&b).map_err(|err| format!("{key}.base_url: {err}"))?;
                    Some(b)
                }
                None => None,
            };
            let mut headers = Vec::new();
            for (k, v) in &u.headers {
                headers.push((k.clone(), resolve(&format!("{key}.headers.{k}"), v, store).await?));
            }
            let filter = waygate_upstream::OpenApiFilter::parse(&u.operations.include, &u.operations.exclude)
                .map_err(|err| format!("{key}.operations: {err}"))?;
            // Redirects stay on the API's origin; the guard checks every connection anyway.
            let policy = reqwest::redirect::Policy::custom(|a| {
                let same = a.previous().first().is_some_and(|f| f.origin() == a.url().origin());
                if same && a.previous().len() < 5 {
                    a.follow()
                } else {
                    a.stop()
                }
            });
            let mut builder = reqwest::Client::builder()
                .redirect(policy)
                .connect_timeout(Duration::from_secs(10));
            if let Some(cfg) = tls_config(&key, &u.tls, store).await? {
                builder = builder.use_preconfigured_tls((*cfg).clone());
            }
            let client = guard
                .client(builder)
                .map_err(|err| format!("{key}: http client: {err}"))?;
            Wiring::OpenApi(OpenApiTarget {
                document,
                base_url,
                headers,
                filter,
                client,
            })
        }
        other => {
            return Err(format!(
                "{key}.transport: got {other:?}, expected stdio, http, sse or openapi"
            ))
        }
    };
    Ok(UpstreamSpec {
        name: u.name.clone(),
        wiring,
        timeout: Duration::from_secs(u.timeout_secs.unwrap_or(60)),
        connect_timeout: Duration::from_secs(u.connect_timeout_secs.unwrap_or(30)),
        health_interval: Duration::from_secs(u.health_interval_secs.unwrap_or(30)),
        input_timeout: Duration::from_secs(u.input_timeout_secs.unwrap_or(300)),
        era: match u.era.as_deref() {
            None | Some("auto") => Era::Auto,
            Some("session") => Era::Session,
            Some("stateless") => Era::Stateless,
            Some(other) => return Err(format!("{key}.era: got {other:?}, expected auto, session or stateless")),
        },
        passthrough: u.passthrough_headers.iter().map(|h| h.to_ascii_lowercase()).collect(),
        containment: containment(u),
    })
}

/// The containment settings of `u`, defaults where it names none (validated already).
fn containment(u: &UpstreamConfig) -> Containment {
    let d = Containment::default();
    let secs = |v: Option<u64>, d: Duration| v.map_or(d, Duration::from_secs);
    let count = |v: Option<u64>, d: usize| v.map_or(d, |n| usize::try_from(n).unwrap_or(usize::MAX));
    Containment {
        max_concurrency: count(u.max_concurrency, d.max_concurrency),
        max_queue: count(u.max_queue, d.max_queue),
        breaker_failures: u
            .breaker_failures
            .map_or(d.breaker_failures, |n| u32::try_from(n).unwrap_or(u32::MAX)),
        breaker_cooldown: secs(u.breaker_cooldown_secs, d.breaker_cooldown),
        max_restarts: count(u.max_restarts, d.max_restarts),
        restart_window: secs(u.restart_window_secs, d.restart_window),
        withdraw_after: secs(u.withdraw_after_secs, d.withdraw_after),
    }
}

/// Every client header some upstream asks for (lowercase), for the transport to keep.
pub fn passthrough_names(upstreams: &[UpstreamConfig]) -> Vec<String> {
    let mut names: Vec<String> = upstreams
        .iter()
        .filter(|u| u.enabled != Some(false))
        .flat_map(|u| u.passthrough_headers.iter().map(|h| h.to_ascii_lowercase()))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// A served upstream.
pub async fn start(
    e: &UpstreamEntry,
    store: Option<&Store>,
    registry: Weak<PluginRegistry>,
) -> Result<std::sync::Arc<Upstream>, String> {
    Ok(Upstream::new(spec_of(e, store).await?, registry))
}

/// What a one-shot check found.
pub struct Probe {
    pub tools: Vec<String>,
    pub server: Value,
    pub protocol_version: String,
    pub took: Duration,
}

/// Connect once, handshake, list tools, disconnect.
pub async fn probe(e: &UpstreamEntry, store: Option<&Store>, timeout: Duration) -> Result<Probe, String> {
    let spec = spec_of(e, store).await?;
    let t = Instant::now();
    let target = match spec.wiring {
        Wiring::Stdio(s) => Target::Stdio(s),
        Wiring::Http(h) => Target::Http(h),
        Wiring::OpenApi(o) => Target::OpenApi(o),
    };
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    let run = async {
        let c = Client::connect(&spec.name, target, timeout, tx, spec.era)
            .await
            .map_err(|e| e.to_string())?;
        let tools = if c.offers("tools") {
            c.list_all("tools/list", "tools")
                .await
                .map_err(|e| format!("tools/list: {e}"))
        } else {
            Ok(Vec::new())
        };
        c.close().await;
        let names = tools?
            .iter()
            .filter_map(|t| t.get("name").and_then(Value::as_str).map(str::to_string))
            .collect();
        Ok::<_, String>(Probe {
            tools: names,
            server: c.server_info.clone(),
            protocol_version: c.protocol_version.clone(),
            took: Duration::ZERO,
        })
    };
    let mut p = tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| format!("no answer within {} s", timeout.as_secs()))??;
    p.took = t.elapsed();
    Ok(p)
}
