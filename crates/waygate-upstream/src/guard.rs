//! What keeps one failing upstream from costing anyone but its own callers: a cap on the
//! calls it serves at once (with a bounded queue, then a clear "busy"), a circuit breaker
//! that stops sending it calls after consecutive failures, and restart damping for a
//! process that keeps dying (see `docs/design/upstreams.md`, "Failure is contained").
//!
//! Only failures of the upstream itself count for the breaker — no answer in time, a lost
//! connection, something that is not MCP. An upstream that answers with an error (a tool's
//! `isError`, a JSON-RPC error) is healthy: the error belongs to the request.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::UpstreamError;

/// Containment settings of one upstream (`[[upstreams]]` keys in parentheses).
#[derive(Debug, Clone, PartialEq)]
pub struct Containment {
    /// Calls forwarded at once (`max_concurrency`); 0 = no cap.
    pub max_concurrency: usize,
    /// Calls waiting for a slot beyond that (`max_queue`); more are refused as busy.
    pub max_queue: usize,
    /// Consecutive failures that open the circuit (`breaker_failures`); 0 = no breaker.
    pub breaker_failures: u32,
    /// How long an open circuit refuses calls before one trial call (`breaker_cooldown_secs`).
    pub breaker_cooldown: Duration,
    /// Restarts of a stdio server allowed per window (`max_restarts`) …
    pub max_restarts: usize,
    /// … (`restart_window_secs`); beyond it the server is crash-looping and waits.
    pub restart_window: Duration,
    /// How long an upstream may be down before its tools leave the catalog
    /// (`withdraw_after_secs`).
    pub withdraw_after: Duration,
}

impl Default for Containment {
    fn default() -> Containment {
        Containment {
            max_concurrency: 1024,
            max_queue: 1024,
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(30),
            max_restarts: 5,
            restart_window: Duration::from_secs(60),
            withdraw_after: Duration::from_secs(30),
        }
    }
}

/// Why a call was not forwarded.
#[derive(Debug, PartialEq)]
pub(crate) enum Refusal {
    Busy {
        running: usize,
        queued: usize,
    },
    /// Seconds until the next trial call.
    Open(u64),
}

/// A call's place among the ones forwarded; freed when dropped.
pub(crate) struct Admitted {
    _slot: Option<OwnedSemaphorePermit>,
    /// This call is the trial of a half-open circuit.
    trial: bool,
}

pub(crate) struct Guard {
    limits: Containment,
    slots: Option<Arc<Semaphore>>,
    queued: AtomicUsize,
    /// Consecutive failures.
    failures: AtomicU32,
    /// When the open circuit lets a trial call through; `None` while closed.
    open_until: Mutex<Option<Instant>>,
    trial_running: AtomicBool,
    /// Stdio restarts (and failed starts) within the window.
    restarts: Mutex<VecDeque<Instant>>,
    pub busy_refused: AtomicU64,
    pub open_refused: AtomicU64,
    pub circuit_opened: AtomicU64,
    pub withdrawals: AtomicU64,
    /// Down longer than `withdraw_after`: out of the catalog until it connects again.
    pub withdrawn: AtomicBool,
}

impl Guard {
    pub(crate) fn new(limits: Containment) -> Guard {
        Guard {
            slots: (limits.max_concurrency > 0).then(|| Arc::new(Semaphore::new(limits.max_concurrency))),
            limits,
            queued: AtomicUsize::new(0),
            failures: AtomicU32::new(0),
            open_until: Mutex::new(None),
            trial_running: AtomicBool::new(false),
            restarts: Mutex::new(VecDeque::new()),
            busy_refused: AtomicU64::new(0),
            open_refused: AtomicU64::new(0),
            circuit_opened: AtomicU64::new(0),
            withdrawals: AtomicU64::new(0),
            withdrawn: AtomicBool::new(false),
        }
    }

    pub(crate) fn limits(&self) -> &Containment {
        &self.limits
    }

