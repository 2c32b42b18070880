//! An OpenAPI upstream, spoken to as if it were an MCP server: "connecting" reads the
//! document and maps its operations to tools, `tools/list` answers from that map, and
//! `tools/call` becomes the operation's HTTP request. The supervisor, status, restart (which
//! re-reads the document), metrics and tracing are the ones every upstream has.
//!
//! Every request goes through the SSRF-guarded client (the guard resolves and checks each
//! connection's addresses) to the one base URL's origin: arguments are percent-encoded into
//! the path and query, so they can neither change the host nor smuggle headers.

use std::time::Duration;

use http::{HeaderName, HeaderValue};
use serde_json::{json, Map, Value};
use waygate_openapi::{Api, Filter};

use crate::error::UpstreamError;

/// Largest document or response body read.
const MAX_BYTES: usize = 16 * 1024 * 1024;

/// Where the document comes from and where its operations are sent.
#[derive(Debug, Clone)]
pub struct OpenApiTarget {
    /// A file path or an http(s) URL.
    pub document: String,
    /// Overrides the document's `servers[0].url` (required when that is missing or relative
    /// to a document read from a file).
    pub base_url: Option<String>,
    /// Sent on every request (credentials from `${secret:…}`, already resolved).
    pub headers: Vec<(String, String)>,
    pub filter: Filter,
    /// Built with the SSRF guard.
    pub client: reqwest::Client,
}

/// A loaded document, ready to serve.
pub struct OpenApiWire {
    api: Api,
    base: reqwest::Url,
    target: OpenApiTarget,
    /// The configured headers, built once (sent on every call).
    headers: reqwest::header::HeaderMap,
}

/// `scheme://host:port/path` without credentials or query, for messages.
fn shown(u: &reqwest::Url) -> String {
    format!("{}{}", u.origin().ascii_serialization(), u.path())
}

