//! The dispatcher: one place that maps a method to its handler and shapes the result
//! for the revision of the request.

mod cache;
mod calls;
mod client_input;
mod complete;
mod errors;
mod lifecycle;
mod listen;
mod lists;
mod outcome;
mod sharing;
mod spans;
mod task_start;
#[cfg(test)]
mod tests;
mod views;

use std::sync::Arc;
use std::time::Duration;

use lists::{cursor, list_result, reply_of};
use outcome::{outcome_index, outcome_of_reply};
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;
use waygate_protocol::{meta, methods, ErrorObject, Id, ProtocolVersion, Reply};

use crate::context::CallContext;
use crate::events::{Event, Events};
use crate::mrtr::StateSealer;
use crate::registry::PluginRegistry;
use crate::session::{Session, SessionStore};
use crate::tasks::TaskStore;
use crate::util::str_field;
use cache::CacheScope;

pub use listen::ListenFilter;

/// Map a plugin failure to a JSON-RPC error for a tool call of the given revision.
pub fn map_plugin_error(e: crate::plugin::PluginError, version: ProtocolVersion) -> ErrorObject {
    calls::map_error(calls::Kind::Tool, e, version, "")
}

/// Engine settings; plain data, filled from the config file.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub server_name: String,
    pub server_version: String,
    pub instructions: Option<String>,
    /// HMAC key for MRTR `requestState`; replicas that share it accept each other's state.
    pub state_key: Vec<u8>,
    pub state_ttl: Duration,
    pub page_size: usize,
    pub session_idle: Duration,
    pub max_sessions: usize,
    /// `ttlMs` on list results (2026-07-28 cache hints).
    pub list_ttl_ms: u64,
    /// How long a legacy server→client request (sampling, elicitation, roots) may wait.
    pub client_request_timeout: Duration,
    /// Upper bound of input rounds one legacy call may take.
    pub max_input_rounds: usize,
    /// How long a finished task stays readable.
    pub task_ttl: Duration,
    /// Check `structuredContent` of native and WASM tools against their `outputSchema`.
    pub validate_output: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            server_name: "waygate".into(),
            server_version: env!("CARGO_PKG_VERSION").into(),
            instructions: None,
            state_key: crate::util::random_hex(32).into_bytes(),
            state_ttl: Duration::from_secs(600),
            page_size: 100,
            session_idle: Duration::from_secs(1800),
            max_sessions: 10_000,
            list_ttl_ms: 60_000,
            client_request_timeout: Duration::from_secs(120),
            max_input_rounds: 8,
            task_ttl: Duration::from_secs(3600),
            validate_output: cfg!(debug_assertions),
        }
    }
}

pub struct Engine {
    pub cfg: EngineConfig,
    pub registry: Arc<PluginRegistry>,
    pub sessions: SessionStore,
    pub events: Events,
    pub tasks: TaskStore,
    sealer: StateSealer,
    server_info: Value,
    /// `server_info` as JSON text, for results edited as text (forwarded ones).
    server_info_text: String,
    /// Cancelled on graceful shutdown: listen streams send their closing result.
    pub shutdown: CancellationToken,
    audit: std::sync::OnceLock<Arc<dyn crate::audit::AuditSink>>,
    tool_limits: std::sync::OnceLock<crate::ratelimit::ToolLimits>,
    /// Authorization rules; replaced on config reload. `None` allows everything.
    policy: std::sync::RwLock<Option<Arc<crate::policy::Policy>>>,
    audit_arguments: std::sync::OnceLock<Vec<String>>,
    /// Tools (globs) whose arguments and results are logged, and the size cap per field.
    body_log: std::sync::OnceLock<(Vec<String>, usize)>,
    /// Guard and policy hooks around calls; replaced on reload.
    hooks: std::sync::RwLock<Arc<crate::hooks::HookChain>>,
    /// Where finished spans go (OpenTelemetry export); unset = no spans.
    spans: std::sync::OnceLock<Arc<dyn crate::spans::SpanSink>>,
    /// Client request headers some upstream asked for (`passthrough_headers`), lowercase;
    /// the transport copies only these into the call context. Replaced on reload.
    passthrough: std::sync::RwLock<Arc<[String]>>,
    /// Whether any name is set: the common case (none) costs the request path one load.
    passthrough_any: std::sync::atomic::AtomicBool,
    /// Virtual servers by name; replaced on reload.
    views: std::sync::RwLock<Arc<std::collections::HashMap<String, Arc<crate::view::View>>>>,
    pub metrics: crate::metrics::Metrics,
    /// Sessions shared with other replicas (PostgreSQL fleets); unset on one replica.
    share: crate::fleet::ShareSlot,
}

