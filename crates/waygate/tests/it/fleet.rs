//! Many replicas, one gateway: three real `waygate serve` processes over one real
//! PostgreSQL database (a fresh one per test), a client spraying requests across them with
//! no sticky routing, and one replica killed mid-run.

use std::time::{Duration, Instant};

use super::common;
use super::isolation::TASKS;

use common::{Server, TempDir, MODERN};
use serde_json::{json, Value};

/// A fresh database on the test PostgreSQL server; `None` (test skipped) without one.
pub(crate) fn fresh_database(tag: &str) -> Option<String> {
    let Ok(base) = std::env::var("WAYGATE_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var("CI").is_err(),
            "CI must provide WAYGATE_TEST_POSTGRES_URL"
        );
        eprintln!("note: WAYGATE_TEST_POSTGRES_URL not set; {tag} skipped");
        return None;
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let db = format!("wg_{tag}_{}_{nanos}", std::process::id());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut admin = sqlx::AnyConnection::connect(&base)
            .await
            .expect("connect to test PostgreSQL");
        sqlx::query(&format!("CREATE DATABASE {db}"))
            .execute(&mut admin)
            .await
            .expect("create database");
    });
    let i = base.rfind('/').expect("database in URL");
    Some(format!("{}/{db}", &base[..i]))
}

fn key(url: &str, d: &TempDir, name: &str, scopes: &str) -> String {
    super::isolation::offline_key_with(d, name, scopes, &["--database-url", url])
}

/// Replicas sign the audit chain's head with one key, kept outside the database.
const ANCHOR: &[(&str, &str)] = &[("WAYGATE_AUDIT__ANCHOR_KEY", "fleet-test-anchor-key-0123456789abcdef")];

struct Fleet {
    replicas: Vec<Server>,
    admin: String,
    alice: String,
    bob: String,
    url: String,
    _dirs: Vec<TempDir>,
}

fn fleet(tag: &str) -> Option<Fleet> {
    let url = fresh_database(tag)?;
    let keys_dir = TempDir::new("fleet-keys");
    let admin = key(&url, &keys_dir, "admin", "admin,mcp");
    let alice = key(&url, &keys_dir, "alice", "mcp");
    let bob = key(&url, &keys_dir, "bob", "mcp");
    let mut dirs = vec![keys_dir];
    let mut replicas = Vec::new();
    for i in 0..3 {
        let d = TempDir::new(&format!("replica{i}"));
        // A file of its own, as on a VM: a configuration applied through the admin API on
        // one replica is written to every replica's file.
        std::fs::write(d.0.join("waygate.toml"), "version = 3\n").unwrap();
        let (s, printed) = Server::start_auth_env(&d.0, &["--database-url", &url, "--plugin", "everything"], ANCHOR);
        assert!(
            printed.is_none(),
            "a replica minted a first admin key although keys exist"
        );
        replicas.push(s);
        dirs.push(d);
    }
    Some(Fleet {
        replicas,
        admin,
        alice,
        bob,
        url,
        _dirs: dirs,
    })
}

fn session_headers<'a>(key: &'a str, sid: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        ("x-api-key", key),
        ("mcp-session-id", sid),
        ("mcp-protocol-version", "2025-11-25"),
    ]
}

fn call(id: i64, tool: &str, args: Value) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":args}})
}

