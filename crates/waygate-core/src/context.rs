//! Per-request context: which revision the client speaks, what it declared, and the
//! channel that carries request-scoped notifications back to it.

use std::sync::Arc;

use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;
use waygate_protocol::jsonrpc::encode_message;
use waygate_protocol::{meta, methods, Id, ProtocolVersion};

use crate::session::Session;

/// Encoded JSON-RPC messages on their way to the client (one per element, no framing),
/// through a queue bounded in bytes (see [`crate::outq`]).
pub use crate::outq::OutTx;

/// How the request reached us; recorded for logs and later for audit rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    StreamableHttp,
    LegacySse,
    Stdio,
}

impl TransportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StreamableHttp => "streamable-http",
            Self::LegacySse => "sse",
            Self::Stdio => "stdio",
        }
    }
}

pub struct CallContext {
    pub version: ProtocolVersion,
    pub transport: TransportKind,
    /// Capabilities valid for this request (legacy: from `initialize`; modern: `_meta`).
    pub client_caps: Arc<Value>,
    pub client_info: Option<Arc<Value>>,
    pub session: Option<Arc<Session>>,
    /// Request-scoped stream (the POST's SSE response, or stdout). `None` when the
    /// response is plain JSON and notifications have nowhere to go.
    pub out: Option<OutTx>,
    pub progress_token: Option<Value>,
    /// Minimum severity rank of `notifications/message` to emit; `None` emits none.
    pub log_level: Option<u8>,
    pub cancel: CancellationToken,
    pub request_id: Option<Id>,
    /// Authenticated caller (HTTP with API keys); `None` for stdio and `--no-auth`.
    pub principal: Option<Arc<crate::auth::Principal>>,
    /// `X-Request-Id` of the HTTP request (or generated), for logs and audit rows.
    pub correlation_id: Option<Arc<str>>,
    /// Client request headers that an upstream's `passthrough_headers` names (lowercase
    /// name, value); `None` when no upstream asks for any.
    pub forwarded: Option<Forwarded>,
    /// The virtual server the request came in on; it sees only that server's items.
    pub view: Option<Arc<crate::view::View>>,
    /// Set on the first round of a task-augmented call whose handler the engine awaits
    /// (an upstream): cancelled by [`CallContext::mark_started`].
    pub started: Option<CancellationToken>,
    /// A `tools/call`'s `params.arguments` as the caller wrote them, on one line, set by
    /// the transports: an upstream tool gets this text (see
    /// [`waygate_protocol::jsonrpc::decode_spanned`]). A copy: a slice would hold the
    /// connection's whole read buffer for the call, so hyper could not reuse it.
    pub arguments_json: Option<Arc<str>>,
}

/// Request headers kept for upstreams: (lowercase name, value).
pub type Forwarded = Arc<[(Box<str>, Box<str>)]>;

impl CallContext {
    /// A context with no client channel, for tests and internal calls.
    pub fn detached(version: ProtocolVersion) -> Self {
        CallContext {
            version,
            transport: TransportKind::Stdio,
            client_caps: Arc::new(Value::Object(Map::new())),
            client_info: None,
            session: None,
            out: None,
            progress_token: None,
            log_level: None,
            cancel: CancellationToken::new(),
            request_id: None,
            principal: None,
            correlation_id: None,
            forwarded: None,
            view: None,
            started: None,
            arguments_json: None,
        }
    }

    /// The handler is past asking its caller first: a task-augmented call may become a
    /// task now (see `Engine::maybe_task`). A no-op on any other call.
    pub fn mark_started(&self) {
        if let Some(s) = &self.started {
            s.cancel();
        }
    }

    /// Who owns the state this request creates or touches (sessions, tasks, MRTR state,
    /// subscriptions): the principal's id, `None` when the transport is unauthenticated.
    pub fn owner(&self) -> Option<&str> {
        self.principal.as_deref().map(|p| p.id.as_str())
    }

    pub fn is_modern(&self) -> bool {
        self.version.is_modern()
    }

    /// Whether the client declared a top-level capability (`sampling`, `elicitation`, …).
    pub fn has_capability(&self, name: &str) -> bool {
        self.client_caps.get(name).is_some_and(|v| !v.is_null())
    }

    /// Whether this request's capabilities list the extension `id`.
    pub fn has_extension(&self, id: &str) -> bool {
        self.client_caps
            .pointer("/extensions")
            .and_then(|e| e.get(id))
            .is_some()
    }

    /// `Err(-32021)` unless the tasks extension was declared on this request.
    pub fn require_tasks_extension(&self) -> Result<(), waygate_protocol::ErrorObject> {
        if self.has_extension(meta::TASKS_EXTENSION) {
            Ok(())
        } else {
            Err(waygate_protocol::ErrorObject::missing_capability(
                json!({ "extensions": { meta::TASKS_EXTENSION: {} } }),
            ))
        }
    }

    /// Send a notification on the request's stream. Returns false when nothing carries it.
    pub fn notify(&self, method: &str, params: Value) -> bool {
        match &self.out {
            Some(out) => out.send(encode_message(None, method, &params)).is_ok(),
            None => false,
        }
    }

    /// `notifications/progress`, only when the client asked for it with a progress token.
    pub fn progress(&self, progress: f64, total: Option<f64>, message: Option<&str>) {
        let Some(token) = &self.progress_token else { return };
        let mut p = json!({ "progressToken": token, "progress": progress });
        if let Some(t) = total {
            p["total"] = json!(t);
        }
        if let Some(m) = message {
            p["message"] = json!(m);
        }
        self.notify(methods::N_PROGRESS, p);
    }

    /// `notifications/message` at `level`, when the client opted in at or below it.
    pub fn log(&self, level: &str, logger: Option<&str>, data: Value) {
        let (Some(min), Some(rank)) = (self.log_level, meta::log_level_rank(level)) else {
            return;
        };
        if rank < min {
            return;
        }
        let mut p = json!({ "level": level, "data": data });
        if let Some(l) = logger {
            p["logger"] = json!(l);
        }
        self.notify(methods::N_MESSAGE, p);
    }
}
