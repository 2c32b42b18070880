//! Token-bucket rate limits, counted in MCP operations: one bucket per caller (the
//! transport-level limit, answered with HTTP 429 + `Retry-After`) and one per caller × tool
//! (answered with an `isError` result that tells the model when to retry). Local to the
//! process; buckets idle for a minute are forgotten.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
        }
    }

    /// Take one token for `key`; `Err(wait)` says how long until one is available.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
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
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - b.tokens) / self.rate.per_second.max(f64::MIN_POSITIVE);
            Err(Duration::from_secs_f64(wait.min(3600.0)))
        }
    }
}

/// Per-tool limits, keyed by tool name (`*` applies to every tool without its own rate).
#[derive(Default)]
pub struct ToolLimits {
    by_tool: HashMap<String, Limiter>,
}

impl ToolLimits {
    pub fn new(rates: impl IntoIterator<Item = (String, Rate)>) -> Self {
        ToolLimits {
            by_tool: rates.into_iter().map(|(t, r)| (t, Limiter::new(r))).collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_tool.is_empty()
    }

    /// Check `caller` × `tool`.
    pub fn check(&self, caller: &str, tool: &str) -> Result<(), Duration> {
        match self.by_tool.get(tool).or_else(|| self.by_tool.get("*")) {
            Some(l) => l.check(&format!("{caller}\u{1f}{tool}")),
            None => Ok(()),
        }
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

    #[test]
    fn tool_limits_fall_back_to_star() {
        let t = ToolLimits::new([(
            "*".to_string(),
            Rate {
                per_second: 1.0,
                burst: 1.0,
            },
        )]);
        assert!(t.check("p", "echo").is_ok());
        assert!(t.check("p", "echo").is_err());
        assert!(t.check("p", "add").is_ok(), "each tool has its own bucket");
    }
}
