//! `tools/call`, `resources/read`, `prompts/get`, `completion/complete`: routing to the
//! owning plugin, MRTR in both eras, and mapping plugin errors to what each revision expects.

use std::sync::Arc;

use serde_json::{json, Map, Value};
use waygate_protocol::{methods, ErrorObject, Reply};

use super::Engine;
use crate::catalog::TaskSupport;
use crate::context::CallContext;
use crate::hooks::{HookTarget, Phase};
use crate::plugin::{Invocation, Outcome, Plugin, PluginError, Target};
use crate::util::error_result;

use super::client_input::{self, Asked, Release};
pub(super) use super::errors::{map_error, not_found_resource};
use super::errors::{missing_capabilities, tool_error_or};

/// Which kind of primitive a call addresses; decides the error mapping.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Tool,
    Resource,
    Prompt,
}

impl Engine {
    /// `tools/call`, and how it ended (known here without reading the result again).
    pub(super) async fn call_tool(
        self: &Arc<Self>,
        params: Option<Map<String, Value>>,
        ctx: &CallContext,
    ) -> (Result<Reply, ErrorObject>, &'static str) {
        let mut known = None;
        let r = self.call_tool_with(params, ctx, &mut known).await;
        let outcome = known.unwrap_or_else(|| super::outcome_of_reply(&r));
        (r, outcome)
    }

