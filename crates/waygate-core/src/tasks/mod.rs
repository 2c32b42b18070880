//! Long-running tool calls as tasks: the `io.modelcontextprotocol/tasks` extension for
//! 2026-07-28 and the experimental core tasks of 2025-11-25.
//!
//! A task runs the same plugin handler in the background with a detached context. When
//! the handler needs input, the task waits in `input_required` until `tasks/update`
//! supplies the answers. Finished tasks stay readable for the configured TTL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use waygate_protocol::{methods, ErrorObject, ProtocolVersion};

use crate::context::CallContext;
use crate::events::{Event, Events};
use crate::plugin::{Invocation, Outcome, Plugin, PluginError};

/// The first round of a task's handler, owning what it borrows.
pub type TaskFuture = std::pin::Pin<
    Box<dyn std::future::Future<Output = (Result<Outcome, PluginError>, Invocation, CallContext)> + Send>,
>;
use crate::util::{error_result, random_hex, rfc3339_now};

mod shared;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct State {
    status: &'static str,
    message: Option<String>,
    updated: String,
    result: Option<Value>,
    error: Option<ErrorObject>,
    input_requests: Option<Map<String, Value>>,
    answers: Option<Map<String, Value>>,
    finished: Option<Instant>,
}

struct Task {
    id: String,
    /// The principal that started it; nobody else can list, read, answer or cancel it.
    owner: Option<Arc<str>>,
    /// The tool it runs: its result is released only while the owner may still call it.
    tool: Box<str>,
    created: String,
    state: Mutex<State>,
    cancel: CancellationToken,
    changed: Notify,
    /// Numbers the writes to the shared store (see `TaskShare::save`).
    seq: std::sync::atomic::AtomicU64,
}

impl Task {
    fn is_terminal(&self) -> bool {
        matches!(lock(&self.state).status, "completed" | "failed" | "cancelled")
    }

    fn json(&self, ttl_ms: u64, modern: bool) -> Value {
        render(&self.doc(), ttl_ms, modern)
    }

    /// The task's state in the 2026-07-28 shape without the server's timing fields: what
    /// other replicas read from the store, and what [`render`] turns into either era's view.
    fn doc(&self) -> Value {
        self.doc_of(&lock(&self.state))
    }

    /// The document, its write sequence number and whether it is final, read under one lock:
    /// a later state always carries a higher number, so the store keeps the newest whatever
    /// order the writes land in.
    fn versioned(&self) -> (Value, u64, bool) {
        let s = lock(&self.state);
        let seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        (self.doc_of(&s), seq, is_terminal_status(s.status))
    }

    fn doc_of(&self, s: &State) -> Value {
        let mut t = json!({
            "taskId": self.id,
            "status": s.status,
            "createdAt": self.created,
            "lastUpdatedAt": s.updated,
        });
        if let Some(m) = &s.message {
            t["statusMessage"] = json!(m);
        }
        if let Some(r) = &s.input_requests {
            t["inputRequests"] = Value::Object(r.clone());
        }
        if let Some(r) = &s.result {
            t["result"] = r.clone();
        }
        if let Some(e) = &s.error {
            t["error"] = json!(e);
        }
        t
    }
}

/// A task document as `tasks/get` shows it in the revision `modern` says.
fn render(doc: &Value, ttl_ms: u64, modern: bool) -> Value {
    let mut t = doc.clone();
    if modern {
        t["ttlMs"] = json!(ttl_ms);
        t["pollIntervalMs"] = json!(200);
    } else if let Some(o) = t.as_object_mut() {
        o.insert("ttl".into(), json!(ttl_ms));
        o.insert("pollInterval".into(), json!(200));
        for k in ["inputRequests", "result", "error"] {
            o.remove(k);
        }
    }
    t
}

fn is_terminal_status(status: &str) -> bool {
    matches!(status, "completed" | "failed" | "cancelled")
}

fn unknown(id: &str) -> ErrorObject {
    ErrorObject::invalid_params(format!("Unknown task: {id}")).with_data(json!({ "taskId": id }))
}

/// Tasks one principal may hold at once (results are kept until their TTL).
pub const MAX_TASKS_PER_OWNER: usize = 1000;

pub struct TaskStore {
    tasks: Mutex<HashMap<String, Arc<Task>>>,
    ttl: Duration,
    /// Other replicas (PostgreSQL fleets); unset on one replica.
    share: std::sync::OnceLock<Arc<dyn crate::fleet::TaskShare>>,
}

impl TaskStore {
    pub fn new(ttl: Duration) -> Self {
        TaskStore {
            tasks: Mutex::new(HashMap::new()),
            ttl,
            share: std::sync::OnceLock::new(),
        }
    }

