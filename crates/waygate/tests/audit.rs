//! The audit trail of the real binary: every tool call, resource read and prompt get is
//! recorded with the caller, and nothing acknowledged is lost on graceful shutdown.

mod common;

use common::{Server, TempDir};
use serde_json::{json, Value};

#[test]
fn calls_are_audited_hash_chained_and_flushed_on_shutdown() {
    let d = TempDir::new("audit");
    let (mut s, key) = Server::start_with_auth(&d.0);
    let bearer = format!("Bearer {}", key.expect("admin key"));
    let mut acked = 0;
    for i in 0..60 {
        let body = json!({"jsonrpc":"2.0","id":i,"method":"tools/call","params":{"name":"echo","arguments":{"text": format!("n{i}")}}});
        let r = s.post(
            &body,
            &[("authorization", &bearer), ("x-request-id", &format!("req-{i}"))],
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-request-id"), Some(format!("req-{i}").as_str()));
        acked += 1;
    }
    let r = s.post(
        &json!({"jsonrpc":"2.0","id":99,"method":"resources/read","params":{"uri":"demo://nope"}}),
        &[("authorization", &bearer)],
    );
    assert_eq!(r.status, 200);
    assert!(s.terminate().success(), "graceful exit");

    let dd = d.0.to_str().unwrap();
    let (ok, out, err) = common::cli(&["audit", "tail", "-n", "1000", "--data-dir", dd]);
    assert!(ok, "{err}");
    let rows: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let calls: Vec<&Value> = rows.iter().filter(|r| r["method"] == "tools/call").collect();
    assert_eq!(calls.len(), acked, "every acknowledged call is in the audit trail");
    let first = calls[0];
    assert_eq!(first["target"], "echo");
    assert_eq!(first["outcome"], "ok");
    assert_eq!(first["correlation_id"], "req-0");
    assert!(first["principal"].as_str().unwrap().ends_with(":admin"), "{first}");
    assert_eq!(first["args_sha256"].as_str().unwrap().len(), 64);
    assert!(!out.contains("\"n0\""), "arguments themselves are not stored");
    let failed = rows.iter().find(|r| r["method"] == "resources/read").unwrap();
    assert_eq!(failed["outcome"], "error");
    assert!(failed["error"].as_str().unwrap().contains("demo://nope"));
    let (ok, out, err) = common::cli(&["audit", "verify", "--data-dir", dd]);
    assert!(ok && out.contains("intact"), "{out}{err}");
}
