//! The WASM plugin tier: third-party tools compiled to WebAssembly, run by wasmtime in a
//! sandbox with a memory cap, a wall-time limit per call and no capabilities unless the
//! spec grants them. A trap is the caller's tool error, never the server's problem; a
//! plugin that keeps trapping is marked failed until it is reloaded.
//!
//! The guest ABI (documented for plugin authors in `examples/wasm-plugin-c/README.md`):
//! exports `memory`, `waygate_alloc(len) -> ptr`, `waygate_init(ptr, len) -> packed`,
//! `waygate_call(ptr, len) -> packed` and optionally `waygate_free(ptr, len)`; `packed`
//! is `(ptr << 32) | len` of a UTF-8 JSON answer in guest memory.

#[doc(hidden)]
pub mod fixtures;
mod host;
mod instance;
mod runtime;
mod spec;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use tokio::sync::Semaphore;
use waygate_core::hooks::{Hook, HookTarget, Verdict};
use waygate_core::util::text_result;
use waygate_core::{
    BoxFuture, CallContext, Invocation, Manifest, Outcome, Plugin, PluginError, PluginInit, PromptDef, ResourceDef,
    ResourceTemplateDef, Target, ToolDef,
};

pub use spec::{host_allowed, WasmSpec};

use host::Caps;
use instance::Slot;

/// A loaded module: compiled once, instantiated into a pool of warm slots.
struct Loaded {
    pre: wasmtime::InstancePre<runtime::HostState>,
    rt: Arc<runtime::Runtime>,
    caps: Arc<Caps>,
    pool: Mutex<Vec<Slot>>,
    permits: Semaphore,
}

pub struct WasmPlugin {
    spec: WasmSpec,
    loaded: Mutex<Option<Arc<Loaded>>>,
    traps: AtomicU32,
    failed: Mutex<Option<String>>,
    /// The module file's (mtime, length) when it was compiled, to notice a new version.
    stamp: Mutex<Option<(SystemTime, u64)>>,
    /// `version` from the guest's manifest, if it declares one.
    version: Mutex<Option<String>>,
}

