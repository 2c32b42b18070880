//! A Streamable HTTP upstream that answers badly, one way per tool: a body cut short, bytes
//! that are not HTTP, an HTTP 500 page, a head larger than any sane server sends, a body
//! that never ends, an SSE stream that never answers, an answer to another request, an
//! empty or result-less body. Each call must fail alone with an error naming what went
//! wrong — never hand the caller an answer that is not its own — and the upstream must stay
//! up for everyone else: the very next call of a good tool works, with no reconnect.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::*;

const TOOLS: &[&str] = &[
    "good",
    "short_body",
    "garbage",
    "html_500",
    "huge_head",
    "endless_body",
    "silent_stream",
    "wrong_id",
    "empty_body",
    "no_result",
];

fn json_reply(id: &Value, result: Value) -> Vec<u8> {
    let body = json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string();
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// One request off the connection: `None` when the peer closed it.
fn read_request(r: &mut BufReader<TcpStream>) -> Option<Value> {
    let mut len = 0usize;
    let mut line = String::new();
    r.read_line(&mut line).ok().filter(|n| *n > 0)?;
    loop {
        line.clear();
        r.read_line(&mut line).ok().filter(|n| *n > 0)?;
        if line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Serves one connection; returns when the answer was to close it.
fn serve(conn: TcpStream) {
    let mut w = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    while let Some(msg) = read_request(&mut r) {
        let Some(id) = msg.get("id").cloned() else {
            let _ = w.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n");
            continue;
        };
        let reply = match msg["method"].as_str().unwrap_or_default() {
            "initialize" => json_reply(
                &id,
                json!({"protocolVersion": msg["params"]["protocolVersion"], "capabilities": {"tools": {}},
                       "serverInfo": {"name": "hostile", "version": "1"}}),
            ),
            "tools/list" => json_reply(
                &id,
                json!({"tools": TOOLS.iter().map(|t| json!({"name": t, "inputSchema": {"type": "object"}})).collect::<Vec<_>>()}),
            ),
            "tools/call" => match msg["params"]["name"].as_str().unwrap_or_default() {
                "good" => json_reply(&id, json!({"content": [{"type": "text", "text": "fine"}]})),
                "short_body" => {
                    let _ = w.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"jsonrpc\"");
                    return;
                }
                "garbage" => {
                    let _ = w.write_all(b"\x00\x01 not HTTP at all\r\n\r\n");
                    return;
                }
                "html_500" => b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/html\r\nContent-Length: 17\r\n\r\n<html>boom</html>".to_vec(),
                "huge_head" => {
                    let mut head = b"HTTP/1.1 200 OK\r\nX-Big: ".to_vec();
                    head.extend(std::iter::repeat_n(b'a', 2 << 20));
                    head.extend(b"\r\nContent-Length: 2\r\n\r\n{}");
                    let _ = w.write_all(&head);
                    return;
                }
                "endless_body" => {
                    let _ = w.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
                    let chunk = [b' '; 1 << 16];
                    // Bounded: 128 MiB, twice what the gateway reads of one body.
                    for _ in 0..2048 {
                        if w.write_all(b"10000\r\n").and_then(|_| w.write_all(&chunk)).and_then(|_| w.write_all(b"\r\n")).is_err() {
                            break;
                        }
                    }
                    return;
                }
                "silent_stream" => {
                    let _ = w.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n");
                    for _ in 0..40 {
                        if w.write_all(b"9\r\n: ping\n\n\n\r\n").is_err() {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(250));
                    }
                    return;
                }
                "wrong_id" => json_reply(
                    &json!(id.as_i64().unwrap_or(0) + 1000),
                    json!({"content": [{"type": "text", "text": "meant for another request"}]}),
                ),
                "empty_body" => b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 0\r\n\r\n".to_vec(),
                "no_result" => {
                    let body = json!({"jsonrpc": "2.0", "id": id}).to_string();
                    format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
                }
                other => panic!("unexpected tool {other}"),
            },
            _ => json_reply(&id, json!({})),
        };
        if w.write_all(&reply).is_err() {
            return;
        }
    }
}

fn call(s: &Server, id: i64, tool: &str) -> Value {
    s.post(
        &json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":{}}}),
        &[],
    )
    .json()
}

fn tool_text(r: &Value) -> String {
    r["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn upstream_state(s: &Server) -> Value {
    let d = s.request("GET", "/api/v1/diagnostics", &[], b"").json();
    d["upstreams"]
        .as_array()
        .and_then(|a| a.iter().find(|u| u["name"] == "hostile").cloned())
        .unwrap_or(Value::Null)
}

#[test]
fn a_broken_answer_fails_its_own_call_and_leaves_the_upstream_up() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || serve(conn));
        }
    });
    let d = TempDir::new("hostile-upstream");
    // No circuit breaker: every bad answer must reach the call that got it.
    let s = gateway_with_upstream(
        &d.0,
        &format!(
            "name = \"hostile\"\nprefix = \"never\"\ntransport = \"http\"\nurl = \"http://{addr}/mcp\"\n\
             timeout_secs = 2\nbreaker_failures = 0\n"
        ),
    );
    eventually(10, "the hostile upstream's tools", || {
        tool_text(&call(&s, 1, "good")) == "fine"
    });

    let cases: &[(&str, &str)] = &[
        ("short_body", "the connection broke during the exchange"),
        ("garbage", "the connection broke during the exchange"),
        ("html_500", "HTTP 500 Internal Server Error: <html>boom</html>"),
        ("huge_head", "the connection broke during the exchange"),
        ("endless_body", "response body over"),
        ("silent_stream", "no answer within 2000 ms"),
        ("wrong_id", "carries id"),
        ("empty_body", "response is not JSON"),
        ("no_result", "response without result or error"),
    ];
    for (i, (tool, expected)) in cases.iter().enumerate() {
        let started = Instant::now();
        let r = call(&s, 100 + i as i64, tool);
        assert_eq!(r["result"]["isError"], true, "{tool}: {r}");
        let text = tool_text(&r);
        assert!(text.starts_with("upstream hostile: "), "{tool}: {text}");
        assert!(text.contains(expected), "{tool}: expected {expected:?} in {text:?}");
        assert!(!text.contains("meant for another request"), "{tool}: {text}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{tool} took {:?}",
            started.elapsed()
        );
        // The next caller is served at once: no reconnect, no pause.
        let r = call(&s, 200 + i as i64, "good");
        assert_eq!(tool_text(&r), "fine", "after {tool}: {r}");
    }
    let state = upstream_state(&s);
    assert_eq!(state["state"], "up", "{state}");
    assert_eq!(state["restarts"], 0, "{state}");
}
