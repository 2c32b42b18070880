//! Which changes a reload applies and which wait for a restart, key by key. A reload
//! applies plugins, upstreams, virtual servers, catalog naming, hooks, the authorization
//! policy and the rate limits (all but `limits.redis_url`) at once; everything else
//! (listener, TLS, store, auth, audit, logging, OpenTelemetry, …) is read at start, so a
//! change there is named until the process restarts — in the log, in
//! `/api/v1/diagnostics` and in a validation of a candidate.

use std::collections::BTreeSet;

use super::FileConfig;

/// Top-level keys a reload applies at once.
const LIVE: &[&str] = &[
    "version",
    "plugins",
    "upstreams",
    "servers",
    "catalog",
    "hooks",
    "policies",
    "authz",
];

/// Keys inside a section that otherwise waits for a restart which a reload applies.
const LIVE_KEYS: &[&str] = &["limits.requests_per_second", "limits.burst", "limits.tools"];

fn section(key: &str) -> &str {
    key.split(['.', '[']).next().unwrap_or(key)
}

fn live(key: &str) -> bool {
    LIVE.contains(&section(key))
        || LIVE_KEYS
            .iter()
            .any(|k| key == *k || key.strip_prefix(k).is_some_and(|r| r.starts_with(['.', '['])))
}

/// Sections compared as values (secrets included, which `flatten` shows redacted).
fn sections(a: &FileConfig, b: &FileConfig) -> [(&'static str, bool); 12] {
    [
        ("server", a.server != b.server),
        ("http", a.http != b.http),
        ("mcp", a.mcp != b.mcp),
        ("store", a.store != b.store),
        ("auth", a.auth != b.auth),
        ("limits", a.limits.redis_url != b.limits.redis_url),
        ("pinning", a.pinning != b.pinning),
        ("audit", a.audit != b.audit),
        ("log", a.log != b.log),
        ("otel", a.otel != b.otel),
        ("outbound", a.outbound != b.outbound),
        ("admin", a.admin != b.admin),
    ]
}

/// The keys of `next` that differ from `running` and take effect only after a restart,
/// e.g. `server.listen`, `otel.endpoint`; a changed secret is named by its section.
pub fn restart_needed(running: &FileConfig, next: &FileConfig) -> Vec<String> {
    let (a, b) = (running.flatten(), next.flatten());
    let mut keys: BTreeSet<String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k) && !live(k))
        .cloned()
        .collect();
    for (name, changed) in sections(running, next) {
        if changed && !keys.iter().any(|k| section(k) == name) {
            keys.insert(format!("{name} (a secret value)"));
        }
    }
    keys.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> FileConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn live_sections_are_not_named_and_the_rest_are_named_by_key() {
        let a = cfg("version = 3\n");
        let b = cfg(
            "version = 3\n[server]\nlisten = \"127.0.0.1:9\"\n[otel]\nendpoint = \"http://127.0.0.1:4318\"\n\
             [[servers]]\nname = \"x\"\ninclude = [\"demo\"]\n",
        );
        let keys = restart_needed(&a, &b);
        assert!(keys.iter().any(|k| k == "server.listen"), "{keys:?}");
        assert!(keys.iter().any(|k| k == "otel.endpoint"), "{keys:?}");
        assert!(!keys.iter().any(|k| k.starts_with("servers")), "{keys:?}");
        assert!(restart_needed(&b, &b).is_empty());
        let limits = cfg("version = 3\n[limits]\nrequests_per_second = 2\n[limits.tools.\"*\"]\nmax_concurrent = 1\n");
        assert!(restart_needed(&a, &limits).is_empty(), "limits apply live");
        let redis = cfg("version = 3\n[limits]\nredis_url = \"redis://127.0.0.1:1\"\n");
        assert!(
            !restart_needed(&a, &redis).is_empty(),
            "the Redis connection is made at start"
        );
    }
}
