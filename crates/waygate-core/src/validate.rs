//! Tool arguments (and, when asked, structured results) checked against the tool's JSON
//! Schema before anything runs: native, WASM and upstream tools alike.
//!
//! A validator is compiled once per tool definition, on first use, and lives as long as
//! that catalog entry; a catalog rebuilt after a change compiles the new definition once.
//! The dialect is the schema's `$schema` (draft-07, 2019-09, 2020-12 …); without one,
//! 2020-12, as MCP specifies. A schema that cannot be compiled (an upstream's broken or
//! remote `$ref`) does not block its tool: the tool runs unchecked and the log says why,
//! once. Messages name the JSON pointer and the rule, never the offending value (it may be
//! a secret the model was about to leak).

use std::sync::OnceLock;

use serde_json::Value;

/// How many failures one message lists; the rest are counted.
const MAX_LISTED: usize = 3;

/// A schema compiled on first use.
#[derive(Default)]
pub struct LazySchema {
    /// Boxed: most tools are never called, and an unboxed validator slot is large.
    compiled: OnceLock<Option<Box<jsonschema::Validator>>>,
}

impl LazySchema {
    /// `Err(message)` naming each failing pointer and rule; `Ok` when valid, when there is
    /// no schema, or when the schema could not be compiled.
    pub fn check(&self, schema: Option<&Value>, instance: &Value, what: &str) -> Result<(), String> {
        let Some(schema) = schema else { return Ok(()) };
        self.check_with(|| Some(schema.clone()), instance, what)
    }

    /// Like [`LazySchema::check`], with the schema produced only when it is first compiled
    /// (the catalog keeps definitions as text and parses a tool's schema on its first call).
    pub fn check_with(
        &self,
        schema: impl FnOnce() -> Option<Value>,
        instance: &Value,
        what: &str,
    ) -> Result<(), String> {
        let compiled = self
            .compiled
            .get_or_init(|| schema().and_then(|s| compile(&s, what)).map(Box::new));
        let Some(v) = compiled else {
            return Ok(());
        };
        if v.is_valid(instance) {
            return Ok(());
        }
        let mut listed = Vec::new();
        let mut more = 0usize;
        for e in v.iter_errors(instance) {
            if listed.len() < MAX_LISTED {
                let at = e.instance_path().to_string();
                let at = if at.is_empty() { "/".to_string() } else { at };
                listed.push(format!("at {at}: {} (rule {})", e.masked(), e.schema_path()));
            } else {
                more += 1;
            }
        }
        let mut msg = listed.join("; ");
        if more > 0 {
            msg.push_str(&format!("; and {more} more"));
        }
        Err(msg)
    }
}

fn compile(schema: &Value, what: &str) -> Option<jsonschema::Validator> {
    // A schema without `$schema` is 2020-12 (MCP's default dialect); an explicit one wins.
    let has_dialect = schema.get("$schema").is_some_and(Value::is_string);
    let mut opts = jsonschema::options();
    if !has_dialect {
        opts = opts.with_draft(jsonschema::Draft::Draft202012);
    }
    match opts.build(schema) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!(target: "waygate::validate", %what, error = %e.masked(), "schema cannot be compiled; not validated");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_pointer_and_rule_without_the_value() {
        let s = LazySchema::default();
        let schema = json!({
            "type": "object",
            "properties": {"n": {"type": "integer", "maximum": 10}, "tags": {"type": "array", "items": {"type": "string"}}},
            "required": ["n"],
            "additionalProperties": false
        });
        assert!(s.check(Some(&schema), &json!({"n": 3}), "t").is_ok());
        let e = s
            .check(Some(&schema), &json!({"n": "sk-secret-value"}), "t")
            .unwrap_err();
        assert!(e.contains("at /n") && e.contains("type"), "{e}");
        assert!(!e.contains("sk-secret-value"), "value echoed: {e}");
        let e = s.check(Some(&schema), &json!({"n": 11}), "t").unwrap_err();
        assert!(e.contains("maximum"), "{e}");
        let e = s.check(Some(&schema), &json!({}), "t").unwrap_err();
        assert!(e.contains("at /:") && e.contains("required"), "{e}");
        let e = s
            .check(Some(&schema), &json!({"n": 1, "tags": [1, 2, 3, 4, 5]}), "t")
            .unwrap_err();
        assert!(e.contains("/tags/0") && e.contains("and 2 more"), "{e}");
    }

    #[test]
    fn both_dialects_and_broken_schemas() {
        let draft7 = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {"a": {"type": "string"}},
            "dependencies": {"a": ["b"]}
        });
        let s = LazySchema::default();
        assert!(s
            .check(Some(&draft7), &json!({"a": "x"}), "t")
            .unwrap_err()
            .contains("b"));
        assert!(s.check(Some(&draft7), &json!({"a": "x", "b": 1}), "t").is_ok());
        // 2020-12 by default: prefixItems is understood.
        let s = LazySchema::default();
        let modern = json!({"type": "object", "properties": {"p": {"prefixItems": [{"type": "integer"}]}}});
        assert!(s.check(Some(&modern), &json!({"p": ["x"]}), "t").is_err());
        // A schema that does not compile lets the call through.
        let s = LazySchema::default();
        let broken = json!({"type": "object", "properties": {"a": {"$ref": "https://example.invalid/x.json"}}});
        assert!(s.check(Some(&broken), &json!({"a": 1}), "t").is_ok());
        let s = LazySchema::default();
        assert!(s.check(Some(&json!({"type": 12})), &json!({}), "t").is_ok());
    }
}
