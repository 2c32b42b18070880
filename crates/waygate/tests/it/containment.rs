//! Failure is visible and contained: an upstream that stays down leaves the catalog (with
//! `list_changed`) and comes back, a full one queues then says "busy", a wedged one trips
//! the circuit breaker, a crash-looping one waits — and none of it costs other callers.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::catalog::{eventually, write_config};
use crate::common::{Server, Stream, TempDir};

const ERA: &str = "2025-06-18";

pub(crate) fn faulty() -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/faulty_server.py")
        .to_str()
        .unwrap()
        .to_string()
}

/// `[[upstreams]]` running the faulty server with `args`, plus `extra` keys.
pub(crate) fn upstream(name: &str, args: &[&str], extra: &str) -> String {
    let mut all = vec![faulty()];
    all.extend(args.iter().map(|a| a.to_string()));
    format!(
        "[[upstreams]]\nname = \"{name}\"\ncommand = \"python3\"\nargs = {}\nprefix = \"always\"\n{extra}\n",
        serde_json::to_string(&all).unwrap()
    )
}

fn call(s: &Server, id: i64, tool: &str, args: Value) -> Value {
    s.post(
        &json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":args}}),
        &[],
    )
    .json()
}

fn text(r: &Value) -> String {
    r["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn tools(s: &Server) -> Vec<String> {
    let r = s
        .post(&json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}), &[])
        .json();
    r["result"]["tools"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn diagnostics(s: &Server, name: &str) -> Value {
    let d = s.request("GET", "/api/v1/diagnostics", &[], b"").json();
    d["upstreams"]
        .as_array()
        .and_then(|a| a.iter().find(|u| u["name"] == name).cloned())
        .unwrap_or(Value::Null)
}

fn ready(s: &Server) -> (u16, Value) {
    let r = s.request("GET", "/ready", &[], b"");
    (r.status, r.json())
}

fn metric(s: &Server, line_start: &str) -> Option<f64> {
    let text = s.request("GET", "/metrics", &[], b"").text();
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A session with a GET stream, to hear `list_changed`.
fn listen(s: &Server) -> Stream {
    let sid = s.initialize(ERA, json!({}));
    let mut st = Stream::open(
        &s.addr,
        "GET",
        "/mcp",
        &[
            ("accept", "text/event-stream"),
            ("mcp-session-id", &sid),
            ("mcp-protocol-version", ERA),
        ],
        b"",
    );
    assert_eq!(st.status, 200);
    st.set_timeout(Duration::from_secs(20));
    st
}

fn next_tools_changed(st: &mut Stream) {
    while let Some((_, data)) = st.next_event() {
        if data.contains("notifications/tools/list_changed") {
            return;
        }
    }
    panic!("no tools/list_changed");
}

/// An upstream that stays down longer than `withdraw_after_secs` leaves the catalog
/// (clients told), `/ready` says degraded without failing, the other tools keep serving;
/// when it starts again its tools come back (clients told again).
#[test]
fn an_upstream_that_stays_down_is_withdrawn_and_comes_back() {
    let d = TempDir::new("withdraw");
    let gate = d.0.join("down");
    let cfg = write_config(
        &d,
        &format!(
            "{}{}",
            upstream(
                "flaky",
                &["--gate", gate.to_str().unwrap()],
                "withdraw_after_secs = 1\nmax_restarts = 0\n"
            ),
            upstream("steady", &[], "")
        ),
    );
    let s = Server::start_in(Some(&d.0), &["--config", &cfg]);
    eventually(15, "both upstreams listed", || {
        let t = tools(&s);
        t.contains(&"flaky__echo".to_string()) && t.contains(&"steady__echo".to_string())
    });
    assert_eq!(ready(&s).1["status"], "ready");
    let mut st = listen(&s);

    // It goes down and cannot start again.
    std::fs::write(&gate, b"").unwrap();
    let r = call(&s, 2, "flaky__crash", json!({}));
    assert_eq!(r["result"]["isError"], true, "{r}");
    let t0 = Instant::now();
    next_tools_changed(&mut st);
    assert!(
        t0.elapsed() >= Duration::from_millis(700),
        "withdrawn only after the grace period"
    );
    let listed = tools(&s);
    assert!(!listed.iter().any(|t| t.starts_with("flaky__")), "{listed:?}");
    assert!(listed.contains(&"steady__echo".to_string()), "{listed:?}");
    assert_eq!(text(&call(&s, 3, "steady__echo", json!({}))), "echo");
    let u = diagnostics(&s, "flaky");
    assert_eq!(u["withdrawn"], true, "{u}");
    let (status, body) = ready(&s);
    assert_eq!(status, 200, "an optional upstream does not make the gateway unready");
    assert_eq!(body["status"], "degraded", "{body}");
    assert!(body["degraded"][0].as_str().unwrap().contains("flaky"), "{body}");
    assert_eq!(
        metric(&s, "waygate_upstream_withdrawals_total{upstream=\"flaky\"}"),
        Some(1.0)
    );
    assert_eq!(metric(&s, "waygate_upstream_withdrawn{upstream=\"flaky\"}"), Some(1.0));

    // It can start again: back in the catalog, clients told.
    std::fs::remove_file(&gate).unwrap();
    next_tools_changed(&mut st);
    eventually(10, "flaky's tools back", || {
        tools(&s).contains(&"flaky__echo".to_string())
    });
    assert_eq!(text(&call(&s, 4, "flaky__echo", json!({}))), "echo");
    assert_eq!(diagnostics(&s, "flaky")["withdrawn"], false);
    assert_eq!(ready(&s).1["status"], "ready");
}

/// `max_concurrency` calls run, `max_queue` more wait, the next is refused at once with a
/// "busy" error naming the limits — and the queued call still runs.
#[test]
fn a_full_upstream_queues_then_says_busy() {
    let d = TempDir::new("busy");
    let cfg = write_config(&d, &upstream("small", &[], "max_concurrency = 1\nmax_queue = 1\n"));
    let s = std::sync::Arc::new(Server::start_in(Some(&d.0), &["--config", &cfg]));
    eventually(15, "the upstream listed", || {
        tools(&s).contains(&"small__slow".to_string())
    });
    let spawn = |id: i64| {
        let s = s.clone();
        std::thread::spawn(move || call(&s, id, "small__slow", json!({"secs": 1.5})))
    };
    let running = spawn(2);
    eventually(5, "one call in flight", || diagnostics(&s, "small")["in_flight"] == 1);
    let queued = spawn(3);
    eventually(5, "one call queued", || diagnostics(&s, "small")["queued"] == 1);
    let t = Instant::now();
    let busy = call(&s, 4, "small__slow", json!({"secs": 1.5}));
    assert!(t.elapsed() < Duration::from_millis(500), "refused at once");
    assert_eq!(busy["result"]["isError"], true, "{busy}");
    let msg = text(&busy);
    assert!(msg.contains("busy") && msg.contains("max_concurrency = 1"), "{msg}");
    assert_eq!(text(&running.join().unwrap()), "slept 1.5");
    assert_eq!(text(&queued.join().unwrap()), "slept 1.5");
    assert_eq!(
        metric(
            &s,
            "waygate_upstream_calls_refused_total{upstream=\"small\",reason=\"busy\"}"
        ),
        Some(1.0)
    );
}

/// An upstream that stops answering trips its circuit breaker after `breaker_failures`
/// timeouts: calls are refused at once while it is open, one trial call after the
/// cooldown closes it. A stdio server that keeps dying is crash-looping and waits.
/// Neither slows down the other upstream.
#[test]
fn a_wedged_upstream_trips_the_breaker_and_a_crash_looping_one_waits() {
    let d = TempDir::new("breaker");
    let cfg = write_config(
        &d,
        &format!(
            "{}{}{}",
            upstream(
                "wedged",
                &[],
                "timeout_secs = 1\nbreaker_failures = 2\nbreaker_cooldown_secs = 2\n"
            ),
            upstream(
                "looping",
                &["--die-after", "0.2"],
                "max_restarts = 2\nrestart_window_secs = 60\n"
            ),
            upstream("steady", &[], "")
        ),
    );
    let s = Server::start_in(Some(&d.0), &["--config", &cfg]);
    eventually(15, "the upstreams listed", || {
        let t = tools(&s);
        t.contains(&"wedged__hang".to_string()) && t.contains(&"steady__echo".to_string())
    });
    for id in [2, 3] {
        let r = call(&s, id, "wedged__hang", json!({}));
        assert_eq!(r["result"]["isError"], true, "{r}");
        assert!(text(&r).contains("no answer within"), "{r}");
    }
    let t = Instant::now();
    let r = call(&s, 4, "wedged__echo", json!({}));
    assert!(t.elapsed() < Duration::from_millis(500), "refused at once while open");
    assert!(text(&r).contains("circuit breaker"), "{r}");
    assert_eq!(diagnostics(&s, "wedged")["circuit"], "open");
    assert_eq!(
        metric(&s, "waygate_upstream_circuit_open{upstream=\"wedged\"}"),
        Some(1.0)
    );
    // The other upstream is untouched.
    let t = Instant::now();
    assert_eq!(text(&call(&s, 5, "steady__echo", json!({}))), "echo");
    assert!(t.elapsed() < Duration::from_millis(500));
    // After the cooldown one trial goes through; it answers, so the circuit closes.
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(text(&call(&s, 6, "wedged__echo", json!({}))), "echo");
    assert_eq!(diagnostics(&s, "wedged")["circuit"], "closed");
    assert_eq!(text(&call(&s, 7, "wedged__echo", json!({}))), "echo");

    // The crash-looping server: visible as such, with when it starts next.
    eventually(20, "crash-looping", || {
        diagnostics(&s, "looping")["state"] == "crash-looping"
    });
    let u = diagnostics(&s, "looping");
    assert!(u["note"].as_str().unwrap_or_default().contains("next start in"), "{u}");
    let (status, body) = ready(&s);
    assert_eq!(status, 200);
    assert!(body["degraded"].to_string().contains("crash-looping"), "{body}");
    let restarts = u["restarts"].as_u64().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        diagnostics(&s, "looping")["restarts"].as_u64().unwrap(),
        restarts,
        "no restart while it waits"
    );
}

/// A stdio server that never completes its handshake is stopped with each attempt given
/// up: before, every attempt left one more process (and its pipes) behind.
#[test]
fn a_server_that_never_answers_its_handshake_leaves_no_processes_behind() {
    let d = TempDir::new("silent-upstream");
    let marker = format!("waygate-silent-{}", std::process::id());
    let cfg = write_config(
        &d,
        &format!(
            "[plugins]\ndemo = false\n[[upstreams]]\nname = \"silent\"\ncommand = \"python3\"\n\
             args = [\"-c\", \"import time; time.sleep(120)\", \"{marker}\"]\nconnect_timeout_secs = 1\n"
        ),
    );
    let s = Server::start_in(Some(&d.0), &["--config", &cfg]);
    let alive = || {
        std::fs::read_dir("/proc")
            .map(|it| {
                it.filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
                    .filter(|c| String::from_utf8_lossy(c).contains(&marker))
                    .count()
            })
            .unwrap_or(0)
    };
    std::thread::sleep(Duration::from_secs(12));
    let n = alive();
    assert!(
        n <= 2,
        "{n} silent servers still running after 12 s of failed handshakes"
    );
    drop(s);
}
