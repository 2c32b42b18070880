//! The queue between the engine and one client stream (an SSE response, a standalone GET
//! stream, a legacy SSE connection, stdout), bounded in bytes.
//!
//! Messages are produced without waiting (notifications from anywhere must never block a
//! handler), so the bound is a policy, not back-pressure: when a client stops reading and
//! its queue holds more than the limit, the stream is ended. Further sends fail, the
//! request behind it is cancelled, the receiver yields end-of-stream, and the client can
//! reconnect. A stalled reader costs at most the limit, however much is sent to it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Default bytes queued per stream before it is ended (`[http] max_stream_buffer_bytes`).
pub const DEFAULT_LIMIT: usize = 16 * 1024 * 1024;

static LIMIT: AtomicUsize = AtomicUsize::new(DEFAULT_LIMIT);
static OVERFLOWS: AtomicUsize = AtomicUsize::new(0);

/// Set the per-stream limit for streams opened from now on.
pub fn set_limit(bytes: usize) {
    LIMIT.store(bytes.max(64 * 1024), Ordering::Relaxed);
}

/// Streams ended because their client stopped reading (for `/metrics`).
pub fn overflows() -> usize {
    OVERFLOWS.load(Ordering::Relaxed)
}

struct Shared {
    queued: AtomicUsize,
    limit: usize,
    overflowed: CancellationToken,
}

/// The sending side; cheap to clone.
#[derive(Clone)]
pub struct OutTx {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    shared: Arc<Shared>,
}

/// The receiving side, read by the transport that writes to the client.
pub struct OutRx {
    rx: mpsc::UnboundedReceiver<Vec<u8>>,
    shared: Arc<Shared>,
}

/// The message was not queued: the client is gone or stopped reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

/// A new stream queue with the configured limit.
pub fn channel() -> (OutTx, OutRx) {
    channel_with(LIMIT.load(Ordering::Relaxed))
}

pub fn channel_with(limit: usize) -> (OutTx, OutRx) {
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        queued: AtomicUsize::new(0),
        limit,
        overflowed: CancellationToken::new(),
    });
    (
        OutTx {
            tx,
            shared: shared.clone(),
        },
        OutRx { rx, shared },
    )
}

impl OutTx {
    pub fn send(&self, msg: Vec<u8>) -> Result<(), Closed> {
        if self.shared.overflowed.is_cancelled() {
            return Err(Closed);
        }
        let len = msg.len();
        let before = self.shared.queued.fetch_add(len, Ordering::AcqRel);
        // One message larger than the limit still goes to a reader that keeps up.
        if before > 0 && before + len > self.shared.limit {
            self.shared.queued.fetch_sub(len, Ordering::AcqRel);
            OVERFLOWS.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                queued = before,
                limit = self.shared.limit,
                "client stopped reading its stream; ending it (http.max_stream_buffer_bytes)"
            );
            self.shared.overflowed.cancel();
            // Wake a receiver parked in `recv` so it sees the end.
            let _ = self.tx.send(Vec::new());
            return Err(Closed);
        }
        self.tx.send(msg).map_err(|_| {
            self.shared.queued.fetch_sub(len, Ordering::AcqRel);
            Closed
        })
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed() || self.shared.overflowed.is_cancelled()
    }

    /// Resolves when the receiver is gone or the stream was ended for overflow.
    pub async fn closed(&self) {
        tokio::select! {
            _ = self.tx.closed() => {}
            _ = self.shared.overflowed.cancelled() => {}
        }
    }
}

impl OutRx {
    fn taken(&self, m: Option<Vec<u8>>) -> Option<Vec<u8>> {
        if self.shared.overflowed.is_cancelled() {
            return None;
        }
        let m = m?;
        self.shared.queued.fetch_sub(m.len(), Ordering::AcqRel);
        Some(m)
    }

    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Vec<u8>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(m) => Poll::Ready(self.taken(m)),
            Poll::Pending if self.shared.overflowed.is_cancelled() => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    pub async fn recv(&mut self) -> Option<Vec<u8>> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// A message that is already queued, if any (`None` also after an overflow).
    pub fn try_recv(&mut self) -> Option<Vec<u8>> {
        let m = self.rx.try_recv().ok();
        m.and_then(|m| self.taken(Some(m)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reader_that_keeps_up_gets_everything() {
        let (tx, mut rx) = channel_with(1000);
        for i in 0..100u8 {
            tx.send(vec![i; 100]).unwrap();
            assert_eq!(rx.recv().await.unwrap()[0], i);
        }
        // A single message above the limit passes when nothing else is queued.
        tx.send(vec![0; 5000]).unwrap();
        assert_eq!(rx.recv().await.unwrap().len(), 5000);
    }

    #[tokio::test]
    async fn a_stalled_reader_ends_the_stream_at_the_limit() {
        let (tx, mut rx) = channel_with(1000);
        let mut sent = 0;
        while tx.send(vec![1; 100]).is_ok() {
            sent += 1;
            assert!(sent < 1000, "never refused");
        }
        assert_eq!(sent, 10);
        assert!(tx.is_closed());
        tokio::time::timeout(std::time::Duration::from_secs(1), tx.closed())
            .await
            .unwrap();
        assert_eq!(rx.recv().await, None, "the stream ends");
        assert!(tx.send(vec![1]).is_err());
    }
}