async fn read_limited(resp: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut resp = resp;
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if out.len() + chunk.len() > MAX_BYTES {
            return Err(format!("larger than {} MB", MAX_BYTES / (1024 * 1024)));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

impl OpenApiWire {
    /// Read and map the document.
    pub async fn load(t: OpenApiTarget, timeout: Duration) -> Result<OpenApiWire, UpstreamError> {
        let fail = |m: String| UpstreamError::Connect(format!("OpenAPI document {}: {m}", t.document));
        let remote = t.document.starts_with("http://") || t.document.starts_with("https://");
        let (text, doc_url) = if remote {
            let url = reqwest::Url::parse(&t.document).map_err(|e| fail(e.to_string()))?;
            let resp = t
                .client
                .get(url.clone())
                .headers(header_map(&t.headers).map_err(fail)?)
                .timeout(timeout)
                .send()
                .await
                .map_err(|e| fail(format!("cannot fetch it: {}", waygate_core::util::error_chain(&e))))?;
            if !resp.status().is_success() {
                return Err(fail(format!("fetching it answered HTTP {}", resp.status())));
            }
            let bytes = read_limited(resp).await.map_err(fail)?;
            (String::from_utf8_lossy(&bytes).into_owned(), Some(url))
        } else {
            let meta = tokio::fs::metadata(&t.document)
                .await
                .map_err(|e| fail(format!("cannot read it: {e}")))?;
            if meta.len() > MAX_BYTES as u64 {
                return Err(fail(format!("larger than {} MB", MAX_BYTES / (1024 * 1024))));
            }
            let text = tokio::fs::read_to_string(&t.document)
                .await
                .map_err(|e| fail(format!("cannot read it: {e}")))?;
            (text, None)
        };
        let doc = waygate_openapi::parse_document(&text).map_err(|e| fail(e.to_string()))?;
        let api = Api::from_document(&doc, &t.filter).map_err(|e| fail(e.to_string()))?;
        for (op, why) in &api.skipped {
            tracing::warn!(document = %t.document, operation = %op, reason = %why, "OpenAPI operation not served");
        }
        let base_text = match (&t.base_url, api.servers.first()) {
            (Some(b), _) => b.clone(),
            (None, Some(s)) => s.clone(),
            (None, None) => return Err(fail("it names no server; set base_url".into())),
        };
        let base = match (reqwest::Url::parse(&base_text), &doc_url) {
            (Ok(u), _) => u,
            (Err(_), Some(d)) => d
                .join(&base_text)
                .map_err(|e| fail(format!("server URL {base_text:?}: {e}")))?,
            (Err(_), None) => {
                return Err(fail(format!(
                    "its server URL {base_text:?} is relative and the document is a file; set base_url"
                )))
            }
        };
        if !matches!(base.scheme(), "http" | "https") {
            return Err(fail(format!("server URL {}: expected http or https", shown(&base))));
        }
        let headers = header_map(&t.headers).map_err(fail)?;
        Ok(OpenApiWire {
            api,
            base,
            target: t,
            headers,
        })
    }

    /// What `initialize` would have said.
    pub fn server_info(&self) -> Value {
        let skipped: Vec<Value> = self
            .api
            .skipped
            .iter()
            .map(|(op, why)| json!({"operation": op, "why": why}))
            .collect();
        json!({
            "name": self.api.title,
            "version": self.api.version,
            "openapi": self.api.openapi,
            "baseUrl": shown(&self.base),
            "operations": self.api.operations.len(),
            "skipped": skipped,
        })
    }

    pub fn protocol_version(&self) -> String {
        format!("openapi-{}", self.api.openapi)
    }

    pub fn instructions(&self) -> Option<String> {
        self.api.description.as_ref().map(|d| d.chars().take(2048).collect())
    }

    /// Answer one MCP request.
    pub async fn handle(
        &self,
        method: &str,
        params: &Value,
        headers: &[(HeaderName, HeaderValue)],
        timeout: Duration,
    ) -> Result<Value, UpstreamError> {
        match method {
            "ping" => Ok(json!({})),
            "tools/list" => {
                let tools: Vec<Value> = self.api.operations.iter().map(|o| o.tool.clone()).collect();
                Ok(json!({"tools": tools}))
            }
            "tools/call" => {
                let name = params.get("name").and_then(Value::as_str).unwrap_or_default();
                let empty = Map::new();
                let args = params.get("arguments").and_then(Value::as_object).unwrap_or(&empty);
                self.call(name, args, headers, timeout).await
            }
            other => Err(UpstreamError::Rpc {
                code: -32601,
                message: format!("{other} is not offered by an OpenAPI upstream"),
                data: None,
            }),
        }
    }

    async fn call(
        &self,
        name: &str,
        args: &Map<String, Value>,
        extra: &[(HeaderName, HeaderValue)],
        timeout: Duration,
    ) -> Result<Value, UpstreamError> {
        let op = self.api.operation(name).ok_or_else(|| UpstreamError::Rpc {
            code: -32602,
            message: format!("unknown tool {name:?}"),
            data: None,
        })?;
        let invalid = |message: String| UpstreamError::Rpc {
            code: -32602,
            message,
            data: None,
        };
        let req = op.request(self.base.as_str(), args).map_err(invalid)?;
        let url = reqwest::Url::parse(&req.url).map_err(|e| invalid(format!("the request URL is invalid: {e}")))?;
        // Encoding keeps arguments inside the path and query; this says so for certain.
        if url.origin() != self.base.origin() {
            return Err(invalid("the arguments would leave the API's origin".into()));
        }
        let method = reqwest::Method::from_bytes(req.method.as_bytes())
            .map_err(|e| invalid(format!("method {}: {e}", req.method)))?;
        let mut builder = self
            .target
            .client
            .request(method, url.clone())
            .timeout(timeout)
            .header("accept", "application/json, */*;q=0.5");
        // The caller's correlation id, passthrough and trace headers.
        for (k, v) in extra {
            builder = builder.header(k, v);
        }
        for (k, v) in &req.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        // Configured headers (credentials) last, so no argument can replace them.
        builder = builder.headers(self.headers.clone());
        if let Some((ct, bytes)) = req.body {
            builder = builder.header("content-type", ct).body(bytes);
        }
        let what = format!("{} {}", req.method, shown(&url));
        let resp = match builder.send().await {
            Ok(r) => r,
            Err(e) => {
                let why = if e.is_timeout() {
                    format!("no answer within {} ms", timeout.as_millis())
                } else {
                    waygate_core::util::error_chain(&e)
                };
                return Ok(failure(format!("{what} failed: {why}")));
            }
        };
        let status = resp.status();
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = match read_limited(resp).await {
            Ok(b) => b,
            Err(why) => return Ok(failure(format!("{what}: the response is {why}"))),
        };
        Ok(waygate_openapi::result_of(
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            ct.as_deref(),
            &body,
            op.structured,
            &shown(&url),
        ))
    }
}

fn failure(text: String) -> Value {
    json!({"content": [{"type": "text", "text": text}], "isError": true})
}

fn header_map(headers: &[(String, String)]) -> Result<reqwest::header::HeaderMap, String> {
    let mut map = reqwest::header::HeaderMap::new();
    for (k, v) in headers {
        let name = reqwest::header::HeaderName::from_bytes(k.as_bytes()).map_err(|_| format!("header name {k:?}"))?;
        let mut value =
            reqwest::header::HeaderValue::from_str(v).map_err(|_| format!("the value of header {k:?} is not valid"))?;
        value.set_sensitive(true);
        map.insert(name, value);
    }
    Ok(map)
}
