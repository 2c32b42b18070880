//! When one side of a relayed conversation goes away: what the server still says about a
//! call its caller gave up on reaches nobody else, and the other side hears of it at once
//! rather than at a timeout.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{gateway_with_upstream, Server, TempDir};
use crate::containment::faulty;
use crate::relay::{session_headers, MODERN_ERA};

/// A gateway in front of the faulty fixture server over stdio (with `args`), names
/// unprefixed.
fn faulty_gateway(d: &TempDir, args: &[&str]) -> Server {
    let mut all = vec![faulty()];
    all.extend(args.iter().map(|a| a.to_string()));
    gateway_with_upstream(
        &d.0.join("gw"),
        &format!(
            "name = \"f\"\ncommand = \"python3\"\nargs = {}\nprefix = \"never\"\nrequired = true\n",
            serde_json::to_string(&all).unwrap()
        ),
    )
}

fn call(id: i64, tool: &str, secs: f64) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":{"secs":secs}}})
}

/// How Alice's call stops being one the gateway forwards, while the server goes on.
#[derive(Clone, Copy)]
enum AliceEnds {
    /// She hangs up before anything comes back.
    HangsUp,
    /// The upstream's `timeout_secs` passes.
    TimesOut,
    /// She sends `notifications/cancelled`.
    Cancels,
    /// Not at all: her 2026-07-28 call is held for her answer.
    IsHeld,
}

/// Over stdio the wire does not say which call a server's question or log line is about;
/// it goes to the only call in flight. What the server says 3.5 s into Alice's call —
/// given up on, or held for her answer — must not be shown to Bob, another principal,
/// whose call is the only live one then (his own call would wait on a question it never had).
fn nothing_of_alices_reaches_bob(ends: AliceEnds) {
    let d = TempDir::new("relay-orphan");
    let alice_key = crate::isolation::offline_key(&d, "alice", "mcp");
    let bob_key = crate::isolation::offline_key(&d, "bob", "mcp");
    let cfg = crate::catalog::write_config(
        &d,
        &format!(
            "[plugins]\ndemo = false\n[[upstreams]]\nname = \"f\"\ncommand = \"python3\"\nargs = [\"{}\"]\n\
             prefix = \"never\"\nrequired = true\ntimeout_secs = 3\n",
            faulty()
        ),
    );
    let (s, _) = Server::start_auth_with(&d.0, &["--config", &cfg]);
    let (a, b) = (format!("Bearer {alice_key}"), format!("Bearer {bob_key}"));
    let caps = json!({"elicitation": {}});
    let alice = s.initialize_with(MODERN_ERA, caps.clone(), &[("authorization", &a)]);
    let [asid, aversion] = session_headers(&alice);
    let alice_h = [asid, aversion, ("authorization", a.as_str())];
    // The server logs and asks 3.5 s in, whatever happened to the call meanwhile.
    let body = call(1, "later", 3.5).to_string();
    let mut req = format!(
        "POST /mcp HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n",
        s.addr,
        body.len()
    );
    for (k, v) in alice_h {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    let mut alice_conn = None;
    match ends {
        AliceEnds::IsHeld => {
            let r = s.modern_with(
                1,
                "tools/call",
                json!({"name": "asklog", "arguments": {"secs": 3.5}}),
                caps.clone(),
                &[("authorization", &a)],
            );
            assert_eq!(r.json()["result"]["resultType"], "input_required", "{}", r.text());
        }
        _ => {
            let mut c = std::net::TcpStream::connect(&s.addr).unwrap();
            std::io::Write::write_all(&mut c, req.as_bytes()).unwrap();
            alice_conn = Some(c);
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    match ends {
        AliceEnds::HangsUp => drop(alice_conn.take()),
        AliceEnds::Cancels => {
            let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}});
            assert_eq!(s.post(&cancel, &alice_h).status, 202);
        }
        AliceEnds::TimesOut | AliceEnds::IsHeld => {}
    }
    // Bob's call runs from 2 s to 4.5 s: the only live one when the server speaks.
    std::thread::sleep(Duration::from_millis(1700));
    let bob = s.initialize_with(MODERN_ERA, caps, &[("authorization", &b)]);
    let [sid, version] = session_headers(&bob);
    let r = s.post(&call(2, "slow", 2.5), &[sid, version, ("authorization", &b)]);
    let mut seen = r.sse_messages();
    if seen.is_empty() {
        seen.push(r.json());
    }
    let result = seen.pop().unwrap();
    assert_eq!(result["result"]["content"][0]["text"], "slept 2.5", "{result}");
    assert!(seen.is_empty(), "Bob was shown another principal's messages: {seen:?}");
}

