//! Lifecycle under a supervisor: the systemd units verify, the notify protocol against a
//! real datagram socket, socket activation with a passed descriptor, SIGHUP reloads and a
//! graceful SIGTERM in both HTTP and stdio mode (no upstream child left behind).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{bin, TempDir};

/// A systemd tool, or `None` (CI sets WAYGATE_TEST_REQUIRE_SYSTEMD=1 to make that a failure).
fn tool(name: &str) -> Option<String> {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if found.is_none() {
        assert!(
            std::env::var("WAYGATE_TEST_REQUIRE_SYSTEMD").is_err(),
            "{name} is not installed"
        );
        eprintln!("skipping: {name} is not installed (Debian's systemd package)");
    }
    found
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let end = Instant::now() + within;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Notifications received until one contains `want`.
fn expect(sock: &UnixDatagram, want: &str, seen: &mut Vec<String>) {
    let end = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 4096];
    while Instant::now() < end {
        if let Ok(n) = sock.recv(&mut buf) {
            let m = String::from_utf8_lossy(&buf[..n]).into_owned();
            seen.push(m.clone());
            if m.contains(want) {
                return;
            }
        }
    }
    panic!("no {want:?} notification; got {seen:?}");
}

#[test]
fn units_pass_systemd_analyze_verify() {
    let Some(analyze) = tool("systemd-analyze") else { return };
    let d = TempDir::new("units");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/systemd");
    for unit in ["waygate.service", "waygate.socket"] {
        let text = std::fs::read_to_string(src.join(unit)).unwrap();
        std::fs::write(d.0.join(unit), text.replace("/usr/local/bin/waygate", bin())).unwrap();
    }
    let out = Command::new(analyze)
        .current_dir(&d.0)
        .args(["verify", "./waygate.service", "./waygate.socket"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.trim().is_empty(), "{err}");
}

#[test]
fn notify_protocol_socket_activation_reload_and_graceful_stop() {
    let Some(activate) = tool("systemd-socket-activate") else {
        return;
    };
    let d = TempDir::new("notify");
    let sock_path = d.0.join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let cfg = d.0.join("waygate.toml");
    std::fs::write(&cfg, "version = 3\n").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = Command::new(activate)
        .args(["-l", &listen, "-E", &format!("NOTIFY_SOCKET={}", sock_path.display())])
        .args(["-E", "WATCHDOG_USEC=400000", "--"])
        .arg(bin())
        .args([
            "serve",
            "--no-auth",
            "--listen",
            "127.0.0.1:1",
            "--config",
            cfg.to_str().unwrap(),
        ])
        .args(["--data-dir", d.0.join("data").to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The first connection starts the service on the passed socket (not --listen's port 1).
    let end = Instant::now() + Duration::from_secs(10);
    let mut conn = loop {
        match TcpStream::connect(&listen) {
            Ok(c) => break c,
            Err(e) if Instant::now() < end => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("socket never listened: {e}"),
        }
    };
    let mut seen = Vec::new();
    expect(&sock, "READY=1", &mut seen);
    assert!(
        seen.last()
            .unwrap()
            .contains(&format!("STATUS=serving MCP on http://{listen}/mcp")),
        "{seen:?}"
    );
    conn.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Watchdog pings at half the interval.
    expect(&sock, "WATCHDOG=1", &mut seen);
    expect(&sock, "WATCHDOG=1", &mut seen);
    // SIGHUP reloads the file: RELOADING=1 (with its timestamp), then READY=1 again.
    signal(&child, "-HUP");
    expect(&sock, "RELOADING=1", &mut seen);
    assert!(seen.last().unwrap().contains("MONOTONIC_USEC="), "{seen:?}");
    expect(&sock, "READY=1", &mut seen);
    // SIGTERM: STOPPING=1, then a clean exit.
    signal(&child, "-TERM");
    expect(&sock, "STOPPING=1", &mut seen);
    let status = wait_exit(&mut child, Duration::from_secs(20));
    let mut err = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    assert!(status.success(), "{status:?}: {err}");
    assert!(err.contains("socket activation"), "{err}");
}

#[test]
fn stdio_mode_stops_on_sigterm_and_leaves_no_upstream_behind() {
    let d = TempDir::new("stdio-term");
    let inner = TempDir::new("stdio-term-inner");
    let marker = inner.0.to_str().unwrap().to_string();
    let cfg = d.0.join("waygate.toml");
    std::fs::write(
        &cfg,
        format!(
            "version = 3\n[[upstreams]]\nname = \"inner\"\ncommand = \"{}\"\nargs = [\"serve\", \"--stdio\", \"--data-dir\", \"{marker}\"]\n",
            bin()
        ),
    )
    .unwrap();
    let mut child = Command::new(bin())
        .args(["serve", "--stdio", "--config", cfg.to_str().unwrap(), "--data-dir"])
        .arg(d.0.join("data"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    writeln!(stdin, "{init}").unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert!(line.contains("serverInfo"), "{line}");
    // The upstream child runs …
    let running = || {
        Command::new("pgrep")
            .args(["-f", &marker])
            .output()
            .map(|o| !o.stdout.is_empty())
            .unwrap_or(false)
    };
    let end = Instant::now() + Duration::from_secs(10);
    while !running() {
        assert!(Instant::now() < end, "upstream never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    // … SIGTERM with stdin still open ends the server cleanly, and the child with it.
    signal(&child, "-TERM");
    let status = wait_exit(&mut child, Duration::from_secs(20));
    assert!(status.success(), "{status:?}");
    drop(stdin);
    let end = Instant::now() + Duration::from_secs(5);
    while running() {
        assert!(Instant::now() < end, "upstream process left behind");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_reload_names_each_key_that_waits_for_a_restart() {
    use crate::catalog::{eventually, write_config};
    use crate::common::{cli_env, Server};
    let d = TempDir::new("restart-keys");
    let cfg = write_config(&d, "");
    let s = Server::start_in(Some(&d.0), &["--config", &cfg]);
    let diag = || {
        let r = s.request("GET", "/api/v1/diagnostics", &[], b"");
        serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()
    };
    assert_eq!(diag()["restart_needed"], serde_json::json!([]));
    // A live section (a virtual server) and two read-at-start keys change together.
    std::fs::write(
        &cfg,
        "version = 3\n[http]\nmax_body_bytes = 123456\n[otel]\nendpoint = \"http://127.0.0.1:4318\"\n\
         [[servers]]\nname = \"live\"\ninclude = [\"demo\"]\n",
    )
    .unwrap();
    eventually(20, "the reload", || {
        s.request("POST", "/servers/live/mcp", &[], b"").status != 404
    });
    let keys = diag()["restart_needed"].clone();
    assert_eq!(
        keys,
        serde_json::json!(["http.max_body_bytes", "otel.endpoint"]),
        "{keys}"
    );
    // A candidate is judged against the running configuration before it is applied.
    let cand = d.0.join("candidate.toml");
    std::fs::write(&cand, "version = 3\n[mcp]\npage_size = 7\n").unwrap();
    let url = format!("http://{}", s.addr);
    let validate = || {
        cli_env(
            &["config", "validate", cand.to_str().unwrap(), "--url", &url],
            &[],
            None,
        )
    };
    let (ok, out, err) = validate();
    assert!(ok && out.contains("needs a restart for: mcp.page_size"), "{out}{err}");
    // Rate limits apply live (all but the Redis connection).
    std::fs::write(&cand, "version = 3\n[limits]\nrequests_per_second = 5.0\n").unwrap();
    let (ok, out, err) = validate();
    assert!(ok && out.contains(": ok") && !out.contains("limits"), "{out}{err}");
}

/// Under systemd, stderr is the journal (`JOURNAL_STREAM` names its device and inode): log
/// lines carry the sd-daemon priority prefix and no timestamp of their own. The same
/// variable naming another file leaves the JSON lines alone.
#[test]
fn logs_suit_the_journal_when_stderr_is_the_journal() {
    use std::os::unix::fs::MetadataExt;
    let d = TempDir::new("journal");
    for matching in [true, false] {
        let log = d.0.join(format!("stderr-{matching}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let meta = file.metadata().unwrap();
        let stream = if matching {
            format!("{}:{}", meta.dev(), meta.ino())
        } else {
            format!("{}:{}", meta.dev(), meta.ino() + 1)
        };
        let mut child = Command::new(bin())
            .args(["serve", "--no-auth", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&d.0)
            .env("JOURNAL_STREAM", &stream)
            .env("WAYGATE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::from(file))
            .spawn()
            .unwrap();
        let end = Instant::now() + Duration::from_secs(20);
        while !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("store ready")
        {
            assert!(Instant::now() < end, "no start-up log line");
            std::thread::sleep(Duration::from_millis(50));
        }
        signal(&child, "-TERM");
        assert!(wait_exit(&mut child, Duration::from_secs(20)).success());
        let text = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        if matching {
            for l in &lines {
                let p = l.as_bytes();
                assert!(
                    p.len() > 3 && p[0] == b'<' && p[1].is_ascii_digit() && p[2] == b'>',
                    "no priority prefix: {l}"
                );
                assert!(!l.contains("\"timestamp\""), "{l}");
            }
            assert!(lines.iter().any(|l| l.starts_with("<6>store ready")), "{text}");
            assert!(lines.iter().any(|l| l.starts_with("<6>shutting down")), "{text}");
        } else {
            assert!(lines.iter().all(|l| l.starts_with('{')), "{text}");
        }
    }
}