/// Poll until `f` holds (a bound, not a timing assertion on the happy path).
fn eventually(what: &str, within: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

#[test]
fn a_session_moves_freely_between_replicas() {
    let Some(f) = fleet("sessions") else { return };
    let [a, b, c] = [&f.replicas[0], &f.replicas[1], &f.replicas[2]];
    let alice = f.alice.as_str();
    // initialize on A; every later request of the session lands elsewhere.
    let sid = a.initialize_with("2025-11-25", json!({"elicitation": {}}), &[("x-api-key", alice)]);
    let h = session_headers(alice, &sid);
    let listed = b.post(&json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}), &h);
    assert_eq!(listed.status, 200, "{}", listed.text());
    assert!(listed.json()["result"]["tools"]
        .as_array()
        .is_some_and(|t| !t.is_empty()));
    let echo = c.post(&call(2, "echo", json!({"text": "via C"})), &h);
    assert_eq!(echo.json()["result"]["content"][0]["text"], "via C", "{}", echo.text());
    let level = b.post(
        &json!({"jsonrpc":"2.0","id":3,"method":"logging/setLevel","params":{"level":"error"}}),
        &h,
    );
    assert_eq!(level.status, 200, "{}", level.text());

    // Another principal presenting the id gets 404 on every replica.
    for r in [a, b, c] {
        let stolen = r.post(
            &json!({"jsonrpc":"2.0","id":4,"method":"tools/list"}),
            &session_headers(&f.bob, &sid),
        );
        assert_eq!(stolen.status, 404, "bob used alice's session: {}", stolen.text());
    }

    // Elicitation: the call runs on B (its POST stream), the client's answer lands on C.
    let mut st = b.post_stream(&call(5, "ask_name", json!({})), &h);
    assert_eq!(st.status, 200);
    let req = st.next_json().expect("elicitation request on B's stream");
    assert_eq!(req["method"], "elicitation/create", "{req}");
    let answer = json!({"jsonrpc":"2.0","id": req["id"],"result":{"action":"accept","content":{"name":"Lin"}}});
    let ack = c.post(&answer, &h);
    assert_eq!(ack.status, 202, "{}", ack.text());
    let fin = st.next_json().expect("final answer on B's stream");
    assert_eq!(fin["id"], 5);
    assert_eq!(fin["result"]["content"][0]["text"], "Hello, Lin!", "{fin}");

    // A GET stream opened on C, DELETE on B: C's stream ends and every replica says 404.
    let mut get = common::Stream::open(
        &c.url().replace("http://", "").replace("/mcp", ""),
        "GET",
        "/mcp",
        &[
            ("accept", "text/event-stream"),
            ("x-api-key", alice),
            ("mcp-session-id", &sid),
            ("mcp-protocol-version", "2025-11-25"),
        ],
        b"",
    );
    assert_eq!(get.status, 200);
    let del = b.request("DELETE", "/mcp", &h, b"");
    assert_eq!(del.status, 204, "{}", del.text());
    eventually("session gone on A and C", Duration::from_secs(5), || {
        [a, c].iter().all(|r| {
            r.post(&json!({"jsonrpc":"2.0","id":6,"method":"tools/list"}), &h)
                .status
                == 404
        })
    });
    get.set_timeout(Duration::from_secs(5));
    while get.next_event().is_some() {}
}

#[test]
fn mrtr_tasks_and_admin_changes_cross_replicas() {
    let Some(f) = fleet("changes") else { return };
    let [a, b, c] = [&f.replicas[0], &f.replicas[1], &f.replicas[2]];
    let alice = [("x-api-key", f.alice.as_str())];

    // An MRTR round trip split across replicas: one shared requestState key.
    let caps = json!({"elicitation": {}});
    let first = a
        .modern_with(
            1,
            "tools/call",
            json!({"name": "ask_name", "arguments": {}}),
            caps.clone(),
            &alice,
        )
        .json();
    let state = first["result"]["requestState"]
        .as_str()
        .unwrap_or_else(|| panic!("{first}"))
        .to_string();
    let answer = json!({"name": {"action": "accept", "content": {"name": "Ada"}}});
    let done = b
        .modern_with(
            2,
            "tools/call",
            json!({"name": "ask_name", "arguments": {}, "inputResponses": answer, "requestState": state}),
            caps,
            &alice,
        )
        .json();
    assert_eq!(done["result"]["content"][0]["text"], "Hello, Ada!", "{done}");

    // A task started on A is read on B and C, and invisible to bob.
    let tcaps = json!({"extensions": {TASKS: {}}});
    let started = a
        .modern_with(
            3,
            "tools/call",
            json!({"name": "slow_compute", "arguments": {"seconds": 1}}),
            tcaps.clone(),
            &alice,
        )
        .json();
    let task = started["result"]["taskId"]
        .as_str()
        .unwrap_or_else(|| panic!("no task: {started}"))
        .to_string();
    let got = b
        .modern_with(4, "tasks/get", json!({"taskId": task}), tcaps.clone(), &alice)
        .json();
    assert_eq!(got["result"]["taskId"], task.as_str(), "{got}");
    let stolen = c
        .modern_with(
            5,
            "tasks/get",
            json!({"taskId": task}),
            tcaps.clone(),
            &[("x-api-key", f.bob.as_str())],
        )
        .json();
    assert_eq!(
        stolen["error"]["code"], -32602,
        "bob read alice's task elsewhere: {stolen}"
    );
    eventually("task completed as seen from C", Duration::from_secs(15), || {
        let r = c
            .modern_with(6, "tasks/get", json!({"taskId": task}), tcaps.clone(), &alice)
            .json();
        r["result"]["status"] == "completed"
    });

    // Admin changes made through one replica reach the others within a second.
    let server = json!({"include": ["demo/echo"]});
    let put = super::admin_api::api(a, "PUT", "/api/v1/servers/echo-only", &f.admin, Some(&server));
    assert!(put.status == 201 || put.status == 200, "{}", put.text());
    let took = eventually("virtual server on C", Duration::from_secs(5), || {
        let r = c.request(
            "POST",
            "/servers/echo-only/mcp",
            &[
                ("x-api-key", f.alice.as_str()),
                ("content-type", "application/json"),
                ("accept", "application/json, text/event-stream"),
                ("mcp-protocol-version", MODERN),
                ("mcp-method", "tools/list"),
            ],
            json!({"jsonrpc":"2.0","id":7,"method":"tools/list","params":{"_meta":{
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": {"name":"t","version":"1"}}}})
            .to_string()
            .as_bytes(),
        );
        r.status == 200
    });
    eprintln!("virtual server reached C after {took:?}");

    // A key created on B works on C; revoked through A, C refuses it.
    let created = super::admin_api::api(
        b,
        "POST",
        "/api/v1/keys",
        &f.admin,
        Some(&json!({"name": "carol", "scopes": ["mcp"]})),
    );
    assert_eq!(created.status, 201, "{}", created.text());
    let carol = created.json()["key"].as_str().unwrap_or_default().to_string();
    let id = created.json()["id"].as_str().unwrap_or_default().to_string();
    let echo = |s: &Server| {
        s.modern_with(
            8,
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "k"}}),
            json!({}),
            &[("x-api-key", carol.as_str())],
        )
        .status
    };
    eventually("new key on C", Duration::from_secs(5), || echo(c) == 200);
    let revoked = super::admin_api::api(a, "DELETE", &format!("/api/v1/keys/{id}"), &f.admin, None);
    assert!(revoked.status < 300, "{}", revoked.text());
    eventually("revoked key refused on C", Duration::from_secs(5), || echo(c) == 401);

    // A policy applied through A's admin API governs C.
    let policy = "version = 3\n[[policies]]\nname = \"no-echo-for-alice\"\neffect = \"deny\"\nprincipals = [\"alice\"]\ntools = [\"echo\"]\n";
    let put = super::admin_api::api(a, "PUT", "/api/v1/config", &f.admin, Some(&json!({"toml": policy})));
    assert_eq!(put.status, 200, "{}", put.text());
    let alice_echo = |s: &Server| {
        s.modern_with(
            9,
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "p"}}),
            json!({}),
            &[("x-api-key", f.alice.as_str())],
        )
        .text()
    };
    let took = eventually("policy on C", Duration::from_secs(5), || {
        alice_echo(c).contains("\"error\"")
    });
    eprintln!("policy reached C after {took:?}");
    eventually("policy on B", Duration::from_secs(5), || {
        alice_echo(b).contains("\"error\"")
    });
    assert!(alice_echo(a).contains("\"error\""), "A applied it");
    let on_c = std::fs::read_to_string(f._dirs[3].0.join("waygate.toml")).unwrap();
    assert_eq!(on_c, policy, "C's file holds the applied configuration");
    let _ = &f.url;
}

