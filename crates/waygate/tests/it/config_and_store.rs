//! Configuration and store behaviour of the real binary: validation errors, format
//! upgrades, `db` commands on SQLite and PostgreSQL, hot reload under load, snapshots
//! and rollback.

use super::common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{bin, Server, TempDir};
use serde_json::json;

fn waygate(args: &[&str]) -> (bool, String, String) {
    common::cli(args)
}

#[test]
fn validate_names_file_line_key_and_hint() {
    let d = TempDir::new("cfg");
    let f = d.0.join("w.toml");
    std::fs::write(&f, "version = 3\n[http]\nmax_body_byts = 10\n").unwrap();
    let (ok, _, err) = waygate(&["config", "validate", f.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("w.toml")
            && err.contains("line 3")
            && err.contains("max_body_byts")
            && err.contains("did you mean `max_body_bytes`"),
        "{err}"
    );
    std::fs::write(&f, "version = 3\n[http]\nmax_body_bytes = 0\n").unwrap();
    let (ok, _, err) = waygate(&["config", "validate", f.to_str().unwrap()]);
    assert!(
        !ok && err.contains("http.max_body_bytes") && err.contains("positive"),
        "{err}"
    );
    std::fs::write(&f, "version = 3\n[http]\nmax_body_bytes = 10\n").unwrap();
    let (ok, out, _) = waygate(&["config", "validate", f.to_str().unwrap()]);
    assert!(ok && out.contains(": ok"), "{out}");
    // serve refuses to start on a bad file, naming it.
    std::fs::write(&f, "[server]\nlisten = \"not an address\"\n").unwrap();
    let (ok, _, err) = waygate(&[
        "serve",
        "--config",
        f.to_str().unwrap(),
        "--data-dir",
        d.0.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("w.toml") && err.contains("listen"), "{err}");
}

#[test]
fn older_formats_migrate_and_still_load() {
    let d = TempDir::new("mig");
    let f = d.0.join("old.toml");
    std::fs::write(
        &f,
        "version = 1\nlisten = \"127.0.0.1:0\"\nplugins = [\"everything\"]\n",
    )
    .unwrap();
    let (ok, out, _) = waygate(&["config", "validate", f.to_str().unwrap()]);
    assert!(ok && out.contains("format version 1"), "{out}");
    let (ok, out, err) = waygate(&["config", "migrate", f.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(
        out.contains("version = 3") && out.contains("[plugins]") && out.contains("everything"),
        "{out}"
    );
    let (ok, _, err) = waygate(&["config", "migrate", "--write", f.to_str().unwrap()]);
    assert!(ok, "{err}");
    let (ok, out, _) = waygate(&["config", "validate", f.to_str().unwrap()]);
    assert!(ok && !out.contains("format version"), "{out}");
    assert!(d.0.join("old.toml.v1.bak").exists());
}

#[test]
fn db_commands_on_sqlite() {
    let d = TempDir::new("db");
    let dd = d.0.to_str().unwrap();
    let (ok, out, err) = waygate(&["db", "status", "--data-dir", dd]);
    assert!(ok, "{err}");
    assert!(out.contains("no"), "fresh database has pending migrations: {out}");
    let (ok, out, _) = waygate(&["db", "migrate", "--data-dir", dd]);
    assert!(ok && out.contains("applied"), "{out}");
    let (ok, out, _) = waygate(&["db", "migrate", "--data-dir", dd]);
    assert!(ok && out.contains("up to date"), "{out}");
    let (ok, out, _) = waygate(&["db", "rollback", "--data-dir", dd]);
    assert!(ok && out.contains("reverted"), "{out}");
    let (_, out, _) = waygate(&["db", "status", "--data-dir", dd]);
    let rows: Vec<&str> = out.lines().filter(|l| l.starts_with("20")).collect();
    assert!(rows.len() >= 6, "{out}");
    assert_eq!(
        out.matches(" yes ").count(),
        rows.len() - 1,
        "only the newest migration was reverted: {out}"
    );
    assert!(
        rows.last().is_some_and(|l| l.contains(" no ")),
        "the newest is the one reverted: {out}"
    );
    let (ok, _, err) = waygate(&["db", "rollback", "--to", "42", "--data-dir", dd]);
    assert!(!ok && err.contains("42"), "{err}");
    assert!(d.0.join("waygate.db").exists());
}

#[test]
fn serve_on_postgres_when_available() {
    let Ok(url) = std::env::var("WAYGATE_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var("CI").is_err(),
            "CI must provide WAYGATE_TEST_POSTGRES_URL"
        );
        eprintln!("note: WAYGATE_TEST_POSTGRES_URL not set; skipped");
        return;
    };
    let s = Server::start(&["--database-url", &url]);
    let r = s.modern(
        1,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "pg"}}),
        json!({}),
    );
    assert_eq!(r.json()["result"]["content"][0]["text"], "pg");
    let (ok, out, err) = {
        let out = Command::new(bin())
            .args(["db", "status", "--database-url", &url])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert!(ok, "{err}");
    assert!(out.contains("Postgres") && !out.contains(" no "), "{out}");
}

fn tool_names(s: &Server) -> Vec<String> {
    let v = s.modern(1, "tools/list", json!({}), json!({})).json();
    v["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn hot_reload_under_load_snapshots_and_rollback() {
    let d = TempDir::new("reload");
    let cfg = d.0.join("waygate.toml");
    std::fs::write(&cfg, "version = 3\n[plugins]\nenabled = []\n").unwrap();
    let s = Server::start_in(Some(&d.0), &["--config", cfg.to_str().unwrap()]);
    assert!(!tool_names(&s).iter().any(|t| t == "test_simple_text"));

    // Keep calling while the configuration changes: nothing may fail.
    let addr = s.addr.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let load = std::thread::spawn(move || {
        let mut n = 0u32;
        let end = Instant::now() + Duration::from_secs(20);
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < end && n < 5000 {
            let body =
                json!({"jsonrpc":"2.0","id":n,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"}}})
                    .to_string();
            let r = common::http(
                &addr,
                "POST",
                "/mcp",
                &[("content-type", "application/json")],
                body.as_bytes(),
            );
            assert_eq!(r.status, 200, "request {n} failed during reload: {}", r.text());
            assert_eq!(r.json()["result"]["content"][0]["text"], "x");
            n += 1;
        }
        n
    });

    std::fs::write(&cfg, "version = 3\n[plugins]\nenabled = [\"everything\"]\n").unwrap();
    wait_for("everything plugin to load", || {
        tool_names(&s).iter().any(|t| t == "test_simple_text")
    });
    // An invalid file is refused; the running configuration stays.
    std::fs::write(&cfg, "version = 3\n[plugins]\nenabled = [\"nope\"]\n").unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    assert!(tool_names(&s).iter().any(|t| t == "test_simple_text"));
    std::fs::write(&cfg, "version = 3\n[plugins]\nenabled = []\ndemo = true\n").unwrap();
    wait_for("everything plugin to unload", || {
        !tool_names(&s).iter().any(|t| t == "test_simple_text")
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let calls = load.join().expect("load thread");
    assert!(calls > 10, "only {calls} calls ran during the reloads");
    drop(s);

    // Every applied configuration was snapshotted; roll back to the one with everything.
    let dd = d.0.to_str().unwrap();
    let c = cfg.to_str().unwrap();
    let (ok, out, err) = waygate(&["config", "snapshots", "--config", c, "--data-dir", dd]);
    assert!(ok, "{err}");
    let ids: Vec<i64> = out
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(ids.len() >= 3, "start + two reloads: {out}");
    let (ok, out, err) = waygate(&["config", "rollback", "--config", c, "--data-dir", dd]);
    assert!(ok, "{err}");
    assert!(out.contains("restored"), "{out}");
    let restored = std::fs::read_to_string(&cfg).unwrap();
    assert!(restored.contains("everything"), "{restored}");
}

#[test]
fn export_and_import_state_move_keys_config_and_secrets() {
    let a = TempDir::new("exp-a");
    let b = TempDir::new("exp-b");
    let (ad, bd) = (a.0.to_str().unwrap(), b.0.to_str().unwrap());
    let cfg = a.0.join("waygate.toml");
    // An upstream (another waygate over stdio) so instance A holds tool pins.
    let inner = a.0.join("inner");
    std::fs::create_dir_all(&inner).unwrap();
    std::fs::write(
        &cfg,
        format!(
            "version = 3\n[plugins]\nenabled = [\"everything\"]\n[[upstreams]]\nname = \"inner\"\ntransport = \"stdio\"\n\
             command = \"{}\"\nargs = [\"serve\", \"--stdio\", \"--data-dir\", \"{}\"]\nrequired = true\n",
            bin(),
            inner.display()
        ),
    )
    .unwrap();
    drop(Server::start_in(Some(&a.0), &[]));
    let (ok, key, err) = waygate(&["keys", "create", "moved", "--data-dir", ad]);
    assert!(ok, "{err}");
    let key = key.trim().to_string();
    let out = a.0.join("state.json");
    let exp = |args: &[&str], secret: Option<&str>| {
        let mut c = Command::new(bin());
        c.args(args).env_remove("WAYGATE_DATABASE_URL");
        match secret {
            Some(s) => c.env("WAYGATE_SECRET_KEY", s),
            None => c.env_remove("WAYGATE_SECRET_KEY"),
        };
        let o = c.output().unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let mut c = Command::new(bin());
    c.args(["secrets", "set", "moved_token", "--data-dir", ad])
        .env("WAYGATE_SECRET_KEY", "correct horse battery staple")
        .stdin(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"tok-moved-123456\n").unwrap();
    assert!(child.wait().unwrap().success());
    let (ok, _, err) = exp(&["export", "--data-dir", ad, "--out", out.to_str().unwrap()], None);
    assert!(!ok && err.contains("WAYGATE_SECRET_KEY"), "{err}");
    let (ok, _, err) = exp(
        &["export", "--data-dir", ad, "--out", out.to_str().unwrap()],
        Some("correct horse battery staple"),
    );
    assert!(ok, "{err}");
    let text = std::fs::read_to_string(&out).unwrap();
    let state_key = std::fs::read_to_string(a.0.join("state.key")).unwrap_or_default();
    assert!(text.contains("AES-256-GCM") && text.contains("everything"), "{text}");
    assert!(text.contains("argon2id") && text.contains("moved_token"), "{text}");
    assert!(!text.contains("tok-moved-123456"), "stored secrets stay sealed: {text}");
    assert!(
        state_key.is_empty() || !text.contains(state_key.trim()),
        "state key must be encrypted"
    );
    let (ok, _, err) = exp(
        &["import-state", out.to_str().unwrap(), "--data-dir", bd],
        Some("a different secret key!"),
    );
    assert!(!ok && err.contains("wrong WAYGATE_SECRET_KEY"), "{err}");
    let (ok, outp, err) = exp(
        &["import-state", out.to_str().unwrap(), "--data-dir", bd],
        Some("correct horse battery staple"),
    );
    assert!(ok, "{err}");
    assert!(outp.contains("1 new API key"), "{outp}");
    assert!(outp.contains("1 stored secret(s)"), "{outp}");
    assert!(!outp.contains(" 0 tool pin(s)"), "the upstream's pins travel: {outp}");
    let (ok, listed, err) = waygate(&["secrets", "list", "--data-dir", bd]);
    assert!(ok && listed.contains("moved_token"), "{listed} {err}");
    assert!(std::fs::read_to_string(b.0.join("waygate.toml"))
        .unwrap()
        .contains("everything"));
    // The moved key authenticates against the new instance.
    let (s, printed) = Server::start_with_auth(&b.0);
    assert!(printed.is_none(), "the store already has keys");
    let r = s.modern(
        1,
        "tools/call",
        json!({"name": "test_simple_text", "arguments": {}}),
        json!({}),
    );
    assert_eq!(r.status, 401);
    let h = [("authorization", format!("Bearer {key}"))];
    let r = s.post(
        &json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"test_simple_text","arguments":{}}}),
        &[(h[0].0, h[0].1.as_str())],
    );
    assert_eq!(r.status, 200, "{}", r.text());
}
