//! What the gateway writes to an upstream: the per-request `_meta` envelope of a stateless
//! (2026-07-28) upstream, and the request message itself.

use std::io::Write;

use serde_json::{json, Map, Value};

/// The stateless revision the gateway speaks to upstreams that offer it.
pub(crate) const MODERN: &str = "2026-07-28";

const PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
const CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
const CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
const LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";

/// The envelope members that are the same on every request, as JSON text.
const STATIC_ENVELOPE: &str = concat!(
    "\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\",",
    "\"io.modelcontextprotocol/clientInfo\":{\"name\":\"waygate\",\"version\":\"",
    env!("CARGO_PKG_VERSION"),
    "\"}"
);

/// The per-request envelope of the stateless era: who the gateway is, as a client, with
/// the capabilities (and log level) of the caller it acts for on this request.
pub(crate) fn envelope(caller: Option<&Caller>) -> Value {
    let mut env = json!({
        PROTOCOL_VERSION: MODERN,
        CLIENT_CAPABILITIES: caller.map_or_else(|| json!({}), |c| c.capabilities.clone()),
        CLIENT_INFO: {"name": "waygate", "version": env!("CARGO_PKG_VERSION")},
    });
    if let Some(level) = caller.and_then(|c| c.log_level) {
        env[LOG_LEVEL] = json!(level);
    }
    env
}

/// What a stateless upstream is told about the caller behind a request.
#[derive(Clone)]
pub struct Caller {
    /// The client capabilities the gateway can relay for this caller.
    pub capabilities: Value,
    pub log_level: Option<&'static str>,
}

/// The params of a request to an upstream.
pub enum Params {
    /// Built by the gateway (discovery, lists, a completion, an answered question).
    Tree(Value),
    /// A tool call or prompt: its name and the caller's arguments as JSON text — the
    /// caller's own text when the engine kept it, else written from the tree.
    Named {
        name: String,
        arguments: String,
        /// The caller's own `_meta` members, written before the gateway's.
        meta: Option<Map<String, Value>>,
    },
}

impl From<Value> for Params {
    fn from(v: Value) -> Params {
        Params::Tree(v)
    }
}

impl Params {
    /// A call of `name` with `arguments`, as the caller `written` them when known, and
    /// the caller's `_meta` members to pass on.
    pub(crate) fn named(
        name: &str,
        arguments: &Value,
        written: Option<&str>,
        meta: Option<&Map<String, Value>>,
    ) -> Params {
        Params::Named {
            name: name.to_string(),
            arguments: match written {
                Some(text) => text.to_string(),
                None => serde_json::to_string(arguments).unwrap_or_else(|_| "{}".into()),
            },
            meta: meta.cloned(),
        }
    }

    /// What the 2026-07-28 `Mcp-Name` header mirrors for `method`.
    pub(crate) fn mirrored_name(&self, method: &str) -> Option<&str> {
        match self {
            Params::Named { name, .. } => Some(name),
            Params::Tree(t) => match method {
                "tools/call" | "prompts/get" => t.get("name"),
                "resources/read" => t.get("uri"),
                _ => None,
            }
            .and_then(Value::as_str),
        }
    }

    /// The params as a tree (for the wires that read them rather than send them).
    pub(crate) fn tree(&self) -> std::borrow::Cow<'_, Value> {
        match self {
            Params::Tree(t) => std::borrow::Cow::Borrowed(t),
            Params::Named { name, arguments, meta } => {
                let mut tree = json!({
                    "name": name,
                    "arguments": serde_json::from_str::<Value>(arguments).unwrap_or_default(),
                });
                if let Some(m) = meta {
                    tree["_meta"] = Value::Object(m.clone());
                }
                std::borrow::Cow::Owned(tree)
            }
        }
    }
}

pub(crate) fn to_bytes(msg: &Value) -> Vec<u8> {
    serde_json::to_vec(msg).unwrap_or_default()
}

/// What the gateway adds to a request's `_meta` on its way out. Written while the request
/// is serialized: merging it into the params tree first cost a tree per call (the
/// envelope, its copies, then dropping them all) for members whose text never changes.
#[derive(Default)]
pub(crate) struct MetaAdds<'a> {
    /// The stateless era's envelope, for this caller (`Some(None)`: no caller).
    pub envelope: Option<Option<&'a Caller>>,
    /// `progressToken` (`wg-<id>`).
    pub progress: Option<i64>,
    /// `traceparent` and `tracestate`.
    pub trace: Option<(&'a str, Option<&'a str>)>,
}

