//! The Python Waygate's REST routes on the real binary: `X-API-Key`, `X-RateLimit-*`
//! headers, its error envelope, tool calls through the same engine path — and `/mcp` still
//! the MCP endpoint beside them.

use super::admin_api::api;
use super::catalog::write_config;
use super::common::{Server, TempDir};

use serde_json::{json, Value};

fn envelope(v: &Value, code: &str) {
    let e = &v["error"];
    assert_eq!(e["code"], code, "{v}");
    for k in ["message", "timestamp"] {
        assert!(e[k].as_str().is_some_and(|s| !s.is_empty()), "{k} in {v}");
    }
    assert!(e["details"].is_object(), "{v}");
}

#[test]
fn python_waygate_clients_keep_working_beside_mcp() {
    let d = TempDir::new("compat");
    let cfg = write_config(&d, "[limits]\nrequests_per_second = 1\nburst = 30\n");
    let (s, key) = Server::start_auth_with(&d.0, &["--config", &cfg]);
    let key = key.unwrap();

    let r = api(
        &s,
        "POST",
        "/mcp/execute",
        &key,
        Some(&json!({"action": "add", "params": {"a": 2, "b": 5}, "context": {"user": "x"}, "timeout": 5})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["status"], "success");
    assert_eq!(v["result"]["structuredContent"]["sum"], 7.0, "{v}");
    assert!(v["request_id"].is_string());
    assert_eq!(r.header("x-ratelimit-limit"), Some("30"));
    let left: u64 = r.header("x-ratelimit-remaining").unwrap().parse().unwrap();
    assert!(left < 30, "{left}");
    let reset: u64 = r.header("x-ratelimit-reset").unwrap().parse().unwrap();
    assert!(reset > 1_700_000_000, "a Unix time: {reset}");

    // Errors in the envelope: unknown action, bad arguments, bad timeout, no key.
    let r = api(&s, "POST", "/mcp/execute", &key, Some(&json!({"action": "nope"})));
    assert_eq!(r.status, 404);
    envelope(&r.json(), "NOT_FOUND");
    assert!(r.json()["error"]["request_id"].is_string());
    let r = api(
        &s,
        "POST",
        "/mcp/execute",
        &key,
        Some(&json!({"action": "add", "params": {"a": "x"}})),
    );
    assert_eq!(r.status, 400);
    envelope(&r.json(), "BAD_REQUEST");
    let r = api(
        &s,
        "POST",
        "/mcp/execute",
        &key,
        Some(&json!({"action": "add", "timeout": -1})),
    );
    assert_eq!(r.json()["error"]["details"]["field"], "timeout", "{}", r.text());
    let r = s.request("GET", "/mcp/tools", &[], b"");
    assert_eq!(r.status, 401);
    envelope(&r.json(), "UNAUTHORIZED");

    let r = api(
        &s,
        "POST",
        "/mcp/tools/execute",
        &key,
        Some(&json!({"server_name": "demo", "tool_name": "echo", "parameters": {"text": "hi"}})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["result"]["content"][0]["text"], "hi");

    let tools = api(&s, "GET", "/mcp/tools", &key, None).json();
    assert!(
        tools["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "add" && t["server"] == "demo"),
        "{tools}"
    );
    let cmds = api(&s, "GET", "/mcp/commands", &key, None).json();
    assert!(
        cmds["commands"].as_array().unwrap().iter().any(|c| c["name"] == "echo"),
        "{cmds}"
    );
    let st = api(&s, "GET", "/mcp/status", &key, None).json();
    assert_eq!(st["status"], "ok", "{st}");
    let servers = api(&s, "GET", "/mcp/servers", &key, None).json();
    assert_eq!(servers["servers"][0]["name"], "demo", "{servers}");
    assert_eq!(api(&s, "GET", "/plugins/demo", &key, None).json()["name"], "demo");
    let r = api(&s, "GET", "/plugins/nope", &key, None);
    assert_eq!(r.status, 404);
    envelope(&r.json(), "NOT_FOUND");
    let reloaded = api(&s, "POST", "/plugins/reload", &key, None).json();
    assert_eq!(reloaded["reloaded"], json!(["demo"]), "{reloaded}");
    for kind in ["connection", "performance", "errors"] {
        let r = api(&s, "GET", &format!("/diagnostics/{kind}"), &key, None);
        assert_eq!(r.status, 200, "{kind}: {}", r.text());
    }

    // Every answer carries the rate-limit headers: reads (not charged) and refusals too.
    for r in [
        api(&s, "GET", "/mcp/status", &key, None),
        api(&s, "GET", "/plugins/nope", &key, None),
        s.request("GET", "/mcp/tools", &[], b""),
    ] {
        assert_eq!(r.header("x-ratelimit-limit"), Some("30"), "{}", r.text());
        assert!(r.header("x-ratelimit-remaining").is_some() && r.header("x-ratelimit-reset").is_some());
    }
    // Documented: deprecated, with the headers on every answer.
    let doc = s.request("GET", "/api/v1/openapi.json", &[], b"").json();
    let mut compat_ops = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        if path.starts_with("/api/") {
            assert!(
                item.as_object()
                    .unwrap()
                    .values()
                    .all(|op| op.get("deprecated").is_none()),
                "{path}"
            );
            continue;
        }
        for (method, op) in item.as_object().unwrap() {
            compat_ops += 1;
            assert_eq!(op["deprecated"], true, "{method} {path} is not deprecated");
            for (code, resp) in op["responses"].as_object().unwrap() {
                for h in ["X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"] {
                    assert!(resp["headers"][h].is_object(), "{method} {path} {code} lacks {h}");
                }
            }
        }
    }
    assert_eq!(compat_ops, 10, "every compatibility route is in the document");
    // Without a caller limit (removed live) the headers say so rather than vanish.
    let unlimited = api(&s, "PUT", "/api/v1/limits", &key, Some(&json!({})));
    assert_eq!(unlimited.status, 200, "{}", unlimited.text());
    let r = api(&s, "GET", "/mcp/status", &key, None);
    assert_eq!(r.header("x-ratelimit-limit"), Some("4294967295"));
    assert_eq!(r.header("x-ratelimit-remaining"), Some("4294967295"));

    // `/mcp` stays MCP: a JSON-RPC POST is answered by the engine.
    let rpc = s.post(
        &json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}),
        &[("x-api-key", &key)],
    );
    assert_eq!(rpc.status, 200);
    assert!(rpc.json()["result"]["tools"].is_array(), "{}", rpc.text());
}

#[test]
fn one_switch_turns_the_compatibility_routes_off() {
    let d = TempDir::new("compat-off");
    let cfg = write_config(&d, "[admin]\ncompat_routes = false\n");
    let (s, key) = Server::start_auth_with(&d.0, &["--config", &cfg]);
    let key = key.unwrap();
    assert_eq!(
        api(&s, "POST", "/mcp/execute", &key, Some(&json!({"action": "add"}))).status,
        404
    );
    assert_eq!(api(&s, "GET", "/plugins", &key, None).status, 404);
    let doc = s.request("GET", "/api/v1/openapi.json", &[], b"").json();
    assert!(doc["paths"].get("/mcp/execute").is_none());
    assert!(doc["paths"].get("/api/v1/plugins").is_some());
}
