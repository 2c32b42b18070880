//! "Results are forwarded verbatim": what an upstream server writes reaches the caller as
//! it wrote it — member order, numbers a double cannot hold, string escapes — in both eras,
//! with only the members the caller's revision needs added after the server's own.

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
