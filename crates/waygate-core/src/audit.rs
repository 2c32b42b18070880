//! The audit record of every tool call, resource read, prompt get and admin change. The
//! engine produces records; where they go (a batched, hash-chained table) is the embedding
//! binary's choice, behind [`AuditSink`], which must never block the request path.
//!
//! A record is built from what the request already holds — shared strings are `Arc`s, the
//! argument digest is 32 raw bytes — so recording costs a few pointer copies per call;
//! hex and JSON are produced by the writer, off the request path.

use std::sync::Arc;

use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

/// One audited operation.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AuditRecord {
    /// Unix milliseconds when the operation started.
    pub ts_ms: u64,
    /// `id:name` of the authenticated caller.
    pub principal: Option<Arc<str>>,
    /// `name/version` of the client software, from its clientInfo.
    #[serde(serialize_with = "client_label")]
    pub client: Option<Arc<Value>>,
    pub transport: &'static str,
    pub version: &'static str,
    pub method: &'static str,
    pub target: String,
    /// SHA-256 of the canonical JSON of the arguments (hex in the stored record).
    #[serde(serialize_with = "hex32")]
    pub args_sha256: [u8; 32],
    /// `ok`, `tool_error`, `input_required`, `task`, `denied` or `error`.
    pub outcome: &'static str,
    pub error: Option<String>,
    pub latency_us: u64,
    pub correlation_id: Option<Arc<str>>,
    /// The arguments themselves, only for tools configured to log them, secrets redacted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Value>,
}

fn client_label<S: Serializer>(c: &Option<Arc<Value>>, s: S) -> Result<S::Ok, S::Error> {
    match c {
        None => s.serialize_none(),
        Some(c) => {
            let f = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("?");
            s.serialize_str(&format!("{}/{}", f("name"), f("version")))
        }
    }
}

fn hex32<S: Serializer>(b: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::util::hex(b))
}

impl AuditRecord {
    /// Append the record as one JSON object — the same document `serde_json` would write —
    /// without the generic serializer: static fields are copied as they are, only free-form
    /// strings are escaped. This runs once per audited call.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        fn num(out: &mut Vec<u8>, n: u64) {
            let mut b = itoa::Buffer::new();
            out.extend_from_slice(b.format(n).as_bytes());
        }
        /// Printable ASCII without quote or backslash: copied as it is.
        fn plain(s: &str) -> bool {
            s.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
        }
        fn text(out: &mut Vec<u8>, s: &str) {
            if plain(s) {
                out.push(b'"');
                out.extend_from_slice(s.as_bytes());
                out.push(b'"');
            } else {
                let _ = serde_json::to_writer(&mut *out, s);
            }
        }
        fn opt(out: &mut Vec<u8>, s: Option<&str>) {
            match s {
                Some(s) => text(out, s),
                None => out.extend_from_slice(b"null"),
            }
        }
        out.extend_from_slice(b"{\"ts_ms\":");
        num(out, self.ts_ms);
        out.extend_from_slice(b",\"principal\":");
        opt(out, self.principal.as_deref());
        out.extend_from_slice(b",\"client\":");
        match &self.client {
            None => out.extend_from_slice(b"null"),
            Some(c) => {
                let f = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("?");
                let (name, version) = (f("name"), f("version"));
                if plain(name) && plain(version) {
                    out.push(b'"');
                    out.extend_from_slice(name.as_bytes());
                    out.push(b'/');
                    out.extend_from_slice(version.as_bytes());
                    out.push(b'"');
                } else {
                    text(out, &format!("{name}/{version}"));
                }
            }
        }
        out.extend_from_slice(b",\"transport\":");
        text(out, self.transport);
        out.extend_from_slice(b",\"version\":");
        text(out, self.version);
        out.extend_from_slice(b",\"method\":");
        text(out, self.method);
        out.extend_from_slice(b",\"target\":");
        text(out, &self.target);
        out.extend_from_slice(b",\"args_sha256\":\"");
        crate::util::hex_into(&self.args_sha256, out);
        out.extend_from_slice(b"\",\"outcome\":");
        text(out, self.outcome);
        out.extend_from_slice(b",\"error\":");
        opt(out, self.error.as_deref());
        out.extend_from_slice(b",\"latency_us\":");
        num(out, self.latency_us);
        out.extend_from_slice(b",\"correlation_id\":");
        opt(out, self.correlation_id.as_deref());
        if let Some(a) = &self.arguments {
            out.extend_from_slice(b",\"arguments\":");
            let _ = serde_json::to_writer(&mut *out, a);
        }
        out.push(b'}');
    }
}

