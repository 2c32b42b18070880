//! Cost of a trivial WASM tool call over the same call to a native plugin, through the
//! `Plugin` trait (what the engine does per call): `cargo bench -p waygate-plugins --bench wasm_call`.
//! Rounds alternate native and WASM so machine noise hits both; the medians are reported.

use std::time::Instant;

use serde_json::json;
use waygate_core::{CallContext, Events, Invocation, Plugin, PluginInit, Target};
use waygate_plugins::wasm::{fixtures, WasmPlugin, WasmSpec};

const CALLS: u32 = 50_000;
const ROUNDS: usize = 7;

async fn per_call_ns(p: &dyn Plugin, tool: &str, ctx: &CallContext) -> f64 {
    let inv = Invocation {
        target: Target::Tool(tool.into()),
        arguments: json!({"text": "hello"}),
        input_responses: None,
        state: None,
        raw_arguments: None,
        caller_meta: None,
    };
    let t = Instant::now();
    for _ in 0..CALLS {
        let r = p.execute(&inv, ctx).await;
        assert!(r.is_ok());
    }
    t.elapsed().as_nanos() as f64 / CALLS as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let path = std::env::temp_dir().join("waygate-bench-echo.wat");
        std::fs::write(&path, fixtures::module("echo", fixtures::ECHO, "")).expect("write module");
        let wasm = WasmPlugin::new(WasmSpec::new("bench", &path));
        let native = waygate_plugins::builtin("demo").expect("demo");
        let init = PluginInit {
            settings: json!({}),
            events: Events::new(),
        };
        wasm.initialize(&init).await.expect("wasm init");
        native.initialize(&init).await.expect("native init");
        let ctx = CallContext::detached(waygate_protocol::ProtocolVersion::V2025_11_25);
        per_call_ns(&wasm, "echo", &ctx).await;
        per_call_ns(&*native, "echo", &ctx).await;
        let (mut n, mut w, mut d) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            let a = per_call_ns(&*native, "echo", &ctx).await;
            let b = per_call_ns(&wasm, "echo", &ctx).await;
            n.push(a);
            w.push(b);
            d.push(b - a);
        }
        println!("calls per round: {CALLS}, rounds: {ROUNDS}");
        println!("native echo: median {:.2} µs/call", median(n) / 1000.0);
        println!("wasm echo:   median {:.2} µs/call", median(w) / 1000.0);
        println!("overhead:    median {:.2} µs/call (target ≤ 25 µs)", median(d) / 1000.0);
    });
}
