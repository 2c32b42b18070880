//! Token buckets in Redis, so every replica sharing one Redis enforces one limit.
//!
//! Each take is one `EVALSHA` of a small Lua script that refills and takes atomically on the
//! Redis server, using the server's clock (`TIME`), so replicas with skewed clocks agree.
//! Idle buckets expire on their own.

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::Script;
use waygate_core::ratelimit::{Rate, SharedBuckets};
use waygate_core::BoxFuture;

/// KEYS[1] = bucket; ARGV = rate per second, burst, cost. Returns the wait in
/// microseconds (0 = taken).
const TAKE: &str = r#"
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1])
local ts = tonumber(b[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate / 1000000)
end
local wait = 0
if tokens >= cost then
  tokens = tokens - cost
else
  wait = math.ceil((cost - tokens) * 1000000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return wait
"#;

pub struct RedisBuckets {
    conn: ConnectionManager,
    script: Script,
    prefix: String,
}

impl RedisBuckets {
    /// Connect (and keep reconnecting in the background); fails only on a bad URL or when
    /// the first connection cannot be made within `timeout`.
    pub async fn connect(url: &str, prefix: &str, timeout: Duration) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("invalid limits.redis_url: {e}"))?;
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1);
        let conn = tokio::time::timeout(timeout, ConnectionManager::new_with_config(client, cfg))
            .await
            .map_err(|_| format!("Redis did not answer within {} ms", timeout.as_millis()))?
            .map_err(|e| format!("cannot connect to Redis: {e}"))?;
        Ok(RedisBuckets {
            conn,
            script: Script::new(TAKE),
            prefix: prefix.to_string(),
        })
    }
}

impl SharedBuckets for RedisBuckets {
    fn take<'a>(&'a self, key: &'a str, rate: Rate, cost: f64) -> BoxFuture<'a, Result<Option<Duration>, String>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let wait_us: i64 = self
                .script
                .key(format!("{}:{key}", self.prefix))
                .arg(rate.per_second)
                .arg(rate.burst)
                .arg(cost)
                .invoke_async(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            Ok((wait_us > 0).then(|| Duration::from_micros(wait_us as u64)))
        })
    }
}
