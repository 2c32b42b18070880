//! JSON-RPC 2.0 framing: classify one decoded value into a request, notification or
//! response, and write responses. Batches are recognised here; whether a revision allows
//! them is the caller's decision.

use std::sync::Arc;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

use crate::error::ErrorObject;

/// A request id: string or integer, never null or fractional.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Id {
    Num(i64),
    Str(Arc<str>),
}

impl Id {
    pub fn from_value(v: &Value) -> Option<Id> {
        match v {
            Value::Number(n) => n.as_i64().map(Id::Num),
            Value::String(s) => Some(Id::Str(Arc::from(s.as_str()))),
            _ => None,
        }
    }
    pub fn to_value(&self) -> Value {
        match self {
            Id::Num(n) => Value::from(*n),
            Id::Str(s) => Value::String(s.to_string()),
        }
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Id::Num(n) => s.serialize_i64(*n),
            Id::Str(v) => s.serialize_str(v),
        }
    }
}

impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Id::Num(n) => write!(f, "{n}"),
            Id::Str(s) => write!(f, "{s:?}"),
        }
    }
}

/// One JSON-RPC message.
#[derive(Debug, Clone)]
pub enum Message {
    Request {
        id: Id,
        method: String,
        params: Option<Map<String, Value>>,
    },
    Notification {
        method: String,
        params: Option<Map<String, Value>>,
    },
    Response {
        id: Id,
        outcome: Result<Value, ErrorObject>,
    },
}

/// What arrived in one body or line.
#[derive(Debug)]
pub enum Incoming {
    Single(Message),
    Batch(Vec<Result<Message, ParseError>>),
}

/// A message that could not be understood, with the id to answer to when one was legible.
#[derive(Debug, Clone)]
pub struct ParseError {
    pub id: Option<Id>,
    pub error: ErrorObject,
}

impl ParseError {
    fn invalid(id: Option<Id>, msg: impl Into<String>) -> Self {
        ParseError {
            id,
            error: ErrorObject::invalid_request(msg),
        }
    }
}

impl Message {
    pub fn method(&self) -> Option<&str> {
        match self {
            Message::Request { method, .. } | Message::Notification { method, .. } => Some(method),
            Message::Response { .. } => None,
        }
    }

    /// Classify one decoded JSON value.
    pub fn from_value(v: Value) -> Result<Message, ParseError> {
        let Value::Object(mut obj) = v else {
            return Err(ParseError::invalid(None, "a JSON-RPC message must be a JSON object"));
        };
        let id = match obj.remove("id") {
            None => None,
            Some(raw) => match Id::from_value(&raw) {
                Some(id) => Some(id),
                None => {
                    return Err(ParseError::invalid(
                        None,
                        format!("\"id\" must be a string or an integer, got {}", kind_of(&raw)),
                    ))
                }
            },
        };
        match obj.get("jsonrpc") {
            Some(Value::String(s)) if s == "2.0" => {}
            Some(other) => {
                return Err(ParseError::invalid(
                    id,
                    format!("\"jsonrpc\" must be \"2.0\", got {other}"),
                ))
            }
            None => return Err(ParseError::invalid(id, "missing \"jsonrpc\": \"2.0\"")),
        }
        if let Some(method) = obj.remove("method") {
            let Value::String(method) = method else {
                return Err(ParseError::invalid(id, "\"method\" must be a string"));
            };
            let params = match obj.remove("params") {
                None | Some(Value::Null) => None,
                Some(Value::Object(p)) => Some(p),
                Some(other) => {
                    return Err(ParseError::invalid(
                        id,
                        format!("\"params\" must be an object, got {}", kind_of(&other)),
                    ))
                }
            };
            return Ok(match id {
                Some(id) => Message::Request { id, method, params },
                None => Message::Notification { method, params },
            });
        }
        let Some(id) = id else {
            return Err(ParseError::invalid(None, "message has neither \"method\" nor \"id\""));
        };
        if obj.contains_key("result") && obj.contains_key("error") {
            return Err(ParseError::invalid(
                Some(id),
                "a response has either \"result\" or \"error\", not both",
            ));
        }
        if let Some(result) = obj.remove("result") {
            return Ok(Message::Response {
                id,
                outcome: Ok(result),
            });
        }
        if let Some(err) = obj.remove("error") {
            let err = serde_json::from_value::<ErrorObject>(err)
                .unwrap_or_else(|e| ErrorObject::internal(format!("malformed error object: {e}")));
            return Ok(Message::Response { id, outcome: Err(err) });
        }
        Err(ParseError::invalid(
            Some(id),
            "message has an \"id\" but no \"method\", \"result\" or \"error\"",
        ))
    }
}

