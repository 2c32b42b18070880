//! The security sections of the file: `[auth.jwt]` (OAuth 2.1 resource server),
//! `[authz]` + `[[policies]]` (authorization rules), and their validation and compilation
//! into the engine's runtime types.

use serde::{Deserialize, Serialize};
use waygate_core::policy::{Effect, Policy, Rule};

use super::ConfigError;

#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    /// An admin key made outside Waygate (a Kubernetes Secret, a vault), `wg_<id>_<secret>`:
    /// added to the key table at start when its id is absent, so every replica of a fleet
    /// can be given it with no first-start race and no key printed to a log. A key with
    /// that id that was revoked stays revoked.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub admin_key: Option<waygate_security::Secret>,
    /// Accept access tokens (JWTs) from an OAuth 2.1 authorization server besides API keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt: Option<JwtSection>,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct JwtSection {
    /// Required `iss`.
    pub issuer: String,
    /// Accepted `aud` values (one must match); the MCP resource URI is the usual one.
    pub audiences: Vec<String>,
    /// Where the signing keys are published (refreshed on an unknown `kid`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// Keys given inline instead of (or besides) a JWKS URL.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<StaticKey>,
    /// Accepted algorithms (default: RS256, ES256, EdDSA and their larger siblings).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub algorithms: Vec<String>,
    /// Clock skew allowed on `exp`/`nbf`, seconds (default 60).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leeway_secs: Option<u64>,
    /// Claim holding the roles for policies (default `roles`; a string or an array).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles_claim: Option<String>,
    /// Claim shown as the principal's name (default `sub`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name_claim: Option<String>,
    /// The canonical URI of this MCP endpoint, published in the RFC 9728 metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Authorization servers named in the metadata (default: the issuer).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub authorization_servers: Vec<String>,
    /// Scopes a token needs to use MCP (default `mcp`; empty list = none required).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required_scopes: Option<Vec<String>>,
    /// How often to re-fetch the JWKS even without an unknown `kid`, seconds (default 3600).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_refresh_secs: Option<u64>,
    /// A token with an unknown `kid` re-fetches the JWKS at most this often, seconds (default 10).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_min_refetch_secs: Option<u64>,
}

/// A verification key given in the file.
#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct StaticKey {
    /// Matched against the token's `kid` when both are set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// PEM public key (RSA, EC or Ed25519), inline or as `${file:PATH}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_key_pem: Option<String>,
    /// Shared secret for HS256/384/512 (use `${env:NAME}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub secret: Option<waygate_security::Secret>,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AuthzSection {
    /// `allow` (default) or `deny`: what tools/call, resources/read and prompts/get get when
    /// no rule matches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

/// One `[[policies]]` rule. Subjects (any of principals / roles / scopes; none = everyone)
/// and targets are globs with `*` and `?`.
#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyRule {
    pub name: String,
    /// `allow` or `deny`.
    pub effect: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub principals: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub prompts: Vec<String>,
}

pub const ALGORITHMS: [&str; 10] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA", "HS256",
];

/// Validate the security sections; `err(key, message)` builds the located error.
pub fn validate(
    auth: &AuthSection,
    authz: &AuthzSection,
    policies: &[PolicyRule],
    err: &dyn Fn(&str, String) -> ConfigError,
) -> Result<(), ConfigError> {
    if let Some(d) = &authz.default {
        if d != "allow" && d != "deny" {
            return Err(err(
                "authz.default",
                format!("got {d:?}, expected \"allow\" or \"deny\""),
            ));
        }
    }
    let mut names = std::collections::HashSet::new();
    for (i, p) in policies.iter().enumerate() {
        let key = format!("policies[{i}]");
        if p.name.trim().is_empty() {
            return Err(err(&format!("{key}.name"), "expected a non-empty rule name".into()));
        }
        if !names.insert(p.name.as_str()) {
            return Err(err(&format!("{key}.name"), format!("duplicate rule name {:?}", p.name)));
        }
        if p.effect != "allow" && p.effect != "deny" {
            return Err(err(
                &format!("{key}.effect"),
                format!("got {:?}, expected \"allow\" or \"deny\"", p.effect),
            ));
        }
        let no_target = p.methods.is_empty() && p.tools.is_empty() && p.resources.is_empty() && p.prompts.is_empty();
        if no_target {
            return Err(err(
                &key,
                "a rule needs at least one of methods, tools, resources or prompts (use [\"*\"] for all)".into(),
            ));
        }
    }
    if let Some(j) = &auth.jwt {
        if j.issuer.trim().is_empty() {
            return Err(err(
                "auth.jwt.issuer",
                "expected the issuer URL tokens carry in `iss`".into(),
            ));
        }
        if j.audiences.is_empty() {
            return Err(err(
                "auth.jwt.audiences",
                "expected at least one accepted audience (usually this server's MCP URL)".into(),
            ));
        }
        match &j.jwks_url {
            Some(u) if !(u.starts_with("https://") || u.starts_with("http://")) => {
                return Err(err("auth.jwt.jwks_url", format!("got {u:?}, expected an https:// URL")))
            }
            None if j.keys.is_empty() => {
                return Err(err(
                    "auth.jwt.jwks_url",
                    "expected a JWKS URL or at least one [[auth.jwt.keys]] entry".into(),
                ))
            }
            _ => {}
        }
        for (i, k) in j.keys.iter().enumerate() {
            if k.public_key_pem.is_some() == k.secret.is_some() {
                return Err(err(
                    &format!("auth.jwt.keys[{i}]"),
                    "expected exactly one of public_key_pem or secret".into(),
                ));
            }
        }
        for a in &j.algorithms {
            if !ALGORITHMS.contains(&a.as_str()) && a != "HS384" && a != "HS512" {
                return Err(err(
                    "auth.jwt.algorithms",
                    format!(
                        "unknown algorithm {a:?}; expected one of {}, HS384, HS512",
                        ALGORITHMS.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The engine's policy, or `None` when there are no rules and the default allows.
pub fn compile(authz: &AuthzSection, policies: &[PolicyRule]) -> Option<Policy> {
    let default_allow = authz.default.as_deref() != Some("deny");
    if policies.is_empty() && default_allow {
        return None;
    }
    let rules = policies
        .iter()
        .map(|p| Rule {
            name: p.name.clone(),
            effect: if p.effect == "deny" {
                Effect::Deny
            } else {
                Effect::Allow
            },
            principals: p.principals.clone(),
            roles: p.roles.clone(),
            scopes: p.scopes.clone(),
            methods: p.methods.clone(),
            tools: p.tools.clone(),
            resources: p.resources.clone(),
            prompts: p.prompts.clone(),
        })
        .collect();
    Some(Policy::new(rules, default_allow))
}
