//! Resource subscriptions across the hop: when a caller subscribes to an upstream's
//! resource, the gateway subscribes on the upstream (once per URI, again after every
//! reconnect), and the upstream's `notifications/resources/updated` becomes a catalog event
//! under the URI callers know, which the engine fans out to every subscribed caller its
//! policy lets see the resource.
//!
//! A stateless (2026-07-28) upstream has no `resources/subscribe`: the gateway keeps one
//! `subscriptions/listen` open with every watched URI as `resourceSubscriptions`, reopened
//! with the new set when a URI is added and after every reconnect.
//!
//! The gateway stays subscribed upstream until the connection ends (callers' own
//! subscriptions come and go; the fan-out is filtered per caller), and watches at most
//! [`MAX_WATCHED`] URIs per upstream, since a template can match unboundedly many.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{json, Value};
use waygate_core::Event;

use crate::client::{Client, RequestOpts, Wire};
use crate::envelope::envelope;
use crate::upstream::Shared;

/// URIs one upstream is asked to watch, at most.
const MAX_WATCHED: usize = 4096;

impl Shared {
    /// A caller subscribed to `uri` (the upstream's own URI).
    pub(crate) async fn watch(&self, uri: String) {
        {
            let mut w = self.watched.lock().unwrap_or_else(|e| e.into_inner());
            if w.contains(&uri) {
                return;
            }
            if w.len() >= MAX_WATCHED {
                tracing::warn!(upstream = %self.spec.name, %uri, limit = MAX_WATCHED, "too many watched resources; this one is not subscribed upstream");
                return;
            }
            w.insert(uri.clone());
        }
        if let Some(c) = self.current() {
            if c.is_modern() {
                c.listen_resources(&self.watched_uris()).await;
            } else {
                self.subscribe_on(&c, &uri).await;
            }
        }
    }

    fn watched_uris(&self) -> Vec<String> {
        let mut uris: Vec<String> = self
            .watched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect();
        uris.sort();
        uris
    }

    /// Subscribe again to everything watched (a new connection has none).
    pub(crate) async fn resubscribe(&self, c: &Client) {
        let uris = self.watched_uris();
        if c.is_modern() {
            if !uris.is_empty() {
                c.listen_resources(&uris).await;
            }
            return;
        }
        for uri in uris {
            self.subscribe_on(c, &uri).await;
        }
    }

    async fn subscribe_on(&self, c: &Client, uri: &str) {
        // Only a server that offers subscriptions (a stateless server's updates come on a
        // `subscriptions/listen` stream instead: `Client::listen_resources`).
        if c.capabilities.pointer("/resources/subscribe") != Some(&Value::Bool(true)) {
            return;
        }
        let opts = RequestOpts {
            timeout: Some(Duration::from_secs(10)),
            ..RequestOpts::default()
        };
        if let Err(e) = c.request("resources/subscribe", json!({ "uri": uri }), opts).await {
            tracing::warn!(upstream = %self.spec.name, uri, error = %e, "subscribing upstream failed");
        }
    }

    /// The server says `uri` changed: tell the catalog's listeners, under the URI they
    /// subscribed to (namespaced when the upstream's resources are prefixed).
    pub(crate) fn resource_updated(&self, uri: &str) {
        let Some(events) = self.events.get() else { return };
        let exposed = self
            .registry
            .upgrade()
            .and_then(|r| {
                r.catalog()
                    .resource_entries()
                    .find(|(_, route)| route.plugin.name() == self.spec.name && route.local_name == uri)
                    .and_then(|(def, _)| def.get("uri").and_then(Value::as_str).map(str::to_string))
            })
            .unwrap_or_else(|| uri.to_string());
        events.emit(Event::ResourceUpdated(exposed));
    }
}

impl Client {
    /// Stateless era: listen for updates of exactly `uris` (`subscriptions/listen` with
    /// `resourceSubscriptions`), replacing the previous such subscription — a listen's
    /// filter is fixed when it opens. Updates in the moment between the two are missed;
    /// they are hints, and the next one comes through.
    pub(crate) async fn listen_resources(&self, uris: &[String]) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut params = json!({ "notifications": { "resourceSubscriptions": uris } });
        params["_meta"] = envelope(None);
        let msg = json!({"jsonrpc": "2.0", "id": id, "method": "subscriptions/listen", "params": params});
        let stop = match &self.wire {
            Wire::Stdio(s) => {
                if s.send(&msg).is_err() {
                    return;
                }
                None
            }
            Wire::Http(h) => Some(h.open_listen(msg, self.inbound.clone())),
            Wire::Legacy(_) | Wire::OpenApi(_) => return,
        };
        let old = self
            .resource_listen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace((id, stop));
        match old {
            Some((_, Some(stop))) => stop.cancel(),
            Some((old, None)) => self.cancel_request(old, "replaced by a new subscription").await,
            None => {}
        }
    }
}
