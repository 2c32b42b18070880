//! Trace spans for requests and plugin calls, handed to whatever exports them (the binary
//! plugs in an OpenTelemetry OTLP exporter). The engine records plain [`SpanRecord`]s, so
//! this crate does not depend on a telemetry SDK, and with no sink installed a request
//! pays one atomic load.
//!
//! The trace continues the caller's W3C `traceparent` (HTTP header or `_meta`); the
//! request span's id is kept in the request's log context so plugin-call spans, and later
//! upstream requests, become its children.

use std::time::SystemTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    Server,
    Internal,
    /// A call the gateway makes to another server (an upstream).
    Client,
}

/// A finished span.
#[derive(Debug, Clone)]
pub struct SpanRecord {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// The parent span, and whether it lives in another process (the caller).
    pub parent: Option<([u8; 8], bool)>,
    pub sampled: bool,
    pub trace_state: Option<String>,
    pub name: String,
    pub kind: SpanKind,
    pub start: SystemTime,
    pub end: SystemTime,
    pub attributes: Vec<(&'static str, String)>,
    /// Set when the operation failed: `(error.type, message)`.
    pub error: Option<(String, String)>,
}

/// Receives finished spans; must not block (exporters batch in the background).
pub trait SpanSink: Send + Sync {
    fn export(&self, span: SpanRecord);
}

/// The trace a request belongs to: ids from `traceparent`, or new ones.
#[derive(Debug, Clone)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    pub parent_span: Option<[u8; 8]>,
    pub sampled: bool,
    pub trace_state: Option<String>,
}

fn hex_to<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

impl TraceContext {
    /// Parse `traceparent` (`00-<trace>-<parent>-<flags>`); `None` if malformed.
    pub fn parse(traceparent: &str, trace_state: Option<&str>) -> Option<TraceContext> {
        crate::logctx::trace_id_of(traceparent)?;
        let mut parts = traceparent.trim().split('-').skip(1);
        let trace_id = hex_to::<16>(parts.next()?)?;
        let parent = hex_to::<8>(parts.next()?)?;
        let flags = hex_to::<1>(parts.next()?)?;
        Some(TraceContext {
            trace_id,
            parent_span: (parent != [0; 8]).then_some(parent),
            sampled: flags[0] & 1 == 1,
            trace_state: trace_state.map(str::to_string),
        })
    }

    /// A new root trace.
    pub fn root() -> TraceContext {
        TraceContext {
            trace_id: random(),
            parent_span: None,
            sampled: true,
            trace_state: None,
        }
    }

    /// `traceparent` for a child of `span` (to propagate into upstream requests).
    pub fn child_traceparent(&self, span: [u8; 8]) -> String {
        format!(
            "00-{}-{}-{}",
            crate::util::hex(&self.trace_id),
            crate::util::hex(&span),
            if self.sampled { "01" } else { "00" }
        )
    }
}

/// Random ids (never all zero).
pub fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    while b == [0u8; N] {
        let _ = getrandom::getrandom(&mut b);
    }
    b
}

/// `traceparent` (and `tracestate`) for an outbound request made while serving the current
/// request — plugin HTTP calls, upstream MCP requests (headers and `_meta`) — so the trace
/// continues past Waygate: the parent is the plugin-call span running now (else the request
/// span). `None` when spans are not exported.
pub fn outbound() -> Option<(String, Option<String>)> {
    crate::logctx::with(|c| {
        let (trace, span) = c.span.as_ref()?;
        let parent = c.call_span.unwrap_or(*span);
        Some((trace.child_traceparent(parent), trace.trace_state.clone()))
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trip() {
        let t = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", Some("k=v")).unwrap();
        assert_eq!(crate::util::hex(&t.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            t.parent_span.map(|p| crate::util::hex(&p)),
            Some("00f067aa0ba902b7".into())
        );
        assert!(t.sampled);
        assert_eq!(
            t.child_traceparent([1, 2, 3, 4, 5, 6, 7, 8]),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0102030405060708-01"
        );
        assert!(
            TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", None)
                .is_some_and(|t| !t.sampled)
        );
        assert!(TraceContext::parse("garbage", None).is_none());
        assert_ne!(random::<8>(), [0u8; 8]);
    }
}
