//! What arrives from an upstream on its own or in answer: responses matched to their
//! waiting request, progress relayed to the caller that asked, list changes handed to the
//! supervisor, and the gateway's replies to the server's own requests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::value::RawValue;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use crate::error::UpstreamError;
use crate::link::{Ask, CallLink, Related, RELAYED};

/// What an upstream tells the gateway on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// `notifications/{tools,resources,prompts}/list_changed`.
    ListChanged,
}

/// A response's `result` stays the server's text until someone needs to read it.
pub(crate) type Answer = Result<Box<RawValue>, UpstreamError>;
type Waiter = oneshot::Sender<Answer>;

/// At most this many abandoned requests are remembered; beyond, nothing is inferred any
/// more on this connection (the safe answer when the gateway cannot remember whose they were).
const MAX_ABANDONED: usize = 1024;

/// A forwarded call's request and the caller behind it — or, once the gateway gave up on
/// the request (its caller cancelled or went away, a timeout) while the server may still
/// be working on it, a dead link that takes nothing, for as long as the connection lasts
/// or until the server answers it.
///
/// Why keep the dead one: over stdio the wire does not say which call a question or log
/// line belongs to, so it goes to the only call in flight. A server that ignores a
/// cancellation and asks (or logs) later — a minute later, or ten — would otherwise have
/// its message shown to the next caller, another principal, whose own call then waits on
/// a question it never had. No expiry: any would reopen that path for long-running tools.
struct Routed {
    link: Arc<CallLink>,
    /// Whose call it was, once the gateway gave up on the request.
    abandoned: Option<Option<String>>,
}

/// Routes what arrives from the server: responses to their waiting request, progress to
/// the client that asked for it, list changes to the supervisor.
pub(crate) struct Inbound {
    pub name: Arc<str>,
    pending: Mutex<HashMap<i64, Waiter>>,
    /// Forwarded calls in flight (by our request id) and the callers behind them.
    calls: Mutex<HashMap<i64, Routed>>,
    notes: mpsc::Sender<Notification>,
    /// Where `notifications/resources/updated` goes (the URI), once someone listens.
    updates: OnceLock<mpsc::Sender<String>>,
    /// More requests were abandoned than are remembered: nothing is inferred any more.
    saturated: AtomicBool,
}

impl Inbound {
    pub(crate) fn new(name: Arc<str>, notes: mpsc::Sender<Notification>) -> Arc<Inbound> {
        Arc::new(Inbound {
            name,
            pending: Mutex::new(HashMap::new()),
            calls: Mutex::new(HashMap::new()),
            notes,
            updates: OnceLock::new(),
            saturated: AtomicBool::new(false),
        })
    }

