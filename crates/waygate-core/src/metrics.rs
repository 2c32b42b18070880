//! Request metrics in the Prometheus text format: RED per MCP method, per tool, in-flight
//! requests. Label values are bounded: methods outside the known set count as `other`, and
//! only tools present in the catalog get their own series.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use waygate_protocol::methods;

/// Upper bounds of the duration histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5, 10.0,
];

const METHODS: [&str; 16] = [
    methods::INITIALIZE,
    methods::DISCOVER,
    methods::PING,
    methods::TOOLS_LIST,
    methods::TOOLS_CALL,
    methods::RESOURCES_LIST,
    methods::RESOURCES_TEMPLATES_LIST,
    methods::RESOURCES_READ,
    methods::PROMPTS_LIST,
    methods::PROMPTS_GET,
    methods::COMPLETE,
    methods::SET_LEVEL,
    methods::SUBSCRIPTIONS_LISTEN,
    methods::TASKS_GET,
    methods::TASKS_CANCEL,
    "other",
];

/// Outcomes, in label order.
pub const OUTCOMES: [&str; 4] = ["ok", "tool_error", "input_required", "error"];

/// Counts by outcome plus a duration histogram: one labeled series of a RED family.
#[derive(Default)]
pub struct Series {
    outcomes: [AtomicU64; 4],
    buckets: [AtomicU64; 12],
    sum_us: AtomicU64,
}

impl Series {
    /// Count one operation; `outcome` indexes [`OUTCOMES`].
    pub fn observe(&self, outcome: usize, took: Duration) {
        self.outcomes[outcome.min(3)].fetch_add(1, Relaxed);
        let secs = took.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.sum_us.fetch_add(took.as_micros() as u64, Relaxed);
    }

    fn count(&self) -> u64 {
        self.outcomes.iter().map(|o| o.load(Relaxed)).sum()
    }
}

#[derive(Default)]
pub struct Metrics {
    methods: [Series; 16],
    tools: RwLock<HashMap<String, Arc<Series>>>,
    /// Calls by the plugin that served them (registered plugins only, so bounded).
    plugins: RwLock<HashMap<String, Arc<Series>>>,
    pub in_flight: AtomicI64,
    /// Rejections by limit kind, in [`LIMIT_KINDS`] order.
    limited: [AtomicU64; 4],
    /// Requests refused by an authorization rule (or the default).
    pub denied: AtomicU64,
    /// Tool calls refused because their arguments failed the tool's inputSchema.
    pub invalid_arguments: AtomicU64,
    /// Rejections by limit kind × configured rule (a tool name or `*`; bounded by config).
    limited_rules: RwLock<HashMap<(usize, String), Arc<AtomicU64>>>,
}

/// Kinds of limits that reject requests: the caller's bucket, a tool quota, a tool's
/// concurrency cap, a tool's timeout.
pub const LIMIT_KINDS: [&str; 4] = ["caller", "tool", "concurrency", "timeout"];

/// The method name as a static string (`other` for names outside the known set).
pub fn static_method(m: &str) -> &'static str {
    METHODS[method_index(m)]
}

fn method_index(m: &str) -> usize {
    METHODS.iter().position(|k| *k == m).unwrap_or(METHODS.len() - 1)
}

impl Metrics {
    pub fn observe(&self, method: &str, outcome: usize, took: Duration) {
        self.methods[method_index(method)].observe(outcome, took);
    }

    /// Count a call of a catalog tool (callers pass only names the catalog knows).
    pub fn observe_tool(&self, tool: &str, outcome: usize, took: Duration) {
        observe_in(&self.tools, tool, outcome, took);
    }

    /// A tool call, resource read or prompt get served by `plugin`.
    pub fn observe_plugin(&self, plugin: &str, outcome: usize, took: Duration) {
        observe_in(&self.plugins, plugin, outcome, took);
    }

    /// Count a rejection by one of [`LIMIT_KINDS`].
    pub fn rate_limited(&self, kind: &str) {
        if let Some(i) = LIMIT_KINDS.iter().position(|k| *k == kind) {
            self.limited[i].fetch_add(1, Relaxed);
        }
    }

