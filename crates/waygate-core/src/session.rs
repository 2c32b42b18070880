//! Legacy (handshake-era) sessions: what `initialize` negotiated, the standalone GET
//! stream, server→client requests awaiting answers, resource subscriptions.
//!
//! Sessions live in memory; idle ones expire because clients rarely send DELETE. With a
//! [`crate::fleet::SessionShare`] installed (PostgreSQL fleets), a Streamable HTTP session
//! is also written to the store so any replica can serve its next request: this map is
//! then that replica's cache.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use waygate_protocol::jsonrpc::encode_message;
use waygate_protocol::{methods, ErrorObject, Id, ProtocolVersion};

use crate::context::{OutTx, TransportKind};
use crate::events::Event;
use crate::util::{random_hex, unix_now};

type Pending = oneshot::Sender<Result<Value, ErrorObject>>;

/// Lock a mutex even if a panicking thread poisoned it: the guarded maps stay consistent
/// because every critical section is a single insert/remove.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct Session {
    pub id: String,
    /// The principal that opened it; `None` for unauthenticated transports. Only the
    /// owner may use, stream from, answer on or end the session.
    pub principal: Option<Arc<crate::auth::Principal>>,
    pub version: ProtocolVersion,
    pub transport: TransportKind,
    pub client_caps: Arc<Value>,
    pub client_info: Option<Arc<Value>>,
    /// Rank set by `logging/setLevel`; `u8::MAX` = never set (emit everything).
    log_level: AtomicU8,
    initialized: AtomicBool,
    last_seen: AtomicU64,
    stream: Mutex<Option<OutTx>>,
    pending: Mutex<HashMap<String, Pending>>,
    next_request: AtomicU64,
    subscriptions: Mutex<HashSet<String>>,
    inflight: Mutex<HashMap<Id, CancellationToken>>,
    pub closed: CancellationToken,
    /// The virtual server the session was opened on; it is used only there.
    pub view: Option<Arc<crate::view::View>>,
    /// What the view showed when its lists were last announced to this session.
    view_seen: Mutex<[Option<u64>; 3]>,
}

impl Session {
    pub fn new(
        version: ProtocolVersion,
        transport: TransportKind,
        client_caps: Value,
        client_info: Option<Value>,
        principal: Option<Arc<crate::auth::Principal>>,
    ) -> Self {
        Session {
            id: random_hex(16),
            principal,
            version,
            transport,
            client_caps: Arc::new(client_caps),
            client_info: client_info.map(Arc::new),
            log_level: AtomicU8::new(u8::MAX),
            initialized: AtomicBool::new(false),
            last_seen: AtomicU64::new(unix_now()),
            stream: Mutex::new(None),
            pending: Mutex::new(HashMap::new()),
            next_request: AtomicU64::new(1),
            subscriptions: Mutex::new(HashSet::new()),
            inflight: Mutex::new(HashMap::new()),
            closed: CancellationToken::new(),
            view: None,
            view_seen: Mutex::new([None; 3]),
        }
    }

    /// Open the session on a virtual server.
    pub fn with_view(mut self, view: Option<Arc<crate::view::View>>) -> Self {
        self.view = view;
        self
    }

    /// The virtual server's name, if the session is on one.
    pub fn view_name(&self) -> Option<&str> {
        self.view.as_deref().map(|v| v.name.as_str())
    }

    /// Record what the view shows now of one list (0 tools, 1 prompts, 2 resources);
    /// true when it changed since the last call.
    pub fn view_changed(&self, list: usize, now: u64) -> bool {
        let mut seen = lock(&self.view_seen);
        let changed = seen[list] != Some(now);
        seen[list] = Some(now);
        changed
    }

    /// What the view shows when the session opens.
    pub fn view_baseline(&self, f: crate::catalog::Fingerprint) {
        *lock(&self.view_seen) = [Some(f.tools), Some(f.prompts), Some(f.resources)];
    }

    /// The owner key (`Principal::id`), compared on every lookup.
    pub fn owner(&self) -> Option<&str> {
        self.principal.as_deref().map(|p| p.id.as_str())
    }

    pub fn touch(&self) {
        self.last_seen.store(unix_now(), Ordering::Relaxed);
    }

    pub fn mark_initialized(&self) {
        self.initialized.store(true, Ordering::Relaxed);
    }

    pub fn is_initialized(&self) -> bool {
        self.initialized.load(Ordering::Relaxed)
    }

    pub fn set_log_level(&self, rank: u8) {
        self.log_level.store(rank, Ordering::Relaxed);
    }

