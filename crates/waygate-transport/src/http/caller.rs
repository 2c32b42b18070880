//! Who sent an HTTP request: the principal, correlation id, rate bucket, forwarded headers
//! and virtual server the router found, carried into every call's context — and the one
//! place a session id is looked up for this caller.

use std::sync::Arc;

use super::Shared;

/// Who sent an HTTP request, attached by the router for the request's context.
#[derive(Clone, Default)]
pub(crate) struct Caller {
    pub principal: Option<Arc<waygate_core::auth::Principal>>,
    pub correlation_id: Option<Arc<str>>,
    /// The caller's rate-limit bucket, when limits apply (batches take one token per item).
    pub rate_key: Option<Arc<str>>,
    /// Headers named by an upstream's `passthrough_headers`.
    pub forwarded: Option<waygate_core::context::Forwarded>,
    /// The virtual server addressed (`/servers/{name}/…`).
    pub view: Option<Arc<waygate_core::view::View>>,
}

impl Caller {
    /// The owner key of sessions and other per-caller state (see `CallContext::owner`).
    pub fn owner(&self) -> Option<&str> {
        self.principal.as_deref().map(|p| p.id.as_str())
    }

    pub fn apply(&self, ctx: &mut waygate_core::CallContext) {
        ctx.principal = self.principal.clone();
        ctx.correlation_id = self.correlation_id.clone();
        ctx.forwarded = self.forwarded.clone();
        ctx.view = self.view.clone();
    }

    pub fn view_name(&self) -> Option<&str> {
        self.view.as_deref().map(|v| v.name.as_str())
    }

    /// The session `sid` when this caller opened it on this endpoint; another principal,
    /// or the same one on another virtual server, gets `None` as for an unknown id. In a
    /// fleet a session opened on another replica is loaded from the store.
    pub async fn session(&self, shared: &Shared, sid: &str) -> Option<Arc<waygate_core::Session>> {
        shared
            .engine
            .find_session(sid, self.principal.as_ref(), self.view.as_ref())
            .await
    }
}
