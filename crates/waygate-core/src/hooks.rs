//! The hook chain: policy and guardrail code that runs around every tool call, resource
//! read and prompt get — `pre` sees (and may rewrite or refuse) the arguments, `post`
//! the result. Hooks run in priority order (lowest first). Each has a mode: `enforce`
//! (a refusal, failure or timeout denies the call), `permissive` (all of that is logged
//! and the call proceeds unchanged) or `disabled`; conditions limit which targets,
//! plugins and principals it sees; and it has its own outcome counters and timings.
//!
//! A chain without hooks costs one pointer load and an `is_empty` check per call.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::plugin::BoxFuture;
use crate::policy::glob;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Pre,
    Post,
}

impl Phase {
    pub fn label(self) -> &'static str {
        match self {
            Phase::Pre => "pre",
            Phase::Post => "post",
        }
    }
}

/// What a hook is looking at.
#[derive(Debug, Clone, Copy)]
pub struct HookTarget<'a> {
    /// `tool`, `resource` or `prompt`.
    pub kind: &'a str,
    /// Tool or prompt name as the client sees it, or the resource URI.
    pub name: &'a str,
    /// The plugin (later: upstream) serving it.
    pub plugin: &'a str,
    /// `id:name` of the caller, when authenticated.
    pub principal: Option<&'a str>,
}

/// A hook's decision about one call.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Nothing to say.
    Pass,
    /// The value was rewritten in place (redaction, truncation, …).
    Modified,
    /// Refuse the call; the reason is shown to the caller.
    Deny(String),
}

/// Code on the chain. Both phases default to [`Verdict::Pass`].
pub trait Hook: Send + Sync + 'static {
    fn kind(&self) -> &str;
    /// Look at, and possibly rewrite, the arguments before the call.
    fn pre<'a>(
        &'a self,
        target: &'a HookTarget<'a>,
        arguments: &'a mut Value,
    ) -> BoxFuture<'a, Result<Verdict, String>> {
        let _ = (target, arguments);
        Box::pin(async { Ok(Verdict::Pass) })
    }
    /// Look at, and possibly rewrite, the result after the call.
    fn post<'a>(&'a self, target: &'a HookTarget<'a>, result: &'a mut Value) -> BoxFuture<'a, Result<Verdict, String>> {
        let _ = (target, result);
        Box::pin(async { Ok(Verdict::Pass) })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    Permissive,
    Disabled,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "enforce" => Some(Mode::Enforce),
            "permissive" => Some(Mode::Permissive),
            "disabled" => Some(Mode::Disabled),
            _ => None,
        }
    }
}

/// Where a hook applies; an empty list means everything.
#[derive(Debug, Clone, Default)]
pub struct Conditions {
    /// Globs on the tool/prompt name or resource URI.
    pub targets: Vec<String>,
    pub plugins: Vec<String>,
    /// Globs on `id:name` of the principal (`anonymous` when unauthenticated).
    pub principals: Vec<String>,
    /// `tool`, `resource`, `prompt`.
    pub kinds: Vec<String>,
}

impl Conditions {
    fn matches(&self, t: &HookTarget<'_>) -> bool {
        let any = |pats: &[String], v: &str| pats.is_empty() || pats.iter().any(|p| glob(p, v));
        any(&self.kinds, t.kind)
            && any(&self.targets, t.name)
            && any(&self.plugins, t.plugin)
            && any(&self.principals, t.principal.unwrap_or("anonymous"))
    }
}

/// Outcomes counted per hook.
const OUTCOMES: [&str; 5] = ["pass", "modified", "denied", "error", "timeout"];

#[derive(Default)]
struct HookStats {
    counts: [[AtomicU64; 5]; 2],
    micros: [AtomicU64; 2],
}

/// One configured hook.
pub struct HookEntry {
    pub name: String,
    pub hook: Arc<dyn Hook>,
    pub priority: i32,
    pub mode: Mode,
    pub when: Conditions,
    pub timeout: Duration,
    stats: HookStats,
}

impl HookEntry {
    pub fn new(
        name: impl Into<String>,
        hook: Arc<dyn Hook>,
        priority: i32,
        mode: Mode,
        when: Conditions,
        timeout: Duration,
    ) -> Self {
        HookEntry {
            name: name.into(),
            hook,
            priority,
            mode,
            when,
            timeout,
            stats: HookStats::default(),
        }
    }
}

