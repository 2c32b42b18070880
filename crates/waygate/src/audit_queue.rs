//! The audit sink of `serve`: the request path serializes each record into a shared,
//! bounded byte buffer (no per-record objects outlive the call, so the allocator does not
//! fragment under load), and a writer swaps the buffer out every 50 ms — or as soon as it
//! holds [`FLUSH_BYTES`], so a burst does not grow it (and the process's memory) with the
//! call rate — and stores it as hash-chained segments. If the database is down the segments are retried and the buffer
//! absorbs the backlog; when it is full, records are dropped and counted (never blocking a
//! call). On graceful shutdown the buffer is drained and flushed before the process exits.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use waygate_core::audit::{AuditRecord, AuditSink};
use waygate_store::Store;

/// Records per stored row.
const SEGMENT: usize = 512;
/// Serialized records that wake the writer before its tick (~1 500 records). Unbounded by
/// size, a 50 ms batch at 50 k calls/s is ~1 MB, held by two buffers, the segments and
/// SQLite's bind — ~8 MB of a busy process. Smaller batches cost a transaction each
/// (160 KiB measured −10 % throughput); this size keeps the memory at a third for the
/// price of ~30 flushes a second at full load instead of 20.
const FLUSH_BYTES: usize = 512 << 10;
/// A fresh buffer's size: a flush threshold plus what arrives while the writer wakes, so
/// it does not double (allocations this large are mapped on demand, so unused capacity
/// costs no memory).
const BUFFER_BYTES: usize = FLUSH_BYTES + FLUSH_BYTES / 2;
/// The largest idle buffer kept for the next batch.
const KEEP_BYTES: usize = 2 * BUFFER_BYTES;

/// Serialized records waiting for the writer: JSON objects back to back, with the end
/// offset and timestamp of each.
#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    records: Vec<(usize, i64)>,
}

impl Pending {
    fn sized() -> Pending {
        Pending {
            bytes: Vec::with_capacity(BUFFER_BYTES),
            records: Vec::new(),
        }
    }
}

pub struct AuditQueue {
    pending: Mutex<Pending>,
    capacity: usize,
    pub dropped: AtomicU64,
    pub written: Arc<AtomicU64>,
    closing: CancellationToken,
    /// Rung when the buffer reaches [`FLUSH_BYTES`].
    full: tokio::sync::Notify,
}

thread_local! {
    /// Per-thread scratch space for serializing one record outside the lock.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(512));
}

impl AuditSink for AuditQueue {
    fn record(&self, r: AuditRecord) {
        let ts = r.ts_ms as i64;
        let accepted = !self.closing.is_cancelled()
            && SCRATCH.with(|s| {
                let mut s = s.borrow_mut();
                s.clear();
                r.write_json(&mut s);
                let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                if p.records.len() >= self.capacity {
                    return false;
                }
                let before = p.bytes.len();
                p.bytes.extend_from_slice(&s);
                let end = p.bytes.len();
                p.records.push((end, ts));
                if before < FLUSH_BYTES && end >= FLUSH_BYTES {
                    self.full.notify_one();
                }
                true
            });
        if !accepted {
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
        let written = Arc::new(AtomicU64::new(0));
        let q = Arc::new(AuditQueue {
            pending: Mutex::new(Pending::sized()),
            capacity: capacity.max(1),
            dropped: AtomicU64::new(0),
            written: written.clone(),
            closing: CancellationToken::new(),
            full: tokio::sync::Notify::new(),
        });
        let me = q.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // Two buffers take turns, so under steady load the same memory is reused
            // rather than a new one grown (and fragmented) every 50 ms.
            let mut batch = Pending::sized();
            loop {
                let last = tokio::select! {
                    _ = tick.tick() => false,
                    _ = me.full.notified() => false,
                    _ = me.closing.cancelled() => true,
                };
                std::mem::swap(&mut *me.pending.lock().unwrap_or_else(|e| e.into_inner()), &mut batch);
                let limit = last.then_some(Duration::from_secs(10));
                flush(&store, &batch, &written, limit).await;
                // The next batch gets its full 50 ms (a size-triggered flush just ran).
                tick.reset();
                if last {
                    return;
                }
                batch.bytes.clear();
                batch.records.clear();
                // A burst's buffer is not kept for ever.
                if batch.bytes.capacity() > KEEP_BYTES {
                    batch = Pending::sized();
                }
            }
        });
        (q, task)
    }

    /// Records waiting for the database now.
    pub fn depth(&self) -> usize {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).records.len()
    }

    /// Stop accepting records and let the writer drain what is queued.
    pub fn close(&self) {
        self.closing.cancel();
    }
}

/// Write one batch as segments (JSON arrays of up to [`SEGMENT`] records), retrying while
/// the database is unavailable (bounded by `limit`). Records that arrive meanwhile wait in
/// the buffer.
async fn flush(store: &Store, batch: &Pending, written: &AtomicU64, limit: Option<Duration>) {
    if batch.records.is_empty() {
        return;
    }
    let mut rows: Vec<(i64, String)> = Vec::with_capacity(batch.records.len().div_ceil(SEGMENT));
    let mut start = 0usize;
    for chunk in batch.records.chunks(SEGMENT) {
        let end = chunk[chunk.len() - 1].0;
        let mut seg = String::with_capacity(end - start + chunk.len() + 2);
        seg.push('[');
        let mut from = start;
        for (i, (to, _)) in chunk.iter().enumerate() {
            if i > 0 {
                seg.push(',');
            }
            seg.push_str(std::str::from_utf8(&batch.bytes[from..*to]).unwrap_or("{}"));
            from = *to;
        }
        seg.push(']');
        rows.push((chunk[0].1, seg));
        start = end;
    }
    let started = std::time::Instant::now();
    let mut delay = Duration::from_millis(100);
    loop {
        match crate::audit_anchor::append(store, &rows).await {
            Ok(()) => {
                written.fetch_add(batch.records.len() as u64, Ordering::Relaxed);
                return;
            }
            Err(e) => {
                if limit.is_some_and(|l| started.elapsed() > l) {
                    tracing::error!(error = %e, lost = batch.records.len(), "audit records could not be written before shutdown");
                    return;
                }
                tracing::warn!(error = %e, pending = batch.records.len(), "audit write failed; retrying");
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
        match crate::audit_anchor::append(store, std::slice::from_ref(&row)).await {
            Ok(()) => return,
            Err(e) if attempt == 4 => eprintln!("warning: could not record {action} in the audit trail: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50 << attempt)).await,
        }
    }
}
