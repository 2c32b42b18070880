//! One MCP client connection to an upstream: the handshake, request/response matching,
//! and what the server sends on its own (list changes, progress, pings).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use waygate_core::OutTx;
use waygate_protocol::jsonrpc::encode_message;

use crate::error::UpstreamError;
use crate::http::{HttpMode, HttpTarget, HttpWire};
use crate::legacy::LegacyWire;
use crate::stdio::{StdioTarget, StdioWire};

/// What an upstream tells the gateway on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// `notifications/{tools,resources,prompts}/list_changed`.
    ListChanged,
}

/// How to reach the server.
pub enum Target {
    Stdio(StdioTarget),
    Http(HttpTarget),
}

type Waiter = oneshot::Sender<Result<Value, UpstreamError>>;

/// Routes what arrives from the server: responses to their waiting request, progress to
/// the client that asked for it, list changes to the supervisor.
pub(crate) struct Inbound {
    pub name: Arc<str>,
    pending: Mutex<HashMap<i64, Waiter>>,
    /// Our progress token → the caller's stream and its own token.
    progress: Mutex<HashMap<String, (OutTx, Value)>>,
    notes: mpsc::Sender<Notification>,
}

impl Inbound {
    fn new(name: Arc<str>, notes: mpsc::Sender<Notification>) -> Arc<Inbound> {
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

/// The per-request envelope of the stateless era: who the gateway is, as a client.
fn envelope() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "waygate", "version": env!("CARGO_PKG_VERSION")},
    })
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

enum Wire {
    Stdio(StdioWire),
    Http(Box<HttpWire>),
    Legacy(LegacyWire),
}

/// Per-request extras: the caller's trace, its progress stream, its cancellation.
#[derive(Default)]
pub struct RequestOpts {
    pub timeout: Option<Duration>,
    /// `traceparent` and `tracestate`, sent in `_meta` and (HTTP) as headers.
    pub trace: Option<(String, Option<String>)>,
    /// The caller's progress token and stream; progress from the upstream is relayed.
    pub progress: Option<(Value, OutTx)>,
    pub cancel: Option<CancellationToken>,
    /// Extra HTTP headers (correlation id, passthrough); ignored over stdio.
    pub headers: Vec<(Box<str>, Box<str>)>,
}

/// A live, initialized connection.
pub struct Client {
    wire: Wire,
    inbound: Arc<Inbound>,
    next_id: AtomicI64,
    /// What the server answered to `initialize`.
    pub protocol_version: String,
    pub server_info: Value,
    pub capabilities: Value,
    /// What the server told clients in `initialize` (merged into the gateway's).
    pub instructions: Option<String>,
    default_timeout: Duration,
    /// Spoken to in the stateless 2026-07-28 era (the server refused `initialize` and
    /// answered `server/discover`): every request carries the `_meta` envelope.
    modern: bool,
}

/// The stateless revision an upstream may speak instead of the handshake.
const MODERN: &str = "2026-07-28";

impl Client {
    /// Start or reach the server and run the MCP handshake.
    pub async fn connect(
        name: &str,
        target: Target,
        timeout: Duration,
        notes: mpsc::Sender<Notification>,
    ) -> Result<Client, UpstreamError> {
        match target {
            Target::Http(t) if t.mode == HttpMode::Auto => {
                let fallback = t.clone();
                match Self::connect_on(name, Target::Http(t), timeout, notes.clone()).await {
                    Err(UpstreamError::Protocol(why)) if why.starts_with("HTTP 4") => {
                        tracing::info!(upstream = name, %why, "initialize refused; trying the legacy HTTP+SSE transport");
                        let legacy = HttpTarget {
                            mode: HttpMode::Sse,
                            ..fallback
                        };
                        Self::connect_on(name, Target::Http(legacy), timeout, notes)
                            .await
                            .map_err(|e| match e {
                                UpstreamError::Protocol(m) => UpstreamError::Protocol(format!(
                                    "neither Streamable HTTP ({why}) nor legacy SSE ({m})"
                                )),
                                e => e,
                            })
                    }
                    r => r,
                }
            }
            t => Self::connect_on(name, t, timeout, notes).await,
        }
    }

