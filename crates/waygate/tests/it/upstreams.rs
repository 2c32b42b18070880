//! Federation with real upstreams: the `waygate` binary itself as the upstream MCP server,
//! spawned over stdio and reached over Streamable HTTP (with its own API key). Checks that
//! upstream tools are served through the gateway, that a killed upstream is restarted and
//! counted, that `/ready` names a required upstream that is down, and that the trace
//! crosses the gateway into the upstream (its request span is a child of the gateway's).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::common::{bin, eventually, Server, TempDir};
use super::otel::{attr, hex, receiver, spans_of};

const CALLER_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const CALLER_SPAN: &str = "b7ad6b7169203331";

fn call_add(s: &Server, headers: &[(&str, &str)]) -> Value {
    s.post(
        &json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"add","arguments":{"a":2,"b":5}}}),
        headers,
    )
    .json()
}

fn diagnostics(s: &Server, name: &str) -> Value {
    let d = s.request("GET", "/api/v1/diagnostics", &[], b"").json();
    d["upstreams"]
        .as_array()
        .and_then(|a| a.iter().find(|u| u["name"] == name).cloned())
        .unwrap_or(Value::Null)
}

fn otel_section(endpoint: &str, service: &str) -> String {
    format!("[otel]\nendpoint = \"{endpoint}\"\nservice_name = \"{service}\"\nbatch_delay_ms = 200\n")
}

type Spans = std::sync::mpsc::Receiver<(String, opentelemetry_proto::tonic::trace::v1::Span)>;

/// A test directory, an OTLP receiver, and the data dir and config (exporting to the
/// receiver as service "inner") of the Waygate that plays the upstream.
fn traced_setup(tag: &str) -> (TempDir, String, Spans, std::path::PathBuf, std::path::PathBuf) {
    let (otlp, rx) = receiver();
    let d = TempDir::new(tag);
    let inner_data = d.0.join("inner");
    std::fs::create_dir_all(&inner_data).unwrap();
    let inner_cfg = d.0.join("inner.toml");
    std::fs::write(&inner_cfg, format!("version = 3\n{}", otel_section(&otlp, "inner"))).unwrap();
    (d, otlp, rx, inner_data, inner_cfg)
}

/// `tools/list` through the gateway names every one of `tools`.
fn assert_lists(s: &Server, tools: &[&str]) {
    let list = s
        .post(&json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}), &[])
        .json();
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(tools.iter().all(|t| names.contains(t)), "{list}");
}

/// A 2026-07-28 `tools/call` (id 9) with a progress token, answered as SSE: the progress
/// notifications carrying the caller's token (asserted to be at least `min`) and the
/// final message (asserted to answer id 9).
fn call_with_progress(s: &Server, tool: &str, args: Value, token: &str, min: usize) -> Value {
    const MODERN: &str = "2026-07-28";
    let body = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {
        "name": tool, "arguments": args,
        "_meta": {"io.modelcontextprotocol/protocolVersion": MODERN,
                  "io.modelcontextprotocol/clientCapabilities": {}, "progressToken": token}}});
    let r = s.post(
        &body,
        &[
            ("mcp-protocol-version", MODERN),
            ("mcp-method", "tools/call"),
            ("mcp-name", tool),
        ],
    );
    let msgs = r.sse_messages();
    let progress: Vec<&Value> = msgs
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert!(progress.len() >= min, "{} {}", r.status, r.text());
    assert!(
        progress.iter().all(|p| p["params"]["progressToken"] == token),
        "{msgs:?}"
    );
    let last = msgs.last().cloned().unwrap_or_default();
    assert_eq!(last["id"], 9, "{msgs:?}");
    last
}

/// Direct children of `pid` (the spawned upstream processes).
pub(crate) fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Ok(s) = std::fs::read_to_string(task.path().join("children")) {
            out.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
        }
    }
    out
}

