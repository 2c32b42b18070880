//! The gateway catalog: exposed names (prefixes, provider-safe mangling, stability,
//! collisions), per-upstream filters and overrides, virtual servers on every transport,
//! credentials limited to virtual servers, and a legacy HTTP+SSE third-party upstream.

use serde_json::{json, Value};

use crate::common::{self, bin, Response, Server, Stdio_, TempDir};

const MODERN: &str = "2026-07-28";

pub(crate) use crate::common::eventually;

/// A 2026-07-28 request to `path` (`/mcp` or `/servers/{name}/mcp`).
pub(crate) fn modern_at(
    s: &Server,
    path: &str,
    id: i64,
    method: &str,
    mut params: Value,
    auth: Option<&str>,
) -> Response {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "waygate-test", "version": "1"}
    });
    let name = params
        .get("name")
        .or_else(|| params.get("uri"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut h: Vec<(&str, &str)> = vec![
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("mcp-protocol-version", MODERN),
        ("mcp-method", method),
    ];
    if let Some(n) = &name {
        h.push(("mcp-name", n));
    }
    let bearer = auth.map(|k| format!("Bearer {k}"));
    if let Some(b) = &bearer {
        h.push(("authorization", b));
    }
    let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    s.request("POST", path, &h, body.to_string().as_bytes())
}

fn tool_names(list: &Value) -> Vec<String> {
    let mut v: Vec<String> = list["result"]["tools"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

pub(crate) fn tools_at(s: &Server, path: &str, auth: Option<&str>) -> Vec<String> {
    tool_names(&modern_at(s, path, 1, "tools/list", json!({}), auth).json())
}

pub(crate) fn legacy_post(s: &Server, path: &str, sid: Option<&str>, body: &Value) -> Response {
    let mut h = vec![
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("mcp-protocol-version", "2025-06-18"),
    ];
    if let Some(sid) = sid {
        h.push(("mcp-session-id", sid));
    }
    s.request("POST", path, &h, body.to_string().as_bytes())
}

pub(crate) fn write_config(d: &TempDir, body: &str) -> String {
    let cfg = d.0.join("gateway.toml");
    std::fs::write(&cfg, format!("version = 3\n{body}")).unwrap();
    cfg.to_str().unwrap().to_string()
}

/// The binary itself as a stdio upstream (it serves the demo plugin).
pub(crate) fn self_upstream(name: &str, extra: &str) -> String {
    let dir = TempDir::new("inner");
    let path = dir.0.to_str().unwrap().to_string();
    std::mem::forget(dir); // the upstream outlives this helper; the OS temp dir is cleaned by the test runner's TMP
    format!(
        "[[upstreams]]\nname = \"{name}\"\ncommand = \"{}\"\nargs = [\"serve\", \"--stdio\", \"--data-dir\", \"{path}\"]\n{extra}\n",
        bin()
    )
}

#[test]
fn virtual_servers_on_every_transport_with_their_own_view_and_instructions() {
    let d = TempDir::new("vs");
    let cfg = write_config(
        &d,
        "[server]\ninstructions = \"The whole gateway.\"\n\
         [[servers]]\nname = \"calc\"\ntitle = \"Calculator\"\ninstructions = \"Only math.\"\ninclude = [\"demo/add\", \"demo/greet\"]\n\
         [[servers]]\nname = \"readonly\"\ninclude = [\"demo\"]\nannotations = { readOnlyHint = true }\n",
    );
    let s = Server::start_in(Some(&d.0), &["--config", &cfg]);
    let all = tools_at(&s, "/mcp", None);
    assert!(all.len() > 2 && all.contains(&"echo".to_string()), "{all:?}");
    assert_eq!(tools_at(&s, "/servers/calc/mcp", None), ["add"]);
    let ro = tools_at(&s, "/servers/readonly/mcp", None);
    assert!(
        ro.contains(&"echo".to_string()) && !ro.contains(&"ask_name".to_string()),
        "{ro:?}"
    );

    // A tool outside the view is answered exactly like an unknown one.
    let hidden = modern_at(
        &s,
        "/servers/calc/mcp",
        2,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "x"}}),
        None,
    );
    let unknown = modern_at(
        &s,
        "/servers/calc/mcp",
        2,
        "tools/call",
        json!({"name": "nope", "arguments": {}}),
        None,
    );
    assert_eq!(hidden.status, unknown.status);
    assert_eq!(
        hidden.json()["error"]["message"]
            .as_str()
            .map(|m| m.replace("echo", "X")),
        unknown.json()["error"]["message"]
            .as_str()
            .map(|m| m.replace("nope", "X")),
        "{}",
        hidden.text()
    );
    let ok = modern_at(
        &s,
        "/servers/calc/mcp",
        3,
        "tools/call",
        json!({"name": "add", "arguments": {"a": 2, "b": 3}}),
        None,
    );
    assert_eq!(ok.json()["result"]["structuredContent"]["sum"], 5.0, "{}", ok.text());
    // Prompts and resources follow the same patterns; the view's own instructions.
    let prompts = modern_at(&s, "/servers/calc/mcp", 4, "prompts/list", json!({}), None).json();
    assert_eq!(
        prompts["result"]["prompts"].as_array().map(Vec::len),
        Some(1),
        "{prompts}"
    );
    let res = modern_at(&s, "/servers/calc/mcp", 5, "resources/list", json!({}), None).json();
    assert_eq!(res["result"]["resources"], json!([]), "{res}");
    let read = modern_at(
        &s,
        "/servers/calc/mcp",
        6,
        "resources/read",
        json!({"uri": "demo://readme"}),
        None,
    )
    .json();
    assert!(read.get("error").is_some(), "{read}");
    let disc = modern_at(&s, "/servers/calc/mcp", 7, "server/discover", json!({}), None).json();
    assert_eq!(disc["result"]["instructions"], "Only math.", "{disc}");
    let disc = modern_at(&s, "/mcp", 7, "server/discover", json!({}), None).json();
    assert_eq!(disc["result"]["instructions"], "The whole gateway.", "{disc}");

    // Session era: the session belongs to the virtual server it was opened on.
    let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}});
    let r = legacy_post(&s, "/servers/calc/mcp", None, &init);
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["result"]["instructions"], "Only math.", "{body}");
    assert_eq!(body["result"]["serverInfo"]["title"], "Calculator", "{body}");
    let sid = r.header("mcp-session-id").expect("session id").to_string();
    let list = json!({"jsonrpc":"2.0","id":2,"method":"tools/list"});
    let r = legacy_post(&s, "/servers/calc/mcp", Some(&sid), &list);
    assert_eq!(tool_names(&r.json()), ["add"]);
    for other in ["/mcp", "/servers/readonly/mcp"] {
        let r = legacy_post(&s, other, Some(&sid), &list);
        assert_eq!(
            r.status,
            404,
            "{other}: a session of another endpoint is unknown here: {}",
            r.text()
        );
    }
    // Legacy SSE on the virtual server: the endpoint event stays on it.
    let mut st = common::Stream::open(
        &s.addr,
        "GET",
        "/servers/calc/sse",
        &[("accept", "text/event-stream")],
        b"",
    );
    let (event, data) = st.next_event().expect("endpoint event");
    assert_eq!(event, "endpoint");
    assert!(data.starts_with("/servers/calc/messages?sessionId="), "{data}");
    // Unknown servers and unknown paths under a server are 404.
    assert_eq!(
        modern_at(&s, "/servers/nope/mcp", 1, "tools/list", json!({}), None).status,
        404
    );
    assert_eq!(s.request("GET", "/servers/calc/metrics", &[], b"").status, 404);

    // stdio: `serve --stdio --server calc`.
    let mut io = Stdio_::start(&["--config", &cfg, "--server", "calc"]);
    io.send(&json!({"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {}}}}));
    let (r, _) = io.recv_response(1);
    assert_eq!(tool_names(&r), ["add"], "{r}");
    let (ok, _, err) = common::cli(&["serve", "--stdio", "--config", &cfg, "--server", "nope"]);
    assert!(
        !ok && err.contains("no such virtual server") && err.contains("calc"),
        "{err}"
    );
}

#[test]
fn a_key_limited_to_one_virtual_server_reaches_only_that_one() {
    let d = TempDir::new("vs-key");
    let cfg = write_config(
        &d,
        "[[servers]]\nname = \"calc\"\ninclude = [\"demo/add\"]\n\
         [[servers]]\nname = \"ops\"\ninclude = [\"demo\"]\nscopes = [\"ops\"]\n",
    );
    let limited = crate::isolation::offline_key(&d, "calc-only", "mcp,server:calc");
    let plain = crate::isolation::offline_key(&d, "plain", "mcp");
    let (s, _) = Server::start_auth_with(&d.0, &["--config", &cfg]);
    assert_eq!(tools_at(&s, "/servers/calc/mcp", Some(&limited)), ["add"]);
    let r = modern_at(&s, "/mcp", 1, "tools/list", json!({}), Some(&limited));
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("limited to virtual servers"), "{}", r.text());
    // Another server is as unknown as a server that does not exist.
    let other = modern_at(&s, "/servers/ops/mcp", 1, "tools/list", json!({}), Some(&limited));
    let none = modern_at(&s, "/servers/zzz/mcp", 1, "tools/list", json!({}), Some(&limited));
    assert_eq!((other.status, none.status), (404, 404));
    // A plain key uses /mcp and open servers, but not one that needs a scope it lacks.
    assert!(tools_at(&s, "/mcp", Some(&plain)).len() > 1);
    assert_eq!(tools_at(&s, "/servers/calc/mcp", Some(&plain)), ["add"]);
    assert_eq!(
        modern_at(&s, "/servers/ops/mcp", 1, "tools/list", json!({}), Some(&plain)).status,
        404
    );
    // Without a key: 401 as everywhere.
    assert_eq!(
        modern_at(&s, "/servers/calc/mcp", 1, "tools/list", json!({}), None).status,
        401
    );
}

#[test]
fn exposed_names_are_provider_safe_stable_and_collisions_are_reported() {
    let d = TempDir::new("names");
    let long = "a-really-long-upstream-name-that-someone-chose-for-clarity-x";
    let body = [
        self_upstream("inner", ""),
        self_upstream("my.server", "prefix = \"always\""),
        self_upstream(long, "prefix = \"always\""),
        self_upstream("n1", "prefix = \"never\"\ntools.allow = [\"echo\"]"),
        self_upstream("n2", "prefix = \"never\"\ntools.allow = [\"echo\"]"),
        self_upstream(
            "filtered",
            "prefix = \"always\"\nprefix_with = \"f\"\ntools.deny = [\"add\", \"n*\"]\n\
             [upstreams.tools.overrides.echo]\ndescription = \"Fixed description\"\nannotations = { destructiveHint = false }",
        ),
    ]
    .concat();
    let cfg = write_config(&d, &body);
    let s = Server::start_in(Some(&d.0), &["--config", &cfg]);
    let list = |s: &Server| {
        s.post(&json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}), &[])
            .json()["result"]["tools"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    eventually(30, "every upstream's tools", || {
        let names: Vec<String> = list(&s)
            .iter()
            .filter_map(|t| t["name"].as_str().map(str::to_string))
            .collect();
        names.iter().any(|n| n.starts_with("f__")) && names.iter().filter(|n| n.contains("echo")).count() >= 6
    });
    let tools = list(&s);
    let names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
    let re_ok = |n: &str| {
        !n.is_empty() && n.len() <= 64 && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    assert!(names.iter().all(|n| re_ok(n)), "{names:?}");
    // `never` (n1, first of the two) takes the bare name; on-conflict plugins (the local
    // demo plugin, inner) yield and are prefixed; the second `never` is a reported collision.
    for n in ["echo", "demo__echo", "inner__echo", "n2__echo", "add"] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }
    // A name with a character providers refuse, and one past 64 characters, are mangled
    // deterministically and still callable.
    let dotted = *names
        .iter()
        .find(|n| n.starts_with("my_server__echo"))
        .expect("mangled my.server");
    assert_ne!(dotted, "my_server__echo", "a replaced character adds a hash suffix");
    let long_echo = tools
        .iter()
        .find(|t| {
            t["description"] == "Returns the given text unchanged."
                && t["name"].as_str().unwrap().starts_with(&long[..20])
        })
        .and_then(|t| t["name"].as_str())
        .expect("the long upstream's echo");
    assert_eq!(long_echo.len(), 64, "{long_echo}");
    for n in [dotted, long_echo, "inner__echo"] {
        let r = s.post(
            &json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name": n, "arguments": {"text": "hi"}}}),
            &[],
        );
        assert_eq!(r.json()["result"]["content"][0]["text"], "hi", "{n}: {}", r.text());
    }
    // never + never: both stay callable, the collision is reported (diagnostics, metric).
    let diag = s.request("GET", "/api/v1/diagnostics", &[], b"").json();
    assert!(
        diag["catalog"]["name_collisions"]
            .as_array()
            .is_some_and(|c| c.iter().any(|x| x == "echo")),
        "{diag}"
    );
    let metrics = s.request("GET", "/metrics", &[], b"").text();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("waygate_catalog_name_collisions ") && !l.ends_with(" 0")),
        "{metrics}"
    );
    // Filters and overrides.
    assert!(
        names.contains(&"f__echo") && names.contains(&"f__ask_name"),
        "{names:?}"
    );
    assert!(!names.contains(&"f__add") && !names.contains(&"f__now"), "{names:?}");
    let fixed = tools.iter().find(|t| t["name"] == "f__echo").unwrap();
    assert_eq!(fixed["description"], "Fixed description", "{fixed}");
    assert_eq!(fixed["annotations"]["destructiveHint"], false, "{fixed}");
    let denied = s.post(
        &json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"f__add","arguments":{"a":1,"b":2}}}),
        &[],
    );
    assert!(
        denied.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Unknown tool"),
        "{}",
        denied.text()
    );

    // Stable: disabling the plugin that held the bare name does not rename the others.
    let url = format!("http://{}", s.addr);
    let (ok, _, err) = common::cli(&["plugins", "disable", "n1", "--url", &url]);
    assert!(ok, "{err}");
    eventually(10, "n1's echo to leave", || {
        !list(&s).iter().any(|t| t["name"] == "echo")
    });
    let after: Vec<String> = list(&s)
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_string))
        .collect();
    for n in ["demo__echo", "inner__echo", "n2__echo"] {
        assert!(after.contains(&n.to_string()), "{n} in {after:?}");
    }
}

