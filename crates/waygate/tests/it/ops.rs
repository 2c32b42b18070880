//! Operational surface of the real binary: `/metrics` passes `promtool check metrics`, every
//! metric the shipped dashboard and alert rules use exists, `/api/v1/diagnostics` needs the
//! admin scope and tells an operator the state of everything with secrets redacted, and
//! `/ready` explains itself.

use super::common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, TempDir};
use serde_json::json;

fn promtool() -> Option<&'static str> {
    let found = Command::new("promtool").arg("--version").output().is_ok();
    if !found && (std::env::var_os("CI").is_some() || std::env::var_os("WAYGATE_TEST_REQUIRE_PROMTOOL").is_some()) {
        panic!("promtool is required in CI (Debian package prometheus)");
    }
    found.then_some("promtool")
}

/// `waygate_*` names used in a monitoring file (PromQL expressions).
fn referenced(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let b = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find("waygate_") {
        let start = i + pos;
        let mut end = start;
        while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'_') {
            end += 1;
        }
        // Skip the dashboard uid and similar non-metric words.
        let name = &text[start..end];
        if start == 0 || !(b[start - 1].is_ascii_alphanumeric() || b[start - 1] == b'-') {
            out.insert(name.to_string());
        }
        i = end.max(start + 1);
    }
    out
}

#[test]
fn metrics_dashboards_alerts_and_diagnostics() {
    let d = TempDir::new("ops");
    std::fs::write(
        d.0.join("waygate.toml"),
        "version = 3\n[mcp]\nstate_key = \"a-very-secret-state-key-0123456789\"\n",
    )
    .unwrap();
    let (s, admin) = Server::start_with_auth(&d.0);
    let admin = admin.expect("admin key");
    let auth = [("authorization", format!("Bearer {admin}"))];
    let h: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // Some traffic so that per-tool and histogram series exist.
    for i in 0..3 {
        let r = s.post(
            &json!({"jsonrpc":"2.0","id":i,"method":"tools/call","params":{"name":"echo","arguments":{"text":"m"}}}),
            &h,
        );
        assert_eq!(r.status, 200);
    }
    let init = s.post(
        &json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name":"t","version":"1"}}}),
        &h,
    );
    assert_eq!(init.status, 200, "{}", init.text());
    let end = Instant::now() + Duration::from_secs(5);
    let metrics = loop {
        let m = s.request("GET", "/metrics", &h, b"").text();
        if m.contains("waygate_audit_records_written_total 3") || Instant::now() > end {
            break m;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(metrics.contains("waygate_audit_records_written_total 3"), "{metrics}");
    assert!(
        metrics.contains("waygate_sessions_open{version=\"2025-06-18\",transport=\"streamable-http\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("waygate_store_up 1"));

    // Every metric the shipped dashboard and alert rules use exists.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/monitoring");
    let families: BTreeSet<String> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    for file in ["grafana-dashboard.json", "alerts.yml"] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let used = referenced(&text);
        assert!(used.len() >= 5, "{file}: {used:?}");
        for name in used {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(&name);
            assert!(
                families.contains(base),
                "{file} uses {name}, which /metrics does not export"
            );
        }
    }

    // promtool accepts the exposition and the rules.
    if let Some(tool) = promtool() {
        let mut child = Command::new(tool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(metrics.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool check metrics: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let rules = Command::new(tool)
            .args(["check", "rules", root.join("alerts.yml").to_str().unwrap()])
            .output()
            .unwrap();
        assert!(rules.status.success(), "{}", String::from_utf8_lossy(&rules.stdout));
    }

    // Diagnostics: admin only, complete, secrets redacted.
    let (ok, mcp_key, _) = common::cli(&[
        "keys",
        "create",
        "client",
        "--scopes",
        "mcp",
        "--data-dir",
        d.0.to_str().unwrap(),
    ]);
    assert!(ok);
    std::thread::sleep(Duration::from_millis(1200));
    let r = s.request("GET", "/api/v1/diagnostics", &[("x-api-key", mcp_key.trim())], b"");
    assert_eq!(r.status, 403, "{}", r.text());
    let r = s.request("GET", "/api/v1/diagnostics", &h, b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let diag = r.json();
    assert_eq!(diag["store"]["schema_version"], super::common::migrations().1, "{diag}");
    assert_eq!(diag["store"]["reachable"], true);
    assert!(
        diag["plugins"].as_array().unwrap().iter().any(|p| p["name"] == "demo"),
        "{diag}"
    );
    assert!(diag["audit"]["written"].as_u64().unwrap() >= 3);
    assert_eq!(diag["config"]["mcp.state_key"], "\"<redacted>\"");
    assert!(!r.text().contains("a-very-secret-state-key"), "secret leaked");
    assert!(diag["uptime_secs"].is_u64() && diag["version"].is_string());
    let ready = s.request("GET", "/ready", &[], b"");
    assert_eq!((ready.status, ready.json()["status"].clone()), (200, json!("ready")));
}

#[test]
fn separate_metrics_listener_needs_no_key_and_serves_nothing_else() {
    let d = TempDir::new("metrics-listen");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        d.0.join("waygate.toml"),
        format!("version = 3\n[server]\nmetrics_listen = \"127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let (s, _admin) = Server::start_with_auth(&d.0);
    assert_eq!(
        s.request("GET", "/metrics", &[], b"").status,
        401,
        "main port keeps its key check"
    );
    let addr = format!("127.0.0.1:{port}");
    let m = common::http(&addr, "GET", "/metrics", &[], b"");
    assert_eq!(m.status, 200);
    assert!(m.text().contains("waygate_build_info") && m.text().contains("waygate_plugin_calls_total"));
    assert_eq!(common::http(&addr, "POST", "/mcp", &[], b"{}").status, 404);
    assert_eq!(common::http(&addr, "GET", "/api/v1/plugins", &[], b"").status, 404);
}

#[test]
fn version_names_the_release_and_the_commit() {
    let (ok, out, err) = common::cli(&["--version"]);
    assert!(ok, "{err}");
    let expected = format!("waygate {} (commit ", env!("CARGO_PKG_VERSION"));
    assert!(out.starts_with(&expected), "{out}");
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|h| h.status.success());
    if let Some(h) = head {
        let head = String::from_utf8_lossy(&h.stdout).trim().to_string();
        assert!(out.contains(&format!("(commit {head})")), "{out} vs HEAD {head}");
    }
}