    /// Share tasks with other replicas (set once, before serving).
    pub fn set_share(&self, share: Arc<dyn crate::fleet::TaskShare>) {
        let _ = self.share.set(share);
    }

    fn ttl_ms(&self) -> u64 {
        self.ttl.as_millis() as u64
    }

    /// The task `id` if `owner` started it; another principal's task is "not found".
    fn get(&self, id: &str, owner: Option<&str>) -> Option<Arc<Task>> {
        lock(&self.tasks)
            .get(id)
            .filter(|t| t.owner.as_deref() == owner)
            .cloned()
    }

    /// Refuse a new task when `owner` already holds [`MAX_TASKS_PER_OWNER`] (running or
    /// finished and not yet expired): one caller cannot fill the server's memory with them.
    pub fn ensure_room(&self, owner: Option<&str>) -> Result<(), ErrorObject> {
        let held = lock(&self.tasks)
            .values()
            .filter(|t| t.owner.as_deref() == owner)
            .count();
        if held >= MAX_TASKS_PER_OWNER {
            return Err(ErrorObject::internal(format!(
                "too many tasks: this caller already holds {held} (the limit); wait for some to finish and expire"
            )));
        }
        Ok(())
    }

    /// The full task state as `notifications/tasks` carries it, for its owner only.
    pub fn snapshot(&self, id: &str, owner: Option<&str>) -> Option<Value> {
        self.get(id, owner).map(|t| t.json(self.ttl_ms(), true))
    }

    /// Drop finished tasks older than the TTL.
    pub fn expire(&self) {
        let ttl = self.ttl;
        lock(&self.tasks).retain(|_, t| lock(&t.state).finished.is_none_or(|f| f.elapsed() < ttl));
    }

