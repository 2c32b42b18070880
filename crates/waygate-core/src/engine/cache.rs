//! What a successful result carries for its revision: `resultType`, the 2026-07-28 cache
//! hints (`ttlMs`, `cacheScope`) told truthfully, and the server identity.

use serde_json::{Map, Value};
use waygate_protocol::raw::{Fields, ObjectWriter};
use waygate_protocol::{meta, methods, scan, ProtocolVersion, Reply};

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

    /// [`Engine::finalize`] for a reply that may be forwarded text, with a pre-serialized
    /// `tools` page spliced in.
    pub(super) fn finalize_reply(
        &self,
        method: &str,
        reply: Reply,
        version: ProtocolVersion,
        scope: CacheScope,
        raw_items: Option<String>,
    ) -> Reply {
        match reply {
            Reply::Value(v) => super::reply_of(self.finalize(method, v, version, scope), raw_items),
            Reply::Raw(text) => match self.finalize_text(method, &text, version) {
                Some(Some(edited)) => Reply::Raw(edited),
                Some(None) => Reply::Raw(text),
                None => Reply::Value(self.finalize(method, Reply::Raw(text).into_value(), version, scope)),
            },
        }
    }

    /// The members a forwarded result needs, edited in its text: `Some(None)` when it is
    /// right as it stands, `None` when it must go the `Value` way (cache hints, a `_meta`
    /// that is not an object). The server's members keep their order and bytes; ours follow.
    fn finalize_text(&self, method: &str, text: &str, version: ProtocolVersion) -> Option<Option<String>> {
        if methods::is_cacheable(method) {
            return None;
        }
        let modern = version.is_modern();
        if let Some(done) = self.finalize_plain(text, modern) {
            return Some(done);
        }
        let fields = Fields::parse(text).ok()?;
        let has_type = fields.has("resultType");
        let meta = fields.get("_meta");
        let meta_fields = match meta {
            Some(m) => Some(Fields::parse(m.get()).ok()?),
            None => None,
        };
        let needs_info = modern && !meta_fields.as_ref().is_some_and(|m| m.has(meta::SERVER_INFO));
        if modern == has_type && !needs_info {
            return Some(None);
        }
        let info = &self.server_info_text;
        let mut w = ObjectWriter::with_capacity(text.len() + info.len() + 96);
        for (k, v) in &fields.0 {
            match &*k.0 {
                "resultType" if !modern => {}
                "_meta" if needs_info => {}
                key => w.member(key, v.get()),
            }
        }
        if modern && !has_type {
            w.member("resultType", "\"complete\"");
        }
        if needs_info {
            let mut m = ObjectWriter::with_capacity(info.len() + meta.map_or(0, |m| m.get().len()) + 48);
            for (k, v) in meta_fields.iter().flat_map(|f| f.0.iter()) {
                m.member(&k.0, v.get());
            }
            m.member(meta::SERVER_INFO, info);
            w.member("_meta", &m.finish());
        }
        Some(Some(w.finish()))
    }

    /// The usual forwarded result — one without `_meta` — found by a byte scan (a tenth of
    /// splitting it into fields) and, for a 2026-07-28 caller, completed by appending to the
    /// server's own text. `None` leaves everything else to the general way.
    fn finalize_plain(&self, text: &str, modern: bool) -> Option<Option<String>> {
        let (mut any, mut has_type, mut has_meta) = (false, false, false);
        scan::members(text, |key, _| {
            any = true;
            match key {
                "resultType" => has_type = true,
                "_meta" => has_meta = true,
                _ => {}
            }
        })?;
        if !modern {
            // Nothing to add for a handshake-era caller; a `resultType` must go.
            return (!has_type).then_some(None);
        }
        if has_meta {
            return None;
        }
        let body = text.trim_end().strip_suffix('}')?;
        let info = &self.server_info_text;
        let mut out = String::with_capacity(body.len() + info.len() + 80);
        out.push_str(body);
        if any {
            out.push(',');
        }
        if !has_type {
            out.push_str(r#""resultType":"complete","#);
        }
        out.push_str(r#""_meta":{""#);
        out.push_str(meta::SERVER_INFO);
        out.push_str("\":");
        out.push_str(info);
        out.push_str("}}");
        Some(Some(out))
    }
}

#[cfg(test)]
mod raw_tests {
    use super::*;
    use crate::engine::{Engine, EngineConfig};
    use crate::registry::PluginRegistry;
    use std::sync::Arc;

    fn engine() -> Arc<Engine> {
        let registry = Arc::new(PluginRegistry::new(crate::events::Events::new(), 100));
        Engine::new(EngineConfig::default(), registry)
    }

    #[test]
    fn forwarded_text_keeps_order_and_numbers_and_gains_what_the_revision_needs() {
        let e = engine();
        let up = r#"{"z":1,"content":[{"type":"text","text":"a\nb"}],"n":123456789012345678901234567890}"#;
        // A handshake-era caller gets the server's bytes untouched.
        assert_eq!(
            e.finalize_text("tools/call", up, ProtocolVersion::V2025_11_25),
            Some(None)
        );
        // 2026-07-28: resultType and the server identity follow the server's members.
        let out = e
            .finalize_text("tools/call", up, ProtocolVersion::V2026_07_28)
            .unwrap()
            .unwrap();
        assert!(
            out.starts_with(r#"{"z":1,"content":[{"type":"text","text":"a\nb"}],"n":123456789012345678901234567890,"resultType":"complete","_meta":{"io.modelcontextprotocol/serverInfo":{"#),
            "{out}"
        );
        // A modern server's own resultType goes for an old caller, its _meta keeps order.
        let modern = r#"{"resultType":"complete","b":2,"_meta":{"y":1,"x":2}}"#;
        assert_eq!(
            e.finalize_text("tools/call", modern, ProtocolVersion::V2025_11_25),
            Some(Some(r#"{"b":2,"_meta":{"y":1,"x":2}}"#.into()))
        );
        let out = e
            .finalize_text("tools/call", modern, ProtocolVersion::V2026_07_28)
            .unwrap()
            .unwrap();
        assert!(
            out.starts_with(
                r#"{"resultType":"complete","b":2,"_meta":{"y":1,"x":2,"io.modelcontextprotocol/serverInfo":"#
            ),
            "{out}"
        );
        // Whitespace, an empty result and a repeated key: the scan agrees with the fields.
        let info = r#""_meta":{"io.modelcontextprotocol/serverInfo":"#;
        let out = e
            .finalize_text("tools/call", "{ }\n", ProtocolVersion::V2026_07_28)
            .unwrap()
            .unwrap();
        assert!(
            out.starts_with(&format!(r#"{{ "resultType":"complete",{info}"#)),
            "{out}"
        );
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["resultType"], "complete");
        let out = e
            .finalize_text("tools/call", "{\"a\" : [1,\n2] }", ProtocolVersion::V2026_07_28)
            .unwrap()
            .unwrap();
        assert!(
            out.starts_with(&format!(
                r#"{{"a" : [1,
2] ,"resultType":"complete",{info}"#
            )),
            "{out}"
        );
        assert!(serde_json::from_str::<Value>(&out).is_ok(), "{out}");
        for (text, old) in [
            (
                r#"{"resultType":"complete","resultType":"complete"}"#,
                Some(Some("{}".to_string())),
            ),
            (r#"{"a\u0062":1}"#, Some(None)),
            (r#"{"_meta":{}}"#, Some(None)),
        ] {
            assert_eq!(
                e.finalize_text("tools/call", text, ProtocolVersion::V2025_11_25),
                old,
                "{text}"
            );
        }
        // A result a session-era upstream's answer was already given a resultType for.
        let out = e
            .finalize_text(
                "tools/call",
                r#"{"resultType":"complete","x":[]}"#,
                ProtocolVersion::V2026_07_28,
            )
            .unwrap()
            .unwrap();
        assert!(
            out.starts_with(&format!(r#"{{"resultType":"complete","x":[],{info}"#)),
            "{out}"
        );
        let out = e
            .finalize_text("tools/call", r#"{"a\u0062":1}"#, ProtocolVersion::V2026_07_28)
            .unwrap()
            .unwrap();
        assert!(out.starts_with(r#"{"ab":1,"resultType":"complete","#), "{out}");
        // Cacheable answers and odd _meta take the Value path.
        assert_eq!(
            e.finalize_text("resources/read", up, ProtocolVersion::V2026_07_28),
            None
        );
        assert_eq!(
            e.finalize_text("tools/call", r#"{"_meta":3}"#, ProtocolVersion::V2026_07_28),
            None
        );
    }
}
