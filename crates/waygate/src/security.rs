//! Building the security layers of `serve` from the configuration: the authenticator (API
//! keys + optional JWT verifier and its RFC 9728 metadata), the rate limiters (local or
//! shared through Redis), per-tool limits and the outbound SSRF guard.

use std::sync::Arc;
use std::time::Duration;

use waygate_core::auth::{ApiKeys, Authenticator};
use waygate_core::ratelimit::{CallerLimit, Limiter, Rate, SharedBuckets, ToolLimits, ToolRule};
use waygate_security::{JwtSettings, JwtVerifier};
use waygate_transport::http::ResourceMetadata;

use crate::config::security::JwtSection;
use crate::config::FileConfig;

type Error = Box<dyn std::error::Error>;

/// API keys plus, when `[auth.jwt]` is set, a JWT verifier (its JWKS fetched now).
pub async fn authenticator(
    keys: ApiKeys,
    cfg: &FileConfig,
) -> Result<(Authenticator, Option<Arc<ResourceMetadata>>), Error> {
    let Some(j) = &cfg.auth.jwt else {
        return Ok((Authenticator { keys, tokens: None }, None));
    };
    let verifier = JwtVerifier::new(jwt_settings(j)?)?;
    if j.jwks_url.is_some() {
        match verifier.prefetch().await {
            Ok(n) => tracing::info!(keys = n, "JWT verification ready"),
            // Not fatal: the issuer may come up later; tokens get 503 until then.
            Err(e) => tracing::warn!(error = %e, "JWKS not reachable at start; will retry on the first token"),
        }
    }
    let meta = ResourceMetadata {
        resource: j.resource.clone(),
        authorization_servers: if j.authorization_servers.is_empty() {
            vec![j.issuer.clone()]
        } else {
            j.authorization_servers.clone()
        },
        scopes_supported: j.required_scopes.clone().unwrap_or_else(|| vec!["mcp".into()]),
    };
    let auth = Authenticator {
        keys,
        tokens: Some(Arc::new(verifier)),
    };
    Ok((auth, Some(Arc::new(meta))))
}

fn jwt_settings(j: &JwtSection) -> Result<JwtSettings, Error> {
    use jsonwebtoken::{Algorithm, DecodingKey};
    let mut static_keys = Vec::new();
    for (i, k) in j.keys.iter().enumerate() {
        let key = match (&k.public_key_pem, &k.secret) {
            (Some(pem), _) => {
                let b = pem.as_bytes();
                DecodingKey::from_rsa_pem(b)
                    .or_else(|_| DecodingKey::from_ec_pem(b))
                    .or_else(|_| DecodingKey::from_ed_pem(b))
                    .map_err(|e| {
                        format!("auth.jwt.keys[{i}].public_key_pem: expected a PEM RSA, EC or Ed25519 public key ({e})")
                    })?
            }
            (None, Some(secret)) => DecodingKey::from_secret(secret.expose().as_bytes()),
            (None, None) => return Err(format!("auth.jwt.keys[{i}]: expected public_key_pem or secret").into()),
        };
        static_keys.push((k.kid.clone(), key));
    }
    let algorithms = if j.algorithms.is_empty() {
        let mut a = waygate_security::jwt::default_algorithms();
        if j.keys.iter().any(|k| k.secret.is_some()) {
            a.push(Algorithm::HS256);
        }
        a
    } else {
        j.algorithms
            .iter()
            .map(|a| {
                a.parse::<Algorithm>()
                    .map_err(|_| format!("auth.jwt.algorithms: unknown {a:?}"))
            })
            .collect::<Result<_, _>>()?
    };
    Ok(JwtSettings {
        issuer: j.issuer.clone(),
        audiences: j.audiences.clone(),
        jwks_url: j.jwks_url.clone(),
        static_keys,
        algorithms,
        leeway: Duration::from_secs(j.leeway_secs.unwrap_or(60)),
        roles_claim: j.roles_claim.clone().unwrap_or_else(|| "roles".into()),
        name_claim: j.name_claim.clone().unwrap_or_else(|| "sub".into()),
        required_scopes: j.required_scopes.clone().unwrap_or_else(|| vec!["mcp".into()]),
        jwks_refresh: Duration::from_secs(j.jwks_refresh_secs.unwrap_or(3600).max(10)),
        min_refetch: Duration::from_secs(j.jwks_min_refetch_secs.unwrap_or(10)),
    })
}

/// The shared bucket store, when `limits.redis_url` is set.
pub async fn shared_buckets(cfg: &FileConfig) -> Result<Option<Arc<dyn SharedBuckets>>, Error> {
    let Some(url) = &cfg.limits.redis_url else {
        return Ok(None);
    };
    let b = waygate_security::RedisBuckets::connect(url.expose(), "waygate:rl", Duration::from_secs(2))
        .await
        .map_err(|e| format!("limits.redis_url: {e}"))?;
    tracing::info!("rate limits shared through Redis");
    Ok(Some(Arc::new(b)))
}

fn rate(per_second: f64, burst: Option<f64>) -> Rate {
    Rate {
        per_second,
        burst: burst.unwrap_or(per_second).max(1.0),
    }
}

/// The per-caller limiter (HTTP 429), if configured.
pub fn caller_limiter(cfg: &FileConfig, shared: Option<&Arc<dyn SharedBuckets>>) -> Option<Arc<Limiter>> {
    let r = cfg.limits.requests_per_second?;
    let l = Limiter::new(rate(r, cfg.limits.burst));
    Some(Arc::new(match shared {
        Some(s) => l.shared(s.clone(), "caller"),
        None => l,
    }))
}

/// Per-tool quotas, costs, concurrency caps and timeouts, as the engine's rules.
fn tool_rules(cfg: &FileConfig) -> Vec<(String, ToolRule)> {
    cfg.limits
        .tools
        .iter()
        .map(|(t, r)| {
            let rule = ToolRule {
                rate: r.per_second.map(|p| rate(p, r.burst)),
                cost: r.cost.unwrap_or(1.0),
                max_concurrent: r.max_concurrent,
                timeout: r.timeout_ms.map(Duration::from_millis),
                max_response_bytes: r.max_response_bytes,
            };
            (t.clone(), rule)
        })
        .collect()
}

/// Per-tool limits (empty when none are configured; a reload may add some).
pub fn tool_limits(cfg: &FileConfig, shared: Option<Arc<dyn SharedBuckets>>) -> ToolLimits {
    ToolLimits::new(tool_rules(cfg), shared)
}

/// The limits a running server can change: the per-caller limiter of its listener and the
/// shared bucket store they were built with (`limits.redis_url` is read at start only).
pub struct LiveLimits {
    pub caller: Arc<CallerLimit>,
    pub shared: Option<Arc<dyn SharedBuckets>>,
}

impl LiveLimits {
    /// Apply `[limits]` of `cfg` to the next request: the caller limiter and every tool
    /// rule are rebuilt (their buckets start full).
    pub fn apply(&self, cfg: &FileConfig, engine: &waygate_core::Engine) {
        self.caller.set(caller_limiter(cfg, self.shared.as_ref()));
        if let Some(t) = engine.tool_limits() {
            t.replace(tool_rules(cfg), self.shared.clone());
        }
    }
}
