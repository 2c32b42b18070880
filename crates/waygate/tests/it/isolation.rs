//! Multi-tenant isolation against the real binary: two API keys, two principals, one
//! server. Whatever one caller creates (sessions, legacy SSE connections, tasks, MRTR
//! state) the other can neither use, read, answer nor end, and hidden items look exactly
//! like unknown ones in every answer.

use super::common;

use common::{Server, TempDir, MODERN};
use serde_json::{json, Value};

/// Create an API key offline (before the server starts, so it is loaded at start).
pub(super) fn offline_key(d: &TempDir, name: &str, scopes: &str) -> String {
    offline_key_with(d, name, scopes, &[])
}

/// [`offline_key`] with more arguments (e.g. `--database-url`).
pub(super) fn offline_key_with(d: &TempDir, name: &str, scopes: &str, extra: &[&str]) -> String {
    let dir = d.0.to_str().unwrap();
    let mut args = vec!["keys", "create", name, "--scopes", scopes, "--data-dir", dir];
    args.extend_from_slice(extra);
    let (ok, out, err) = common::cli(&args);
    assert!(ok, "{err}");
    out.trim().to_string()
}

pub(super) const TASKS: &str = "io.modelcontextprotocol/tasks";

fn two_callers(extra: &[&str]) -> (Server, String, String, TempDir) {
    let d = TempDir::new("iso");
    let alice = offline_key(&d, "alice", "mcp");
    let bob = offline_key(&d, "bob", "mcp");
    let (s, _) = Server::start_auth_with(&d.0, extra);
    (s, alice, bob, d)
}

fn refs<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[test]
fn sessions_belong_to_the_principal_that_opened_them() {
    let (s, alice, bob, _d) = two_callers(&[]);
    let a = [("x-api-key", alice.as_str())];
    let sid = s.initialize_with("2025-11-25", json!({"elicitation": {}}), &a);
    let on = |key: &str| {
        vec![
            ("x-api-key", key.to_string()),
            ("mcp-session-id", sid.clone()),
            ("mcp-protocol-version", "2025-11-25".to_string()),
        ]
    };
    let list = json!({"jsonrpc":"2.0","id":1,"method":"tools/list"});

    // Bob holds the id but not the key that opened it: every verb is "not found".
    let bob_h = on(&bob);
    let r = s.post(&list, &refs(&bob_h));
    assert_eq!(r.status, 404, "bob used alice's session: {}", r.text());
    assert!(!r.text().contains("tools"), "{}", r.text());
    let mut get_h = refs(&bob_h);
    get_h.push(("accept", "text/event-stream"));
    assert_eq!(
        s.request("GET", "/mcp", &get_h, b"").status,
        404,
        "bob opened alice's stream"
    );
    let answer = json!({"jsonrpc":"2.0","id":"waygate-1","result":{"action":"accept","content":{}}});
    assert_eq!(
        s.post(&answer, &refs(&bob_h)).status,
        404,
        "bob answered on alice's session"
    );
    let batch = json!([{"jsonrpc":"2.0","id":1,"method":"ping"}]);
    let mut bh = refs(&bob_h);
    bh[2].1 = "2025-03-26";
    assert_eq!(s.post(&batch, &bh).status, 404, "bob batched on alice's session");
    assert_eq!(
        s.request("DELETE", "/mcp", &refs(&bob_h), b"").status,
        404,
        "bob ended alice's session"
    );
    // A request without any credential is refused before the session is even looked up.
    let anon = [("mcp-session-id", sid.as_str())];
    assert_eq!(s.post(&list, &anon).status, 401);

    // Alice's session is untouched by all of that.
    let alice_h = on(&alice);
    let r = s.post(&list, &refs(&alice_h));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["result"]["tools"].is_array());
    assert_eq!(s.request("DELETE", "/mcp", &refs(&alice_h), b"").status, 204);
    assert_eq!(s.post(&list, &refs(&alice_h)).status, 404, "ended");
}

