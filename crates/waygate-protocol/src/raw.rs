//! Reading and editing JSON text without building a `Value`.
//!
//! A gateway forwards an upstream's result to its caller. Parsing that result into a
//! `serde_json::Value` costs an allocation per key and string, sorts the keys (the map is a
//! `BTreeMap`) and rounds numbers a `f64` cannot hold — so the caller would not get what
//! the server said. Here the message is only split at its top level: the values stay the
//! server's own bytes, and only the keys the protocol makes the gateway touch are edited.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

/// An object key, borrowed from the text unless it had escapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Key<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

/// The top-level members of a JSON object, in the order they were written.
#[derive(Debug, Default)]
pub struct Fields<'a>(pub Vec<(Key<'a>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Fields<'de>, A::Error> {
                let mut out = Vec::with_capacity(m.size_hint().unwrap_or(8));
                while let Some((k, v)) = m.next_entry::<Key<'de>, &'de RawValue>()? {
                    out.push((k, v));
                }
                Ok(Fields(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl<'a> Fields<'a> {
    /// Split `text`, which must hold one JSON object.
    pub fn parse(text: &'a str) -> Result<Fields<'a>, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The raw value of `key` (the last one, as a `Value` would keep it).
    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.0.iter().rev().find(|(k, _)| k.0 == key).map(|(_, v)| *v)
    }

    /// The string value of `key`, when it is a string without escapes.
    pub fn str(&self, key: &str) -> Option<&'a str> {
        let raw = self.get(key)?.get();
        raw.strip_prefix('"')?.strip_suffix('"').filter(|s| !s.contains('\\'))
    }

    /// Whether `key` is present.
    pub fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k.0 == key)
    }
}

/// The members of a result that say how a call ended, as their JSON text.
#[derive(Debug, Default)]
pub struct Probe<'a> {
    pub is_error: Option<&'a str>,
    pub result_type: Option<&'a str>,
    pub task: Option<&'a str>,
}

impl<'a> Probe<'a> {
    /// Probe a result object (the last of a repeated member counts, as in a `Value`).
    pub fn parse(text: &'a str) -> Probe<'a> {
        let mut p = Probe::default();
        let scanned = crate::scan::members(text, |k, v| match k {
            "isError" => p.is_error = Some(v),
            "resultType" => p.result_type = Some(v),
            "task" => p.task = Some(v),
            _ => {}
        });
        if scanned.is_some() {
            return p;
        }
        match Fields::parse(text) {
            Ok(f) => Probe {
                is_error: f.get("isError").map(RawValue::get),
                result_type: f.get("resultType").map(RawValue::get),
                task: f.get("task").map(RawValue::get),
            },
            Err(_) => Probe::default(),
        }
    }

    pub fn is_error(&self) -> bool {
        self.is_error == Some("true")
    }

    /// `resultType` when it is a plain string.
    pub fn result_type(&self) -> Option<&'a str> {
        let raw = self.result_type?;
        raw.strip_prefix('"')?.strip_suffix('"').filter(|s| !s.contains('\\'))
    }

    /// How a call with this result ended, as the metrics name it.
    pub fn outcome(text: &str) -> &'static str {
        let p = Probe::parse(text);
        if p.is_error() {
            return "tool_error";
        }
        match p.result_type() {
            Some("input_required") => "input_required",
            Some("task") => "task",
            _ if p.task.is_some() => "task",
            _ => "ok",
        }
    }
}

/// A JSON-RPC message split into what routing needs; `result`/`error` stay text.
#[derive(Debug, Deserialize)]
pub struct Head<'a> {
    #[serde(borrow, default)]
    pub method: Option<Key<'a>>,
    #[serde(borrow, default)]
    pub id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub result: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub error: Option<&'a RawValue>,
}

impl<'a> Head<'a> {
    /// `None` when `text` is not a JSON object or repeats one of the routing keys; the
    /// caller then reads it as a `Value` (which keeps the last of a repeated key).
    pub fn parse(text: &'a str) -> Option<Head<'a>> {
        serde_json::from_str(text).ok()
    }

    /// The id when it is an integer (the gateway numbers its own requests).
    pub fn int_id(&self) -> Option<i64> {
        self.id.and_then(|r| r.get().parse().ok())
    }
}

/// `text` on one line, so a pretty-printed value fits a line-delimited or SSE stream.
///
/// JSON forbids raw line breaks inside strings, so every CR or LF in valid JSON text is
/// layout between tokens and can go; everything else is kept as the server wrote it.
pub fn minify(text: &str) -> Cow<'_, str> {
    if is_one_line(text) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(text.replace(['\n', '\r'], ""))
}

