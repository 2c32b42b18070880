//! Transport guards of the real binary: an oversize body sent in full before reading still
//! gets its 413, the Host/Origin guard holds on every listener, and a listener off loopback
//! without a host list does not start.

use super::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{bin, Server, TempDir};

/// What `http.client` and httpx do: write every byte of the body, only then read.
fn send_all_then_read(addr: &str, body_len: usize) -> (std::io::Result<()>, common::Response) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {body_len}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).expect("head");
    let chunk = vec![b' '; 64 * 1024];
    let mut left = body_len;
    let mut wrote = Ok(());
    while left > 0 {
        let n = left.min(chunk.len());
        if let Err(e) = s.write_all(&chunk[..n]) {
            wrote = Err(e);
            break;
        }
        left -= n;
    }
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    assert!(!raw.is_empty(), "no answer at all (write result: {wrote:?})");
    (wrote, common::parse_response(&raw))
}

#[test]
fn oversize_body_written_in_full_gets_the_413() {
    let s = Server::start(&[]);
    // 12 MiB against the default 4 MiB limit, with and without a Content-Length the
    // server can refuse up front.
    let (wrote, r) = send_all_then_read(&s.addr, 12 * 1024 * 1024);
    assert!(
        wrote.is_ok(),
        "the server reset the connection while the client wrote: {wrote:?}"
    );
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.text().contains("http.max_body_bytes"), "{}", r.text());

    // Python's own client, when the machine has one: no broken pipe, the 413 and its message.
    let script = format!(
        "import http.client,json\n\
         c=http.client.HTTPConnection('{}',timeout=30)\n\
         c.request('POST','/mcp',body=b' '*(9*1024*1024),headers={{'Content-Type':'application/json','Accept':'application/json, text/event-stream'}})\n\
         r=c.getresponse(); b=r.read()\n\
         print(r.status, json.loads(b)['error']['message'])\n",
        s.addr
    );
    if let Ok(out) = std::process::Command::new("python3").args(["-c", &script]).output() {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "python client failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.starts_with("413 ") && text.contains("4194304 bytes"), "{text}");
    }
    // The server is fine afterwards.
    let ok = s.post(&serde_json::json!({"jsonrpc":"2.0","id":1,"method":"ping"}), &[]);
    assert_eq!(ok.status, 200);
}

#[test]
fn host_list_is_enforced_and_an_open_listener_needs_one() {
    let d = TempDir::new("hosts");
    std::fs::write(
        d.0.join("waygate.toml"),
        "version = 3\n[http]\nallowed_hosts = [\"mcp.internal\"]\n",
    )
    .unwrap();
    let s = Server::start_in(Some(&d.0), &[]);
    let ping = br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let h = |host: &str, origin: Option<&str>| {
        let mut v = vec![
            ("host", host.to_string()),
            ("content-type", "application/json".to_string()),
            ("accept", "application/json, text/event-stream".to_string()),
        ];
        if let Some(o) = origin {
            v.push(("origin", o.to_string()));
        }
        v
    };
    let send = |v: Vec<(&str, String)>| {
        let refs: Vec<(&str, &str)> = v.iter().map(|(k, v)| (*k, v.as_str())).collect();
        s.request("POST", "/mcp", &refs, ping)
    };
    assert_eq!(send(h("mcp.internal:8080", None)).status, 200);
    assert_eq!(send(h("localhost", None)).status, 200);
    let r = send(h("rebound.attacker.example", None));
    assert_eq!(r.status, 403);
    assert!(r.text().contains("http.allowed_hosts"), "{}", r.text());
    assert_eq!(
        send(h("mcp.internal", Some("https://attacker.example"))).status,
        403,
        "foreign origin"
    );

    // Off loopback with no host list: refused before anything is bound, naming the key.
    let d2 = TempDir::new("hosts-open");
    let out = std::process::Command::new(bin())
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir", d2.0.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("http.allowed_hosts"), "{err}");
    let cfg = d2.0.join("open.toml");
    std::fs::write(&cfg, "version = 3\n[server]\nlisten = \"0.0.0.0:8080\"\n").unwrap();
    let (ok, _, err) = common::cli(&["config", "validate", cfg.to_str().unwrap()]);
    assert!(!ok && err.contains("http.allowed_hosts"), "{err}");
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn a_client_that_stops_reading_its_stream_cannot_grow_memory() {
    let d = TempDir::new("stall");
    std::fs::write(
        d.0.join("waygate.toml"),
        "version = 3\n[http]\nmax_stream_buffer_bytes = 4194304\n",
    )
    .unwrap();
    let s = Server::start_in(Some(&d.0), &[]);
    // A legacy SSE client opens its stream and never reads it again.
    let mut stream = common::Stream::open(&s.addr, "GET", "/sse", &[("accept", "text/event-stream")], b"");
    let (_, endpoint) = stream.next_event().expect("endpoint event");
    let post = |body: &str| {
        s.request(
            "POST",
            &endpoint,
            &[("content-type", "application/json")],
            body.as_bytes(),
        )
        .status
    };
    let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    assert_eq!(post(init), 202);
    let text = "x".repeat(1024 * 1024);
    let before = rss_kib(s.pid());
    let mut accepted = 0;
    // 120 answers of 1 MiB each would be 120 MiB queued for a reader that never reads.
    for i in 1..=120 {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":{i},"method":"tools/call","params":{{"name":"echo","arguments":{{"text":"{text}"}}}}}}"#
        );
        match post(&body) {
            202 => accepted += 1,
            404 => break, // the connection was ended for not reading: the policy at work
            other => panic!("unexpected status {other}"),
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_kib(s.pid());
    let grown_mib = after.saturating_sub(before) / 1024;
    assert!(
        grown_mib < 48,
        "RSS grew {grown_mib} MiB ({before} -> {after} KiB) after {accepted} answers to a stalled reader"
    );
    assert!(accepted < 120, "the stalled stream was never ended");
    let metrics = s.request("GET", "/metrics", &[], b"").text();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("waygate_stream_overflows_total ") && !l.ends_with(" 0")),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("overflow"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The server still serves everyone else.
    let ok = s.post(&serde_json::json!({"jsonrpc":"2.0","id":1,"method":"ping"}), &[]);
    assert_eq!(ok.status, 200);
}