impl Engine {
    pub fn new(cfg: EngineConfig, registry: Arc<PluginRegistry>) -> Arc<Engine> {
        let events = registry.events().clone();
        let server_info = json!({ "name": cfg.server_name, "version": cfg.server_version });
        let server_info_text = server_info.to_string();
        Arc::new(Engine {
            sessions: SessionStore::new(cfg.session_idle, cfg.max_sessions),
            sealer: StateSealer::new(cfg.state_key.clone(), cfg.state_ttl.as_secs()),
            tasks: TaskStore::new(cfg.task_ttl),
            events,
            server_info,
            server_info_text,
            registry,
            cfg,
            shutdown: CancellationToken::new(),
            audit: std::sync::OnceLock::new(),
            tool_limits: std::sync::OnceLock::new(),
            policy: std::sync::RwLock::new(None),
            audit_arguments: std::sync::OnceLock::new(),
            body_log: std::sync::OnceLock::new(),
            hooks: std::sync::RwLock::new(Arc::new(crate::hooks::HookChain::default())),
            spans: std::sync::OnceLock::new(),
            passthrough: std::sync::RwLock::new(Arc::from(Vec::new())),
            passthrough_any: std::sync::atomic::AtomicBool::new(false),
            views: Default::default(),
            metrics: crate::metrics::Metrics::default(),
            share: Default::default(),
        })
    }

    /// Per-tool quotas per caller; set once at start.
    pub fn set_tool_limits(&self, limits: crate::ratelimit::ToolLimits) {
        let _ = self.tool_limits.set(limits);
    }

    /// `Some(result)` when the caller is over a tool's quota: an `isError` result telling
    /// the model when to retry.
    pub(crate) async fn tool_quota(&self, tool: &str, ctx: &CallContext) -> Option<Value> {
        let limits = self.tool_limits.get()?;
        let caller = ctx.principal.as_ref().map(|p| p.id.as_str()).unwrap_or("anonymous");
        let wait = limits.check(caller, tool).await.err()?;
        let ms = wait.as_millis().max(1);
        self.metrics.rate_limited_by("tool", limits.rule_of(tool));
        Some(crate::util::error_result(format!(
            "Rate limit for tool {tool:?} exceeded; retry after {ms} ms."
        )))
    }

    /// Per-tool limits, when configured.
    pub fn tool_limits(&self) -> Option<&crate::ratelimit::ToolLimits> {
        self.tool_limits.get()
    }

    /// Weight of one call of `tool` in the caller's overall rate bucket.
    pub fn tool_cost(&self, tool: &str) -> f64 {
        self.tool_limits.get().map_or(1.0, |l| l.cost(tool))
    }

    /// Install (or clear) the authorization rules; applies to the next request.
    pub fn set_policy(&self, policy: Option<crate::policy::Policy>) {
        *self.policy.write().unwrap_or_else(|e| e.into_inner()) = policy.map(Arc::new);
    }