    /// Count a rejection by a per-tool rule (`rule` is the configured key: a tool or `*`).
    pub fn rate_limited_by(&self, kind: &str, rule: &str) {
        self.rate_limited(kind);
        let Some(i) = LIMIT_KINDS.iter().position(|k| *k == kind) else {
            return;
        };
        let key = (i, rule.to_string());
        if let Some(c) = self.limited_rules.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
            c.fetch_add(1, Relaxed);
            return;
        }
        let mut m = self.limited_rules.write().unwrap_or_else(|e| e.into_inner());
        if m.len() < 10_000 {
            m.entry(key).or_default().fetch_add(1, Relaxed);
        }
    }

    /// Render everything in the Prometheus text exposition format.
    pub fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP waygate_rate_limited_total Requests rejected by a limit, by kind."
        );
        let _ = writeln!(out, "# TYPE waygate_rate_limited_total counter");
        for (k, c) in LIMIT_KINDS.iter().zip(&self.limited) {
            let _ = writeln!(out, "waygate_rate_limited_total{{limit=\"{k}\"}} {}", c.load(Relaxed));
        }
        let _ = writeln!(
            out,
            "# HELP waygate_rate_limited_by_rule_total Rejections by a per-tool limit, by kind and configured rule (tool name or *)."
        );
        let _ = writeln!(out, "# TYPE waygate_rate_limited_by_rule_total counter");
        let rules = self.limited_rules.read().unwrap_or_else(|e| e.into_inner());
        let mut rows: Vec<(&(usize, String), u64)> = rules.iter().map(|(k, v)| (k, v.load(Relaxed))).collect();
        rows.sort();
        for ((kind, rule), v) in rows {
            let _ = writeln!(
                out,
                "waygate_rate_limited_by_rule_total{{limit=\"{}\",rule=\"{}\"}} {v}",
                LIMIT_KINDS[*kind],
                escape(rule)
            );
        }
        drop(rules);
        let _ = writeln!(
            out,
            "# HELP waygate_authz_denied_total Requests refused by authorization policy."
        );
        let _ = writeln!(out, "# TYPE waygate_authz_denied_total counter");
        let _ = writeln!(out, "waygate_authz_denied_total {}", self.denied.load(Relaxed));
        let _ = writeln!(
            out,
            "# HELP waygate_invalid_arguments_total Tool calls refused because their arguments failed the tool's inputSchema."
        );
        let _ = writeln!(out, "# TYPE waygate_invalid_arguments_total counter");
        let _ = writeln!(
            out,
            "waygate_invalid_arguments_total {}",
            self.invalid_arguments.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP waygate_stream_overflows_total Client streams ended because the client stopped reading."
        );
        let _ = writeln!(out, "# TYPE waygate_stream_overflows_total counter");
        let _ = writeln!(out, "waygate_stream_overflows_total {}", crate::outq::overflows());
        let _ = writeln!(out, "# HELP waygate_requests_total MCP requests by method and outcome.");
        let _ = writeln!(out, "# TYPE waygate_requests_total counter");
        for (m, s) in METHODS.iter().zip(&self.methods) {
            for (o, c) in OUTCOMES.iter().zip(&s.outcomes) {
                let v = c.load(Relaxed);
                if v > 0 {
                    let _ = writeln!(out, "waygate_requests_total{{method=\"{m}\",outcome=\"{o}\"}} {v}");
                }
            }
        }
        let _ = writeln!(
            out,
            "# HELP waygate_request_duration_seconds Time to answer an MCP request."
        );
        let _ = writeln!(out, "# TYPE waygate_request_duration_seconds histogram");
        for (m, s) in METHODS.iter().zip(&self.methods) {
            histogram(out, "waygate_request_duration_seconds", &format!("method=\"{m}\""), s);
        }
        labeled(
            out,
            ("waygate_tool_calls_total", "Tool calls by tool and outcome."),
            ("waygate_tool_call_duration_seconds", "Time to answer a tool call."),
            "tool",
            &self.tools,
        );
        labeled(
            out,
            (
                "waygate_plugin_calls_total",
                "Tool calls, resource reads and prompt gets by serving plugin and outcome.",
            ),
            (
                "waygate_plugin_call_duration_seconds",
                "Time a plugin took to answer, hooks included.",
            ),
            "plugin",
            &self.plugins,
        );
        let _ = writeln!(
            out,
            "# HELP waygate_requests_in_flight MCP requests being answered now."
        );
        let _ = writeln!(out, "# TYPE waygate_requests_in_flight gauge");
        let _ = writeln!(out, "waygate_requests_in_flight {}", self.in_flight.load(Relaxed));
    }
}

