//! An upstream MCP server as a plugin: connect, list, forward; a supervisor keeps the
//! connection alive and republishes the catalog when the upstream's lists change.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use waygate_core::plugin::{PromptDef, ResourceDef, ResourceTemplateDef, ToolDef};
use waygate_core::{
    BoxFuture, CallContext, Invocation, Manifest, Outcome, Plugin, PluginError, PluginInit, PluginRegistry, Target,
};

use crate::client::{Client, Deadline, Notification, RequestOpts, Target as Wire};
use crate::error::UpstreamError;
use crate::http::HttpTarget;
use crate::link::CallLink;
use crate::relay::{caller_of, Held, Running, Step};
use crate::stats::{Stats, Status};
use crate::stdio::StdioTarget;

/// Everything needed to reach one upstream, secrets already resolved.
#[derive(Debug, Clone)]
pub struct UpstreamSpec {
    pub name: String,
    pub wiring: Wiring,
    /// Per forwarded request.
    pub timeout: Duration,
    /// Start/connect + handshake + listing.
    pub connect_timeout: Duration,
    /// How often a quiet connection is pinged.
    pub health_interval: Duration,
    /// How long a call waits for its caller's answer to a relayed question.
    pub input_timeout: Duration,
    /// Which revision family to speak.
    pub era: crate::client::Era,
    /// Client request headers forwarded to this (HTTP) upstream, lowercase.
    pub passthrough: Vec<String>,
}

/// Never forwarded from a client, whatever `passthrough_headers` says: they belong to the
/// gateway's own connection and session with the upstream.
const NOT_FORWARDED: [&str; 10] = [
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "accept",
    "mcp-session-id",
    "mcp-protocol-version",
    "traceparent",
    "tracestate",
];

#[derive(Debug, Clone)]
pub enum Wiring {
    Stdio(StdioTarget),
    Http(HttpTarget),
    OpenApi(crate::openapi::OpenApiTarget),
}

/// The plugin handle the registry holds. The supervisor task holds only the [`Shared`]
/// state, so the handle's reference count still tells the registry when in-flight calls
/// have drained (a supervisor holding the handle would make every drain wait its timeout).
pub struct Upstream(Arc<Shared>);

impl std::ops::Deref for Upstream {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The state an upstream's supervisor shares with its plugin handle.
pub struct Shared {
    spec: UpstreamSpec,
    client: RwLock<Option<Arc<Client>>>,
    stats: Stats,
    registry: Weak<PluginRegistry>,
    stop: CancellationToken,
    supervising: AtomicBool,
    /// A forwarded request found the connection gone; wakes the supervisor.
    lost: Notify,
    notes: Mutex<Option<mpsc::Receiver<Notification>>>,
    notes_tx: mpsc::Sender<Notification>,
    ever_up: AtomicBool,
    /// Calls waiting for their callers' answers to the upstream's questions.
    held: Arc<Held>,
}

const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long loading waits for the first connection before listing the upstream as down.
const FIRST_WAIT: Duration = Duration::from_secs(2);

impl Upstream {
    /// `registry` is where the supervisor republishes this upstream's lists.
    pub fn new(spec: UpstreamSpec, registry: Weak<PluginRegistry>) -> Arc<Upstream> {
        let (tx, rx) = mpsc::channel(1);
        Arc::new(Upstream(Arc::new(Shared {
            spec,
            client: RwLock::new(None),
            stats: Stats::new(),
            registry,
            stop: CancellationToken::new(),
            supervising: AtomicBool::new(false),
            lost: Notify::new(),
            notes: Mutex::new(Some(rx)),
            notes_tx: tx,
            ever_up: AtomicBool::new(false),
            held: Arc::new(Held::default()),
        })))
    }

    fn ensure_supervisor(&self) {
        if self.supervising.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(notes) = self.notes.lock().unwrap_or_else(|e| e.into_inner()).take() {
            tokio::spawn(self.0.clone().supervise(notes));
        }
    }
}

impl Shared {
    pub fn upstream_name(&self) -> &str {
        &self.spec.name
    }

    pub(crate) fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn status(&self) -> Status {
        self.stats.status()
    }