impl MetaAdds<'_> {
    fn is_empty(&self) -> bool {
        self.envelope.is_none() && self.progress.is_none() && self.trace.is_none()
    }

    /// Whether the params' own `_meta` member `key` is replaced by one added here.
    fn replaces(&self, key: &str) -> bool {
        match key {
            PROTOCOL_VERSION | CLIENT_CAPABILITIES | CLIENT_INFO => self.envelope.is_some(),
            LOG_LEVEL => self.envelope.flatten().is_some_and(|c| c.log_level.is_some()),
            "progressToken" => self.progress.is_some(),
            "traceparent" => self.trace.is_some(),
            "tracestate" => self.trace.is_some_and(|(_, s)| s.is_some()),
            _ => false,
        }
    }

    /// The added members, each preceded by a comma unless it is the object's first.
    fn write(&self, out: &mut Vec<u8>, mut first: bool) {
        let mut sep = |out: &mut Vec<u8>| {
            if !std::mem::take(&mut first) {
                out.push(b',');
            }
        };
        if let Some(caller) = self.envelope {
            sep(out);
            out.extend_from_slice(STATIC_ENVELOPE.as_bytes());
            out.extend_from_slice(b",\"io.modelcontextprotocol/clientCapabilities\":");
            match caller {
                Some(c) => write_json(out, &c.capabilities),
                None => out.extend_from_slice(b"{}"),
            }
            if let Some(level) = caller.and_then(|c| c.log_level) {
                out.extend_from_slice(b",\"io.modelcontextprotocol/logLevel\":");
                write_json(out, level);
            }
        }
        if let Some(id) = self.progress {
            sep(out);
            let _ = write!(out, "\"progressToken\":\"wg-{id}\"");
        }
        if let Some((parent, state)) = self.trace {
            sep(out);
            out.extend_from_slice(b"\"traceparent\":");
            write_json(out, parent);
            if let Some(state) = state {
                out.extend_from_slice(b",\"tracestate\":");
                write_json(out, state);
            }
        }
    }
}

/// Writing a `Value` or a string into a `Vec` cannot fail.
fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    let _ = serde_json::to_writer(out, v);
}

/// A request written straight from its parts: the params are serialized once, with the
/// gateway's `_meta` members merged in as they are written.
pub(crate) fn request_bytes(id: i64, method: &str, params: &Params, adds: &MetaAdds) -> Vec<u8> {
    let mut out = Vec::with_capacity(384);
    let _ = write!(out, "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":");
    write_json(&mut out, method);
    out.extend_from_slice(b",\"params\":");
    let params = match params {
        Params::Tree(t) => t,
        Params::Named { name, arguments, meta } => {
            out.extend_from_slice(b"{\"name\":");
            write_json(&mut out, name);
            out.extend_from_slice(b",\"arguments\":");
            out.extend_from_slice(arguments.as_bytes());
            if !adds.is_empty() || meta.is_some() {
                out.push(b',');
                write_meta(&mut out, meta.as_ref(), adds);
            }
            out.extend_from_slice(b"}}");
            return out;
        }
    };
    let fields = match params {
        Value::Object(m) if !adds.is_empty() => Some(Some(m)),
        Value::Null if !adds.is_empty() => Some(None),
        _ => None,
    };
    match fields {
        None => write_json(&mut out, params),
        Some(fields) => {
            out.push(b'{');
            let mut own_meta = None;
            let others = fields.into_iter().flatten().filter(|(k, v)| {
                let meta = *k == "_meta";
                if meta {
                    own_meta = v.as_object();
                }
                !meta
            });
            if !write_members(&mut out, others, true) {
                out.push(b',');
            }
            write_meta(&mut out, own_meta, adds);
            out.push(b'}');
        }
    }
    out.push(b'}');
    out
}

/// Writes `"key":value` pairs separated by commas; `first` says nothing precedes them in
/// their object. Returns whether the object is still empty.
fn write_members<'a>(
    out: &mut Vec<u8>,
    members: impl Iterator<Item = (&'a String, &'a Value)>,
    mut first: bool,
) -> bool {
    for (k, v) in members {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        write_json(out, k);
        out.push(b':');
        write_json(out, v);
    }
    first
}