    /// Rank to hand to [`crate::CallContext::log_level`]: everything until the client
    /// chose a level, as the reference SDKs do.
    pub fn log_level(&self) -> Option<u8> {
        match self.log_level.load(Ordering::Relaxed) {
            u8::MAX => Some(0),
            r => Some(r),
        }
    }

    /// Attach the standalone stream (GET on the MCP endpoint, or the legacy SSE stream).
    /// A newer stream replaces an older one; the old one ends.
    pub fn attach_stream(&self, tx: OutTx) {
        *lock(&self.stream) = Some(tx);
    }

    pub fn has_stream(&self) -> bool {
        lock(&self.stream).as_ref().is_some_and(|s| !s.is_closed())
    }

    /// Send on the standalone stream; false when none is open.
    pub fn send_on_stream(&self, bytes: Vec<u8>) -> bool {
        match lock(&self.stream).as_ref() {
            Some(tx) => tx.send(bytes).is_ok(),
            None => false,
        }
    }

    pub fn subscribe(&self, uri: &str) {
        lock(&self.subscriptions).insert(uri.to_string());
    }

    pub fn unsubscribe(&self, uri: &str) {
        lock(&self.subscriptions).remove(uri);
    }

    pub fn is_subscribed(&self, uri: &str) -> bool {
        lock(&self.subscriptions).contains(uri)
    }

    pub fn track_inflight(&self, id: Id, token: CancellationToken) {
        lock(&self.inflight).insert(id, token);
    }

    pub fn finish_inflight(&self, id: &Id) {
        lock(&self.inflight).remove(id);
    }

    /// `notifications/cancelled` from the client: stop that request if it is running.
    pub fn cancel_inflight(&self, id: &Id) {
        if let Some(t) = lock(&self.inflight).remove(id) {
            t.cancel();
        }
    }

    /// Send a server→client request on `out` (or the standalone stream) and wait for the
    /// client's answer, the timeout, cancellation, or the session closing.
    pub async fn request(
        &self,
        out: Option<&OutTx>,
        method: &str,
        params: &Value,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<Value, ErrorObject> {
        let n = self.next_request.fetch_add(1, Ordering::Relaxed);
        // The replica's tag keeps ids unique when calls on two replicas ask the same client.
        let key = format!("waygate-{}-{n}", crate::fleet::replica_tag());
        let id = Id::Str(Arc::from(key.as_str()));
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(key.clone(), tx);
        let bytes = encode_message(Some(&id), method, params);
        let sent = match out {
            Some(o) => o.send(bytes).is_ok(),
            None => self.send_on_stream(bytes),
        };
        if !sent {
            lock(&self.pending).remove(&key);
            return Err(ErrorObject::internal(format!(
                "cannot send {method} to the client: no open stream on this session"
            )));
        }
        let result = tokio::select! {
            r = rx => r.unwrap_or_else(|_| Err(ErrorObject::internal("session closed while waiting for the client"))),
            _ = tokio::time::sleep(timeout) => Err(ErrorObject::internal(format!(
                "client did not answer {method} within {} s", timeout.as_secs()
            ))),
            _ = cancel.cancelled() => Err(ErrorObject::new(waygate_protocol::codes::REQUEST_CANCELLED, "request cancelled")),
            _ = self.closed.cancelled() => Err(ErrorObject::internal("session closed")),
        };
        lock(&self.pending).remove(&key);
        result
    }

    /// A JSON-RPC response from the client. False when nothing was waiting for it.
    pub fn deliver_response(&self, id: &Id, outcome: Result<Value, ErrorObject>) -> bool {
        let key = match id {
            Id::Str(s) => s.to_string(),
            Id::Num(n) => n.to_string(),
        };
        match lock(&self.pending).remove(&key) {
            Some(tx) => tx.send(outcome).is_ok(),
            None => false,
        }
    }

    /// Whether a call on this replica waits for the answer `key`.
    pub fn is_waiting_for(&self, key: &str) -> bool {
        lock(&self.pending).contains_key(key)
    }

    /// What travels to other replicas.
    pub fn shared_state(&self) -> crate::fleet::SessionState {
        let mut subs: Vec<String> = lock(&self.subscriptions).iter().cloned().collect();
        subs.sort_unstable();
        crate::fleet::SessionState {
            version: self.version.as_str().to_string(),
            caps: (*self.client_caps).clone(),
            info: self.client_info.as_deref().cloned(),
            level: self.log_level.load(Ordering::Relaxed),
            subs,
        }
    }

    /// A session opened on another replica, for `principal` on `view` (both checked by
    /// the caller against the stored row).
    pub fn restore(
        id: String,
        state: crate::fleet::SessionState,
        principal: Option<Arc<crate::auth::Principal>>,
        view: Option<Arc<crate::view::View>>,
    ) -> Option<Self> {
        let version = ProtocolVersion::parse(&state.version)?;
        let mut s = Session::new(
            version,
            TransportKind::StreamableHttp,
            state.caps,
            state.info,
            principal,
        )
        .with_view(view);
        s.id = id;
        s.apply_shared(state.level, state.subs);
        s.initialized.store(true, Ordering::Relaxed);
        Some(s)
    }

    /// Take the log level and subscriptions another replica set.
    pub fn apply_shared(&self, level: u8, subs: Vec<String>) {
        self.log_level.store(level, Ordering::Relaxed);
        *lock(&self.subscriptions) = subs.into_iter().collect();
    }

    fn idle_secs(&self, now: u64) -> u64 {
        now.saturating_sub(self.last_seen.load(Ordering::Relaxed))
    }

    fn close(&self) {
        self.closed.cancel();
        *lock(&self.stream) = None;
        for (_, t) in lock(&self.inflight).drain() {
            t.cancel();
        }
    }
}

/// All live sessions of this process.
pub struct SessionStore {
    sessions: RwLock<HashMap<String, Arc<Session>>>,
    idle: Duration,
    max: usize,
}

impl SessionStore {
    pub fn new(idle: Duration, max: usize) -> Self {
        SessionStore {
            sessions: RwLock::new(HashMap::new()),
            idle,
            max,
        }
    }

