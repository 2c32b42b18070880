//! Token-bucket rate limits, counted in MCP operations: one bucket per caller (the
//! transport-level limit, answered with HTTP 429 + `Retry-After`) and one per caller × tool
//! (answered with an `isError` result that tells the model when to retry), plus per-tool
//! concurrency caps and timeouts.
//!
//! Buckets live in the process unless a [`SharedBuckets`] store (Redis) is plugged in; then
//! every replica takes from the same bucket. If the shared store fails, the local bucket
//! decides (fail-open to the local limit, logged), so an outage of Redis never stops MCP.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::plugin::BoxFuture;

/// A bucket store shared by replicas. `take` returns `Ok(None)` when the tokens were taken,
/// `Ok(Some(wait))` when not, and `Err` when the store could not be asked.
pub trait SharedBuckets: Send + Sync {
    fn take<'a>(&'a self, key: &'a str, rate: Rate, cost: f64) -> BoxFuture<'a, Result<Option<Duration>, String>>;
}

/// `rate` operations per second with bursts up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// A set of buckets sharing one rate.
pub struct Limiter {
    rate: Rate,
    buckets: Mutex<HashMap<String, Bucket>>,
    shared: Option<Arc<dyn SharedBuckets>>,
    /// Key prefix in the shared store, so different limits never share a bucket.
    scope: String,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Limiter({:?})", self.rate)
    }
}

impl Limiter {
    pub fn new(rate: Rate) -> Self {
        Limiter {
            rate,
            buckets: Mutex::new(HashMap::new()),
            shared: None,
            scope: String::new(),
        }
    }

    /// Keep the buckets in `store` under `scope` (e.g. `caller`, `tool`).
    pub fn shared(mut self, store: Arc<dyn SharedBuckets>, scope: &str) -> Self {
        self.shared = Some(store);
        self.scope = scope.to_string();
        self
    }

    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// Tokens left in `key`'s local bucket now (the full burst for an unseen key); with a
    /// shared store this is this replica's view, for advisory headers only.
    pub fn remaining(&self, key: &str) -> f64 {
        let map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(key) {
            Some(b) => {
                let elapsed = Instant::now().duration_since(b.last).as_secs_f64();
                (b.tokens + elapsed * self.rate.per_second).min(self.rate.burst)
            }
            None => self.rate.burst,
        }
    }

    /// Take `cost` tokens for `key`, from the shared store when there is one.
    pub async fn take(&self, key: &str, cost: f64) -> Result<(), Duration> {
        if let Some(store) = &self.shared {
            let k = format!("{}:{key}", self.scope);
            match store.take(&k, self.rate, cost).await {
                Ok(None) => return Ok(()),
                Ok(Some(wait)) => return Err(wait),
                Err(e) => {
                    static WARNED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                    let n = WARNED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if n.is_power_of_two() || n == 0 {
                        tracing::warn!(error = %e, failures = n + 1, "shared rate-limit store failed; using the local bucket");
                    }
                }
            }
        }
        self.check_cost(key, cost)
    }

    /// Take one token for `key` locally; `Err(wait)` says how long until one is available.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.check_cost(key, 1.0)
    }

    fn check_cost(&self, key: &str, cost: f64) -> Result<(), Duration> {
        let now = Instant::now();
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 100_000 {
            map.retain(|_, b| now.duration_since(b.last) < Duration::from_secs(60));
        }
        let b = map.entry(key.to_string()).or_insert(Bucket {
            tokens: self.rate.burst,
            last: now,
        });
        let elapsed = now.duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate.per_second).min(self.rate.burst);
        b.last = now;
        if b.tokens >= cost {
            b.tokens -= cost;
            Ok(())
        } else {
            let wait = (cost - b.tokens) / self.rate.per_second.max(f64::MIN_POSITIVE);
            Err(Duration::from_secs_f64(wait.min(3600.0)))
        }
    }
}

/// Limits of one tool (or of `*`).
#[derive(Debug, Clone, Default)]
pub struct ToolRule {
    pub rate: Option<Rate>,
    /// Weight of one call in the caller's overall bucket.
    pub cost: f64,
    pub max_concurrent: Option<usize>,
    pub timeout: Option<Duration>,
    /// Largest result (serialized JSON bytes) passed back; longer text content is cut with
    /// an explicit marker.
    pub max_response_bytes: Option<usize>,
}

struct ToolEntry {
    rule: ToolRule,
    limiter: Option<Limiter>,
}

type ToolMap = HashMap<String, Arc<ToolEntry>>;

/// Per-tool limits, keyed by tool name (`*` applies to every tool without its own entry).
/// The rules can be replaced while calls run ([`ToolLimits::replace`]): a reload of
/// `[limits]` applies to the next call.
#[derive(Default)]
pub struct ToolLimits {
    by_tool: std::sync::RwLock<Arc<ToolMap>>,
    /// One semaphore per tool name; created on first use, only for catalog tools.
    running: Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
}

fn tool_map(rules: impl IntoIterator<Item = (String, ToolRule)>, shared: Option<Arc<dyn SharedBuckets>>) -> ToolMap {
    rules
        .into_iter()
        .map(|(t, rule)| {
            let limiter = rule.rate.map(|r| match &shared {
                Some(s) => Limiter::new(r).shared(s.clone(), "tool"),
                None => Limiter::new(r),
            });
            (t, Arc::new(ToolEntry { rule, limiter }))
        })
        .collect()
}

