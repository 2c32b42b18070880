//! One MCP client connection to an upstream: the handshake, request/response matching,
//! and what the server sends on its own (list changes, progress, pings).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::envelope::{envelope, request_bytes, to_bytes, MetaAdds, MODERN};
pub use crate::envelope::{Caller, Params};
use crate::error::UpstreamError;
use crate::http::{HttpMode, HttpTarget, HttpWire};
pub(crate) use crate::inbound::Inbound;
pub use crate::inbound::Notification;
use crate::inbound::{raw_of, Answer};
use crate::legacy::LegacyWire;
use crate::link::CallLink;
use crate::openapi::{OpenApiTarget, OpenApiWire};
pub use crate::request::Deadline;
use crate::request::Registered;
use crate::stdio::{StdioTarget, StdioWire};
use http::{HeaderName, HeaderValue};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use waygate_protocol::headers::{MCP_METHOD, MCP_NAME, TRACEPARENT, TRACESTATE};

/// Which revision family the gateway speaks to an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Era {
    /// Ask `server/discover` first and speak 2026-07-28 when offered, else the handshake
    /// (the spec's dual-era detection).
    #[default]
    Auto,
    /// Always the `initialize` handshake (2025-11-25 and older).
    Session,
    /// Only 2026-07-28; a server that does not offer it is an error.
    Stateless,
}

/// What `server/discover` found.
enum Discovered {
    /// Spoken to in 2026-07-28 from now on.
    Stateless,
    /// The server speaks both eras, and `auto` picks the handshake: through a session the
    /// gateway carries what its stateless side does not forward yet (tasks it runs for
    /// the caller, resource subscriptions, per-session log levels), and a stateless caller
    /// is still served, by holding the call (see `relay`).
    Both,
}

/// How long the `server/discover` probe may take before the server counts as session-era.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// How to reach the server.
#[derive(Clone)]
pub enum Target {
    Stdio(StdioTarget),
    Http(HttpTarget),
    OpenApi(OpenApiTarget),
}

pub(crate) enum Wire {
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
    /// The caller behind the request: its progress, log lines and the server's questions
    /// are relayed through it.
    pub link: Option<Arc<CallLink>>,
    /// Replaces `timeout` with a deadline the caller can move.
    pub deadline: Option<Arc<Deadline>>,
    /// For stateless upstreams: the caller's capabilities and log level.
    pub caller: Option<Caller>,
    /// The caller is stateless (2026-07-28): send the request in that era when the server
    /// speaks both over HTTP (see [`Client::both_eras`]).
    pub stateless: bool,
    pub cancel: Option<CancellationToken>,
    /// Extra HTTP headers (correlation id, passthrough); ignored over stdio.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// A live, initialized connection.
pub struct Client {
    pub(crate) wire: Wire,
    pub(crate) inbound: Arc<Inbound>,
    pub(crate) next_id: AtomicI64,
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
    /// An HTTP server that speaks both eras, reached through a session: a stateless
    /// caller's requests still go to it statelessly, one by one (the spec lets a dual-era
    /// HTTP server serve each request in the era it carries; a stdio server may pin its
    /// era per connection, so stdio never does this).
    pub both_eras: bool,
    /// The open `subscriptions/listen` for resource updates (stateless era): its id, and
    /// over HTTP what ends its stream.
    pub(crate) resource_listen: std::sync::Mutex<Option<(i64, Option<tokio_util::sync::CancellationToken>)>>,
}

impl Client {
    /// Start or reach the server and run the MCP handshake.
    pub async fn connect(
        name: &str,
        target: Target,
        timeout: Duration,
        notes: mpsc::Sender<Notification>,
        era: Era,
    ) -> Result<Client, UpstreamError> {
        // Some session-era stdio servers exit on any request before `initialize`: such a
        // probe costs one process start, and the second attempt goes straight to the handshake.
        let retry = (era == Era::Auto && matches!(target, Target::Stdio(_))).then(|| target.clone());
        match Self::connect_via(name, target, timeout, notes.clone(), era).await {
            Err(UpstreamError::ProbeEnded(why)) => match retry {
                Some(t) => {
                    tracing::info!(upstream = name, %why, "the server ended on server/discover; using the handshake");
                    Self::connect_via(name, t, timeout, notes, Era::Session).await
                }
                None => Err(UpstreamError::Connect(why)),
            },
            r => r,
        }
    }

