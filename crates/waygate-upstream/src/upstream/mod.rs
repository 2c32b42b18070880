//! An upstream MCP server as a plugin: connect, list, forward; a supervisor keeps the
//! connection alive and republishes the catalog when the upstream's lists change.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use waygate_core::{
    BoxFuture, CallContext, Invocation, Manifest, Outcome, Plugin, PluginError, PluginInit, PluginRegistry, Target,
};

use crate::client::{Client, Deadline, Notification, RequestOpts};
use crate::envelope::Params;
use crate::error::UpstreamError;
use crate::guard::{Admitted, Containment, Guard, Refusal};
use crate::http::HttpTarget;
use crate::link::CallLink;
use crate::relay::{caller_of, Held, Running, Step};
use crate::stats::{Stats, Status};
use crate::stdio::StdioTarget;

mod outgoing;
use outgoing::named;

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
    /// Concurrency cap, circuit breaker, restart damping and withdrawal.
    pub containment: Containment,
}

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
    pub(crate) spec: UpstreamSpec,
    pub(crate) client: RwLock<Option<Arc<Client>>>,
    pub(crate) stats: Stats,
    pub(crate) registry: Weak<PluginRegistry>,
    pub(crate) stop: CancellationToken,
    pub(crate) supervising: AtomicBool,
    /// A forwarded request found the connection gone; wakes the supervisor.
    pub(crate) lost: Notify,
    pub(crate) notes: Mutex<Option<mpsc::Receiver<Notification>>>,
    pub(crate) notes_tx: mpsc::Sender<Notification>,
    pub(crate) ever_up: AtomicBool,
    /// Calls waiting for their callers' answers to the upstream's questions.
    pub(crate) held: Arc<Held>,
    pub(crate) guard: Guard,
    /// Counts connections made, so a withdrawal timer knows whether its outage is over.
    pub(crate) epoch: AtomicU64,
    /// Where resource updates go (the registry's events, known from `initialize`).
    pub(crate) events: OnceLock<waygate_core::Events>,
    /// Resources callers subscribed to (the upstream's own URIs).
    pub(crate) watched: Mutex<HashSet<String>>,
    pub(crate) updates_tx: mpsc::Sender<String>,
    pub(crate) updates_rx: Mutex<Option<mpsc::Receiver<String>>>,
    /// What calls need to know about the upstream's tools (from its latest listing).
    pub(crate) tool_notes: RwLock<crate::listing::ToolNotes>,
}

pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long loading waits for the first connection before listing the upstream as down.
pub(crate) const FIRST_WAIT: Duration = Duration::from_secs(2);

impl Upstream {
    /// `registry` is where the supervisor republishes this upstream's lists.
    pub fn new(spec: UpstreamSpec, registry: Weak<PluginRegistry>) -> Arc<Upstream> {
        let (tx, rx) = mpsc::channel(1);
        let (updates_tx, updates_rx) = mpsc::channel(256);
        Arc::new(Upstream(Arc::new(Shared {
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
            guard: Guard::new(spec.containment.clone()),
            epoch: AtomicU64::new(0),
            events: OnceLock::new(),
            watched: Mutex::new(HashSet::new()),
            updates_tx,
            updates_rx: Mutex::new(Some(updates_rx)),
            tool_notes: RwLock::new(Default::default()),
            spec,
        })))
    }