    /// The client headers to keep for upstreams (lowercase names).
    pub fn set_passthrough(&self, names: Vec<String>) {
        let any = !names.is_empty();
        *self.passthrough.write().unwrap_or_else(|e| e.into_inner()) = Arc::from(names);
        self.passthrough_any.store(any, std::sync::atomic::Ordering::Release);
    }

    /// The names to keep, or `None` when no upstream asks for any.
    pub fn passthrough(&self) -> Option<Arc<[String]>> {
        if !self.passthrough_any.load(std::sync::atomic::Ordering::Acquire) {
            return None;
        }
        Some(self.passthrough.read().unwrap_or_else(|e| e.into_inner()).clone())
    }

    /// Export a span per request and per plugin call.
    pub fn set_span_sink(&self, sink: Arc<dyn crate::spans::SpanSink>) {
        let _ = self.spans.set(sink);
    }

    pub fn spans_enabled(&self) -> bool {
        self.spans.get().is_some()
    }

    pub(crate) fn span_sink(&self) -> Option<&Arc<dyn crate::spans::SpanSink>> {
        self.spans.get()
    }

    pub fn set_hooks(&self, chain: crate::hooks::HookChain) {
        *self.hooks.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(chain);
    }

    pub fn hooks(&self) -> Arc<crate::hooks::HookChain> {
        self.hooks.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn policy(&self) -> Option<Arc<crate::policy::Policy>> {
        self.policy.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Where audit records go; set once at start. Without one nothing is recorded.
    pub fn set_audit(&self, sink: Arc<dyn crate::audit::AuditSink>) {
        let _ = self.audit.set(sink);
    }

    /// Session expiry and the fan-out of catalog events to legacy sessions.
    pub fn start_background(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        let mut rx = self.events.subscribe();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tokio::select! {
                    ev = rx.recv() => match (ev, me.upgrade()) {
                        (Ok(ev), Some(e)) => {
                            let policy = e.policy();
                            let catalog = e.registry.catalog();
                            e.sessions.broadcast(&ev, &|s| match &ev {
                                Event::ResourceUpdated(uri) => {
                                    let t = crate::policy::Target::Resource(uri);
                                    policy.as_deref().is_none_or(|p| p.visible(s.principal.as_deref(), t))
                                        && s.view.as_deref().is_none_or(|v| v.admits(&catalog, t))
                                }
                                // A session on a virtual server hears only of its own lists.
                                ev => match &s.view {
                                    None => true,
                                    Some(v) => {
                                        let f = v.fingerprint(&catalog);
                                        match ev {
                                            Event::ToolsChanged => s.view_changed(0, f.tools),
                                            Event::PromptsChanged => s.view_changed(1, f.prompts),
                                            _ => s.view_changed(2, f.resources),
                                        }
                                    }
                                },
                            })
                        }
                        (Err(tokio::sync::broadcast::error::RecvError::Lagged(_)), Some(_)) => continue,
                        _ => break,
                    },
                    _ = tick.tick() => match me.upgrade() {
                        Some(e) => {
                            let n = e.sessions.expire_idle();
                            if n > 0 {
                                tracing::debug!(expired = n, "idle sessions ended");
                            }
                            e.tasks.expire();
                        }
                        None => break,
                    },
                }
            }
        });
    }

    pub fn server_info(&self) -> &Value {
        &self.server_info
    }

    /// Serve one request; the result as a `Value` (in-process callers and tests).
    pub async fn handle(
        self: &Arc<Self>,
        method: &str,
        params: Option<Map<String, Value>>,
        ctx: &CallContext,
    ) -> Result<Value, ErrorObject> {
        self.reply(method, params, ctx).await.map(Reply::into_value)
    }

    /// Serve one request and shape the result for the request's revision, as a transport
    /// writes it (a catalog page is pre-serialized text).
    pub async fn reply(
        self: &Arc<Self>,
        method: &str,
        params: Option<Map<String, Value>>,
        ctx: &CallContext,
    ) -> Result<Reply, ErrorObject> {
        let started = std::time::Instant::now();
        let static_method = crate::metrics::static_method(method);
        let target = log_target(method, params.as_ref());
        // A trace context may also travel in `_meta` (clients without HTTP headers, stdio).
        let meta_trace = params
            .as_ref()
            .and_then(|p| p.get("_meta"))
            .and_then(|m| m.get("traceparent"))
            .and_then(Value::as_str)
            .and_then(crate::logctx::trace_id_of);
        crate::logctx::update(|c| {
            c.method = Some(static_method);
            c.target = target.map(Box::from);
            if c.trace_id.is_none() {
                c.trace_id = meta_trace.map(Box::from);
            }
        });
        self.metrics
            .in_flight
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let audited = audited_method(method);
        let sink = self.audit.get().filter(|_| audited.is_some());
        let ts_ms = if sink.is_some() { crate::util::unix_now_ms() } else { 0 };
        let subject = sink.map(|_| self.audit_subject(method, target, params.as_ref()));
        let policy = self.policy();
        let cache = CacheScope {
            retried: params
                .as_ref()
                .is_some_and(|p| p.contains_key("requestState") || p.contains_key("inputResponses")),
            filtered: policy.is_some() || ctx.view.is_some(),
            per_caller: ctx.principal.is_some(),
        };
        let denied = policy
            .as_deref()
            .and_then(|p| views::authorize(p, method, params.as_ref(), ctx))
            .or_else(|| {
                let v = ctx.view.as_deref()?;
                self.outside_view(v, method, params.as_ref(), ctx)
            });
        if denied.is_some() {
            self.metrics.denied.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let was_denied = denied.is_some();
        let span = self.span_sink().map(|_| self.open_request_span(params.as_ref()));
        let span_target = span.as_ref().and(target).map(str::to_string);
        let mut raw_items = None;
        let mut known_outcome = None;
        let result = match denied {
            // Subscribing to a URI nobody knows is accepted (it may appear later), so a
            // hidden one is accepted too, and never delivers.
            Some(_) if method == methods::RESOURCES_SUBSCRIBE => Ok(Reply::Value(json!({}))),
            Some(e) => Err(e),
            None if method == methods::TOOLS_LIST => {
                self.list_tools(params.as_ref(), ctx, policy.as_deref())
                    .map(|(rest, items)| {
                        raw_items = Some(items);
                        Reply::Value(rest)
                    })
            }
            // The one answer that may be an upstream's own text (see `Outcome::Forward`).
            None if method == methods::TOOLS_CALL => {
                let (r, outcome) = self.call_tool(params, ctx).await;
                known_outcome = Some(outcome);
                r
            }
            None => self
                .dispatch(method, params, ctx, policy.as_deref())
                .await
                .map(Reply::Value),
        };
        if let Some(span) = span {
            self.end_request_span(span, span_target, static_method, method, ctx, result.as_ref().err());
        }
        let took = started.elapsed();
        self.metrics
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        let outcome = known_outcome.unwrap_or_else(|| outcome_of_reply(&result));
        self.metrics.observe(method, outcome_index(outcome), took);
        let (Some(sink), Some(method), Some(subject)) = (sink, audited, subject) else {
            return Ok(self.finalize_reply(method, result?, ctx.version, cache, raw_items));
        };
        sink.record(crate::audit::AuditRecord {
            ts_ms,
            principal: ctx.principal.as_ref().map(|p| p.label.clone()),
            client: ctx.client_info.clone(),
            transport: ctx.transport.as_str(),
            version: ctx.version.as_str(),
            method,
            target: subject.target,
            args_sha256: subject.digest,
            outcome: if was_denied { "denied" } else { outcome },
            error: result.as_ref().err().map(|e| format!("{} ({})", e.message, e.code)),
            latency_us: took.as_micros() as u64,
            correlation_id: ctx.correlation_id.clone(),
            arguments: subject.arguments,
        });
        Ok(self.finalize_reply(method, result?, ctx.version, cache, raw_items))
    }

    /// Record an administrative change (keys, secrets, configuration, policy).
    pub fn audit_admin(&self, action: &'static str, target: &str, outcome: &'static str, principal: Option<Arc<str>>) {
        if let Some(sink) = self.audit.get() {
            sink.record(crate::audit::AuditRecord {
                ts_ms: crate::util::unix_now_ms(),
                principal,
                client: None,
                transport: "admin",
                version: "",
                method: action,
                target: target.to_string(),
                args_sha256: crate::audit::digest_json(None),
                outcome,
                error: None,
                latency_us: 0,
                correlation_id: None,
                arguments: None,
            });
        }
    }

    /// Log arguments and results (redacted, each cut at `max_bytes`) of tools matching `tools`.
    pub fn set_body_logging(&self, tools: Vec<String>, max_bytes: usize) {
        if !tools.is_empty() {
            let _ = self.body_log.set((tools, max_bytes.max(64)));
        }
    }

    /// The size cap when `tool`'s bodies are logged.
    pub(crate) fn body_logging(&self, tool: &str) -> Option<usize> {
        let (globs, max) = self.body_log.get()?;
        globs.iter().any(|g| crate::policy::glob(g, tool)).then_some(*max)
    }

    /// Tools whose arguments are kept (redacted) in audit rows; globs.
    pub fn set_audit_arguments(&self, tools: Vec<String>) {
        let _ = self.audit_arguments.set(tools);
    }

    /// The audited target, the argument digest, and the redacted arguments when the tool is
    /// configured to log them.
    fn audit_subject(&self, method: &str, target: Option<&str>, params: Option<&Map<String, Value>>) -> AuditSubject {
        let target = target.unwrap_or("").to_string();
        let args = params.and_then(|p| p.get("arguments"));
        let keep = method == methods::TOOLS_CALL
            && self
                .audit_arguments
                .get()
                .is_some_and(|globs| globs.iter().any(|g| crate::policy::glob(g, &target)));
        let arguments = keep.then(|| {
            let mut a = args.cloned().unwrap_or(Value::Null);
            crate::audit::redact(&mut a);
            a
        });
        AuditSubject {
            digest: crate::audit::digest_json(args),
            target,
            arguments,
        }
    }

    async fn dispatch(
        self: &Arc<Self>,
        method: &str,
        params: Option<Map<String, Value>>,
        ctx: &CallContext,
        policy: Option<&crate::policy::Policy>,
    ) -> Result<Value, ErrorObject> {
        let modern = ctx.is_modern();
        let p = params.as_ref();
        let catalog = self.registry.catalog();
        let visible = |t: crate::policy::Target<'_>| views::sees(policy, ctx, &catalog, t);
        let filter: Option<&dyn Fn(crate::policy::Target<'_>) -> bool> =
            (policy.is_some() || ctx.view.is_some()).then_some(&visible as _);
        match method {
            methods::TOOLS_CALL => self.call_tool(params, ctx).await.0.map(Reply::into_value),
            // Answered in `reply` from pre-serialized definitions; kept here so a direct
            // dispatch still lists.
            methods::TOOLS_LIST => self
                .list_tools(p, ctx, policy)
                .map(|(rest, items)| reply_of(rest, Some(items)).into_value()),
            methods::RESOURCES_READ => self.read_resource(params, ctx).await,
            methods::RESOURCES_LIST => Ok(list_result("resources", catalog.resources_page(cursor(p)?, filter)?)),
            methods::RESOURCES_TEMPLATES_LIST => Ok(list_result(
                "resourceTemplates",
                catalog.templates_page(cursor(p)?, filter)?,
            )),
            methods::PROMPTS_LIST => Ok(list_result("prompts", catalog.prompts_page(cursor(p)?, filter)?)),
            methods::PROMPTS_GET => self.get_prompt(params, ctx).await,
            methods::COMPLETE => self.complete(params, ctx).await,
            methods::DISCOVER => Ok(self.discover_for(ctx.view.as_deref())),
            methods::PING if !modern => Ok(json!({})),
            methods::SET_LEVEL if !modern => self.set_level(p, ctx),
            methods::RESOURCES_SUBSCRIBE | methods::RESOURCES_UNSUBSCRIBE if !modern => {
                let uri = str_field(p, "uri")
                    .ok_or_else(|| ErrorObject::invalid_params("Invalid params: missing \"uri\""))?;
                let session = ctx.session.as_ref().ok_or_else(|| {
                    ErrorObject::invalid_request("resource subscriptions need a session (initialize first)")
                })?;
                if method == methods::RESOURCES_SUBSCRIBE {
                    session.subscribe(uri);
                    self.watch_resources(&[uri.to_string()]);
                } else {
                    session.unsubscribe(uri);
                }
                self.session_changed(session);
                Ok(json!({}))
            }
            methods::TASKS_GET
            | methods::TASKS_CANCEL
            | methods::TASKS_UPDATE
            | methods::TASKS_RESULT
            | methods::TASKS_LIST => {
                let allowed = |tool: &str| visible(crate::policy::Target::Tool(tool));
                self.tasks.handle(method, p, ctx, &allowed).await
            }
            methods::INITIALIZE if !modern => Err(ErrorObject::invalid_request(
                "initialize was already performed for this session",
            )),
            methods::SUBSCRIPTIONS_LISTEN => Err(ErrorObject::invalid_request(
                "subscriptions/listen needs a streaming transport (Streamable HTTP or stdio)",
            )),
            other => Err(ErrorObject::method_not_found(other)),
        }
    }

    /// A notification from the client.
    pub fn notification(&self, method: &str, params: Option<&Map<String, Value>>, session: Option<&Arc<Session>>) {
        match method {
            methods::INITIALIZED => {
                if let Some(s) = session {
                    s.mark_initialized();
                }
            }
            methods::N_CANCELLED => {
                let id = params.and_then(|p| p.get("requestId")).and_then(Id::from_value);
                if let (Some(id), Some(s)) = (id, session) {
                    s.cancel_inflight(&id);
                }
            }
            _ => tracing::debug!(%method, "notification ignored"),
        }
    }

    fn set_level(&self, p: Option<&Map<String, Value>>, ctx: &CallContext) -> Result<Value, ErrorObject> {
        let level =
            str_field(p, "level").ok_or_else(|| ErrorObject::invalid_params("Invalid params: missing \"level\""))?;
        let rank = meta::log_level_rank(level).ok_or_else(|| {
            ErrorObject::invalid_params(format!(
                "Invalid params: unknown log level {level:?}; expected one of {}",
                meta::LOG_LEVELS.join(", ")
            ))
        })?;
        if let Some(s) = &ctx.session {
            s.set_log_level(rank);
            self.session_changed(s);
        }
        Ok(json!({}))
    }
}

/// The target a log line names: tool, prompt or resource URI.
fn log_target<'a>(method: &str, params: Option<&'a Map<String, Value>>) -> Option<&'a str> {
    let key = match method {
        methods::TOOLS_CALL | methods::PROMPTS_GET => "name",
        methods::RESOURCES_READ => "uri",
        _ => return None,
    };
    params.and_then(|p| p.get(key)).and_then(Value::as_str)
}

struct AuditSubject {
    target: String,
    digest: [u8; 32],
    arguments: Option<Value>,
}

/// The audited methods, as static names for the record.
fn audited_method(method: &str) -> Option<&'static str> {
    match method {
        methods::TOOLS_CALL => Some(methods::TOOLS_CALL),
        methods::RESOURCES_READ => Some(methods::RESOURCES_READ),
        methods::PROMPTS_GET => Some(methods::PROMPTS_GET),
        _ => None,
    }
}