    /// Register a task around `first` (the handler's first round, possibly already
    /// polled once) and drive it to a terminal state in the background. Returns the task
    /// object as the revision of `version` shapes it.
    #[allow(clippy::too_many_arguments)]
    pub fn spawn(
        &self,
        owner: Option<Arc<str>>,
        tool: &str,
        events: Events,
        plugin: Arc<dyn Plugin>,
        first: TaskFuture,
        cancel: CancellationToken,
        version: ProtocolVersion,
    ) -> Value {
        let now = rfc3339_now();
        let task = Arc::new(Task {
            id: random_hex(16),
            owner,
            tool: Box::from(tool),
            created: now.clone(),
            state: Mutex::new(State {
                status: "working",
                message: None,
                updated: now,
                result: None,
                error: None,
                input_requests: None,
                answers: None,
                finished: None,
            }),
            cancel,
            changed: Notify::new(),
            seq: Default::default(),
        });
        lock(&self.tasks).insert(task.id.clone(), task.clone());
        let view = task.json(self.ttl_ms(), version.is_modern());
        let t = task.clone();
        let writer = self.writer();
        writer(&task);
        tokio::spawn(async move {
            let set = |status: &'static str, f: &dyn Fn(&mut State)| {
                let mut s = lock(&t.state);
                if matches!(s.status, "completed" | "failed" | "cancelled") {
                    return;
                }
                s.status = status;
                s.updated = rfc3339_now();
                f(&mut s);
                if matches!(status, "completed" | "failed" | "cancelled") {
                    s.finished = Some(Instant::now());
                }
                drop(s);
                t.changed.notify_waiters();
                events.emit(Event::TaskUpdated(t.id.clone()));
                writer(&t);
            };
            let (mut outcome, mut invocation, bg) = tokio::select! {
                r = first => r,
                _ = t.cancel.cancelled() => { set("cancelled", &|_| {}); return; }
            };
            loop {
                match outcome {
                    Ok(Outcome::Complete(v)) => {
                        set("completed", &|s| s.result = Some(v.clone()));
                        return;
                    }
                    Ok(Outcome::Forward(raw)) => {
                        let v = Outcome::forwarded_value(&raw);
                        set("completed", &|s| s.result = Some(v.clone()));
                        return;
                    }
                    Err(PluginError::ToolFailed(m)) | Err(PluginError::InvalidParams(m)) => {
                        set("completed", &|s| s.result = Some(error_result(m.clone())));
                        return;
                    }
                    Err(e) => {
                        let err = crate::engine::map_plugin_error(e, bg.version);
                        set("failed", &|s| {
                            s.message = Some(err.message.clone());
                            s.error = Some(err.clone());
                        });
                        return;
                    }
                    Ok(Outcome::InputRequired { requests, state }) => {
                        set("input_required", &|s| {
                            s.input_requests = Some(requests.clone());
                            s.answers = None;
                        });
                        // Wait until every pending request has an answer (answers may
                        // arrive in several tasks/update calls).
                        let answers = loop {
                            let notified = t.changed.notified();
                            {
                                let mut s = lock(&t.state);
                                if s.input_requests.as_ref().is_none_or(Map::is_empty) {
                                    break s.answers.take().unwrap_or_default();
                                }
                            }
                            tokio::select! {
                                _ = notified => {}
                                _ = t.cancel.cancelled() => { set("cancelled", &|_| {}); return; }
                            }
                        };
                        set("working", &|s| s.input_requests = None);
                        invocation.input_responses = Some(answers);
                        invocation.state = state;
                    }
                }
                outcome = tokio::select! {
                    o = plugin.execute(&invocation, &bg) => o,
                    _ = t.cancel.cancelled() => { set("cancelled", &|_| {}); return; }
                };
            }
        });
        view
    }

    /// `tasks/get`, `tasks/update`, `tasks/cancel` (both eras), `tasks/result` and
    /// `tasks/list` (2025-11-25 only). A caller sees only its own tasks, and only those
    /// whose tool `allowed` still lets it call (a revoked permission hides the result).
    pub async fn handle(
        &self,
        method: &str,
        p: Option<&Map<String, Value>>,
        ctx: &CallContext,
        allowed: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<Value, ErrorObject> {
        let modern = ctx.is_modern();
        if !modern && ctx.version < ProtocolVersion::V2025_11_25 {
            return Err(ErrorObject::method_not_found(method));
        }
        if modern && matches!(method, methods::TASKS_RESULT | methods::TASKS_LIST) {
            return Err(ErrorObject::method_not_found(method));
        }
        if !modern && method == methods::TASKS_UPDATE {
            return Err(ErrorObject::method_not_found(method));
        }
        if modern {
            ctx.require_tasks_extension()?;
        }
        if method == methods::TASKS_LIST {
            let owner = ctx.owner();
            let mut tasks: Vec<Value> = lock(&self.tasks)
                .values()
                .filter(|t| t.owner.as_deref() == owner && allowed(&t.tool))
                .map(|t| t.json(self.ttl_ms(), false))
                .collect();
            self.list_remote(owner, allowed, &mut tasks).await;
            return Ok(json!({ "tasks": tasks }));
        }
        let id = p
            .and_then(|p| p.get("taskId"))
            .and_then(Value::as_str)
            .ok_or_else(|| ErrorObject::invalid_params("Invalid params: missing \"taskId\""))?;
        let task = match self.get(id, ctx.owner()) {
            Some(t) => t,
            None => return self.handle_remote(method, id, p, ctx, allowed).await,
        };
        if !allowed(&task.tool) {
            return Err(unknown(id));
        }
        match method {
            methods::TASKS_GET => Ok(task.json(self.ttl_ms(), modern)),
            methods::TASKS_CANCEL => {
                if task.is_terminal() {
                    if modern {
                        return Ok(json!({}));
                    }
                    return Err(ErrorObject::invalid_params(format!(
                        "Task {id} is already in a terminal state"
                    )));
                }
                self.cancel_task(&task);
                Ok(if modern {
                    json!({})
                } else {
                    task.json(self.ttl_ms(), false)
                })
            }
            methods::TASKS_UPDATE => {
                let answers = input_responses(p)?;
                self.answer_task(&task, answers);
                Ok(json!({}))
            }
            methods::TASKS_RESULT => loop {
                let notified = task.changed.notified();
                {
                    let s = lock(&task.state);
                    match s.status {
                        "completed" => return Ok(s.result.clone().unwrap_or_else(|| json!({ "content": [] }))),
                        "failed" => {
                            return Err(s.error.clone().unwrap_or_else(|| ErrorObject::internal("task failed")))
                        }
                        "cancelled" => return Err(ErrorObject::internal(format!("task {id} was cancelled"))),
                        _ => {}
                    }
                }
                tokio::select! {
                    _ = notified => {}
                    _ = ctx.cancel.cancelled() => return Err(ErrorObject::new(waygate_protocol::codes::REQUEST_CANCELLED, "request cancelled")),
                }
            },
            other => Err(ErrorObject::method_not_found(other)),
        }
    }
}

/// The answers of a `tasks/update`.
fn input_responses(p: Option<&Map<String, Value>>) -> Result<&Map<String, Value>, ErrorObject> {
    p.and_then(|p| p.get("inputResponses"))
        .and_then(Value::as_object)
        .ok_or_else(|| ErrorObject::invalid_params("Invalid params: tasks/update requires \"inputResponses\""))
}