    pub(crate) fn wait(&self, id: i64) -> oneshot::Receiver<Answer> {
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).insert(id, tx);
        rx
    }

    pub(crate) fn forget(&self, id: i64) {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
    }

    /// Route what the server says about request `id` to `link` until [`Inbound::forget`].
    pub(crate) fn link(&self, id: i64, link: Arc<CallLink>) {
        let routed = Routed { link, abandoned: None };
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).insert(id, routed);
    }

    /// The gateway gave up on request `id` before the server answered it: nobody waits for
    /// the answer, and what the server still says about it reaches no caller (see
    /// [`Routed`]) until it answers.
    pub(crate) fn abandon(&self, id: i64) {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        if !calls.contains_key(&id) {
            return;
        }
        if calls.values().filter(|r| r.abandoned.is_some()).count() >= MAX_ABANDONED {
            calls.remove(&id);
            self.saturated.store(true, Ordering::Relaxed);
        } else if let Some(r) = calls.get_mut(&id) {
            let owner = r.link.owner();
            r.link = Arc::new(CallLink::new(false));
            r.abandoned = Some(owner);
        }
    }

    /// Send the server's resource updates to `tx` from now on.
    pub(crate) fn on_resource_updated(&self, tx: mpsc::Sender<String>) {
        let _ = self.updates.set(tx);
    }

    /// The call a message belongs to: the one named by the wire, or the only one in flight.
    fn call_of(&self, related: Related) -> Option<Arc<CallLink>> {
        let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        match related {
            Related::Call(id) => calls.get(&id).map(|r| r.link.clone()),
            Related::Infer => {
                if self.saturated.load(Ordering::Relaxed) {
                    return None;
                }
                let mut live = calls.values().filter(|r| r.abandoned.is_none() && !r.link.is_held());
                let (Some(only), None) = (live.next(), live.next()) else {
                    return None;
                };
                // The message may also be a held call's (its server may speak while it waits
                // for the answer) or an abandoned request's: the one live call may have it
                // only when every such request is its own principal's.
                let owner = only.link.owner();
                let foreign = calls.values().any(|r| match &r.abandoned {
                    Some(o) => *o != owner,
                    None => r.link.is_held() && r.link.owner() != owner,
                });
                (!foreign).then(|| only.link.clone())
            }
            Related::Unrelated => None,
        }
    }

    /// Every waiting request fails with `e` (the connection is gone).
    pub(crate) fn fail_all(&self, e: UpstreamError) {
        let waiting: Vec<Waiter> = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, w)| w)
            .collect();
        for w in waiting {
            let _ = w.send(Err(e.clone()));
        }
    }

    /// [`Inbound::handle`] for a message as text: a response to one of our requests — the
    /// bulk of the traffic — is routed with only its id read; anything else is parsed.
    pub(crate) fn handle_text(&self, text: &str, related: Related) -> Option<Value> {
        if let Some(head) = waygate_protocol::raw::Head::parse(text) {
            if let (None, Some(id)) = (&head.method, head.int_id()) {
                if head.error.is_none() {
                    if let Some(result) = head.result {
                        let waiter = self.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                        match waiter {
                            Some(w) => {
                                let _ = w.send(Ok(result.to_owned()));
                            }
                            None => self.unclaimed(id),
                        }
                        return None;
                    }
                }
            }
        }
        match serde_json::from_str::<Value>(text) {
            Ok(msg) => self.handle(msg, related),
            Err(e) => {
                tracing::warn!(upstream = %self.name, error = %e, "upstream sent a message that is not JSON; ignored");
                None
            }
        }
    }

    /// A response no request waits for: usually one that came after its call gave up (a
    /// timeout, a cancellation), else a server answering with an id it was never sent.
    fn unclaimed(&self, id: i64) {
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        if calls.get(&id).is_some_and(|r| r.abandoned.is_some()) {
            calls.remove(&id);
        }
        drop(calls);
        tracing::debug!(upstream = %self.name, id, "response to no waiting request (late, or an unknown id) ignored");
    }

    /// Handle one message from the server; returns the answer to send back at once when it
    /// was a request (a relayed one is answered later, by the call it was handed to).
    pub(crate) fn handle(&self, mut msg: Value, related: Related) -> Option<Value> {
        let method = msg.get("method").and_then(Value::as_str);
        match (method, msg.get("id")) {
            (Some(m), Some(id)) if RELAYED.contains(&m) => {
                let link = self
                    .call_of(related)
                    .filter(|l| related != Related::Infer || l.may_infer(m));
                let Some(link) = link else {
                    let why = if related == Related::Infer {
                        "this transport does not say which call it belongs to, and no single caller's request is open on this upstream"
                    } else {
                        "it is not tied to a call the gateway is forwarding"
                    };
                    return Some(refusal(id, m, why));
                };
                let ask = Ask {
                    id: id.clone(),
                    method: m.to_string(),
                    params: msg.get_mut("params").map(Value::take).unwrap_or_else(|| json!({})),
                };
                match link.ask(ask) {
                    Ok(()) => None,
                    Err(a) => Some(refusal(&a.id, &a.method, "the call it belongs to takes no questions")),
                }
            }
            (Some(m), Some(id)) => Some(answer_server_request(m, id)),
            (Some(m), None) => {
                self.notification(m, &msg, related);
                None
            }
            (None, Some(id)) => {
                if let Some(id) = id.as_i64() {
                    let waiter = self.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                    match waiter {
                        Some(w) => {
                            let _ = w.send(response_of(msg).and_then(|v| raw_of(&v)));
                        }
                        None => self.unclaimed(id),
                    }
                }
                None
            }
            (None, None) => {
                tracing::debug!(upstream = %self.name, "message without method or id ignored");
                None
            }
        }
    }

    fn notification(&self, method: &str, msg: &Value, related: Related) {
        match method {
            "notifications/tools/list_changed"
            | "notifications/resources/list_changed"
            | "notifications/prompts/list_changed" => {
                // One pending change is enough (the supervisor re-lists everything): a flood
                // of list_changed is bounded to a single queued refresh.
                let _ = self.notes.try_send(Notification::ListChanged);
            }
            "notifications/resources/updated" => {
                let uri = msg.pointer("/params/uri").and_then(Value::as_str);
                if let (Some(uri), Some(tx)) = (uri, self.updates.get()) {
                    // A hint, not a record: under a flood the excess is dropped.
                    if tx.try_send(uri.to_string()).is_err() {
                        tracing::debug!(upstream = %self.name, uri, "resource update dropped (queue full)");
                    }
                }
            }
            "notifications/progress" => {
                let Some(params) = msg.get("params") else { return };
                // Our token is `wg-<request id>`: it names the call without a second map.
                let call = params
                    .get("progressToken")
                    .and_then(Value::as_str)
                    .and_then(|t| t.strip_prefix("wg-"))
                    .and_then(|n| n.parse().ok())
                    .and_then(|id| self.call_of(Related::Call(id)));
                if let Some(link) = call {
                    link.progress(method, params);
                }
            }
            "notifications/message" => {
                let params = msg.get("params").cloned().unwrap_or_else(|| json!({}));
                let relayed = self.call_of(related).is_some_and(|link| link.log(&params));
                if !relayed {
                    tracing::debug!(upstream = %self.name, data = %params, "upstream log");
                }
            }
            _ => tracing::debug!(upstream = %self.name, method, "upstream notification ignored"),
        }
    }
}