/// Whether `bytes` nest arrays/objects deeper than `max`. A linear scan that skips string
/// contents, run before parsing so a hostile body cannot make the parser recurse.
pub fn nesting_exceeds(bytes: &[u8], max: usize) -> bool {
    // Fast path: nesting deeper than `max` needs more than `max` opening brackets. Counting
    // them is a branch-free loop the compiler vectorizes; typical requests stop here.
    let opens = bytes.iter().filter(|&&b| b == b'[' || b == b'{').count();
    if opens <= max {
        return false;
    }
    let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_str {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_str = false;
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Decode a body or line. A JSON syntax error is a parse error (-32700); an empty batch or
/// a non-object is an invalid request (-32600).
pub fn decode(bytes: &[u8]) -> Result<Incoming, ParseError> {
    decode_spanned(bytes).map(|(m, _)| m)
}

/// [`decode`], and where a single request's `params.arguments` object sits in `bytes`.
///
/// A gateway forwards that text instead of writing its `Value` again: a `Value` rounds
/// numbers no double holds (`123456789012345678901234567890`, decimals past 17 digits)
/// and sorts the keys, so an upstream would get arguments the client never sent. Found
/// while the message is parsed (no second pass); `None` for a batch, a response, or a
/// message only the general path reads (a repeated top-level member, an escaped key).
pub fn decode_spanned(bytes: &[u8]) -> Result<(Incoming, Option<std::ops::Range<usize>>), ParseError> {
    if let Some((m, arguments)) = fast_request(bytes) {
        let span = arguments.and_then(|raw| {
            let start = (raw.get().as_ptr() as usize).checked_sub(bytes.as_ptr() as usize)?;
            let end = start + raw.get().len();
            (bytes.get(start..end)? == raw.get().as_bytes()).then_some(start..end)
        });
        return Ok((Incoming::Single(m), span));
    }
    let v: Value = serde_json::from_slice(bytes).map_err(|e| ParseError {
        id: None,
        error: ErrorObject::parse(format!("Parse error: invalid JSON: {e}")),
    })?;
    match v {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(ParseError::invalid(None, "empty JSON-RPC batch"));
            }
            Ok((
                Incoming::Batch(items.into_iter().map(Message::from_value).collect()),
                None,
            ))
        }
        other => Message::from_value(other).map(|m| (Incoming::Single(m), None)),
    }
}

/// The text at `span` of a decoded message, on one line (line breaks between tokens
/// dropped, as line-delimited framing needs), for [`decode_spanned`]'s callers.
pub fn span_text(bytes: &[u8], span: std::ops::Range<usize>) -> Option<Arc<str>> {
    let text = std::str::from_utf8(bytes.get(span)?).ok()?;
    Some(crate::raw::minify(text).into())
}

/// A request's `params`, read into the tree the engine uses, keeping the text of its
/// `arguments` member (the last one, as the tree keeps the last of repeated members).
struct ParamsTree<'a> {
    tree: Value,
    arguments: Option<&'a serde_json::value::RawValue>,
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for ParamsTree<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = ParamsTree<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut tree = Map::new();
                let mut arguments = None;
                while let Some(key) = access.next_key::<String>()? {
                    let value = if key == "arguments" {
                        let raw: &'de serde_json::value::RawValue = access.next_value()?;
                        // Text with a repeated key is not forwarded: what was checked (the
                        // tree, last value kept) goes out instead (see `unique`).
                        match serde_json::from_str::<crate::unique::Unique>(raw.get()) {
                            Ok(crate::unique::Unique(tree)) => {
                                arguments = Some(raw);
                                tree
                            }
                            Err(_) => {
                                arguments = None;
                                serde_json::from_str(raw.get()).map_err(serde::de::Error::custom)?
                            }
                        }
                    } else {
                        access.next_value()?
                    };
                    tree.insert(key, value);
                }
                Ok(ParamsTree {
                    tree: Value::Object(tree),
                    arguments,
                })
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