    async fn connect_via(
        name: &str,
        target: Target,
        timeout: Duration,
        notes: mpsc::Sender<Notification>,
        era: Era,
    ) -> Result<Client, UpstreamError> {
        match target {
            Target::Http(t) if t.mode == HttpMode::Auto => {
                let fallback = t.clone();
                match Self::connect_on(name, Target::Http(t), timeout, notes.clone(), era).await {
                    Err(UpstreamError::Protocol(why)) if why.starts_with("HTTP 4") && era != Era::Stateless => {
                        tracing::info!(upstream = name, %why, "initialize refused; trying the legacy HTTP+SSE transport");
                        let legacy = HttpTarget {
                            mode: HttpMode::Sse,
                            ..fallback
                        };
                        Self::connect_on(name, Target::Http(legacy), timeout, notes, Era::Session)
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
            t => Self::connect_on(name, t, timeout, notes, era).await,
        }
    }

    async fn connect_on(
        name: &str,
        target: Target,
        timeout: Duration,
        notes: mpsc::Sender<Notification>,
        era: Era,
    ) -> Result<Client, UpstreamError> {
        let inbound = Inbound::new(name.into(), notes);
        let wire = match target {
            Target::Stdio(t) => Wire::Stdio(StdioWire::spawn(t, inbound.clone())?),
            Target::Http(t) if t.mode == HttpMode::Sse => {
                Wire::Legacy(LegacyWire::connect(t, inbound.clone(), timeout).await?)
            }
            Target::Http(t) => Wire::Http(Box::new(HttpWire::new(t)?)),
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
            both_eras: false,
            resource_listen: std::sync::Mutex::new(None),
        };
        let probe = era != Era::Session && !matches!(client.wire, Wire::Legacy(_));
        if probe {
            match client.discover(era).await {
                Ok(Discovered::Stateless) => return Ok(client),
                Ok(Discovered::Both) => {
                    tracing::debug!(upstream = name, "the server speaks both eras; using the handshake");
                    client.both_eras = matches!(client.wire, Wire::Http(_));
                }
                Err(e) if e.is_connection_loss() && matches!(client.wire, Wire::Stdio(_)) => {
                    client.close().await;
                    return Err(UpstreamError::ProbeEnded(e.to_string()));
                }
                Err(e) if era == Era::Stateless => {
                    client.close().await;
                    return Err(UpstreamError::Protocol(format!(
                        "the upstream does not speak 2026-07-28 (server/discover: {e})"
                    )));
                }
                Err(e) => tracing::debug!(upstream = name, error = %e, "not a stateless server; using the handshake"),
            }
        }
        // What the gateway can relay from its callers; a caller that lacks one is refused
        // per call (a shared connection cannot declare per caller).
        let params = json!({
            "protocolVersion": crate::PROTOCOL_VERSION,
            "capabilities": {"sampling": {}, "elicitation": {"form": {}, "url": {}}, "roots": {}},
            "clientInfo": {"name": "waygate", "version": env!("CARGO_PKG_VERSION")},
        });
        let init = client.request("initialize", params, RequestOpts::default()).await;
        let init = match init {
            Ok(v) => v,
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
            h.set_protocol(Some(version));
        }
        client.notify("notifications/initialized", json!({})).await?;
        // Every level, filtered per caller by the gateway (each caller's own setting).
        if client.offers("logging") {
            let level = json!({"level": "debug"});
            if let Err(e) = client.request("logging/setLevel", level, RequestOpts::default()).await {
                tracing::debug!(upstream = name, error = %e, "logging/setLevel refused");
            }
        }
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
            both_eras: false,
            resource_listen: std::sync::Mutex::new(None),
        })
    }

    /// Switch to the stateless era when the server's `server/discover` offers it; then
    /// subscribe to its list changes (`subscriptions/listen` replaces the GET stream).
    async fn discover(&mut self, era: Era) -> Result<Discovered, UpstreamError> {
        self.modern = true;
        if let Wire::Http(h) = &self.wire {
            h.set_protocol(Some(MODERN));
        }
        let opts = RequestOpts {
            timeout: Some(PROBE_TIMEOUT.min(self.default_timeout)),
            ..RequestOpts::default()
        };
        let r = self.request("server/discover", json!({}), opts).await.and_then(|r| {
            let offers = r
                .get("supportedVersions")
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|v| v == MODERN));
            if offers {
                Ok(r)
            } else {
                Err(UpstreamError::Protocol(format!(
                    "server/discover does not offer {MODERN}"
                )))
            }
        });
        let dual = r.as_ref().is_ok_and(|r| {
            r.get("supportedVersions")
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|v| v.as_str().is_some_and(|v| v.starts_with("2025-"))))
        });
        let r = match r {
            Ok(_) if dual && era == Era::Auto => {
                self.modern = false;
                if let Wire::Http(h) = &self.wire {
                    h.set_protocol(None);
                }
                return Ok(Discovered::Both);
            }
            Ok(r) => r,
            Err(e) => {
                self.modern = false;
                if let Wire::Http(h) = &self.wire {
                    h.set_protocol(None);
                }
                return Err(e);
            }
        };
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
        listen["_meta"] = envelope(None);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let msg = json!({"jsonrpc": "2.0", "id": id, "method": "subscriptions/listen", "params": listen});
        match &self.wire {
            // Its answer only comes when the subscription ends; nothing waits for it.
            Wire::Stdio(s) => s.send(&msg)?,
            Wire::Http(h) => {
                h.open_listen(msg, self.inbound.clone());
            }
            Wire::Legacy(_) | Wire::OpenApi(_) => {}
        }
        Ok(Discovered::Stateless)
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
    /// Spoken to in the stateless 2026-07-28 era.
    pub fn is_modern(&self) -> bool {
        self.modern
    }

    /// The server's `notifications/resources/updated` URIs go to `tx`.
    pub(crate) fn on_resource_updated(&self, tx: tokio::sync::mpsc::Sender<String>) {
        self.inbound.on_resource_updated(tx);
    }

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
        let headers = match HeaderValue::from_str(method) {
            Ok(v) if self.modern => vec![(MCP_METHOD, v)],
            _ => Vec::new(),
        };
        match &self.wire {
            Wire::Stdio(s) => s.send(&msg),
            Wire::OpenApi(_) => Ok(()),
            Wire::Legacy(l) => l.send(&msg, self.default_timeout).await,
            Wire::Http(h) => h
                .post(
                    to_bytes(&msg),
                    None,
                    &headers,
                    &self.inbound,
                    Some(self.default_timeout),
                    false,
                )
                .await
                .map(|_| ()),
        }
    }

    /// One request; the upstream's `result` on success.
    pub async fn request(&self, method: &str, params: Value, opts: RequestOpts) -> Result<Value, UpstreamError> {
        let raw = self.request_raw(method, params, opts).await?;
        serde_json::from_str(raw.get()).map_err(|e| UpstreamError::Protocol(format!("result is not JSON: {e}")))
    }

    /// One request; the upstream's `result` as the text it sent (what a forwarded call
    /// passes on to its caller untouched).
    pub async fn request_raw(&self, method: &str, params: impl Into<Params>, mut opts: RequestOpts) -> Answer {
        let params = params.into();
        // The stateless era has no ping; discovery is its cheapest request.
        // A stateless caller's request to an HTTP server that speaks both eras goes in its
        // own era, so the server sees that caller's capabilities rather than the session's.
        let per_call = opts.stateless && self.both_eras && !self.modern;
        let modern = self.modern || per_call;
        let method = if modern && method == "ping" {
            "server/discover"
        } else {
            method
        };
        let mut adds = MetaAdds::default();
        if modern {
            adds.envelope = Some(opts.caller.as_ref());
            if let Ok(v) = HeaderValue::from_str(method) {
                opts.headers.push((MCP_METHOD, v));
            }
            if let Some(n) = params.mirrored_name(method) {
                if let Ok(v) = HeaderValue::from_str(&waygate_protocol::headers::encode_value(n)) {
                    opts.headers.push((MCP_NAME, v));
                }
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let timeout = opts.timeout.unwrap_or(self.default_timeout);
        let mut registered = Registered {
            client: self,
            id,
            answered: false,
            told: false,
        };
        if let Some(link) = &opts.link {
            if link.wants_progress() {
                adds.progress = Some(id);
            }
            self.inbound.link(id, link.clone());
        }
        if let Some((tp, ts)) = &opts.trace {
            adds.trace = Some((tp, ts.as_deref()));
        }
        let body = request_bytes(id, method, &params, &adds);
        if let Some((tp, ts)) = &opts.trace {
            // Over HTTP the trace also travels as headers (ignored over stdio).
            if let Ok(v) = HeaderValue::from_str(tp) {
                opts.headers.push((TRACEPARENT, v));
            }
            if let Some(Ok(v)) = ts.as_deref().map(HeaderValue::from_str) {
                opts.headers.push((TRACESTATE, v));
            }
        }
        let call = async {
            match &self.wire {
                Wire::Stdio(s) => {
                    let rx = self.inbound.wait(id);
                    s.send_bytes(body)?;
                    rx.await
                        .unwrap_or_else(|_| Err(UpstreamError::Closed("the connection ended".into())))
                }
                Wire::Legacy(l) => {
                    let rx = self.inbound.wait(id);
                    l.send_bytes(body, timeout).await?;
                    rx.await
                        .unwrap_or_else(|_| Err(UpstreamError::Closed("the connection ended".into())))
                }
                Wire::OpenApi(w) => w
                    .handle(method, &params.tree(), &opts.headers, timeout)
                    .await
                    .and_then(|v| raw_of(&v)),
                Wire::Http(h) => match h
                    .post(body, Some(id), &opts.headers, &self.inbound, None, per_call)
                    .await?
                {
                    Some(answer) => answer,
                    None => Err(UpstreamError::Protocol("no response to a request".into())),
                },
            }
        };
        let cancel = opts.cancel.clone().unwrap_or_default();
        let deadline = opts
            .deadline
            .clone()
            .unwrap_or_else(|| Arc::new(Deadline::new(timeout)));
        let mut call = std::pin::pin!(call);
        // Given up on (a timeout, the caller's cancellation), the request stays unanswered
        // for the routing tables: the server may still be working on it.
        loop {
            let until = deadline.get();
            tokio::select! {
                r = &mut call => {
                    registered.answered = true;
                    break r;
                }
                _ = tokio::time::sleep_until(until) => {
                    // Moved while we slept: wait for the new one.
                    if deadline.get() > tokio::time::Instant::now() {
                        continue;
                    }
                    self.cancel_request(id, "timed out").await;
                    registered.told = true;
                    break Err(UpstreamError::Timeout(timeout.as_millis() as u64));
                }
                _ = cancel.cancelled() => {
                    self.cancel_request(id, "cancelled by the client").await;
                    registered.told = true;
                    break Err(UpstreamError::Cancelled);
                }
            }
        }
    }

    /// Answer a request the server sent (one relayed to a caller): its `result`, or a
    /// JSON-RPC error.
    pub async fn respond(&self, id: &Value, answer: Result<Value, (i64, String)>) -> Result<(), UpstreamError> {
        let msg = match answer {
            Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
            Err((code, message)) => json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}),
        };
        match &self.wire {
            Wire::Stdio(s) => s.send(&msg),
            Wire::OpenApi(_) => Ok(()),
            Wire::Legacy(l) => l.send(&msg, self.default_timeout).await,
            Wire::Http(h) => h
                .post(
                    to_bytes(&msg),
                    None,
                    &[],
                    &self.inbound,
                    Some(self.default_timeout),
                    false,
                )
                .await
                .map(|_| ()),
        }
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
