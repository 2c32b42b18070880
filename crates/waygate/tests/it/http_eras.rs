//! Both eras over Streamable HTTP against the real binary.

use super::common;

use common::{Server, Stream, MODERN};
use serde_json::{json, Value};

#[test]
fn modern_echo_is_plain_json_with_result_type() {
    let s = Server::start(&[]);
    let r = s.modern(
        1,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "hello"}}),
        json!({}),
    );
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("application/json"));
    assert!(
        r.header("mcp-session-id").is_none(),
        "modern requests never get a session"
    );
    let v = r.json();
    assert_eq!(v["result"]["content"], json!([{"type": "text", "text": "hello"}]));
    assert_eq!(v["result"]["resultType"], "complete");
    assert_eq!(
        v["result"]["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "waygate"
    );
}

#[test]
fn modern_discover_lists_versions_and_cache_hints() {
    let s = Server::start(&[]);
    let v = s.modern(1, "server/discover", json!({}), json!({})).json();
    let r = &v["result"];
    assert_eq!(r["supportedVersions"][0], MODERN);
    assert!(r["ttlMs"].is_u64() && r["cacheScope"].is_string());
    assert!(r["capabilities"]["tools"].is_object());
    let tools = s.modern(2, "tools/list", json!({}), json!({})).json();
    let names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "deterministic order");
    assert!(names.contains(&"echo"));
}

#[test]
fn modern_mrtr_round_trip_and_tamper() {
    let s = Server::start(&[]);
    let caps = json!({"elicitation": {}});
    let first = s
        .modern(
            1,
            "tools/call",
            json!({"name": "ask_name", "arguments": {}}),
            caps.clone(),
        )
        .json();
    let r = &first["result"];
    assert_eq!(r["resultType"], "input_required");
    assert_eq!(r["inputRequests"]["name"]["method"], "elicitation/create");
    let state = r["requestState"].as_str().unwrap().to_string();
    let answer = json!({"name": {"action": "accept", "content": {"name": "Ada"}}});
    let done = s
        .modern(
            2,
            "tools/call",
            json!({"name": "ask_name", "arguments": {}, "inputResponses": answer, "requestState": state}),
            caps.clone(),
        )
        .json();
    assert_eq!(done["result"]["content"][0]["text"], "Hello, Ada!");
    let mut bad = state.clone();
    bad.insert(0, 'x');
    let t = s
        .modern(
            3,
            "tools/call",
            json!({"name": "ask_name", "arguments": {}, "inputResponses": answer, "requestState": bad}),
            caps,
        )
        .json();
    assert_eq!(t["error"]["code"], -32602);
    // Without the capability the server must not embed the request.
    let nocap = s.modern(4, "tools/call", json!({"name": "ask_name", "arguments": {}}), json!({}));
    assert_eq!(nocap.status, 400);
    assert_eq!(nocap.json()["error"]["code"], -32021);
}

#[test]
fn modern_progress_streams_as_sse() {
    let s = Server::start(&[]);
    let mut params = json!({"name": "countdown", "arguments": {"n": 3}});
    params["_meta"] = json!({"progressToken": "p1"});
    let body = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {
        "name": "countdown", "arguments": {"n": 3},
        "_meta": {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}, "progressToken": "p1"}}});
    let r = s.post(
        &body,
        &[
            ("mcp-protocol-version", MODERN),
            ("mcp-method", "tools/call"),
            ("mcp-name", "countdown"),
        ],
    );
    assert!(r.header("content-type").unwrap().starts_with("text/event-stream"));
    let msgs = r.sse_messages();
    let progress: Vec<&Value> = msgs
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert_eq!(progress.len(), 4, "{msgs:?}");
    assert!(progress
        .windows(2)
        .all(|w| w[0]["params"]["progress"].as_f64() < w[1]["params"]["progress"].as_f64()));
    assert_eq!(msgs.last().unwrap()["id"], 9);
}

#[test]
fn legacy_session_lifecycle() {
    let s = Server::start(&[]);
    let sid = s.initialize("2025-06-18", json!({}));
    let h = [("mcp-session-id", sid.as_str()), ("mcp-protocol-version", "2025-06-18")];
    let list = s
        .post(&json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}), &h)
        .json();
    let echo = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "echo")
        .unwrap()
        .clone();
    assert!(echo["inputSchema"].is_object());
    let call = s.post(
        &json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}),
        &h,
    );
    let v = call.json();
    assert_eq!(v["result"]["content"][0]["text"], "hi");
    assert!(
        v["result"].get("resultType").is_none(),
        "no resultType for handshake-era clients"
    );
    let ping = s.post(&json!({"jsonrpc":"2.0","id":3,"method":"ping"}), &h).json();
    assert_eq!(ping["result"], json!({}));
    let del = s.request("DELETE", "/mcp", &h, b"");
    assert_eq!(del.status, 204);
    let gone = s.post(&json!({"jsonrpc":"2.0","id":4,"method":"ping"}), &h);
    assert_eq!(gone.status, 404);
}

