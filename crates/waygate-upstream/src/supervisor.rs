//! The supervisor of one upstream: connects (and reconnects with backoff), pings a quiet
//! connection, republishes the catalog when the server's lists change, damps a stdio
//! server that keeps dying, and withdraws the tools of one that stays down.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::mpsc;

use crate::client::{Client, Notification, RequestOpts, Target as Wire};
use crate::error::UpstreamError;
use crate::stats::Status;
use crate::upstream::{Shared, Wiring, MAX_BACKOFF};

impl Shared {
    pub(crate) async fn connect(&self) -> Result<Arc<Client>, UpstreamError> {
        let t = Instant::now();
        let wire = match &self.spec.wiring {
            Wiring::Stdio(s) => Wire::Stdio(s.clone()),
            Wiring::Http(h) => Wire::Http(h.clone()),
            Wiring::OpenApi(o) => Wire::OpenApi(o.clone()),
        };
        let fut = Client::connect(
            &self.spec.name,
            wire,
            self.spec.timeout,
            self.notes_tx.clone(),
            self.spec.era,
        );
        let client = match tokio::time::timeout(self.spec.connect_timeout, fut).await {
            Ok(Ok(c)) => Arc::new(c),
            Ok(Err(e)) => return Err(self.connect_failed(e)),
            Err(_) => {
                let ms = self.spec.connect_timeout.as_millis() as u64;
                return Err(self.connect_failed(UpstreamError::Connect(format!("no handshake within {ms} ms"))));
            }
        };
        self.stats
            .connect_ms
            .store(t.elapsed().as_millis() as u64, Ordering::Relaxed);
        if self.ever_up.swap(true, Ordering::Relaxed) {
            self.stats.restarts.fetch_add(1, Ordering::Relaxed);
        }
        self.stats.set(Status::Up, None);
        self.epoch.fetch_add(1, Ordering::Relaxed);
        if self.guard.withdrawn.swap(false, Ordering::Relaxed) {
            tracing::info!(upstream = %self.spec.name, "upstream back: its tools return to the catalog");
        }
        tracing::info!(upstream = %self.spec.name, protocol = %client.protocol_version, ms = t.elapsed().as_millis() as u64, "upstream connected");
        client.on_resource_updated(self.updates_tx.clone());
        *self.client.write().unwrap_or_else(|e| e.into_inner()) = Some(client.clone());
        Ok(client)
    }

    pub(crate) fn connect_failed(&self, e: UpstreamError) -> UpstreamError {
        self.stats.connects_failed.fetch_add(1, Ordering::Relaxed);
        // A crash-looping server stays so, visibly, until a start succeeds: between its
        // paused windows the backoff alone keeps it under the restart budget.
        let looping = self.status() == Status::CrashLooping;
        let next = if looping {
            Status::CrashLooping
        } else if self.ever_up.load(Ordering::Relaxed) {
            Status::Reconnecting
        } else {
            Status::Connecting
        };
        self.stats.set(next, Some(e.to_string()));
        if looping {
            let l = self.guard.limits();
            self.stats.set_note(format!(
                "crash-looping: started {} times within {} s, and its last start failed too ({e}); retrying with backoff",
                l.max_restarts,
                l.restart_window.as_secs()
            ));
        }
        tracing::warn!(upstream = %self.spec.name, error = %e, "upstream connection failed");
        e
    }

    /// Drop `c` if it is still the live connection.
    pub(crate) fn mark_lost(&self, c: &Arc<Client>, why: String) {
        let mut cur = self.client.write().unwrap_or_else(|e| e.into_inner());
        if cur.as_ref().is_some_and(|x| Arc::ptr_eq(x, c)) {
            *cur = None;
            drop(cur);
            tracing::warn!(upstream = %self.spec.name, reason = %why, "upstream connection lost; reconnecting");
            self.stats.set(Status::Reconnecting, Some(why));
            let c = c.clone();
            tokio::spawn(async move { c.close().await });
            self.lost.notify_one();
        }
    }

