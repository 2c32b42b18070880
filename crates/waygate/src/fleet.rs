//! Many replicas, one gateway (issue 16; design in docs/design/scaling.md). On PostgreSQL:
//!
//! - Streamable HTTP sessions are rows (`sessions`), cached by each replica that serves
//!   them; DELETE and changes of log level or subscriptions are announced on
//!   `waygate_session`.
//! - A client's answer to a server-to-client request that lands on a replica other than
//!   the one waiting for it goes through `pending_answers` and a `waygate_answer` NOTIFY.
//! - Tasks are rows (`tasks`) written through on every status change; `tasks/cancel` and
//!   `tasks/update` for a task another replica runs travel on `waygate_task`.
//! - Admin changes (keys, upstreams, virtual servers, plugins, pins) are announced on
//!   `waygate_changes`; every replica re-reads that kind from the store. A slow reconcile
//!   every 30 s (and after the listener reconnects) covers a lost notification.
//!
//! SQLite is one replica: nothing here starts.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use waygate_core::auth::ApiKeys;
use waygate_core::fleet::{replica_tag, SessionShare, SessionState, ShareFuture, SharedSession, TaskShare};
use waygate_core::Engine;
use waygate_store::{SessionRow, Store, TaskRow};

use crate::ops::ServeOps;

const SESSIONS: &str = "waygate_session";
const ANSWERS: &str = "waygate_answer";
const CHANGES: &str = "waygate_changes";
const TASKS: &str = "waygate_task";
/// How often shared rows are kept alive, expired ones swept and every kind reconciled.
const HOUSEKEEPING: Duration = Duration::from_secs(30);
/// An answer nobody took within this time is swept (calls wait at most a few minutes).
const ANSWER_TTL_MS: i64 = 10 * 60 * 1000;

/// What changed, for the replicas that must catch up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Keys,
    Upstreams,
    Servers,
    Plugins,
    Pins,
    /// A configuration applied through the admin API (policies, upstreams, limits …).
    Config,
}

