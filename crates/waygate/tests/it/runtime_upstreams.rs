//! Upstreams added, changed, restarted and removed at runtime (`waygate upstreams …` over
//! the admin API) while calls keep flowing; stored, restored after a restart, and the
//! config file's precedence.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{self, bin, eventually, Server, TempDir};
use crate::upstreams::children;

fn tool_names(s: &Server) -> Vec<String> {
    s.post(&json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}), &[])
        .json()["result"]["tools"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn upstreams(s: &Server, args: &[&str]) -> (bool, String, String) {
    let url = format!("http://{}", s.addr);
    let mut all = vec!["upstreams"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--url", &url]);
    common::cli(&all)
}

fn add_sum(s: &Server, tool: &str) -> Value {
    s.post(
        &json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":tool,"arguments":{"a":2,"b":5}}}),
        &[],
    )
    .json()
}

#[test]
fn upstreams_added_changed_restarted_and_removed_at_runtime_under_load() {
    let d = TempDir::new("rt-up");
    let inner = TempDir::new("rt-inner");
    let inner_dir = inner.0.to_str().unwrap().to_string();
    let cfg = d.0.join("gateway.toml");
    std::fs::write(
        &cfg,
        format!(
            "version = 3\n[[upstreams]]\nname = \"fileup\"\ncommand = \"{}\"\nargs = [\"serve\", \"--stdio\", \"--data-dir\", \"{inner_dir}\"]\nprefix = \"always\"\n",
            bin()
        ),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap().to_string();
    let mut s = Server::start_in(Some(&d.0), &["--config", &cfg]);
    eventually(20, "the file's upstream", || {
        tool_names(&s).contains(&"fileup__add".to_string())
    });

    // Calls keep flowing (and succeeding) through every change below.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (stop, addr) = (stop.clone(), s.addr.clone());
        std::thread::spawn(move || {
            let body =
                json!({"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"add","arguments":{"a":2,"b":5}}});
            let (mut n, mut bad) = (0u32, Vec::new());
            let end = Instant::now() + Duration::from_secs(120);
            while !stop.load(Ordering::Relaxed) && Instant::now() < end && n < 100_000 {
                let r = common::http(
                    &addr,
                    "POST",
                    "/mcp",
                    &[
                        ("content-type", "application/json"),
                        ("accept", "application/json, text/event-stream"),
                    ],
                    body.to_string().as_bytes(),
                );
                if r.status != 200 || r.json()["result"]["structuredContent"]["sum"] != 7.0 {
                    bad.push(r.text());
                }
                n += 1;
            }
            (n, bad)
        })
    };

    let add = |extra: &[&str]| {
        let mut a = vec![
            "add",
            "inner",
            "--command",
            bin(),
            "--arg",
            "serve",
            "--arg",
            "--stdio",
            "--arg",
            "--data-dir",
            "--arg",
        ];
        a.push(&inner_dir);
        a.extend_from_slice(extra);
        upstreams(&s, &a)
    };
    let (ok, out, err) = add(&[
        "--prefix",
        "always",
        "--deny",
        "now",
        "--env",
        "TOKEN=literal-secret-value",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("inner") && out.contains("runtime"), "{out}");
    eventually(20, "the added upstream's tools", || {
        add_sum(&s, "inner__add")["result"]["structuredContent"]["sum"] == 7.0
    });
    assert!(!tool_names(&s).contains(&"inner__now".to_string()));
    let (ok, out, err) = upstreams(&s, &["list"]);
    assert!(ok, "{err}");
    let row = |out: &str, n: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{n} ")))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        row(&out, "inner").contains("runtime") && row(&out, "inner").contains("stdio"),
        "{out}"
    );
    assert!(row(&out, "fileup").contains("config"), "{out}");
    // A value given literally is never shown back.
    let api = s.request("GET", "/api/v1/upstreams/inner", &[], b"");
    assert_eq!(api.status, 200, "{}", api.text());
    assert_eq!(api.json()["entry"]["env"]["TOKEN"], "<redacted>", "{}", api.text());
    assert!(!api.text().contains("literal-secret-value"), "{}", api.text());

    // Refused changes name the field, exactly as the config file's checks do.
    let (ok, _, err) = add(&["--prefix", "sometimes", "--replace"]);
    assert!(
        !ok && err.contains("prefix") && err.contains("always, on-conflict or never"),
        "{err}"
    );
    let (ok, _, err) = upstreams(&s, &["add", "demo", "--command", "x"]);
    assert!(!ok && err.contains("plugin"), "{err}");
    let (ok, _, err) = upstreams(&s, &["add", "nothing"]);
    assert!(!ok && err.contains("command"), "{err}");
    let (ok, _, err) = upstreams(&s, &["rm", "fileup"]);
    assert!(!ok && err.contains("config file"), "{err}");
    let (ok, _, err) = add(&[]);
    assert!(!ok && err.contains("exists"), "adding twice is refused: {err}");

    // Change it: new names, the old client drained and stopped.
    let (ok, _, err) = add(&["--prefix", "always", "--prefix-with", "in2", "--replace"]);
    assert!(ok, "{err}");
    eventually(20, "the renamed tools", || {
        let t = tool_names(&s);
        t.contains(&"in2__add".to_string()) && !t.contains(&"inner__add".to_string())
    });
    assert!(
        tool_names(&s).contains(&"in2__now".to_string()),
        "the deny rule went with the old entry"
    );
    eventually(10, "one child per upstream", || children(s.pid()).len() == 2);

    // Restart: a new process.
    let before = children(s.pid());
    let (ok, _, err) = upstreams(&s, &["restart", "inner"]);
    assert!(ok, "{err}");
    eventually(20, "a new child", || {
        let now = children(s.pid());
        now.len() == 2 && now != before
    });
    eventually(20, "its tools back", || {
        add_sum(&s, "in2__add")["result"]["structuredContent"]["sum"] == 7.0
    });

    stop.store(true, Ordering::Relaxed);
    let (n, bad) = load.join().unwrap();
    assert!(n > 10 && bad.is_empty(), "{n} calls, failed: {bad:?}");

    // Stored: a restart brings it back as it was last changed.
    s.terminate();
    drop(s);
    let s = Server::start_in(Some(&d.0), &["--config", &cfg]);
    eventually(20, "the stored upstream", || {
        add_sum(&s, "in2__add")["result"]["structuredContent"]["sum"] == 7.0
    });

    // Removed for good: tools and process gone, and not back after a restart.
    let (ok, _, err) = upstreams(&s, &["rm", "inner"]);
    assert!(ok, "{err}");
    eventually(10, "its tools to go", || {
        !tool_names(&s).iter().any(|t| t.starts_with("in2__"))
    });
    eventually(10, "its process to stop", || children(s.pid()).len() == 1);
    let (ok, _, err) = upstreams(&s, &["rm", "inner"]);
    assert!(!ok && err.contains("no upstream"), "{err}");
}
