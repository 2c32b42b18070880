//! Authorization policies of the real binary: role-based tool rules with globs, list
//! filtering by the same rules, deny-overrides, and a policy change applied by hot reload.

use super::common;

use std::time::{Duration, Instant};

use common::{Server, TempDir};
use serde_json::{json, Value};

fn names(list: &Value, key: &str) -> Vec<String> {
    let mut v: Vec<String> = list["result"][key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {list}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap_or_default().to_string())
        .collect();
    v.sort();
    v
}

fn key(d: &TempDir, name: &str, scopes: &str) -> String {
    super::isolation::offline_key(d, name, scopes)
}

const POLICY: &str = r#"version = 3
[authz]
default = "deny"

[[policies]]
name = "admins-everything"
effect = "allow"
roles = ["admin"]
tools = ["*"]
resources = ["*"]
prompts = ["*"]

[[policies]]
name = "readers-echo-and-now"
effect = "allow"
roles = ["reader"]
tools = ["echo", "n?w"]
prompts = ["greet"]

[[policies]]
name = "no-now-for-interns"
effect = "deny"
principals = ["intern"]
tools = ["now"]
"#;

#[test]
fn roles_globs_list_filtering_deny_overrides_and_reload() {
    let d = TempDir::new("authz");
    let cfg = d.0.join("waygate.toml");
    std::fs::write(&cfg, POLICY).unwrap();
    let (s, admin) = Server::start_with_auth(&d.0);
    let admin = admin.expect("admin key");
    let reader = key(&d, "reader-bot", "mcp,reader");
    let intern = key(&d, "intern", "mcp,reader");
    let nobody = key(&d, "nobody", "mcp");
    let wait_key = |k: &str| {
        let end = Instant::now() + Duration::from_secs(5);
        while s
            .post(
                &json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}),
                &[("x-api-key", k)],
            )
            .status
            != 200
        {
            assert!(Instant::now() < end, "key never accepted");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    for k in [&reader, &intern, &nobody] {
        wait_key(k);
    }
    let list = |k: &str, method: &str, field: &str| {
        names(
            &s.post(&json!({"jsonrpc":"2.0","id":1,"method":method}), &[("x-api-key", k)])
                .json(),
            field,
        )
    };
    let call = |k: &str, tool: &str| {
        s.post(
            &json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":tool,"arguments":{"text":"hi","a":1,"b":2}}}),
            &[("x-api-key", k)],
        )
        .json()
    };

    // Admin role: everything.
    let all = list(&admin, "tools/list", "tools");
    assert!(all.len() >= 5 && all.contains(&"add".to_string()), "{all:?}");
    // Reader: only what the rule names, in the list and for calls.
    assert_eq!(list(&reader, "tools/list", "tools"), vec!["echo", "now"]);
    assert_eq!(list(&reader, "prompts/list", "prompts"), vec!["greet"]);
    assert!(list(&reader, "resources/list", "resources").is_empty());
    assert_eq!(call(&reader, "echo")["result"]["content"][0]["text"], "hi");
    let denied = call(&reader, "add");
    assert_eq!(denied["error"]["code"], -32602, "{denied}");
    assert_eq!(
        denied["error"]["message"], "Unknown tool: add",
        "a denial looks like an unknown tool"
    );
    // Deny overrides allow, for one principal only.
    assert_eq!(list(&intern, "tools/list", "tools"), vec!["echo"]);
    assert!(call(&intern, "now")["error"].is_object());
    assert!(call(&reader, "now")["result"].is_object());
    // No matching rule: the default (deny) for access, lists empty, lifecycle still works.
    assert!(list(&nobody, "tools/list", "tools").is_empty());
    let ping = s.post(
        &json!({"jsonrpc":"2.0","id":3,"method":"ping"}),
        &[("x-api-key", &nobody)],
    );
    assert_eq!(ping.json()["result"], json!({}));
    let read = s.post(
        &json!({"jsonrpc":"2.0","id":4,"method":"resources/read","params":{"uri":"demo://readme"}}),
        &[("x-api-key", &nobody)],
    );
    assert!(read.json()["error"].is_object(), "{}", read.text());

    // Hot reload: readers may now call add too.
    std::fs::write(
        &cfg,
        POLICY.replace("tools = [\"echo\", \"n?w\"]", "tools = [\"echo\", \"n?w\", \"add\"]"),
    )
    .unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    while !list(&reader, "tools/list", "tools").contains(&"add".to_string()) {
        assert!(Instant::now() < end, "policy reload not applied");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(call(&reader, "add")["result"]["structuredContent"]["sum"], 3.0);

    // The metrics count the denials.
    let m = s.request("GET", "/metrics", &[("x-api-key", &admin)], b"").text();
    let denied: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("waygate_authz_denied_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(denied >= 3, "{m}");
}

#[test]
fn bad_policy_config_names_the_key() {
    let d = TempDir::new("authz-bad");
    let cfg = d.0.join("bad.toml");
    std::fs::write(
        &cfg,
        "version = 3\n[[policies]]\nname = \"x\"\neffect = \"permit\"\ntools = [\"*\"]\n",
    )
    .unwrap();
    let (ok, _, err) = common::cli(&["config", "validate", cfg.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("policies[0].effect") && err.contains("\"allow\" or \"deny\""),
        "{err}"
    );
}
