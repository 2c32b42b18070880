//! API-key authentication of the real binary: on by default, first admin key printed once,
//! Bearer and X-API-Key, scopes, revocation by another process taking effect at once.

use super::common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{bin, Server, TempDir};
use serde_json::json;

fn call(s: &Server, headers: &[(&str, &str)]) -> common::Response {
    s.post(
        &json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"k"}}}),
        headers,
    )
}

fn keys(dir: &TempDir, args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["keys"];
    all.extend_from_slice(args);
    all.extend(["--data-dir", dir.0.to_str().unwrap()]);
    let (ok, out, err) = common::cli(&all);
    (ok, out.trim().to_string(), err)
}

#[test]
fn keys_on_by_default_bearer_header_scopes_and_revocation() {
    let d = TempDir::new("auth");
    let (s, admin) = Server::start_with_auth(&d.0);
    let admin = admin.expect("first start prints an admin key");
    assert!(admin.starts_with("wg_"));

    let r = call(&s, &[]);
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"waygate\""));
    let bad = format!("{admin}x");
    let r = call(&s, &[("authorization", &format!("Bearer {bad}"))]);
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").unwrap().contains("invalid_token"));
    assert!(!r.text().contains(&bad), "the presented key is never echoed");
    assert_eq!(call(&s, &[("authorization", "Basic Zm9vOmJhcg==")]).status, 401);

    let ok = call(&s, &[("authorization", &format!("Bearer {admin}"))]);
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["result"]["content"][0]["text"], "k");
    assert_eq!(s.request("GET", "/health", &[], b"").status, 200, "health needs no key");

    // A second key via the CLI, used as X-API-Key, then revoked while the server runs.
    let (created, key, err) = keys(&d, &["create", "ci", "--scopes", "mcp"]);
    assert!(created, "{err}");
    let id = key.split('_').nth(1).unwrap().to_string();
    let end = Instant::now() + Duration::from_secs(5);
    while call(&s, &[("x-api-key", &key)]).status != 200 {
        assert!(Instant::now() < end, "new key never accepted");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, list, _) = keys(&d, &["list"]);
    assert!(
        list.contains(&id) && list.contains("active") && !list.contains(&key),
        "{list}"
    );
    let (revoked, _, err) = keys(&d, &["revoke", &id]);
    assert!(revoked, "{err}");
    let t = Instant::now();
    while call(&s, &[("x-api-key", &key)]).status != 401 {
        assert!(t.elapsed() < Duration::from_secs(3), "revocation not applied");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "revocation took {:?}",
        t.elapsed()
    );
    let (again, _, err) = keys(&d, &["revoke", &id]);
    assert!(!again && err.contains(&id), "{err}");

    // A key without the mcp scope is authenticated but forbidden.
    let (_, noscope, _) = keys(&d, &["create", "viewer", "--scopes", ""]);
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let r = call(&s, &[("authorization", &format!("Bearer {noscope}"))]);
        if r.status == 403 {
            assert!(r.header("www-authenticate").unwrap().contains("insufficient_scope"));
            break;
        }
        assert!(Instant::now() < end, "scope check never applied: {}", r.status);
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(s);

    // A restart with keys in the store prints no new key; the old admin key still works.
    let (s2, none) = Server::start_with_auth(&d.0);
    assert!(none.is_none());
    assert_eq!(call(&s2, &[("authorization", &format!("Bearer {admin}"))]).status, 200);
}

#[test]
fn no_auth_is_refused_off_loopback() {
    let d = TempDir::new("noauth");
    let out = Command::new(bin())
        .args([
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--no-auth",
            "--data-dir",
            d.0.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
}

#[test]
fn operational_endpoints_need_their_own_scope() {
    let d = TempDir::new("auth-scopes");
    let (s, _admin) = Server::start_with_auth(&d.0);
    let (ok, mcp_key, _) = keys(&d, &["create", "client", "--scopes", "mcp"]);
    assert!(ok);
    let (ok, scraper, _) = keys(&d, &["create", "prometheus", "--scopes", "metrics"]);
    assert!(ok);
    let end = Instant::now() + Duration::from_secs(5);
    while call(&s, &[("x-api-key", &mcp_key)]).status != 200 {
        assert!(Instant::now() < end, "key never accepted");
        std::thread::sleep(Duration::from_millis(100));
    }
    let r = s.request("GET", "/metrics", &[("x-api-key", &mcp_key)], b"");
    assert_eq!(r.status, 403);
    assert!(r.header("www-authenticate").unwrap().contains("scope=\"metrics\""));
    let r = s.request("GET", "/metrics", &[("x-api-key", &scraper)], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("waygate_requests_total"));
    let r = call(&s, &[("x-api-key", &scraper)]);
    assert_eq!(r.status, 403, "a scraper key cannot call tools");
}

/// `[auth] admin_key` (here from the environment, as a Kubernetes Secret gives it): the key
/// works, no key is printed, a restart keeps it, and a malformed or conflicting key stops
/// the start with a message that names the setting and never the key.
#[test]
fn provisioned_admin_key_from_the_environment() {
    let d = TempDir::new("auth-provisioned");
    let key = "wg_k8s0_0123456789abcdef0123456789abcdef01234567";
    let env = [("WAYGATE_AUTH__ADMIN_KEY", key)];
    let (s, printed) = Server::start_auth_env(&d.0, &[], &env);
    assert!(
        printed.is_none(),
        "a provisioned key must not be joined by a printed one"
    );
    assert_eq!(call(&s, &[("authorization", &format!("Bearer {key}"))]).status, 200);
    let r = s.request("GET", "/api/v1/keys", &[("x-api-key", key)], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("admin (provisioned)"), "{}", r.text());
    drop(s);

    // A restart with the same key finds it and adds nothing.
    let (s, printed) = Server::start_auth_env(&d.0, &[], &env);
    assert!(printed.is_none());
    let (ok, listed, _) = keys(&d, &["list"]);
    assert!(ok);
    assert_eq!(listed.lines().filter(|l| l.starts_with("k8s0 ")).count(), 1, "{listed}");
    assert_eq!(listed.lines().count(), 2, "only the provisioned key: {listed}");
    drop(s);

    for (bad, why) in [
        (
            "wg_k8s0_ffffffffffffffffffffffffffffffffffffffff",
            "different key with id \"k8s0\"",
        ),
        ("wg_k8s1_tooshortsecret", "at least 32"),
        ("not-a-key-at-all-but-long-enough-to-look-like-one", "wg_<id>_<secret>"),
    ] {
        let out = Command::new(bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", d.0.to_str().unwrap()])
            .env("WAYGATE_AUTH__ADMIN_KEY", bad)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{bad}: started");
        assert!(err.contains("auth.admin_key") && err.contains(why), "{bad}: {err}");
        assert!(!err.contains(bad), "the key leaked into the error: {err}");
    }

    // `config validate` checks what `serve` would run, environment overrides included.
    let cfg = d.0.join("check.toml");
    std::fs::write(&cfg, "[http]\nmax_body_bytes = 1048576\n").unwrap();
    let path = cfg.to_str().unwrap();
    let (ok, out, _) = common::cli_env(&["config", "validate", path], &env, None);
    assert!(ok && out.contains("1 WAYGATE_*__* environment override"), "{out}");
    let (ok, _, err) = common::cli_env(
        &["config", "validate", path],
        &[("WAYGATE_AUTH__ADMIN_KEY", "wg_x")],
        None,
    );
    assert!(!ok && err.contains("auth.admin_key"), "{err}");
}
