//! The audit trail of the real binary: every tool call, resource read and prompt get is
//! recorded with the caller, and nothing acknowledged is lost on graceful shutdown.

use super::common;

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

#[test]
fn admin_changes_logged_arguments_redacted_and_query() {
    let d = TempDir::new("audit-admin");
    std::fs::write(
        d.0.join("waygate.toml"),
        "version = 3\n[audit]\nlog_arguments = [\"ec*\"]\n",
    )
    .unwrap();
    let (mut s, key) = Server::start_with_auth(&d.0);
    let bearer = format!("Bearer {}", key.expect("admin key"));
    let dd = d.0.to_str().unwrap();
    let secret_like = "ghp_abcdefghijklmnopqrstuvwxyz0123456789";
    let r = s.post(
        &json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text": secret_like, "password": "hunter2"}}}),
        &[("authorization", &bearer)],
    );
    assert_eq!(r.status, 200);
    let r = s.post(
        &json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"add","arguments":{"a": 1, "b": 2}}}),
        &[("authorization", &bearer)],
    );
    assert_eq!(r.status, 200);
    let (ok, _, err) = common::cli(&["keys", "create", "ops-bot", "--data-dir", dd]);
    assert!(ok, "{err}");
    assert!(s.terminate().success());

    let (ok, out, err) = common::cli(&["audit", "query", "--target", "echo", "--data-dir", dd]);
    assert!(ok, "{err}");
    let echo: Value = serde_json::from_str(out.lines().next().expect("echo record")).unwrap();
    assert_eq!(echo["arguments"]["password"], "[REDACTED]", "{echo}");
    assert_eq!(echo["arguments"]["text"], "[REDACTED]", "{echo}");
    assert!(!out.contains("hunter2") && !out.contains(secret_like));
    let (_, out, _) = common::cli(&["audit", "query", "--target", "add", "--data-dir", dd]);
    let add: Value = serde_json::from_str(out.lines().next().expect("add record")).unwrap();
    assert!(add.get("arguments").is_none(), "only configured tools keep arguments");
    let (_, out, _) = common::cli(&["audit", "query", "--method", "admin/*", "--data-dir", dd]);
    let admin: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(
        admin
            .iter()
            .any(|r| r["method"] == "admin/keys.create" && r["target"].as_str().unwrap().contains("ops-bot")),
        "{out}"
    );
    assert!(admin
        .iter()
        .all(|r| r["principal"].as_str().unwrap().starts_with("cli:")));
    let (ok, out, _) = common::cli(&["audit", "query", "--outcome", "denied", "--data-dir", dd]);
    assert!(ok && out.trim().is_empty());
    let (ok, out, err) = common::cli(&["audit", "verify", "--data-dir", dd]);
    assert!(ok && out.contains("intact"), "{out}{err}");
}

/// SQL against the instance's SQLite file, as someone with access to the database would.
fn sql(data: &std::path::Path, statements: &[&str]) -> Vec<(i64, String, String)> {
    let url = format!("sqlite://{}/waygate.db", data.display());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::Row;
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&url).await.unwrap();
        for s in statements {
            sqlx::query(s).execute(&pool).await.unwrap();
        }
        let rows = sqlx::query("SELECT seq, hash, mac FROM audit_anchor")
            .fetch_all(&pool)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get::<i64, _>(0), r.get::<String, _>(1), r.get::<String, _>(2)))
            .collect();
        pool.close().await;
        rows
    })
}

fn calls(s: &Server, bearer: &str, n: usize) {
    for i in 0..n {
        let body =
            json!({"jsonrpc":"2.0","id":i,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"}}});
        assert_eq!(s.post(&body, &[("authorization", bearer)]).status, 200);
    }
}

#[test]
fn deleting_the_newest_records_is_detected() {
    let d = TempDir::new("audit-trunc");
    let dd = d.0.to_str().unwrap();
    let (mut s, key) = Server::start_with_auth(&d.0);
    let bearer = format!("Bearer {}", key.expect("admin key"));
    calls(&s, &bearer, 5);
    assert!(s.terminate().success());
    let (ok, out, err) = common::cli(&["audit", "verify", "--data-dir", dd]);
    assert!(
        ok && out.contains("intact") && out.contains("end anchored"),
        "{out}{err}"
    );
    let saved = sql(&d.0, &[]);
    assert_eq!(saved.len(), 1, "one anchor row");

    // A second session of calls, then an attacker removes it and puts the old anchor back.
    let (mut s, _) = Server::start_with_auth(&d.0);
    calls(&s, &bearer, 5);
    assert!(s.terminate().success());
    let (ok, out, _) = common::cli(&["audit", "verify", "--data-dir", dd]);
    assert!(ok, "{out}");
    let (seq, hash, mac) = &saved[0];
    let rollback = [
        format!("DELETE FROM audit_log WHERE seq > {seq}"),
        format!("UPDATE audit_anchor SET seq = {seq}, hash = '{hash}', mac = '{mac}'"),
    ];
    sql(&d.0, &[rollback[0].as_str(), rollback[1].as_str()]);
    let (ok, _, err) = common::cli(&["audit", "verify", "--data-dir", dd]);
    assert!(!ok && err.contains("truncated") && err.contains("rolled back"), "{err}");

    // Without the local head, plain truncation is still caught by the anchor in the store.
    std::fs::remove_file(d.0.join("audit.head")).unwrap();
    let (ok, out, err) = common::cli(&["audit", "verify", "--data-dir", dd]);
    assert!(
        ok,
        "the rolled-back state is self-consistent for the store alone: {out}{err}"
    );
    sql(
        &d.0,
        &["DELETE FROM audit_log WHERE seq = (SELECT MAX(seq) FROM audit_log)"],
    );
    let (ok, _, err) = common::cli(&["audit", "verify", "--data-dir", dd]);
    assert!(!ok && err.contains("truncated"), "{err}");
}
