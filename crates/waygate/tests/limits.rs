//! Rate limits of the real binary: per caller over HTTP (429 + Retry-After) and per tool
//! (an `isError` result telling the model when to retry).

mod common;

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