    fn ensure_supervisor(&self) {
        if self.supervising.swap(true, Ordering::AcqRel) {
            return;
        }
        let notes = self.notes.lock().unwrap_or_else(|e| e.into_inner()).take();
        let updates = self.updates_rx.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let (Some(notes), Some(updates)) = (notes, updates) {
            tokio::spawn(self.0.clone().supervise(notes, updates));
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

    pub(crate) fn guard(&self) -> &Guard {
        &self.guard
    }

    /// Why this upstream serves less than it should, in words; `None` while it is well.
    pub fn degraded(&self) -> Option<String> {
        let status = self.status();
        let mut why: Vec<&str> = Vec::new();
        if !matches!(status, Status::Up | Status::Stopped) {
            why.push(status.label());
        }
        why.extend(self.guard.degraded());
        (!why.is_empty()).then(|| {
            format!(
                "upstream {} is {}: {}",
                self.spec.name,
                why.join(", "),
                self.stats.last_error().unwrap_or_else(|| match status {
                    Status::Up => "its recent calls failed or timed out".into(),
                    _ => "not connected yet".into(),
                })
            )
        })
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
        self.guard.describe(&mut v);
        if let Some(c) = self.current() {
            v["protocol_version"] = json!(c.protocol_version);
            v["server_info"] = c.server_info.clone();
            v["transport"] = json!(c.transport());
        }
        v
    }

    pub(crate) fn current(&self) -> Option<Arc<Client>> {
        self.client.read().unwrap_or_else(|e| e.into_inner()).clone()
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

impl Plugin for Upstream {
    fn name(&self) -> &str {
        &self.spec.name
    }

    fn initialize<'a>(&'a self, init: &'a PluginInit) -> BoxFuture<'a, Result<Manifest, PluginError>> {
        Box::pin(async move {
            let _ = self.events.set(init.events.clone());
            // The supervisor connects (and keeps trying); loading waits briefly for it, so
            // a dead upstream never holds the registry (or the server's start) for long.
            // When it comes up later, the supervisor reloads it into the catalog.
            self.ensure_supervisor();
            let deadline = Instant::now() + FIRST_WAIT.min(self.spec.connect_timeout);
            let c = loop {
                if let Some(c) = self.current() {
                    break c;
                }
                if self.guard.withdrawn.load(Ordering::Relaxed) {
                    return Ok(Manifest::default());
                }
                if Instant::now() >= deadline || self.stop.is_cancelled() {
                    return Err(PluginError::Internal(self.unavailable()));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            };
            match crate::listing::manifest(&c, &self.spec.name).await {
                Ok((m, notes)) => {
                    self.stats.tools.store(m.tools.len(), Ordering::Relaxed);
                    *self.tool_notes.write().unwrap_or_else(|e| e.into_inner()) = notes;
                    Ok(m)
                }
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
            let held = inv.state.as_ref().and_then(|s| s.get("held")).and_then(Value::as_str);
            // Only a fresh call of a task-only tool (the upstream may ask before it creates
            // its task) or a resumed held call has a first step the engine waits for;
            // anything else is work from the start, as before.
            let task_only = matches!(&inv.target, Target::Tool(n)
                if self.tool_notes.read().unwrap_or_else(|e| e.into_inner()).task_only.contains(n.as_str()));
            if held.is_none() && !task_only {
                ctx.mark_started();
            }
            let admitted = self
                .guard
                .admit(self.spec.timeout)
                .await
                .map_err(|r| self.refused(r, is_tool))?;
            // The caller answers a question the upstream asked: the held call goes on.
            if let Some(id) = held {
                let resumed = self
                    .held
                    .resume(id, inv.input_responses.as_ref(), ctx, self.spec.timeout)
                    .await?;
                let run = match resumed {
                    crate::relay::Resumed::Run(run) => run,
                    crate::relay::Resumed::AskAgain(questions) => return Ok(questions),
                };
                // Answered: what the upstream does next is the work (a further question
                // becomes the caller's task's `input_required`).
                ctx.mark_started();
                return self.drive(run, ctx, is_tool, admitted, None).await;
            }
            let Some(c) = self.current() else {
                return Err(if is_tool {
                    PluginError::ToolFailed(self.unavailable())
                } else {
                    PluginError::Internal(self.unavailable())
                });
            };
            let as_task = task_only && crate::task_call::offered(&c);
            // A plain call's request is written from the caller's arguments; a tree is
            // built only where the gateway adds to it or a wire reads it.
            let from_arguments = matches!(inv.target, Target::Tool(_) | Target::Prompt(_))
                && !as_task
                && inv.state.is_none()
                && inv.input_responses.is_none()
                && !matches!(self.spec.wiring, Wiring::OpenApi(_));
            let (method, mut params) = match &inv.target {
                Target::Tool(_) if from_arguments => ("tools/call", Value::Null),
                Target::Prompt(_) if from_arguments => ("prompts/get", Value::Null),
                Target::Tool(n) => ("tools/call", named(n, &inv.arguments, inv.caller_meta.as_ref())),
                Target::Resource(uri) => ("resources/read", json!({"uri": uri})),
                Target::Prompt(n) => ("prompts/get", named(n, &inv.arguments, inv.caller_meta.as_ref())),
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
            let link = Arc::new(CallLink::new(true));
            link.attach_to(ctx);
            let deadline = Arc::new(Deadline::new(self.spec.timeout));
            let cancel = CancellationToken::new();
            if !as_task {
                ctx.mark_started();
            }
            let stateless = ctx.is_modern() && !as_task;
            let mut headers = self.forwarded(ctx);
            if c.is_modern() || (stateless && c.both_eras) {
                // Answers a stateless caller sent with its first request go to a server
                // that reads them there (its questions come back as `input_required`).
                if let (None, Some(a)) = (&inv.state, &inv.input_responses) {
                    params["inputResponses"] = Value::Object(a.clone());
                }
                if let (Target::Tool(n), Wiring::Http(_)) = (&inv.target, &self.spec.wiring) {
                    self.mirror_params(n, &inv.arguments, &mut headers);
                }
            }
            let opts = RequestOpts {
                stateless,
                timeout: Some(self.spec.timeout),
                trace: waygate_core::spans::outbound(),
                link: Some(link.clone()),
                deadline: Some(deadline.clone()),
                caller: Some(caller_of(ctx)),
                cancel: Some(cancel.clone()),
                headers,
            };
            let client = c.clone();
            let started = ctx.started.clone();
            let params = match &inv.target {
                Target::Tool(n) | Target::Prompt(n) if from_arguments => Params::named(
                    n,
                    &inv.arguments,
                    inv.raw_arguments.as_deref(),
                    inv.caller_meta.as_ref(),
                ),
                _ => Params::Tree(params),
            };
            let result: BoxFuture<'static, crate::inbound::Answer> = match params {
                Params::Tree(params) if as_task => {
                    Box::pin(async move { crate::task_call::run(&client, params, opts, started).await })
                }
                params => Box::pin(async move { client.request_raw(method, params, opts).await }),
            };
            let run = Running::new(c, result, link, cancel, deadline);
            // Answers sent with the first request serve the questions they name.
            let given = inv.state.is_none().then_some(inv.input_responses.as_ref()).flatten();
            self.drive(run, ctx, is_tool, admitted, given).await
        })
    }

    fn release<'a>(&'a self, state: &'a Value, owner: Option<&'a str>, why: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Some(id) = state.get("held").and_then(Value::as_str) {
                self.held.release(id, owner, why).await;
            }
        })
    }

    fn held_ended<'a>(&'a self, state: &'a Value) -> BoxFuture<'a, Option<String>> {
        Box::pin(async move {
            match state.get("held").and_then(Value::as_str) {
                Some(id) => self.held.ended(id).await,
                None => std::future::pending().await,
            }
        })
    }

    fn watch(&self, uri: &str) -> BoxFuture<'_, ()> {
        let uri = uri.to_string();
        Box::pin(async move { self.0.watch(uri).await })
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
        matches!(self.status(), Status::Reconnecting | Status::CrashLooping).then(|| self.unavailable())
    }
}

/// Whether `r` is a request a client can answer: an `InputRequest` of 2026-07-28.
fn is_input_request(r: &Value) -> bool {
    let method = r.get("method").and_then(Value::as_str);
    method.is_some_and(|m| crate::link::RELAYED.contains(&m)) && r.get("params").is_none_or(Value::is_object)
}

impl Shared {
    /// Run a forwarded call to its result, or until the upstream asks the caller something.
    async fn drive(
        &self,
        mut run: Running,
        ctx: &CallContext,
        is_tool: bool,
        admitted: Admitted,
        given: Option<&Map<String, Value>>,
    ) -> Result<Outcome, PluginError> {
        let t = Instant::now();
        let in_flight = self.stats.enter();
        let step = run.step_with(&ctx.cancel, given).await;
        drop(in_flight);
        let took = t.elapsed();
        // A held call gives its slot back: it waits for a person, not for the upstream.
        self.guard.record(
            &admitted,
            match &step {
                Step::Done(Err(e)) => Err(e),
                _ => Ok(()),
            },
        );
        drop(admitted);
        match step {
            Step::Asked(asks) => self.held.hold(run, asks, ctx, self.spec.input_timeout).await,
            Step::Done(Ok(raw)) => {
                // Only the top level is read; the result goes on as the server wrote it.
                let top = waygate_protocol::raw::Probe::parse(raw.get());
                self.stats.observe(usize::from(top.is_error()), took);
                // A stateless upstream asks through its result: the engine relays the
                // questions like any handler's and brings its state back with the answers.
                let invalid = |why: String| Err(self.failed(&run.client, UpstreamError::Protocol(why), is_tool));
                match (top.result_type, top.result_type()) {
                    (None, _) | (_, Some("complete" | "task")) => {}
                    (_, Some("input_required")) => {
                        let mut v = Outcome::forwarded_value(&raw);
                        let requests = match v.get_mut("inputRequests").map(Value::take) {
                            Some(Value::Object(m)) => m,
                            None | Some(Value::Null) => Map::new(),
                            Some(_) => {
                                return invalid("its input_required result's inputRequests is not an object".into())
                            }
                        };
                        // Only what a client can answer may be relayed to one.
                        if let Some(key) = requests.iter().find(|(_, r)| !is_input_request(r)).map(|(k, _)| k) {
                            return invalid(format!(
                                "inputRequests.{key} of its input_required result is not an elicitation/create, sampling/createMessage or roots/list request"
                            ));
                        }
                        let state = v.get_mut("requestState").map(Value::take);
                        if requests.is_empty() && state.is_none() {
                            return invalid(
                                "its input_required result has neither inputRequests nor requestState".into(),
                            );
                        }
                        return Ok(Outcome::InputRequired {
                            requests,
                            state: Some(json!({ "upstream": state })),
                        });
                    }
                    // "A receiver must treat an unknown value as invalid."
                    (Some(t), _) => {
                        return invalid(format!("it answered with resultType {t}, which no revision defines"))
                    }
                }
                Ok(Outcome::Forward(raw))
            }
            Step::Done(Err(e)) => {
                self.stats.observe(
                    if matches!(e, UpstreamError::Rpc { .. } | UpstreamError::TaskFailed { .. }) {
                        1
                    } else {
                        3
                    },
                    took,
                );
                Err(self.failed(&run.client, e, is_tool))
            }
        }
    }

    /// What the caller sees when the guard did not let a call through.
    fn refused(&self, r: Refusal, is_tool: bool) -> PluginError {
        let name = &self.spec.name;
        let l = self.guard.limits();
        let msg = match r {
            Refusal::Busy { running, queued } => format!(
                "upstream {name} is busy: {running} calls in flight and {queued} waiting \
                 (max_concurrency = {}, max_queue = {}); try again later",
                l.max_concurrency, l.max_queue
            ),
            Refusal::Open(secs) => format!(
                "upstream {name} is failing ({}); calls to it are paused for {secs} s \
                 (circuit breaker: {} consecutive failures)",
                self.stats.last_error().unwrap_or_else(|| "no answer".into()),
                l.breaker_failures
            ),
        };
        if is_tool {
            PluginError::ToolFailed(msg)
        } else {
            PluginError::Internal(msg)
        }
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
            // The server needs a capability the caller did not declare (it saw the
            // caller's own capabilities: a stateless request): the caller is told so.
            UpstreamError::Rpc { code: -32021, data, .. } => PluginError::MissingCapability(
                data.as_ref()
                    .and_then(|d| d.get("requiredCapabilities"))
                    .cloned()
                    .unwrap_or_else(|| json!({})),
            ),
            // The server answered with a protocol error: the caller gets one too (a task
            // run for it ends `failed`), never an `isError` result the server did not write.
            UpstreamError::Rpc { message, .. } | UpstreamError::TaskFailed { message, .. } => {
                PluginError::Internal(format!("upstream {name}: {message}"))
            }
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
