//! What an operator sees of an upstream: its state, last error, restarts, latency, and
//! RED series for the requests forwarded to it.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use waygate_core::metrics::{escape, render_labeled, Series};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// First connection attempt in progress.
    Connecting,
    Up,
    /// Lost; the supervisor is trying again (with backoff).
    Reconnecting,
    /// A stdio server that died too often within the restart window; restarts wait.
    CrashLooping,
    /// Shut down (unloaded, disabled, reloaded).
    Stopped,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Connecting => "connecting",
            Status::Up => "up",
            Status::Reconnecting => "reconnecting",
            Status::CrashLooping => "crash-looping",
            Status::Stopped => "stopped",
        }
    }
}

pub(crate) struct Stats {
    state: Mutex<(Status, Option<String>)>,
    /// What the current state means in words (crash-looping: when the next start is).
    note: Mutex<Option<String>>,
    pub restarts: AtomicU64,
    pub connects_failed: AtomicU64,
    /// Handshake + listing time of the last successful connect.
    pub connect_ms: AtomicU64,
    /// Unix seconds of the last state change.
    changed_at: AtomicU64,
    pub tools: AtomicUsize,
    /// Forwarded requests waiting for the upstream now.
    pub in_flight: AtomicI64,
    /// Time of the last forwarded request, in microseconds.
    last_request_us: AtomicU64,
    /// Requests forwarded (tool calls, reads, gets, pings), by outcome.
    pub series: Series,
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Stats {
    pub(crate) fn new() -> Stats {
        Stats {
            state: Mutex::new((Status::Connecting, None)),
            note: Mutex::new(None),
            restarts: AtomicU64::new(0),
            connects_failed: AtomicU64::new(0),
            connect_ms: AtomicU64::new(0),
            changed_at: AtomicU64::new(now_unix()),
            tools: AtomicUsize::new(0),
            in_flight: AtomicI64::new(0),
            last_request_us: AtomicU64::new(0),
            series: Series::default(),
        }
    }

    pub(crate) fn status(&self) -> Status {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).0
    }

    pub(crate) fn last_error(&self) -> Option<String> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).1.clone()
    }

    /// Move to `s`; `error` replaces the last error when given.
    pub(crate) fn set(&self, s: Status, error: Option<String>) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.0 != s {
            self.changed_at.store(now_unix(), Relaxed);
            *self.note.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
        st.0 = s;
        if error.is_some() {
            st.1 = error;
        }
    }

    pub(crate) fn set_note(&self, note: String) {
        *self.note.lock().unwrap_or_else(|e| e.into_inner()) = Some(note);
    }

    pub(crate) fn observe(&self, outcome: usize, took: Duration) {
        self.series.observe(outcome, took);
        self.last_request_us.store(took.as_micros() as u64, Relaxed);
    }

    /// Counts a request in flight until the guard drops (also when the caller goes away).
    pub(crate) fn enter(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Relaxed);
        InFlight(&self.in_flight)
    }

    pub(crate) fn describe(&self) -> Value {
        let (status, error) = self.state.lock().unwrap_or_else(|e| e.into_inner()).clone();
        json!({
            "state": status.label(),
            "since_unix": self.changed_at.load(Relaxed),
            "last_error": error,
            "note": self.note.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            "restarts": self.restarts.load(Relaxed),
            "failed_connects": self.connects_failed.load(Relaxed),
            "connect_ms": self.connect_ms.load(Relaxed),
            "last_request_ms": self.last_request_us.load(Relaxed) as f64 / 1000.0,
            "in_flight": self.in_flight.load(Relaxed),
            "tools": self.tools.load(Relaxed),
        })
    }
}

pub(crate) struct InFlight<'a>(&'a AtomicI64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// The upstream metric families for every given upstream.
pub fn render_metrics(upstreams: &[std::sync::Arc<crate::Upstream>], out: &mut String) {
    let mut rows: Vec<(&str, &Stats)> = upstreams.iter().map(|u| (u.upstream_name(), u.stats())).collect();
    rows.sort_by(|a, b| a.0.cmp(b.0));
    let gauge = |out: &mut String, name: &str, kind: &str, help: &str, f: &dyn Fn(&Stats) -> String| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (n, s) in &rows {
            let _ = writeln!(out, "{name}{{upstream=\"{}\"}} {}", escape(n), f(s));
        }
    };
    gauge(
        out,
        "waygate_upstream_up",
        "gauge",
        "1 while the upstream is connected and answering.",
        &|s| u8::from(s.status() == Status::Up).to_string(),
    );
    gauge(
        out,
        "waygate_upstream_restarts_total",
        "counter",
        "Times the upstream was reconnected (process restarted, session re-established).",
        &|s| s.restarts.load(Relaxed).to_string(),
    );
    gauge(
        out,
        "waygate_upstream_connect_failures_total",
        "counter",
        "Connection attempts that failed (start, handshake or listing).",
        &|s| s.connects_failed.load(Relaxed).to_string(),
    );
    gauge(
        out,
        "waygate_upstream_tools",
        "gauge",
        "Tools the upstream offers.",
        &|s| s.tools.load(Relaxed).to_string(),
    );
    gauge(
        out,
        "waygate_upstream_requests_in_flight",
        "gauge",
        "Forwarded requests waiting for the upstream now.",
        &|s| s.in_flight.load(Relaxed).to_string(),
    );
    let series: Vec<(&str, &Series)> = rows.iter().map(|(n, s)| (*n, &s.series)).collect();
    render_labeled(
        out,
        (
            "waygate_upstream_requests_total",
            "Requests forwarded to an upstream, by outcome.",
        ),
        (
            "waygate_upstream_request_duration_seconds",
            "Time an upstream took to answer a forwarded request.",
        ),
        "upstream",
        &series,
    );
    crate::guard::render_metrics(upstreams, out);
}