/// Whether `text` can be written as it is on a line-delimited stream.
pub fn is_one_line(text: &str) -> bool {
    !text.bytes().any(|b| b == b'\n' || b == b'\r')
}

/// Builds an object from kept members and added ones, values written as given.
pub struct ObjectWriter {
    out: String,
    first: bool,
}

impl ObjectWriter {
    pub fn with_capacity(n: usize) -> ObjectWriter {
        let mut out = String::with_capacity(n + 2);
        out.push('{');
        ObjectWriter { out, first: true }
    }

    /// One member; `raw` must be valid JSON on one line (see [`minify`]), written as it is.
    pub fn member(&mut self, key: &str, raw: &str) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        if key.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
            self.out.push('"');
            self.out.push_str(key);
            self.out.push('"');
        } else if let Ok(k) = serde_json::to_string(key) {
            // A str always serializes.
            self.out.push_str(&k);
        }
        self.out.push(':');
        self.out.push_str(raw);
    }

    pub fn finish(mut self) -> String {
        self.out.push('}');
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_keep_order_escapes_and_number_text() {
        let text = r#"{"z":1,"a\u0041":{"k":[1,2]},"n":123456789012345678901234567890,"f":1.00000000000000000001}"#;
        let f = Fields::parse(text).unwrap();
        let keys: Vec<&str> = f.0.iter().map(|(k, _)| &*k.0).collect();
        assert_eq!(keys, ["z", "aA", "n", "f"]);
        assert_eq!(f.get("n").unwrap().get(), "123456789012345678901234567890");
        assert_eq!(f.get("f").unwrap().get(), "1.00000000000000000001");
        assert_eq!(f.get("aA").unwrap().get(), r#"{"k":[1,2]}"#);
        assert!(Fields::parse("[1]").is_err());
        assert!(Fields::parse("{").is_err());
    }

    #[test]
    fn probe_reads_how_a_call_ended() {
        assert_eq!(
            Probe::outcome(r#"{"content":[{"isError":true}],"isError":true}"#),
            "tool_error"
        );
        assert_eq!(Probe::outcome(r#"{"content":[],"isError":false}"#), "ok");
        assert_eq!(Probe::outcome(r#"{"resultType":"input_required"}"#), "input_required");
        assert_eq!(Probe::outcome(r#"{"task":{"taskId":"t"}}"#), "task");
        // A repeated member: the last one counts, as in a Value.
        assert_eq!(Probe::outcome(r#"{"isError":false,"isError":true}"#), "tool_error");
        assert_eq!(Probe::outcome("[]"), "ok");
    }

    #[test]
    fn head_splits_a_response_and_routing_fields() {
        let h = Head::parse(r#"{"jsonrpc":"2.0","id":7,"result":{"b":1,"a":2}}"#).unwrap();
        assert_eq!(h.int_id(), Some(7));
        assert!(h.method.is_none() && h.error.is_none());
        assert_eq!(h.result.unwrap().get(), r#"{"b":1,"a":2}"#);
        let h = Head::parse(r#"{"jsonrpc":"2.0","id":"x","method":"ping"}"#).unwrap();
        assert_eq!(h.int_id(), None);
        assert_eq!(h.method.unwrap().0, "ping");
        assert!(Head::parse(r#"{"id":1,"id":2,"result":{}}"#).is_none());
        assert!(Head::parse("garbage").is_none());
    }

    #[test]
    fn minify_keeps_strings_and_drops_line_breaks() {
        assert_eq!(
            minify("{\n  \"a b\": [1, \"x\\\" y\\n\"]\r\n}"),
            "{  \"a b\": [1, \"x\\\" y\\n\"]}"
        );
        assert!(matches!(minify("{\"a\":1}"), Cow::Borrowed(_)));
    }

    #[test]
    fn object_writer_writes_members_in_order() {
        let mut w = ObjectWriter::with_capacity(16);
        w.member("b", "[1, 2]");
        w.member("a\"", "\"x\"");
        assert_eq!(w.finish(), r#"{"b":[1, 2],"a\"":"x"}"#);
        assert_eq!(ObjectWriter::with_capacity(0).finish(), "{}");
    }
}
