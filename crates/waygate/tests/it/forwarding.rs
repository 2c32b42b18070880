//! "Forwarded verbatim", both ways: what an upstream server writes reaches the caller as
//! it wrote it — member order, numbers a double cannot hold, string escapes — in both eras,
//! with only the members the caller's revision needs added after the server's own; and a
//! caller's tool arguments reach the upstream as the caller wrote them.

use serde_json::json;

use crate::catalog::{eventually, write_config};
use crate::common::{Server, TempDir};
use crate::containment::upstream;

/// The server's result as the fixture writes it (see `VERBATIM` in faulty_server.py).
const STRUCTURED: &str = r#""structuredContent":{"zeta":1,"alpha":123456789012345678901234567890,"pi":3.14159265358979323846264338327950288,"huge":1E+400,"tiny":-0.0}"#;
const CONTENT: &str = r#""content":[{"type":"text","text":"line\nbreak \u00e9"}],"isError":false"#;

#[test]
fn an_upstreams_result_reaches_the_caller_byte_for_byte() {
    let d = TempDir::new("verbatim");
    let cfg = write_config(&d, &upstream("up", &[], ""));
    let s = Server::start_in(Some(&d.0), &["--config", &cfg]);
    let call = json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"up__verbatim","arguments":{}}});
    eventually(15, "the upstream's tools listed", || {
        s.post(&call, &[("mcp-protocol-version", "2025-11-25")])
            .text()
            .contains("structuredContent")
    });

    // A handshake-era caller: the result is exactly the server's text.
    let r = s.post(&call, &[("mcp-protocol-version", "2025-11-25")]);
    assert_eq!(r.status, 200);
    let body = r.text();
    let expected = format!("\"result\":{{{STRUCTURED},{CONTENT}}}");
    assert!(
        body.contains(&expected),
        "not forwarded verbatim:\n{body}\nwanted {expected}"
    );

    // A 2026-07-28 caller: the same bytes, then resultType and the gateway's identity.
    let r = s.modern(
        8,
        "tools/call",
        json!({"name": "up__verbatim", "arguments": {}}),
        json!({}),
    );
    assert_eq!(r.status, 200);
    let body = r.text();
    let expected = format!("\"result\":{{{STRUCTURED},{CONTENT},\"resultType\":\"complete\",\"_meta\":{{");
    assert!(
        body.contains(&expected),
        "not forwarded verbatim:\n{body}\nwanted {expected}"
    );
    assert!(body.contains("io.modelcontextprotocol/serverInfo"), "{body}");

    // Still one JSON value a client can read (Python keeps 1E+400 as inf).
    let py = std::process::Command::new("python3")
        .args(["-c", "import json,sys; m=json.loads(sys.stdin.read()); assert m['result']['resultType']=='complete'; print(m['result']['content'][0]['text'])"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(body.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(py.status.success(), "python could not read the answer: {body}");
    assert_eq!(String::from_utf8_lossy(&py.stdout).trim_end(), "line\nbreak é");
}

/// Arguments as a client might write them: keys out of order, an integer and a decimal no
/// double holds, an escape, a negative zero.
const ARGUMENTS: &str = r#"{"zeta":1,"alpha":123456789012345678901234567890,"pi":3.14159265358979323846264338327950288,"e":"\u00e9","tiny":-0.0,"list":[1.10,{"b":2,"a":1}]}"#;

/// The line the fixture's `received` tool got, from the caller's answer.
fn received(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    v["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text in {body}"))
        .to_string()
}

#[test]
fn a_callers_arguments_reach_the_upstream_as_the_caller_wrote_them() {
    let d = TempDir::new("verbatim-args");
    // A pre-call hook that rewrites only arguments holding a credential.
    let hook = "[[hooks]]\nname = \"redact\"\nkind = \"redact_secrets\"\nsettings = { phases = [\"pre\"] }\n";
    let cfg = write_config(&d, &format!("{}{hook}", upstream("up", &[], "")));
    let s = Server::start_in(Some(&d.0), &["--config", &cfg]);
    let headers = [
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("mcp-protocol-version", "2025-11-25"),
    ];
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"up__received","arguments":{ARGUMENTS}}}}}"#
    );
    eventually(15, "the upstream's tools listed", || {
        s.request("POST", "/mcp", &headers, body.as_bytes())
            .text()
            .contains("tools/call")
    });

    // A handshake-era caller: the upstream's request carries the caller's text.
    let line = received(&s.request("POST", "/mcp", &headers, body.as_bytes()).text());
    assert!(
        line.contains(&format!(r#""arguments":{ARGUMENTS}"#)),
        "arguments not forwarded as written:\n{line}\nwanted {ARGUMENTS}"
    );

    // A 2026-07-28 caller, pretty-printed: only the line breaks go (the upstream reads
    // one message per line), every token stays as written.
    let pretty = "{\n  \"jsonrpc\": \"2.0\",\n  \"id\": 2,\n  \"method\": \"tools/call\",\n  \"params\": {\n    \"name\": \"up__received\",\n    \"arguments\": {\n      \"b\": 10000000000000000000001,\r\n      \"a\": \"x\"\n    },\n    \"_meta\": {\"io.modelcontextprotocol/protocolVersion\": \"2026-07-28\", \"io.modelcontextprotocol/clientCapabilities\": {}, \"io.modelcontextprotocol/clientInfo\": {\"name\": \"t\", \"version\": \"1\"}}\n  }\n}\n";
    let modern = [
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "up__received"),
    ];
    let r = s.request("POST", "/mcp", &modern, pretty.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let line = received(&r.text());
    assert!(
        line.contains(r#""arguments":{      "b": 10000000000000000000001,      "a": "x"    }"#),
        "arguments not forwarded as written:\n{line}"
    );

    // Arguments the tree must write (null: the tool gets an empty object) still go out.
    let r = s.post(
        &json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"up__received","arguments":null}}),
        &[("mcp-protocol-version", "2025-11-25")],
    );
    assert!(received(&r.text()).contains(r#""arguments":{}"#), "{}", r.text());

    // The caller's own `_meta` members go on; MCP's reserved keys and the progress token
    // belong to this hop (progress comes back under the caller's token).
    let r = s.post(
        &json!({"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"up__received","arguments":{},
            "_meta":{"com.example/tenant":"t1","progressToken":"p1","io.modelcontextprotocol/related-task":{"taskId":"x"}}}}),
        &[("mcp-protocol-version", "2025-11-25")],
    );
    let line = received(&r.text());
    assert!(line.contains(r#""_meta":{"com.example/tenant":"t1""#), "{line}");
    assert!(!line.contains("p1") && !line.contains("related-task"), "{line}");
    let r = s.modern(
        6,
        "tools/call",
        json!({"name": "up__received", "arguments": {"a": 1}, "_meta": {"com.example/tenant": "t2"}}),
        json!({}),
    );
    let line = received(&r.text());
    assert!(line.contains(r#""_meta":{"com.example/tenant":"t2"}"#), "{line}");
    assert!(
        !line.contains("clientCapabilities"),
        "a session-era upstream got the caller's envelope: {line}"
    );

    // Arguments that repeat a key go out as they were checked (the last value), never as
    // text an upstream's parser might read differently.
    let repeated = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"up__received","arguments":{"cmd":"rm -rf /","cmd":"ls"}}}"#;
    let line = received(&s.request("POST", "/mcp", &headers, repeated.as_bytes()).text());
    assert!(line.contains(r#""arguments":{"cmd":"ls"}"#), "{line}");

    // What a hook changed goes out as the hook left it, not as the caller wrote it.
    let r = s.post(
        &json!({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"up__received","arguments":{"note":"token=abcdef123456"}}}),
        &[("mcp-protocol-version", "2025-11-25")],
    );
    let line = received(&r.text());
    assert!(line.contains(r#""arguments":{"note":"[REDACTED]"}"#), "{line}");
}