fn file_stamp(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

impl WasmPlugin {
    pub fn new(spec: WasmSpec) -> Self {
        WasmPlugin {
            spec,
            loaded: Mutex::new(None),
            traps: AtomicU32::new(0),
            failed: Mutex::new(None),
            stamp: Mutex::new(None),
            version: Mutex::new(None),
        }
    }

    /// The version the module declares in its manifest.
    pub fn version(&self) -> Option<String> {
        self.version.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn spec(&self) -> &WasmSpec {
        &self.spec
    }

    /// True when the module file differs from the one compiled (a new version to reload).
    pub fn module_changed(&self) -> bool {
        let now = file_stamp(&self.spec.module);
        let was = *self.stamp.lock().unwrap_or_else(|e| e.into_inner());
        now.is_some() && now != was
    }

    fn current(&self) -> Option<Arc<Loaded>> {
        self.loaded.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn fail(&self, why: String) -> PluginError {
        PluginError::ToolFailed(format!("plugin {}: {why}", self.spec.name))
    }

    async fn load(&self, settings: &Value) -> Result<Manifest, String> {
        self.spec.validate()?;
        let rt = runtime::get()?;
        let path = self.spec.module.clone();
        let stamp = file_stamp(&path);
        let engine = rt.engine.clone();
        // Compiling is CPU-heavy (milliseconds to seconds): keep it off the request threads.
        let module = tokio::task::spawn_blocking(move || wasmtime::Module::from_file(&engine, &path))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("cannot compile {}: {}", self.spec.module.display(), root(&e)))?;
        let pre = rt
            .linker
            .instantiate_pre(&module)
            .map_err(|e| format!("imports: {}", root(&e)))?;
        let client = if self.spec.http_hosts.is_empty() {
            None
        } else {
            Some(crate::outbound::client()?)
        };
        let caps = Arc::new(Caps {
            plugin: self.spec.name.clone(),
            http_hosts: self.spec.http_hosts.clone(),
            client,
        });
        let mut slot = Slot::new(&rt, &pre, &self.spec, caps.clone()).await?;
        let input = serde_json::to_vec(&json!({"plugin": self.spec.name, "settings": settings})).unwrap_or_default();
        let out = slot.init(&input, self.time(), self.spec.max_output_bytes).await?;
        let manifest = parse_manifest(&out)?;
        *self.version.lock().unwrap_or_else(|e| e.into_inner()) = serde_json::from_slice::<Value>(&out)
            .ok()
            .and_then(|v| v.get("version").and_then(Value::as_str).map(str::to_string));
        let loaded = Arc::new(Loaded {
            pre,
            rt,
            caps,
            pool: Mutex::new(vec![slot]),
            permits: Semaphore::new(self.spec.instances),
        });
        *self.loaded.lock().unwrap_or_else(|e| e.into_inner()) = Some(loaded);
        *self.stamp.lock().unwrap_or_else(|e| e.into_inner()) = stamp;
        *self.failed.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.traps.store(0, Ordering::Relaxed);
        Ok(manifest)
    }

    fn time(&self) -> Duration {
        Duration::from_millis(self.spec.time_ms)
    }

    async fn run(&self, input: &[u8]) -> Result<Value, PluginError> {
        if let Some(why) = self.failed.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Err(self.fail(format!("marked failed ({why}); reload it")));
        }
        let loaded = self.current().ok_or_else(|| self.fail("not initialized".into()))?;
        let _permit = loaded
            .permits
            .acquire()
            .await
            .map_err(|_| self.fail("shutting down".into()))?;
        let pooled = loaded.pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let result = async {
            let mut slot = match pooled {
                Some(s) => s,
                None => Slot::new(&loaded.rt, &loaded.pre, &self.spec, loaded.caps.clone()).await?,
            };
            let out = slot.call(input, self.time(), self.spec.max_output_bytes).await?;
            Ok::<_, String>((slot, out))
        }
        .await;
        match result {
            Ok((slot, out)) => {
                self.traps.store(0, Ordering::Relaxed);
                loaded.pool.lock().unwrap_or_else(|e| e.into_inner()).push(slot);
                serde_json::from_slice(&out).map_err(|e| self.fail(format!("answer is not JSON: {e}")))
            }
            Err(why) => {
                // The instance may be half-way through anything: it is dropped, not reused.
                let n = self.traps.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(plugin = %self.spec.name, error = %why, consecutive = n, "wasm call failed");
                if n >= self.spec.max_traps {
                    tracing::error!(plugin = %self.spec.name, traps = n, "wasm plugin marked failed");
                    *self.failed.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(format!("{n} consecutive traps, last: {why}"));
                }
                Err(self.fail(why))
            }
        }
    }
}

fn root(e: &wasmtime::Error) -> String {
    e.chain().map(|c| c.to_string()).collect::<Vec<_>>().join(": ")
}

fn parse_manifest(out: &[u8]) -> Result<Manifest, String> {
    let v: Value = serde_json::from_slice(out).map_err(|e| format!("waygate_init answer is not JSON: {e}"))?;
    if let Some(e) = v.get("error").and_then(Value::as_str) {
        return Err(format!("waygate_init refused: {e}"));
    }
    let list = |k: &str| v.get(k).and_then(Value::as_array).cloned().unwrap_or_default();
    let mut tools = Vec::new();
    for mut t in list("tools") {
        let name = t.get("name").and_then(Value::as_str).unwrap_or_default();
        if name.is_empty() {
            return Err("a tool in the manifest has no \"name\"".into());
        }
        if t.get("inputSchema").is_none() {
            t["inputSchema"] = json!({"type": "object"});
        }
        tools.push(ToolDef::new(t));
    }
    Ok(Manifest {
        tools,
        resources: list("resources")
            .into_iter()
            .map(|d| ResourceDef { definition: d })
            .collect(),
        resource_templates: list("resourceTemplates")
            .into_iter()
            .map(|d| ResourceTemplateDef { definition: d })
            .collect(),
        prompts: list("prompts")
            .into_iter()
            .map(|d| PromptDef { definition: d })
            .collect(),
        completions: false,
        instructions: None,
    })
}

impl Plugin for WasmPlugin {
    fn name(&self) -> &str {
        &self.spec.name
    }

    fn initialize<'a>(&'a self, init: &'a PluginInit) -> BoxFuture<'a, Result<Manifest, PluginError>> {
        Box::pin(async move {
            let settings = match &init.settings {
                Value::Object(m) if m.is_empty() => &self.spec.settings,
                s => s,
            };
            self.load(settings)
                .await
                .map_err(|e| PluginError::Internal(format!("wasm plugin {}: {e}", self.spec.name)))
        })
    }

    fn execute<'a>(
        &'a self,
        inv: &'a Invocation,
        _ctx: &'a CallContext,
    ) -> BoxFuture<'a, Result<Outcome, PluginError>> {
        Box::pin(async move {
            let (kind, name) = match &inv.target {
                Target::Tool(n) => ("tool", n),
                Target::Resource(u) => ("resource", u),
                Target::Prompt(n) => ("prompt", n),
                Target::Complete { .. } => return Err(PluginError::NotFound("completion".into())),
            };
            let answer = self.run(&request(kind, name, &inv.arguments)).await?;
            shape(kind, name, answer).map_err(|e| match kind {
                "tool" => self.fail(e),
                _ => PluginError::Internal(format!("plugin {}: {e}", self.spec.name)),
            })
        })
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(l) = self.loaded.lock().unwrap_or_else(|e| e.into_inner()).take() {
                l.permits.close();
            }
        })
    }

    fn failure(&self) -> Option<String> {
        self.failed.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// `{"kind":…,"name"|"uri":…,"arguments":…}` in exactly this order, so a guest without a
/// JSON parser can find the name before any argument of the same key.
fn request(kind: &str, name: &str, arguments: &Value) -> Vec<u8> {
    let key = if kind == "resource" { "uri" } else { "name" };
    let mut out = Vec::with_capacity(64 + name.len());
    out.extend_from_slice(b"{\"kind\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(format!("\",\"{key}\":").as_bytes());
    let _ = serde_json::to_writer(&mut out, name);
    out.extend_from_slice(b",\"arguments\":");
    let _ = serde_json::to_writer(&mut out, arguments);
    out.push(b'}');
    out
}

