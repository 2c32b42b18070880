//! OAuth 2.1 resource server: verifies JWT access tokens against static keys and/or a JWKS
//! (refreshed when a token names an unknown `kid`, at most every few seconds), checks
//! `iss`, `aud`, `exp` and `nbf` with a leeway, and maps claims to a [`Principal`].
//!
//! Verified tokens are remembered until they expire (keyed by a SHA-256 of the token), so
//! a client that sends the same token on every request pays for one signature check.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use waygate_core::auth::{AuthError, Method, Principal, TokenVerifier};
use waygate_core::BoxFuture;

/// Settings, already resolved from the configuration file.
#[derive(Clone)]
pub struct JwtSettings {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub jwks_url: Option<String>,
    /// `(kid, key)` given inline.
    pub static_keys: Vec<(Option<String>, DecodingKey)>,
    pub algorithms: Vec<Algorithm>,
    pub leeway: Duration,
    pub roles_claim: String,
    pub name_claim: String,
    /// Scopes a token needs to be granted the `mcp` scope (empty: none needed).
    pub required_scopes: Vec<String>,
    pub jwks_refresh: Duration,
    /// An unknown `kid` re-fetches the JWKS at most this often (protects the issuer from a
    /// flood of forged tokens).
    pub min_refetch: Duration,
}

/// The default accepted algorithms: every asymmetric one (HMAC only when asked for).
pub fn default_algorithms() -> Vec<Algorithm> {
    use Algorithm::*;
    vec![RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA]
}

struct Keys {
    /// From the JWKS: `(kid, alg hint, key)`.
    fetched: Vec<(Option<String>, Option<Algorithm>, DecodingKey)>,
    fetched_at: Option<Instant>,
}

/// SHA-256 of a verified token → its principal and `exp`.
type VerifiedCache = HashMap<[u8; 32], (Arc<Principal>, u64)>;

pub struct JwtVerifier {
    cfg: JwtSettings,
    keys: RwLock<Keys>,
    /// One JWKS fetch at a time; a burst of unknown-kid tokens waits for it.
    refresh: tokio::sync::Mutex<()>,
    client: reqwest::Client,
    verified: RwLock<VerifiedCache>,
}

const MAX_JWKS_BYTES: usize = 1 << 20;
const MAX_CACHED: usize = 10_000;

