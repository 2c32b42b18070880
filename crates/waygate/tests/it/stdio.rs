//! MCP over stdio against the real binary: both eras, cancellation, clean shutdown.

use super::common;

use common::{Stdio_, MODERN};
use serde_json::json;

#[test]
fn legacy_then_modern_on_one_process() {
    let mut p = Stdio_::start(&[]);
    // A dual-era client probes with server/discover first.
    p.send(
        &json!({"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":{
        "io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}}}),
    );
    let (d, _) = p.recv_response(1);
    assert_eq!(d["result"]["supportedVersions"][0], MODERN);
    p.send(&json!({"jsonrpc":"2.0","id":2,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}));
    let (init, _) = p.recv_response(2);
    assert_eq!(init["result"]["protocolVersion"], "2025-11-25");
    p.send(&json!({"jsonrpc":"2.0","method":"notifications/initialized"}));
    p.send(&json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"text":"line\nbreak"}}}));
    let (r, _) = p.recv_response(3);
    assert_eq!(r["result"]["content"][0]["text"], "line\nbreak");
    p.send(
        &json!({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","arguments":{"text":"m"},"_meta":{
        "io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}}}),
    );
    let (m, _) = p.recv_response(4);
    assert_eq!(m["result"]["resultType"], "complete");
    // Garbage lines get errors, not a crash.
    p.send_raw("{oops");
    let e = p.recv();
    assert_eq!(e["error"]["code"], -32700);
    p.send_raw(r#"{"jsonrpc":"2.0","id":5,"method":"nope"}"#);
    let (e, _) = p.recv_response(5);
    assert_eq!(e["error"]["code"], -32601);
    drop(p.stdin.take());
    let status = p.child.wait().unwrap();
    assert!(status.success(), "exits cleanly on EOF: {status}");
}

#[test]
fn progress_and_cancellation() {
    let mut p = Stdio_::start(&[]);
    p.send(&json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"countdown","arguments":{"n":2},"_meta":{
        "io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}, "progressToken": 7}}}));
    let (done, before) = p.recv_response(1);
    assert_eq!(done["result"]["content"][0]["text"], "Counted down from 2.");
    assert_eq!(
        before
            .iter()
            .filter(|m| m["method"] == "notifications/progress")
            .count(),
        3
    );
    // A long call cancelled by notifications/cancelled gets no response; the next one does.
    p.send(
        &json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"countdown","arguments":{"n":50},"_meta":{
        "io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}}}),
    );
    p.send(&json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":2}}));
    p.send(&json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"text":"after"},"_meta":{
        "io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}}}));
    let (r, before) = p.recv_response(3);
    assert_eq!(r["result"]["content"][0]["text"], "after");
    assert!(before.iter().all(|m| m.get("id") != Some(&json!(2))));
}

/// A stdio client hears what an HTTP client hears on its GET stream: list changes and
/// updates of the resources it subscribed to (the connection is the session's stream).
#[test]
fn a_stdio_session_hears_list_changes_and_its_resource_updates() {
    let mut p = Stdio_::start(&["--plugin", "everything", "--no-audit"]);
    p.send(&json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}));
    p.recv_response(1);
    p.send(&json!({"jsonrpc":"2.0","method":"notifications/initialized"}));
    p.send(&json!({"jsonrpc":"2.0","id":2,"method":"resources/subscribe","params":{"uri":"test://watched-resource"}}));
    assert_eq!(p.recv_response(2).0["result"], json!({}));
    p.send(&json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"test_trigger_tool_change","arguments":{}}}));
    p.recv_response(3);
    // The watched resource changes every 3 s.
    std::thread::sleep(std::time::Duration::from_millis(3500));
    p.send(&json!({"jsonrpc":"2.0","id":4,"method":"ping"}));
    let (_, heard) = p.recv_response(4);
    let methods: Vec<&str> = heard.iter().filter_map(|m| m["method"].as_str()).collect();
    assert!(methods.contains(&"notifications/tools/list_changed"), "{heard:?}");
    let updated = heard
        .iter()
        .find(|m| m["method"] == "notifications/resources/updated")
        .unwrap_or_else(|| panic!("{heard:?}"));
    assert_eq!(updated["params"]["uri"], "test://watched-resource");
}
