//! Gateway conversations: what an upstream asks the caller (elicitation, sampling), the
//! log lines it writes during a call, and the capabilities a question needs — carried
//! across the hop for session-era callers (relayed on their stream) and stateless
//! 2026-07-28 callers (bridged into `input_required` and resumed on their retry).

use serde_json::json;

use crate::catalog::write_config;
use crate::common::{bin, Server, TempDir};
use crate::isolation::offline_key;

pub(crate) const MODERN_ERA: &str = "2025-11-25";

/// A gateway whose only upstream is a second Waygate (demo + everything plugins) over
/// stdio, its names unprefixed.
pub(crate) fn gateway(d: &TempDir, auth: bool) -> (Server, Option<String>) {
    let inner = d.0.join("inner");
    let cfg = write_config(
        d,
        &format!(
            "[plugins]\ndemo = false\n[[upstreams]]\nname = \"inner\"\ncommand = \"{}\"\n\
             args = [\"serve\", \"--stdio\", \"--plugin\", \"everything\", \"--data-dir\", \"{}\"]\n\
             prefix = \"never\"\nrequired = true\n",
            bin(),
            inner.display()
        ),
    );
    if auth {
        Server::start_auth_with(&d.0, &["--config", &cfg])
    } else {
        (Server::start_in(Some(&d.0), &["--config", &cfg]), None)
    }
}

/// A gateway whose only upstream is a second Waygate (everything plugin) over Streamable
/// HTTP, its names unprefixed; `extra` adds keys to the upstream's entry. The second
/// server is returned to be kept alive.
pub(crate) fn http_gateway(d: &TempDir, extra: &str) -> (Server, Server) {
    let inner = Server::start(&["--plugin", "everything"]);
    let cfg = write_config(
        d,
        &format!(
            "[plugins]\ndemo = false\n[outbound]\nallow_loopback = true\n[[upstreams]]\nname = \"inner\"\n\
             url = \"http://{}/mcp\"\n{extra}prefix = \"never\"\nrequired = true\n",
            inner.addr
        ),
    );
    (Server::start_in(Some(&d.0), &["--config", &cfg]), inner)
}

pub(crate) fn session_headers(sid: &str) -> [(&str, &str); 2] {
    [("mcp-session-id", sid), ("mcp-protocol-version", MODERN_ERA)]
}