    pub(crate) async fn supervise(
        self: Arc<Self>,
        mut notes: mpsc::Receiver<Notification>,
        mut updates: mpsc::Receiver<String>,
    ) {
        // The first attempt starts at once; later ones back off up to MAX_BACKOFF.
        let mut backoff = Duration::ZERO;
        let mut withdrawal_armed = false;
        loop {
            if self.stop.is_cancelled() {
                return;
            }
            let Some(c) = self.current() else {
                if !withdrawal_armed && self.ever_up.load(Ordering::Relaxed) {
                    withdrawal_armed = true;
                    self.clone().arm_withdrawal();
                }
                tokio::select! {
                    _ = self.stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                if matches!(self.spec.wiring, Wiring::Stdio(_)) && !self.damp_restarts().await {
                    return;
                }
                match self.connect().await {
                    Ok(c) => {
                        self.resubscribe(&c).await;
                        withdrawal_armed = false;
                        backoff = Duration::from_millis(250);
                        self.republish().await;
                    }
                    Err(_) => backoff = (backoff * 2).clamp(Duration::from_millis(250), MAX_BACKOFF),
                }
                continue;
            };
            tokio::select! {
                _ = self.stop.cancelled() => return,
                why = c.closed() => self.mark_lost(&c, why),
                _ = self.lost.notified() => {}
                Some(uri) = updates.recv() => self.resource_updated(&uri),
                Some(_) = notes.recv() => {
                    // Coalesce a burst of list changes into one refresh.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    while notes.try_recv().is_ok() {}
                    self.republish().await;
                }
                _ = tokio::time::sleep(self.spec.health_interval) => {
                    let ping = RequestOpts { timeout: Some(Duration::from_secs(10)), ..Default::default() };
                    let t = Instant::now();
                    match c.request("ping", json!({}), ping).await {
                        Ok(_) => self.stats.observe(0, t.elapsed()),
                        Err(e) => {
                            self.stats.observe(3, t.elapsed());
                            self.mark_lost(&c, format!("ping failed: {e}"));
                        }
                    }
                }
            }
        }
    }

    /// A stdio server that used up its restarts for the window is crash-looping: it waits
    /// (visibly) until the window lets it start again. False when stopped meanwhile.
    pub(crate) async fn damp_restarts(&self) -> bool {
        while let Some(pause) = self.guard.restart_pause() {
            let l = self.guard.limits();
            let why = format!(
                "crash-looping: started {} times within {} s; next start in {} s (last error: {})",
                l.max_restarts,
                l.restart_window.as_secs(),
                pause.as_secs().max(1),
                self.stats.last_error().unwrap_or_else(|| "none".into())
            );
            if self.status() != Status::CrashLooping {
                tracing::warn!(upstream = %self.spec.name, reason = %why, "upstream crash-looping; restarts paused");
            }
            self.stats.set(Status::CrashLooping, None);
            self.stats.set_note(why);
            tokio::select! {
                _ = self.stop.cancelled() => return false,
                _ = tokio::time::sleep(pause) => {}
            }
        }
        true
    }

    /// After `withdraw_after` without a connection, the upstream's tools, resources and
    /// prompts leave every catalog view (clients get `list_changed`); they come back with
    /// the next successful connection.
    pub(crate) fn arm_withdrawal(self: Arc<Self>) {
        let epoch = self.epoch.load(Ordering::Relaxed);
        tokio::spawn(async move {
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = tokio::time::sleep(self.spec.containment.withdraw_after) => {}
            }
            if self.epoch.load(Ordering::Relaxed) != epoch || self.current().is_some() {
                return;
            }
            self.guard.withdrawals.fetch_add(1, Ordering::Relaxed);
            self.guard.withdrawn.store(true, Ordering::Relaxed);
            tracing::warn!(
                upstream = %self.spec.name,
                after_secs = self.spec.containment.withdraw_after.as_secs(),
                "upstream still down: its tools are withdrawn from the catalog until it is back"
            );
            self.republish().await;
        });
    }

    /// Re-list through the registry so the catalog (and pins) see the new lists.
    pub(crate) async fn republish(&self) {
        if let Some(r) = self.registry.upgrade() {
            if let Err(e) = r.reload(&self.spec.name).await {
                tracing::warn!(upstream = %self.spec.name, error = %e, "refreshing the upstream's lists failed");
            }
        }
    }
}