impl ToolLimits {
    pub fn new(rules: impl IntoIterator<Item = (String, ToolRule)>, shared: Option<Arc<dyn SharedBuckets>>) -> Self {
        ToolLimits {
            by_tool: std::sync::RwLock::new(Arc::new(tool_map(rules, shared))),
            running: Mutex::new(HashMap::new()),
        }
    }

    /// Replace every rule. Buckets start full again; calls already running keep the slot
    /// they hold under the old concurrency cap.
    pub fn replace(&self, rules: impl IntoIterator<Item = (String, ToolRule)>, shared: Option<Arc<dyn SharedBuckets>>) {
        let map = Arc::new(tool_map(rules, shared));
        *self.by_tool.write().unwrap_or_else(|e| e.into_inner()) = map;
        self.running.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    fn map(&self) -> Arc<ToolMap> {
        self.by_tool.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn is_empty(&self) -> bool {
        self.map().is_empty()
    }

    /// The configured rule that applies to `tool`: its own name, or `*`.
    pub fn rule_of<'a>(&self, tool: &'a str) -> &'a str {
        if self.map().contains_key(tool) {
            tool
        } else {
            "*"
        }
    }

    fn entry(&self, tool: &str) -> Option<Arc<ToolEntry>> {
        let map = self.map();
        map.get(tool).or_else(|| map.get("*")).cloned()
    }

    /// Weight of a call in the caller's overall bucket.
    pub fn cost(&self, tool: &str) -> f64 {
        self.entry(tool)
            .map(|e| e.rule.cost)
            .filter(|c| *c > 0.0)
            .unwrap_or(1.0)
    }

    pub fn timeout(&self, tool: &str) -> Option<Duration> {
        self.entry(tool).and_then(|e| e.rule.timeout)
    }

    pub fn max_response_bytes(&self, tool: &str) -> Option<usize> {
        self.entry(tool).and_then(|e| e.rule.max_response_bytes)
    }

    /// Check `caller` × `tool`.
    pub async fn check(&self, caller: &str, tool: &str) -> Result<(), Duration> {
        match self.entry(tool) {
            Some(e) => match &e.limiter {
                Some(l) => l.take(&format!("{caller}\u{1f}{tool}"), 1.0).await,
                None => Ok(()),
            },
            None => Ok(()),
        }
    }

    /// A slot for one running call: `Ok(None)` when the tool has no cap, `Err(cap)` when full.
    pub fn acquire(&self, tool: &str) -> Result<Option<tokio::sync::OwnedSemaphorePermit>, usize> {
        let Some(cap) = self.entry(tool).and_then(|e| e.rule.max_concurrent) else {
            return Ok(None);
        };
        let sem = {
            let mut m = self.running.lock().unwrap_or_else(|e| e.into_inner());
            m.entry(tool.to_string())
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(cap)))
                .clone()
        };
        sem.try_acquire_owned().map(Some).map_err(|_| cap)
    }
}

/// The per-caller limit of a listener, replaceable while it serves (a reload of
/// `[limits]`); `None` = unlimited.
#[derive(Default)]
pub struct CallerLimit(std::sync::RwLock<Option<Arc<Limiter>>>);

impl std::fmt::Debug for CallerLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CallerLimit({:?})", self.get())
    }
}

impl CallerLimit {
    pub fn new(limiter: Option<Arc<Limiter>>) -> Self {
        CallerLimit(std::sync::RwLock::new(limiter))
    }

    pub fn get(&self) -> Option<Arc<Limiter>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Install another limiter (its buckets start full), or none.
    pub fn set(&self, limiter: Option<Arc<Limiter>>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = limiter;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_waits() {
        let l = Limiter::new(Rate {
            per_second: 10.0,
            burst: 3.0,
        });
        assert!(l.check("a").is_ok() && l.check("a").is_ok() && l.check("a").is_ok());
        let wait = l.check("a").unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(100), "{wait:?}");
        assert!(l.check("b").is_ok(), "callers are independent");
        std::thread::sleep(Duration::from_millis(120));
        assert!(l.check("a").is_ok(), "refilled");
    }

    #[tokio::test]
    async fn tool_limits_fall_back_to_star() {
        let rule = ToolRule {
            rate: Some(Rate {
                per_second: 1.0,
                burst: 1.0,
            }),
            cost: 3.0,
            max_concurrent: Some(1),
            timeout: None,
            max_response_bytes: None,
        };
        let t = ToolLimits::new([("*".to_string(), rule)], None);
        assert!(t.check("p", "echo").await.is_ok());
        assert!(t.check("p", "echo").await.is_err());
        assert!(t.check("p", "add").await.is_ok(), "each tool has its own bucket");
        assert_eq!(t.cost("echo"), 3.0);
        let held = t.acquire("echo").unwrap();
        assert!(held.is_some());
        assert_eq!(t.acquire("echo").unwrap_err(), 1, "cap of one running call");
        assert!(t.acquire("add").unwrap().is_some(), "each tool has its own cap");
        drop(held);
        assert!(t.acquire("echo").unwrap().is_some());
        t.replace([], None);
        assert!(t.is_empty() && t.check("p", "echo").await.is_ok(), "rules replaced");
        assert_eq!(t.cost("echo"), 1.0);
    }

    #[test]
    fn cost_weights() {
        let l = Limiter::new(Rate {
            per_second: 1.0,
            burst: 5.0,
        });
        assert!(l.check_cost("a", 4.0).is_ok());
        assert!(l.check_cost("a", 4.0).is_err());
        assert!(l.check_cost("a", 1.0).is_ok());
    }
}