/// The gateway answers pings itself; anything else it neither serves nor relays is refused
/// by name.
fn answer_server_request(method: &str, id: &Value) -> Value {
    if method == "ping" {
        json!({"jsonrpc": "2.0", "id": id, "result": {}})
    } else {
        json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601,
            "message": format!("the gateway does not serve {method} to upstreams")}})
    }
}

/// A relayable request the gateway cannot place with a caller.
fn refusal(id: &Value, method: &str, why: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32603,
        "message": format!("the gateway cannot relay {method}: {why}")}})
}

/// A result read as a tree, as text again (for the rare message that took the `Value` way).
pub(crate) fn raw_of(v: &Value) -> Answer {
    serde_json::value::to_raw_value(v).map_err(|e| UpstreamError::Protocol(format!("result not serializable: {e}")))
}

/// The `result` (as the server's text) or the error of a response message.
pub(crate) fn response_text(text: &str) -> Answer {
    let Some(head) = waygate_protocol::raw::Head::parse(text) else {
        let msg: Value = serde_json::from_str(text).map_err(|e| {
            UpstreamError::Protocol(format!(
                "response is not JSON ({e}): {}",
                crate::http::snippet(text.as_bytes())
            ))
        })?;
        return response_of(msg).and_then(|v| raw_of(&v));
    };
    head_answer(&head)
}

/// The `result` or the error of a response already split into its head.
pub(crate) fn head_answer(head: &waygate_protocol::raw::Head<'_>) -> Answer {
    if let Some(e) = head.error {
        let e: Value = serde_json::from_str(e.get()).unwrap_or(Value::Null);
        return Err(UpstreamError::from_error_object(&e));
    }
    match head.result {
        Some(r) => Ok(r.to_owned()),
        None => Err(UpstreamError::Protocol("response without result or error".into())),
    }
}

