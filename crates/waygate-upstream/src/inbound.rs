//! What arrives from an upstream on its own or in answer: responses matched to their
//! waiting request, progress relayed to the caller that asked, list changes handed to the
//! supervisor, and the gateway's replies to the server's own requests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use waygate_core::OutTx;
use waygate_protocol::jsonrpc::encode_message;

use crate::error::UpstreamError;

/// What an upstream tells the gateway on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// `notifications/{tools,resources,prompts}/list_changed`.
    ListChanged,
}

type Waiter = oneshot::Sender<Result<Value, UpstreamError>>;

/// Routes what arrives from the server: responses to their waiting request, progress to
/// the client that asked for it, list changes to the supervisor.
pub(crate) struct Inbound {
    pub name: Arc<str>,
    pending: Mutex<HashMap<i64, Waiter>>,
    /// Our progress token → the caller's stream and its own token.
    pub(crate) progress: Mutex<HashMap<String, (OutTx, Value)>>,
    notes: mpsc::Sender<Notification>,
}

impl Inbound {
    pub(crate) fn new(name: Arc<str>, notes: mpsc::Sender<Notification>) -> Arc<Inbound> {
        Arc::new(Inbound {
            name,
            pending: Mutex::new(HashMap::new()),
            progress: Mutex::new(HashMap::new()),
            notes,
        })
    }

    pub(crate) fn wait(&self, id: i64) -> oneshot::Receiver<Result<Value, UpstreamError>> {
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).insert(id, tx);
        rx
    }

    pub(crate) fn forget(&self, id: i64) {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
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

    /// Handle one message from the server; returns the answer to send back when it was a
    /// request.
    pub(crate) fn handle(&self, msg: Value) -> Option<Value> {
        let method = msg.get("method").and_then(Value::as_str);
        match (method, msg.get("id")) {
            (Some(m), Some(id)) => Some(answer_server_request(m, id)),
            (Some(m), None) => {
                self.notification(m, &msg);
                None
            }
            (None, Some(id)) => {
                if let Some(id) = id.as_i64() {
                    let waiter = self.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                    if let Some(w) = waiter {
                        let _ = w.send(response_of(msg));
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

    fn notification(&self, method: &str, msg: &Value) {
        match method {
            "notifications/tools/list_changed"
            | "notifications/resources/list_changed"
            | "notifications/prompts/list_changed" => {
                // One pending change is enough (the supervisor re-lists everything): a flood
                // of list_changed is bounded to a single queued refresh.
                let _ = self.notes.try_send(Notification::ListChanged);
            }
            "notifications/progress" => {
                let Some(params) = msg.get("params") else { return };
                let token = params.get("progressToken").and_then(Value::as_str).unwrap_or_default();
                let route = self
                    .progress
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(token)
                    .cloned();
                if let Some((out, theirs)) = route {
                    let mut p = params.clone();
                    p["progressToken"] = theirs;
                    let _ = out.send(encode_message(None, method, &p));
                }
            }
            "notifications/message" => {
                let data = msg.get("params").map(Value::to_string).unwrap_or_default();
                tracing::info!(upstream = %self.name, %data, "upstream log");
            }
            _ => tracing::debug!(upstream = %self.name, method, "upstream notification ignored"),
        }
    }
}

/// The gateway answers pings; it does not lend its own clients to upstreams (sampling,
/// elicitation, roots), so those are refused by name.
fn answer_server_request(method: &str, id: &Value) -> Value {
    if method == "ping" {
        json!({"jsonrpc": "2.0", "id": id, "result": {}})
    } else {
        json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601,
            "message": format!("the gateway does not serve {method} to upstreams")}})
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
    async fn inbound_routes_responses_progress_and_list_changes() {
        let (tx, mut notes) = mpsc::channel(1);
        let inbound = Inbound::new("t".into(), tx);
        // A response reaches the request waiting for its id, an error is an Rpc error.
        let ok = inbound.wait(1);
        let err = inbound.wait(2);
        assert!(inbound
            .handle(json!({"jsonrpc":"2.0","id":1,"result":{"x":1}}))
            .is_none());
        assert!(inbound
            .handle(json!({"jsonrpc":"2.0","id":2,"error":{"code":-32602,"message":"bad"}}))
            .is_none());
        assert_eq!(ok.await.unwrap().unwrap(), json!({"x":1}));
        assert!(matches!(
            err.await.unwrap(),
            Err(UpstreamError::Rpc { code: -32602, .. })
        ));
        // Progress under our token goes to the caller under theirs.
        let (out, mut caller) = waygate_core::outq::channel();
        inbound
            .progress
            .lock()
            .unwrap()
            .insert("wg-5".into(), (out, json!("their-token")));
        inbound.handle(
            json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"wg-5","progress":1}}),
        );
        let sent: Value = serde_json::from_slice(&caller.recv().await.unwrap()).unwrap();
        assert_eq!(sent["params"]["progressToken"], "their-token");
        assert_eq!(sent["params"]["progress"], 1);
        // List changes reach the supervisor; pings are answered, other requests refused.
        inbound.handle(json!({"jsonrpc":"2.0","method":"notifications/tools/list_changed"}));
        assert_eq!(notes.recv().await, Some(Notification::ListChanged));
        let pong = inbound
            .handle(json!({"jsonrpc":"2.0","id":"p","method":"ping"}))
            .unwrap();
        assert_eq!(pong, json!({"jsonrpc":"2.0","id":"p","result":{}}));
        let no = inbound
            .handle(json!({"jsonrpc":"2.0","id":9,"method":"sampling/createMessage","params":{}}))
            .unwrap();
        assert_eq!(no["error"]["code"], -32601);
        // A lost connection fails every waiting request.
        let w = inbound.wait(3);
        inbound.fail_all(UpstreamError::Closed("gone".into()));
        assert!(matches!(w.await.unwrap(), Err(UpstreamError::Closed(_))));
    }
}