/// One trace across the gateway into the upstream: caller → gateway request span →
/// gateway call span (`execute inner`) → the upstream's request span.
fn assert_trace_crosses(rx: &Spans) {
    let mut seen = Vec::new();
    // Gateway: request + plugin call; upstream: request + plugin call.
    let spans = spans_of(rx, CALLER_TRACE, 4, &mut seen);
    let of = |service: &str, name: &str| -> Vec<_> {
        seen.iter()
            .filter(|(k, s)| k.contains(service) && hex(&s.trace_id) == CALLER_TRACE && s.name == name)
            .map(|(_, s)| s.clone())
            .collect()
    };
    let gw = of("gateway", "tools/call add");
    let call = of("gateway", "execute inner");
    let up = of("inner", "tools/call add");
    assert_eq!(gw.len(), 1, "gateway request span: {spans:?}");
    assert_eq!(call.len(), 1, "gateway call span: {spans:?}");
    assert_eq!(up.len(), 1, "upstream request span: {spans:?}");
    assert_eq!(
        hex(&gw[0].parent_span_id),
        CALLER_SPAN,
        "the gateway continues the caller's span"
    );
    assert_eq!(hex(&call[0].parent_span_id), hex(&gw[0].span_id));
    // The call to the upstream is a CLIENT span naming it.
    assert_eq!(call[0].kind, 3, "SPAN_KIND_CLIENT: {:?}", call[0]);
    assert!(attr(&call[0], "waygate.upstream").contains("inner"), "{:?}", call[0]);
    assert!(!attr(&call[0], "network.transport").is_empty(), "{:?}", call[0]);
    assert_eq!(
        hex(&up[0].parent_span_id),
        hex(&call[0].span_id),
        "the upstream's span is a child of the gateway's call span"
    );
}

