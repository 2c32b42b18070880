//! Rate limits shared across replicas: two real `waygate serve` processes and one real
//! `redis-server` on loopback enforce one caller budget and one tool quota; when Redis goes
//! away, both keep serving on their local buckets.

use super::common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, Server, TempDir};
use serde_json::json;

struct Redis(Child);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `redis-server` on loopback; `None` only outside CI when it is not installed.
fn redis() -> Option<(Redis, u16)> {
    let port = free_port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) if std::env::var_os("CI").is_none() && std::env::var_os("WAYGATE_TEST_REQUIRE_REDIS").is_none() => {
            eprintln!("redis-server not available ({e}); skipping (CI installs it)");
            return None;
        }
        Err(e) => panic!("redis-server is required in CI: {e}"),
    };
    let end = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Some((Redis(child), port))
}

#[test]
fn two_replicas_share_one_limit_and_survive_redis_loss() {
    let Some((redis, port)) = redis() else { return };
    let cfg = format!(
        "version = 3\n[limits]\nrequests_per_second = 0.02\nburst = 6\nredis_url = \"redis://127.0.0.1:{port}/\"\n\
         [limits.tools.add]\nper_second = 0.02\nburst = 2\n"
    );
    let (da, db) = (TempDir::new("rl-a"), TempDir::new("rl-b"));
    std::fs::write(da.0.join("waygate.toml"), &cfg).unwrap();
    std::fs::write(db.0.join("waygate.toml"), &cfg).unwrap();
    let a = Server::start_in(Some(&da.0), &[]);
    let b = Server::start_in(Some(&db.0), &[]);
    let call = |s: &Server, tool: &str, id: i64| {
        s.post(
            &json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":{"a":1,"b":2,"text":"x"}}}),
            &[],
        )
    };
    // The tool quota (2) is shared: one call on each replica, then both refuse.
    assert!(call(&a, "add", 1).json()["result"]["structuredContent"].is_object());
    assert!(call(&b, "add", 2).json()["result"]["structuredContent"].is_object());
    for s in [&a, &b] {
        let r = call(s, "add", 3).json();
        assert_eq!(r["result"]["isError"], true, "{r}");
    }
    // The caller budget (6 operations) is shared too: 4 calls so far, two more pass, then
    // both replicas answer 429 — where local buckets would allow 12.
    let mut statuses = Vec::new();
    for i in 0..6 {
        let s = if i % 2 == 0 { &a } else { &b };
        statuses.push(call(s, "echo", 10 + i).status);
    }
    assert_eq!(statuses, vec![200, 200, 429, 429, 429, 429]);

    // Redis goes away: both replicas fall back to their local buckets and keep serving.
    drop(redis);
    for s in [&a, &b] {
        let r = call(s, "echo", 99);
        assert_eq!(r.status, 200, "{}", r.text());
    }
}
