//! Upstream kinds behind the gateway: a legacy HTTP+SSE third-party server, a Streamable
//! HTTP server's GET stream, a stateless 2026-07-28-only server, and fifty upstreams with
//! one that floods `list_changed`.

use std::time::Duration;

use serde_json::json;

use crate::catalog::{eventually, legacy_post, modern_at, tools_at, write_config};
use crate::common::{self, Server, TempDir};

/// Runs `test` inside a private network namespace (only `lo`), re-executing this test
/// binary there: the reference server binds every interface, which the loopback rules
/// allow only where loopback is all there is.
fn in_private_network(test: &str) -> bool {
    if std::env::var_os("WAYGATE_IN_NETNS").is_some() {
        return false;
    }
    let exe = std::env::current_exe().unwrap();
    let script = format!(
        "ip link set lo up && exec \"{}\" --exact upstream_kinds::{test} --nocapture --test-threads 1",
        exe.display()
    );
    for flags in [&["--net"][..], &["--net", "--map-root-user"][..]] {
        let out = std::process::Command::new("unshare")
            .args(flags)
            .args(["sh", "-c", &script])
            .env("WAYGATE_IN_NETNS", "1")
            .output();
        let Ok(out) = out else { continue };
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if text.contains("Operation not permitted") && !text.contains("running 1 test") {
            continue;
        }
        assert!(out.status.success() && text.contains("1 passed"), "{text}");
        return true;
    }
    panic!("could not create a private network namespace (unshare --net)");
}

