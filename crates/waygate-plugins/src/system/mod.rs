//! The `system` plugin: the six tools of the original Python Waygate (`execute_command`,
//! `read_file`, `write_file`, `list_directory`, `search_files`, `http_request`), off by
//! default and confined: file tools work inside configured roots only (opened through
//! capability-based directory handles, so `..`, absolute paths and symlinks cannot leave
//! a root), reads and writes are size-capped, commands run without a shell from an
//! allowlist with a time limit and an output cap, and HTTP goes only to allowed hosts
//! through the SSRF guard. A tool whose capability is not configured is not offered.

mod exec;
mod files;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use waygate_core::{
    BoxFuture, CallContext, Invocation, Manifest, Outcome, Plugin, PluginError, PluginInit, Target, ToolDef,
};

/// `[plugins.system]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SystemSpec {
    /// Directories the file tools may use. Relative tool paths resolve against the first.
    #[serde(default)]
    pub roots: Vec<PathBuf>,
    /// Offer `write_file`.
    #[serde(default)]
    pub writable: bool,
    #[serde(default = "mib")]
    pub max_read_bytes: u64,
    #[serde(default = "mib")]
    pub max_write_bytes: u64,
    /// Programs `execute_command` may run (names looked up on PATH once, or absolute paths).
    #[serde(default)]
    pub commands: Vec<String>,
    #[serde(default = "ten_seconds")]
    pub command_timeout_ms: u64,
    /// Cap on captured stdout and stderr, each.
    #[serde(default = "kib64")]
    pub max_output_bytes: usize,
    /// Hosts `http_request` may reach (`*.example.com` for subdomains).
    #[serde(default)]
    pub http_hosts: Vec<String>,
    #[serde(default = "ten_seconds")]
    pub http_timeout_ms: u64,
    #[serde(default = "two_hundred")]
    pub max_search_results: usize,
}

fn mib() -> u64 {
    1 << 20
}
fn kib64() -> usize {
    64 << 10
}
fn ten_seconds() -> u64 {
    10_000
}
fn two_hundred() -> usize {
    200
}

impl Default for SystemSpec {
    fn default() -> Self {
        serde_json::from_value(json!({})).unwrap_or_else(|_| unreachable!("all fields have defaults"))
    }
}

impl SystemSpec {
    pub fn validate(&self) -> Result<(), String> {
        for (i, r) in self.roots.iter().enumerate() {
            if !r.is_absolute() || !r.is_dir() {
                return Err(format!(
                    "roots[{i}]: {} must be an existing absolute directory",
                    r.display()
                ));
            }
        }
        for (i, c) in self.commands.iter().enumerate() {
            exec::resolve(c).map_err(|e| format!("commands[{i}]: {e}"))?;
        }
        Ok(())
    }
}

pub struct System {
    spec: SystemSpec,
    files: Option<files::Roots>,
    commands: exec::Commands,
    http: Option<reqwest::Client>,
}

impl System {
    pub fn new(spec: SystemSpec) -> Result<Self, String> {
        spec.validate()?;
        let files = if spec.roots.is_empty() {
            None
        } else {
            Some(files::Roots::open(&spec)?)
        };
        let commands = exec::Commands::new(&spec)?;
        let http = if spec.http_hosts.is_empty() {
            None
        } else {
            Some(crate::outbound::client()?)
        };
        Ok(System {
            spec,
            files,
            commands,
            http,
        })
    }

