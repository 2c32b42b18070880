//! One MCP client connection to an upstream: the handshake, request/response matching,
//! and what the server sends on its own (list changes, progress, pings).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use waygate_core::OutTx;

use crate::error::UpstreamError;
use crate::http::{HttpMode, HttpTarget, HttpWire};
pub use crate::inbound::Notification;
pub(crate) use crate::inbound::{response_of, Inbound};
use crate::legacy::LegacyWire;
use crate::openapi::{OpenApiTarget, OpenApiWire};
use crate::stdio::{StdioTarget, StdioWire};

/// How to reach the server.
pub enum Target {
    Stdio(StdioTarget),
    Http(HttpTarget),
    OpenApi(OpenApiTarget),
}

/// The per-request envelope of the stateless era: who the gateway is, as a client.
fn envelope() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "waygate", "version": env!("CARGO_PKG_VERSION")},
    })
}

enum Wire {
    Stdio(StdioWire),
    Http(Box<HttpWire>),
    Legacy(LegacyWire),
    /// A REST API described by an OpenAPI document, answered in process.
    OpenApi(Box<OpenApiWire>),
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
            Target::OpenApi(t) => return Self::openapi(t, inbound, timeout).await,
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

    /// An OpenAPI upstream has no handshake: its document is read and mapped instead.
    async fn openapi(t: OpenApiTarget, inbound: Arc<Inbound>, timeout: Duration) -> Result<Client, UpstreamError> {
        let w = OpenApiWire::load(t, timeout).await?;
        Ok(Client {
            protocol_version: w.protocol_version(),
            server_info: w.server_info(),
            capabilities: json!({"tools": {}}),
            instructions: w.instructions(),
            wire: Wire::OpenApi(Box::new(w)),
            inbound,
            next_id: AtomicI64::new(1),
            default_timeout: timeout,
            modern: false,
        })
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
            Wire::Legacy(_) | Wire::OpenApi(_) => {}
        }
        Ok(())
    }

    /// How the server is reached: `stdio`, `http` (Streamable HTTP) or `sse` (legacy).
    pub fn transport(&self) -> &'static str {
        match self.wire {
            Wire::Stdio(_) => "stdio",
            Wire::Http(_) => "http",
            Wire::Legacy(_) => "sse",
            Wire::OpenApi(_) => "openapi",
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
            Wire::Http(_) | Wire::OpenApi(_) => std::future::pending().await,
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
            Wire::OpenApi(_) => Ok(()),
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
                Wire::OpenApi(w) => {
                    w.handle(method, &msg["params"], &opts.headers, opts.trace.as_ref(), timeout)
                        .await
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
            let mut page = self.request(method, params, RequestOpts::default()).await?;
            match page.get_mut(key).and_then(Value::as_array_mut) {
                Some(items) => out.append(items),
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
            Wire::OpenApi(_) => {}
        }
    }
}
