//! A forwarded call that the upstream interrupts with a question only the caller can answer
//! (sampling, elicitation, roots).
//!
//! The upstream's request becomes an [`Outcome::InputRequired`], exactly what a native
//! handler returns, so the engine does the rest for either era: a session-era caller is
//! asked on its stream and the handler runs again with the answer; a stateless 2026-07-28
//! caller gets `input_required` with sealed `requestState` (bound to it and to the
//! arguments) and retries with `inputResponses`. In between, the upstream call is *held*:
//! its request stays open and is polled by a task of its own, the question's id waits for
//! its answer, and the call's deadline is pushed back by the input timeout. Resuming takes
//! the held call out of the table (once), answers the upstream, and waits again.
//!
//! Held calls live in this process: a retry that reaches another replica, comes after the
//! input timeout, or repeats an answer already given finds nothing and is refused by name.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use waygate_core::{BoxFuture, CallContext, Outcome, PluginError};

use crate::client::{Caller, Client, Deadline};
use crate::error::UpstreamError;
use crate::inbound::Answer;
use crate::link::{Ask, CallLink};

/// At most this many calls of one upstream wait for their callers at a time…
const MAX_HELD: usize = 1024;

/// …and at most this many of them for one principal, so one caller that walks away from
/// its questions cannot take the relay from everyone else until the input timeout.
const MAX_HELD_PER_OWNER: usize = 64;

/// How long after a server's question further questions still join the same round.
const GATHER: Duration = Duration::from_millis(10);

/// A forwarded call in progress.
pub(crate) struct Running {
    pub client: Arc<Client>,
    pub result: BoxFuture<'static, Answer>,
    pub link: Arc<CallLink>,
    pub cancel: CancellationToken,
    pub deadline: Arc<Deadline>,
    /// The result future runs in a task of its own (it must make progress while held),
    /// which cancels this token when the upstream request ends.
    done: Option<CancellationToken>,
}

impl Drop for Running {
    /// The call is over: a question the server sends after this is refused at once
    /// rather than left for a call that will never take it, and its log lines go nowhere.
    fn drop(&mut self) {
        self.link.end();
    }
}

/// What a call did next.
pub(crate) enum Step {
    Done(Answer),
    Asked(Vec<Ask>),
}

impl Running {
    pub(crate) fn new(
        client: Arc<Client>,
        result: BoxFuture<'static, Answer>,
        link: Arc<CallLink>,
        cancel: CancellationToken,
        deadline: Arc<Deadline>,
    ) -> Running {
        Running {
            client,
            result,
            link,
            cancel,
            deadline,
            done: None,
        }
    }

    /// Wait for the result or the server's next question(s); the caller's cancellation
    /// cancels the upstream request.
    pub(crate) async fn step(&mut self, caller: &CancellationToken) -> Step {
        tokio::select! {
            biased;
            r = &mut self.result => Step::Done(r),
            first = self.link.next_ask() => {
                // Questions a server sends together (one MRTR round turned into requests)
                // arrive a moment apart: they are asked together too.
                let mut asks = vec![first];
                while let Ok(a) = tokio::time::timeout(GATHER, self.link.next_ask()).await {
                    asks.push(a);
                }
                Step::Asked(asks)
            }
            _ = caller.cancelled() => {
                self.cancel.cancel();
                Step::Done((&mut self.result).await)
            }
        }
    }

    /// Like [`Running::step`], but questions whose keys the caller already answered — a
    /// stateless client may send `inputResponses` with its first request — are answered
    /// from `given`, once, and the call goes on.
    pub(crate) async fn step_with(
        &mut self,
        caller: &CancellationToken,
        mut given: Option<&Map<String, Value>>,
    ) -> Step {
        loop {
            match self.step(caller).await {
                Step::Asked(asks) => {
                    let keys = keys_of(&asks);
                    let answered = |a: &&Map<String, Value>| {
                        keys.iter()
                            .zip(&asks)
                            .all(|((k, _), ask)| a.get(k).is_some_and(|v| fits(&ask.method, v)))
                    };
                    let Some(answers) = given.filter(answered) else {
                        return Step::Asked(asks);
                    };
                    for (key, id) in &keys {
                        let _ = self.client.respond(id, Ok(answers[key].clone())).await;
                    }
                    given = None;
                }
                done => return done,
            }
        }
    }

