//! The lifetime of one forwarded request: when it gives up, and how its place in the
//! routing tables is taken back.

use std::time::Duration;

use serde_json::json;

use crate::client::{Client, Wire};

impl Client {
    /// Tell the server request `id` is off (bounded: a wedged server must not hold the caller).
    pub(crate) async fn cancel_request(&self, id: i64, reason: &str) {
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            self.notify("notifications/cancelled", json!({"requestId": id, "reason": reason})),
        )
        .await;
    }
}

/// When a forwarded request gives up; pushed forward while the call waits for its caller
/// (a question relayed to a person may take minutes the upstream's timeout is not for).
pub struct Deadline(std::sync::Mutex<tokio::time::Instant>);

impl Deadline {
    pub fn new(after: Duration) -> Deadline {
        Deadline(std::sync::Mutex::new(tokio::time::Instant::now() + after))
    }
    pub fn set(&self, after: Duration) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = tokio::time::Instant::now() + after;
    }
    pub(crate) fn get(&self) -> tokio::time::Instant {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A request's place in the routing tables, taken back however the request ends —
/// including when its future is dropped (a caller's task cancelled, a timeout above it):
/// a stale entry would keep the stdio rule "the only call in flight gets the server's
/// question" from ever holding again. A stdio server is also told the request is off.
pub(crate) struct Registered<'a> {
    pub client: &'a Client,
    pub id: i64,
    /// The server answered it.
    pub answered: bool,
    /// The server was already told the request is off.
    pub told: bool,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        match &self.client.wire {
            // Wires that do not say which request a server message is about remember the
            // request until the server answers it (see `inbound::Routed`).
            Wire::Stdio(_) | Wire::Legacy(_) if !self.answered => self.client.inbound.abandon(self.id),
            _ => self.client.inbound.forget(self.id),
        }
        if !self.answered && !self.told {
            if let Wire::Stdio(s) = &self.client.wire {
                let _ = s.send(&json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                    "params": {"requestId": self.id, "reason": "cancelled by the client"}}));
            }
        }
    }
}