#[test]
fn legacy_sse_reference_server_behind_the_gateway() {
    let Some((node, js)) = crate::upstreams::everything_server() else {
        return;
    };
    if in_private_network("legacy_sse_reference_server_behind_the_gateway") {
        return;
    }
    let port = 20000 + (std::process::id() % 20000) as u16;
    let mut ev = std::process::Command::new(&node)
        .args([&js, "sse"])
        .env("PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("node");
    let d = TempDir::new("legacy-sse");
    // Pasted the way people write it: a url and nothing else (Streamable HTTP is tried,
    // the legacy transport is used when the server refuses it); plus an explicit one.
    let cfg = write_config(
        &d,
        &format!(
            "[[upstreams]]\nname = \"ev\"\nurl = \"http://127.0.0.1:{port}/sse\"\nprefix = \"always\"\n\
             tools.allow = [\"echo\", \"get-sum\"]\n\
             [[upstreams]]\nname = \"ev2\"\ntransport = \"sse\"\nurl = \"http://127.0.0.1:{port}/sse\"\nprefix = \"always\"\n\
             tools.allow = [\"echo\"]\n\
             [[servers]]\nname = \"triage\"\ninclude = [\"ev/echo\", \"demo/add\"]\n"
        ),
    );
    let s = Server::start_in(Some(&d.0), &["--config", &cfg]);
    eventually(30, "the SSE upstreams' tools", || {
        let t = tools_at(&s, "/mcp", None);
        t.contains(&"ev__echo".to_string()) && t.contains(&"ev2__echo".to_string())
    });
    let all = tools_at(&s, "/mcp", None);
    assert!(
        !all.iter()
            .any(|t| t.starts_with("ev__") && t != "ev__echo" && t != "ev__get-sum"),
        "{all:?}"
    );
    for name in ["ev__echo", "ev2__echo"] {
        let r = modern_at(
            &s,
            "/mcp",
            2,
            "tools/call",
            json!({"name": name, "arguments": {"message": "over SSE"}}),
            None,
        );
        assert_eq!(
            r.json()["result"]["content"][0]["text"],
            "Echo: over SSE",
            "{}",
            r.text()
        );
    }
    let diag = s.request("GET", "/api/v1/diagnostics", &[], b"").json();
    for name in ["ev", "ev2"] {
        let u = diag["upstreams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["name"] == name)
            .cloned()
            .unwrap();
        assert_eq!(u["transport"], "sse", "{u}");
        assert_eq!(u["state"], "up", "{u}");
    }
    assert_eq!(tools_at(&s, "/servers/triage/mcp", None), ["add", "ev__echo"]);
    let _ = ev.kill();
    let _ = ev.wait();
}

/// A Streamable HTTP upstream's GET stream is kept open: its list change reaches the
/// gateway's catalog at once, without a reconnect (pings alone would never re-list).
#[test]
fn an_http_upstream_announces_list_changes_on_its_get_stream() {
    let inner_d = TempDir::new("live-inner");
    let inner = Server::start_in(Some(&inner_d.0), &[]);
    let d = TempDir::new("live-gw");
    let cfg = write_config(
        &d,
        &format!(
            "[[upstreams]]\nname = \"inner\"\nurl = \"http://{}/mcp\"\nprefix = \"always\"\n",
            inner.addr
        ),
    );
    let s = Server::start_in(Some(&d.0), &["--config", &cfg]);
    eventually(20, "inner's tools", || {
        tools_at(&s, "/mcp", None).contains(&"inner__add".to_string())
    });
    std::thread::sleep(Duration::from_millis(300)); // the GET stream opens after the handshake
    let url = format!("http://{}", inner.addr);
    let (ok, _, err) = common::cli(&["plugins", "disable", "demo", "--url", &url]);
    assert!(ok, "{err}");
    eventually(5, "the gateway to drop inner's tools", || {
        !tools_at(&s, "/mcp", None).iter().any(|t| t.starts_with("inner__"))
    });
    let (ok, _, err) = common::cli(&["plugins", "enable", "demo", "--url", &url]);
    assert!(ok, "{err}");
    eventually(5, "inner's tools back", || {
        tools_at(&s, "/mcp", None).contains(&"inner__add".to_string())
    });
    let diag = s.request("GET", "/api/v1/diagnostics", &[], b"").json();
    let u = diag["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "inner")
        .cloned()
        .unwrap();
    assert_eq!(u["restarts"], 0, "the lists changed on a live connection: {u}");
    assert_eq!(u["transport"], "http", "{u}");
}

/// Fifty upstreams at once, one of which floods `list_changed` without changing anything:
/// the catalog holds them all, the flood reaches no client, a real change does.
#[test]
fn fifty_upstreams_and_one_that_floods_list_changed() {
    let py = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/many_tools.py");
    let py = py.to_str().unwrap();
    let d = TempDir::new("fifty");
    let body: String = (0..50)
        .map(|i| format!("[[upstreams]]\nname = \"u{i:02}\"\ncommand = \"python3\"\nargs = [\"{py}\", \"3\"]\nprefix = \"always\"\n"))
        .collect();
    let cfg = write_config(
        &d,
        &format!(
            "[mcp]\npage_size = 1000\n[pinning]\nenabled = false\n[[servers]]\nname = \"zero\"\ninclude = [\"u00\"]\n{body}"
        ),
    );
    let s = Server::start_in(Some(&d.0), &["--config", &cfg]);
    eventually(60, "250 upstream tools", || {
        tools_at(&s, "/mcp", None).iter().filter(|t| t.starts_with('u')).count() == 250
    });
    // A session-era client with its standalone stream open.
    let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}});
    let sid = legacy_post(&s, "/mcp", None, &init)
        .header("mcp-session-id")
        .expect("session")
        .to_string();
    legacy_post(
        &s,
        "/mcp",
        Some(&sid),
        &json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
    );
    let mut st = common::Stream::open(
        &s.addr,
        "GET",
        "/mcp",
        &[
            ("accept", "text/event-stream"),
            ("mcp-session-id", &sid),
            ("mcp-protocol-version", "2025-06-18"),
        ],
        b"",
    );
    assert_eq!(st.status, 200);
    let call = |name: &str| {
        legacy_post(
            &s,
            "/mcp",
            Some(&sid),
            &json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":name,"arguments":{}}}),
        )
        .json()
    };
    // A second session, on a virtual server that shows only u00.
    let r = legacy_post(&s, "/servers/zero/mcp", None, &init);
    let vsid = r
        .header("mcp-session-id")
        .unwrap_or_else(|| panic!("session: {} {}", r.status, r.text()))
        .to_string();
    legacy_post(
        &s,
        "/servers/zero/mcp",
        Some(&vsid),
        &json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
    );
    let mut vst = common::Stream::open(
        &s.addr,
        "GET",
        "/servers/zero/mcp",
        &[
            ("accept", "text/event-stream"),
            ("mcp-session-id", &vsid),
            ("mcp-protocol-version", "2025-06-18"),
        ],
        b"",
    );
    assert_eq!(vst.status, 200);
    assert_eq!(call("u00__flood")["result"]["content"][0]["text"], "flooding");
    // Calls keep being served while the gateway absorbs the flood.
    for i in 0..50 {
        let name = format!("u{i:02}__tool_00001");
        assert_eq!(call(&name)["result"]["content"][0]["text"], "tool_00001", "{name}");
    }
    st.set_timeout(Duration::from_secs(2));
    let mut seen = Vec::new();
    while let Some(ev) = st.next_event() {
        seen.push(ev);
    }
    assert!(
        !seen.iter().any(|(_, d)| d.contains("list_changed")),
        "2000 list_changed with nothing changed reached the client: {seen:?}"
    );
    // A real change is announced — on a virtual server only when its own view changed.
    call("u07__touch");
    st.set_timeout(Duration::from_secs(10));
    let ev = st.next_event().expect("a list_changed");
    assert!(ev.1.contains("notifications/tools/list_changed"), "{ev:?}");
    vst.set_timeout(Duration::from_secs(2));
    let quiet = vst.next_event();
    assert!(quiet.is_none(), "u07 is not in the view: {quiet:?}");
    call("u00__touch");
    vst.set_timeout(Duration::from_secs(10));
    let ev = vst.next_event().expect("the view's list_changed");
    assert!(ev.1.contains("notifications/tools/list_changed"), "{ev:?}");
}

