//! Outbound HTTP for plugins — the `system` plugin's `http_request` tool and the WASM host
//! function `waygate.http_request` — with one set of rules: http(s) only, the host must be
//! on the plugin's allowlist, every address passes the SSRF guard (literal addresses here,
//! resolved names in the client's resolver), no redirects, the caller's trace continues,
//! and the body read is capped.

use std::time::Duration;

use serde_json::{Map, Value};
use waygate_security::ssrf::Guard;

/// A response, body cut at the cap.
pub struct Fetched {
    pub status: u16,
    pub headers: Map<String, Value>,
    pub body: Vec<u8>,
    pub truncated: bool,
}

/// A client whose connections go through the SSRF guard and never follow redirects.
pub fn client() -> Result<reqwest::Client, String> {
    Guard::default()
        .client(reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()))
        .map_err(|e| format!("http client: {e}"))
}

/// `req` is `{"url", "method"?, "headers"?, "body"?}`.
pub async fn fetch(
    client: &reqwest::Client,
    hosts: &[String],
    req: &Value,
    timeout: Duration,
    max_body: usize,
) -> Result<Fetched, String> {
    let url = req.get("url").and_then(Value::as_str).ok_or("missing string \"url\"")?;
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("bad url: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("scheme {:?} not allowed", parsed.scheme()));
    }
    let host = parsed
        .host_str()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']');
    if !crate::wasm::host_allowed(hosts, host) {
        return Err(format!("host {host:?} is not in http_hosts"));
    }
    Guard::default()
        .check_url(url)
        .map_err(|e| format!("request failed: {e}"))?;
    let method = req.get("method").and_then(Value::as_str).unwrap_or("GET");
    let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("bad method {method:?}"))?;
    let mut rb = client
        .request(method, parsed)
        .timeout(timeout.max(Duration::from_millis(1)));
    if let Some(h) = req.get("headers").and_then(Value::as_object) {
        for (k, v) in h {
            if let Some(v) = v.as_str() {
                rb = rb.header(k.as_str(), v);
            }
        }
    }
    if let Some(b) = req.get("body").and_then(Value::as_str) {
        rb = rb.body(b.to_string());
    }
    // Continue the caller's trace into the outbound request.
    if let Some((tp, ts)) = waygate_core::spans::outbound() {
        rb = rb.header("traceparent", tp);
        if let Some(ts) = ts {
            rb = rb.header("tracestate", ts);
        }
    }
    let mut resp = rb
        .send()
        .await
        .map_err(|e| format!("request failed: {}", waygate_core::util::error_chain(&e)))?;
    let headers = resp
        .headers()
        .iter()
        .filter_map(|(k, v)| {
            v.to_str()
                .ok()
                .map(|v| (k.as_str().to_string(), Value::String(v.into())))
        })
        .collect();
    let (mut body, mut truncated) = (Vec::new(), false);
    while let Some(chunk) = resp.chunk().await.map_err(|e| format!("reading body: {e}"))? {
        let room = max_body - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            truncated = true;
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Fetched {
        status: resp.status().as_u16(),
        headers,
        body,
        truncated,
    })
}