#[test]
fn an_upstreams_questions_and_logs_reach_the_caller_in_either_era() {
    let d = TempDir::new("relay");
    let (s, _) = gateway(&d, false);

    // Session era: the upstream's elicitation arrives on the caller's POST stream and the
    // caller's answer, POSTed back, reaches the upstream, which finishes the call.
    let sid = s.initialize(MODERN_ERA, json!({"elicitation": {}, "sampling": {}}));
    let call = json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"ask_name","arguments":{}}});
    let mut st = s.post_stream(&call, &session_headers(&sid));
    assert_eq!(st.status, 200);
    let req = st.next_json().expect("the upstream's question");
    assert_eq!(req["method"], "elicitation/create", "{req}");
    let answer = json!({"jsonrpc":"2.0","id": req["id"],"result":{"action":"accept","content":{"name":"Grace"}}});
    assert_eq!(s.post(&answer, &session_headers(&sid)).status, 202);
    let fin = st.next_json().expect("the result");
    assert_eq!(fin["id"], 7, "{fin}");
    assert_eq!(fin["result"]["content"][0]["text"], "Hello, Grace!", "{fin}");

    // Sampling the same way.
    let call = json!({"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"test_sampling","arguments":{"prompt":"2+2?"}}});
    let mut st = s.post_stream(&call, &session_headers(&sid));
    let req = st.next_json().expect("the upstream's sampling request");
    assert_eq!(req["method"], "sampling/createMessage", "{req}");
    let answer = json!({"jsonrpc":"2.0","id": req["id"],"result":{
        "role":"assistant","content":{"type":"text","text":"four"},"model":"m","stopReason":"endTurn"}});
    assert_eq!(s.post(&answer, &session_headers(&sid)).status, 202);
    let fin = st.next_json().expect("the result");
    assert!(fin["result"].to_string().contains("four"), "{fin}");

    // Log lines during a call reach the caller at the level it set, and none before it set one.
    let log_call = |id: i64| {
        let call = json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"test_tool_with_logging","arguments":{}}});
        let r = s.post(&call, &session_headers(&sid));
        // Plain JSON when nothing was sent before the result, SSE otherwise.
        let messages = if r
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/event-stream"))
        {
            r.sse_messages()
        } else {
            vec![r.json()]
        };
        let last = messages.last().cloned().unwrap_or_default();
        assert!(last.get("result").is_some(), "{messages:?}");
        messages
            .into_iter()
            .filter(|m| m["method"] == "notifications/message")
            .map(|m| m["params"].clone())
            .collect::<Vec<_>>()
    };
    // A session that set no level hears every line (the session-era rule) …
    let logs = log_call(9);
    assert!(!logs.is_empty(), "the upstream's log lines reach the caller");
    // … and after `logging/setLevel` only lines at or above it.
    let set = json!({"jsonrpc":"2.0","id":10,"method":"logging/setLevel","params":{"level":"emergency"}});
    assert_eq!(s.post(&set, &session_headers(&sid)).json()["result"], json!({}));
    assert!(log_call(11).is_empty(), "below the caller's level");

    // Stateless era: the question becomes `input_required`; the retry resumes the held call.
    let caps = json!({"elicitation": {}});
    let first = s
        .modern(
            1,
            "tools/call",
            json!({"name": "ask_name", "arguments": {}}),
            caps.clone(),
        )
        .json();
    let r = &first["result"];
    assert_eq!(r["resultType"], "input_required", "{first}");
    let (key, q) = r["inputRequests"].as_object().unwrap().iter().next().unwrap();
    assert_eq!(q["method"], "elicitation/create", "{first}");
    let state = r["requestState"].as_str().unwrap().to_string();
    let retry = json!({"name": "ask_name", "arguments": {},
        "inputResponses": {key.clone(): {"action": "accept", "content": {"name": "Ada"}}},
        "requestState": state});
    let done = s.modern(2, "tools/call", retry.clone(), caps.clone()).json();
    assert_eq!(done["result"]["content"][0]["text"], "Hello, Ada!", "{done}");
    // The held call was used up: the same answer again is refused by name (a tool error,
    // as invalid arguments are).
    let again = s.modern(3, "tools/call", retry, caps.clone()).json();
    assert_eq!(again["result"]["isError"], true, "{again}");
    assert!(again.to_string().contains("no longer waiting"), "{again}");

    // Answers sent up front (no requestState) serve the question they name: no round trip.
    let upfront = json!({"name": "ask_name", "arguments": {},
        "inputResponses": {key.clone(): {"action": "accept", "content": {"name": "Bob"}},
                           "unrelated": {"action": "decline"}}});
    let done = s.modern(6, "tools/call", upfront, caps.clone()).json();
    assert_eq!(done["result"]["content"][0]["text"], "Hello, Bob!", "{done}");

    // A stateless caller that did not declare what the upstream asks for: -32021.
    let r = s.modern(4, "tools/call", json!({"name": "ask_name", "arguments": {}}), json!({}));
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], -32021, "{}", r.text());
    // … and the upstream was told: the next call works as before.
    let ok = s.modern(
        5,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "still here"}}),
        json!({}),
    );
    assert!(ok.text().contains("still here"), "{}", ok.text());
}

#[test]
fn a_question_relayed_from_an_http_upstream_may_take_longer_than_its_timeout() {
    // The upstream's timeout bounds the upstream, not the person answering its question:
    // while the caller thinks, the POST to a session-era HTTP upstream stays open.
    let d = TempDir::new("relay-slow");
    let (s, _inner) = http_gateway(&d, "era = \"session\"\ntimeout_secs = 2\n");
    let sid = s.initialize(MODERN_ERA, json!({"elicitation": {}}));
    let call = json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"ask_name","arguments":{}}});
    let mut st = s.post_stream(&call, &session_headers(&sid));
    assert_eq!(st.status, 200);
    let req = st.next_json().expect("the upstream's question");
    assert_eq!(req["method"], "elicitation/create", "{req}");
    std::thread::sleep(std::time::Duration::from_millis(3500));
    let answer = json!({"jsonrpc":"2.0","id": req["id"],"result":{"action":"accept","content":{"name":"Grace"}}});
    assert_eq!(s.post(&answer, &session_headers(&sid)).status, 202);
    let fin = st.next_json().expect("the result");
    assert_eq!(fin["result"]["content"][0]["text"], "Hello, Grace!", "{fin}");
}