/// A well-formed single request or notification — nearly every message — read without
/// building a tree for its envelope. Anything unusual (a batch, a response, a repeated or
/// mistyped member) returns `None` and takes the general path, which names the problem.
fn fast_request(bytes: &[u8]) -> Option<(Message, Option<&serde_json::value::RawValue>)> {
    /// Present-or-absent, with `null` kept as text (an `Option` would read it as absent).
    #[derive(Default)]
    struct RawId<'a>(Option<&'a serde_json::value::RawValue>);
    impl<'de: 'a, 'a> serde::Deserialize<'de> for RawId<'a> {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            <&'a serde_json::value::RawValue>::deserialize(d).map(|r| RawId(Some(r)))
        }
    }
    #[derive(serde::Deserialize)]
    struct Envelope<'a> {
        #[serde(borrow)]
        jsonrpc: crate::raw::Key<'a>,
        #[serde(borrow, default)]
        id: RawId<'a>,
        #[serde(borrow)]
        method: crate::raw::Key<'a>,
        #[serde(borrow, default)]
        params: Option<ParamsTree<'a>>,
        #[serde(borrow, default)]
        result: Option<&'a serde_json::value::RawValue>,
        #[serde(borrow, default)]
        error: Option<&'a serde_json::value::RawValue>,
    }
    let e: Envelope = serde_json::from_slice(bytes).ok()?;
    if e.jsonrpc.0 != "2.0" || e.result.is_some() || e.error.is_some() {
        return None;
    }
    let (params, arguments) = match e.params {
        None => (None, None),
        Some(ParamsTree {
            tree: Value::Object(p),
            arguments,
        }) => (Some(p), arguments.filter(|a| a.get().starts_with('{'))),
        Some(_) => return None,
    };
    let method = e.method.0.into_owned();
    let Some(raw) = e.id.0 else {
        return Some((Message::Notification { method, params }, None));
    };
    let id = match raw.get().as_bytes().first()? {
        b'"' => Id::Str(Arc::from(serde_json::from_str::<&str>(raw.get()).ok()?)),
        _ => Id::Num(raw.get().parse().ok()?),
    };
    Some((Message::Request { id, method, params }, arguments))
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an out-of-range integer",
        // Beyond u64, an integer is read as a double: still an integer the id cannot hold.
        Value::Number(n) if n.as_f64().is_some_and(|f| f.fract() == 0.0 && f.abs() >= 9.2e18) => {
            "an out-of-range integer"
        }
        Value::Number(_) => "a fractional number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Serializes `{"jsonrpc":"2.0","id":…,"result"|"error":…}` without building a `Value`.
pub struct ResponseRef<'a> {
    pub id: Option<&'a Id>,
    pub outcome: Result<&'a Value, &'a ErrorObject>,
}

impl Serialize for ResponseRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("jsonrpc", "2.0")?;
        match self.id {
            Some(id) => m.serialize_entry("id", id)?,
            None => m.serialize_entry("id", &Value::Null)?,
        }
        match self.outcome {
            Ok(r) => m.serialize_entry("result", r)?,
            Err(e) => m.serialize_entry("error", e)?,
        }
        m.end()
    }
}

/// Encode a response as compact JSON bytes (never contains a raw newline).
pub fn encode_response(id: Option<&Id>, outcome: Result<&Value, &ErrorObject>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    // Serializing a Value/ErrorObject into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, &ResponseRef { id, outcome });
    out
}

