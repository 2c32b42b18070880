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
    /// The raw W3C headers, kept only when spans are exported.
    pub traceparent: Option<Box<str>>,
    pub tracestate: Option<Box<str>>,
    /// The request span (trace and span id), parent of plugin-call spans.
    pub span: Option<(Arc<crate::spans::TraceContext>, [u8; 8])>,
    /// The plugin-call span running now: outbound requests (upstreams, plugin HTTP) are its
    /// children. Unset outside a plugin call.
    pub call_span: Option<[u8; 8]>,
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

/// Read the current context without copying it (hot paths); `None` outside a scope.
pub fn with<T>(f: impl FnOnce(&LogContext) -> T) -> Option<T> {
    CTX.try_with(|c| f(&c.borrow())).ok()
}

/// The trace id of a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`), if well formed.
pub fn trace_id_of(tp: &str) -> Option<&str> {
    let mut parts = tp.trim().split('-');
    let (version, trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    let valid = hex(version, 2) && version != "ff" && hex(trace, 32) && hex(parent, 16) && hex(flags, 2);
    (valid && trace.bytes().any(|b| b != b'0')).then_some(trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent() {
        let t = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(trace_id_of(t), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert_eq!(
            trace_id_of("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            None
        );
        assert_eq!(
            trace_id_of("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            None
        );
        assert_eq!(trace_id_of("garbage"), None);
    }

    #[tokio::test]
    async fn scope_and_update() {
        assert!(current().is_none());
        let ctx = LogContext {
            request_id: Some(Arc::from("r1")),
            ..Default::default()
        };
        scope(ctx, async {
            update(|c| c.method = Some("tools/call"));
            let c = current().unwrap();
            assert_eq!((c.request_id.as_deref(), c.method), (Some("r1"), Some("tools/call")));
        })
        .await;
        update(|c| c.method = None); // outside a scope: nothing happens, no panic
    }
}
