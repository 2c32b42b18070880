//! A tool definition as each revision shows it, and what the catalog derives from it.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};
#[cfg(test)]
use waygate_protocol::ProtocolVersion;

use crate::naming::Override;

/// A definition written with its exposed name and without some keys, straight from the
/// plugin's own definition: every revision's shape of a tool is the definition minus keys,
/// so no shape needs a copy of the definition.
pub(super) struct Shaped<'a> {
    pub def: &'a Map<String, Value>,
    pub name: &'a str,
    pub skip: &'a [&'a str],
}

impl Serialize for Shaped<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        let mut named = false;
        for (k, v) in self.def {
            if self.skip.contains(&k.as_str()) {
                continue;
            }
            if k == "name" {
                named = true;
                m.serialize_entry("name", self.name)?;
            } else {
                m.serialize_entry(k, v)?;
            }
        }
        if !named {
            m.serialize_entry("name", self.name)?;
        }
        m.end()
    }
}

/// The keys each revision's shape leaves out of a tool definition: `[modern, 2025-11-25,
/// 2025-06-18, 2025-03-26]` (what `downlevel_tool` removes, and `execution`, which the
/// stateless revision does not have).
pub(super) fn skipped_keys(def: &Map<String, Value>) -> [&'static [&'static str]; 4] {
    // 2025-06-18/11-25 require an object-rooted outputSchema.
    let object_rooted = def
        .get("outputSchema")
        .map(|s| s.get("type").and_then(Value::as_str) == Some("object"))
        .unwrap_or(true);
    const OLDEST: &[&str] = &["icons", "execution", "outputSchema", "title", "_meta"];
    if object_rooted {
        [&["execution"], &[], &["icons", "execution"], OLDEST]
    } else {
        [
            &["execution"],
            &["outputSchema"],
            &["icons", "execution", "outputSchema"],
            OLDEST,
        ]
    }
}

pub(super) fn text(v: &impl Serialize) -> Box<str> {
    serde_json::to_string(v).unwrap_or_default().into_boxed_str()
}

/// An operator's corrections: title and description replaced, annotations merged.
pub(super) fn apply_override(def: &mut Value, o: &Override) {
    let Some(obj) = def.as_object_mut() else { return };
    if let Some(t) = &o.title {
        obj.insert("title".into(), Value::String(t.clone()));
    }
    if let Some(d) = &o.description {
        obj.insert("description".into(), Value::String(d.clone()));
    }
    if let Some(a) = &o.annotations {
        let slot = obj.entry("annotations").or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        if let Some(m) = slot.as_object_mut() {
            for (k, v) in a {
                m.insert(k.clone(), v.clone());
            }
        }
    }
}

/// The reference definition of each revision's shape (what [`skipped_keys`] must match).
#[cfg(test)]
/// Shape a tool definition for an older revision.
fn downlevel_tool(def: &Value, v: ProtocolVersion) -> Value {
    let mut d = def.clone();
    if let Some(o) = d.as_object_mut() {
        if v < ProtocolVersion::V2025_11_25 {
            o.remove("icons");
            o.remove("execution");
        }
        // 2025-06-18/11-25 require an object-rooted outputSchema.
        let object_rooted = o
            .get("outputSchema")
            .map(|s| s.get("type").and_then(Value::as_str) == Some("object"))
            .unwrap_or(true);
        if !object_rooted || v < ProtocolVersion::V2025_06_18 {
            o.remove("outputSchema");
        }
        if v < ProtocolVersion::V2025_06_18 {
            o.remove("title");
            o.remove("_meta");
        }
    }
    d
}

/// `x-mcp-header` annotations on top-level properties (the only place they are valid):
/// `(header name without the Mcp-Param- prefix, lowercase; property)`.
pub fn header_params(def: &Value) -> Vec<(String, String)> {
    let Some(props) = def.pointer("/inputSchema/properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    props
        .iter()
        .filter_map(|(prop, schema)| {
            let h = schema.get("x-mcp-header")?.as_str()?;
            let ok = !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            ok.then(|| (h.to_ascii_lowercase(), prop.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shapes_written_from_the_definition_match_the_reference() {
        let defs = [
            json!({"name": "a", "inputSchema": {"type": "object"}}),
            json!({"name": "a", "title": "A", "icons": [{"src": "x"}], "execution": {"taskSupport": "optional"},
                   "outputSchema": {"type": "object"}, "_meta": {"k": 1}, "inputSchema": {"type": "object"}}),
            json!({"name": "a", "outputSchema": {"type": "array"}, "inputSchema": {"type": "object"}}),
        ];
        let versions = [
            ProtocolVersion::V2025_11_25,
            ProtocolVersion::V2025_06_18,
            ProtocolVersion::V2025_03_26,
        ];
        for d in defs {
            let obj = d.as_object().unwrap();
            let skips = skipped_keys(obj);
            let mut modern = d.clone();
            modern["name"] = json!("exposed");
            let reference: Vec<Value> = versions.iter().map(|v| downlevel_tool(&modern, *v)).collect();
            modern.as_object_mut().unwrap().remove("execution");
            let shaped = |i: usize| {
                serde_json::from_str::<Value>(&text(&Shaped {
                    def: obj,
                    name: "exposed",
                    skip: skips[i],
                }))
                .unwrap()
            };
            assert_eq!(shaped(0), modern, "{d}");
            for (i, r) in reference.iter().enumerate() {
                assert_eq!(&shaped(i + 1), r, "{d} at {:?}", versions[i]);
            }
        }
    }

    #[test]
    fn downlevel_strips_new_fields() {
        let d = serde_json::json!({"name":"a","title":"A","inputSchema":{"type":"object"},
            "outputSchema":{"type":"string"},"icons":[]});
        let l = downlevel_tool(&d, ProtocolVersion::V2025_06_18);
        assert!(l.get("outputSchema").is_none() && l.get("icons").is_none() && l.get("title").is_some());
        assert!(downlevel_tool(&d, ProtocolVersion::V2025_11_25).get("icons").is_some());
        let o = downlevel_tool(&d, ProtocolVersion::V2025_03_26);
        assert!(o.get("title").is_none());
    }

    #[test]
    fn finds_header_params() {
        let d = serde_json::json!({"inputSchema":{"type":"object","properties":{
            "region":{"type":"string","x-mcp-header":"Region"},"bad":{"type":"string","x-mcp-header":"a b"}}}});
        assert_eq!(header_params(&d), vec![("region".to_string(), "region".to_string())]);
    }
}
