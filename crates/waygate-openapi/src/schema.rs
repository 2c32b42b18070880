//! OpenAPI schemas as the JSON Schema 2020-12 MCP tool schemas are written in.
//!
//! A tool schema must stand alone, so every `#/components/schemas/X` it reaches is copied
//! into its own `$defs` (references rewritten to `#/$defs/X`; cycles stay references, so a
//! recursive model is expressed rather than unrolled). Other local references (parameters,
//! request bodies, responses, a pointer into `paths`) are inlined. OpenAPI 3.0's dialect
//! (`nullable`, boolean `exclusiveMinimum`) is rewritten to what validators and LLM
//! providers understand; 3.1 schemas already are JSON Schema.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::Error;

/// How many references deep inlining goes before the document is called cyclic.
const MAX_DEPTH: usize = 64;

/// Keys that cost tokens and tell a model nothing it needs to call the operation.
const DROPPED: [&str; 4] = ["example", "xml", "externalDocs", "discriminator"];

/// A JSON pointer (`#/components/schemas/Pet`) into the document.
pub fn resolve_pointer<'a>(doc: &'a Value, reference: &str) -> Result<&'a Value, Error> {
    let Some(pointer) = reference.strip_prefix('#') else {
        return Err(Error::ExternalRef(reference.to_string()));
    };
    let decoded = percent_decode(pointer);
    doc.pointer(&decoded)
        .ok_or_else(|| Error::BadRef(reference.to_string()))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Follow `$ref` chains on a non-schema object (a parameter, a request body, a response).
pub fn deref<'a>(doc: &'a Value, mut v: &'a Value) -> Result<&'a Value, Error> {
    for _ in 0..MAX_DEPTH {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => v = resolve_pointer(doc, r)?,
            None => return Ok(v),
        }
    }
    Err(Error::BadRef("reference chain too long or cyclic".into()))
}

/// Turns schemas of one document into standalone tool schemas.
pub struct Converter<'a> {
    doc: &'a Value,
    /// OpenAPI 3.0's schema dialect (rewritten) rather than 3.1's JSON Schema.
    legacy: bool,
    /// Component schemas reached so far, converted, by name.
    defs: BTreeMap<String, Value>,
}

impl<'a> Converter<'a> {
    pub fn new(doc: &'a Value, legacy: bool) -> Self {
        Converter {
            doc,
            legacy,
            defs: BTreeMap::new(),
        }
    }

    /// One schema, converted; component references it reaches are collected for [`Self::finish`].
    pub fn convert(&mut self, schema: &Value) -> Result<Value, Error> {
        self.walk(schema, 0)
    }

    /// The `$defs` the converted schemas need (empty when none), and a fresh start.
    pub fn take_defs(&mut self) -> Map<String, Value> {
        std::mem::take(&mut self.defs).into_iter().collect()
    }

    /// `schema` as a standalone document: its `$defs` attached at the top.
    pub fn finish(&mut self, mut schema: Value) -> Value {
        let defs = self.take_defs();
        if !defs.is_empty() {
            if let Some(o) = schema.as_object_mut() {
                o.insert("$defs".into(), Value::Object(defs));
            }
        }
        schema
    }

    fn walk(&mut self, v: &Value, depth: usize) -> Result<Value, Error> {
        if depth > MAX_DEPTH {
            return Err(Error::BadRef("schema nested too deeply".into()));
        }
        match v {
            Value::Object(o) => {
                if let Some(r) = o.get("$ref").and_then(Value::as_str) {
                    if let Some(name) = r.strip_prefix("#/components/schemas/") {
                        let name = percent_decode(name).replace("~1", "/").replace("~0", "~");
                        self.component(&name, r, depth)?;
                        let mut out = Map::new();
                        out.insert("$ref".into(), Value::String(format!("#/$defs/{}", escape(&name))));
                        // 3.1 lets a reference carry siblings (a description, say).
                        if !self.legacy {
                            for (k, x) in o {
                                if k != "$ref" && !DROPPED.contains(&k.as_str()) {
                                    out.insert(k.clone(), self.walk(x, depth + 1)?);
                                }
                            }
                        }
                        return Ok(Value::Object(out));
                    }
                    let target = resolve_pointer(self.doc, r)?;
                    return self.walk(target, depth + 1);
                }
                let mut out = Map::with_capacity(o.len());
                for (k, x) in o {
                    if DROPPED.contains(&k.as_str()) || (self.legacy && k == "nullable") {
                        continue;
                    }
                    // Maps of schemas and lists of schemas are walked; so are single
                    // subschemas. Values such as `enum`, `const` and `default` are data.
                    let walked = match (k.as_str(), x) {
                        (
                            "enum" | "const" | "default" | "examples" | "required" | "type" | "format" | "pattern"
                            | "description" | "title",
                            _,
                        ) => x.clone(),
                        // Maps whose keys are names, not keywords.
                        (
                            "properties" | "patternProperties" | "$defs" | "definitions" | "dependentSchemas",
                            Value::Object(m),
                        ) => {
                            let mut names = Map::with_capacity(m.len());
                            for (n, s) in m {
                                names.insert(n.clone(), self.walk(s, depth + 1)?);
                            }
                            Value::Object(names)
                        }
                        _ => self.walk(x, depth + 1)?,
                    };
                    out.insert(k.clone(), walked);
                }
                if self.legacy {
                    legacy_dialect(o, &mut out);
                }
                Ok(Value::Object(out))
            }
            Value::Array(a) => a
                .iter()
                .map(|x| self.walk(x, depth + 1))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            other => Ok(other.clone()),
        }
    }