#[test]
fn a_held_call_belongs_to_its_caller() {
    let d = TempDir::new("relay-owner");
    let alice = offline_key(&d, "alice", "mcp");
    let bob = offline_key(&d, "bob", "mcp");
    let (s, _) = gateway(&d, true);
    let caps = json!({"elicitation": {}});
    let (a, b) = (format!("Bearer {alice}"), format!("Bearer {bob}"));
    let first = s
        .modern_with(
            1,
            "tools/call",
            json!({"name": "ask_name", "arguments": {}}),
            caps.clone(),
            &[("authorization", &a)],
        )
        .json();
    let r = &first["result"];
    assert_eq!(r["resultType"], "input_required", "{first}");
    let key = r["inputRequests"].as_object().unwrap().keys().next().unwrap().clone();
    let answer = |name: &str| {
        json!({"name": "ask_name", "arguments": {},
            "inputResponses": {key.clone(): {"action": "accept", "content": {"name": name}}},
            "requestState": r["requestState"]})
    };
    // Another principal cannot answer (or use up) alice's held call …
    let stolen = s.modern_with(
        2,
        "tools/call",
        answer("Mallory"),
        caps.clone(),
        &[("authorization", &b)],
    );
    assert_eq!(stolen.json()["error"]["code"], -32602, "{}", stolen.text());
    // … which still waits for alice.
    let done = s
        .modern_with(3, "tools/call", answer("Alice"), caps, &[("authorization", &a)])
        .json();
    assert_eq!(done["result"]["content"][0]["text"], "Hello, Alice!", "{done}");
}

/// Answer every question the upstream asks on `st` (roots, sampling, elicitation) until
/// the result of the call arrives; the questions seen, in order, and the result.
fn converse(s: &Server, sid: &str, st: &mut crate::common::Stream) -> (Vec<String>, serde_json::Value) {
    let mut asked = Vec::new();
    while let Some(m) = st.next_json() {
        let Some(method) = m["method"].as_str().filter(|_| m.get("id").is_some()) else {
            if m.get("result").is_some() || m.get("error").is_some() {
                return (asked, m);
            }
            continue; // a notification (log line, progress)
        };
        asked.push(method.to_string());
        let result = match method {
            "roots/list" => json!({"roots": [{"uri": "file:///srv/project", "name": "project"}]}),
            "sampling/createMessage" => json!({"role": "assistant", "model": "m",
                "content": {"type": "text", "text": "sampled by the caller"}, "stopReason": "endTurn"}),
            _ => json!({"action": "accept", "content": {"name": "Ada Lovelace"}}),
        };
        let answer = json!({"jsonrpc": "2.0", "id": m["id"], "result": result});
        assert_eq!(s.post(&answer, &session_headers(sid)).status, 202);
    }
    panic!("the stream ended before the result; asked {asked:?}");
}

/// A server written by others — the reference `@modelcontextprotocol/server-everything`
/// over stdio — asks its questions (sampling, elicitation, roots) through the gateway: a
/// session-era caller answers them on its stream, a stateless caller through
/// `input_required`, and a caller that cannot answer is told so without the call hanging.
#[test]
fn a_third_party_servers_questions_reach_the_caller() {
    let Some((node, js)) = crate::upstreams::everything_server() else {
        return;
    };
    let d = TempDir::new("relay-everything");
    let cfg = write_config(
        &d,
        &format!(
            "[plugins]\ndemo = false\n[[upstreams]]\nname = \"everything\"\ncommand = \"{node}\"\n\
             args = [\"{js}\", \"stdio\"]\nprefix = \"never\"\nrequired = true\n"
        ),
    );
    let s = Server::start_in(Some(&d.0), &["--config", &cfg]);
    let sid = s.initialize(
        MODERN_ERA,
        json!({"elicitation": {}, "sampling": {}, "roots": {"listChanged": true}}),
    );
    let call = |id: i64, name: &str, args: serde_json::Value| {
        let body = json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":name,"arguments":args}});
        let mut st = s.post_stream(&body, &session_headers(&sid));
        assert_eq!(st.status, 200);
        converse(&s, &sid, &mut st)
    };
    let (asked, r) = call(
        2,
        "trigger-sampling-request",
        json!({"prompt": "hello", "maxTokens": 20}),
    );
    assert!(asked.contains(&"sampling/createMessage".to_string()), "{asked:?}");
    assert!(r["result"].to_string().contains("sampled by the caller"), "{r}");
    let (asked, r) = call(3, "trigger-elicitation-request", json!({}));
    assert!(asked.contains(&"elicitation/create".to_string()), "{asked:?}");
    assert!(r["result"].to_string().contains("Ada Lovelace"), "{r}");
    let (_, r) = call(4, "get-roots-list", json!({}));
    assert!(r["result"].to_string().contains("file:///srv/project"), "{r}");

    // A stateless caller: the elicitation becomes `input_required`, the retry finishes it.
    let caps = json!({"elicitation": {}});
    let first = s
        .modern(
            5,
            "tools/call",
            json!({"name": "trigger-elicitation-request", "arguments": {}}),
            caps.clone(),
        )
        .json();
    let r = &first["result"];
    assert_eq!(r["resultType"], "input_required", "{first}");
    let (key, q) = r["inputRequests"].as_object().unwrap().iter().next().unwrap();
    assert_eq!(q["method"], "elicitation/create", "{first}");
    let retry = json!({"name": "trigger-elicitation-request", "arguments": {},
        "inputResponses": {key.clone(): {"action": "decline"}},
        "requestState": r["requestState"]});
    let done = s.modern(6, "tools/call", retry, caps).json();
    assert!(done["result"].to_string().contains("declined"), "{done}");

    // One that declared nothing: -32021 naming the capability, and the upstream lives on.
    let r = s.modern(
        7,
        "tools/call",
        json!({"name": "trigger-sampling-request", "arguments": {"prompt": "x"}}),
        json!({}),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        r.json()["error"]["data"]["requiredCapabilities"],
        json!({"sampling": {}}),
        "{}",
        r.text()
    );
    let ok = s.modern(
        8,
        "tools/call",
        json!({"name": "echo", "arguments": {"message": "alive"}}),
        json!({}),
    );
    assert!(ok.text().contains("Echo: alive"), "{}", ok.text());
}