    async fn call_tool_with(
        self: &Arc<Self>,
        params: Option<Map<String, Value>>,
        ctx: &CallContext,
        known: &mut Option<&'static str>,
    ) -> Result<Reply, ErrorObject> {
        let mut params = params.unwrap_or_default();
        let name = required_str(&params, "name")?;
        let arguments = match params.remove("arguments") {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(v @ Value::Object(_)) => v,
            Some(other) => {
                return Err(ErrorObject::invalid_params(format!(
                    "Invalid params: \"arguments\" must be an object, got {other}"
                )))
            }
        };
        // Opt-in per tool: keep a redacted copy of the arguments for the body log line.
        let logged_args = self.body_logging(&name).map(|_| {
            let mut a = arguments.clone();
            crate::audit::redact(&mut a);
            a
        });
        let catalog = self.registry.catalog();
        let tool = catalog.tool(&name).ok_or_else(|| {
            ErrorObject::invalid_params(format!("Unknown tool: {name}")).with_data(json!({ "name": name }))
        })?;
        // The seed ADR's request validation: nothing runs on arguments its schema refuses.
        if let Err(why) = tool.check_arguments(&arguments) {
            self.metrics
                .invalid_arguments
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return tool_error_or(
                Kind::Tool,
                PluginError::InvalidParams(format!("Invalid arguments for tool {name}: {why}")),
                ctx.version,
                &name,
            )
            .map(Reply::Value);
        }
        if let Some(limited) = self.tool_quota(&name, ctx).await {
            return Ok(Reply::Value(limited));
        }
        let limits = self.tool_limits();
        let _slot = match limits.map(|l| l.acquire(&name)) {
            Some(Err(cap)) => {
                if let Some(l) = limits {
                    self.metrics.rate_limited_by("concurrency", l.rule_of(&name));
                }
                return Ok(Reply::Value(error_result(format!(
                    "Tool {name:?} is already running {cap} calls, its limit; retry in a moment."
                ))));
            }
            Some(Ok(slot)) => slot,
            None => None,
        };
        let timeout = limits.and_then(|l| l.timeout(&name));
        let plugin = tool.route.plugin.clone();
        let mut invocation = self.invocation(
            Target::Tool(tool.route.local_name.clone()),
            arguments,
            &params,
            methods::TOOLS_CALL,
            &name,
            ctx,
        )?;
        // An upstream gets the caller's own text: its numbers and key order, not the tree's
        // (the transports set it only for an `arguments` object, the tree's source).
        if plugin.is_remote() {
            invocation.raw_arguments = ctx.arguments_json.clone();
            invocation.caller_meta = forwardable_meta(&params);
        }

        let hooks = self.hooks();
        let guarded = !hooks.is_empty() && hooks.has_post_for(&hook_target(Kind::Tool, &name, &plugin, ctx));
        // A guarded call stays on the synchronous path, where every hook sees it.
        let task_support = if guarded && tool.task_support != TaskSupport::Required {
            TaskSupport::Forbidden
        } else {
            tool.task_support
        };
        // Not held while an upstream's first step is awaited (a drain counts plugin handles).
        drop(catalog);
        // A task handle, or (an upstream that asked before any work) a sealed `input_required`.
        if let Some(created) = self
            .maybe_task(task_support, &params, &plugin, &invocation, &name, ctx)
            .await?
        {
            // In a fleet the task row must exist before the client can ask another replica.
            let id = created.get("taskId").or_else(|| created.pointer("/task/taskId"));
            if let Some(id) = id.and_then(Value::as_str) {
                self.tasks.flush(id).await;
            }
            return Ok(Reply::Value(created));
        }
        let started = std::time::Instant::now();
        let run = self.run_to_outcome(Kind::Tool, &plugin, invocation, methods::TOOLS_CALL, &name, ctx);
        let (result, mut outcome) = match timeout {
            None => run.await,
            Some(t) => match tokio::time::timeout(t, run).await {
                Ok(r) => r,
                // Dropping the future cancels the plugin's work at its next await point.
                Err(_) => {
                    if let Some(l) = limits {
                        self.metrics.rate_limited_by("timeout", l.rule_of(&name));
                    }
                    (
                        Ok(Reply::Value(error_result(format!(
                            "Tool {name:?} did not finish within its time limit of {} ms.",
                            t.as_millis()
                        )))),
                        "tool_error",
                    )
                }
            },
        };
        let mut result = result;
        let cap = limits.and_then(|l| l.max_response_bytes(&name));
        let check_output = self.cfg.validate_output && !plugin.is_remote();
        // Forwarded text stays text unless something here has to read the result.
        if check_output || cap.is_some() || logged_args.is_some() {
            result = result.map(|r| Reply::Value(r.into_value()));
        }
        if check_output {
            if let (Ok(Reply::Value(v)), Some(tool)) = (&result, self.registry.catalog().tool(&name)) {
                if let Err(why) = tool.check_output(v) {
                    tracing::error!(tool = %name, reason = %why, "tool result violates its outputSchema");
                    result = Err(ErrorObject::internal(format!(
                        "tool {name} returned a result that does not match its outputSchema: {why}"
                    )));
                    outcome = "error";
                }
            }
        }
        if let (Some(cap), Ok(Reply::Value(v))) = (cap, result.as_mut()) {
            if crate::util::cap_result(v, cap) {
                tracing::info!(tool = %name, limit = cap, "tool result truncated");
            }
        }
        if let (Some(args), Some(max)) = (logged_args, self.body_logging(&name)) {
            let mut res = match &result {
                Ok(Reply::Value(v)) => v.clone(),
                Ok(Reply::Raw(t)) => serde_json::from_str(t).unwrap_or(Value::Null),
                Err(e) => json!({"error": {"code": e.code, "message": e.message}}),
            };
            crate::audit::redact(&mut res);
            tracing::info!(
                tool = %name,
                arguments = %crate::util::clip(&args.to_string(), max),
                result = %crate::util::clip(&res.to_string(), max),
                "tool call body"
            );
        }
        // Only catalog tools reach this point, so tool labels stay bounded.
        let idx = super::outcome_index(outcome);
        self.metrics.observe_tool(&name, idx, started.elapsed());
        *known = Some(outcome);
        result
    }