pub trait AuditSink: Send + Sync {
    /// Hand a record over; must return at once (queue it, or count it as dropped).
    fn record(&self, r: AuditRecord);
}

/// SHA-256 of `v`'s JSON: serialized into a reused per-thread buffer and hashed in one
/// pass (feeding the hasher token by token costs more than the copy).
pub fn digest_json(v: Option<&Value>) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(256));
    }
    BUF.with(|b| {
        let mut b = b.borrow_mut();
        b.clear();
        let _ = serde_json::to_writer(&mut *b, v.unwrap_or(&Value::Null));
        let d: [u8; 32] = Sha256::digest(&b[..]).into();
        if b.capacity() > 64 * 1024 {
            *b = Vec::with_capacity(256); // do not keep a huge argument's buffer around
        }
        d
    })
}

/// Key names whose values are always secrets.
const SECRET_KEYS: [&str; 9] = [
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "cookie",
    "private_key",
];

/// Replace secrets in logged arguments: values under secret-looking keys, and strings that
/// look like credentials (API keys, bearer tokens, JWTs, cloud keys).
pub fn redact(v: &mut Value) {
    match v {
        Value::Object(m) => redact_map(m),
        Value::Array(a) => a.iter_mut().for_each(redact),
        Value::String(s) if looks_like_credential(s) => *s = "[REDACTED]".into(),
        _ => {}
    }
}

fn redact_map(m: &mut Map<String, Value>) {
    for (k, v) in m.iter_mut() {
        let lower = k.to_ascii_lowercase();
        if SECRET_KEYS.iter().any(|s| lower.contains(s)) {
            *v = Value::String("[REDACTED]".into());
        } else {
            redact(v);
        }
    }
}

/// Common credential shapes: provider prefixes, JWTs, `Bearer …`.
pub fn looks_like_credential(s: &str) -> bool {
    const PREFIXES: [&str; 12] = [
        "wg_",
        "ghp_",
        "gho_",
        "ghs_",
        "github_pat_",
        "sk-",
        "sk_live_",
        "xoxb-",
        "xoxp-",
        "AKIA",
        "AIza",
        "glpat-",
    ];
    let t = s.trim();
    if t.len() >= 16 && PREFIXES.iter().any(|p| t.starts_with(p)) && !t.contains(char::is_whitespace) {
        return true;
    }
    if let Some(rest) = t.strip_prefix("Bearer ").or_else(|| t.strip_prefix("bearer ")) {
        return rest.len() >= 8;
    }
    // header.payload.signature, base64url, header starting with {"
    let parts: Vec<&str> = t.split('.').collect();
    parts.len() == 3 && t.starts_with("eyJ") && parts.iter().all(|p| p.len() >= 4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redaction() {
        let mut v = json!({
            "path": "/tmp/x", "password": "hunter2", "nested": {"githubToken": "abc", "note": "ghp_0123456789abcdefghij"},
            "list": ["plain", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", "Bearer abcdefghijk"],
        });
        redact(&mut v);
        assert_eq!(v["path"], "/tmp/x");
        assert_eq!(v["password"], "[REDACTED]");
        assert_eq!(v["nested"]["githubToken"], "[REDACTED]");
        assert_eq!(v["nested"]["note"], "[REDACTED]");
        assert_eq!(v["list"], json!(["plain", "[REDACTED]", "[REDACTED]"]));
    }

    #[test]
    fn hand_written_json_equals_serde() {
        let mut r = AuditRecord {
            ts_ms: 1_700_000_000_123,
            principal: Some(Arc::from("k1:ops \"bot\"")),
            client: Some(Arc::new(json!({"name": "cli\u{e9}nt", "version": "1.0"}))),
            transport: "streamable-http",
            version: "2026-07-28",
            method: "tools/call",
            target: "e\ncho\u{1}".into(),
            args_sha256: [7; 32],
            outcome: "ok",
            error: None,
            latency_us: 42,
            correlation_id: Some(Arc::from("req-1")),
            arguments: None,
        };
        for with_args in [false, true] {
            if with_args {
                r.arguments = Some(json!({"a": [1, "x"]}));
                r.error = Some("bad \\ thing".into());
            }
            let mut out = Vec::new();
            r.write_json(&mut out);
            let mine: Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(mine, serde_json::to_value(&r).unwrap());
            assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&r).unwrap());
        }
    }

    #[test]
    fn digest_matches_serialized_json() {
        use sha2::{Digest, Sha256};
        let v = json!({"b": 1, "a": [1, "x"]});
        let want: [u8; 32] = Sha256::digest(serde_json::to_vec(&v).unwrap()).into();
        assert_eq!(digest_json(Some(&v)), want);
    }
}
