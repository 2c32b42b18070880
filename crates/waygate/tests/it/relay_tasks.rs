//! Gateway conversations, continued: tasks across the hop (an upstream's task-only tools,
//! a caller's cancelled task) and a stateless caller reaching an upstream that speaks both
//! revisions in its own era.

use serde_json::json;

use crate::common::TempDir;
use crate::relay::{gateway, http_gateway, session_headers, MODERN_ERA};

/// Tools the upstream runs only as tasks (`taskSupport: "required"`) are called as tasks
/// upstream and awaited with `tasks/result`; the caller's own task (or plain call) then
/// reports them as the spec says: a tool error is `completed` with `isError`, a task that
/// failed as a whole is `failed` with the error and no result.
#[test]
fn an_upstreams_task_only_tools_run_as_tasks_across_the_hop() {
    let d = TempDir::new("relay-tasks");
    let (s, _) = gateway(&d, false);
    let tasks = json!({"extensions": {"io.modelcontextprotocol/tasks": {}}});
    let settle = |id: &str| {
        for i in 0..100 {
            let r = s
                .modern(100 + i, "tasks/get", json!({"taskId": id}), tasks.clone())
                .json();
            let status = r["result"]["status"].as_str().unwrap_or_default().to_string();
            if ["completed", "failed", "cancelled"].contains(&status.as_str()) {
                return r["result"].clone();
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("task {id} did not settle");
    };

    let created = s
        .modern(
            1,
            "tools/call",
            json!({"name": "failing_job", "arguments": {}}),
            tasks.clone(),
        )
        .json();
    assert_eq!(created["result"]["resultType"], "task", "{created}");
    let done = settle(created["result"]["taskId"].as_str().unwrap());
    assert_eq!(done["status"], "completed", "a tool error is not a failed task: {done}");
    assert_eq!(done["result"]["isError"], true, "{done}");
    let meta = done["result"]["_meta"].to_string();
    assert!(
        !meta.contains("related-task"),
        "the upstream's task id stays behind the hop: {done}"
    );

    let created = s
        .modern(
            2,
            "tools/call",
            json!({"name": "protocol_error_job", "arguments": {}}),
            tasks.clone(),
        )
        .json();
    let done = settle(created["result"]["taskId"].as_str().unwrap());
    assert_eq!(done["status"], "failed", "{done}");
    assert!(
        done["error"]["code"].is_i64() && done["error"]["message"].is_string(),
        "{done}"
    );
    assert!(done.get("result").is_none(), "{done}");

    // A session-era caller asking for a task the 2025-11-25 way gets the same outcome.
    let sid = s.initialize(MODERN_ERA, json!({}));
    let call = json!({"jsonrpc":"2.0","id":3,"method":"tools/call",
        "params":{"name":"failing_job","arguments":{},"task":{}}});
    let r = s.post(&call, &session_headers(&sid)).json();
    let id = r["result"]["task"]["taskId"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_string();
    let res = json!({"jsonrpc":"2.0","id":4,"method":"tasks/result","params":{"taskId": id}});
    let r = s.post(&res, &session_headers(&sid)).json();
    assert_eq!(r["result"]["isError"], true, "{r}");

    // Without a task the gateway refuses the call itself, as for its own task-only tools.
    let r = s
        .modern(
            5,
            "tools/call",
            json!({"name": "failing_job", "arguments": {}}),
            json!({}),
        )
        .json();
    assert!(r["error"].is_object(), "{r}");
}

/// An HTTP upstream that speaks both eras is reached through a session, but a stateless
/// caller's call goes to it in the caller's own era: the server sees that caller's
/// capabilities (not the gateway's), so its own capability checks hold across the hop, and
/// its questions come back as `input_required` that the caller answers on its retry.
#[test]
fn a_stateless_caller_reaches_a_dual_era_http_upstream_in_its_own_era() {
    let d = TempDir::new("relay-dual");
    let (s, _inner) = http_gateway(&d, "");

    // The tool checks the capability itself, before asking anything.
    let r = s.modern(
        1,
        "tools/call",
        json!({"name": "test_missing_capability", "arguments": {}}),
        json!({}),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], -32021, "{}", r.text());
    let r = s
        .modern(
            2,
            "tools/call",
            json!({"name": "test_missing_capability", "arguments": {}}),
            json!({"sampling": {}}),
        )
        .json();
    assert_eq!(r["result"]["content"][0]["text"], "Success", "{r}");

    // Only the questions the caller can answer are asked.
    let r = s
        .modern(
            3,
            "tools/call",
            json!({"name": "test_input_required_result_capabilities", "arguments": {}}),
            json!({"sampling": {}}),
        )
        .json();
    assert_eq!(r["result"]["resultType"], "input_required", "{r}");
    let asks = r["result"]["inputRequests"]
        .as_object()
        .unwrap_or_else(|| panic!("{r}"));
    assert!(
        !asks.is_empty() && asks.values().all(|q| q["method"] == "sampling/createMessage"),
        "{r}"
    );

    // The round trip: the server's question, the caller's answer on its retry, the result.
    let caps = json!({"elicitation": {}});
    let r = s
        .modern(
            4,
            "tools/call",
            json!({"name": "test_input_required_result_elicitation", "arguments": {}}),
            caps.clone(),
        )
        .json();
    assert_eq!(r["result"]["resultType"], "input_required", "{r}");
    let key = r["result"]["inputRequests"]
        .as_object()
        .and_then(|m| m.keys().next().cloned())
        .unwrap();
    let retry = json!({"name": "test_input_required_result_elicitation", "arguments": {},
        "inputResponses": {key: {"action": "accept", "content": {"name": "Ada"}}},
        "requestState": r["result"]["requestState"]});
    let r = s.modern(5, "tools/call", retry, caps).json();
    assert_eq!(r["result"]["content"][0]["text"], "Hello, Ada!", "{r}");

    // Arguments the tool mirrors in headers are mirrored on the upstream request too.
    let r = s
        .modern_with(
            6,
            "tools/call",
            json!({"name": "test_custom_header", "arguments": {"region": "eu-west-1"}}),
            json!({}),
            &[("mcp-param-region", "eu-west-1")],
        )
        .json();
    assert_eq!(r["result"]["content"][0]["text"], "region=eu-west-1", "{r}");

    // Malformed up-front answers are refused, naming the one at fault.
    let r = s
        .modern(
            7,
            "tools/call",
            json!({"name": "test_input_required_result_elicitation",
        "arguments": {}, "inputResponses": {"user_name": 12345}}),
            json!({"elicitation": {}}),
        )
        .json();
    assert_eq!(r["error"]["code"], -32602, "{r}");
    assert!(
        r["error"]["message"].as_str().unwrap_or_default().contains("user_name"),
        "{r}"
    );

    // A session-era caller still goes through the session (its questions are relayed).
    let sid = s.initialize(MODERN_ERA, json!({"elicitation": {}}));
    let call = json!({"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"ask_name","arguments":{}}});
    let mut st = s.post_stream(&call, &session_headers(&sid));
    let req = st.next_json().expect("the upstream's question");
    assert_eq!(req["method"], "elicitation/create", "{req}");
}

/// A caller's task cancelled while its upstream call runs: the call is withdrawn upstream
/// and leaves nothing behind, so the next caller's question over the same stdio pipe is
/// still placed with its call (a leftover entry would make every later one ambiguous).
#[test]
fn a_cancelled_task_leaves_the_stdio_upstream_unambiguous() {
    let d = TempDir::new("relay-cancel");
    let (s, _) = gateway(&d, false);
    let tasks = json!({"extensions": {"io.modelcontextprotocol/tasks": {}}});
    let created = s
        .modern(
            1,
            "tools/call",
            json!({"name": "slow_compute", "arguments": {"seconds": 60}}),
            tasks.clone(),
        )
        .json();
    let id = created["result"]["taskId"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"))
        .to_string();
    let r = s.modern(2, "tasks/cancel", json!({"taskId": id}), tasks).json();
    assert!(r["result"].is_object(), "{r}");

    let sid = s.initialize(MODERN_ERA, json!({"elicitation": {}}));
    let call = json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"ask_name","arguments":{}}});
    let mut st = s.post_stream(&call, &session_headers(&sid));
    let req = st.next_json().expect("the upstream's question");
    assert_eq!(
        req["method"], "elicitation/create",
        "the question reached its caller: {req}"
    );
    let answer = json!({"jsonrpc":"2.0","id": req["id"],"result":{"action":"accept","content":{"name":"Lin"}}});
    assert_eq!(s.post(&answer, &session_headers(&sid)).status, 202);
    let fin = st.next_json().expect("the result");
    assert_eq!(fin["result"]["content"][0]["text"], "Hello, Lin!", "{fin}");
}

/// MRTR before the task, across the hop: a task-only upstream tool that asks before doing
/// any work asks the stateless caller synchronously (`input_required`, no task of the
/// caller's yet); the retry carrying the answer becomes the caller's task, which completes
/// with what was answered. The sealed state and the task are the caller's alone.
#[test]
fn an_upstream_asks_before_the_callers_task_exists() {
    let d = TempDir::new("relay-compose");
    let alice = crate::isolation::offline_key(&d, "alice", "mcp");
    let bob = crate::isolation::offline_key(&d, "bob", "mcp");
    let (s, _) = gateway(&d, true);
    let (a, b) = (format!("Bearer {alice}"), format!("Bearer {bob}"));
    let (ha, hb) = ([("authorization", a.as_str())], [("authorization", b.as_str())]);
    let caps = json!({"elicitation": {}, "extensions": {"io.modelcontextprotocol/tasks": {}}});
    let call = json!({"name": "test_tool_with_task", "arguments": {}});

    let r = s.modern_with(1, "tools/call", call.clone(), caps.clone(), &ha).json();
    assert_eq!(r["result"]["resultType"], "input_required", "{r}");
    assert!(r["result"].get("taskId").is_none(), "no task before the answer: {r}");
    let asked = r["result"]["inputRequests"]["user_name"].clone();
    assert_eq!(asked["method"], "elicitation/create", "{r}");

    let mut retry = call.clone();
    retry["inputResponses"] = json!({"user_name": {"action": "accept", "content": {"name": "Zed"}}});
    retry["requestState"] = r["result"]["requestState"].clone();
    let stolen = s.modern_with(3, "tools/call", retry.clone(), caps.clone(), &hb).json();
    assert_eq!(
        stolen["error"]["code"], -32602,
        "another caller's state is refused: {stolen}"
    );

    let r = s.modern_with(4, "tools/call", retry, caps.clone(), &ha).json();
    assert_eq!(r["result"]["resultType"], "task", "{r}");
    assert!(r["result"].get("requestState").is_none(), "{r}");
    let id = r["result"]["taskId"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_string();
    let theirs = s
        .modern_with(5, "tasks/get", json!({"taskId": id}), caps.clone(), &hb)
        .json();
    assert!(theirs["error"].is_object(), "{theirs}");
    for i in 0..100 {
        let r = s
            .modern_with(10 + i, "tasks/get", json!({"taskId": id}), caps.clone(), &ha)
            .json();
        match r["result"]["status"].as_str() {
            Some("completed") => {
                let text = r["result"]["result"]["content"][0]["text"].to_string();
                assert!(text.contains("user_name=Zed"), "{r}");
                return;
            }
            Some("working") => std::thread::sleep(std::time::Duration::from_millis(100)),
            _ => panic!("{r}"),
        }
    }
    panic!("the task did not complete");
}