#[test]
fn a_replica_killed_mid_run_costs_the_survivors_nothing() {
    let Some(mut f) = fleet("kill") else { return };
    let alice = f.alice.clone();
    let sid = f.replicas[0].initialize_with("2025-11-25", json!({}), &[("x-api-key", &alice)]);
    let mut ok_on_survivors = 0u32;
    let mut failed = Vec::new();
    let end = Instant::now() + Duration::from_secs(60);
    for i in 0..300i64 {
        assert!(Instant::now() < end, "load loop took over 60 s");
        if i == 100 {
            let pid = f.replicas[1].pid().to_string();
            let _ = std::process::Command::new("kill").args(["-KILL", &pid]).status();
        }
        let r = (i % 3) as usize;
        if i >= 100 && r == 1 {
            continue; // the dead replica: a load balancer stops sending to it
        }
        let s = &f.replicas[r];
        let res = if i % 2 == 0 {
            s.post(
                &call(i, "echo", json!({"text": format!("s{i}")})),
                &session_headers(&alice, &sid),
            )
        } else {
            s.modern_with(
                i,
                "tools/call",
                json!({"name": "echo", "arguments": {"text": format!("m{i}")}}),
                json!({}),
                &[("x-api-key", alice.as_str())],
            )
        };
        let text = res.json()["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if res.status == 200 && text.ends_with(&i.to_string()) {
            if r != 1 {
                ok_on_survivors += 1;
            }
        } else {
            failed.push(format!("#{i} on replica {r}: {} {}", res.status, res.text()));
        }
    }
    assert!(failed.is_empty(), "requests to live replicas failed: {failed:#?}");
    // Stop the survivors gracefully (their audit queues flush), then check the trail.
    for i in [0, 2] {
        assert!(f.replicas[i].terminate().success());
    }
    let d = TempDir::new("fleet-verify");
    let (ok, out, err) = common::cli_env(
        &[
            "audit",
            "verify",
            "--database-url",
            &f.url,
            "--data-dir",
            d.0.to_str().unwrap(),
        ],
        ANCHOR,
        None,
    );
    assert!(ok, "audit chain broken after a replica was killed: {out}{err}");
    let (ok, out, err) = common::cli(&[
        "audit",
        "query",
        "--method",
        "tools/call",
        "--limit",
        "1000",
        "--database-url",
        &f.url,
        "--data-dir",
        d.0.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let calls = out.lines().filter(|l| !l.trim().is_empty()).count();
    assert!(
        calls as u32 >= ok_on_survivors,
        "{ok_on_survivors} calls answered by survivors, only {calls} audit records: {out}"
    );
}