#[test]
fn a_server_still_working_on_a_call_its_caller_left_reaches_no_other_principal() {
    nothing_of_alices_reaches_bob(AliceEnds::HangsUp);
}

#[test]
fn a_server_still_working_on_a_timed_out_call_reaches_no_other_principal() {
    nothing_of_alices_reaches_bob(AliceEnds::TimesOut);
}

#[test]
fn a_server_still_working_on_a_cancelled_call_reaches_no_other_principal() {
    nothing_of_alices_reaches_bob(AliceEnds::Cancels);
}

#[test]
fn what_a_server_says_while_a_call_is_held_reaches_no_other_principal() {
    nothing_of_alices_reaches_bob(AliceEnds::IsHeld);
}

/// The upstream's question waits for the caller's answer; when the caller cannot give one
/// (its client answered with an error), the upstream hears so at once — not at the input
/// timeout (five minutes by default) — and its request is cancelled.
#[test]
fn a_question_the_caller_does_not_answer_is_refused_to_the_upstream_at_once() {
    let d = TempDir::new("relay-refused");
    let trace = d.0.join("trace.jsonl");
    let s = faulty_gateway(&d, &["--trace", trace.to_str().unwrap()]);
    let sid = s.initialize(MODERN_ERA, json!({"elicitation": {}}));
    let mut st = s.post_stream(&call(1, "ask", 0.0), &session_headers(&sid));
    let q = st.next_json().expect("the upstream's question");
    assert_eq!(q["method"], "elicitation/create", "{q}");
    let no = json!({"jsonrpc": "2.0", "id": q["id"], "error": {"code": -1, "message": "the user closed the dialog"}});
    assert_eq!(s.post(&no, &session_headers(&sid)).status, 202);
    let r = st.next_json().expect("the call's end");
    assert_eq!(r["result"]["isError"], true, "{r}");
    crate::common::eventually(5, "the upstream told of the refusal and the cancellation", || {
        let seen = std::fs::read_to_string(&trace).unwrap_or_default();
        let refused = seen
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|m| {
                m.get("method").is_none()
                    && m["error"]["message"]
                        .as_str()
                        .is_some_and(|t| t.contains("the user closed the dialog"))
            });
        refused && seen.contains("notifications/cancelled")
    });
}

/// A session-era caller left answering a question hears at once when the upstream that
/// asked it dies, with the upstream named — rather than a client timeout two minutes later.
#[test]
fn a_caller_answering_a_question_hears_at_once_when_the_upstream_dies() {
    let d = TempDir::new("relay-died");
    let s = faulty_gateway(&d, &[]);
    let sid = s.initialize(MODERN_ERA, json!({"elicitation": {}}));
    let mut st = s.post_stream(&call(1, "ask", 0.0), &session_headers(&sid));
    let q = st.next_json().expect("the upstream's question");
    assert_eq!(q["method"], "elicitation/create", "{q}");
    // Someone else's call takes the upstream down.
    let other = s.initialize(MODERN_ERA, json!({}));
    let _ = s.post(&call(2, "crash", 0.0), &session_headers(&other));
    st.set_timeout(Duration::from_secs(8));
    let r = st.next_json().expect("the call's end soon after the upstream died");
    assert_eq!(r["result"]["isError"], true, "{r}");
    let text = r["result"]["content"][0]["text"].as_str().unwrap_or_default();
    assert!(text.contains("upstream f"), "{r}");
    assert!(!text.contains("did not answer"), "the caller is not to blame: {r}");
}

