//! The hostile-input suite: over a thousand generated requests against the real binary with
//! authentication on — wrong, forged, expired and revoked keys; oversize bodies; deep JSON;
//! bad Host/Origin; header smuggling; path traversal in resource URIs; unicode tricks in
//! tool names; mutated JSON-RPC. Each must get the right status and error, the server must
//! never answer 5xx or die, and no answer may leak a secret or a stack trace.

use super::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{Server, TempDir};
use serde_json::{json, Value};

/// Deterministic xorshift, so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn hex(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b"0123456789abcdef"[self.below(16)]))
            .collect()
    }
}

struct Suite<'a> {
    s: &'a Server,
    secrets: Vec<String>,
    count: usize,
}

impl Suite<'_> {
    /// Every answer: not 5xx, no secret, no stack trace or source path.
    fn clean(&mut self, what: &str, r: &common::Response) {
        self.count += 1;
        let body = r.text();
        assert!(r.status < 500, "{what}: HTTP {} {body}", r.status);
        for s in &self.secrets {
            assert!(!body.contains(s.as_str()), "{what}: leaked a secret");
        }
        for marker in ["panicked", "RUST_BACKTRACE", "src/", ".rs:", "stack backtrace"] {
            assert!(!body.contains(marker), "{what}: leaked {marker:?}: {body}");
        }
    }

    fn post(&mut self, what: &str, body: &[u8], extra: &[(&str, &str)]) -> common::Response {
        let mut h = vec![
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
        ];
        h.extend_from_slice(extra);
        let r = self.s.request("POST", "/mcp", &h, body);
        self.clean(what, &r);
        r
    }
}

fn rpc_error(r: &common::Response) -> Value {
    serde_json::from_slice::<Value>(&r.body)
        .map(|v| v["error"].clone())
        .unwrap_or(Value::Null)
}

