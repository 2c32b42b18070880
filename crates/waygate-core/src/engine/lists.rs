//! List answers: pages of the catalog, `tools/list` spliced from pre-serialized text.

use serde_json::{Map, Value};
use waygate_protocol::{ErrorObject, Reply};

use super::{views, Engine};
use crate::context::CallContext;

impl Engine {
    /// `tools/list`: the page's items as pre-serialized text, and the rest of the result.
    pub(super) fn list_tools(
        &self,
        p: Option<&Map<String, Value>>,
        ctx: &CallContext,
        policy: Option<&crate::policy::Policy>,
    ) -> Result<(Value, String), ErrorObject> {
        let catalog = self.registry.catalog();
        let visible = |t: crate::policy::Target<'_>| views::sees(policy, ctx, &catalog, t);
        let filter: Option<&dyn Fn(crate::policy::Target<'_>) -> bool> =
            (policy.is_some() || ctx.view.is_some()).then_some(&visible as _);
        let (items, next) = catalog.tools_page_raw(ctx.version, cursor(p)?, filter)?;
        let mut rest = Map::new();
        if let Some(c) = next {
            rest.insert("nextCursor".into(), Value::String(c));
        }
        Ok((Value::Object(rest), items))
    }
}

pub(super) fn cursor(p: Option<&Map<String, Value>>) -> Result<Option<&str>, ErrorObject> {
    match p.and_then(|p| p.get("cursor")) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(ErrorObject::invalid_params(format!(
            "Invalid params: cursor must be a string, got {other}"
        ))),
    }
}

/// The reply: the shaped result, with a pre-serialized `tools` array spliced in first.
pub(super) fn reply_of(shaped: Value, raw_items: Option<String>) -> Reply {
    let Some(items) = raw_items else {
        return Reply::Value(shaped);
    };
    let rest = serde_json::to_string(&shaped).unwrap_or_else(|_| "{}".into());
    let mut out = String::with_capacity(items.len() + rest.len() + 12);
    out.push_str("{\"tools\":");
    out.push_str(&items);
    match rest.strip_prefix('{') {
        Some(tail) if tail != "}" => {
            out.push(',');
            out.push_str(tail);
        }
        _ => out.push('}'),
    }
    Reply::Raw(out)
}

pub(super) fn list_result(key: &str, page: crate::catalog::Page) -> Value {
    let mut o = Map::with_capacity(2);
    o.insert(key.into(), Value::Array(page.items));
    if let Some(c) = page.next_cursor {
        o.insert("nextCursor".into(), Value::String(c));
    }
    Value::Object(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn raw_items_are_spliced_into_the_shaped_result() {
        let r = reply_of(
            json!({"nextCursor": "b2k", "resultType": "complete"}),
            Some("[{\"name\":\"a\"}]".into()),
        );
        let Reply::Raw(text) = &r else { panic!("raw expected") };
        assert!(!text.contains('\n'));
        assert_eq!(
            r.into_value(),
            json!({"tools": [{"name": "a"}], "nextCursor": "b2k", "resultType": "complete"})
        );
        assert_eq!(
            reply_of(json!({}), Some("[]".into())).into_value(),
            json!({"tools": []})
        );
        assert_eq!(reply_of(json!({"x": 1}), None), Reply::Value(json!({"x": 1})));
    }
}