    fn tools(&self) -> Vec<ToolDef> {
        let t = |name: &str, desc: &str, schema: Value| {
            ToolDef::new(json!({"name": name, "description": desc, "inputSchema": schema}))
        };
        let mut out = Vec::new();
        if self.files.is_some() {
            out.push(t(
                "read_file",
                "Read a text file inside the allowed roots.",
                json!({"type":"object","properties":{"path":{"type":"string"}},"required":["path"]}),
            ));
            out.push(t(
                "list_directory",
                "List a directory inside the allowed roots.",
                json!({"type":"object","properties":{"path":{"type":"string"}},"required":["path"]}),
            ));
            out.push(t("search_files", "Find files by name glob (and optionally containing text) under a directory inside the allowed roots.", json!({"type":"object","properties":{"path":{"type":"string"},"pattern":{"type":"string"},"contains":{"type":"string"}},"required":["path","pattern"]})));
            if self.spec.writable {
                out.push(t("write_file", "Write a text file inside the allowed roots (replaces it).", json!({"type":"object","properties":{"path":{"type":"string"},"content":{"type":"string"}},"required":["path","content"]})));
            }
        }
        if !self.commands.is_empty() {
            out.push(t("execute_command", &format!("Run an allowed program (no shell): {}.", self.spec.commands.join(", ")), json!({"type":"object","properties":{"command":{"type":"string"},"args":{"type":"array","items":{"type":"string"}},"cwd":{"type":"string"}},"required":["command"]})));
        }
        if self.http.is_some() {
            out.push(t("http_request", &format!("HTTP request to an allowed host: {}.", self.spec.http_hosts.join(", ")), json!({"type":"object","properties":{"url":{"type":"string"},"method":{"type":"string"},"headers":{"type":"object"},"body":{"type":"string"}},"required":["url"]})));
        }
        out
    }

    async fn call(&self, tool: &str, a: &Value) -> Result<String, String> {
        let s = |k: &str| a.get(k).and_then(Value::as_str);
        let need = |k: &str| s(k).ok_or_else(|| format!("missing string argument {k:?}"));
        let files = || {
            self.files
                .as_ref()
                .ok_or_else(|| "file tools are not enabled".to_string())
        };
        match tool {
            "read_file" => files()?.read(need("path")?),
            "write_file" if self.spec.writable => files()?.write(need("path")?, need("content")?),
            "list_directory" => files()?.list(need("path")?),
            "search_files" => files()?.search(need("path")?, need("pattern")?, s("contains")),
            "execute_command" => {
                let args: Vec<String> = match a.get("args") {
                    None | Some(Value::Null) => vec![],
                    Some(Value::Array(v)) => v
                        .iter()
                        .map(|x| x.as_str().map(str::to_string).ok_or("args must be strings"))
                        .collect::<Result<_, _>>()?,
                    Some(_) => return Err("args must be a list of strings".into()),
                };
                let cwd = match s("cwd") {
                    Some(c) => Some(files()?.host_dir(c)?),
                    None => self.files.as_ref().map(files::Roots::first),
                };
                self.commands.run(need("command")?, &args, cwd).await
            }
            "http_request" => self.http(a).await,
            other => Err(format!("unknown tool {other:?}")),
        }
    }

    async fn http(&self, a: &Value) -> Result<String, String> {
        let client = self.http.as_ref().ok_or("http_request is not enabled")?;
        let timeout = std::time::Duration::from_millis(self.spec.http_timeout_ms);
        let cap = self.spec.max_output_bytes;
        let r = crate::outbound::fetch(client, &self.spec.http_hosts, a, timeout, cap).await?;
        let mut text = format!("HTTP {}\n\n{}", r.status, String::from_utf8_lossy(&r.body));
        if r.truncated {
            text.push_str(&format!("\n…[truncated at {cap} bytes]"));
        }
        Ok(text)
    }
}

impl Plugin for System {
    fn name(&self) -> &str {
        "system"
    }

    fn initialize<'a>(&'a self, _init: &'a PluginInit) -> BoxFuture<'a, Result<Manifest, PluginError>> {
        Box::pin(async move {
            Ok(Manifest {
                tools: self.tools(),
                ..Default::default()
            })
        })
    }

    fn execute<'a>(
        &'a self,
        inv: &'a Invocation,
        _ctx: &'a CallContext,
    ) -> BoxFuture<'a, Result<Outcome, PluginError>> {
        Box::pin(async move {
            let Target::Tool(tool) = &inv.target else {
                return Err(PluginError::NotFound("system offers tools only".into()));
            };
            match self.call(tool, &inv.arguments).await {
                Ok(text) => Ok(Outcome::Complete(waygate_core::util::text_result(text))),
                Err(e) => Err(PluginError::ToolFailed(e)),
            }
        })
    }
}

#[cfg(test)]
mod tests;
