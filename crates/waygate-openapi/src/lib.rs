//! OpenAPI upstreams: a REST API described by an OpenAPI 3.0 or 3.1 document, served as
//! MCP tools.
//!
//! This crate is the pure half — document → tools ([`Api::from_document`]), arguments →
//! HTTP request ([`Operation::request`]), HTTP response → MCP result ([`result_of`]). The
//! federation crate sends the requests (through the SSRF-guarded client) and supervises the
//! upstream like any other, so an OpenAPI upstream gets the same status, restart, metrics
//! and tracing as an MCP one.

mod filter;
mod operation;
mod request;
mod response;
pub mod schema;

pub use filter::{Filter, Rule};
pub use operation::{Body, Encoding, Location, Operation, Param, Shape};
pub use request::Request;
pub use response::result_of;

use serde_json::Value;

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("not an OpenAPI document: {0}")]
    NotOpenApi(String),
    #[error("cannot parse the document as JSON or YAML: {0}")]
    Parse(String),
    #[error("reference {0:?} points outside this document; only local references (#/…) are supported")]
    ExternalRef(String),
    #[error("reference {0:?} does not resolve")]
    BadRef(String),
    #[error("invalid document: {0}")]
    Invalid(String),
    #[error("unsupported: {0}")]
    Unsupported(String),
}

/// Most operations one document may turn into tools.
pub const MAX_OPERATIONS: usize = 10_000;

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// A document read as tools.
#[derive(Debug, Clone)]
pub struct Api {
    pub title: String,
    pub version: String,
    pub openapi: String,
    pub description: Option<String>,
    /// `servers[].url`, variables replaced by their defaults (may be relative).
    pub servers: Vec<String>,
    pub operations: Vec<Operation>,
    /// Operations that could not be mapped (`METHOD /path`, why); the rest still serve.
    pub skipped: Vec<(String, String)>,
    /// Tool name → index in `operations` (a call looks its operation up by name).
    index: std::collections::HashMap<String, usize>,
}

/// Parse JSON, or YAML when the text is not JSON.
pub fn parse_document(text: &str) -> Result<Value, Error> {
    let t = text.trim_start_matches('\u{feff}');
    if t.trim_start().starts_with('{') {
        return serde_json::from_str(t).map_err(|e| Error::Parse(format!("JSON: {e}")));
    }
    serde_norway::from_str::<Value>(t).map_err(|e| Error::Parse(format!("YAML: {e}")))
}

impl Api {
    /// Map every operation the filter admits. Operations that cannot be mapped are listed
    /// in [`Api::skipped`] rather than failing the document.
    pub fn from_document(doc: &Value, filter: &Filter) -> Result<Api, Error> {
        if doc.get("swagger").is_some() {
            return Err(Error::NotOpenApi(
                "Swagger 2.0 is not supported; convert it to OpenAPI 3 first".into(),
            ));
        }
        let version = doc
            .get("openapi")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::NotOpenApi("no \"openapi\" version field".into()))?;
        let legacy = match version {
            v if v.starts_with("3.0") => true,
            v if v.starts_with("3.1") || v.starts_with("3.2") => false,
            v => return Err(Error::NotOpenApi(format!("version {v:?}; expected 3.0.x or 3.1.x"))),
        };
        let info = doc.get("info").cloned().unwrap_or(Value::Null);
        let servers = doc
            .get("servers")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(server_url).collect())
            .unwrap_or_default();
        let mut api = Api {
            title: info
                .get("title")
                .and_then(Value::as_str)
                .unwrap_or("OpenAPI")
                .to_string(),
            version: info.get("version").and_then(Value::as_str).unwrap_or("").to_string(),
            openapi: version.to_string(),
            description: info
                .get("description")
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            servers,
            operations: Vec::new(),
            skipped: Vec::new(),
            index: Default::default(),
        };
        let Some(paths) = doc.get("paths").and_then(Value::as_object) else {
            return Ok(api);
        };
        let mut names = std::collections::HashSet::new();
        for (path, item) in paths {
            let item = match schema::deref(doc, item) {
                Ok(i) => i,
                Err(e) => {
                    api.skipped.push((path.clone(), e.to_string()));
                    continue;
                }
            };
            let inherited: Vec<Value> = item
                .get("parameters")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for m in METHODS {
                let Some(op) = item.get(m) else { continue };
                let method = m.to_ascii_uppercase();
                let tags: Vec<String> = op
                    .get("tags")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                    .unwrap_or_default();
                if !filter.admits(&method, path, &tags) {
                    continue;
                }
                if api.operations.len() >= MAX_OPERATIONS {
                    api.skipped.push((
                        format!("{method} {path}"),
                        format!("more than {MAX_OPERATIONS} operations"),
                    ));
                    continue;
                }
                match operation::build(doc, legacy, &method, path, op, &inherited) {
                    Ok(mut o) => {
                        // Duplicate operationIds are invalid, but seen; keep both, distinctly.
                        let mut n = 2;
                        let base = o.name.clone();
                        while !names.insert(o.name.clone()) {
                            o.name = format!("{base}_{n}");
                            n += 1;
                        }
                        o.tool["name"] = Value::String(o.name.clone());
                        api.index.insert(o.name.clone(), api.operations.len());
                        api.operations.push(o);
                    }
                    Err(e) => api.skipped.push((format!("{method} {path}"), e.to_string())),
                }
            }
        }
        Ok(api)
    }

    /// The operation behind a tool name.
    pub fn operation(&self, name: &str) -> Option<&Operation> {
        self.index.get(name).map(|&i| &self.operations[i])
    }
}

fn server_url(s: &Value) -> Option<String> {
    let mut url = s.get("url")?.as_str()?.to_string();
    if let Some(vars) = s.get("variables").and_then(Value::as_object) {
        for (k, v) in vars {
            if let Some(d) = v.get("default").and_then(Value::as_str) {
                url = url.replace(&format!("{{{k}}}"), d);
            }
        }
    }
    Some(url)
}