/// The ordered chain; swapped whole on reload.
#[derive(Default)]
pub struct HookChain {
    entries: Vec<HookEntry>,
}

impl HookChain {
    pub fn new(mut entries: Vec<HookEntry>) -> Self {
        entries.retain(|e| e.mode != Mode::Disabled);
        entries.sort_by_key(|e| e.priority);
        HookChain { entries }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Does any hook look at results of this target? (Calls that become tasks skip the
    /// synchronous path, so guarded tools are not turned into tasks.)
    pub fn has_post_for(&self, t: &HookTarget<'_>) -> bool {
        self.entries.iter().any(|e| e.when.matches(t))
    }

    /// Run one phase over `value`; `Err(reason)` means the call is denied.
    pub async fn run(&self, phase: Phase, t: &HookTarget<'_>, value: &mut Value) -> Result<(), String> {
        for e in self.entries.iter().filter(|e| e.when.matches(t)) {
            let started = Instant::now();
            let fut = match phase {
                Phase::Pre => e.hook.pre(t, value),
                Phase::Post => e.hook.post(t, value),
            };
            let outcome = match tokio::time::timeout(e.timeout, fut).await {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(err)) => Err((3, format!("hook {} failed: {err}", e.name))),
                Err(_) => Err((
                    4,
                    format!("hook {} timed out after {} ms", e.name, e.timeout.as_millis()),
                )),
            };
            let p = phase as usize;
            e.stats.micros[p].fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
            let (idx, deny) = match outcome {
                Ok(Verdict::Pass) => (0, None),
                Ok(Verdict::Modified) => (1, None),
                Ok(Verdict::Deny(reason)) => (2, Some(format!("denied by {}: {reason}", e.name))),
                Err((idx, msg)) => (idx, Some(msg)),
            };
            e.stats.counts[p][idx].fetch_add(1, Ordering::Relaxed);
            if let Some(msg) = deny {
                match e.mode {
                    Mode::Enforce => {
                        tracing::info!(hook = %e.name, phase = phase.label(), target = t.name, reason = %msg, "call denied by hook");
                        return Err(msg);
                    }
                    _ => {
                        tracing::warn!(hook = %e.name, phase = phase.label(), target = t.name, reason = %msg, "permissive hook would deny; call proceeds")
                    }
                }
            }
        }
        Ok(())
    }

    /// `waygate_hook_calls_total{hook,phase,outcome}` and time spent per hook.
    pub fn render(&self, out: &mut String) {
        out.push_str("# HELP waygate_hook_calls_total Hook runs by hook, phase and outcome.\n# TYPE waygate_hook_calls_total counter\n");
        for e in &self.entries {
            for (p, phase) in ["pre", "post"].iter().enumerate() {
                for (i, o) in OUTCOMES.iter().enumerate() {
                    let n = e.stats.counts[p][i].load(Ordering::Relaxed);
                    let _ = writeln!(
                        out,
                        "waygate_hook_calls_total{{hook=\"{}\",phase=\"{phase}\",outcome=\"{o}\"}} {n}",
                        e.name
                    );
                }
            }
        }
        out.push_str(
            "# HELP waygate_hook_seconds_total Time spent in each hook.\n# TYPE waygate_hook_seconds_total counter\n",
        );
        for e in &self.entries {
            for (p, phase) in ["pre", "post"].iter().enumerate() {
                let s = e.stats.micros[p].load(Ordering::Relaxed) as f64 / 1e6;
                let _ = writeln!(
                    out,
                    "waygate_hook_seconds_total{{hook=\"{}\",phase=\"{phase}\"}} {s}",
                    e.name
                );
            }
        }
    }

    /// One row per hook for diagnostics.
    pub fn describe(&self) -> Vec<Value> {
        self.entries
            .iter()
            .map(|e| {
                serde_json::json!({
                    "name": e.name, "kind": e.hook.kind(), "priority": e.priority,
                    "mode": format!("{:?}", e.mode).to_lowercase(), "timeout_ms": e.timeout.as_millis() as u64,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Upper;
    impl Hook for Upper {
        fn kind(&self) -> &str {
            "upper"
        }
        fn pre<'a>(&'a self, _t: &'a HookTarget<'a>, a: &'a mut Value) -> BoxFuture<'a, Result<Verdict, String>> {
            Box::pin(async move {
                if let Some(s) = a.get("text").and_then(Value::as_str).map(str::to_uppercase) {
                    a["text"] = json!(s);
                }
                Ok(Verdict::Modified)
            })
        }
    }
    struct NoBad;
    impl Hook for NoBad {
        fn kind(&self) -> &str {
            "nobad"
        }
        fn pre<'a>(&'a self, _t: &'a HookTarget<'a>, a: &'a mut Value) -> BoxFuture<'a, Result<Verdict, String>> {
            Box::pin(async move {
                Ok(if a["text"] == "BAD" {
                    Verdict::Deny("no".into())
                } else {
                    Verdict::Pass
                })
            })
        }
    }
    struct Slow;
    impl Hook for Slow {
        fn kind(&self) -> &str {
            "slow"
        }
        fn pre<'a>(&'a self, _t: &'a HookTarget<'a>, _a: &'a mut Value) -> BoxFuture<'a, Result<Verdict, String>> {
            Box::pin(async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok(Verdict::Pass)
            })
        }
    }

    fn target() -> HookTarget<'static> {
        HookTarget {
            kind: "tool",
            name: "echo",
            plugin: "demo",
            principal: None,
        }
    }
    fn entry(name: &str, h: Arc<dyn Hook>, prio: i32, mode: Mode) -> HookEntry {
        HookEntry::new(name, h, prio, mode, Conditions::default(), Duration::from_millis(50))
    }

    #[tokio::test]
    async fn priority_order_decides_what_later_hooks_see() {
        // Upper runs first (priority 1), so NoBad sees "BAD" and denies.
        let chain = HookChain::new(vec![
            entry("nobad", Arc::new(NoBad), 2, Mode::Enforce),
            entry("upper", Arc::new(Upper), 1, Mode::Enforce),
        ]);
        let mut a = json!({"text": "bad"});
        let err = chain.run(Phase::Pre, &target(), &mut a).await.unwrap_err();
        assert!(err.contains("denied by nobad"), "{err}");
        // Reversed priorities: NoBad sees "bad", passes; Upper rewrites.
        let chain = HookChain::new(vec![
            entry("nobad", Arc::new(NoBad), 1, Mode::Enforce),
            entry("upper", Arc::new(Upper), 2, Mode::Enforce),
        ]);
        let mut a = json!({"text": "bad"});
        chain.run(Phase::Pre, &target(), &mut a).await.unwrap();
        assert_eq!(a["text"], "BAD");
    }

    #[tokio::test]
    async fn timeouts_deny_when_enforcing_and_pass_when_permissive() {
        let chain = HookChain::new(vec![entry("slow", Arc::new(Slow), 0, Mode::Enforce)]);
        let err = chain.run(Phase::Pre, &target(), &mut json!({})).await.unwrap_err();
        assert!(err.contains("timed out after 50 ms"), "{err}");
        let chain = HookChain::new(vec![entry("slow", Arc::new(Slow), 0, Mode::Permissive)]);
        chain.run(Phase::Pre, &target(), &mut json!({})).await.unwrap();
        let mut text = String::new();
        chain.render(&mut text);
        assert!(
            text.contains("waygate_hook_calls_total{hook=\"slow\",phase=\"pre\",outcome=\"timeout\"} 1"),
            "{text}"
        );
        let chain = HookChain::new(vec![entry("slow", Arc::new(Slow), 0, Mode::Disabled)]);
        assert!(chain.is_empty());
    }

    #[tokio::test]
    async fn conditions_select_targets_plugins_and_principals() {
        let mut e = entry("nobad", Arc::new(NoBad), 0, Mode::Enforce);
        e.when = Conditions {
            targets: vec!["ec*".into()],
            principals: vec!["*:alice".into()],
            ..Default::default()
        };
        let chain = HookChain::new(vec![e]);
        let mut bad = json!({"text": "BAD"});
        assert!(
            chain.run(Phase::Pre, &target(), &mut bad).await.is_ok(),
            "anonymous is not alice"
        );
        let alice = HookTarget {
            principal: Some("k1:alice"),
            ..target()
        };
        assert!(chain.run(Phase::Pre, &alice, &mut bad).await.is_err());
        let other = HookTarget { name: "add", ..alice };
        assert!(chain.run(Phase::Pre, &other, &mut bad).await.is_ok());
    }
}