impl Change {
    const ALL: [Change; 6] = [
        Change::Keys,
        Change::Upstreams,
        Change::Servers,
        Change::Plugins,
        Change::Pins,
        Change::Config,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Change::Keys => "keys",
            Change::Upstreams => "upstreams",
            Change::Servers => "servers",
            Change::Plugins => "plugins",
            Change::Pins => "pins",
            Change::Config => "config",
        }
    }

    fn parse(s: &str) -> Option<Change> {
        Change::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Tell every replica (PostgreSQL only) that `change` happened; failures are logged, the
/// periodic reconcile catches up.
pub async fn announce(store: &Store, change: Change) {
    let payload = format!("{}@{}", change.as_str(), replica_tag());
    if let Err(e) = store.notify(CHANGES, &payload).await {
        tracing::warn!(error = %e, change = change.as_str(), "could not announce a change to other replicas");
    }
}

/// Sessions shared through the store.
pub struct StoreShare {
    store: Store,
}

impl StoreShare {
    pub fn new(store: Store) -> Self {
        StoreShare { store }
    }
}

impl SessionShare for StoreShare {
    fn save(&self, s: SharedSession, announce: bool) -> ShareFuture<bool> {
        let store = self.store.clone();
        Box::pin(async move {
            let row = SessionRow {
                id: s.id.clone(),
                owner: s.owner,
                view: s.view,
                state: serde_json::to_string(&s.state).unwrap_or_default(),
            };
            if let Err(e) = store.session_put(&row).await {
                tracing::warn!(session = %s.id, error = %e, "cannot write the session to the store");
                return false;
            }
            if announce {
                let _ = store.notify(SESSIONS, &format!("update:{}", s.id)).await;
            }
            true
        })
    }

    fn load(&self, id: &str) -> ShareFuture<Option<SharedSession>> {
        let (store, id) = (self.store.clone(), id.to_string());
        Box::pin(async move {
            let row = match store.session_get(&id).await {
                Ok(r) => r?,
                Err(e) => {
                    tracing::warn!(session = %id, error = %e, "cannot read the session from the store");
                    return None;
                }
            };
            let state: SessionState = serde_json::from_str(&row.state).ok()?;
            Some(SharedSession {
                id: row.id,
                owner: row.owner,
                view: row.view,
                state,
            })
        })
    }

    fn end(&self, id: &str) -> ShareFuture<()> {
        let (store, id) = (self.store.clone(), id.to_string());
        Box::pin(async move {
            if let Err(e) = store.session_delete(&id).await {
                tracing::warn!(session = %id, error = %e, "cannot delete the session from the store");
            }
            let _ = store.notify(SESSIONS, &format!("end:{id}")).await;
        })
    }

    fn forward_answer(&self, session: &str, request: &str, outcome: Value) -> ShareFuture<()> {
        let (store, session, request) = (self.store.clone(), session.to_string(), request.to_string());
        Box::pin(async move {
            let r = async {
                store.answer_put(&session, &request, &outcome.to_string()).await?;
                store.notify(ANSWERS, &format!("{session}:{request}")).await
            };
            if let Err(e) = r.await {
                tracing::warn!(session = %session, request = %request, error = %e, "cannot forward the client's answer to the replica waiting for it");
            }
        })
    }
}

impl TaskShare for StoreShare {
    fn save(&self, id: &str, owner: Option<&str>, tool: &str, doc: Value, seq: u64, keep_ms: u64) -> ShareFuture<()> {
        let store = self.store.clone();
        let row = TaskRow {
            id: id.to_string(),
            owner: owner.map(str::to_string),
            tool: tool.to_string(),
            state: doc.to_string(),
        };
        Box::pin(async move {
            let expires = now_ms().saturating_add(keep_ms as i64);
            if let Err(e) = store.task_put(&row, seq as i64, expires).await {
                tracing::warn!(task = %row.id, error = %e, "cannot write the task to the store");
            }
        })
    }

    fn load(&self, id: &str, owner: Option<&str>) -> ShareFuture<Option<(String, Value)>> {
        let (store, id, owner) = (self.store.clone(), id.to_string(), owner.map(str::to_string));
        Box::pin(async move {
            match store.task_get(&id, owner.as_deref()).await {
                Ok(row) => row.and_then(|r| Some((r.tool, serde_json::from_str(&r.state).ok()?))),
                Err(e) => {
                    tracing::warn!(task = %id, error = %e, "cannot read the task from the store");
                    None
                }
            }
        })
    }

    fn list(&self, owner: Option<&str>) -> ShareFuture<Vec<(String, Value)>> {
        let (store, owner) = (self.store.clone(), owner.map(str::to_string));
        Box::pin(async move {
            let limit = waygate_core::tasks::MAX_TASKS_PER_OWNER as i64;
            match store.tasks_of(owner.as_deref(), limit).await {
                Ok(rows) => rows
                    .into_iter()
                    .filter_map(|r| Some((r.tool, serde_json::from_str(&r.state).ok()?)))
                    .collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list tasks from the store");
                    Vec::new()
                }
            }
        })
    }

    fn signal(&self, id: &str, signal: Value) -> ShareFuture<()> {
        let (store, id) = (self.store.clone(), id.to_string());
        Box::pin(async move {
            let key = waygate_core::util::random_hex(8);
            let r = async {
                store
                    .answer_put(&format!("task:{id}"), &key, &signal.to_string())
                    .await?;
                store.notify(TASKS, &format!("{id}:{key}")).await
            };
            if let Err(e) = r.await {
                tracing::warn!(task = %id, error = %e, "cannot signal the replica running the task");
            }
        })
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// What a replica needs to catch up with the others.
pub struct Fleet {
    pub store: Store,
    pub ops: Arc<ServeOps>,
    pub engine: Arc<Engine>,
    pub keys: Option<ApiKeys>,
    /// Its reloader applies a configuration another replica took through the admin API.
    pub backend: Arc<crate::admin::ServeBackend>,
}

impl Fleet {
    /// Listen for the other replicas and keep shared rows tidy (PostgreSQL only).
    pub fn start(self, stop: CancellationToken) {
        if !self.store.is_shared() {
            return;
        }
        let me = Arc::new(self);
        tokio::spawn(me.clone().listen(stop.clone()));
        tokio::spawn(me.housekeeping(stop));
    }

    async fn catch_up(&self, change: Change) {
        match change {
            Change::Keys => {
                if let Some(keys) = &self.keys {
                    crate::commands::keys::refresh(&self.store, keys).await;
                }
            }
            Change::Servers => {
                self.ops.runtime_servers.restore(&self.store).await;
                self.engine.set_views(self.ops.views());
            }
            Change::Upstreams => {
                if let Some(m) = self.ops.plugins.get() {
                    let cfg = self.ops.config.read().unwrap_or_else(|e| e.into_inner()).clone();
                    m.sync_upstreams(&cfg).await;
                }
            }
            Change::Plugins => {
                if let Some(m) = self.ops.plugins.get() {
                    m.sync_plugins().await;
                }
            }
            Change::Config => self.adopt_config().await,
            Change::Pins => {
                if let Some(m) = self.ops.plugins.get() {
                    if let Some(pins) = m.pins.get() {
                        if pins.reload(&self.store).await {
                            m.registry.republish().await;
                        }
                    }
                }
            }
        }
    }

    /// The newest configuration applied through the admin API on any replica becomes this
    /// replica's file and is applied like a local edit. A replica whose file cannot be
    /// written (a read-only ConfigMap mount: change the ConfigMap instead) keeps its own and
    /// says so. Only on a notice, not in the periodic reconcile, so a file edited locally
    /// later is never overwritten behind the operator's back.
    async fn adopt_config(&self) {
        let Some(r) = self.backend.reloader.get() else {
            return tracing::warn!(
                "a configuration was applied on another replica while this one was still starting; it keeps its own until the next change"
            );
        };
        let newest = match self.store.snapshots(1).await {
            Ok(v) => v.into_iter().next(),
            Err(e) => return tracing::warn!(error = %e, "cannot read the configuration applied on another replica"),
        };
        let Some(snap) = newest.filter(|s| s.source == "api") else {
            return;
        };
        if r.applied_text().await.as_deref() == Some(snap.content.as_str()) {
            return;
        }
        if let Err(e) = r.replace_file(&snap.content) {
            return tracing::warn!(
                path = %r.path.display(), error = %e,
                "a configuration applied on another replica cannot be written here; this replica keeps its own"
            );
        }
        match r.apply("fleet", None).await {
            Ok(restart) if restart.is_empty() => {
                tracing::info!(snapshot = snap.id, "applied the configuration set on another replica")
            }
            Ok(restart) => {
                tracing::warn!(snapshot = snap.id, restart_needed = ?restart, "applied the configuration set on another replica; some keys wait for a restart")
            }
            Err(e) => {
                tracing::warn!(snapshot = snap.id, error = %e, "the configuration set on another replica was refused here")
            }
        }
    }

    async fn on_notice(&self, channel: &str, payload: &str) {
        match channel {
            SESSIONS => match payload.split_once(':') {
                Some(("end", id)) => self.engine.session_ended_elsewhere(id),
                Some(("update", id)) => self.engine.session_updated_elsewhere(id).await,
                _ => {}
            },
            ANSWERS => {
                let Some((session, request)) = payload.split_once(':') else {
                    return;
                };
                if !self.engine.waits_for(session, request) {
                    return;
                }
                match self.store.answer_take(session, request).await {
                    Ok(Some(text)) => {
                        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                        self.engine.complete_forwarded(session, request, v);
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot take a forwarded answer"),
                }
            }
            TASKS => {
                let Some((id, key)) = payload.split_once(':') else {
                    return;
                };
                if !self.engine.tasks.runs(id) {
                    return;
                }
                match self.store.answer_take(&format!("task:{id}"), key).await {
                    Ok(Some(text)) => {
                        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                        self.engine.tasks.apply_signal(id, &v);
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot take a task signal"),
                }
            }
            CHANGES => {
                let (kind, from) = payload.split_once('@').unwrap_or((payload, ""));
                if from == replica_tag() {
                    return;
                }
                if let Some(c) = Change::parse(kind) {
                    tracing::debug!(change = kind, from, "change announced by another replica");
                    self.catch_up(c).await;
                }
            }
            _ => {}
        }
    }

    async fn listen(self: Arc<Self>, stop: CancellationToken) {
        let mut first = true;
        loop {
            let listener = tokio::select! {
                _ = stop.cancelled() => return,
                l = self.store.listen(&[SESSIONS, ANSWERS, CHANGES, TASKS]) => l,
            };
            let mut listener = match listener {
                Ok(Some(l)) => l,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for other replicas; retrying in 1 s");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            };
            if !first {
                // Notifications sent while we were away are lost: catch up on everything.
                tracing::info!("listening for other replicas again; reconciling");
                self.reconcile().await;
            }
            first = false;
            loop {
                let n = tokio::select! {
                    _ = stop.cancelled() => return,
                    n = listener.recv() => n,
                };
                match n {
                    Ok(n) => {
                        // Answers wake a waiting call: do not queue them behind a slow
                        // catch-up (an upstream restart can take seconds).
                        let me = self.clone();
                        tokio::spawn(async move { me.on_notice(&n.channel, &n.payload).await });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "lost the connection listening for other replicas");
                        break;
                    }
                }
            }
        }
    }

    /// Re-read every kind of shared state; the configuration only on its notice (see
    /// [`Fleet::adopt_config`]).
    async fn reconcile(&self) {
        for c in Change::ALL.into_iter().filter(|c| *c != Change::Config) {
            self.catch_up(c).await;
        }
    }

    async fn housekeeping(self: Arc<Self>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(HOUSEKEEPING);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let used = self.engine.sessions.used_within(HOUSEKEEPING.as_secs() + 5);
            if let Err(e) = self.store.sessions_touch(&used).await {
                tracing::warn!(error = %e, "cannot keep shared sessions alive");
            }
            let idle_ms = self.engine.cfg.session_idle.as_millis() as i64;
            match self.store.fleet_sweep(idle_ms, ANSWER_TTL_MS).await {
                Ok(n) if n > 0 => tracing::debug!(rows = n, "expired shared sessions, answers and tasks swept"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot sweep expired shared rows"),
            }
            self.reconcile().await;
        }
    }
}
