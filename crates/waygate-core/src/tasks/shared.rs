//! Tasks across replicas: each status change of a task is written through to the share,
//! and a replica asked about a task it does not run answers from the stored document and
//! signals the running replica for `tasks/cancel` and `tasks/update`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use waygate_protocol::{methods, ErrorObject};

use super::{is_terminal_status, lock, render, unknown, Task, TaskStore};
use crate::context::CallContext;
use crate::util::rfc3339_now;

/// How long a running task's row is kept before it must be written again (a replica that
/// died mid-task leaves a row that expires after this).
const RUNNING_KEEP: Duration = Duration::from_secs(24 * 3600);
/// How often `tasks/result` re-reads a task another replica runs.
const POLL: Duration = Duration::from_millis(250);

impl TaskStore {
    /// A function that writes a task through (nothing on one replica).
    pub(super) fn writer(&self) -> impl Fn(&Arc<Task>) + Send + Sync + 'static {
        let share = self.share.get().cloned();
        let ttl = self.ttl;
        move |t: &Arc<Task>| {
            let Some(share) = &share else { return };
            let (doc, seq, done) = t.versioned();
            let keep = if done { ttl } else { RUNNING_KEEP };
            tokio::spawn(share.save(&t.id, t.owner.as_deref(), &t.tool, doc, seq, keep.as_millis() as u64));
        }
    }

    /// Write task `id` through now and wait for the store (at creation: the client may ask
    /// another replica about it next).
    pub async fn flush(&self, id: &str) {
        let (Some(share), Some(t)) = (self.share.get(), lock(&self.tasks).get(id).cloned()) else {
            return;
        };
        let (doc, seq, done) = t.versioned();
        let keep = if done { self.ttl } else { RUNNING_KEEP };
        share
            .save(&t.id, t.owner.as_deref(), &t.tool, doc, seq, keep.as_millis() as u64)
            .await;
    }

    pub(super) fn cancel_task(&self, task: &Arc<Task>) {
        task.cancel.cancel();
        {
            let mut s = lock(&task.state);
            s.status = "cancelled";
            s.updated = rfc3339_now();
            s.finished = Some(Instant::now());
        }
        task.changed.notify_waiters();
        self.writer()(task);
    }

    /// Answers for an `input_required` task. Answers to keys that are not pending are
    /// ignored; answered keys leave `inputRequests` so `tasks/get` shows what is missing.
    pub(super) fn answer_task(&self, task: &Arc<Task>, answers: &Map<String, Value>) {
        let mut s = lock(&task.state);
        if s.status == "input_required" {
            for (k, v) in answers {
                if s.input_requests.as_mut().and_then(|r| r.remove(k)).is_some() {
                    s.answers.get_or_insert_with(Map::new).insert(k.clone(), v.clone());
                }
            }
            s.updated = rfc3339_now();
        }
        drop(s);
        task.changed.notify_waiters();
        self.writer()(task);
    }

    /// Whether this replica runs task `id` (asked when another replica signals it).
    pub fn runs(&self, id: &str) -> bool {
        lock(&self.tasks).contains_key(id)
    }

    /// A signal another replica forwarded (its caller's ownership was checked there).
    pub fn apply_signal(&self, id: &str, signal: &Value) {
        let Some(task) = lock(&self.tasks).get(id).cloned() else {
            return;
        };
        if signal.get("cancel").and_then(Value::as_bool) == Some(true) {
            if !task.is_terminal() {
                self.cancel_task(&task);
            }
        } else if let Some(answers) = signal.get("answers").and_then(Value::as_object) {
            self.answer_task(&task, answers);
        }
    }

    /// `tasks/list` adds the caller's tasks that other replicas run or ran.
    pub(super) async fn list_remote(
        &self,
        owner: Option<&str>,
        allowed: &(dyn Fn(&str) -> bool + Sync),
        tasks: &mut Vec<Value>,
    ) {
        let Some(share) = self.share.get() else { return };
        for (tool, doc) in share.list(owner).await {
            let id = doc.get("taskId").and_then(Value::as_str).unwrap_or_default();
            if !allowed(&tool) || self.runs(id) {
                continue;
            }
            tasks.push(render(&doc, self.ttl_ms(), false));
        }
    }

    /// A task this replica does not run: from the share, or unknown.
    pub(super) async fn handle_remote(
        &self,
        method: &str,
        id: &str,
        p: Option<&Map<String, Value>>,
        ctx: &CallContext,
        allowed: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<Value, ErrorObject> {
        let share = self.share.get().ok_or_else(|| unknown(id))?;
        let owner = ctx.owner();
        let (tool, mut doc) = share.load(id, owner).await.ok_or_else(|| unknown(id))?;
        if !allowed(&tool) {
            return Err(unknown(id));
        }
        let modern = ctx.is_modern();
        let status = |d: &Value| d.get("status").and_then(Value::as_str).unwrap_or("working").to_string();
        match method {
            methods::TASKS_GET => Ok(render(&doc, self.ttl_ms(), modern)),
            methods::TASKS_CANCEL => {
                if is_terminal_status(&status(&doc)) {
                    if modern {
                        return Ok(json!({}));
                    }
                    return Err(ErrorObject::invalid_params(format!(
                        "Task {id} is already in a terminal state"
                    )));
                }
                share.signal(id, json!({ "cancel": true })).await;
                doc["status"] = json!("cancelled");
                doc["lastUpdatedAt"] = json!(rfc3339_now());
                Ok(if modern {
                    json!({})
                } else {
                    render(&doc, self.ttl_ms(), false)
                })
            }
            methods::TASKS_UPDATE => {
                let answers = super::input_responses(p)?;
                if status(&doc) == "input_required" {
                    share.signal(id, json!({ "answers": answers })).await;
                }
                Ok(json!({}))
            }
            methods::TASKS_RESULT => loop {
                match status(&doc).as_str() {
                    "completed" => return Ok(doc.get("result").cloned().unwrap_or_else(|| json!({ "content": [] }))),
                    "failed" => {
                        return Err(doc
                            .get("error")
                            .cloned()
                            .and_then(|e| serde_json::from_value(e).ok())
                            .unwrap_or_else(|| ErrorObject::internal("task failed")))
                    }
                    "cancelled" => return Err(ErrorObject::internal(format!("task {id} was cancelled"))),
                    _ => {}
                }
                tokio::select! {
                    _ = tokio::time::sleep(POLL) => {}
                    _ = ctx.cancel.cancelled() => return Err(ErrorObject::new(waygate_protocol::codes::REQUEST_CANCELLED, "request cancelled")),
                }
                doc = match share.load(id, owner).await {
                    Some((_, d)) => d,
                    None => return Err(unknown(id)),
                };
            },
            other => Err(ErrorObject::method_not_found(other)),
        }
    }
}
