//! Matching of RFC 6570 level-1 URI templates (`test://template/{id}/data`) against
//! concrete URIs, enough to route `resources/read` to the template that produced a URI.

use serde_json::{Map, Value};

/// Returns the variables when `uri` matches `template`; a variable matches one or more
/// characters up to the next literal (and never a `/` unless the template's literal is one).
pub fn match_template(template: &str, uri: &str) -> Option<Map<String, Value>> {
    let mut vars = Map::new();
    let mut rest = uri;
    let mut tpl = template;
    while !tpl.is_empty() {
        if let Some(start) = tpl.strip_prefix('{') {
            let end = start.find('}')?;
            let name = start[..end].trim_start_matches(['+', '#']);
            tpl = &start[end + 1..];
            // The literal that follows bounds the variable.
            let next_lit_end = tpl.find('{').unwrap_or(tpl.len());
            let lit = &tpl[..next_lit_end];
            let value_end = if lit.is_empty() { rest.len() } else { rest.find(lit)? };
            let value = &rest[..value_end];
            if value.is_empty() {
                return None;
            }
            vars.insert(name.to_string(), Value::String(value.to_string()));
            rest = &rest[value_end..];
        } else {
            let lit_end = tpl.find('{').unwrap_or(tpl.len());
            let lit = &tpl[..lit_end];
            rest = rest.strip_prefix(lit)?;
            tpl = &tpl[lit_end..];
        }
    }
    rest.is_empty().then_some(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_simple_template() {
        let v = match_template("test://template/{id}/data", "test://template/42/data").unwrap();
        assert_eq!(v["id"], "42");
        assert!(match_template("test://template/{id}/data", "test://template//data").is_none());
        assert!(match_template("test://template/{id}/data", "test://other/1/data").is_none());
        let v = match_template("file:///{path}", "file:///a/b").unwrap();
        assert_eq!(v["path"], "a/b");
    }
}