impl JwtVerifier {
    pub fn new(cfg: JwtSettings) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .map_err(|e| format!("cannot build the JWKS client: {e}"))?;
        Ok(JwtVerifier {
            cfg,
            keys: RwLock::new(Keys {
                fetched: vec![],
                fetched_at: None,
            }),
            refresh: tokio::sync::Mutex::new(()),
            client,
            verified: RwLock::new(HashMap::new()),
        })
    }

    /// Fetch the JWKS now (at start, so the first request does not wait for it).
    pub async fn prefetch(&self) -> Result<usize, String> {
        self.fetch_jwks().await
    }

    async fn fetch_jwks(&self) -> Result<usize, String> {
        let Some(url) = &self.cfg.jwks_url else { return Ok(0) };
        let resp = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| format!("JWKS {url} unreachable: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("JWKS {url} answered HTTP {}", resp.status()));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| format!("JWKS {url}: could not read the body: {e}"))?;
        if body.len() > MAX_JWKS_BYTES {
            return Err(format!("JWKS {url} is larger than {MAX_JWKS_BYTES} bytes"));
        }
        let set: JwkSet = serde_json::from_slice(&body).map_err(|e| format!("JWKS {url} is not a JWK set: {e}"))?;
        let mut fetched = Vec::new();
        for jwk in &set.keys {
            match DecodingKey::from_jwk(jwk) {
                Ok(k) => {
                    let alg = jwk
                        .common
                        .key_algorithm
                        .and_then(|a| a.to_string().parse::<Algorithm>().ok());
                    fetched.push((jwk.common.key_id.clone(), alg, k));
                }
                Err(e) => tracing::warn!(kid = ?jwk.common.key_id, error = %e, "JWKS key skipped"),
            }
        }
        let n = fetched.len();
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        keys.fetched = fetched;
        keys.fetched_at = Some(Instant::now());
        tracing::info!(url = %url, keys = n, "JWKS loaded");
        Ok(n)
    }

    /// Keys that may have signed a token with this `kid` and `alg`.
    fn candidates(&self, kid: Option<&str>, alg: Algorithm) -> Vec<DecodingKey> {
        let family = alg.family();
        let kid_ok = |k: &Option<String>| match (kid, k) {
            (Some(want), Some(have)) => want == have,
            _ => true,
        };
        let mut out: Vec<DecodingKey> = self
            .cfg
            .static_keys
            .iter()
            .filter(|(k, key)| kid_ok(k) && key.family() == family)
            .map(|(_, key)| key.clone())
            .collect();
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        out.extend(
            keys.fetched
                .iter()
                .filter(|(k, a, key)| kid_ok(k) && key.family() == family && a.is_none_or(|a| a == alg))
                .map(|(_, _, key)| key.clone()),
        );
        out
    }

    fn stale(&self) -> bool {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        keys.fetched_at.is_none_or(|t| t.elapsed() > self.cfg.jwks_refresh)
    }

    fn may_refetch(&self) -> bool {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        keys.fetched_at.is_none_or(|t| t.elapsed() > self.cfg.min_refetch)
    }

    async fn refetch(&self, force: bool) -> Result<(), AuthError> {
        if self.cfg.jwks_url.is_none() {
            return Ok(());
        }
        let _one = self.refresh.lock().await;
        if !(self.stale() || (force && self.may_refetch())) {
            return Ok(()); // someone else just did it
        }
        if let Err(e) = self.fetch_jwks().await {
            tracing::warn!(error = %e, "JWKS refresh failed");
            let have_keys = !self.keys.read().unwrap_or_else(|e| e.into_inner()).fetched.is_empty();
            if !have_keys && self.cfg.static_keys.is_empty() {
                return Err(AuthError::Unavailable(
                    "the authorization server's keys (JWKS) cannot be fetched".into(),
                ));
            }
        }
        Ok(())
    }

    async fn verify_token(&self, token: &str) -> Result<Arc<Principal>, AuthError> {
        let digest = digest32(token.as_bytes());
        let now = jsonwebtoken::get_current_timestamp();
        if let Some((p, exp)) = self.verified.read().unwrap_or_else(|e| e.into_inner()).get(&digest) {
            if *exp + self.cfg.leeway.as_secs() > now {
                return Ok(p.clone());
            }
        }
        let bad = |m: &str| AuthError::InvalidToken(m.to_string());
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| bad("not a JWT, or its header names an unsupported algorithm (\"none\" is never accepted)"))?;
        if !self.cfg.algorithms.contains(&header.alg) {
            return Err(AuthError::InvalidToken(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        if self.stale() {
            self.refetch(false).await?;
        }
        let mut keys = self.candidates(header.kid.as_deref(), header.alg);
        if keys.is_empty() {
            self.refetch(true).await?;
            keys = self.candidates(header.kid.as_deref(), header.alg);
        }
        if keys.is_empty() {
            return Err(bad("no known key matches the token's kid and algorithm"));
        }
        let mut v = Validation::new(header.alg);
        v.algorithms = vec![header.alg];
        v.leeway = self.cfg.leeway.as_secs();
        v.validate_nbf = true;
        v.set_issuer(&[&self.cfg.issuer]);
        v.set_audience(&self.cfg.audiences);
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        let mut last = bad("signature does not verify");
        for key in &keys {
            match jsonwebtoken::decode::<Value>(token, key, &v) {
                Ok(data) => {
                    let (p, exp) = self.principal(&data.claims)?;
                    let mut cache = self.verified.write().unwrap_or_else(|e| e.into_inner());
                    if cache.len() >= MAX_CACHED {
                        cache.retain(|_, (_, e)| *e > now);
                        if cache.len() >= MAX_CACHED {
                            cache.clear();
                        }
                    }
                    cache.insert(digest, (p.clone(), exp));
                    return Ok(p);
                }
                Err(e) => {
                    use jsonwebtoken::errors::ErrorKind as K;
                    last = match e.kind() {
                        K::InvalidSignature => bad("signature does not verify"),
                        K::ExpiredSignature => bad("token has expired"),
                        K::ImmatureSignature => bad("token is not valid yet (nbf)"),
                        K::InvalidIssuer => bad("issuer (iss) is not accepted"),
                        K::InvalidAudience => bad("audience (aud) does not name this server"),
                        K::MissingRequiredClaim(c) => AuthError::InvalidToken(format!("claim {c:?} is missing")),
                        K::InvalidClaimFormat(c) => AuthError::InvalidToken(format!("claim {c:?} has the wrong type")),
                        K::InvalidAlgorithm => bad("algorithm does not match the key"),
                        _ => bad("token could not be verified"),
                    };
                    // Claim errors are the same for every key; only a bad signature
                    // is worth trying the next candidate for.
                    if !matches!(
                        e.kind(),
                        K::InvalidSignature
                            | K::InvalidAlgorithm
                            | K::InvalidEcdsaKey
                            | K::InvalidRsaKey(_)
                            | K::InvalidEddsaKey
                    ) {
                        return Err(last);
                    }
                }
            }
        }
        Err(last)
    }

    /// Claims → principal. `admin` is never taken from a token: administration needs an
    /// API key with the admin scope.
    fn principal(&self, c: &Value) -> Result<(Arc<Principal>, u64), AuthError> {
        let sub = c
            .get("sub")
            .and_then(Value::as_str)
            .ok_or_else(|| AuthError::InvalidToken("claim \"sub\" is missing".into()))?;
        let name = c
            .get(&self.cfg.name_claim)
            .and_then(Value::as_str)
            .unwrap_or(sub)
            .to_string();
        let strings = |v: Option<&Value>| -> Vec<String> {
            match v {
                Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
                Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
                _ => vec![],
            }
        };
        let mut scopes = strings(c.get("scope"));
        scopes.extend(strings(c.get("scp")));
        scopes.retain(|s| s != "admin");
        let roles = strings(c.get(&self.cfg.roles_claim));
        // `mcp` is what the transport checks: granted exactly when the token carries
        // every required scope.
        let granted = self.cfg.required_scopes.iter().all(|r| scopes.contains(r));
        scopes.retain(|s| s != "mcp");
        if granted {
            scopes.push("mcp".into());
        }
        let exp = c.get("exp").and_then(Value::as_u64).unwrap_or(0);
        let p = Principal::new(format!("jwt:{sub}"), name, scopes, roles, Method::Jwt);
        Ok((Arc::new(p), exp))
    }
}

impl TokenVerifier for JwtVerifier {
    fn verify<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Arc<Principal>, AuthError>> {
        Box::pin(self.verify_token(token))
    }
}

/// SHA-256 of the token, the cache key (tokens themselves are not kept).
fn digest32(b: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(b).into()
}
