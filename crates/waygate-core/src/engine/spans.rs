//! The request span: opened when a request arrives (continuing the caller's trace) and
//! handed to the span sink when it is answered.

use std::sync::Arc;

use serde_json::{Map, Value};
use waygate_protocol::{methods, ErrorObject};

use super::Engine;
use crate::context::CallContext;

pub(super) type OpenSpan = (Arc<crate::spans::TraceContext>, [u8; 8], std::time::SystemTime);

impl Engine {
    /// The request's trace (from `traceparent` in the headers or `_meta`, else new) and a
    /// fresh span id, remembered in the log context for child spans.
    pub(super) fn open_request_span(&self, params: Option<&Map<String, Value>>) -> OpenSpan {
        let lc = crate::logctx::current().unwrap_or_default();
        let meta = params.and_then(|p| p.get("_meta"));
        let meta_str = |k: &str| meta.and_then(|m| m.get(k)).and_then(Value::as_str);
        let trace = lc
            .traceparent
            .as_deref()
            .and_then(|tp| crate::spans::TraceContext::parse(tp, lc.tracestate.as_deref()))
            .or_else(|| crate::spans::TraceContext::parse(meta_str("traceparent")?, meta_str("tracestate")))
            .unwrap_or_else(crate::spans::TraceContext::root);
        let trace = Arc::new(trace);
        let span_id = crate::spans::random::<8>();
        let hex = crate::util::hex(&trace.trace_id);
        crate::logctx::update(|c| {
            c.span = Some((trace.clone(), span_id));
            c.trace_id.get_or_insert_with(|| hex.into());
        });
        (trace, span_id, std::time::SystemTime::now())
    }

    /// Export the request span with its MCP attributes and error status.
    pub(super) fn end_request_span(
        &self,
        span: OpenSpan,
        span_target: Option<String>,
        static_method: &'static str,
        method: &str,
        ctx: &CallContext,
        error: Option<&ErrorObject>,
    ) {
        let Some(sink) = self.span_sink() else { return };
        let (trace, span_id, start) = span;
        {
            let mut attributes = vec![
                ("mcp.method.name", static_method.to_string()),
                ("mcp.protocol.version", ctx.version.as_str().to_string()),
                ("network.transport", ctx.transport.as_str().to_string()),
            ];
            if let Some(t) = &span_target {
                let key = if method == methods::TOOLS_CALL {
                    "gen_ai.tool.name"
                } else {
                    "mcp.target"
                };
                attributes.push((key, t.clone()));
            }
            if let Some(sid) = ctx.session.as_ref() {
                attributes.push(("mcp.session.id", sid.id.clone()));
            }
            if let Some(p) = ctx.principal.as_ref() {
                attributes.push(("enduser.id", p.label.to_string()));
            }
            sink.export(crate::spans::SpanRecord {
                trace_id: trace.trace_id,
                span_id,
                parent: trace.parent_span.map(|p| (p, true)),
                sampled: trace.sampled,
                trace_state: trace.trace_state.clone(),
                name: match &span_target {
                    Some(t) => format!("{static_method} {t}"),
                    None => static_method.to_string(),
                },
                kind: crate::spans::SpanKind::Server,
                start,
                end: std::time::SystemTime::now(),
                attributes,
                error: error.map(|e| (e.code.to_string(), e.message.clone())),
            });
        }
    }

    /// Export the span of one plugin execution (a client span for remote plugins).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn export_call_span(
        &self,
        call_span: Option<[u8; 8]>,
        wall: std::time::SystemTime,
        plugin: &Arc<dyn crate::plugin::Plugin>,
        method: &str,
        name: &str,
        outcome: &'static str,
        error: Option<&ErrorObject>,
    ) {
        let Some(sink) = self.span_sink() else { return };
        let Some((trace, parent)) = crate::logctx::with(|c| c.span.clone()).flatten() else {
            return;
        };
        let extra = plugin.span_attributes();
        let error = match error {
            Some(e) => Some((e.code.to_string(), e.message.clone())),
            None if outcome == "tool_error" => Some(("tool_error".into(), "the tool reported an error".into())),
            None => None,
        };
        sink.export(crate::spans::SpanRecord {
            trace_id: trace.trace_id,
            span_id: call_span.unwrap_or_else(crate::spans::random),
            parent: Some((parent, false)),
            sampled: trace.sampled,
            trace_state: trace.trace_state.clone(),
            name: format!("execute {}", plugin.name()),
            kind: if extra.is_some() {
                crate::spans::SpanKind::Client
            } else {
                crate::spans::SpanKind::Internal
            },
            start: wall,
            end: std::time::SystemTime::now(),
            attributes: {
                let mut a = vec![
                    ("mcp.method.name", method.to_string()),
                    ("waygate.plugin", plugin.name().to_string()),
                    ("waygate.target", name.to_string()),
                    ("waygate.outcome", outcome.to_string()),
                ];
                a.extend(extra.into_iter().flatten());
                a
            },
            error,
        });
    }
}