/// A caller's resource subscription reaches the upstream that owns the resource, and the
/// upstream's `notifications/resources/updated` reaches every subscribed caller — under
/// the namespaced URI the caller knows, in either era — and nobody else.
#[test]
fn resource_updates_reach_the_subscribed_callers_across_the_hop() {
    resource_updates_across_the_hop("session");
}

/// The same through a stateless (2026-07-28) upstream, which has no `resources/subscribe`:
/// the gateway listens with `resourceSubscriptions` instead.
#[test]
fn resource_updates_of_a_stateless_upstream_reach_the_subscribed_callers() {
    resource_updates_across_the_hop("stateless");
}

fn resource_updates_across_the_hop(era: &str) {
    let d = TempDir::new("relay-subscribe");
    let inner = d.0.join("inner");
    let cfg = write_config(
        &d,
        &format!(
            "[plugins]\ndemo = false\n[[upstreams]]\nname = \"inner\"\ncommand = \"{}\"\n\
             args = [\"serve\", \"--stdio\", \"--plugin\", \"everything\", \"--data-dir\", \"{}\"]\n\
             prefix = \"always\"\nrequired = true\nera = \"{era}\"\n",
            bin(),
            inner.display()
        ),
    );
    let s = Server::start_in(Some(&d.0), &["--config", &cfg]);
    let list = s
        .post(&json!({"jsonrpc":"2.0","id":1,"method":"resources/list"}), &[])
        .json();
    let uri = list["result"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["uri"].as_str())
        .find(|u| u.ends_with("watched-resource"))
        .unwrap_or_else(|| panic!("{list}"))
        .to_string();
    assert_ne!(uri, "test://watched-resource", "the upstream's URIs are namespaced");
    let stream = |sid: &str| {
        let st = crate::common::Stream::open(
            &s.addr,
            "GET",
            "/mcp",
            &[
                ("accept", "text/event-stream"),
                ("mcp-session-id", sid),
                ("mcp-protocol-version", MODERN_ERA),
            ],
            b"",
        );
        assert_eq!(st.status, 200);
        st
    };
    // One session subscribes, one does not.
    let subscribed = s.initialize(MODERN_ERA, json!({}));
    let other = s.initialize(MODERN_ERA, json!({}));
    let mut st = stream(&subscribed);
    let mut quiet = stream(&other);
    let sub = json!({"jsonrpc":"2.0","id":2,"method":"resources/subscribe","params":{"uri": uri}});
    assert_eq!(s.post(&sub, &session_headers(&subscribed)).json()["result"], json!({}));
    // A 2026-07-28 caller listens for the same resource.
    let listen = json!({"jsonrpc":"2.0","id":"sub-1","method":"subscriptions/listen","params":{
        "notifications": {"resourceSubscriptions": [uri]},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {}}}});
    let mut modern = s.post_stream(
        &listen,
        &[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "subscriptions/listen"),
        ],
    );
    let ack = modern.next_json().expect("acknowledged");
    assert_eq!(ack["method"], "notifications/subscriptions/acknowledged", "{ack}");

    // The upstream changes its watched resource every 3 s.
    for st in [&mut st, &mut modern] {
        st.set_timeout(std::time::Duration::from_secs(15));
        let n = loop {
            let m = st.next_json().expect("a resource update within 15 s");
            if m["method"] == "notifications/resources/updated" {
                break m;
            }
        };
        assert_eq!(n["params"]["uri"], uri.as_str(), "{n}");
    }
    quiet.set_timeout(std::time::Duration::from_secs(1));
    while let Some((_, data)) = quiet.next_event() {
        assert!(
            !data.contains("resources/updated"),
            "an unsubscribed session heard: {data}"
        );
    }
}
