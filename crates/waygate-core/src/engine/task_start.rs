//! Whether a tool call becomes a task, and what the caller hears before one exists.
//!
//! MRTR composes with tasks: a handler that needs its caller's input before doing any work
//! asks synchronously (`input_required`), and only the retry that carries the answers
//! becomes a task. How the engine learns that a handler is past asking differs: a native
//! handler's first step is polled once; an upstream's is awaited until the upstream asks,
//! ends, or says its work started.

use std::sync::Arc;

use serde_json::{json, Map, Value};
use waygate_protocol::{codes, meta, methods, ErrorObject, ProtocolVersion};

use super::calls::Kind;
use super::errors::{map_error, missing_capabilities};
use super::Engine;
use crate::catalog::TaskSupport;
use crate::context::CallContext;
use crate::plugin::{Invocation, Outcome, Plugin, PluginError};

impl Engine {
    /// A 2026-07-28 `input_required` result, its state sealed to the caller and arguments.
    pub(super) fn input_required(
        &self,
        requests: Map<String, Value>,
        state: Option<Value>,
        method: &str,
        name: &str,
        args_digest: &[u8; 32],
        ctx: &CallContext,
    ) -> Value {
        let mut r = Map::new();
        r.insert("resultType".into(), json!("input_required"));
        let mut requests = requests;
        // A 2025-11-25 server's URL-mode elicitation names itself; 2026-07-28 has no such
        // member (nor the completion notification it serves).
        for req in requests.values_mut() {
            if let Some(p) = req.get_mut("params").and_then(Value::as_object_mut) {
                p.remove("elicitationId");
            }
        }
        if !requests.is_empty() {
            r.insert("inputRequests".into(), Value::Object(requests));
        }
        let bind = crate::mrtr::Binding {
            owner: ctx.owner(),
            args: args_digest,
        };
        let sealed = self.sealer.seal(method, name, bind, &state.unwrap_or(Value::Null));
        r.insert("requestState".into(), Value::String(sealed));
        Value::Object(r)
    }

    /// Decide whether a tool call becomes a task (tasks extension / 2025-11-25 tasks).
    ///
    /// The handler's first round runs right here: input it needs before doing any
    /// asynchronous work is resolved synchronously (MRTR before task creation). A native
    /// handler is polled once: `Ok(None)` sends the call down the ordinary path. A remote
    /// one (an upstream) is never ready at once, so for a 2026-07-28 caller it is awaited
    /// until it asks (answered here as a sealed `input_required`, no task), ends, or marks
    /// its work started (`CallContext::mark_started`); the last two become a task.
    pub(super) async fn maybe_task(
        self: &Arc<Self>,
        support: TaskSupport,
        params: &Map<String, Value>,
        plugin: &Arc<dyn Plugin>,
        invocation: &Invocation,
        tool_name: &str,
        ctx: &CallContext,
    ) -> Result<Option<Value>, ErrorObject> {
        let legacy_task_param = params.get("task").is_some_and(Value::is_object);
        if support == TaskSupport::Forbidden {
            if ctx.version == ProtocolVersion::V2025_11_25 && legacy_task_param {
                return Err(ErrorObject::method_not_found(
                    "tools/call with task: this tool does not support tasks",
                ));
            }
            return Ok(None);
        }
        let wants = if ctx.is_modern() {
            ctx.has_extension(meta::TASKS_EXTENSION)
        } else {
            ctx.version >= ProtocolVersion::V2025_11_25 && legacy_task_param
        };
        if !wants {
            if support == TaskSupport::Required {
                if ctx.is_modern() {
                    ctx.require_tasks_extension()?;
                }
                return Err(ErrorObject::method_not_found(
                    "tools/call without task: this tool must run as a task",
                ));
            }
            return Ok(None);
        }
        self.tasks.ensure_room(ctx.owner())?;
        let cancel = tokio_util::sync::CancellationToken::new();
        let mut bg = CallContext::detached(ctx.version);
        bg.transport = ctx.transport;
        bg.client_caps = ctx.client_caps.clone();
        bg.client_info = ctx.client_info.clone();
        bg.cancel = cancel.clone();
        // The task acts for its caller: plugins and upstreams see the same principal.
        bg.principal = ctx.principal.clone();
        bg.correlation_id = ctx.correlation_id.clone();
        bg.forwarded = ctx.forwarded.clone();
        let awaited = plugin.is_remote() && ctx.is_modern();
        let started = tokio_util::sync::CancellationToken::new();
        if awaited {
            bg.started = Some(started.clone());
        }
        let (p, inv) = (plugin.clone(), invocation.clone());
        let mut first: crate::tasks::TaskFuture = Box::pin(async move {
            let r = p.execute(&inv, &bg).await;
            (r, inv, bg)
        });
        let first: crate::tasks::TaskFuture = if awaited {
            tokio::select! {
                biased;
                done = &mut first => match done {
                    // Asked before any work: no task yet; the retry resumes the same call.
                    (Ok(Outcome::InputRequired { requests, state }), _, _) => {
                        if let Some(missing) = missing_capabilities(&ctx.client_caps, &requests) {
                            let e = PluginError::MissingCapability(missing);
                            return Err(map_error(Kind::Tool, e, ctx.version, tool_name));
                        }
                        let digest = crate::audit::digest_json(Some(&invocation.arguments));
                        let asked = self.input_required(requests, state, methods::TOOLS_CALL, tool_name, &digest, ctx);
                        return Ok(Some(asked));
                    }
                    (Err(PluginError::MissingCapability(c)), _, _) => {
                        return Err(map_error(Kind::Tool, PluginError::MissingCapability(c), ctx.version, tool_name));
                    }
                    done => Box::pin(std::future::ready(done)),
                },
                _ = started.cancelled() => first,
                _ = ctx.cancel.cancelled() => {
                    cancel.cancel();
                    return Err(ErrorObject::new(codes::REQUEST_CANCELLED, "request cancelled"));
                }
            }
        } else {
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            match first.as_mut().poll(&mut cx) {
                std::task::Poll::Ready((Ok(Outcome::InputRequired { .. }), _, _)) => return Ok(None),
                std::task::Poll::Ready(done) => Box::pin(std::future::ready(done)),
                std::task::Poll::Pending => first,
            }
        };
        let task = self.tasks.spawn(
            ctx.owner().map(Arc::from),
            tool_name,
            self.events.clone(),
            plugin.clone(),
            first,
            cancel,
            ctx.version,
        );
        Ok(Some(if ctx.is_modern() {
            let mut t = task;
            t["resultType"] = json!("task");
            t
        } else {
            json!({ "task": task })
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineConfig;
    use crate::registry::PluginRegistry;
    use waygate_protocol::ProtocolVersion;

    #[test]
    fn a_url_elicitation_is_asked_in_the_stateless_shape() {
        let registry = Arc::new(PluginRegistry::new(crate::events::Events::new(), 100));
        let e = Engine::new(EngineConfig::default(), registry);
        let mut requests = Map::new();
        requests.insert(
            "upstream-0".into(),
            json!({"method": "elicitation/create", "params": {"mode": "url", "message": "Sign in",
                "url": "https://example.com/login", "elicitationId": "e-1"}}),
        );
        let ctx = CallContext::detached(ProtocolVersion::V2026_07_28);
        let r = e.input_required(requests, None, "tools/call", "t", &[0; 32], &ctx);
        let p = &r["inputRequests"]["upstream-0"]["params"];
        assert_eq!(p["url"], "https://example.com/login", "{r}");
        assert!(p.get("elicitationId").is_none(), "{r}");
    }
}
