//! The audit record of every tool call, resource read and prompt get. The engine produces
//! records; where they go (a batched, hash-chained table) is the embedding binary's choice,
//! behind [`AuditSink`], which must never block the request path.

use serde::Serialize;

/// One audited operation.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AuditRecord {
    /// Unix milliseconds when the operation started.
    pub ts_ms: u64,
    pub principal: Option<String>,
    pub client: Option<String>,
    pub transport: &'static str,
    pub version: &'static str,
    pub method: String,
    pub target: String,
    /// SHA-256 (hex) of the canonical JSON of the arguments; arguments themselves are not kept.
    pub args_sha256: String,
    /// `ok`, `tool_error`, `input_required`, `task` or `error`.
    pub outcome: &'static str,
    pub error: Option<String>,
    pub latency_us: u64,
    pub correlation_id: Option<String>,
}

pub trait AuditSink: Send + Sync {
    /// Hand a record over; must return at once (queue it, or count it as dropped).
    fn record(&self, r: AuditRecord);
}