    /// State, last error, restarts, latency and the server's own description.
    pub fn describe(&self) -> Value {
        let mut v = self.stats.describe();
        v["transport"] = json!(match &self.spec.wiring {
            Wiring::Stdio(_) => "stdio",
            Wiring::Http(h) if h.mode == crate::http::HttpMode::Sse => "sse",
            Wiring::Http(_) => "http",
            Wiring::OpenApi(_) => "openapi",
        });
        if let Some(c) = self.current() {
            v["protocol_version"] = json!(c.protocol_version);
            v["server_info"] = c.server_info.clone();
            v["transport"] = json!(c.transport());
        }
        v
    }

    fn current(&self) -> Option<Arc<Client>> {
        self.client.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    async fn connect(&self) -> Result<Arc<Client>, UpstreamError> {
        let t = Instant::now();
        let wire = match &self.spec.wiring {
            Wiring::Stdio(s) => Wire::Stdio(s.clone()),
            Wiring::Http(h) => Wire::Http(h.clone()),
            Wiring::OpenApi(o) => Wire::OpenApi(o.clone()),
        };
        let fut = Client::connect(
            &self.spec.name,
            wire,
            self.spec.timeout,
            self.notes_tx.clone(),
            self.spec.era,
        );
        let client = match tokio::time::timeout(self.spec.connect_timeout, fut).await {
            Ok(Ok(c)) => Arc::new(c),
            Ok(Err(e)) => return Err(self.connect_failed(e)),
            Err(_) => {
                let ms = self.spec.connect_timeout.as_millis() as u64;
                return Err(self.connect_failed(UpstreamError::Connect(format!("no handshake within {ms} ms"))));
            }
        };
        self.stats
            .connect_ms
            .store(t.elapsed().as_millis() as u64, Ordering::Relaxed);
        if self.ever_up.swap(true, Ordering::Relaxed) {
            self.stats.restarts.fetch_add(1, Ordering::Relaxed);
        }
        self.stats.set(Status::Up, None);
        tracing::info!(upstream = %self.spec.name, protocol = %client.protocol_version, ms = t.elapsed().as_millis() as u64, "upstream connected");
        *self.client.write().unwrap_or_else(|e| e.into_inner()) = Some(client.clone());
        Ok(client)
    }

    fn connect_failed(&self, e: UpstreamError) -> UpstreamError {
        self.stats.connects_failed.fetch_add(1, Ordering::Relaxed);
        let next = if self.ever_up.load(Ordering::Relaxed) {
            Status::Reconnecting
        } else {
            Status::Connecting
        };
        self.stats.set(next, Some(e.to_string()));
        tracing::warn!(upstream = %self.spec.name, error = %e, "upstream connection failed");
        e
    }

    /// Drop `c` if it is still the live connection.
    fn mark_lost(&self, c: &Arc<Client>, why: String) {
        let mut cur = self.client.write().unwrap_or_else(|e| e.into_inner());
        if cur.as_ref().is_some_and(|x| Arc::ptr_eq(x, c)) {
            *cur = None;
            drop(cur);
            tracing::warn!(upstream = %self.spec.name, reason = %why, "upstream connection lost; reconnecting");
            self.stats.set(Status::Reconnecting, Some(why));
            let c = c.clone();
            tokio::spawn(async move { c.close().await });
            self.lost.notify_one();
        }
    }

    async fn supervise(self: Arc<Self>, mut notes: mpsc::Receiver<Notification>) {
        // The first attempt starts at once; later ones back off up to MAX_BACKOFF.
        let mut backoff = Duration::ZERO;
        loop {
            if self.stop.is_cancelled() {
                return;
            }
            let Some(c) = self.current() else {
                tokio::select! {
                    _ = self.stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                match self.connect().await {
                    Ok(_) => {
                        backoff = Duration::from_millis(250);
                        self.republish().await;
                    }
                    Err(_) => backoff = (backoff * 2).clamp(Duration::from_millis(250), MAX_BACKOFF),
                }
                continue;
            };
            tokio::select! {
                _ = self.stop.cancelled() => return,
                why = c.closed() => self.mark_lost(&c, why),
                _ = self.lost.notified() => {}
                Some(_) = notes.recv() => {
                    // Coalesce a burst of list changes into one refresh.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    while notes.try_recv().is_ok() {}
                    self.republish().await;
                }
                _ = tokio::time::sleep(self.spec.health_interval) => {
                    let ping = RequestOpts { timeout: Some(Duration::from_secs(10)), ..Default::default() };
                    let t = Instant::now();
                    match c.request("ping", json!({}), ping).await {
                        Ok(_) => self.stats.observe(0, t.elapsed()),
                        Err(e) => {
                            self.stats.observe(3, t.elapsed());
                            self.mark_lost(&c, format!("ping failed: {e}"));
                        }
                    }
                }
            }
        }
    }

    /// Re-list through the registry so the catalog (and pins) see the new lists.
    async fn republish(&self) {
        if let Some(r) = self.registry.upgrade() {
            if let Err(e) = r.reload(&self.spec.name).await {
                tracing::warn!(upstream = %self.spec.name, error = %e, "refreshing the upstream's lists failed");
            }
        }
    }

    async fn manifest(&self, c: &Client) -> Result<Manifest, UpstreamError> {
        let mut m = Manifest {
            instructions: c.instructions.clone(),
            ..Manifest::default()
        };
        if c.offers("tools") {
            for t in c.list_all("tools/list", "tools").await? {
                match admit_tool(t) {
                    Ok(def) => m.tools.push(ToolDef::new(def)),
                    Err(why) => tracing::warn!(upstream = %self.spec.name, %why, "upstream tool skipped"),
                }
            }
        }
        if c.offers("resources") {
            m.resources = named(c.list_all("resources/list", "resources").await?, "uri")
                .map(|definition| ResourceDef { definition })
                .collect();
            // Templates are optional even for servers that offer resources.
            if let Ok(t) = c.list_all("resources/templates/list", "resourceTemplates").await {
                m.resource_templates = named(t, "uriTemplate")
                    .map(|definition| ResourceTemplateDef { definition })
                    .collect();
            }
        }
        if c.offers("prompts") {
            m.prompts = named(c.list_all("prompts/list", "prompts").await?, "name")
                .map(|definition| PromptDef { definition })
                .collect();
        }
        m.completions = c.offers("completions");
        self.stats.tools.store(m.tools.len(), Ordering::Relaxed);
        Ok(m)
    }

    fn unavailable(&self) -> String {
        format!(
            "upstream {} is unavailable ({}): {}",
            self.spec.name,
            self.status().label(),
            self.stats.last_error().unwrap_or_else(|| "not connected".into())
        )
    }
}

/// Items whose `key` is a non-empty string (a malformed entry is dropped, not fatal).
fn named(items: Vec<Value>, key: &'static str) -> impl Iterator<Item = Value> {
    items
        .into_iter()
        .filter(move |v| v.get(key).and_then(Value::as_str).is_some_and(|s| !s.is_empty()))
}

/// A tool definition the catalog can serve: a sane name and an object input schema.
fn admit_tool(mut t: Value) -> Result<Value, String> {
    let name = t.get("name").and_then(Value::as_str).ok_or("a tool without a name")?;
    if name.is_empty() || name.len() > 128 || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("tool name {name:?} is not a valid MCP tool name"));
    }
    if !t.get("inputSchema").is_some_and(Value::is_object) {
        t["inputSchema"] = json!({"type": "object"});
    }
    Ok(t)
}

impl Plugin for Upstream {
    fn name(&self) -> &str {
        &self.spec.name
    }