#[test]
fn legacy_initialize_negotiates_down_from_modern() {
    let s = Server::start(&[]);
    let r = s.post(
        &json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2026-07-28","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}),
        &[],
    );
    assert_eq!(r.json()["result"]["protocolVersion"], "2025-11-25");
}

#[test]
fn legacy_elicitation_goes_to_the_client_on_the_post_stream() {
    let s = Server::start(&[]);
    let sid = s.initialize("2025-11-25", json!({"elicitation": {}}));
    let body = json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"ask_name","arguments":{}}});
    let mut st = s.post_stream(
        &body,
        &[("mcp-session-id", &sid), ("mcp-protocol-version", "2025-11-25")],
    );
    assert_eq!(st.status, 200);
    let req = st.next_json().expect("server request");
    assert_eq!(req["method"], "elicitation/create");
    let answer = json!({"jsonrpc":"2.0","id": req["id"],"result":{"action":"accept","content":{"name":"Grace"}}});
    let ack = s.post(
        &answer,
        &[("mcp-session-id", &sid), ("mcp-protocol-version", "2025-11-25")],
    );
    assert_eq!(ack.status, 202);
    let fin = st.next_json().expect("final response");
    assert_eq!(fin["id"], 7);
    assert_eq!(fin["result"]["content"][0]["text"], "Hello, Grace!");
}

#[test]
fn listen_stream_acknowledges_first() {
    let s = Server::start(&["--plugin", "everything"]);
    let body = json!({"jsonrpc":"2.0","id":"sub-1","method":"subscriptions/listen","params":{
        "notifications": {"toolsListChanged": true, "bogus": true},
        "_meta": {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}}});
    let mut st = s.post_stream(
        &body,
        &[("mcp-protocol-version", MODERN), ("mcp-method", "subscriptions/listen")],
    );
    let ack = st.next_json().unwrap();
    assert_eq!(ack["method"], "notifications/subscriptions/acknowledged");
    assert_eq!(ack["params"]["notifications"], json!({"toolsListChanged": true}));
    assert_eq!(
        ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "sub-1"
    );
    let t = s.modern(
        2,
        "tools/call",
        json!({"name": "test_trigger_tool_change", "arguments": {}}),
        json!({}),
    );
    assert_eq!(t.status, 200);
    let n = st.next_json().unwrap();
    assert_eq!(n["method"], "notifications/tools/list_changed");
    assert_eq!(n["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], "sub-1");
}

#[test]
fn legacy_sse_transport() {
    let s = Server::start(&[]);
    let mut st = Stream::open(&s.addr, "GET", "/sse", &[("accept", "text/event-stream")], b"");
    assert_eq!(st.status, 200);
    let (ev, data) = st.next_event().unwrap();
    assert_eq!(ev, "endpoint");
    assert!(data.starts_with("/messages?sessionId="));
    let post = |v: Value| {
        s.request(
            "POST",
            &data,
            &[("content-type", "application/json")],
            v.to_string().as_bytes(),
        )
    };
    let r = post(
        json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"old","version":"1"}}}),
    );
    assert_eq!(r.status, 202);
    let init = st.next_json().unwrap();
    assert_eq!(init["result"]["protocolVersion"], "2024-11-05");
    post(json!({"jsonrpc":"2.0","method":"notifications/initialized"}));
    post(
        json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"old times"}}}),
    );
    let call = st.next_json().unwrap();
    assert_eq!(call["result"]["content"][0]["text"], "old times");
}

#[test]
fn batches_only_for_2025_03_26() {
    let s = Server::start(&[]);
    let batch = json!([
        {"jsonrpc":"2.0","id":1,"method":"ping"},
        {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"b"}}},
        {"jsonrpc":"2.0","method":"notifications/initialized"}
    ]);
    let r = s.post(&batch, &[]);
    let v = r.json();
    assert_eq!(v.as_array().unwrap().len(), 2, "{v}");
    assert_eq!(v[1]["result"]["content"][0]["text"], "b");
    let r = s.post(&batch, &[("mcp-protocol-version", "2025-06-18")]);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], -32600);
}

#[test]
fn metrics_count_methods_and_tools_with_bounded_labels() {
    let s = Server::start(&[]);
    for i in 0..3 {
        s.modern(
            i,
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "m"}}),
            json!({}),
        );
    }
    s.modern(
        9,
        "tools/call",
        json!({"name": "no_such_tool", "arguments": {}}),
        json!({}),
    );
    let r = s.request("GET", "/metrics", &[], b"");
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    let t = r.text();
    assert!(
        t.contains("waygate_requests_total{method=\"tools/call\",outcome=\"ok\"} 3"),
        "{t}"
    );
    assert!(
        t.contains("waygate_requests_total{method=\"tools/call\",outcome=\"error\"} 1"),
        "{t}"
    );
    assert!(
        t.contains("waygate_tool_calls_total{tool=\"echo\",outcome=\"ok\"} 3"),
        "{t}"
    );
    assert!(!t.contains("no_such_tool"), "unknown tool names are not labels");
    assert!(
        t.contains("waygate_request_duration_seconds_count{method=\"tools/call\"} 4"),
        "{t}"
    );
    assert!(t.contains("waygate_build_info{version="));
}