/// `result` or the error of a response message.
/// Takes the message apart instead of cloning the result (it can be large).
pub(crate) fn response_of(mut msg: Value) -> Result<Value, UpstreamError> {
    if let Some(e) = msg.get("error") {
        return Err(UpstreamError::from_error_object(e));
    }
    match msg.as_object_mut().and_then(|o| o.remove("result")) {
        Some(r) => Ok(r),
        None => Err(UpstreamError::Protocol("response without result or error".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn inbound_routes_responses_progress_asks_logs_and_list_changes() {
        let (tx, mut notes) = mpsc::channel(1);
        let inbound = Inbound::new("t".into(), tx);
        // A response reaches the request waiting for its id, an error is an Rpc error.
        let ok = inbound.wait(1);
        let err = inbound.wait(2);
        assert!(inbound
            .handle(json!({"jsonrpc":"2.0","id":1,"result":{"x":1}}), Related::Infer)
            .is_none());
        assert!(inbound
            .handle(
                json!({"jsonrpc":"2.0","id":2,"error":{"code":-32602,"message":"bad"}}),
                Related::Infer
            )
            .is_none());
        assert_eq!(ok.await.unwrap().unwrap().get(), r#"{"x":1}"#);
        // As text, a response keeps the server's member order and number spelling.
        let raw = inbound.wait(9);
        assert!(inbound
            .handle_text(
                r#"{"jsonrpc":"2.0","id":9,"result":{"b":1,"a":1E+400}}"#,
                Related::Infer
            )
            .is_none());
        assert_eq!(raw.await.unwrap().unwrap().get(), r#"{"b":1,"a":1E+400}"#);
        assert!(matches!(
            err.await.unwrap(),
            Err(UpstreamError::Rpc { code: -32602, .. })
        ));
        // With no call in flight a relayable request has nowhere to go.
        let no = inbound
            .handle(
                json!({"jsonrpc":"2.0","id":9,"method":"sampling/createMessage","params":{}}),
                Related::Infer,
            )
            .unwrap();
        assert_eq!(no["error"]["code"], -32603);
        // Progress under our token goes to the caller under theirs; logs at its level only.
        let (out, mut caller) = waygate_core::outq::channel();
        let link = Arc::new(CallLink::new(true));
        link.attach(
            Some(&out),
            waygate_protocol::meta::log_level_rank("info"),
            Some(&json!("their-token")),
            false,
        );
        inbound.link(5, link.clone());
        inbound.handle(
            json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"wg-5","progress":1}}),
            Related::Infer,
        );
        let sent: Value = serde_json::from_slice(&caller.recv().await.unwrap()).unwrap();
        assert_eq!(sent["params"]["progressToken"], "their-token");
        assert_eq!(sent["params"]["progress"], 1);
        for level in ["debug", "warning"] {
            inbound.handle(
                json!({"jsonrpc":"2.0","method":"notifications/message","params":{"level":level,"data":level}}),
                Related::Infer,
            );
        }
        let sent: Value = serde_json::from_slice(&caller.recv().await.unwrap()).unwrap();
        assert_eq!(sent["params"]["data"], "warning", "debug is below the caller's level");
        // The only call in flight gets the server's question; its answer comes later.
        assert!(inbound
            .handle(
                json!({"jsonrpc":"2.0","id":"q","method":"elicitation/create","params":{"message":"?"}}),
                Related::Infer
            )
            .is_none());
        let ask = link.next_ask().await;
        assert_eq!((ask.id, ask.method.as_str()), (json!("q"), "elicitation/create"));
        // A second call in flight makes the wire ambiguous: refused, not guessed.
        let other = Arc::new(CallLink::new(false));
        inbound.link(6, other.clone());
        let no = inbound
            .handle(json!({"jsonrpc":"2.0","id":10,"method":"roots/list"}), Related::Infer)
            .unwrap();
        assert_eq!(no["error"]["code"], -32603);
        // A call held for its caller's answer is not a candidate: the other one is — but a
        // session-level `roots/list` is placed only with a caller that has roots.
        other.set_held(true);
        let no = inbound
            .handle(json!({"jsonrpc":"2.0","id":15,"method":"roots/list"}), Related::Infer)
            .unwrap();
        assert_eq!(no["error"]["code"], -32603);
        link.attach(
            Some(&out),
            waygate_protocol::meta::log_level_rank("info"),
            Some(&json!("their-token")),
            true,
        );
        assert!(inbound
            .handle(json!({"jsonrpc":"2.0","id":14,"method":"roots/list"}), Related::Infer)
            .is_none());
        assert_eq!(link.next_ask().await.id, json!(14));
        other.set_held(false);
        assert!(inbound
            .handle(json!({"jsonrpc":"2.0","id":11,"method":"roots/list"}), Related::Call(5))
            .is_none());
        let no = inbound
            .handle(
                json!({"jsonrpc":"2.0","id":12,"method":"roots/list"}),
                Related::Unrelated,
            )
            .unwrap();
        assert_eq!(no["error"]["code"], -32603);
        // List changes reach the supervisor; pings are answered, other requests refused.
        inbound.handle(
            json!({"jsonrpc":"2.0","method":"notifications/tools/list_changed"}),
            Related::Infer,
        );
        assert_eq!(notes.recv().await, Some(Notification::ListChanged));
        let pong = inbound
            .handle(json!({"jsonrpc":"2.0","id":"p","method":"ping"}), Related::Infer)
            .unwrap();
        assert_eq!(pong, json!({"jsonrpc":"2.0","id":"p","result":{}}));
        let no = inbound
            .handle(json!({"jsonrpc":"2.0","id":13,"method":"tasks/list"}), Related::Infer)
            .unwrap();
        assert_eq!(no["error"]["code"], -32601);
        // A lost connection fails every waiting request.
        let w = inbound.wait(3);
        inbound.fail_all(UpstreamError::Closed("gone".into()));
        assert!(matches!(w.await.unwrap(), Err(UpstreamError::Closed(_))));
    }

    #[tokio::test]
    async fn what_a_server_says_after_the_gateway_gave_up_on_its_request_reaches_no_one() {
        let (tx, _notes) = mpsc::channel(1);
        let inbound = Inbound::new("t".into(), tx);
        let (out, mut bob_stream) = waygate_core::outq::channel();
        // Alice's request is cancelled; the server ignores that and keeps working.
        let alice = Arc::new(CallLink::new(true));
        alice.set_owner(Some("alice"));
        let _alice_answer = inbound.wait(1);
        inbound.link(1, alice.clone());
        inbound.abandon(1);
        // Bob's call is now the only live one, but the wire cannot tell the two apart.
        let bob = Arc::new(CallLink::new(true));
        bob.attach(Some(&out), Some(0), None, true);
        bob.set_owner(Some("bob"));
        inbound.link(2, bob.clone());
        let ask = json!({"jsonrpc":"2.0","id":"q","method":"elicitation/create","params":{"message":"alice's"}});
        let no = inbound.handle(ask.clone(), Related::Infer).unwrap();
        assert_eq!(no["error"]["code"], -32603, "{no}");
        let log = json!({"jsonrpc":"2.0","method":"notifications/message","params":{"level":"error","data":"alice's"}});
        inbound.handle(log.clone(), Related::Infer);
        assert!(
            bob_stream.try_recv().is_none(),
            "a log line of the abandoned request reached Bob"
        );
        // Named by the wire, the abandoned request takes nothing either.
        let no = inbound.handle(ask.clone(), Related::Call(1)).unwrap();
        assert_eq!(no["error"]["code"], -32603);
        // Once the server answers the abandoned request, the one call in flight is Bob's.
        assert!(inbound
            .handle_text(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#, Related::Infer)
            .is_none());
        assert!(inbound.handle(ask, Related::Infer).is_none());
        assert_eq!(bob.next_ask().await.id, json!("q"));
        inbound.handle(log.clone(), Related::Infer);
        assert!(bob_stream.try_recv().is_some(), "Bob's own log line");
        // Bob's own abandoned request does not keep his next call from its messages.
        let _bobs_answer = inbound.wait(3);
        inbound.link(3, bob.clone());
        inbound.abandon(3);
        inbound.handle(log.clone(), Related::Infer);
        assert!(
            bob_stream.try_recv().is_some(),
            "Bob's log line beside his own abandoned request"
        );
        // Another principal's call held for its answer may be what the server speaks of.
        let carol = Arc::new(CallLink::new(true));
        carol.set_owner(Some("carol"));
        carol.set_held(true);
        inbound.link(4, carol);
        inbound.handle(log, Related::Infer);
        assert!(
            bob_stream.try_recv().is_none(),
            "a held call of carol's makes the wire ambiguous"
        );
    }

    #[test]
    fn an_ended_call_passes_neither_as_waiting_nor_as_a_route() {
        let (out, mut stream) = waygate_core::outq::channel();
        let link = CallLink::new(true);
        link.attach(Some(&out), Some(0), Some(&json!("t")), true);
        link.set_held(true);
        link.end();
        assert!(!link.is_held() && !link.wants_progress());
        assert!(!link.log(&json!({"level":"error","data":"x"})));
        assert!(stream.try_recv().is_none());
    }
}
