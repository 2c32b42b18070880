//! Tool arguments are checked against the tool's inputSchema by the real binary, for its
//! own tools and for an upstream's, before anything runs.

use super::common;

use common::{bin, Server, TempDir};
use serde_json::{json, Value};

fn call(s: &Server, args: Value) -> Value {
    s.post(
        &json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","arguments":args}}),
        &[("mcp-protocol-version", "2025-11-25")],
    )
    .json()
}

fn counter(s: &Server, name: &str) -> u64 {
    let m = s.request("GET", "/metrics", &[], b"").text();
    m.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

#[test]
fn arguments_are_validated_for_own_and_upstream_tools() {
    let s = Server::start(&[]);
    let bad = call(&s, json!({"a": "two", "b": 3}));
    assert_eq!(bad["result"]["isError"], true, "{bad}");
    let text = bad["result"]["content"][0]["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("Invalid arguments for tool add") && text.contains("at /a") && text.contains("type"),
        "{text}"
    );
    assert!(!text.contains("two"), "the offending value is echoed: {text}");
    let missing = call(&s, json!({"a": 1}));
    assert!(
        missing["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("required"),
        "{missing}"
    );
    assert_eq!(
        call(&s, json!({"a": 1, "b": 2}))["result"]["structuredContent"]["sum"],
        3.0
    );
    assert_eq!(counter(&s, "waygate_invalid_arguments_total"), 2);

    // Behind the gateway: the upstream (another waygate over stdio) never sees the call.
    let d = TempDir::new("val-up");
    let inner = d.0.join("inner");
    std::fs::create_dir_all(&inner).unwrap();
    let cfg = d.0.join("gw.toml");
    std::fs::write(
        &cfg,
        format!(
            "version = 3\n[plugins]\ndemo = false\n[[upstreams]]\nname = \"inner\"\ntransport = \"stdio\"\ncommand = \"{}\"\n\
             args = [\"serve\", \"--stdio\", \"--data-dir\", \"{}\"]\nrequired = true\n",
            bin(),
            inner.display()
        ),
    )
    .unwrap();
    let gw_data = d.0.join("gw");
    std::fs::create_dir_all(&gw_data).unwrap();
    let gw = Server::start_in(Some(&gw_data), &["--config", cfg.to_str().unwrap()]);
    let bad = call(&gw, json!({"a": [1], "b": 3}));
    assert_eq!(bad["result"]["isError"], true, "{bad}");
    assert!(
        bad["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("at /a"),
        "{bad}"
    );
    assert_eq!(
        counter(&gw, "waygate_invalid_arguments_total"),
        1,
        "refused by the gateway"
    );
    let plugin_calls = |s: &Server| -> Vec<String> {
        s.request("GET", "/metrics", &[], b"")
            .text()
            .lines()
            .filter(|l| l.starts_with("waygate_plugin_calls_total") && l.contains("\"inner\""))
            .map(str::to_string)
            .collect()
    };
    assert!(
        plugin_calls(&gw).is_empty(),
        "the upstream was called: {:?}",
        plugin_calls(&gw)
    );
    assert_eq!(
        call(&gw, json!({"a": 1, "b": 2}))["result"]["structuredContent"]["sum"],
        3.0
    );
    assert_eq!(plugin_calls(&gw).len(), 1, "{:?}", plugin_calls(&gw));
}
