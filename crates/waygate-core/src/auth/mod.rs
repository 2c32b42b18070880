//! Authentication: who is calling. API keys are built in ([`keys`]); bearer tokens of an
//! OAuth 2.1 authorization server (JWTs) are verified by a [`TokenVerifier`] the binary
//! plugs in, so the crypto and the JWKS client stay out of the engine.
//!
//! The result is a shared [`Principal`]: built once per key (or per verified token) and
//! handed out as an `Arc`, so the request path does not allocate for it.

mod keys;

use std::sync::Arc;

pub use keys::{check_provided_key, check_scope, generate_key, hash_key, ApiKeys, KeyRecord, NewKey};

use crate::plugin::BoxFuture;

/// How a principal proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    ApiKey,
    Jwt,
}

/// Who is calling, after authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Stable id: the key id, or the token's `sub`.
    pub id: String,
    /// Human-readable name: the key's name, or a configured claim (e.g. `email`).
    pub name: String,
    /// OAuth scopes (`scope`/`scp` claim) or the key's scopes.
    pub scopes: Vec<String>,
    /// Roles for authorization policies: a configured claim, or the key's scopes.
    pub roles: Vec<String>,
    pub method: Method,
    /// `id:name`, precomputed for audit rows and logs.
    pub label: Arc<str>,
}

impl Principal {
    pub fn new(id: String, name: String, scopes: Vec<String>, roles: Vec<String>, method: Method) -> Self {
        let label = Arc::from(format!("{id}:{name}"));
        Principal {
            id,
            name,
            scopes,
            roles,
            method,
            label,
        }
    }

    /// `admin` implies every scope.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope || s == "admin")
    }
}

/// Why a request was not authenticated. Messages never echo the presented credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("authentication required: send Authorization: Bearer <api key or access token> or X-API-Key")]
    Missing,
    #[error("invalid API key")]
    Invalid,
    #[error("API key has expired")]
    Expired,
    #[error("API key has been revoked")]
    Revoked,
    /// A bearer token that is not acceptable; the reason is safe to show (no token content).
    #[error("invalid access token: {0}")]
    InvalidToken(String),
    /// The verifier could not decide (JWKS unreachable): 503, not 401.
    #[error("cannot verify access tokens right now: {0}")]
    Unavailable(String),
}

/// Verifies bearer tokens that are not API keys (JWTs from an authorization server).
pub trait TokenVerifier: Send + Sync {
    fn verify<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Arc<Principal>, AuthError>>;
}

/// API keys plus an optional token verifier: the one thing transports ask.
#[derive(Clone, Default)]
pub struct Authenticator {
    pub keys: ApiKeys,
    pub tokens: Option<Arc<dyn TokenVerifier>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Authenticator({:?}, jwt: {})", self.keys, self.tokens.is_some())
    }
}

/// The credential a request presents, taken from its headers.
pub fn presented<'a>(authorization: Option<&'a str>, x_api_key: Option<&'a str>) -> Result<&'a str, AuthError> {
    match (authorization, x_api_key) {
        (Some(a), _) => {
            let (scheme, token) = a.trim().split_once(' ').ok_or(AuthError::Invalid)?;
            if !scheme.eq_ignore_ascii_case("bearer") {
                return Err(AuthError::Invalid);
            }
            let token = token.trim();
            if token.is_empty() {
                return Err(AuthError::Missing);
            }
            Ok(token)
        }
        (None, Some(k)) if !k.trim().is_empty() => Ok(k.trim()),
        _ => Err(AuthError::Missing),
    }
}

impl Authenticator {
    /// Whether API keys are the only credential (the synchronous fast path applies).
    pub fn keys_only(&self) -> bool {
        self.tokens.is_none()
    }

    /// Authenticate from `Authorization: Bearer …` or `X-API-Key`. Keys (`wg_…`) are
    /// checked locally; anything else goes to the token verifier when one is configured.
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
        x_api_key: Option<&str>,
    ) -> Result<Arc<Principal>, AuthError> {
        let cred = presented(authorization, x_api_key)?;
        if cred.starts_with("wg_") {
            return self.keys.verify(cred);
        }
        match &self.tokens {
            Some(v) if authorization.is_some() => v.verify(cred).await,
            _ => Err(AuthError::Invalid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presented_credentials() {
        assert_eq!(presented(Some("Bearer abc"), None), Ok("abc"));
        assert_eq!(presented(Some("bearer   abc "), None), Ok("abc"));
        assert_eq!(presented(None, Some("k")), Ok("k"));
        assert_eq!(presented(None, None), Err(AuthError::Missing));
        assert_eq!(presented(Some("Basic abc"), None), Err(AuthError::Invalid));
        assert_eq!(presented(Some("Bearer"), None), Err(AuthError::Invalid));
        assert_eq!(presented(None, Some("  ")), Err(AuthError::Missing));
    }
}
