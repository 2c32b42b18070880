//! What ties a message the server sends on its own to the forwarded call it belongs to:
//! its questions for the caller (sampling, elicitation, roots), its log lines and its
//! progress. A call registers a [`CallLink`] under its request id for as long as it runs.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use serde_json::Value;
use tokio::sync::Notify;
use waygate_core::{CallContext, OutTx};
use waygate_protocol::jsonrpc::encode_message;

/// A server→client request the gateway relays to the caller of a call.
#[derive(Debug)]
pub struct Ask {
    /// The server's id for it; the answer goes back under this id.
    pub id: Value,
    pub method: String,
    pub params: Value,
}

/// Server requests that only a client can answer; the gateway relays them to the caller.
pub const RELAYED: [&str; 3] = ["sampling/createMessage", "elicitation/create", "roots/list"];

/// Which call a message from the server belongs to, as far as the wire can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Related {
    /// It came on the SSE stream answering this request (Streamable HTTP).
    Call(i64),
    /// The wire does not say (stdio, legacy SSE): the only call in flight, if there is one.
    Infer,
    /// The server's standalone stream: unrelated to any call by definition.
    Unrelated,
}

/// Questions a call has not taken yet, at most this many (more are refused).
const WAITING_ASKS: usize = 8;

/// The server's questions during one call, waiting for the call to take them. A queue in
/// the link rather than a channel: every forwarded call has a link, few get a question,
/// and a channel is two allocations per call for nothing.
#[derive(Default)]
struct Asks {
    waiting: Mutex<VecDeque<Ask>>,
    arrived: Notify,
    /// The call is over: questions are given back (the server gets an error at once).
    closed: AtomicBool,
}

/// The caller's side of a forwarded call, replaced when a held call is resumed by a new
/// request (whose stream and progress token are the ones to use from then on).
#[derive(Default)]
pub struct CallLink {
    /// `None`: the call takes no questions.
    asks: Option<Asks>,
    /// The caller's stream and its minimum log rank (`notifications/message`).
    log: Mutex<Option<(OutTx, u8)>>,
    /// The caller's progress token and stream.
    progress: Mutex<Option<(Value, OutTx)>>,
    /// The call waits for its caller's answer; the server is waiting on us, so a message
    /// the wire does not place is not this call's.
    held: AtomicBool,
    /// The caller declared `roots`: a `roots/list` the wire does not place may be its.
    roots: AtomicBool,
    /// The principal behind the call (`CallContext::owner`).
    owner: Mutex<Option<String>>,
}

impl CallLink {
    /// A link that relays server requests to its call when `takes_asks`.
    pub fn new(takes_asks: bool) -> CallLink {
        CallLink {
            asks: takes_asks.then(Asks::default),
            ..CallLink::default()
        }
    }

    /// The next question the server asked during this call; pending while there is
    /// none (for ever when the call takes none).
    pub(crate) async fn next_ask(&self) -> Ask {
        let Some(asks) = &self.asks else {
            return std::future::pending().await;
        };
        loop {
            if let Some(ask) = asks.waiting.lock().unwrap_or_else(|e| e.into_inner()).pop_front() {
                return ask;
            }
            // A question queued since the check left a permit: no wake-up is lost.
            asks.arrived.notified().await;
        }
    }

