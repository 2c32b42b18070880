//! Real modules, compiled from WAT text: the sandbox stops loops, memory grabs and traps,
//! refuses file access, and keeps serving.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use waygate_core::{CallContext, Events, Invocation, Outcome, Plugin, PluginError, PluginInit, Target};

use super::{WasmPlugin, WasmSpec};

use super::fixtures::{module, ECHO};

const SPIN: &str = "(loop $l (br $l)) (unreachable)";
const GRAB: &str = "(loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))) (unreachable)";
const TRAP: &str = "(unreachable)";
/// path_open("/etc/passwd") on fd 3 (the first preopen, if any): errno 0 → echo, else trap.
const OPEN: &str = r#"
    (if (i32.eqz (call $path_open (i32.const 3) (i32.const 0) (i32.const 4096) (i32.const 11)
                   (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 6000)))
      (then (return (i64.const 0))))
    (unreachable)"#;
const OPEN_IMPORT: &str = r#"(import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))"#;

fn write(tag: &str, wat: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("waygate-wasm-{tag}-{}.wat", waygate_core::util::random_hex(4)));
    std::fs::write(&p, wat).unwrap();
    p
}

async fn plugin(tag: &str, wat: &str, tweak: impl FnOnce(&mut WasmSpec)) -> Result<WasmPlugin, PluginError> {
    let mut spec = WasmSpec::new(tag, write(tag, wat));
    tweak(&mut spec);
    let p = WasmPlugin::new(spec);
    let init = PluginInit {
        settings: json!({}),
        events: Events::new(),
    };
    p.initialize(&init).await.map(|_| p)
}

async fn call(p: &WasmPlugin, tool: &str, args: Value) -> Result<Value, PluginError> {
    let inv = Invocation {
        target: Target::Tool(tool.into()),
        arguments: args,
        input_responses: None,
        state: None,
        raw_arguments: None,
        caller_meta: None,
    };
    let ctx = CallContext::detached(waygate_protocol::ProtocolVersion::V2025_11_25);
    match p.execute(&inv, &ctx).await? {
        Outcome::Complete(v) => Ok(v),
        Outcome::Forward(raw) => Ok(Outcome::forwarded_value(&raw)),
        Outcome::InputRequired { .. } => panic!("unexpected input request"),
    }
}

fn err(r: Result<Value, PluginError>) -> String {
    match r {
        Err(PluginError::ToolFailed(m)) => m,
        other => panic!("expected a tool failure, got {other:?}"),
    }
}

#[tokio::test]
async fn echo_round_trips_and_instances_are_reused() {
    let p = plugin("echo", &module("echo", ECHO, ""), |_| {}).await.unwrap();
    for i in 0..200 {
        let v = call(&p, "echo", json!({"i": i, "s": "ünïcode \"q\""})).await.unwrap();
        assert_eq!(v["structuredContent"]["arguments"]["i"], i, "{v}");
        assert_eq!(v["structuredContent"]["name"], "echo");
        assert_eq!(v["structuredContent"]["kind"], "tool");
    }
    // Four concurrent calls on four instances.
    let calls: Vec<_> = (0..4).map(|i| call(&p, "echo", json!({"c": i}))).collect();
    for r in futures_join(calls).await {
        assert!(r.is_ok());
    }
}

