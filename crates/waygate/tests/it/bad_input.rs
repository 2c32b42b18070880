//! Hostile and malformed input: every case gets the right status and JSON-RPC error
//! with a message naming the problem, and the server keeps serving.

use super::common;

use common::{Server, MODERN};
use serde_json::{json, Value};

fn jsonrpc_error(r: &common::Response) -> Value {
    let v = r.json();
    assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    v["error"].clone()
}

#[test]
fn transport_level_rejections() {
    let s = Server::start(&[]);
    let r = s.request("POST", "/mcp", &[("content-type", "application/json")], b"{not json");
    assert_eq!(r.status, 400);
    assert_eq!(jsonrpc_error(&r)["code"], -32700);

    let r = s.request("POST", "/mcp", &[("content-type", "text/plain")], b"{}");
    assert_eq!(r.status, 415);
    assert!(jsonrpc_error(&r)["message"]
        .as_str()
        .unwrap()
        .contains("application/json"));

    let r = s.request(
        "POST",
        "/mcp",
        &[("content-type", "application/json"), ("accept", "text/html")],
        b"{}",
    );
    assert_eq!(r.status, 406);

    let big = vec![b' '; 5 * 1024 * 1024];
    let r = s.request("POST", "/mcp", &[("content-type", "application/json")], &big);
    assert_eq!(r.status, 413);
    assert!(jsonrpc_error(&r)["message"].as_str().unwrap().contains("4194304"));

    let r = s.request(
        "POST",
        "/mcp",
        &[("content-type", "application/json"), ("host", "evil.example.com")],
        b"{}",
    );
    assert_eq!(r.status, 403);
    let r = s.request(
        "POST",
        "/mcp",
        &[
            ("content-type", "application/json"),
            ("origin", "http://evil.example.com"),
        ],
        b"{}",
    );
    assert_eq!(r.status, 403);

    let r = s.request("PUT", "/mcp", &[], b"");
    assert_eq!(r.status, 405);
    let r = s.request("GET", "/nope", &[], b"");
    assert_eq!(r.status, 404);
    // Still alive.
    assert_eq!(
        s.modern(
            1,
            "tools/call",
            json!({"name":"echo","arguments":{"text":"ok"}}),
            json!({})
        )
        .status,
        200
    );
}