#[test]
fn legacy_sse_connections_belong_to_their_principal() {
    let (s, alice, bob, _d) = two_callers(&[]);
    let mut stream = common::Stream::open(
        &s.addr,
        "GET",
        "/sse",
        &[("accept", "text/event-stream"), ("x-api-key", &alice)],
        b"",
    );
    assert_eq!(stream.status, 200);
    let (event, endpoint) = stream.next_event().expect("endpoint event");
    assert_eq!(event, "endpoint");
    let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"t","version":"1"}}});
    let body = init.to_string();
    let post = |key: &str| {
        s.request(
            "POST",
            &endpoint,
            &[("content-type", "application/json"), ("x-api-key", key)],
            body.as_bytes(),
        )
    };
    let r = post(&bob);
    assert_eq!(r.status, 404, "bob posted into alice's SSE connection: {}", r.text());
    assert_eq!(post(&alice).status, 202);
    let init = stream.next_json().expect("initialize answer on alice's stream");
    assert_eq!(init["id"], 1);
    assert_eq!(init["result"]["protocolVersion"], "2024-11-05");
}

#[test]
fn tasks_are_listed_read_and_cancelled_by_their_owner_only() {
    let (s, alice, bob, _d) = two_callers(&["--plugin", "everything"]);
    let caps = json!({"extensions": {TASKS: {}}});
    let call = s
        .modern_with(
            1,
            "tools/call",
            json!({"name": "slow_compute", "arguments": {"seconds": 5}}),
            caps.clone(),
            &[("x-api-key", &alice)],
        )
        .json();
    let task_id = call["result"]["taskId"]
        .as_str()
        .unwrap_or_else(|| panic!("no task: {call}"))
        .to_string();
    let task_req = |key: &str, id: i64, method: &str| {
        s.modern_with(
            id,
            method,
            json!({"taskId": task_id}),
            caps.clone(),
            &[("x-api-key", key)],
        )
    };
    for (i, m) in ["tasks/get", "tasks/cancel"].iter().enumerate() {
        let r = task_req(&bob, 10 + i as i64, m).json();
        assert_eq!(r["error"]["code"], -32602, "bob reached alice's task with {m}: {r}");
        assert_eq!(r["error"]["message"], format!("Unknown task: {task_id}"), "{r}");
    }
    let r = s
        .modern_with(
            12,
            "tasks/update",
            json!({"taskId": task_id, "inputResponses": {}}),
            caps.clone(),
            &[("x-api-key", &bob)],
        )
        .json();
    assert_eq!(r["error"]["code"], -32602, "{r}");
    let own = task_req(&alice, 13, "tasks/get").json();
    assert_eq!(own["result"]["taskId"], task_id.as_str(), "{own}");
    assert_eq!(
        own["result"]["status"], "working",
        "bob's cancel must not have landed: {own}"
    );

    // 2025-11-25 core tasks: tasks/list shows each caller its own tasks only.
    let sid_a = s.initialize_with("2025-11-25", json!({"tasks": {}}), &[("x-api-key", &alice)]);
    let sid_b = s.initialize_with("2025-11-25", json!({"tasks": {}}), &[("x-api-key", &bob)]);
    let legacy = |key: &str, sid: &str, body: Value| {
        s.post(
            &body,
            &[
                ("x-api-key", key),
                ("mcp-session-id", sid),
                ("mcp-protocol-version", "2025-11-25"),
            ],
        )
        .json()
    };
    let created = legacy(
        &alice,
        &sid_a,
        json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"slow_compute","arguments":{"seconds":5},"task":{}}}),
    );
    let legacy_id = created["result"]["task"]["taskId"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"))
        .to_string();
    let ids = |v: &Value| -> Vec<String> {
        v["result"]["tasks"]
            .as_array()
            .unwrap_or_else(|| panic!("{v}"))
            .iter()
            .map(|t| t["taskId"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let list = json!({"jsonrpc":"2.0","id":3,"method":"tasks/list"});
    let mine = ids(&legacy(&alice, &sid_a, list.clone()));
    assert!(mine.contains(&legacy_id) && mine.contains(&task_id), "{mine:?}");
    assert!(ids(&legacy(&bob, &sid_b, list)).is_empty(), "bob sees alice's tasks");
    let r = legacy(
        &bob,
        &sid_b,
        json!({"jsonrpc":"2.0","id":4,"method":"tasks/result","params":{"taskId": legacy_id}}),
    );
    assert_eq!(r["error"]["code"], -32602, "{r}");
}

#[test]
fn request_state_is_bound_to_caller_and_arguments() {
    let (s, alice, bob, _d) = two_callers(&["--plugin", "everything"]);
    let caps = json!({"elicitation": {}});
    let first = s
        .modern_with(
            1,
            "tools/call",
            json!({"name": "ask_name", "arguments": {}}),
            caps.clone(),
            &[("x-api-key", &alice)],
        )
        .json();
    let state = first["result"]["requestState"]
        .as_str()
        .unwrap_or_else(|| panic!("{first}"))
        .to_string();
    assert!(
        !state.contains('{') && !state.contains("ask_name"),
        "state is not opaque: {state}"
    );
    let answer = json!({"name": {"action": "accept", "content": {"name": "Ada"}}});
    let retry = |key: &str, args: Value| {
        s.modern_with(
            2,
            "tools/call",
            json!({"name": "ask_name", "arguments": args, "inputResponses": answer, "requestState": state}),
            caps.clone(),
            &[("x-api-key", key)],
        )
        .json()
    };
    let stolen = retry(&bob, json!({}));
    assert_eq!(stolen["error"]["code"], -32602, "bob replayed alice's state: {stolen}");
    assert!(
        stolen["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("different caller"),
        "{stolen}"
    );
    // Arguments the schema refuses never reach the state check (nor the tool).
    let invalid = retry(&alice, json!({"extra": 1}));
    assert_eq!(invalid["result"]["isError"], true, "{invalid}");
    let done = retry(&alice, json!({}));
    assert_eq!(done["result"]["content"][0]["text"], "Hello, Ada!", "{done}");
    assert!(
        done["result"].get("cacheScope").is_none(),
        "a retried request must not be cacheable: {done}"
    );
}

#[test]
fn request_state_is_bound_to_the_arguments_it_was_issued_for() {
    let (s, alice, _bob, _d) = two_callers(&["--plugin", "everything"]);
    let caps = json!({"elicitation": {}});
    let get = |id: i64, args: Value, extra: Value| {
        let mut p = json!({"name": "test_input_required_result_prompt", "arguments": args});
        if let (Some(p), Some(e)) = (p.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        s.modern_with(id, "prompts/get", p, caps.clone(), &[("x-api-key", &alice)])
            .json()
    };
    let first = get(1, json!({"topic": "a"}), json!({}));
    let state = first["result"]["requestState"]
        .as_str()
        .unwrap_or_else(|| panic!("{first}"))
        .to_string();
    let answer = json!({"inputResponses": {"user_context": {"action": "accept", "content": {"context": "ctx"}}},
                        "requestState": state});
    let swapped = get(2, json!({"topic": "b"}), answer.clone());
    assert_eq!(swapped["error"]["code"], -32602, "{swapped}");
    assert!(
        swapped["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("different request"),
        "{swapped}"
    );
    let done = get(3, json!({"topic": "a"}), answer);
    assert_eq!(
        done["result"]["messages"][0]["content"]["text"], "Prompt with context: ctx",
        "{done}"
    );
}

const HIDE: &str = r#"version = 3
[plugins]
enabled = ["everything"]

[[policies]]
name = "bob-no-prompt"
effect = "deny"
principals = ["bob"]
prompts = ["test_prompt_with_arguments"]
resources = ["test://template/*"]
"#;

#[test]
fn hidden_items_are_indistinguishable_from_unknown_ones_and_hints_are_private() {
    let d = TempDir::new("iso-hide");
    std::fs::write(d.0.join("waygate.toml"), HIDE).unwrap();
    let alice = offline_key(&d, "alice", "mcp");
    let bob = offline_key(&d, "bob", "mcp");
    let (s, _) = Server::start_auth_with(&d.0, &[]);
    let complete = |key: &str, reference: Value| {
        let mut r = s
            .modern_with(
                1,
                "completion/complete",
                json!({"ref": reference, "argument": {"name": "arg1", "value": "a"}}),
                json!({}),
                &[("x-api-key", key)],
            )
            .json();
        if let Some(e) = r.get_mut("error") {
            e.as_object_mut().map(|o| o.remove("data"));
        }
        r
    };
    let hidden = json!({"type": "ref/prompt", "name": "test_prompt_with_arguments"});
    let missing = json!({"type": "ref/prompt", "name": "no_such_prompt"});
    let a = complete(&alice, hidden.clone());
    assert_eq!(a["result"]["completion"]["values"][0], "alpha", "{a}");
    let h = complete(&bob, hidden);
    let m = complete(&bob, missing);
    assert_eq!(h["error"]["code"], m["error"]["code"], "{h} vs {m}");
    assert_eq!(
        h["error"]["message"]
            .as_str()
            .unwrap()
            .replace("test_prompt_with_arguments", "X"),
        m["error"]["message"].as_str().unwrap().replace("no_such_prompt", "X"),
        "a hidden prompt must read like an unknown one"
    );
    // A template bob may not read completes to nothing, like an unknown one.
    let t = complete(
        &bob,
        json!({"type": "ref/resource", "uri": "test://template/{id}/data"}),
    );
    let u = complete(&bob, json!({"type": "ref/resource", "uri": "test://nothing/{id}"}));
    assert_eq!(t["result"]["completion"], u["result"]["completion"], "{t} vs {u}");

    // Lists filtered by a policy are not the same for everyone: private, on every page.
    for m in [
        "tools/list",
        "prompts/list",
        "resources/list",
        "resources/templates/list",
    ] {
        let r = s.modern_with(2, m, json!({}), json!({}), &[("x-api-key", &bob)]).json();
        assert_eq!(r["result"]["cacheScope"], "private", "{m}: {r}");
    }
    let r = s
        .modern_with(
            3,
            "resources/read",
            json!({"uri": "test://static-text"}),
            json!({}),
            &[("x-api-key", &alice)],
        )
        .json();
    assert_eq!(r["result"]["cacheScope"], "private", "{r}");
    let r = s
        .modern_with(4, "server/discover", json!({}), json!({}), &[("x-api-key", &bob)])
        .json();
    assert_eq!(r["result"]["cacheScope"], "public", "{r}");
    let _ = MODERN;
}

#[test]
fn lists_without_a_policy_are_public_and_reads_by_principals_private() {
    let (s, alice, _bob, _d) = two_callers(&["--plugin", "everything"]);
    let r = s
        .modern_with(1, "tools/list", json!({}), json!({}), &[("x-api-key", &alice)])
        .json();
    assert_eq!(r["result"]["cacheScope"], "public", "{r}");
    let r = s
        .modern_with(
            2,
            "resources/read",
            json!({"uri": "test://static-text"}),
            json!({}),
            &[("x-api-key", &alice)],
        )
        .json();
    assert_eq!(r["result"]["cacheScope"], "private", "{r}");
}

#[test]
fn a_task_keeps_its_ttl_while_cache_hints_follow_the_rules() {
    let (s, alice, _bob, _d) = two_callers(&["--plugin", "everything"]);
    let caps = json!({"extensions": {TASKS: {}}});
    let r = s
        .modern_with(
            1,
            "tools/call",
            json!({"name": "slow_compute", "arguments": {"seconds": 0.1}}),
            caps,
            &[("x-api-key", &alice)],
        )
        .json();
    assert_eq!(r["result"]["resultType"], "task", "{r}");
    assert!(
        r["result"]["ttlMs"].as_u64().is_some_and(|t| t > 0),
        "a task's ttlMs is its lifetime: {r}"
    );
    assert!(r["result"].get("cacheScope").is_none(), "{r}");
}