    fn initialize<'a>(&'a self, _init: &'a PluginInit) -> BoxFuture<'a, Result<Manifest, PluginError>> {
        Box::pin(async move {
            // The supervisor connects (and keeps trying); loading waits briefly for it, so
            // a dead upstream never holds the registry (or the server's start) for long.
            // When it comes up later, the supervisor reloads it into the catalog.
            self.ensure_supervisor();
            let deadline = Instant::now() + FIRST_WAIT.min(self.spec.connect_timeout);
            let c = loop {
                if let Some(c) = self.current() {
                    break c;
                }
                if Instant::now() >= deadline || self.stop.is_cancelled() {
                    return Err(PluginError::Internal(self.unavailable()));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            };
            match self.manifest(&c).await {
                Ok(m) => Ok(m),
                Err(e) => {
                    if e.is_connection_loss() {
                        self.mark_lost(&c, e.to_string());
                    }
                    Err(PluginError::Internal(format!(
                        "upstream {}: listing failed: {e}",
                        self.spec.name
                    )))
                }
            }
        })
    }

    fn execute<'a>(&'a self, inv: &'a Invocation, ctx: &'a CallContext) -> BoxFuture<'a, Result<Outcome, PluginError>> {
        Box::pin(async move {
            let is_tool = matches!(inv.target, Target::Tool(_));
            // The caller answers a question the upstream asked: the held call goes on.
            if let Some(id) = inv.state.as_ref().and_then(|s| s.get("held")).and_then(Value::as_str) {
                let run = self
                    .held
                    .resume(id, inv.input_responses.as_ref(), ctx, self.spec.timeout)
                    .await?;
                return self.drive(run, ctx, is_tool).await;
            }
            let Some(c) = self.current() else {
                return Err(if is_tool {
                    PluginError::ToolFailed(self.unavailable())
                } else {
                    PluginError::Internal(self.unavailable())
                });
            };
            let (method, mut params) = match &inv.target {
                Target::Tool(n) => ("tools/call", json!({"name": n, "arguments": inv.arguments})),
                Target::Resource(uri) => ("resources/read", json!({"uri": uri})),
                Target::Prompt(n) => ("prompts/get", json!({"name": n, "arguments": inv.arguments})),
                Target::Complete { reference } => {
                    let mut p = inv.arguments.clone();
                    if let Some(o) = p.as_object_mut() {
                        o.remove("_meta");
                    }
                    p["ref"] = reference.clone();
                    ("completion/complete", p)
                }
            };
            // A stateless upstream's own `input_required`, answered: its state goes back.
            if let Some(theirs) = inv.state.as_ref().and_then(|s| s.get("upstream")) {
                params["requestState"] = theirs.clone();
                if let Some(a) = &inv.input_responses {
                    params["inputResponses"] = Value::Object(a.clone());
                }
            }
            let (asks_tx, asks) = mpsc::channel(8);
            let link = Arc::new(CallLink::new(Some(asks_tx)));
            link.attach_to(ctx);
            let deadline = Arc::new(Deadline::new(self.spec.timeout));
            let cancel = CancellationToken::new();
            let opts = RequestOpts {
                timeout: Some(self.spec.timeout),
                trace: waygate_core::spans::outbound(),
                link: Some(link.clone()),
                deadline: Some(deadline.clone()),
                caller: Some(caller_of(ctx)),
                cancel: Some(cancel.clone()),
                headers: self.forwarded(ctx),
            };
            let client = c.clone();
            let result = Box::pin(async move { client.request(method, params, opts).await });
            let run = Running::new(c, result, asks, link, cancel, deadline);
            self.drive(run, ctx, is_tool).await
        })
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.stop.cancel();
            self.held.clear().await;
            self.stats.set(Status::Stopped, None);
            let c = self.client.write().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(c) = c {
                c.close().await;
            }
        })
    }

    /// The call span names the upstream and how it is reached (OpenTelemetry semantic
    /// conventions for a client call).
    fn is_remote(&self) -> bool {
        true
    }

    fn span_attributes(&self) -> Option<Vec<(&'static str, String)>> {
        let mut a = vec![("waygate.upstream", self.spec.name.clone())];
        match &self.spec.wiring {
            Wiring::Stdio(s) => {
                a.push(("network.transport", "pipe".into()));
                a.push(("process.executable.name", s.command.clone()));
            }
            Wiring::OpenApi(_) => {
                a.push(("network.transport", "tcp".into()));
                if let Some(c) = self.current() {
                    if let Some(u) = c.server_info.get("baseUrl").and_then(Value::as_str) {
                        a.push(("url.full", u.to_string()));
                    }
                }
            }
            Wiring::Http(h) => {
                a.push(("network.transport", "tcp".into()));
                a.push(("server.address", h.url.host_str().unwrap_or_default().to_string()));
                if let Some(p) = h.url.port_or_known_default() {
                    a.push(("server.port", p.to_string()));
                }
            }
        }
        if let Some(c) = self.current() {
            a.push(("mcp.protocol.version", c.protocol_version.clone()));
        }
        Some(a)
    }

    fn failure(&self) -> Option<String> {
        (self.status() == Status::Reconnecting).then(|| self.unavailable())
    }
}