#[test]
fn config_validate_checks_upstreams_as_serve_does() {
    let d = TempDir::new("validate-up");
    let bad = |body: &str| {
        let cfg = write_config(&d, body);
        common::cli(&["config", "validate", &cfg])
    };
    let (ok, _, err) = bad("[[upstreams]]\nname = \"demo\"\ncommand = \"x\"\n");
    assert!(
        !ok && err.contains("upstreams[0].name") && err.contains("plugin"),
        "{err}"
    );
    let (ok, _, err) = bad("[[upstreams]]\nname = \"a\"\ncommand = \"x\"\nurl = \"http://127.0.0.1:1/mcp\"\n");
    assert!(!ok && err.contains("upstreams[0].transport"), "{err}");
    let (ok, _, err) = bad("[[upstreams]]\nname = \"a\"\n");
    assert!(!ok && err.contains("upstreams[0].command"), "{err}");
    let (ok, _, err) = bad("[[upstreams]]\nname = \"a\"\ncommand = \"x\"\nprefix = \"maybe\"\n");
    assert!(!ok && err.contains("upstreams[0].prefix"), "{err}");
    let (ok, _, err) = bad("[catalog]\nseparator = \".\"\n");
    assert!(!ok && err.contains("catalog.separator"), "{err}");
    let (ok, _, err) = bad("[[servers]]\nname = \"a b\"\ninclude = [\"demo\"]\n");
    assert!(!ok && err.contains("servers[0].name"), "{err}");
    let (ok, _, err) = bad("[[servers]]\nname = \"x\"\n");
    assert!(!ok && err.contains("servers[0].include"), "{err}");
    // Pasted from Claude Desktop: no transport key.
    let (ok, out, err) = bad("[[upstreams]]\nname = \"gh\"\ncommand = \"npx\"\nargs = [\"-y\", \"x\"]\n[[upstreams]]\nname = \"r\"\nurl = \"https://mcp.example.com/mcp\"\n");
    assert!(ok, "{out}{err}");
}
