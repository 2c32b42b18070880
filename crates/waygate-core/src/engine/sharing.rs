//! Sessions across replicas: the engine's side of [`crate::fleet::SessionShare`].

use std::sync::Arc;

use serde_json::Value;
use waygate_protocol::{ErrorObject, Id};

use super::Engine;
use crate::auth::Principal;
use crate::context::TransportKind;
use crate::fleet::{SessionShare, SharedSession};
use crate::session::Session;
use crate::view::View;

impl Engine {
    /// Share Streamable HTTP sessions through `share` (set once, before serving).
    pub fn set_session_share(&self, share: Arc<dyn SessionShare>) {
        let _ = self.share.set(share);
    }

    pub fn shares_sessions(&self) -> bool {
        self.share.get().is_some()
    }

    fn shared_row(s: &Session) -> SharedSession {
        SharedSession {
            id: s.id.clone(),
            owner: s.owner().map(str::to_string),
            view: s.view_name().map(str::to_string),
            state: s.shared_state(),
        }
    }

    /// Write a new session through before `initialize` is answered, so the client's next
    /// request finds it on any replica. False when the store refused it.
    pub async fn publish_session(&self, s: &Session) -> bool {
        match self.share.get() {
            Some(share) if s.transport == TransportKind::StreamableHttp => share.save(Self::shared_row(s), false).await,
            _ => true,
        }
    }

    /// Log level or subscriptions changed: write through (in the background) and tell the
    /// replicas that cache the session.
    pub(crate) fn session_changed(&self, s: &Session) {
        if let Some(share) = self.share.get() {
            if s.transport == TransportKind::StreamableHttp {
                tokio::spawn(share.save(Self::shared_row(s), true));
            }
        }
    }

    /// The session `id` for `principal` on `view`: from memory, else (fleets) from the
    /// store. Another principal or another virtual server gets `None`, as for an id that
    /// never existed.
    pub async fn find_session(
        &self,
        id: &str,
        principal: Option<&Arc<Principal>>,
        view: Option<&Arc<View>>,
    ) -> Option<Arc<Session>> {
        let owner = principal.map(|p| p.id.as_str());
        let view_name = view.map(|v| v.name.as_str());
        if let Some(s) = self.sessions.get(id, owner) {
            return (s.view_name() == view_name).then_some(s);
        }
        let share = self.share.get()?;
        // Ids are 32 hex characters; anything else is not worth a query.
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let row = share.load(id).await?;
        if row.owner.as_deref() != owner || row.view.as_deref() != view_name {
            return None;
        }
        let s = Session::restore(row.id, row.state, principal.cloned(), view.cloned())?;
        if let Some(v) = &s.view {
            s.view_baseline(v.fingerprint(&self.registry.catalog()));
        }
        tracing::debug!(session = %id, "session opened on another replica; now cached here");
        Some(self.sessions.adopt(Arc::new(s)))
    }

    /// DELETE: end the session here and everywhere. False when `owner` has no such session.
    pub async fn end_session(&self, id: &str, owner: Option<&str>) -> bool {
        if !self.sessions.remove(id, owner) {
            return false;
        }
        if let Some(share) = self.share.get() {
            share.end(id).await;
        }
        true
    }

    /// A client's answer to a server-to-client request: to the call waiting here, else
    /// (fleets) to the replica whose call asked.
    pub async fn deliver_answer(&self, s: &Session, id: &Id, outcome: Result<Value, ErrorObject>) {
        let key = match id {
            Id::Str(k) => k.to_string(),
            Id::Num(n) => n.to_string(),
        };
        if s.is_waiting_for(&key) {
            s.deliver_response(id, outcome);
            return;
        }
        if let Some(share) = self.share.get() {
            share
                .forward_answer(&s.id, &key, crate::fleet::outcome_to_json(&outcome))
                .await;
        }
    }

    /// Whether a call here waits for answer `request` of session `session` (asked by the
    /// share when another replica forwarded one).
    pub fn waits_for(&self, session: &str, request: &str) -> bool {
        self.sessions
            .get_internal(session)
            .is_some_and(|s| s.is_waiting_for(request))
    }

    /// Complete a waiting call with an answer another replica received.
    pub fn complete_forwarded(&self, session: &str, request: &str, outcome: Value) {
        let Some(s) = self.sessions.get_internal(session) else {
            return;
        };
        if let Some(o) = crate::fleet::outcome_from_json(outcome) {
            s.deliver_response(&Id::Str(Arc::from(request)), o);
        }
    }

    /// Another replica ended a session: drop the cached copy (its stream ends).
    pub fn session_ended_elsewhere(&self, id: &str) {
        self.sessions.drop_local(id);
    }

    /// Another replica changed a session's level or subscriptions: refresh the cached copy.
    pub async fn session_updated_elsewhere(&self, id: &str) {
        let (Some(local), Some(share)) = (self.sessions.get_internal(id), self.share.get()) else {
            return;
        };
        if let Some(row) = share.load(id).await {
            local.apply_shared(row.state.level, row.state.subs);
        }
    }
}