async fn futures_join<F: std::future::Future>(fs: Vec<F>) -> Vec<F::Output> {
    let mut out = Vec::new();
    let handles: Vec<_> = fs.into_iter().map(Box::pin).collect();
    for h in handles {
        out.push(h.await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infinite_loop_stops_at_the_time_limit_while_others_are_served() {
    let spin = std::sync::Arc::new(
        plugin("spin", &module("spin", SPIN, ""), |s| s.time_ms = 300)
            .await
            .unwrap(),
    );
    let echo = plugin("echo2", &module("echo", ECHO, ""), |_| {}).await.unwrap();
    let started = Instant::now();
    let s2 = spin.clone();
    let spinning = tokio::spawn(async move { err(call(&s2, "spin", json!({})).await) });
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The spinning guest yields at every epoch tick, so other calls go on meanwhile.
    let t = Instant::now();
    call(&echo, "echo", json!({})).await.unwrap();
    assert!(
        t.elapsed() < Duration::from_millis(200),
        "echo waited {:?}",
        t.elapsed()
    );
    let msg = spinning.await.unwrap();
    assert!(msg.contains("plugin spin") && msg.contains("time limit"), "{msg}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_secs(2),
        "{took:?}"
    );
}

#[tokio::test]
async fn a_memory_grab_fails_at_the_cap() {
    let p = plugin("grab", &module("grab", GRAB, ""), |s| s.memory_mib = 2)
        .await
        .unwrap();
    let msg = err(call(&p, "grab", json!({})).await);
    assert!(msg.contains("memory limit of 2 MiB"), "{msg}");
    // A module that declares more memory than the cap does not instantiate.
    let big = module("big", ECHO, "").replace(r#"(memory (export "memory") 1)"#, r#"(memory (export "memory") 100)"#);
    let e = plugin("big", &big, |s| s.memory_mib = 2).await.err().expect("refused");
    assert!(e.to_string().contains("memory limit"), "{e}");
}

#[tokio::test]
async fn repeated_traps_mark_the_plugin_failed_until_reloaded() {
    let p = plugin("trap", &module("trap", TRAP, ""), |s| s.max_traps = 3)
        .await
        .unwrap();
    for _ in 0..3 {
        let msg = err(call(&p, "trap", json!({})).await);
        assert!(
            msg.contains("plugin trap: trap") && msg.contains("unreachable"),
            "{msg}"
        );
    }
    assert!(p.failure().is_some());
    let msg = err(call(&p, "trap", json!({})).await);
    assert!(msg.contains("marked failed") && msg.contains("reload"), "{msg}");
    let init = PluginInit {
        settings: json!({}),
        events: Events::new(),
    };
    p.initialize(&init).await.unwrap();
    assert!(p.failure().is_none());
}

#[tokio::test]
async fn no_file_system_unless_granted() {
    let p = plugin("open", &module("open", OPEN, OPEN_IMPORT), |_| {})
        .await
        .unwrap();
    let msg = err(call(&p, "open", json!({})).await);
    assert!(msg.contains("trap"), "path_open must fail without a preopen: {msg}");
    // Granting a directory that does not contain the file still does not reach /etc.
    let dir = std::env::temp_dir().join(format!("waygate-wasm-grant-{}", waygate_core::util::random_hex(4)));
    std::fs::create_dir_all(&dir).unwrap();
    let p = plugin("open2", &module("open", OPEN, OPEN_IMPORT), |s| {
        s.fs_read = vec![format!("{}:/data", dir.display())]
    })
    .await
    .unwrap();
    let msg = err(call(&p, "open", json!({})).await);
    assert!(
        msg.contains("trap"),
        "absolute paths outside the grant stay closed: {msg}"
    );
}

#[tokio::test]
async fn unknown_imports_and_missing_exports_are_named_at_load() {
    let wat = module(
        "x",
        ECHO,
        r#"(import "env" "system" (func $sys (param i32) (result i32)))"#,
    );
    let e = plugin("imp", &wat, |_| {}).await.err().expect("refused").to_string();
    assert!(e.contains("env") && e.contains("system"), "{e}");
    let e = plugin("bad", "(module (memory (export \"memory\") 1))", |_| {})
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("waygate_alloc"), "{e}");
    let e = plugin("garbage", "this is not wasm", |_| {})
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("cannot compile"), "{e}");
}

#[tokio::test]
async fn a_wasm_hook_can_deny_and_rewrite() {
    use std::sync::Arc;
    use waygate_core::hooks::{Hook, HookTarget, Verdict};
    let deny = super::fixtures::constant("guard", "g", r#"{"action":"deny","reason":"wasm says no"}"#);
    let hook = super::WasmHook(Arc::new(plugin("guard", &deny, |_| {}).await.unwrap()));
    let t = HookTarget {
        kind: "tool",
        name: "echo",
        plugin: "demo",
        principal: None,
    };
    assert_eq!(
        hook.pre(&t, &mut json!({"text": "x"})).await.unwrap(),
        Verdict::Deny("wasm says no".into())
    );
    let modify = super::fixtures::constant("guard", "g", r#"{"action":"modify","value":{"text":"clean"}}"#);
    let hook = super::WasmHook(Arc::new(plugin("guard2", &modify, |_| {}).await.unwrap()));
    let mut v = json!({"text": "dirty"});
    assert_eq!(hook.post(&t, &mut v).await.unwrap(), Verdict::Modified);
    assert_eq!(v, json!({"text": "clean"}));
    let bad = super::fixtures::constant("guard", "g", r#"{"action":"explode"}"#);
    let hook = super::WasmHook(Arc::new(plugin("guard3", &bad, |_| {}).await.unwrap()));
    assert!(hook
        .pre(&t, &mut json!({}))
        .await
        .unwrap_err()
        .contains("unknown action"));
}