impl Shared {
    /// Run a forwarded call to its result, or until the upstream asks the caller something.
    async fn drive(&self, mut run: Running, ctx: &CallContext, is_tool: bool) -> Result<Outcome, PluginError> {
        let t = Instant::now();
        let in_flight = self.stats.enter();
        let step = run.step(&ctx.cancel).await;
        drop(in_flight);
        let took = t.elapsed();
        match step {
            Step::Asked(asks) => self.held.hold(run, asks, ctx, self.spec.input_timeout).await,
            Step::Done(Ok(mut v)) => {
                let tool_error = v.get("isError").and_then(Value::as_bool) == Some(true);
                self.stats.observe(usize::from(tool_error), took);
                // A stateless upstream asks through its result: the engine relays the
                // questions like any handler's and brings its state back with the answers.
                if v.get("resultType").and_then(Value::as_str) == Some("input_required") {
                    let requests = match v.get_mut("inputRequests").map(Value::take) {
                        Some(Value::Object(m)) => m,
                        _ => Map::new(),
                    };
                    let state = v.get_mut("requestState").map(Value::take);
                    return Ok(Outcome::InputRequired {
                        requests,
                        state: Some(json!({ "upstream": state })),
                    });
                }
                Ok(Outcome::Complete(v))
            }
            Step::Done(Err(e)) => {
                self.stats
                    .observe(if matches!(e, UpstreamError::Rpc { .. }) { 1 } else { 3 }, took);
                Err(self.failed(&run.client, e, is_tool))
            }
        }
    }

