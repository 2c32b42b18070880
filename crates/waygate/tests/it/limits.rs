//! Rate limits of the real binary: per caller over HTTP (429 + Retry-After) and per tool
//! (an `isError` result telling the model when to retry).

use super::common;

use common::{Server, TempDir};
use serde_json::json;

#[test]
fn caller_and_tool_limits() {
    let d = TempDir::new("limits");
    let cfg = d.0.join("waygate.toml");
    std::fs::write(
        &cfg,
        "version = 3\n[limits]\nrequests_per_second = 0.5\nburst = 8\n[limits.tools.add]\nper_second = 0.5\nburst = 2\n",
    )
    .unwrap();
    let s = Server::start_in(Some(&d.0), &["--config", cfg.to_str().unwrap()]);
    let add = |id: i64| {
        s.post(
            &json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"add","arguments":{"a":1,"b":2}}}),
            &[],
        )
    };
    // Tool quota: two calls, then a tool error naming the retry delay.
    assert_eq!(add(1).json()["result"]["structuredContent"]["sum"], 3.0);
    assert_eq!(add(2).json()["result"]["structuredContent"]["sum"], 3.0);
    let limited = add(3).json();
    assert_eq!(limited["result"]["isError"], true, "{limited}");
    assert!(limited["result"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("retry after"));
    // Counted by kind and by the rule that refused it.
    let m = s.request("GET", "/metrics", &[], b"").text();
    assert!(m.contains("waygate_rate_limited_total{limit=\"tool\"} 1"), "{m}");
    assert!(
        m.contains("waygate_rate_limited_by_rule_total{limit=\"tool\",rule=\"add\"} 1"),
        "{m}"
    );
    // Other tools are not affected by the add quota; the caller budget (8) runs out next.
    let mut statuses = Vec::new();
    for i in 0..8 {
        let r = s.post(
            &json!({"jsonrpc":"2.0","id":10+i,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"}}}),
            &[],
        );
        statuses.push((r.status, r.header("retry-after").map(str::to_string)));
    }
    assert!(statuses.iter().take(5).all(|(s, _)| *s == 200), "{statuses:?}");
    let (status, retry) = statuses.last().unwrap();
    assert_eq!(*status, 429, "{statuses:?}");
    assert!(retry.as_deref().unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(
        s.request("GET", "/health", &[], b"").status,
        200,
        "health is not rate limited"
    );
}

#[test]
fn tool_timeouts_concurrency_caps_response_caps_and_costs() {
    let d = TempDir::new("limits-tools");
    let cfg = d.0.join("waygate.toml");
    std::fs::write(
        &cfg,
        "version = 3\n[limits]\nrequests_per_second = 0.01\nburst = 20\n\
         [limits.tools.countdown]\ntimeout_ms = 300\nmax_concurrent = 1\n\
         [limits.tools.echo]\nmax_response_bytes = 400\ncost = 5\n",
    )
    .unwrap();
    let s = Server::start_in(Some(&d.0), &["--config", cfg.to_str().unwrap()]);
    // Timeout: a 2 s countdown is stopped at 300 ms with a tool error naming the limit.
    let started = std::time::Instant::now();
    let r = s
        .post(
            &json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"countdown","arguments":{"n":20}}}),
            &[],
        )
        .json();
    assert!(started.elapsed() < std::time::Duration::from_millis(1500));
    assert_eq!(r["result"]["isError"], true, "{r}");
    assert!(
        r["result"]["content"][0]["text"].as_str().unwrap().contains("300 ms"),
        "{r}"
    );
    // Concurrency: while one countdown runs, a second is refused at once.
    let addr = s.addr.clone();
    let first = std::thread::spawn(move || {
        common::http(
            &addr,
            "POST",
            "/mcp",
            &[("content-type", "application/json"), ("accept", "application/json")],
            json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"countdown","arguments":{"n":2}}})
                .to_string()
                .as_bytes(),
        )
    });
    std::thread::sleep(std::time::Duration::from_millis(80));
    let second = s
        .post(
            &json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"countdown","arguments":{"n":2}}}),
            &[],
        )
        .json();
    assert!(
        second["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("already running 1"),
        "{second}"
    );
    let first = first.join().unwrap().json();
    assert!(
        first["result"]["isError"].is_null() || first["result"]["isError"] == false,
        "{first}"
    );
    // Response cap: a long echo comes back cut, with the marker.
    let long = "z".repeat(5000);
    let r = s
        .post(
            &json!({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","arguments":{"text":long}}}),
            &[("mcp-method", "tools/call"), ("mcp-name", "echo")],
        )
        .json();
    let text = r["result"]["content"][0]["text"].as_str().unwrap();
    assert!(text.len() < 700 && text.contains("truncated by Waygate"), "{text}");
    // Cost weights (routing headers name the tool, so no body parse): three countdowns
    // (1 each) and one echo (5) spent 8 of 20; two more echoes fit (18), a third does not.
    let echo = |id: i64| {
        s.post(
            &json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"}}}),
            &[("mcp-method", "tools/call"), ("mcp-name", "echo")],
        )
        .status
    };
    assert_eq!((echo(5), echo(6), echo(7)), (200, 200, 429));
}