    /// The call is over: questions not taken are dropped, later ones given back.
    pub(crate) fn close_asks(&self) {
        if let Some(asks) = &self.asks {
            asks.closed.store(true, Ordering::Release);
            asks.waiting.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
    }

    /// Where this leg of the call reports: the caller's stream, log level and progress token,
    /// and whether its caller can list roots.
    pub fn attach(&self, out: Option<&OutTx>, log_level: Option<u8>, progress_token: Option<&Value>, roots: bool) {
        self.roots.store(roots, Ordering::Relaxed);
        *self.log.lock().unwrap_or_else(|e| e.into_inner()) = out.cloned().zip(log_level);
        *self.progress.lock().unwrap_or_else(|e| e.into_inner()) = progress_token.cloned().zip(out.cloned());
    }

    /// [`CallLink::attach`] to the caller of `ctx`.
    pub fn attach_to(&self, ctx: &CallContext) {
        self.set_owner(ctx.owner());
        self.attach(
            ctx.out.as_ref(),
            ctx.log_level,
            ctx.progress_token.as_ref(),
            ctx.has_capability("roots"),
        );
    }

    /// The call is over for its caller: no more questions, log lines or progress reach
    /// it, and it no longer counts as waiting for an answer — so while its request is
    /// still open, a message the wire does not place may be its and goes to no one.
    pub(crate) fn end(&self) {
        self.close_asks();
        self.held.store(false, Ordering::Relaxed);
        *self.log.lock().unwrap_or_else(|e| e.into_inner()) = None;
        *self.progress.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    pub(crate) fn set_owner(&self, owner: Option<&str>) {
        *self.owner.lock().unwrap_or_else(|e| e.into_inner()) = owner.map(str::to_string);
    }

    pub(crate) fn owner(&self) -> Option<String> {
        self.owner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn set_held(&self, held: bool) {
        self.held.store(held, Ordering::Relaxed);
    }

    pub(crate) fn is_held(&self) -> bool {
        self.held.load(Ordering::Relaxed)
    }

    /// Whether a question the wire does not place may be taken as this call's. A server
    /// asks `roots/list` for its session (after `initialized`, on `roots/list_changed`)
    /// rather than for a call, so it goes to a call only when its caller can answer it;
    /// sampling and elicitation are asked within a call.
    pub(crate) fn may_infer(&self, method: &str) -> bool {
        method != "roots/list" || self.roots.load(Ordering::Relaxed)
    }

    pub(crate) fn wants_progress(&self) -> bool {
        self.progress.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    /// Relay a progress notification under the caller's own token.
    pub(crate) fn progress(&self, method: &str, params: &Value) {
        let route = self.progress.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some((theirs, out)) = route {
            let mut p = params.clone();
            p["progressToken"] = theirs;
            let _ = out.send(encode_message(None, method, &p));
        }
    }

    /// Relay a log line when the caller asked for its level; false when nobody wants it.
    pub(crate) fn log(&self, params: &Value) -> bool {
        let route = self.log.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some((out, min)) = route else { return false };
        let rank = params
            .get("level")
            .and_then(Value::as_str)
            .and_then(waygate_protocol::meta::log_level_rank);
        if rank.is_some_and(|r| r >= min) {
            let _ = out.send(encode_message(None, "notifications/message", params));
        }
        true
    }

    /// Hand a server request to the call; gives it back when the call takes none.
    pub(crate) fn ask(&self, ask: Ask) -> Result<(), Ask> {
        let Some(asks) = &self.asks else { return Err(ask) };
        let mut waiting = asks.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if asks.closed.load(Ordering::Acquire) || waiting.len() >= WAITING_ASKS {
            return Err(ask);
        }
        waiting.push_back(ask);
        drop(waiting);
        asks.arrived.notify_one();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;
    use std::time::Duration;

    fn ask(n: u64) -> Ask {
        Ask {
            id: json!(n),
            method: "elicitation/create".into(),
            params: json!({}),
        }
    }

    #[tokio::test]
    async fn a_question_wakes_the_call_waiting_for_it() {
        let link = Arc::new(CallLink::new(true));
        let waiting = tokio::spawn({
            let link = link.clone();
            async move { link.next_ask().await.id }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(link.ask(ask(1)).is_ok());
        let id = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(id, json!(1));
    }

    #[tokio::test]
    async fn questions_beyond_the_bound_or_after_the_call_are_given_back() {
        let link = CallLink::new(true);
        for n in 0..WAITING_ASKS as u64 {
            assert!(link.ask(ask(n)).is_ok());
        }
        assert_eq!(link.ask(ask(99)).unwrap_err().id, json!(99), "over the bound");
        // Taken in the order they came.
        assert_eq!(link.next_ask().await.id, json!(0));
        assert!(link.ask(ask(100)).is_ok(), "one taken, room for one");
        link.close_asks();
        assert_eq!(link.ask(ask(101)).unwrap_err().id, json!(101), "the call is over");
        // A call that takes no questions gives every one back.
        assert!(CallLink::new(false).ask(ask(7)).is_err());
    }
}
