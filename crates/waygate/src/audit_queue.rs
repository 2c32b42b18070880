//! The audit sink of `serve`: a bounded queue the request path hands records to without
//! waiting, drained in batches into the hash-chained audit table. If the database is down
//! the batch is retried and the queue absorbs the backlog; when it is full, records are
//! dropped and counted (never blocking a call). On graceful shutdown the queue is drained
//! and flushed before the process exits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use waygate_core::audit::{AuditRecord, AuditSink};
use waygate_store::Store;

/// Records per stored row.
const SEGMENT: usize = 512;

pub struct AuditQueue {
    tx: mpsc::Sender<AuditRecord>,
    pub dropped: AtomicU64,
    pub written: Arc<AtomicU64>,
    closing: CancellationToken,
}

impl AuditSink for AuditQueue {
    fn record(&self, r: AuditRecord) {
        if self.closing.is_cancelled() || self.tx.try_send(r).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "audit queue full or closed; records dropped");
            }
        }
    }
}

impl AuditQueue {
    /// Start the writer; `capacity` records may wait for the database.
    pub fn start(store: Store, capacity: usize) -> (Arc<AuditQueue>, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<AuditRecord>(capacity.max(1));
        let written = Arc::new(AtomicU64::new(0));
        let q = Arc::new(AuditQueue {
            tx,
            dropped: AtomicU64::new(0),
            written: written.clone(),
            closing: CancellationToken::new(),
        });
        let closing = q.closing.clone();
        let task = tokio::spawn(async move {
            let mut buf = Vec::with_capacity(4096);
            loop {
                buf.clear();
                let n = tokio::select! {
                    n = async {
                        let n = rx.recv_many(&mut buf, 4096).await;
                        if n > 0 && n < 4096 {
                            // Linger briefly so a busy server writes few, large batches.
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            while buf.len() < 4096 {
                                match rx.try_recv() {
                                    Ok(r) => buf.push(r),
                                    Err(_) => break,
                                }
                            }
                        }
                        buf.len()
                    } => n,
                    _ = closing.cancelled() => {
                        while let Ok(r) = rx.try_recv() {
                            buf.push(r);
                        }
                        flush(&store, &buf, &written, Some(Duration::from_secs(10))).await;
                        return;
                    }
                };
                if n == 0 {
                    return;
                }
                flush(&store, &buf, &written, None).await;
            }
        });
        (q, task)
    }

    /// Stop accepting records and let the writer drain what is queued.
    pub fn close(&self) {
        self.closing.cancel();
    }
}

/// Write one batch, retrying while the database is unavailable (bounded by `limit`).
async fn flush(store: &Store, batch: &[AuditRecord], written: &AtomicU64, limit: Option<Duration>) {
    if batch.is_empty() {
        return;
    }
    // A row holds a segment of up to SEGMENT records as one JSON array: one chain hash and
    // one database row per segment instead of per record keeps the writer's share of the
    // serving core small. Any change to a record still breaks its segment's hash.
    let rows: Vec<(i64, String)> = batch
        .chunks(SEGMENT)
        .map(|c| (c[0].ts_ms as i64, serde_json::to_string(c).unwrap_or_default()))
        .collect();
    let start = std::time::Instant::now();
    let mut delay = Duration::from_millis(100);
    loop {
        match store.audit_append(&rows).await {
            Ok(()) => {
                written.fetch_add(batch.len() as u64, Ordering::Relaxed);
                return;
            }
            Err(e) => {
                if limit.is_some_and(|l| start.elapsed() > l) {
                    tracing::error!(error = %e, lost = batch.len(), "audit records could not be written before shutdown");
                    return;
                }
                tracing::warn!(error = %e, pending = batch.len(), "audit write failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Record an administrative change made by a CLI command straight into the chain (the CLI
/// has no queue). The principal is the operating-system user that ran it. A failure to
/// record is reported but does not undo the change.
pub async fn record_admin(store: &Store, action: &'static str, target: &str) {
    let user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into());
    let r = AuditRecord {
        ts_ms: waygate_core::util::unix_now_ms(),
        principal: Some(Arc::from(format!("cli:{user}"))),
        client: None,
        transport: "cli",
        version: "",
        method: action,
        target: target.to_string(),
        args_sha256: waygate_core::audit::digest_json(None),
        outcome: "ok",
        error: None,
        latency_us: 0,
        correlation_id: None,
        arguments: None,
    };
    let row = (r.ts_ms as i64, serde_json::to_string(&r).unwrap_or_default());
    for attempt in 0..5 {
        match store.audit_append(std::slice::from_ref(&row)).await {
            Ok(()) => return,
            Err(e) if attempt == 4 => eprintln!("warning: could not record {action} in the audit trail: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50 << attempt)).await,
        }
    }
}