    /// Keep the upstream request moving without anyone polling this value; the token
    /// tells when it ended.
    fn detach(&mut self) -> CancellationToken {
        if let Some(done) = &self.done {
            return done.clone();
        }
        let done = CancellationToken::new();
        self.done = Some(done.clone());
        let (tx, rx) = oneshot::channel();
        let fut = std::mem::replace(&mut self.result, Box::pin(std::future::pending()));
        let ended = done.clone();
        tokio::spawn(async move {
            let _ = tx.send(fut.await);
            ended.cancel();
        });
        self.result = Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err(UpstreamError::Closed("the held call ended".into())))
        });
        done
    }

    /// Give up on the call: the upstream's questions are refused and its request cancelled
    /// (the cancellation is sent by the request itself, which keeps running to do so).
    async fn abandon(mut self, asks: &[(String, Value)], why: &str) {
        // Before the server hears the refusal (it may ask again at once): this call no
        // longer takes anything, nor passes as one that waits.
        self.link.end();
        for (_, id) in asks {
            let _ = self.client.respond(id, Err((-32603, why.to_string()))).await;
        }
        self.cancel.cancel();
        self.detach();
    }
}

/// How a held call's wait for its caller ends without the caller: the upstream request
/// ended (`done`), or the call was given up with `why` (its input timeout).
struct Ending {
    done: CancellationToken,
    why: Mutex<Option<String>>,
}

/// The key each question gets in `inputRequests`: the one a Waygate upstream names in
/// `_meta` (its handler's own key) when usable, else one made up.
fn keys_of(asked: &[Ask]) -> Vec<(String, Value)> {
    let mut keys: Vec<(String, Value)> = Vec::with_capacity(asked.len());
    for (n, a) in asked.iter().enumerate() {
        let named = a
            .params
            .pointer("/_meta")
            .and_then(|m| m.get(waygate_protocol::meta::INPUT_KEY))
            .and_then(Value::as_str)
            .filter(|k| !k.is_empty() && k.len() <= 256 && !keys.iter().any(|(have, _)| have == k));
        let key = named.map_or_else(|| format!("upstream-{n}"), str::to_string);
        keys.push((key, a.id.clone()));
    }
    keys
}

/// Whether `answer` has the shape of a result of `method` (an answer that does not is
/// not passed on: the question is asked instead).
fn fits(method: &str, answer: &Value) -> bool {
    let has = |k: &str| answer.get(k).is_some();
    match method {
        "elicitation/create" => {
            let action = answer.get("action").and_then(Value::as_str);
            matches!(action, Some("accept" | "decline" | "cancel"))
                && answer.get("content").is_none_or(|c| c.is_object() || c.is_null())
        }
        "sampling/createMessage" => has("role") && has("content"),
        "roots/list" => answer.get("roots").is_some_and(Value::is_array),
        _ => answer.is_object(),
    }
}

/// The client capability a relayed request needs.
fn capability_of(method: &str) -> &'static str {
    match method {
        "sampling/createMessage" => "sampling",
        "elicitation/create" => "elicitation",
        _ => "roots",
    }
}

struct HeldCall {
    run: Running,
    /// (key in `inputRequests`, the server's request id) per question.
    asks: Vec<(String, Value)>,
    owner: Option<String>,
    ending: Arc<Ending>,
    /// The `inputRequests` the caller got, asked again when a retry leaves one unanswered.
    requests: Map<String, Value>,
}