    /// Register a session; refuses when the store is full even after evicting idle ones.
    pub fn insert(&self, s: Arc<Session>) -> Result<(), ErrorObject> {
        let mut map = self.sessions.write().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.max {
            let now = unix_now();
            let idle = self.idle.as_secs();
            map.retain(|_, s| {
                let keep = s.idle_secs(now) < idle;
                if !keep {
                    s.close();
                }
                keep
            });
            if map.len() >= self.max {
                return Err(ErrorObject::internal(format!(
                    "session limit reached ({} open sessions); retry later",
                    self.max
                )));
            }
        }
        map.insert(s.id.clone(), s);
        Ok(())
    }

    /// The session `id` when `owner` opened it. Another principal gets `None`, exactly as
    /// for an id that never existed, so a leaked id is worth nothing without its key.
    pub fn get(&self, id: &str, owner: Option<&str>) -> Option<Arc<Session>> {
        let map = self.sessions.read().unwrap_or_else(|e| e.into_inner());
        let s = map.get(id).filter(|s| s.owner() == owner)?.clone();
        drop(map);
        s.touch();
        Some(s)
    }

    /// Cache a session loaded from the shared store; when a concurrent request cached it
    /// first, that one is returned so every request shares one pending-answer table.
    pub fn adopt(&self, s: Arc<Session>) -> Arc<Session> {
        let mut map = self.sessions.write().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = map.get(&s.id) {
            return existing.clone();
        }
        if map.len() < self.max {
            map.insert(s.id.clone(), s.clone());
        }
        s
    }

    /// The session `id` whoever owns it: only for messages between replicas, which were
    /// checked against the owner where they entered.
    pub fn get_internal(&self, id: &str) -> Option<Arc<Session>> {
        self.sessions.read().unwrap_or_else(|e| e.into_inner()).get(id).cloned()
    }

    /// Forget the cached copy of a session another replica ended.
    pub fn drop_local(&self, id: &str) {
        let s = self.sessions.write().unwrap_or_else(|e| e.into_inner()).remove(id);
        if let Some(s) = s {
            s.close();
        }
    }

    /// Ids of sessions used within the last `secs` seconds (their shared rows are kept
    /// alive with these).
    pub fn used_within(&self, secs: u64) -> Vec<String> {
        let now = unix_now();
        self.sessions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|s| s.idle_secs(now) < secs || s.has_stream())
            .map(|s| s.id.clone())
            .collect()
    }

    /// End the session `id` if `owner` opened it; false when there is none for this owner.
    pub fn remove(&self, id: &str, owner: Option<&str>) -> bool {
        let mut map = self.sessions.write().unwrap_or_else(|e| e.into_inner());
        if map.get(id).is_none_or(|s| s.owner() != owner) {
            return false;
        }
        let s = map.remove(id);
        drop(map);
        match s {
            Some(s) => {
                s.close();
                true
            }
            None => false,
        }
    }