    async fn connect_on(
        name: &str,
        target: Target,
        timeout: Duration,
        notes: mpsc::Sender<Notification>,
    ) -> Result<Client, UpstreamError> {
        let inbound = Inbound::new(name.into(), notes);
        let wire = match target {
            Target::Stdio(t) => Wire::Stdio(StdioWire::spawn(t, inbound.clone())?),
            Target::Http(t) if t.mode == HttpMode::Sse => {
                Wire::Legacy(LegacyWire::connect(t, inbound.clone(), timeout).await?)
            }
            Target::Http(t) => Wire::Http(Box::new(HttpWire::new(t))),
        };
        let mut client = Client {
            wire,
            inbound,
            next_id: AtomicI64::new(1),
            protocol_version: String::new(),
            server_info: Value::Null,
            capabilities: Value::Null,
            instructions: None,
            default_timeout: timeout,
            modern: false,
        };
        let params = json!({
            "protocolVersion": crate::PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "waygate", "version": env!("CARGO_PKG_VERSION")},
        });
        let init = client.request("initialize", params, RequestOpts::default()).await;
        let init = match init {
            Ok(v) => v,
            // A server that refuses the handshake may be a stateless (2026-07-28) one.
            Err(e) if e.may_be_stateless() => match client.discover().await {
                Ok(()) => return Ok(client),
                Err(d) => {
                    tracing::debug!(upstream = name, error = %d, "not a stateless server either");
                    client.close().await;
                    return Err(match e {
                        UpstreamError::Closed(why) => UpstreamError::Connect(why),
                        e => e,
                    });
                }
            },
            Err(e) => {
                client.close().await;
                return Err(match e {
                    UpstreamError::Closed(why) => UpstreamError::Connect(why),
                    e => e,
                });
            }
        };
        let Some(version) = init.get("protocolVersion").and_then(Value::as_str) else {
            client.close().await;
            return Err(UpstreamError::Protocol(
                "initialize result has no protocolVersion".into(),
            ));
        };
        client.protocol_version = version.to_string();
        client.server_info = init.get("serverInfo").cloned().unwrap_or(Value::Null);
        client.capabilities = init.get("capabilities").cloned().unwrap_or_else(|| json!({}));
        client.instructions = init
            .get("instructions")
            .and_then(Value::as_str)
            .map(|s| s.chars().take(16 * 1024).collect());
        if let Wire::Http(h) = &client.wire {
            h.set_protocol(version);
        }
        client.notify("notifications/initialized", json!({})).await?;
        if let Wire::Http(h) = &client.wire {
            h.open_stream(client.inbound.clone());
        }
        Ok(client)
    }

    /// Switch to the stateless era when the server's `server/discover` offers it; then
    /// subscribe to its list changes (`subscriptions/listen` replaces the GET stream).
    async fn discover(&mut self) -> Result<(), UpstreamError> {
        self.modern = true;
        if let Wire::Http(h) = &self.wire {
            h.set_protocol(MODERN);
        }
        let r = self
            .request("server/discover", json!({}), RequestOpts::default())
            .await?;
        let offers = r
            .get("supportedVersions")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|v| v == MODERN));
        if !offers {
            self.modern = false;
            return Err(UpstreamError::Protocol(format!(
                "server/discover does not offer {MODERN}"
            )));
        }
        self.protocol_version = MODERN.into();
        self.capabilities = r.get("capabilities").cloned().unwrap_or_else(|| json!({}));
        self.server_info = r
            .pointer("/_meta/io.modelcontextprotocol~1serverInfo")
            .cloned()
            .unwrap_or(Value::Null);
        self.instructions = r
            .get("instructions")
            .and_then(Value::as_str)
            .map(|s| s.chars().take(16 * 1024).collect());
        let mut listen = json!({"notifications": {
            "toolsListChanged": true, "promptsListChanged": true, "resourcesListChanged": true}});
        listen["_meta"] = envelope();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let msg = json!({"jsonrpc": "2.0", "id": id, "method": "subscriptions/listen", "params": listen});
        match &self.wire {
            // Its answer only comes when the subscription ends; nothing waits for it.
            Wire::Stdio(s) => s.send(&msg)?,
            Wire::Http(h) => h.open_listen(msg, self.inbound.clone()),
            Wire::Legacy(_) => {}
        }
        Ok(())
    }

    /// How the server is reached: `stdio`, `http` (Streamable HTTP) or `sse` (legacy).
    pub fn transport(&self) -> &'static str {
        match self.wire {
            Wire::Stdio(_) => "stdio",
            Wire::Http(_) => "http",
            Wire::Legacy(_) => "sse",
        }
    }

    /// Whether the server declared a top-level capability (`tools`, `resources`, …).
    pub fn offers(&self, capability: &str) -> bool {
        self.capabilities.get(capability).is_some_and(|v| !v.is_null())
    }

    /// Resolves when the connection is gone (process exit); never for HTTP, whose loss
    /// shows as failed requests.
    pub async fn closed(&self) -> String {
        match &self.wire {
            Wire::Stdio(s) => s.closed().await,
            Wire::Legacy(l) => l.closed().await,
            Wire::Http(_) => std::future::pending().await,
        }
    }

    pub async fn notify(&self, method: &str, params: Value) -> Result<(), UpstreamError> {
        let msg = json!({"jsonrpc": "2.0", "method": method, "params": params});
        let headers = if self.modern {
            vec![("mcp-method".into(), method.into())]
        } else {
            Vec::new()
        };
        match &self.wire {
            Wire::Stdio(s) => s.send(&msg),
            Wire::Legacy(l) => l.send(&msg, self.default_timeout).await,
            Wire::Http(h) => h
                .post(&msg, None, None, &headers, &self.inbound, self.default_timeout)
                .await
                .map(|_| ()),
        }
    }

    /// One request; the upstream's `result` on success.
    pub async fn request(
        &self,
        method: &str,
        mut params: Value,
        mut opts: RequestOpts,
    ) -> Result<Value, UpstreamError> {
        // The stateless era has no ping; discovery is its cheapest request.
        let method = if self.modern && method == "ping" {
            "server/discover"
        } else {
            method
        };
        if self.modern {
            let env = envelope();
            if !params["_meta"].is_object() {
                params["_meta"] = json!({});
            }
            if let (Some(m), Some(e)) = (params["_meta"].as_object_mut(), env.as_object()) {
                for (k, v) in e {
                    m.insert(k.clone(), v.clone());
                }
            }
            opts.headers.push(("mcp-method".into(), method.into()));
            let name = match method {
                "tools/call" | "prompts/get" => params.get("name"),
                "resources/read" => params.get("uri"),
                _ => None,
            };
            if let Some(n) = name.and_then(Value::as_str) {
                let v = waygate_protocol::headers::encode_value(n);
                opts.headers.push(("mcp-name".into(), (*v).into()));
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let timeout = opts.timeout.unwrap_or(self.default_timeout);
        let mut ours = None;
        if let Some((theirs, out)) = &opts.progress {
            let token = format!("wg-{id}");
            self.inbound
                .progress
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(token.clone(), (out.clone(), theirs.clone()));
            params["_meta"]["progressToken"] = json!(token);
            ours = Some(token);
        }
        if let Some((tp, ts)) = &opts.trace {
            params["_meta"]["traceparent"] = json!(tp);
            if let Some(ts) = ts {
                params["_meta"]["tracestate"] = json!(ts);
            }
        }
        let msg = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let call = async {
            match &self.wire {
                Wire::Stdio(s) => {
                    let rx = self.inbound.wait(id);
                    s.send(&msg)?;
                    rx.await
                        .unwrap_or_else(|_| Err(UpstreamError::Closed("the connection ended".into())))
                }
                Wire::Legacy(l) => {
                    let rx = self.inbound.wait(id);
                    l.send(&msg, timeout).await?;
                    rx.await
                        .unwrap_or_else(|_| Err(UpstreamError::Closed("the connection ended".into())))
                }
                Wire::Http(h) => match h
                    .post(
                        &msg,
                        Some(id),
                        opts.trace.as_ref(),
                        &opts.headers,
                        &self.inbound,
                        timeout,
                    )
                    .await?
                {
                    Some(resp) => response_of(resp),
                    None => Err(UpstreamError::Protocol("no response to a request".into())),
                },
            }
        };
        let cancel = opts.cancel.clone().unwrap_or_default();
        let out = tokio::select! {
            r = tokio::time::timeout(timeout, call) => match r {
                Ok(r) => r,
                Err(_) => {
                    self.cancel_request(id, "timed out").await;
                    Err(UpstreamError::Timeout(timeout.as_millis() as u64))
                }
            },
            _ = cancel.cancelled() => {
                self.cancel_request(id, "cancelled by the client").await;
                Err(UpstreamError::Cancelled)
            }
        };
        self.inbound.forget(id);
        if let Some(t) = ours {
            self.inbound
                .progress
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&t);
        }
        out
    }

    async fn cancel_request(&self, id: i64, reason: &str) {
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            self.notify("notifications/cancelled", json!({"requestId": id, "reason": reason})),
        )
        .await;
    }

    /// Every page of a list method (`tools/list` → `tools`), bounded.
    pub async fn list_all(&self, method: &str, key: &str) -> Result<Vec<Value>, UpstreamError> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..1000 {
            let params = match &cursor {
                Some(c) => json!({"cursor": c}),
                None => json!({}),
            };
            let page = self.request(method, params, RequestOpts::default()).await?;
            match page.get(key).and_then(Value::as_array) {
                Some(items) => out.extend(items.iter().cloned()),
                None => return Err(UpstreamError::Protocol(format!("{method} result has no {key:?} array"))),
            }
            cursor = page.get("nextCursor").and_then(Value::as_str).map(str::to_string);
            if cursor.is_none() {
                return Ok(out);
            }
        }
        Err(UpstreamError::Protocol(format!("{method}: more than 1000 pages")))
    }

    /// End the session: close stdin and reap the process, or delete the HTTP session.
    pub async fn close(&self) {
        self.inbound
            .fail_all(UpstreamError::Closed("the gateway closed the connection".into()));
        match &self.wire {
            Wire::Stdio(s) => s.shutdown().await,
            Wire::Legacy(l) => l.shutdown(),
            Wire::Http(h) => h.end_session().await,
        }
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
