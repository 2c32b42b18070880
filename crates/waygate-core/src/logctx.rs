//! The request a log line belongs to. Transports open a scope per request; the engine fills
//! in method and target; the log formatter of the binary adds the fields to every line
//! written inside the scope. A task-local instead of a tracing span: it costs a few pointer
//! writes per request, where a span formatted its fields on every request even when nothing
//! was logged.

use std::cell::RefCell;
use std::future::Future;
use std::sync::Arc;

#[derive(Debug, Default, Clone)]
pub struct LogContext {
    /// Correlation id (`X-Request-Id`, or generated).
    pub request_id: Option<Arc<str>>,
    /// W3C trace id from `traceparent`.
    pub trace_id: Option<Box<str>>,
    /// `id:name` of the authenticated caller.
    pub principal: Option<Arc<str>>,
    pub method: Option<&'static str>,
    pub target: Option<Box<str>>,
}

tokio::task_local! {
    static CTX: RefCell<LogContext>;
}

/// Run `f` with `ctx` as its log context.
pub fn scope<F: Future>(ctx: LogContext, f: F) -> impl Future<Output = F::Output> {
    CTX.scope(RefCell::new(ctx), f)
}

/// Change the current context (no-op outside a scope).
pub fn update(f: impl FnOnce(&mut LogContext)) {
    let _ = CTX.try_with(|c| f(&mut c.borrow_mut()));
}

/// A copy of the current context, if any (for the log formatter).
pub fn current() -> Option<LogContext> {
    CTX.try_with(|c| c.borrow().clone()).ok()
}