fn observe_in(map: &RwLock<HashMap<String, Arc<Series>>>, key: &str, outcome: usize, took: Duration) {
    if let Some(s) = map.read().unwrap_or_else(|e| e.into_inner()).get(key) {
        s.observe(outcome, took);
        return;
    }
    let mut map = map.write().unwrap_or_else(|e| e.into_inner());
    if map.len() < 10_000 {
        map.entry(key.to_string()).or_default().observe(outcome, took);
    }
}

/// A counter family by outcome and a histogram family, one series per map key.
fn labeled(
    out: &mut String,
    counter: (&str, &str),
    hist: (&str, &str),
    label: &str,
    map: &RwLock<HashMap<String, Arc<Series>>>,
) {
    let map = map.read().unwrap_or_else(|e| e.into_inner());
    let mut rows: Vec<(&str, &Series)> = map.iter().map(|(k, v)| (k.as_str(), &**v)).collect();
    rows.sort_by(|a, b| a.0.cmp(b.0));
    render_labeled(out, counter, hist, label, &rows);
}

/// Render `(counter name, help)` by outcome and `(histogram name, help)` for `rows`, each
/// row's name as the value of `label` (other crates' RED families: upstreams).
pub fn render_labeled(
    out: &mut String,
    counter: (&str, &str),
    hist: (&str, &str),
    label: &str,
    rows: &[(&str, &Series)],
) {
    let _ = writeln!(out, "# HELP {} {}\n# TYPE {} counter", counter.0, counter.1, counter.0);
    for (n, s) in rows {
        for (o, c) in OUTCOMES.iter().zip(&s.outcomes) {
            let v = c.load(Relaxed);
            if v > 0 {
                let _ = writeln!(out, "{}{{{label}=\"{}\",outcome=\"{o}\"}} {v}", counter.0, escape(n));
            }
        }
    }
    let _ = writeln!(out, "# HELP {} {}\n# TYPE {} histogram", hist.0, hist.1, hist.0);
    for (n, s) in rows {
        histogram(out, hist.0, &format!("{label}=\"{}\"", escape(n)), s);
    }
}

fn histogram(out: &mut String, name: &str, labels: &str, s: &Series) {
    let count = s.count();
    if count == 0 {
        return;
    }
    let mut cum = 0;
    for (b, c) in BUCKETS.iter().zip(&s.buckets) {
        cum += c.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{b}\"}} {cum}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", s.sum_us.load(Relaxed) as f64 / 1e6);
    let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
}

/// A label value with `\\`, `"` and newlines escaped.
pub fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_bounded_series() {
        let m = Metrics::default();
        m.observe("tools/call", 0, Duration::from_micros(80));
        m.observe("made/up", 3, Duration::from_millis(3));
        m.observe_tool("echo", 0, Duration::from_micros(80));
        let mut s = String::new();
        m.render(&mut s);
        assert!(
            s.contains("waygate_requests_total{method=\"tools/call\",outcome=\"ok\"} 1"),
            "{s}"
        );
        assert!(s.contains("method=\"other\",outcome=\"error\""), "{s}");
        assert!(!s.contains("made/up"));
        assert!(s.contains("waygate_tool_calls_total{tool=\"echo\",outcome=\"ok\"} 1"));
        assert!(s.contains("waygate_request_duration_seconds_bucket{method=\"tools/call\",le=\"0.0001\"} 1"));
        assert!(s.contains("le=\"+Inf\"} 1"));
    }
}