#[test]
fn stdio_upstream_is_served_restarted_observed_and_traced() {
    let (d, otlp, rx, inner_data, inner_cfg) = traced_setup("up-stdio");
    let cfg = d.0.join("gateway.toml");
    std::fs::write(
        &cfg,
        format!(
            "version = 3\n[plugins]\ndemo = false\n{}\
             [[upstreams]]\nname = \"inner\"\ntransport = \"stdio\"\ncommand = \"{}\"\n\
             args = [\"serve\", \"--stdio\", \"--config\", \"{}\", \"--data-dir\", \"{}\"]\n\
             required = true\nhealth_interval_secs = 1\n",
            otel_section(&otlp, "gateway"),
            bin(),
            inner_cfg.display(),
            inner_data.display()
        ),
    )
    .unwrap();
    let gw_data = d.0.join("gw");
    std::fs::create_dir_all(&gw_data).unwrap();
    // Ready only once the required upstream is connected.
    let s = Server::start_in(Some(&gw_data), &["--config", cfg.to_str().unwrap()]);
    assert_lists(&s, &["add", "echo"]);

    // A call crosses into the upstream over stdio; the trace goes along in `_meta`.
    let tp = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let r = call_add(&s, &[("traceparent", tp.as_str())]);
    assert_eq!(r["result"]["structuredContent"]["sum"], 7.0, "{r}");
    assert_trace_crosses(&rx);

    // Arguments the upstream rejects come back as its error, not a gateway failure.
    let bad = s
        .post(
            &json!({"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"add","arguments":{"a":"x"}}}),
            &[],
        )
        .json();
    assert!(bad.get("error").is_some() || bad["result"]["isError"] == true, "{bad}");

    // Kill the upstream process: the supervisor restarts it and counts the restart.
    let kids = children(s.pid());
    assert_eq!(kids.len(), 1, "one upstream process: {kids:?}");
    let _ = std::process::Command::new("kill")
        .args(["-9", &kids[0].to_string()])
        .status();
    eventually(20, "the upstream restarted", || {
        let u = diagnostics(&s, "inner");
        u["restarts"] == 1 && u["state"] == "up"
    });
    assert_ne!(children(s.pid()), kids, "a new process");
    let u = diagnostics(&s, "inner");
    assert!(
        u["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("exited with signal: 9"),
        "{u}"
    );
    assert_eq!(u["server_info"]["name"], "waygate", "{u}");
    let r = call_add(&s, &[]);
    assert_eq!(r["result"]["structuredContent"]["sum"], 7.0, "{r}");

    // Metrics: state, restarts, RED per upstream; the admin list shows the tier.
    let m = s.request("GET", "/metrics", &[], b"").text();
    assert!(m.contains("waygate_upstream_up{upstream=\"inner\"} 1"), "{m}");
    assert!(
        m.contains("waygate_upstream_restarts_total{upstream=\"inner\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("waygate_upstream_requests_in_flight{upstream=\"inner\"} 0"),
        "{m}"
    );
    assert!(
        m.contains("waygate_upstream_requests_total{upstream=\"inner\",outcome=\"ok\"}"),
        "{m}"
    );
    assert!(
        m.contains("waygate_upstream_request_duration_seconds_count{upstream=\"inner\"}"),
        "{m}"
    );
    let plugins = s.request("GET", "/api/v1/plugins", &[], b"").json();
    let row = plugins["plugins"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["name"] == "inner").cloned())
        .unwrap_or_else(|| panic!("{plugins}"));
    assert_eq!(row["tier"], "upstream", "{row}");
    assert_eq!(row["state"], "up", "{row}");
}

#[test]
fn http_upstream_gets_its_credentials_and_the_trace() {
    let (d, otlp, rx, inner_data, inner_cfg) = traced_setup("up-http");
    // The upstream requires an API key, as a production MCP server would.
    let (inner, key) = Server::start_auth_with(&inner_data, &["--config", inner_cfg.to_str().unwrap()]);
    let key = key.expect("the upstream's first admin key");
    let cfg = d.0.join("gateway.toml");
    std::fs::write(
        &cfg,
        format!(
            "version = 3\n[plugins]\ndemo = false\n{}\
             [[upstreams]]\nname = \"inner\"\ntransport = \"http\"\nurl = \"{}\"\nrequired = true\n\
             headers = {{ Authorization = \"Bearer {key}\" }}\npassthrough_headers = [\"authorization\", \"host\"]\n\
             [[upstreams]]\nname = \"wrongkey\"\ntransport = \"http\"\nurl = \"{}\"\n\
             headers = {{ Authorization = \"Bearer wg_not_a_key\" }}\n",
            otel_section(&otlp, "gateway"),
            inner.url(),
            inner.url(),
        ),
    )
    .unwrap();
    let gw_data = d.0.join("gw");
    std::fs::create_dir_all(&gw_data).unwrap();
    let s = Server::start_in(Some(&gw_data), &["--config", cfg.to_str().unwrap()]);
    let tp = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let r = call_add(&s, &[("traceparent", tp.as_str())]);
    assert_eq!(r["result"]["structuredContent"]["sum"], 7.0, "{r}");
    assert_trace_crosses(&rx);
    let u = diagnostics(&s, "inner");
    assert_eq!(u["state"], "up", "{u}");
    assert_eq!(u["transport"], "http", "{u}");
    // The caller's correlation id reaches the upstream: its audit trail carries it.
    let r = call_add(&s, &[("x-request-id", "fed-corr-42")]);
    assert_eq!(r["result"]["structuredContent"]["sum"], 7.0, "{r}");
    let inner_dir = inner_data.to_str().unwrap();
    eventually(15, "the upstream's audit row with the caller's correlation id", || {
        let (_, out, _) = super::common::cli(&["audit", "tail", "-n", "20", "--data-dir", inner_dir]);
        out.contains("fed-corr-42")
    });
    // A client header named in passthrough_headers replaces the configured one for that
    // call: the upstream refuses the caller's bad token, and the connection stays up.
    let r = call_add(&s, &[("authorization", "Bearer wg_callers_own_token")]);
    assert_eq!(r["result"]["isError"], true, "{r}");
    assert!(r.to_string().contains("401"), "{r}");
    let r = call_add(&s, &[]);
    assert_eq!(r["result"]["structuredContent"]["sum"], 7.0, "{r}");
    assert_eq!(diagnostics(&s, "inner")["restarts"], 0);
    // The upstream with a wrong key is reported with the upstream's answer, not served.
    let w = diagnostics(&s, "wrongkey");
    assert_ne!(w["state"], "up", "{w}");
    assert!(w["last_error"].as_str().unwrap_or_default().contains("401"), "{w}");
}

#[test]
fn a_required_upstream_that_is_down_makes_ready_answer_503_with_the_reason() {
    let d = TempDir::new("up-ready");
    let cfg = d.0.join("gateway.toml");
    std::fs::write(
        &cfg,
        "version = 3\n[[upstreams]]\nname = \"broken\"\ntransport = \"stdio\"\ncommand = \"/nonexistent/mcp-server\"\nrequired = true\n\
         [[upstreams]]\nname = \"optional\"\ntransport = \"stdio\"\ncommand = \"/nonexistent/other\"\n\
         [[upstreams]]\nname = \"legacy\"\ntransport = \"sse\"\nurl = \"http://127.0.0.1:9/sse\"\n",
    )
    .unwrap();
    let s = Server::start_unready(&d.0, &["--config", cfg.to_str().unwrap()]);
    let mut last = String::new();
    eventually(15, "/ready to name the broken upstream", || {
        let r = s.request("GET", "/ready", &[], b"");
        last = r.text();
        r.status == 503 && last.contains("required upstream broken") && last.contains("cannot start")
    });
    assert!(!last.contains("optional"), "only required upstreams count: {last}");
    assert_eq!(s.request("GET", "/health", &[], b"").status, 200);
    // Everything else keeps serving.
    let r = call_add(&s, &[]);
    assert_eq!(r["result"]["structuredContent"]["sum"], 7.0, "{r}");
    let u = diagnostics(&s, "broken");
    assert!(u["failed_connects"].as_u64().unwrap_or(0) >= 1, "{u}");
    // An upstream that cannot even be created says why.
    // A legacy SSE upstream is served by its own client; this one is unreachable.
    let l = diagnostics(&s, "legacy");
    assert_eq!(l["transport"], "sse", "{l}");
    assert_ne!(l["state"], "up", "{l}");
}

#[test]
fn progress_resources_prompts_timeouts_and_a_server_that_is_not_mcp() {
    let d = TempDir::new("up-relay");
    let inner_data = d.0.join("inner");
    std::fs::create_dir_all(&inner_data).unwrap();
    let cfg = d.0.join("gateway.toml");
    std::fs::write(
        &cfg,
        format!(
            "version = 3\n[plugins]\ndemo = false\n\
             [[upstreams]]\nname = \"inner\"\ntransport = \"stdio\"\ncommand = \"{}\"\n\
             args = [\"serve\", \"--stdio\", \"--data-dir\", \"{}\"]\nrequired = true\ntimeout_secs = 1\n\
             [[upstreams]]\nname = \"garbage\"\ntransport = \"stdio\"\ncommand = \"sh\"\nera = \"session\"\n\
             args = [\"-c\", \"echo not json; echo '{{\\\"jsonrpc\\\":\\\"2.0\\\",\\\"id\\\":1,\\\"result\\\":{{}}}}'; echo oops >&2; sleep 5\"]\n",
            bin(),
            inner_data.display()
        ),
    )
    .unwrap();
    let gw_data = d.0.join("gw");
    std::fs::create_dir_all(&gw_data).unwrap();
    let s = Server::start_in(Some(&gw_data), &["--config", cfg.to_str().unwrap()]);

    // Progress from the upstream reaches the caller under the caller's own token.
    let last = call_with_progress(&s, "countdown", json!({"n": 3}), "mine", 3);
    assert!(last["result"]["content"].is_array(), "{last}");

    // Resources and prompts of the upstream are served too.
    let read = s
        .post(
            &json!({"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"demo://readme"}}),
            &[],
        )
        .json();
    assert!(
        read["result"]["contents"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("Waygate demo plugin"),
        "{read}"
    );
    let prompt = s
        .post(
            &json!({"jsonrpc":"2.0","id":3,"method":"prompts/get","params":{"name":"greet","arguments":{"name":"Ada"}}}),
            &[],
        )
        .json();
    assert!(prompt["result"]["messages"].is_array(), "{prompt}");

    // A call slower than the upstream's timeout is the caller's tool error; the upstream
    // is told to cancel and stays connected.
    let t = Instant::now();
    let slow = s
        .post(
            &json!({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"countdown","arguments":{"n":30}}}),
            &[],
        )
        .json();
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "answered at the timeout, not after 3 s"
    );
    assert_eq!(slow["result"]["isError"], true, "{slow}");
    let text = slow["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(text.contains("upstream inner") && text.contains("1000 ms"), "{text}");
    assert_eq!(diagnostics(&s, "inner")["state"], "up");
    let r = call_add(&s, &[]);
    assert_eq!(r["result"]["structuredContent"]["sum"], 7.0, "{r}");

    // A server that is not MCP is reported with what it did, and serves nothing.
    let mut g = Value::Null;
    eventually(10, "the garbage upstream's error", || {
        g = diagnostics(&s, "garbage");
        g["last_error"].as_str().is_some_and(|e| e.contains("protocolVersion"))
    });
    assert_eq!(g["state"], "connecting", "{g}");
    assert_eq!(g["tools"], 0, "{g}");
    assert_eq!(s.request("GET", "/health", &[], b"").status, 200);
}

/// `(node, server-everything's dist/index.js)` from the environment `.ci/run` sets up, or
/// `None` (skip) unless `WAYGATE_TEST_REQUIRE_THIRD_PARTY` makes it a failure.
pub(crate) fn everything_server() -> Option<(String, String)> {
    match (
        std::env::var("WAYGATE_TEST_NODE"),
        std::env::var("WAYGATE_TEST_EVERYTHING"),
    ) {
        (Ok(node), Ok(js)) => Some((node, js)),
        _ => {
            assert!(
                std::env::var_os("WAYGATE_TEST_REQUIRE_THIRD_PARTY").is_none(),
                "WAYGATE_TEST_NODE and WAYGATE_TEST_EVERYTHING must name node and server-everything"
            );
            eprintln!("skipped: set WAYGATE_TEST_NODE and WAYGATE_TEST_EVERYTHING (see .ci/run)");
            None
        }
    }
}

/// A third-party upstream: the official reference server `@modelcontextprotocol/server-everything`
/// (TypeScript SDK) over stdio — tools served through the gateway, progress relayed, its
/// `list_changed` before the handshake answer tolerated, and its environment limited to the
/// basics plus the configured variables.
#[test]
fn third_party_reference_server_behind_the_gateway() {
    let Some((node, js)) = everything_server() else { return };
    let d = TempDir::new("up-everything");
    let cfg = d.0.join("gateway.toml");
    std::fs::write(
        &cfg,
        format!(
            "version = 3\n[plugins]\ndemo = false\n\
             [[upstreams]]\nname = \"everything\"\ntransport = \"stdio\"\ncommand = \"{node}\"\n\
             args = [\"{js}\", \"stdio\"]\nenv = {{ EV_TOKEN = \"tok-123\" }}\nrequired = true\n"
        ),
    )
    .unwrap();
    let s = Server::start_in(Some(&d.0), &["--config", cfg.to_str().unwrap()]);
    assert_lists(&s, &["echo", "get-sum"]);
    let call = |id: i64, name: &str, args: Value| {
        s.post(
            &json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":name,"arguments":args}}),
            &[],
        )
        .json()
    };
    let r = call(2, "echo", json!({"message": "through the gateway"}));
    assert_eq!(r["result"]["content"][0]["text"], "Echo: through the gateway", "{r}");
    let r = call(3, "get-sum", json!({"a": 2, "b": 5}));
    assert!(r.to_string().contains("is 7"), "{r}");
    // The child sees the configured variable and none of the gateway's own environment.
    let r = call(4, "get-env", json!({}));
    let env = r["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(env.contains("\"EV_TOKEN\": \"tok-123\""), "{env}");
    assert!(!env.contains("CARGO_") && !env.contains("WAYGATE_"), "{env}");
    // Progress from the upstream reaches the caller under the caller's token.
    call_with_progress(
        &s,
        "trigger-long-running-operation",
        json!({"duration": 1, "steps": 3}),
        "p-ev",
        2,
    );
    let u = diagnostics(&s, "everything");
    assert_eq!(u["server_info"]["name"], "mcp-servers/everything", "{u}");
    assert_eq!(u["state"], "up", "{u}");
}

/// `waygate serve` on a fixed loopback address (so it can come back on the same one).
fn serve_at(addr: &str, data: &std::path::Path) -> std::process::Child {
    let child = std::process::Command::new(bin())
        .args(["serve", "--no-auth", "--no-audit", "--listen", addr, "--data-dir"])
        .arg(data)
        .env("WAYGATE_LOG", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    eventually(15, "the upstream to listen", || {
        std::net::TcpStream::connect(addr).is_ok() && super::common::http(addr, "GET", "/ready", &[], b"").status == 200
    });
    child
}

/// A remote upstream that goes away and comes back: calls fail with a clear tool error while
/// it is gone, the supervisor notices (failed request or ping), reconnects with a new session
/// once it is back, counts the restart, and the tools work again.
#[test]
fn http_upstream_that_restarts_is_reconnected() {
    let d = TempDir::new("up-http-restart");
    let inner_data = d.0.join("inner");
    std::fs::create_dir_all(&inner_data).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut inner = serve_at(&addr, &inner_data);
    let cfg = d.0.join("gateway.toml");
    std::fs::write(
        &cfg,
        format!(
            "version = 3\n[plugins]\ndemo = false\n\
             [[upstreams]]\nname = \"inner\"\ntransport = \"http\"\nurl = \"http://{addr}/mcp\"\n\
             health_interval_secs = 1\n"
        ),
    )
    .unwrap();
    let gw_data = d.0.join("gw");
    std::fs::create_dir_all(&gw_data).unwrap();
    let s = Server::start_in(Some(&gw_data), &["--config", cfg.to_str().unwrap()]);
    eventually(10, "the upstream's tools", || {
        call_add(&s, &[])["result"]["structuredContent"]["sum"] == 7.0
    });
    let _ = inner.kill();
    let _ = inner.wait();
    let r = call_add(&s, &[]);
    assert_eq!(r["result"]["isError"], true, "{r}");
    assert!(r.to_string().contains("upstream inner"), "{r}");
    eventually(10, "the gateway to notice", || {
        diagnostics(&s, "inner")["state"] == "reconnecting"
    });
    let mut inner = serve_at(&addr, &inner_data);
    eventually(40, "the reconnect", || diagnostics(&s, "inner")["state"] == "up");
    assert_eq!(diagnostics(&s, "inner")["restarts"], 1);
    let r = call_add(&s, &[]);
    assert_eq!(r["result"]["structuredContent"]["sum"], 7.0, "{r}");
    let _ = inner.kill();
    let _ = inner.wait();
}

/// Upstreams follow the config file: one added while serving joins the catalog (its `add`
/// collides with the demo plugin's and is exposed as `inner__add`); removed, its tools leave
/// the catalog and its process is stopped — no orphan.
#[test]
fn upstreams_follow_config_reloads_without_orphans() {
    let d = TempDir::new("up-reload");
    let inner_data = d.0.join("inner");
    std::fs::create_dir_all(&inner_data).unwrap();
    let cfg = d.0.join("gateway.toml");
    std::fs::write(&cfg, "version = 3\n").unwrap();
    let gw_data = d.0.join("gw");
    std::fs::create_dir_all(&gw_data).unwrap();
    let s = Server::start_in(Some(&gw_data), &["--config", cfg.to_str().unwrap()]);
    assert!(children(s.pid()).is_empty());
    std::fs::write(
        &cfg,
        format!(
            "version = 3\n[[upstreams]]\nname = \"inner\"\ntransport = \"stdio\"\ncommand = \"{}\"\n\
             args = [\"serve\", \"--stdio\", \"--data-dir\", \"{}\"]\n",
            bin(),
            inner_data.display()
        ),
    )
    .unwrap();
    let call = |name: &str| {
        s.post(
            &json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":name,"arguments":{"a":2,"b":5}}}),
            &[],
        )
        .json()
    };
    eventually(20, "the added upstream's tools", || {
        call("inner__add")["result"]["structuredContent"]["sum"] == 7.0
    });
    assert_eq!(children(s.pid()).len(), 1);
    assert_eq!(
        call("add")["result"]["structuredContent"]["sum"],
        7.0,
        "the demo plugin keeps its name"
    );
    std::fs::write(&cfg, "version = 3\n").unwrap();
    eventually(20, "the removed upstream's tools to go", || {
        call("inner__add").get("error").is_some()
    });
    eventually(10, "its process to stop", || children(s.pid()).is_empty());
}