/// What a retry of a held call leads to.
pub(crate) enum Resumed {
    /// Answered: the call goes on.
    Run(Running),
    /// An answer is missing: the same questions again, the call still held.
    AskAgain(Outcome),
}

/// The calls of one upstream that wait for their callers.
#[derive(Default)]
pub(crate) struct Held {
    calls: Mutex<HashMap<String, HeldCall>>,
}

impl Held {
    /// Turn the server's questions into input requests and hold the call; refused with the
    /// missing capability when the caller did not declare what the question needs.
    pub(crate) async fn hold(
        self: &Arc<Self>,
        mut run: Running,
        asked: Vec<Ask>,
        ctx: &CallContext,
        timeout: Duration,
    ) -> Result<Outcome, PluginError> {
        let ids = keys_of(&asked);
        if let Some(missing) = asked
            .iter()
            .map(|a| capability_of(&a.method))
            .find(|c| !ctx.has_capability(c))
        {
            run.abandon(&ids, &format!("the calling client did not declare {missing}"))
                .await;
            return Err(PluginError::MissingCapability(json!({ missing: {} })));
        }
        let mut requests = Map::new();
        for ((key, _), ask) in ids.iter().zip(asked) {
            requests.insert(key.clone(), json!({"method": ask.method, "params": ask.params}));
        }
        let owner = ctx.owner();
        let (all, own) = {
            let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
            // Without authentication every caller is the same nobody: only the total counts.
            let own = match owner {
                Some(_) => calls.values().filter(|h| h.owner.as_deref() == owner).count(),
                None => 0,
            };
            (calls.len(), own)
        };
        if all >= MAX_HELD || own >= MAX_HELD_PER_OWNER {
            run.abandon(&ids, "the gateway holds too many calls waiting for input")
                .await;
            return Err(PluginError::ToolFailed(if all >= MAX_HELD {
                format!("too many calls to this upstream are waiting for their callers' input (limit {MAX_HELD}); try again later")
            } else {
                format!("too many of your calls to this upstream are waiting for your input (limit {MAX_HELD_PER_OWNER}); answer or abandon them first")
            }));
        }
        run.deadline.set(timeout + Duration::from_secs(5));
        run.link.set_held(true);
        let ending = Arc::new(Ending {
            done: run.detach(),
            why: Mutex::new(None),
        });
        let id: String = waygate_core::spans::random::<16>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).insert(
            id.clone(),
            HeldCall {
                run,
                asks: ids,
                owner: ctx.owner().map(str::to_string),
                ending,
                requests: requests.clone(),
            },
        );
        let (table, key) = (Arc::downgrade(self), id.clone());
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            let Some(held) = table.upgrade() else { return };
            let gone = held.calls.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
            if let Some(h) = gone {
                let why = format!("the caller did not answer within {} s", timeout.as_secs());
                *h.ending.why.lock().unwrap_or_else(|e| e.into_inner()) = Some(why.clone());
                h.ending.done.cancel();
                h.run.abandon(&h.asks, &why).await;
            }
        });
        Ok(Outcome::InputRequired {
            requests,
            state: Some(json!({ "held": id })),
        })
    }

    /// Take a held call back with the caller's answers (once, and only for its owner),
    /// answer the upstream, and hand the call back to be driven on.
    ///
    /// A stateless caller's retry that leaves a question unanswered is asked it again (the
    /// spec's advice for missing answers) and one whose answer is not a result of that
    /// question is refused by name; either way the call stays held for a corrected retry.
    /// Once the upstream request has ended, the call is taken whatever the answers.
    pub(crate) async fn resume(
        &self,
        id: &str,
        answers: Option<&Map<String, Value>>,
        ctx: &CallContext,
        timeout: Duration,
    ) -> Result<Resumed, PluginError> {
        let taken = {
            let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
            match calls.get(id) {
                Some(h) if h.owner.as_deref() == ctx.owner() => {
                    if ctx.is_modern() && !h.ending.done.is_cancelled() {
                        for (key, req) in &h.requests {
                            let method = req.get("method").and_then(Value::as_str).unwrap_or_default();
                            match answers.and_then(|a| a.get(key)) {
                                None => {
                                    return Ok(Resumed::AskAgain(Outcome::InputRequired {
                                        requests: h.requests.clone(),
                                        state: Some(json!({ "held": id })),
                                    }))
                                }
                                Some(a) if !fits(method, a) => {
                                    return Err(PluginError::InvalidParams(format!(
                                        "inputResponses.{key} is not a result of {method}"
                                    )))
                                }
                                Some(_) => {}
                            }
                        }
                    }
                    calls.remove(id)
                }
                _ => None,
            }
        };
        let Some(h) = taken else {
            return Err(PluginError::InvalidParams(
                "requestState names an upstream call that is no longer waiting for input (answered already, past its input timeout, or held by another replica); call again".into(),
            ));
        };
        h.run.link.set_held(false);
        for (key, ask) in &h.asks {
            let method = h
                .requests
                .get(key)
                .and_then(|r| r.get("method"))
                .and_then(Value::as_str);
            let answer = match answers.and_then(|a| a.get(key)) {
                Some(a) if fits(method.unwrap_or_default(), a) => Ok(a.clone()),
                Some(_) => Err((
                    -32602,
                    format!(
                        "the client's answer is not a result of {}",
                        method.unwrap_or("the request")
                    ),
                )),
                None => Err((-32603, format!("the caller sent no answer for {key}"))),
            };
            let _ = h.run.client.respond(ask, answer).await;
        }
        h.run.link.attach_to(ctx);
        h.run.deadline.set(timeout);
        Ok(Resumed::Run(h.run))
    }

    /// The caller will not answer: the upstream's questions are refused with `why` and its
    /// request cancelled now (only the call's owner can do this).
    pub(crate) async fn release(&self, id: &str, owner: Option<&str>, why: &str) {
        let taken = {
            let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
            match calls.get(id) {
                Some(h) if h.owner.as_deref() == owner => calls.remove(id),
                _ => None,
            }
        };
        if let Some(h) = taken {
            h.run.abandon(&h.asks, why).await;
        }
    }

    /// Resolves when held call `id` stops waiting for its caller on its own: `None` when
    /// its upstream request ended (resuming it gives the outcome), `Some(why)` when it was
    /// given up (see [`Plugin::held_ended`](waygate_core::Plugin::held_ended)).
    pub(crate) async fn ended(&self, id: &str) -> Option<String> {
        let ending = self
            .calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .map(|h| h.ending.clone());
        let Some(ending) = ending else {
            return Some("the upstream call no longer waits for an answer".into());
        };
        ending.done.cancelled().await;
        let why = ending.why.lock().unwrap_or_else(|e| e.into_inner()).clone();
        why
    }

    /// Every held call ends (the upstream is going away).
    pub(crate) async fn clear(&self) {
        let all: Vec<HeldCall> = self
            .calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, h)| h)
            .collect();
        for h in all {
            let why = "the upstream is being stopped";
            *h.ending.why.lock().unwrap_or_else(|e| e.into_inner()) = Some(why.into());
            h.ending.done.cancel();
            h.run.abandon(&h.asks, why).await;
        }
    }
}

/// What a stateless upstream hears of the caller: the capabilities the gateway can relay
/// for it, and the log level it asked for.
pub(crate) fn caller_of(ctx: &CallContext) -> Caller {
    let mut caps = Map::new();
    for c in ["sampling", "elicitation", "roots"] {
        if let Some(v) = ctx.client_caps.get(c).filter(|v| !v.is_null()) {
            caps.insert(c.into(), v.clone());
        }
    }
    Caller {
        capabilities: Value::Object(caps),
        log_level: ctx
            .log_level
            .and_then(|r| waygate_protocol::meta::LOG_LEVELS.get(usize::from(r)).copied()),
    }
}