    /// A place for one call: refused at once while the circuit is open or the queue is
    /// full; waits at most `wait` for a slot otherwise.
    pub(crate) async fn admit(&self, wait: Duration) -> Result<Admitted, Refusal> {
        let trial = self.check_circuit()?;
        let Some(slots) = &self.slots else {
            return Ok(Admitted { _slot: None, trial });
        };
        let slot = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                let busy = || Refusal::Busy {
                    running: self.limits.max_concurrency,
                    queued: self.queued.load(Relaxed),
                };
                if self.queued.fetch_add(1, Relaxed) >= self.limits.max_queue {
                    self.queued.fetch_sub(1, Relaxed);
                    self.busy_refused.fetch_add(1, Relaxed);
                    self.end_trial(trial);
                    return Err(busy());
                }
                let got = tokio::time::timeout(wait, slots.clone().acquire_owned()).await;
                self.queued.fetch_sub(1, Relaxed);
                match got {
                    Ok(Ok(p)) => p,
                    _ => {
                        self.busy_refused.fetch_add(1, Relaxed);
                        self.end_trial(trial);
                        return Err(busy());
                    }
                }
            }
        };
        Ok(Admitted {
            _slot: Some(slot),
            trial,
        })
    }

    /// Ok(true) when this call is the trial of a half-open circuit.
    fn check_circuit(&self) -> Result<bool, Refusal> {
        let until = *self.open_until.lock().unwrap_or_else(|e| e.into_inner());
        let Some(until) = until else { return Ok(false) };
        let now = Instant::now();
        if now < until {
            self.open_refused.fetch_add(1, Relaxed);
            return Err(Refusal::Open((until - now).as_secs().max(1)));
        }
        // Half-open: one call tries; the others are still refused until it is done.
        if self.trial_running.swap(true, Relaxed) {
            self.open_refused.fetch_add(1, Relaxed);
            return Err(Refusal::Open(1));
        }
        Ok(true)
    }

    fn end_trial(&self, trial: bool) {
        if trial {
            self.trial_running.store(false, Relaxed);
        }
    }

    /// What became of an admitted call: failures of the upstream itself count toward
    /// opening the circuit; anything it answered closes it.
    pub(crate) fn record(&self, call: &Admitted, outcome: Result<(), &UpstreamError>) {
        let failed = outcome.is_err_and(|e| {
            matches!(
                e,
                UpstreamError::Timeout(_)
                    | UpstreamError::Closed(_)
                    | UpstreamError::Connect(_)
                    | UpstreamError::Exchange(_)
                    | UpstreamError::Protocol(_)
            )
        });
        self.end_trial(call.trial);
        if !failed {
            self.failures.store(0, Relaxed);
            if call.trial || self.is_open() {
                *self.open_until.lock().unwrap_or_else(|e| e.into_inner()) = None;
            }
            return;
        }
        let n = self.failures.fetch_add(1, Relaxed) + 1;
        let threshold = self.limits.breaker_failures;
        if threshold > 0 && (n >= threshold || call.trial) {
            let mut open = self.open_until.lock().unwrap_or_else(|e| e.into_inner());
            if open.is_none() || call.trial {
                self.circuit_opened.fetch_add(1, Relaxed);
            }
            *open = Some(Instant::now() + self.limits.breaker_cooldown);
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        self.open_until.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    /// Calls waiting for a slot now.
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Relaxed)
    }

    /// The containment part of an upstream's diagnostics.
    pub(crate) fn describe(&self, v: &mut Value) {
        let l = &self.limits;
        v["withdrawn"] = json!(self.withdrawn.load(Relaxed));
        v["withdrawals"] = json!(self.withdrawals.load(Relaxed));
        v["circuit"] = json!(if self.is_open() { "open" } else { "closed" });
        v["circuit_opened"] = json!(self.circuit_opened.load(Relaxed));
        v["queued"] = json!(self.queued());
        v["refused_busy"] = json!(self.busy_refused.load(Relaxed));
        v["refused_circuit_open"] = json!(self.open_refused.load(Relaxed));
        v["limits"] = json!({
            "max_concurrency": l.max_concurrency,
            "max_queue": l.max_queue,
            "breaker_failures": l.breaker_failures,
            "breaker_cooldown_secs": l.breaker_cooldown.as_secs(),
            "max_restarts": l.max_restarts,
            "restart_window_secs": l.restart_window.as_secs(),
            "withdraw_after_secs": l.withdraw_after.as_secs(),
        });
    }

    /// Why this upstream is degraded, when it is (for `/ready` and diagnostics).
    pub(crate) fn degraded(&self) -> Option<&'static str> {
        if self.withdrawn.load(Relaxed) {
            Some("withdrawn from the catalog")
        } else if self.is_open() {
            Some("circuit open")
        } else {
            None
        }
    }

    /// Count a (re)start of a stdio server; how long to wait first when it has used up its
    /// restarts for the window (it is crash-looping), else `None`.
    pub(crate) fn restart_pause(&self) -> Option<Duration> {
        let now = Instant::now();
        let window = self.limits.restart_window;
        let mut r = self.restarts.lock().unwrap_or_else(|e| e.into_inner());
        while r.front().is_some_and(|t| now.duration_since(*t) >= window) {
            r.pop_front();
        }
        if self.limits.max_restarts > 0 && r.len() >= self.limits.max_restarts {
            // Until the oldest restart leaves the window.
            let oldest = *r.front()?;
            return Some(window.saturating_sub(now.duration_since(oldest)));
        }
        r.push_back(now);
        None
    }
}

