//! What a successful result carries for its revision: `resultType`, the 2026-07-28 cache
//! hints (`ttlMs`, `cacheScope`) told truthfully, and the server identity.

use serde_json::{Map, Value};
use waygate_protocol::{meta, methods, ProtocolVersion};

use super::Engine;

/// What decides a result's `cacheScope`: `public` promises the answer is the same for
/// every caller, which holds only when no policy filters it by caller and (for reads, whose
/// content a plugin or upstream may tailor to the principal) nobody is authenticated.
#[derive(Clone, Copy)]
pub(super) struct CacheScope {
    /// The request carried MRTR `requestState`/`inputResponses`: never cacheable.
    pub(super) retried: bool,
    /// An authorization policy is installed, so lists and reads depend on the caller.
    pub(super) filtered: bool,
    /// The request came from an authenticated principal.
    pub(super) per_caller: bool,
}

impl CacheScope {
    fn public(self, method: &str) -> bool {
        match method {
            methods::DISCOVER => true,
            methods::RESOURCES_READ => !self.filtered && !self.per_caller,
            _ => !self.filtered,
        }
    }
}

impl Engine {
    /// Add what the revision requires to a successful result: `resultType`, cache hints
    /// and the server identity for 2026-07-28; nothing for the handshake era.
    pub(super) fn finalize(
        &self,
        method: &str,
        mut result: Value,
        version: ProtocolVersion,
        scope: CacheScope,
    ) -> Value {
        if !version.is_modern() {
            if let Some(o) = result.as_object_mut() {
                o.remove("resultType");
            }
            return result;
        }
        let Some(o) = result.as_object_mut() else { return result };
        let complete = !o.contains_key("resultType");
        if complete {
            o.insert("resultType".into(), Value::from("complete"));
        }
        let is_complete = o.get("resultType").and_then(Value::as_str) == Some("complete");
        // Only results that carry cache hints are touched: a task's `ttlMs` is its lifetime.
        if methods::is_cacheable(method) {
            if is_complete && !scope.retried {
                o.entry("ttlMs").or_insert_with(|| Value::from(self.cfg.list_ttl_ms));
                // Never widen a plugin's own `private` to `public`.
                let own_private = o.get("cacheScope").and_then(Value::as_str) == Some("private");
                let public = scope.public(method) && !own_private;
                o.insert(
                    "cacheScope".into(),
                    Value::from(if public { "public" } else { "private" }),
                );
            } else {
                // MRTR retries and interim results must not be cached (2026-07-28 §MRTR).
                o.remove("ttlMs");
                o.remove("cacheScope");
            }
        }
        let meta = o.entry("_meta").or_insert_with(|| Value::Object(Map::new()));
        if let Some(m) = meta.as_object_mut() {
            m.entry(meta::SERVER_INFO).or_insert_with(|| self.server_info.clone());
        }
        result
    }
}