/// A server that speaks only the stateless 2026-07-28 revision refuses `initialize`; the
/// gateway detects it (`server/discover`), sends the `_meta` envelope on every request and
/// follows its list changes on `subscriptions/listen`.
#[test]
fn a_stateless_upstream_is_spoken_to_in_its_own_era() {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stateless_server.py");
    let d = TempDir::new("stateless");
    let cfg = write_config(
        &d,
        &format!(
            // Pinning off: a changed definition would otherwise be held back (by design).
            "[pinning]\nenabled = false\n[[upstreams]]\nname = \"st\"\ncommand = \"python3\"\nargs = [\"{}\"]\nprefix = \"always\"\n",
            fixture.display()
        ),
    );
    let s = Server::start_in(Some(&d.0), &["--config", &cfg]);
    eventually(20, "the stateless upstream's tools", || {
        tools_at(&s, "/mcp", None).contains(&"st__echo".to_string())
    });
    let r = modern_at(
        &s,
        "/mcp",
        2,
        "tools/call",
        json!({"name": "st__echo", "arguments": {"text": "hi"}}),
        None,
    );
    assert_eq!(r.json()["result"]["content"][0]["text"], "hi", "{}", r.text());
    let diag = s.request("GET", "/api/v1/diagnostics", &[], b"").json();
    let u = diag["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "st")
        .cloned()
        .unwrap();
    assert_eq!(u["protocol_version"], "2026-07-28", "{u}");
    assert_eq!(u["server_info"]["name"], "stateless-fixture", "{u}");
    let disc = modern_at(&s, "/mcp", 3, "server/discover", json!({}), None).json();
    assert!(
        disc["result"]["instructions"]
            .as_str()
            .is_some_and(|i| i.contains("## st\nStateless fixture.")),
        "{disc}"
    );
    // Its list change arrives on the listen stream and the catalog follows.
    let r = modern_at(
        &s,
        "/mcp",
        4,
        "tools/call",
        json!({"name": "st__touch", "arguments": {}}),
        None,
    );
    assert_eq!(r.json()["result"]["content"][0]["text"], "touched", "{}", r.text());
    eventually(5, "the changed description", || {
        let l = modern_at(&s, "/mcp", 5, "tools/list", json!({}), None).json();
        l["result"]["tools"].as_array().is_some_and(|t| {
            t.iter()
                .any(|t| t["name"] == "st__echo" && t["description"] == "Echoes its text (changed).")
        })
    });
}