    pub(super) async fn read_resource(
        self: &Arc<Self>,
        params: Option<Map<String, Value>>,
        ctx: &CallContext,
    ) -> Result<Value, ErrorObject> {
        let params = params.unwrap_or_default();
        let uri = required_str(&params, "uri")?;
        let catalog = self.registry.catalog();
        let Some(hit) = catalog.resource(&uri) else {
            return Err(not_found_resource(&uri, ctx.version));
        };
        let plugin = hit.route.plugin.clone();
        let args = hit.vars.map(Value::Object).unwrap_or_else(|| json!({}));
        // A namespaced URI: the plugin gets its own, the caller the one it asked for.
        let namespace = uri
            .strip_suffix(hit.local_uri.as_str())
            .filter(|ns| !ns.is_empty())
            .map(str::to_string);
        let invocation = self.invocation(
            Target::Resource(hit.local_uri),
            args,
            &params,
            methods::RESOURCES_READ,
            &uri,
            ctx,
        )?;
        drop(catalog);
        let mut result = self
            .run(Kind::Resource, &plugin, invocation, methods::RESOURCES_READ, &uri, ctx)
            .await?
            .into_value();
        if let (Some(ns), Some(contents)) = (namespace, result.get_mut("contents").and_then(Value::as_array_mut)) {
            for c in contents {
                if let Some(u) = c.get("uri").and_then(Value::as_str) {
                    c["uri"] = Value::String(format!("{ns}{u}"));
                }
            }
        }
        Ok(result)
    }

    pub(super) async fn get_prompt(
        self: &Arc<Self>,
        params: Option<Map<String, Value>>,
        ctx: &CallContext,
    ) -> Result<Value, ErrorObject> {
        let params = params.unwrap_or_default();
        let name = required_str(&params, "name")?;
        let arguments = match params.get("arguments") {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(Value::Object(m)) if m.values().all(Value::is_string) => Value::Object(m.clone()),
            Some(_) => {
                return Err(ErrorObject::invalid_params(
                    "Invalid params: prompt \"arguments\" must be an object of string values",
                ))
            }
        };
        let catalog = self.registry.catalog();
        let route = catalog
            .prompt(&name)
            .ok_or_else(|| ErrorObject::invalid_params(format!("Unknown prompt: {name}")))?;
        let plugin = route.plugin.clone();
        let mut invocation = self.invocation(
            Target::Prompt(route.local_name.clone()),
            arguments,
            &params,
            methods::PROMPTS_GET,
            &name,
            ctx,
        )?;
        if plugin.is_remote() {
            invocation.caller_meta = forwardable_meta(&params);
        }
        drop(catalog);
        self.run(Kind::Prompt, &plugin, invocation, methods::PROMPTS_GET, &name, ctx)
            .await
            .map(Reply::into_value)
    }

