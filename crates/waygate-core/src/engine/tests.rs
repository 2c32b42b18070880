//! The engine with a real (in-process) plugin: arguments refused by the schema never reach
//! the plugin, and a structured result that breaks its `outputSchema` is caught.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};
use waygate_protocol::ProtocolVersion;

use super::{Engine, EngineConfig};
use crate::plugin::{BoxFuture, Invocation, Manifest, Outcome, Plugin, PluginError, PluginInit, ToolDef};
use crate::registry::PluginRegistry;
use crate::CallContext;

/// `sum` declares `{sum: number}` and keeps it; `liar` declares the same and breaks it.
struct Counting {
    calls: Arc<AtomicUsize>,
}

impl Plugin for Counting {
    fn name(&self) -> &str {
        "counting"
    }
    fn initialize<'a>(&'a self, _i: &'a PluginInit) -> BoxFuture<'a, Result<Manifest, PluginError>> {
        let def = |name: &str| {
            ToolDef::new(json!({
                "name": name,
                "inputSchema": {"type": "object", "properties": {"a": {"type": "number"}}, "required": ["a"]},
                "outputSchema": {"type": "object", "properties": {"sum": {"type": "number"}}, "required": ["sum"]},
            }))
        };
        Box::pin(async move {
            Ok(Manifest {
                tools: vec![def("sum"), def("liar")],
                ..Default::default()
            })
        })
    }
    fn execute<'a>(&'a self, inv: &'a Invocation, _c: &'a CallContext) -> BoxFuture<'a, Result<Outcome, PluginError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let liar = matches!(&inv.target, crate::plugin::Target::Tool(n) if n == "liar");
        let sc = if liar {
            json!({"sum": "seven"})
        } else {
            json!({"sum": 7})
        };
        Box::pin(async move { Ok(Outcome::Complete(json!({"content": [], "structuredContent": sc}))) })
    }
}

async fn engine(validate_output: bool) -> (Arc<Engine>, Arc<AtomicUsize>) {
    let registry = Arc::new(PluginRegistry::new(crate::events::Events::new(), 100));
    let calls = Arc::new(AtomicUsize::new(0));
    let plugin: Arc<dyn Plugin> = Arc::new(Counting { calls: calls.clone() });
    registry.load(plugin, json!({})).await.expect("load");
    let cfg = EngineConfig {
        validate_output,
        ..Default::default()
    };
    (Engine::new(cfg, registry), calls)
}

async fn call(e: &Arc<Engine>, tool: &str, args: Value) -> Result<Value, waygate_protocol::ErrorObject> {
    let ctx = CallContext::detached(ProtocolVersion::V2025_11_25);
    let params = json!({"name": tool, "arguments": args});
    e.handle("tools/call", params.as_object().cloned(), &ctx).await
}

#[tokio::test]
async fn refused_arguments_never_reach_the_plugin() {
    let (e, calls) = engine(false).await;
    let r = call(&e, "sum", json!({"a": "one"})).await.unwrap();
    assert_eq!(r["isError"], true, "{r}");
    let text = r["content"][0]["text"].as_str().unwrap();
    assert!(
        text.contains("tool sum") && text.contains("at /a") && text.contains("type"),
        "{text}"
    );
    let r = call(&e, "sum", json!({})).await.unwrap();
    assert!(r["content"][0]["text"].as_str().unwrap().contains("required"), "{r}");
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the plugin ran on refused arguments");
    assert_eq!(e.metrics.invalid_arguments.load(Ordering::Relaxed), 2);
    let ok = call(&e, "sum", json!({"a": 1})).await.unwrap();
    assert_eq!(ok["structuredContent"]["sum"], 7);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_result_that_breaks_its_output_schema_is_an_error_when_checked() {
    let (checked, _) = engine(true).await;
    let err = call(&checked, "liar", json!({"a": 1})).await.unwrap_err();
    assert_eq!(err.code, -32603);
    assert!(
        err.message.contains("outputSchema") && err.message.contains("/sum"),
        "{}",
        err.message
    );
    assert!(call(&checked, "sum", json!({"a": 1})).await.is_ok());
    // Unchecked (the release default), the result passes as the plugin made it.
    let (unchecked, _) = engine(false).await;
    assert_eq!(
        call(&unchecked, "liar", json!({"a": 1})).await.unwrap()["structuredContent"]["sum"],
        "seven"
    );
}