/// A successful result as the engine hands it to a transport: a `Value`, or JSON text the
/// engine assembled from pre-serialized pieces (a catalog page), written out as it is —
/// listing 10 000 tools is then a copy of bytes, not 10 000 deep clones and serializations.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Value(Value),
    /// A JSON object, produced by serde_json (so it holds no raw newline).
    Raw(String),
}

impl Reply {
    /// The result as a `Value` (parsing raw text; for tests and in-process callers).
    pub fn into_value(self) -> Value {
        match self {
            Reply::Value(v) => v,
            Reply::Raw(s) => serde_json::from_str(&s).unwrap_or(Value::Null),
        }
    }
}

/// Encode a response whose result may be pre-serialized.
pub fn encode_reply(id: Option<&Id>, outcome: Result<&Reply, &ErrorObject>) -> Vec<u8> {
    match outcome {
        Ok(Reply::Raw(text)) => {
            let mut out = Vec::with_capacity(text.len() + 64);
            out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
            let _ = match id {
                Some(id) => serde_json::to_writer(&mut out, id),
                None => serde_json::to_writer(&mut out, &Value::Null),
            };
            out.extend_from_slice(b",\"result\":");
            out.extend_from_slice(text.as_bytes());
            out.push(b'}');
            out
        }
        Ok(Reply::Value(v)) => encode_response(id, Ok(v)),
        Err(e) => encode_response(id, Err(e)),
    }
}