    /// Build the invocation, verifying a returned `requestState`.
    fn invocation(
        &self,
        target: Target,
        arguments: Value,
        params: &Map<String, Value>,
        method: &str,
        name: &str,
        ctx: &CallContext,
    ) -> Result<Invocation, ErrorObject> {
        let input_responses = match params.get("inputResponses") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => {
                // Each answer is the result of the request it answers: always an object.
                if let Some((key, v)) = m.iter().find(|(_, v)| !v.is_object()) {
                    return Err(ErrorObject::invalid_params(format!(
                        "Invalid params: inputResponses[{key:?}] must be an object (the result of the \
                         request it answers), not {}",
                        crate::util::json_kind(v)
                    )));
                }
                Some(m.clone())
            }
            Some(_) => {
                return Err(ErrorObject::invalid_params(
                    "Invalid params: \"inputResponses\" must be an object",
                ))
            }
        };
        let state = match params.get("requestState") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if ctx.is_modern() => {
                let digest = crate::audit::digest_json(Some(&arguments));
                let bind = crate::mrtr::Binding {
                    owner: ctx.owner(),
                    args: &digest,
                };
                Some(
                    self.sealer
                        .open(s, method, name, bind)
                        .map_err(|e| ErrorObject::invalid_params(format!("Invalid params: {e}")))?,
                )
            }
            Some(Value::String(_)) => None,
            Some(_) => {
                return Err(ErrorObject::invalid_params(
                    "Invalid params: \"requestState\" must be a string",
                ))
            }
        };
        Ok(Invocation {
            target,
            arguments,
            input_responses,
            state,
            raw_arguments: None,
            caller_meta: None,
        })
    }

    /// Execute, resolving input requests: as an `input_required` result for 2026-07-28, or
    /// for a legacy session by asking the client over the request's stream and running the
    /// handler again with the answers.
    pub(crate) async fn run(
        &self,
        kind: Kind,
        plugin: &Arc<dyn Plugin>,
        invocation: Invocation,
        method: &str,
        name: &str,
        ctx: &CallContext,
    ) -> Result<Reply, ErrorObject> {
        self.run_to_outcome(kind, plugin, invocation, method, name, ctx).await.0
    }

    /// [`Engine::run`], and how the call ended.
    async fn run_to_outcome(
        &self,
        kind: Kind,
        plugin: &Arc<dyn Plugin>,
        invocation: Invocation,
        method: &str,
        name: &str,
        ctx: &CallContext,
    ) -> (Result<Reply, ErrorObject>, &'static str) {
        let started = std::time::Instant::now();
        let wall = std::time::SystemTime::now();
        // Known before the call, so outbound requests made during it become its children.
        let call_span = self.span_sink().map(|_| crate::spans::random::<8>());
        if call_span.is_some() {
            crate::logctx::update(|c| c.call_span = call_span);
        }
        let result = self.run_hooked(kind, plugin, invocation, method, name, ctx).await;
        if call_span.is_some() {
            crate::logctx::update(|c| c.call_span = None);
        }
        let outcome = super::outcome_of_reply(&result);
        self.metrics
            .observe_plugin(plugin.name(), super::outcome_index(outcome), started.elapsed());
        self.export_call_span(call_span, wall, plugin, method, name, outcome, result.as_ref().err());
        (result, outcome)
    }

    async fn run_hooked(
        &self,
        kind: Kind,
        plugin: &Arc<dyn Plugin>,
        mut invocation: Invocation,
        method: &str,
        name: &str,
        ctx: &CallContext,
    ) -> Result<Reply, ErrorObject> {
        let hooks = self.hooks();
        let target = hook_target(kind, name, plugin, ctx);
        // requestState binds the arguments the client sent, not what a pre-hook made of them.
        let sent_args = (!hooks.is_empty()).then(|| crate::audit::digest_json(Some(&invocation.arguments)));
        if !hooks.is_empty() {
            if let Err(reason) = hooks.run(Phase::Pre, &target, &mut invocation.arguments).await {
                return tool_error_or(kind, PluginError::ToolFailed(reason), ctx.version, name).map(Reply::Value);
            }
            // What a hook changed goes out as the hook left it.
            if invocation.raw_arguments.is_some()
                && sent_args != Some(crate::audit::digest_json(Some(&invocation.arguments)))
            {
                invocation.raw_arguments = None;
            }
        }
        let mut rounds = 0usize;
        loop {
            let outcome = match plugin.execute(&invocation, ctx).await {
                Ok(o) => o,
                Err(e) => return tool_error_or(kind, e, ctx.version, name).map(Reply::Value),
            };
            let outcome = match outcome {
                Outcome::Forward(raw) if hooks.is_empty() => {
                    let text: Box<str> = raw.into();
                    return Ok(Reply::Raw(match waygate_protocol::raw::minify(&text) {
                        std::borrow::Cow::Borrowed(_) => String::from(text),
                        std::borrow::Cow::Owned(one_line) => one_line,
                    }));
                }
                Outcome::Forward(raw) => Outcome::Complete(Outcome::forwarded_value(&raw)),
                other => other,
            };
            let (requests, state) = match outcome {
                Outcome::Complete(mut v) => {
                    if !hooks.is_empty() {
                        if let Err(reason) = hooks.run(Phase::Post, &target, &mut v).await {
                            return tool_error_or(kind, PluginError::ToolFailed(reason), ctx.version, name)
                                .map(Reply::Value);
                        }
                    }
                    return Ok(Reply::Value(v));
                }
                // Made a tree above when hooks read it.
                Outcome::Forward(raw) => return Ok(Reply::Value(Outcome::forwarded_value(&raw))),
                Outcome::InputRequired { requests, state } => (requests, state),
            };
            // Work the handler holds for the answers (an upstream blocked on its question)
            // is released on every way out below but handing the answers back.
            let mut release = Release::new(plugin, state.as_ref(), ctx);
            if let Some(missing) = missing_capabilities(&ctx.client_caps, &requests) {
                release.because(format!("the calling client did not declare {missing}"));
                return tool_error_or(kind, PluginError::MissingCapability(missing), ctx.version, name)
                    .map(Reply::Value);
            }
            if ctx.is_modern() {
                release.keep();
                let digest = sent_args.unwrap_or_else(|| crate::audit::digest_json(Some(&invocation.arguments)));
                return Ok(Reply::Value(
                    self.input_required(requests, state, method, name, &digest, ctx),
                ));
            }
            rounds += 1;
            if rounds > self.cfg.max_input_rounds {
                let why = format!("gave up after {} rounds of client input", self.cfg.max_input_rounds);
                release.because(why.clone());
                return tool_error_or(kind, PluginError::Internal(why), ctx.version, name).map(Reply::Value);
            }
            let Some(session) = ctx.session.as_ref() else {
                let why = "this call needs input from the client (elicitation, sampling or roots), which needs an initialized session with a streaming response";
                release.because(why);
                return tool_error_or(kind, PluginError::ToolFailed(why.into()), ctx.version, name).map(Reply::Value);
            };
            let timeout = self.cfg.client_request_timeout;
            match client_input::ask(session, ctx, requests, plugin, state.as_ref(), timeout).await {
                Asked::Answers(answers) => invocation.input_responses = Some(answers),
                // The held work reports how it ended when the handler runs again.
                Asked::Ended(None) => invocation.input_responses = None,
                Asked::Ended(Some(why)) => {
                    return tool_error_or(kind, PluginError::ToolFailed(why), ctx.version, name).map(Reply::Value);
                }
                Asked::Cancelled(e) => {
                    release.because("the caller cancelled the call");
                    return Err(e);
                }
                Asked::Failed { method: m, error } => {
                    let why = format!("client could not answer {m}: {}", error.message);
                    release.because(why.clone());
                    return tool_error_or(kind, PluginError::ToolFailed(why), ctx.version, name).map(Reply::Value);
                }
            }
            release.keep();
            invocation.state = state;
        }
    }
}