/// A stateless caller's retry that leaves the question unanswered is asked it again (the
/// held call stays for the corrected retry); an answer that is no result of the question
/// is refused by name, and the call still waits.
#[test]
fn a_retry_without_its_answer_is_asked_again() {
    let d = TempDir::new("relay-reask");
    let (s, _) = crate::relay::gateway(&d, false);
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
    let key = r["inputRequests"].as_object().unwrap().keys().next().unwrap().clone();
    let retry = |state: &Value, answers: Value| {
        s.modern(
            2,
            "tools/call",
            json!({"name": "ask_name", "arguments": {}, "requestState": state, "inputResponses": answers}),
            caps.clone(),
        )
        .json()
    };
    let again = retry(&r["requestState"], json!({}));
    let a = &again["result"];
    assert_eq!(a["resultType"], "input_required", "{again}");
    assert!(a["inputRequests"].get(&key).is_some(), "the same question: {again}");
    let bad = retry(&a["requestState"], json!({key.clone(): {"action": "yolo"}}));
    let text = bad["result"]["content"][0]["text"]
        .as_str()
        .or(bad["error"]["message"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(text.contains(&key) && text.contains("elicitation/create"), "{bad}");
    let done = retry(
        &a["requestState"],
        json!({key: {"action": "accept", "content": {"name": "Ada"}}}),
    );
    assert_eq!(done["result"]["content"][0]["text"], "Hello, Ada!", "{done}");
}

/// What a stateless upstream answers must be a result a client can take: a `resultType`
/// no revision defines, or an `input_required` asking for anything but elicitation,
/// sampling or roots, is refused by name instead of passed on.
#[test]
fn a_stateless_upstreams_invalid_answers_are_refused_by_name() {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stateless_server.py");
    let d = TempDir::new("relay-invalid");
    let s = gateway_with_upstream(
        &d.0.join("gw"),
        &format!(
            "name = \"st\"\ncommand = \"python3\"\nargs = [\"{}\"]\nprefix = \"never\"\nrequired = true\n",
            fixture.display()
        ),
    );
    for (tool, says) in [("weird", "resultType \"weird\""), ("evil", "inputRequests.q1")] {
        for caps in [json!({}), json!({"elicitation": {}, "sampling": {}, "roots": {}})] {
            let r = s
                .modern(1, "tools/call", json!({"name": tool, "arguments": {}}), caps)
                .json();
            assert_eq!(r["result"]["isError"], true, "{tool}: {r}");
            let text = r["result"]["content"][0]["text"].as_str().unwrap_or_default();
            assert!(text.contains(says) && text.contains("upstream st"), "{tool}: {r}");
        }
        let sid = s.initialize(MODERN_ERA, json!({"elicitation": {}}));
        let r = s.post(&call(2, tool, 0.0), &session_headers(&sid));
        let m = r.sse_messages();
        let last = m.last().cloned().unwrap_or_else(|| r.json());
        assert_eq!(last["result"]["isError"], true, "{tool}: {last}");
        assert!(
            m.iter().all(|m| m.get("method").is_none()),
            "nothing asked of the caller: {m:?}"
        );
    }
}

/// One principal walking away from its questions holds at most 64 of an upstream's calls;
/// the 65th is refused by name, and another principal's questions still go through.
#[test]
fn one_principal_cannot_hold_the_relay_for_everyone() {
    let d = TempDir::new("relay-cap");
    let alice = crate::isolation::offline_key(&d, "alice", "mcp");
    let bob = crate::isolation::offline_key(&d, "bob", "mcp");
    // A session-era upstream over Streamable HTTP: questions are held for stateless callers,
    // and each travels on its call's own stream (over stdio another principal's held call
    // makes the pipe ambiguous anyway).
    let inner = Server::start(&["--plugin", "everything"]);
    let cfg = crate::catalog::write_config(
        &d,
        &format!(
            "[plugins]\ndemo = false\n[outbound]\nallow_loopback = true\n[[upstreams]]\nname = \"inner\"\n\
             url = \"http://{}/mcp\"\nera = \"session\"\nprefix = \"never\"\nrequired = true\n",
            inner.addr
        ),
    );
    let (s, _) = Server::start_auth_with(&d.0, &["--config", &cfg]);
    let caps = json!({"elicitation": {}});
    let (a, b) = (format!("Bearer {alice}"), format!("Bearer {bob}"));
    let ask = |id: i64, auth: &str| {
        s.modern_with(
            id,
            "tools/call",
            json!({"name": "ask_name", "arguments": {}}),
            caps.clone(),
            &[("authorization", auth)],
        )
        .json()
    };
    for id in 0..64 {
        let r = ask(id, &a);
        assert_eq!(r["result"]["resultType"], "input_required", "call {id}: {r}");
    }
    let refused = ask(64, &a);
    assert_eq!(refused["result"]["isError"], true, "{refused}");
    let text = refused["result"]["content"][0]["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("too many of your calls") && text.contains("64"),
        "{refused}"
    );
    let r = ask(65, &b);
    assert_eq!(r["result"]["resultType"], "input_required", "bob is not held up: {r}");
}