/// `"_meta":{…}`: the request's own members the gateway does not replace, then its own.
fn write_meta(out: &mut Vec<u8>, own: Option<&Map<String, Value>>, adds: &MetaAdds) {
    out.extend_from_slice(b"\"_meta\":{");
    let first = write_members(out, own.into_iter().flatten().filter(|(k, _)| !adds.replaces(k)), true);
    adds.write(out, first);
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).expect("the request is JSON")
    }

    #[test]
    fn a_request_written_from_its_parts_is_the_message() {
        let params = json!({"name": "echo \"x\"", "arguments": {"n": 1.5, "s": "é\n"}});
        let bytes = request_bytes(7, "tools/call", &Params::Tree(params.clone()), &MetaAdds::default());
        assert_eq!(
            message(&bytes),
            json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params})
        );
    }

    #[test]
    fn the_added_meta_is_the_envelope_merged_into_the_params_own() {
        let caller = Caller {
            capabilities: json!({"sampling": {}}),
            log_level: Some("debug"),
        };
        let params = json!({
            "name": "t",
            "arguments": {"a": [1, 2]},
            "_meta": {"mine": true, "progressToken": "theirs", PROTOCOL_VERSION: "old"},
        });
        let adds = MetaAdds {
            envelope: Some(Some(&caller)),
            progress: Some(9),
            trace: Some(("00-abc-def-01", Some("k=v"))),
        };
        let mut want = params.clone();
        let mut meta = envelope(Some(&caller));
        meta["mine"] = json!(true);
        meta["progressToken"] = json!("wg-9");
        meta["traceparent"] = json!("00-abc-def-01");
        meta["tracestate"] = json!("k=v");
        want["_meta"] = meta;
        let got = message(&request_bytes(3, "tools/call", &Params::Tree(params.clone()), &adds));
        assert_eq!(got["params"], want);
        assert_eq!(got["id"], 3);
    }

    #[test]
    fn params_without_members_or_without_meta_get_only_what_is_added() {
        let adds = MetaAdds {
            envelope: Some(None),
            ..Default::default()
        };
        for params in [Value::Null, json!({})] {
            let got = message(&request_bytes(1, "server/discover", &Params::Tree(params), &adds));
            assert_eq!(got["params"], json!({"_meta": envelope(None)}));
        }
        let got = message(&request_bytes(
            1,
            "ping",
            &Params::Tree(Value::Null),
            &MetaAdds::default(),
        ));
        assert_eq!(got["params"], Value::Null);
        let adds = MetaAdds {
            progress: Some(4),
            ..Default::default()
        };
        let got = message(&request_bytes(1, "x", &Params::Tree(json!({"k": "v"})), &adds));
        assert_eq!(got["params"], json!({"k": "v", "_meta": {"progressToken": "wg-4"}}));
    }

    #[test]
    fn a_call_written_from_its_name_and_arguments_is_the_same_message() {
        let caller = Caller {
            capabilities: json!({"elicitation": {}}),
            log_level: None,
        };
        let args = json!({"text": "line\nbreak \"q\"", "n": 12345678901234567890u64, "f": 0.1, "o": {"_meta": 1}});
        for adds in [
            MetaAdds::default(),
            MetaAdds {
                envelope: Some(Some(&caller)),
                progress: Some(2),
                trace: Some(("00-a-b-01", None)),
            },
        ] {
            let named = request_bytes(5, "tools/call", &Params::named("é \"x\"", &args, None, None), &adds);
            let tree = json!({"name": "é \"x\"", "arguments": args});
            let want = request_bytes(5, "tools/call", &Params::Tree(tree.clone()), &adds);
            assert_eq!(message(&named), message(&want));
            assert!(!named.contains(&b'\n'), "one line for stdio");
            assert_eq!(Params::named("é \"x\"", &args, None, None).tree().into_owned(), tree);
        }
        assert_eq!(
            Params::named("t", &args, None, None).mirrored_name("tools/call"),
            Some("t")
        );
        assert_eq!(
            Params::Tree(json!({"uri": "u"})).mirrored_name("resources/read"),
            Some("u")
        );
    }
}