#[test]
fn invalid_json_rpc_shapes() {
    let s = Server::start(&[]);
    for (body, code, needle) in [
        (r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#, -32600, "fractional"),
        (r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#, -32600, "jsonrpc"),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":[1]}"#,
            -32600,
            "params",
        ),
        (r#"{"jsonrpc":"2.0","id":1,"method":7}"#, -32600, "method"),
        (r#"[]"#, -32600, "batch"),
        (r#""just a string""#, -32600, "object"),
        (r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#, -32600, "id"),
    ] {
        let r = s.request("POST", "/mcp", &[("content-type", "application/json")], body.as_bytes());
        assert_eq!(r.status, 400, "{body}");
        let e = jsonrpc_error(&r);
        assert_eq!(e["code"], code, "{body}: {e}");
        assert!(e["message"].as_str().unwrap().contains(needle), "{body}: {e}");
    }
}

#[test]
fn dispatch_errors_name_the_problem() {
    let s = Server::start(&[]);
    // Legacy (headerless) requests.
    let post = |v: Value| s.post(&v, &[]).json();
    let e = post(json!({"jsonrpc":"2.0","id":1,"method":"no/such"}));
    assert_eq!(e["error"]["code"], -32601);
    let e = post(json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"nope"}}));
    assert_eq!(e["error"]["code"], -32602);
    assert!(e["error"]["message"].as_str().unwrap().contains("nope"));
    let e = post(json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":"x"}}));
    assert_eq!(e["error"]["code"], -32602);
    let e = post(json!({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","arguments":{}}}));
    assert_eq!(e["result"]["isError"], true, "argument errors are tool errors: {e}");
    let e = post(json!({"jsonrpc":"2.0","id":5,"method":"resources/read","params":{"uri":"demo://missing"}}));
    assert_eq!(e["error"]["code"], -32002);
    let e = post(json!({"jsonrpc":"2.0","id":6,"method":"tools/list","params":{"cursor":"!!bogus"}}));
    assert_eq!(e["error"]["code"], -32602);
    let e = post(json!({"jsonrpc":"2.0","id":7,"method":"logging/setLevel","params":{"level":"loud"}}));
    assert_eq!(e["error"]["code"], -32602);

    // Modern requests.
    let r = s.modern(10, "ping", json!({}), json!({}));
    assert_eq!(r.status, 404);
    assert_eq!(jsonrpc_error(&r)["code"], -32601);
    let r = s.modern(11, "resources/read", json!({"uri": "demo://missing"}), json!({}));
    assert_eq!(jsonrpc_error(&r)["code"], -32602);
    assert_eq!(r.json()["error"]["data"]["uri"], "demo://missing");
}

#[test]
fn modern_header_rules() {
    let s = Server::start(&[]);
    let env = |v: &str| json!({"io.modelcontextprotocol/protocolVersion": v, "io.modelcontextprotocol/clientCapabilities": {}});
    let call = |id: i64, meta: Value, h: &[(&str, &str)]| {
        s.post(&json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"},"_meta":meta}}), h)
    };
    let std_h = [
        ("mcp-protocol-version", MODERN),
        ("mcp-method", "tools/call"),
        ("mcp-name", "echo"),
    ];
    assert_eq!(call(1, env(MODERN), &std_h).status, 200);
    // Missing version header with the envelope.
    let r = call(2, env(MODERN), &[("mcp-method", "tools/call"), ("mcp-name", "echo")]);
    assert_eq!((r.status, jsonrpc_error(&r)["code"].clone()), (400, json!(-32020)));
    // Header/body version mismatch.
    let r = call(3, env("2099-01-01"), &std_h);
    assert_eq!((r.status, jsonrpc_error(&r)["code"].clone()), (400, json!(-32020)));
    // Unsupported version named consistently.
    let r = call(
        4,
        env("2099-01-01"),
        &[
            ("mcp-protocol-version", "2099-01-01"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "echo"),
        ],
    );
    let e = jsonrpc_error(&r);
    assert_eq!((r.status, e["code"].clone()), (400, json!(-32022)));
    assert_eq!(e["data"]["requested"], "2099-01-01");
    // A header naming no revision, without the envelope: a version error, not a missing envelope.
    let r = s.post(
        &json!({"jsonrpc":"2.0","id":40,"method":"tools/list"}),
        &[("mcp-protocol-version", "garbage")],
    );
    let e = jsonrpc_error(&r);
    assert_eq!((r.status, e["code"].clone()), (400, json!(-32022)), "{e}");
    assert!(e["message"].as_str().unwrap_or_default().contains("garbage"), "{e}");
    // Name mismatch, method mismatch, base64 sentinel accepted.
    let r = call(
        5,
        env(MODERN),
        &[
            ("mcp-protocol-version", MODERN),
            ("mcp-method", "tools/call"),
            ("mcp-name", "other"),
        ],
    );
    assert_eq!(jsonrpc_error(&r)["code"], -32020);
    let r = call(
        6,
        env(MODERN),
        &[
            ("mcp-protocol-version", MODERN),
            ("mcp-method", "tools/list"),
            ("mcp-name", "echo"),
        ],
    );
    assert_eq!(jsonrpc_error(&r)["code"], -32020);
    let r = call(
        7,
        env(MODERN),
        &[
            ("mcp-protocol-version", MODERN),
            ("mcp-method", "tools/call"),
            ("mcp-name", "=?base64?ZWNobw==?="),
        ],
    );
    assert_eq!(r.status, 200);
    // Missing envelope fields.
    let r = call(8, json!({"io.modelcontextprotocol/protocolVersion": MODERN}), &std_h);
    assert_eq!((r.status, jsonrpc_error(&r)["code"].clone()), (400, json!(-32602)));
}

#[test]
fn many_generated_garbage_bodies_never_break_the_server() {
    let s = Server::start(&[]);
    let seeds: [&[u8]; 8] = [
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"a"}}}"#,
        br#"{"jsonrpc":"2.0","id":"x","method":"initialize","params":{"protocolVersion":"2025-06-18"}}"#,
        br#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2}]"#,
        br#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
        br#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"../../etc/passwd"}}"#,
        br#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"greet","arguments":{"name":5}}}"#,
        br#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"greet"},"argument":{"name":"name","value":"a"}}}"#,
        br#"{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"taskId":"nope"}}"#,
    ];
    let mut rng = 0x2545F4914F6CDD1Du64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for i in 0..400 {
        let mut b = seeds[i % seeds.len()].to_vec();
        for _ in 0..(next() % 4) {
            let pos = (next() as usize) % b.len();
            match next() % 3 {
                0 => b[pos] = (next() % 256) as u8,
                1 => {
                    b.remove(pos);
                }
                _ => {
                    let pool = b"{}[]\":,\\\x00\xff";
                    b.insert(pos, pool[(next() as usize) % pool.len()])
                }
            }
        }
        let r = s.request("POST", "/mcp", &[("content-type", "application/json")], &b);
        assert!(
            matches!(r.status, 200 | 202 | 400 | 404),
            "status {} for {:?}",
            r.status,
            String::from_utf8_lossy(&b)
        );
        if r.status != 202 {
            let v: Value = r.json();
            assert!(v.is_object() || v.is_array(), "{v}");
        }
    }
    assert_eq!(
        s.modern(
            1,
            "tools/call",
            json!({"name":"echo","arguments":{"text":"alive"}}),
            json!({})
        )
        .status,
        200
    );
}