/// The containment metric families for every given upstream.
pub(crate) fn render_metrics(upstreams: &[Arc<crate::Upstream>], out: &mut String) {
    use std::fmt::Write;
    let mut rows: Vec<(&str, &Guard)> = upstreams.iter().map(|u| (u.upstream_name(), u.guard())).collect();
    rows.sort_by(|a, b| a.0.cmp(b.0));
    let family = |out: &mut String, name: &str, kind: &str, help: &str, f: &dyn Fn(&Guard) -> u64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (n, g) in &rows {
            let _ = writeln!(
                out,
                "{name}{{upstream=\"{}\"}} {}",
                waygate_core::metrics::escape(n),
                f(g)
            );
        }
    };
    family(
        out,
        "waygate_upstream_withdrawals_total",
        "counter",
        "Times the upstream's tools were withdrawn from the catalog after it stayed down.",
        &|g| g.withdrawals.load(Relaxed),
    );
    family(
        out,
        "waygate_upstream_withdrawn",
        "gauge",
        "1 while the upstream's tools are withdrawn from the catalog.",
        &|g| u64::from(g.withdrawn.load(Relaxed)),
    );
    family(
        out,
        "waygate_upstream_circuit_open",
        "gauge",
        "1 while the circuit breaker refuses calls to the upstream.",
        &|g| u64::from(g.is_open()),
    );
    family(
        out,
        "waygate_upstream_circuit_opened_total",
        "counter",
        "Times the circuit breaker opened.",
        &|g| g.circuit_opened.load(Relaxed),
    );
    family(
        out,
        "waygate_upstream_calls_queued",
        "gauge",
        "Calls waiting for one of the upstream's max_concurrency slots.",
        &|g| g.queued() as u64,
    );
    let _ = writeln!(out, "# HELP waygate_upstream_calls_refused_total Calls not forwarded to the upstream, by reason.\n# TYPE waygate_upstream_calls_refused_total counter");
    for (n, g) in &rows {
        let n = waygate_core::metrics::escape(n);
        let _ = writeln!(
            out,
            "waygate_upstream_calls_refused_total{{upstream=\"{n}\",reason=\"busy\"}} {}",
            g.busy_refused.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "waygate_upstream_calls_refused_total{{upstream=\"{n}\",reason=\"circuit_open\"}} {}",
            g.open_refused.load(Relaxed)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(max_concurrency: usize, max_queue: usize, breaker_failures: u32) -> Guard {
        Guard::new(Containment {
            max_concurrency,
            max_queue,
            breaker_failures,
            breaker_cooldown: Duration::from_millis(50),
            max_restarts: 2,
            restart_window: Duration::from_millis(200),
            ..Containment::default()
        })
    }

    #[tokio::test]
    async fn a_full_upstream_queues_then_refuses_as_busy() {
        let g = Arc::new(guard(1, 1, 0));
        let first = g.admit(Duration::from_secs(5)).await.unwrap();
        let g2 = g.clone();
        let queued = tokio::spawn(async move { g2.admit(Duration::from_secs(5)).await.is_ok() });
        while g.queued() == 0 {
            tokio::task::yield_now().await;
        }
        let third = g.admit(Duration::from_secs(5)).await;
        assert!(
            matches!(third, Err(Refusal::Busy { running: 1, queued: 1 })),
            "{:?}",
            third.err()
        );
        drop(first);
        assert!(queued.await.unwrap(), "the queued call gets the freed slot");
        // A wait that runs out is busy too.
        let held = g.admit(Duration::from_secs(5)).await.unwrap();
        assert!(g.admit(Duration::from_millis(20)).await.is_err());
        drop(held);
        assert_eq!(g.busy_refused.load(Relaxed), 2);
    }

    #[tokio::test]
    async fn the_circuit_opens_after_consecutive_failures_and_one_trial_closes_it() {
        let g = guard(0, 0, 2);
        let timeout = UpstreamError::Timeout(10);
        let answered = UpstreamError::Rpc {
            code: -32000,
            message: "no".into(),
            data: None,
        };
        for _ in 0..3 {
            // An upstream that answers with an error is not failing.
            let c = g.admit(Duration::ZERO).await.unwrap();
            g.record(&c, Err(&answered));
        }
        for _ in 0..2 {
            let c = g.admit(Duration::ZERO).await.unwrap();
            g.record(&c, Err(&timeout));
        }
        assert!(matches!(g.admit(Duration::ZERO).await.err(), Some(Refusal::Open(_))));
        tokio::time::sleep(Duration::from_millis(60)).await;
        // Half-open: one trial; a second caller meanwhile is refused.
        let trial = g.admit(Duration::ZERO).await.unwrap();
        assert!(g.admit(Duration::ZERO).await.is_err());
        // The trial fails: open again, at once.
        g.record(&trial, Err(&timeout));
        assert!(g.admit(Duration::ZERO).await.is_err());
        tokio::time::sleep(Duration::from_millis(60)).await;
        let trial = g.admit(Duration::ZERO).await.unwrap();
        g.record(&trial, Ok(()));
        assert!(!g.is_open());
        assert!(g.admit(Duration::ZERO).await.is_ok());
        assert_eq!(g.circuit_opened.load(Relaxed), 2);
    }

    #[test]
    fn restarts_beyond_the_window_budget_pause() {
        let g = guard(0, 0, 0);
        assert_eq!(g.restart_pause(), None);
        assert_eq!(g.restart_pause(), None);
        let pause = g.restart_pause().expect("crash-looping");
        assert!(pause <= Duration::from_millis(200), "{pause:?}");
        std::thread::sleep(pause + Duration::from_millis(5));
        assert_eq!(g.restart_pause(), None, "the window moved on");
    }
}