/// Accept the full MCP result shape, or the short forms `{"text": …}` and `{"error": …}`.
fn shape(kind: &str, name: &str, answer: Value) -> Result<Outcome, String> {
    if let Some(e) = answer.get("error") {
        return Err(e.as_str().map_or_else(|| e.to_string(), str::to_string));
    }
    let text = answer.get("text").and_then(Value::as_str);
    let full = match kind {
        "tool" if answer.get("content").is_some() => answer,
        "tool" => text_result(text.ok_or("answer has neither \"content\" nor \"text\"")?),
        "resource" if answer.get("contents").is_some() => answer,
        "resource" => json!({"contents": [{
            "uri": name, "mimeType": "text/plain",
            "text": text.ok_or("answer has neither \"contents\" nor \"text\"")?
        }]}),
        _ if answer.get("messages").is_some() => answer,
        _ => return Err("prompt answer has no \"messages\"".into()),
    };
    Ok(Outcome::Complete(full))
}

/// A WASM plugin serving as a hook: `waygate_call` gets
/// `{"kind":"hook","phase","target":{kind,name,plugin,principal},"value"}` and answers
/// `{"action":"pass"}`, `{"action":"modify","value":…}` or `{"action":"deny","reason":…}`.
pub struct WasmHook(pub Arc<WasmPlugin>);

impl WasmHook {
    async fn ask(&self, phase: &str, t: &HookTarget<'_>, v: &mut Value) -> Result<Verdict, String> {
        let req = json!({
            "kind": "hook", "phase": phase,
            "target": {"kind": t.kind, "name": t.name, "plugin": t.plugin, "principal": t.principal},
            "value": v,
        });
        let ans = self
            .0
            .run(&serde_json::to_vec(&req).unwrap_or_default())
            .await
            .map_err(|e| e.to_string())?;
        match ans.get("action").and_then(Value::as_str).unwrap_or("pass") {
            "pass" => Ok(Verdict::Pass),
            "modify" => {
                *v = ans.get("value").cloned().ok_or("\"modify\" without \"value\"")?;
                Ok(Verdict::Modified)
            }
            "deny" => Ok(Verdict::Deny(
                ans.get("reason")
                    .and_then(Value::as_str)
                    .unwrap_or("no reason given")
                    .to_string(),
            )),
            other => Err(format!("unknown action {other:?}")),
        }
    }
}

impl Hook for WasmHook {
    fn kind(&self) -> &str {
        "wasm"
    }
    fn pre<'a>(&'a self, t: &'a HookTarget<'a>, a: &'a mut Value) -> BoxFuture<'a, Result<Verdict, String>> {
        Box::pin(self.ask("pre", t, a))
    }
    fn post<'a>(&'a self, t: &'a HookTarget<'a>, r: &'a mut Value) -> BoxFuture<'a, Result<Verdict, String>> {
        Box::pin(self.ask("post", t, r))
    }
}

#[cfg(test)]
pub(crate) mod tests;