/// Encode a notification or server→client request.
pub fn encode_message(id: Option<&Id>, method: &str, params: &Value) -> Vec<u8> {
    let mut obj = Map::with_capacity(4);
    obj.insert("jsonrpc".into(), Value::from("2.0"));
    if let Some(id) = id {
        obj.insert("id".into(), id.to_value());
    }
    obj.insert("method".into(), Value::from(method));
    if !params.is_null() {
        obj.insert("params".into(), params.clone());
    }
    serde_json::to_vec(&Value::Object(obj)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting() {
        assert!(!nesting_exceeds(br#"{"a":[1,{"b":2}]}"#, 3));
        assert!(nesting_exceeds(br#"{"a":[1,{"b":2}]}"#, 2));
        assert!(!nesting_exceeds(br#"{"a":"[[[[[[[[[[\"[[[["}"#, 1));
        assert!(nesting_exceeds(&b"[".repeat(100_000), 64));
    }
    use crate::codes;

    fn one(s: &str) -> Result<Message, ParseError> {
        match decode(s.as_bytes())? {
            Incoming::Single(m) => Ok(m),
            Incoming::Batch(_) => panic!("batch"),
        }
    }

    #[test]
    fn classifies_messages() {
        assert!(matches!(
            one(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#),
            Ok(Message::Request { .. })
        ));
        assert!(matches!(
            one(r#"{"jsonrpc":"2.0","method":"x"}"#),
            Ok(Message::Notification { .. })
        ));
        assert!(matches!(
            one(r#"{"jsonrpc":"2.0","id":"a","result":{}}"#),
            Ok(Message::Response { .. })
        ));
    }

    #[test]
    fn the_fast_path_reads_requests_as_the_general_one_does() {
        let m = one(r#"{"jsonrpc":"2.0","id":"a\"b","method":"x"}"#).unwrap();
        assert!(matches!(m, Message::Request { id: Id::Str(ref s), .. } if &**s == "a\"b"));
        let m = one(r#"{"method":"n","params":null,"jsonrpc":"2.0"}"#).unwrap();
        assert!(matches!(m, Message::Notification { ref method, params: None } if method == "n"));
        let m = one(r#"{"jsonrpc":"2.0","id":-5,"method":"m","params":{"a":1}}"#).unwrap();
        assert!(matches!(m, Message::Request { id: Id::Num(-5), params: Some(ref p), .. } if p["a"] == 1));
        // A repeated member goes the general way, which keeps the last one.
        let m = one(r#"{"jsonrpc":"2.0","id":1,"method":"a","method":"b"}"#).unwrap();
        assert_eq!(m.method(), Some("b"));
    }

    #[test]
    fn rejects_bad_shapes_with_named_problem() {
        let e = one("{").unwrap_err();
        assert_eq!(e.error.code, codes::PARSE_ERROR);
        let e = one(r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#).unwrap_err();
        assert_eq!(e.error.code, codes::INVALID_REQUEST);
        assert!(e.error.message.contains("fractional"));
        for big in ["9223372036854775808", "18446744073709551616", "-9223372036854775809"] {
            let e = one(&format!(r#"{{"jsonrpc":"2.0","id":{big},"method":"ping"}}"#)).unwrap_err();
            assert!(
                e.error.message.contains("out-of-range integer"),
                "{big}: {}",
                e.error.message
            );
        }
        let e = one(r#"{"jsonrpc":"2.0","id":"q","result":{},"error":{"code":1,"message":"m"}}"#).unwrap_err();
        assert!(e.error.message.contains("not both"), "{}", e.error.message);
        let e = one(r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#).unwrap_err();
        assert_eq!(e.id, Some(Id::Num(1)));
        let e = one(r#"{"jsonrpc":"2.0","id":1,"method":"x","params":[1]}"#).unwrap_err();
        assert!(e.error.message.contains("params"));
        let e = one(r#"[]"#).unwrap_err();
        assert_eq!(e.error.code, codes::INVALID_REQUEST);
        let e = one(r#"{"jsonrpc":"2.0","id":null,"method":"x"}"#).unwrap_err();
        assert_eq!(e.error.code, codes::INVALID_REQUEST);
    }

    #[test]
    fn a_requests_arguments_are_found_as_the_client_wrote_them() {
        let span = |s: &str| {
            let (_, at) = decode_spanned(s.as_bytes()).unwrap();
            at.map(|r| s[r].to_string())
        };
        let args = r#"{"z":1,"big":123456789012345678901234567890,"e":"\u00e9","l":[1.10]}"#;
        let body =
            format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"t","arguments":{args}}}}}"#);
        assert_eq!(span(&body).as_deref(), Some(args));
        // The tree the engine reads is the same as without the span.
        let Incoming::Single(Message::Request { params: Some(p), .. }) = decode(body.as_bytes()).unwrap() else {
            panic!("not a request")
        };
        assert_eq!(p["arguments"]["z"], 1);
        assert_eq!(p["name"], "t");
        // The last of repeated members, as the tree keeps it.
        let twice = r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"arguments":{"a":1},"arguments":{"a":2}}}"#;
        assert_eq!(span(twice).as_deref(), Some(r#"{"a":2}"#));
        // Arguments repeating a key inside are not forwarded as text (the tree keeps the
        // last value, an upstream's parser might keep the first), but still read.
        let repeated =
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"arguments":{"cmd":"rm","n":{"k":1,"k":2},"cmd":"ls"}}}"#;
        assert_eq!(span(repeated), None);
        let Incoming::Single(Message::Request { params: Some(p), .. }) = decode(repeated.as_bytes()).unwrap() else {
            panic!("not a request")
        };
        assert_eq!(p["arguments"]["cmd"], "ls");
        let pretty =
            "{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": \"m\", \"params\": {\"arguments\": {\n \"a\": 1\n}}}\n";
        assert_eq!(span(pretty).as_deref(), Some("{\n \"a\": 1\n}"));
        for none in [
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"arguments":null}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"name":"t"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"m"}"#,
            r#"[{"jsonrpc":"2.0","id":1,"method":"m","params":{"arguments":{}}}]"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"a":1},"params":{"arguments":{}}}"#,
        ] {
            assert_eq!(span(none), None, "{none}");
        }
    }

    #[test]
    fn response_encoding_is_compact() {
        let v = serde_json::json!({"text": "a\nb"});
        let out = encode_response(Some(&Id::Num(7)), Ok(&v));
        assert!(!out.contains(&b'\n'));
        assert_eq!(out, br#"{"jsonrpc":"2.0","id":7,"result":{"text":"a\nb"}}"#);
    }
}