    fn component(&mut self, name: &str, reference: &str, depth: usize) -> Result<(), Error> {
        if self.defs.contains_key(name) {
            return Ok(());
        }
        let target = resolve_pointer(self.doc, reference)?;
        // Placeholder first: a schema that refers to itself ends here instead of looping.
        self.defs.insert(name.to_string(), Value::Bool(true));
        let converted = self.walk(target, depth + 1)?;
        self.defs.insert(name.to_string(), converted);
        Ok(())
    }
}

/// A `$defs` key as it appears in a JSON pointer.
fn escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

/// OpenAPI 3.0's own keywords, in JSON Schema terms.
fn legacy_dialect(orig: &Map<String, Value>, out: &mut Map<String, Value>) {
    if orig.get("nullable") == Some(&Value::Bool(true)) {
        match out.get_mut("type") {
            Some(Value::String(t)) => {
                let t = std::mem::take(t);
                out.insert(
                    "type".into(),
                    Value::Array(vec![Value::String(t), Value::String("null".into())]),
                );
            }
            Some(Value::Array(a)) if !a.iter().any(|x| x == "null") => a.push(Value::String("null".into())),
            _ => {}
        }
        if let Some(Value::Array(e)) = out.get_mut("enum") {
            if !e.contains(&Value::Null) {
                e.push(Value::Null);
            }
        }
    }
    for (flag, bound) in [("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")] {
        match orig.get(flag) {
            Some(Value::Bool(true)) => {
                out.remove(flag);
                if let Some(b) = out.remove(bound) {
                    out.insert(flag.into(), b);
                }
            }
            Some(Value::Bool(false)) => {
                out.remove(flag);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn components_become_defs_and_cycles_stay_references() {
        let doc = json!({"components": {"schemas": {
            "Node": {"type": "object", "properties": {"type": {"$ref": "#/components/schemas/Tag"}, "next": {"$ref": "#/components/schemas/Node"},
                      "tag": {"$ref": "#/components/schemas/Tag"}}, "example": {"x": 1}},
            "Tag": {"type": "string", "nullable": true, "enum": ["a", "b"]}
        }}});
        let mut c = Converter::new(&doc, true);
        let s = c.convert(&json!({"$ref": "#/components/schemas/Node"})).unwrap();
        let s = c.finish(json!({"type": "object", "properties": {"n": s}}));
        assert_eq!(s["properties"]["n"], json!({"$ref": "#/$defs/Node"}));
        assert_eq!(
            s["$defs"]["Node"]["properties"]["next"],
            json!({"$ref": "#/$defs/Node"})
        );
        assert!(s["$defs"]["Node"].get("example").is_none());
        assert_eq!(s["$defs"]["Node"]["properties"]["type"], json!({"$ref": "#/$defs/Tag"}));
        assert_eq!(s["$defs"]["Tag"]["type"], json!(["string", "null"]));
        assert_eq!(s["$defs"]["Tag"]["enum"], json!(["a", "b", null]));
    }

    #[test]
    fn legacy_exclusive_bounds_become_numbers() {
        let doc = json!({});
        let mut c = Converter::new(&doc, true);
        let s = c
            .convert(&json!({"type": "integer", "minimum": 1, "exclusiveMinimum": true,
                              "maximum": 9, "exclusiveMaximum": false}))
            .unwrap();
        assert_eq!(s, json!({"type": "integer", "exclusiveMinimum": 1, "maximum": 9}));
    }

    #[test]
    fn external_and_dangling_references_are_errors() {
        let doc = json!({});
        let mut c = Converter::new(&doc, false);
        assert!(matches!(
            c.convert(&json!({"$ref": "other.yaml#/X"})),
            Err(Error::ExternalRef(_))
        ));
        assert!(matches!(
            c.convert(&json!({"$ref": "#/components/schemas/Nope"})),
            Err(Error::BadRef(_))
        ));
    }
}