fn hook_target<'a>(kind: Kind, name: &'a str, plugin: &'a Arc<dyn Plugin>, ctx: &'a CallContext) -> HookTarget<'a> {
    HookTarget {
        kind: match kind {
            Kind::Tool => "tool",
            Kind::Resource => "resource",
            Kind::Prompt => "prompt",
        },
        name,
        plugin: plugin.name(),
        principal: ctx.principal.as_ref().map(|p| &*p.label),
    }
}

fn required_str(params: &Map<String, Value>, key: &str) -> Result<String, ErrorObject> {
    match params.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(ErrorObject::invalid_params(format!(
            "Invalid params: \"{key}\" must be a string, got {other}"
        ))),
        None => Err(ErrorObject::invalid_params(format!(
            "Invalid params: missing \"{key}\""
        ))),
    }
}

/// The caller's `_meta` members an upstream should see: not MCP's reserved keys (this hop's
/// envelope, related task) nor the progress token (the gateway relays progress under its
/// own). `None` when nothing is left, the common case.
fn forwardable_meta(params: &Map<String, Value>) -> Option<Map<String, Value>> {
    let own = params.get("_meta")?.as_object()?;
    let keep = |k: &String| k != waygate_protocol::meta::PROGRESS_TOKEN && !waygate_protocol::meta::is_reserved_key(k);
    if !own.keys().any(keep) {
        return None;
    }
    Some(
        own.iter()
            .filter(|(k, _)| keep(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}