#[test]
fn a_thousand_hostile_requests() {
    let d = TempDir::new("hostile");
    let (s, admin) = Server::start_with_auth(&d.0);
    let admin = admin.expect("admin key");
    let (ok, revoked, _) = common::cli(&["keys", "create", "gone", "--data-dir", d.0.to_str().unwrap()]);
    assert!(ok);
    let revoked = revoked.trim().to_string();
    let id = revoked.split('_').nth(1).unwrap().to_string();
    let (ok, expiring, _) = common::cli(&[
        "keys",
        "create",
        "old",
        "--expires-in-days",
        "0",
        "--data-dir",
        d.0.to_str().unwrap(),
    ]);
    assert!(ok);
    let expiring = expiring.trim().to_string();
    assert!(common::cli(&["keys", "revoke", &id, "--data-dir", d.0.to_str().unwrap()]).0);
    std::thread::sleep(Duration::from_millis(1500)); // the server re-reads keys every second
    let state_key = std::fs::read_to_string(d.0.join("state.key")).unwrap_or_default();
    let mut t = Suite {
        s: &s,
        secrets: vec![admin.clone(), revoked.clone(), state_key.trim().to_string()],
        count: 0,
    };
    let bearer = format!("Bearer {admin}");
    let auth: &[(&str, &str)] = &[("authorization", bearer.as_str())];
    let list = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);

    // 1. Credentials: 300 wrong, forged, revoked, expired keys in both headers.
    for i in 0..300 {
        let key = match i % 6 {
            0 => format!("wg_{}_{}", rng.hex(12), rng.hex(40)),
            1 => format!(
                "{}{}",
                &admin[..admin.len() - 1],
                if admin.ends_with('0') { '1' } else { '0' }
            ),
            2 => revoked.clone(),
            3 => expiring.clone(),
            4 => format!("wg_{}", "A".repeat(rng.below(4000) + 1)),
            _ => format!("eyJ{}.{}.{}", rng.hex(20), rng.hex(30), rng.hex(10)),
        };
        let (name, value) = if i % 2 == 0 {
            ("authorization", format!("Bearer {key}"))
        } else {
            ("x-api-key", key.clone())
        };
        let r = t.post("bad key", list, &[(name, value.as_str())]);
        assert_eq!(r.status, 401, "key case {i}: {}", r.text());
        assert!(r.header("www-authenticate").is_some());
        if key.len() > 8 {
            assert!(!r.text().contains(&key), "presented key echoed");
        }
    }

    // 2. Deep JSON: 100 bodies nested beyond the limit, in params, ids and batches.
    for i in 0..100 {
        let depth = 65 + rng.below(5000);
        let body = match i % 3 {
            0 => format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"echo","arguments":{{"text":{}1{}}}}}}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            ),
            1 => format!("{}{}", "[".repeat(depth), "]".repeat(depth)),
            _ => format!(r#"{{"a":{}}}"#, "{\"b\":".repeat(depth) + "1" + &"}".repeat(depth)),
        };
        let r = t.post("deep json", body.as_bytes(), auth);
        assert_eq!(r.status, 400, "depth {depth}");
        assert!(r.text().contains("nested deeper than 64"), "{}", r.text());
    }

    // 3. Oversize bodies: declared and actual, just over the 4 MiB limit.
    for extra in [1usize, 10, 4096] {
        let body = vec![b' '; 4 * 1024 * 1024 + extra];
        let r = t.post("oversize", &body, auth);
        assert_eq!(r.status, 413);
        assert!(r.text().contains("4194304"), "{}", r.text());
    }

    // 4. Host and Origin: 150 hostile values (DNS rebinding).
    for i in 0..150 {
        let host = match i % 5 {
            0 => format!("evil{}.example.com", rng.hex(4)),
            1 => format!("127.0.0.1.{}.nip.io", rng.hex(4)),
            2 => "localhost.evil.com".to_string(),
            3 => format!("10.{}.{}.{}", rng.below(255), rng.below(255), rng.below(255)),
            _ => format!("[::ffff:{}]", rng.hex(4)),
        };
        let r = if i % 2 == 0 {
            let r = s.request(
                "POST",
                "/mcp",
                &[
                    ("host", host.as_str()),
                    ("content-type", "application/json"),
                    ("authorization", bearer.as_str()),
                ],
                list,
            );
            t.clean("host", &r);
            r
        } else {
            let origin = format!("http://{host}");
            t.post(
                "origin",
                list,
                &[("origin", origin.as_str()), ("authorization", bearer.as_str())],
            )
        };
        assert_eq!(r.status, 403, "host/origin {host}: {}", r.text());
    }

    // 5. Path traversal in resource URIs: 120 variants, none may read anything.
    let traversal = [
        "demo://../../etc/passwd",
        "file:///etc/passwd",
        "demo://readme/../../../../etc/shadow",
        "demo://%2e%2e/%2e%2e/etc/passwd",
        "demo://readme%00.txt",
        "..\\..\\windows\\win.ini",
        "demo:///proc/self/environ",
        "demo://readme/..%2f..%2f",
    ];
    for i in 0..120 {
        let uri = format!("{}{}", traversal[i % traversal.len()], "/..".repeat(rng.below(4)));
        let body = json!({"jsonrpc":"2.0","id":i,"method":"resources/read","params":{"uri":uri}});
        let r = t.post("traversal", body.to_string().as_bytes(), auth);
        assert_eq!(r.status, 200);
        let e = rpc_error(&r);
        assert!(e["code"] == -32002 || e["code"] == -32602, "{uri}: {}", r.text());
        assert!(!r.text().contains("root:") && !r.text().contains("PATH="));
    }

    // 6. Unicode tricks in tool names: 150 look-alikes, invisible characters, overlong.
    let tricks = [
        "ech\u{200b}o",
        "ｅｃｈｏ",
        "echo\u{0000}",
        "\u{202e}ohce",
        "e\u{0301}cho",
        "ЕСНО",
        "echo ",
        " echo",
        "ECHO",
        "echo\n",
        "echo\u{feff}",
    ];
    for i in 0..150 {
        let name = if i % 15 == 14 {
            "x".repeat(100_000)
        } else {
            tricks[i % tricks.len()].repeat(1 + rng.below(3))
        };
        let body =
            json!({"jsonrpc":"2.0","id":i,"method":"tools/call","params":{"name":name,"arguments":{"text":"x"}}});
        let r = t.post("unicode tool", body.to_string().as_bytes(), auth);
        let e = rpc_error(&r);
        assert_eq!(e["code"], -32602, "{name:?}: {}", r.text());
        assert!(e["message"].as_str().unwrap().starts_with("Unknown tool"));
    }

    // 7. Mutated JSON-RPC: 200 random corruptions of a valid request.
    let valid = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}"#;
    for _ in 0..200 {
        let mut b = valid.to_vec();
        for _ in 0..1 + rng.below(6) {
            let at = rng.below(b.len());
            match rng.below(3) {
                0 => b[at] = rng.next() as u8,
                1 => {
                    b.remove(at);
                }
                _ => {
                    let pool = b"{}[]\",:\\0\xff";
                    b.insert(at, pool[rng.below(pool.len())])
                }
            }
        }
        let r = t.post("mutated", &b, auth);
        assert!(matches!(r.status, 200 | 202 | 400), "HTTP {}: {}", r.status, r.text());
        if r.status == 400 {
            let code = rpc_error(&r)["code"].as_i64().unwrap_or(0);
            assert!([-32700, -32600, -32602, -32601].contains(&code), "{}", r.text());
        }
    }

    // 8. Header smuggling and malformed heads on raw connections: 30 cases.
    let smuggle: [&str; 6] = [
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd",
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: xchunked\r\n\r\n",
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n Folded: header\r\nContent-Length: 0\r\n\r\n",
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Bad\x00Header: v\r\nContent-Length: 0\r\n\r\n",
        "GET /../../etc/passwd HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    ];
    for i in 0..30 {
        let mut c = TcpStream::connect(&s.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).ok();
        let _ = c.write_all(smuggle[i % smuggle.len()].as_bytes());
        let _ = c.shutdown(std::net::Shutdown::Write);
        let mut raw = Vec::new();
        let _ = c.read_to_end(&mut raw);
        let text = String::from_utf8_lossy(&raw);
        t.count += 1;
        // Either refused (4xx) or answered as one unauthenticated request; never the
        // smuggled second request's metrics, never 5xx.
        assert!(
            !text.contains("waygate_requests_total"),
            "smuggled request served: {text}"
        );
        assert!(!text.contains(" 500 ") && !text.contains("root:"), "{text}");
    }
    // 9. Too many headers: 431.
    let many: Vec<(String, String)> = (0..100).map(|i| (format!("x-h{i}"), "v".to_string())).collect();
    let refs: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = s.request("POST", "/mcp", &refs, list);
    t.clean("many headers", &r);
    assert_eq!(r.status, 431);

    assert!(t.count >= 1000, "only {} hostile requests", t.count);
    // And the server still answers properly.
    let ok = t.post("final", list, auth);
    assert_eq!(ok.status, 200);
    assert!(ok.json()["result"]["tools"].as_array().is_some_and(|a| !a.is_empty()));
}
