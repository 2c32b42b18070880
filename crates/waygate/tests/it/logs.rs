//! Structured logs of the real binary: every line written inside a request carries the
//! request context (correlation id from `X-Request-Id`, trace id from `traceparent`, principal,
//! MCP method, target), and the level changes at runtime through the admin API.

use super::common;

use std::time::{Duration, Instant};

use common::{Server, TempDir};
use serde_json::{json, Value};

fn lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn wait_for(path: &std::path::Path, what: &str) -> Value {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(l) = lines(path).into_iter().find(|l| l["message"] == what) {
            return l;
        }
        assert!(
            Instant::now() < end,
            "no {what:?} line in {}",
            std::fs::read_to_string(path).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn request_lines_carry_the_request_span_and_the_level_changes_live() {
    let d = TempDir::new("logs");
    std::fs::write(
        d.0.join("waygate.toml"),
        "version = 3\n[log]\nbodies = [\"ech?\"]\nmax_body_bytes = 120\n\
         [authz]\ndefault = \"deny\"\n[[policies]]\nname = \"echo-only\"\neffect = \"allow\"\ntools = [\"echo\"]\n",
    )
    .unwrap();
    let log = d.0.join("server.log");
    let (s, admin) = Server::start_logging_to(&d.0, &log);
    let bearer = format!("Bearer {}", admin.expect("admin key"));
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{trace}-00f067aa0ba902b7-01");
    let r = s.post(
        &json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","arguments":{"a":1,"b":2}}}),
        &[
            ("authorization", &bearer),
            ("x-request-id", "corr-42"),
            ("traceparent", &traceparent),
        ],
    );
    assert_eq!(r.header("x-request-id"), Some("corr-42"));
    let denied = wait_for(&log, "authorization: denied");
    let req = &denied["request"];
    assert_eq!(req["id"], "corr-42", "{denied}");
    assert_eq!(req["trace_id"], trace, "{denied}");
    assert!(req["principal"].as_str().unwrap().ends_with(":admin"), "{denied}");
    assert_eq!(req["method"], "tools/call");
    assert_eq!(req["target"], "add");
    assert_eq!(denied["level"], "INFO");

    // Debug lines are off; switch them on at runtime and see one, with its span.
    let get = s.request("GET", "/api/v1/log-level", &[("authorization", &bearer)], b"");
    assert_eq!(get.json()["filter"], "info");
    let bad = s.request(
        "PUT",
        "/api/v1/log-level",
        &[("authorization", &bearer), ("content-type", "application/json")],
        br#"{"filter":"info,[=bogus"}"#,
    );
    assert_eq!(bad.status, 400, "{}", bad.text());
    let put = s.request(
        "PUT",
        "/api/v1/log-level",
        &[("authorization", &bearer), ("content-type", "application/json")],
        br#"{"filter":"debug"}"#,
    );
    assert_eq!((put.status, put.json()["filter"].clone()), (200, json!("debug")));
    s.post(
        &json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"}}}),
        &[("authorization", &bearer), ("x-request-id", "corr-43")],
    );
    let allowed = wait_for(&log, "authorization: allowed");
    assert_eq!(allowed["request"]["id"], "corr-43", "{allowed}");
    assert_eq!(allowed["request"]["target"], "echo");
    // Opt-in body logging for echo: redacted, cut at the configured size, in its request.
    let body = wait_for(&log, "tool call body");
    assert_eq!(body["request"]["id"], "corr-43", "{body}");
    assert_eq!(body["arguments"], r#"{"text":"x"}"#, "{body}");
    s.post(
        &json!({"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","arguments":{"text":"y".repeat(500),"api_key":"hunter2"}}}),
        &[("authorization", &bearer), ("x-request-id", "corr-45")],
    );
    let end = Instant::now() + Duration::from_secs(5);
    let long = loop {
        if let Some(l) = lines(&log)
            .into_iter()
            .find(|l| l["message"] == "tool call body" && l["request"]["id"] == "corr-45")
        {
            break l;
        }
        assert!(Instant::now() < end, "no body line for corr-45");
        std::thread::sleep(Duration::from_millis(50));
    };
    let args = long["arguments"].as_str().unwrap();
    assert!(args.contains("[REDACTED]") && !args.contains("hunter2"), "{args}");
    assert!(long["result"].as_str().unwrap().contains("cut at 120"), "{long}");

    // A 2026-07-28 request carrying its trace context in _meta instead of a header.
    let meta_trace = "0af7651916cd43dd8448eb211c80319c";
    let r = s.post(
        &json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"now","arguments":{},
            "_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},
                     "traceparent": format!("00-{meta_trace}-b7ad6b7169203331-01")}}}),
        &[
            ("authorization", &bearer),
            ("x-request-id", "corr-44"),
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "now"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let hit = lines(&log)
            .into_iter()
            .any(|l| l["request"]["id"] == "corr-44" && l["request"]["trace_id"] == meta_trace);
        if hit {
            break;
        }
        assert!(Instant::now() < end, "no line with the _meta trace id");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Nothing in the log leaks the key.
    let key = bearer.trim_start_matches("Bearer ");
    assert!(!std::fs::read_to_string(&log).unwrap().contains(key));
}