    /// HTTP headers for a forwarded request: the caller's correlation id (so the upstream's
    /// logs and audit carry the same id) and the client headers this upstream asked for.
    fn forwarded(&self, ctx: &CallContext) -> Vec<(Box<str>, Box<str>)> {
        if let Wiring::Stdio(_) = self.spec.wiring {
            return Vec::new();
        }
        let mut out: Vec<(Box<str>, Box<str>)> = Vec::new();
        if let Some(c) = &ctx.correlation_id {
            out.push(("x-request-id".into(), (**c).into()));
        }
        if let Some(f) = &ctx.forwarded {
            out.extend(
                f.iter()
                    .filter(|(k, _)| self.spec.passthrough.iter().any(|p| p == &**k))
                    .filter(|(k, _)| !NOT_FORWARDED.contains(&&**k))
                    .cloned(),
            );
        }
        out
    }

    /// What the caller sees when a forwarded request failed.
    fn failed(&self, c: &Arc<Client>, e: UpstreamError, is_tool: bool) -> PluginError {
        let name = &self.spec.name;
        match e {
            UpstreamError::Rpc {
                code: -32602, message, ..
            } => PluginError::InvalidParams(message),
            UpstreamError::Rpc {
                code: -32601 | -32002,
                message,
                ..
            } => PluginError::NotFound(message),
            UpstreamError::Rpc { message, .. } if is_tool => {
                PluginError::ToolFailed(format!("upstream {name}: {message}"))
            }
            UpstreamError::Rpc { message, .. } => PluginError::Internal(format!("upstream {name}: {message}")),
            e => {
                if e.is_connection_loss() {
                    self.mark_lost(c, e.to_string());
                }
                let msg = format!("upstream {name}: {e}");
                if is_tool {
                    PluginError::ToolFailed(msg)
                } else {
                    PluginError::Internal(msg)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_servable_tool_definitions_are_admitted() {
        let ok = admit_tool(json!({"name": "search", "description": "d", "x-extra": 1})).unwrap();
        assert_eq!(
            ok["inputSchema"],
            json!({"type": "object"}),
            "a missing schema becomes an empty object schema"
        );
        assert_eq!(ok["x-extra"], 1, "unknown fields pass through");
        for bad in [
            json!({"description": "no name"}),
            json!({"name": ""}),
            json!({"name": "has space"}),
            json!({"name": "line\nbreak"}),
            json!({"name": "x".repeat(129)}),
            json!({"name": 42}),
        ] {
            assert!(admit_tool(bad.clone()).is_err(), "{bad}");
        }
        let kept: Vec<Value> = named(vec![json!({"uri": "a://b"}), json!({"uri": ""}), json!({})], "uri").collect();
        assert_eq!(kept, vec![json!({"uri": "a://b"})]);
    }
}