    pub fn len(&self) -> usize {
        self.sessions.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Open sessions by (protocol revision, transport), for metrics.
    pub fn counts(&self) -> Vec<((&'static str, &'static str), usize)> {
        let mut by: std::collections::BTreeMap<(&'static str, &'static str), usize> = Default::default();
        for s in self.sessions.read().unwrap_or_else(|e| e.into_inner()).values() {
            *by.entry((s.version.as_str(), s.transport.as_str())).or_default() += 1;
        }
        by.into_iter().collect()
    }

    /// Drop sessions idle longer than the limit; returns how many ended.
    pub fn expire_idle(&self) -> usize {
        let now = unix_now();
        let idle = self.idle.as_secs();
        let mut map = self.sessions.write().unwrap_or_else(|e| e.into_inner());
        let before = map.len();
        map.retain(|_, s| {
            // A session with an open stream is in use even when it sends nothing.
            let keep = s.idle_secs(now) < idle || s.has_stream();
            if !keep {
                s.close();
            }
            keep
        });
        before - map.len()
    }

    /// Fan a catalog event out to every session's standalone stream while `deliver(session)`
    /// holds (a resource update also needs a subscription).
    pub fn broadcast(&self, event: &Event, deliver: &dyn Fn(&Session) -> bool) {
        let (method, params) = match event {
            Event::ToolsChanged => (methods::N_TOOLS_CHANGED, Value::Null),
            Event::PromptsChanged => (methods::N_PROMPTS_CHANGED, Value::Null),
            Event::ResourcesChanged => (methods::N_RESOURCES_CHANGED, Value::Null),
            Event::ResourceUpdated(uri) => (methods::N_RESOURCE_UPDATED, serde_json::json!({ "uri": uri })),
            Event::TaskUpdated(_) => return,
        };
        let bytes = encode_message(None, method, &params);
        let map = self.sessions.read().unwrap_or_else(|e| e.into_inner());
        for s in map.values() {
            if let Event::ResourceUpdated(uri) = event {
                if !s.is_subscribed(uri) {
                    continue;
                }
            }
            if deliver(s) {
                s.send_on_stream(bytes.clone());
            }
        }
    }

    pub fn close_all(&self) {
        let mut map = self.sessions.write().unwrap_or_else(|e| e.into_inner());
        for (_, s) in map.drain() {
            s.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Arc<Session> {
        Arc::new(Session::new(
            ProtocolVersion::V2025_11_25,
            TransportKind::StreamableHttp,
            serde_json::json!({}),
            None,
            Some(Arc::new(crate::auth::Principal::new(
                "alice".into(),
                "alice".into(),
                vec![],
                vec![],
                crate::auth::Method::ApiKey,
            ))),
        ))
    }

    #[test]
    fn a_session_answers_only_its_owner() {
        let store = SessionStore::new(Duration::from_secs(60), 10);
        let s = session();
        let id = s.id.clone();
        store.insert(s).unwrap();
        assert!(store.get(&id, Some("bob")).is_none());
        assert!(store.get(&id, None).is_none());
        assert!(!store.remove(&id, Some("bob")));
        assert!(store.get(&id, Some("alice")).is_some());
        assert!(store.remove(&id, Some("alice")));
        assert!(store.get(&id, Some("alice")).is_none());
    }

    #[tokio::test]
    async fn request_round_trip_through_stream() {
        let s = session();
        let (tx, mut rx) = crate::outq::channel();
        let s2 = s.clone();
        let waiter = tokio::spawn(async move {
            s2.request(
                Some(&tx),
                "roots/list",
                &Value::Null,
                Duration::from_secs(5),
                &CancellationToken::new(),
            )
            .await
        });
        let sent: Value = serde_json::from_slice(&rx.recv().await.unwrap()).unwrap();
        let id = Id::from_value(&sent["id"]).unwrap();
        assert!(s.deliver_response(&id, Ok(serde_json::json!({"roots": []}))));
        assert_eq!(waiter.await.unwrap().unwrap()["roots"], serde_json::json!([]));
    }

    #[test]
    fn store_limits_and_expiry() {
        let store = SessionStore::new(Duration::from_secs(0), 1);
        store.insert(session()).unwrap();
        // Idle limit 0: the first session is evicted to make room.
        store.insert(session()).unwrap();
        assert_eq!(store.len(), 1);
        assert_eq!(store.expire_idle(), 1);
        assert!(store.is_empty());
    }
}
