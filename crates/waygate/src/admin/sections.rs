//! Replacing whole top-level sections of the configuration file (`[authz]` +
//! `[[policies]]`, `[limits]`) while the rest of the file — comments, order, secret
//! references — stays as the operator wrote it.

use serde_json::Value;
use waygate_admin::Problem;

/// The placeholder the read endpoints show for a secret; written back, it keeps the value.
const REDACTED: &str = "<redacted>";

/// The sections a write may replace.
const SECTIONS: [&str; 3] = ["authz", "policies", "limits"];

/// `text` (the file as it is; empty when there is none) with each top-level key of
/// `sections` replaced by its value; a null, empty object or empty list removes the key.
pub fn merge(text: &str, sections: &Value) -> Result<String, Problem> {
    let Some(sections) = sections.as_object() else {
        return Err(Problem::bad_request("expected an object of configuration sections"));
    };
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e| {
        Problem::conflict(format!(
            "the configuration file does not parse ({e}); fix it or replace it with PUT /api/v1/config"
        ))
    })?;
    let mut new = toml::Table::new();
    for (key, value) in sections {
        if !SECTIONS.contains(&key.as_str()) {
            return Err(Problem::bad_request(format!("`{key}` cannot be replaced on its own")).field(key.clone()));
        }
        let mut value = value.clone();
        strip_nulls(&mut value);
        if key == "limits" {
            keep_redacted_url(&doc, &mut value)?;
        }
        let empty = match &value {
            Value::Null => true,
            Value::Object(m) => m.is_empty(),
            Value::Array(a) => a.is_empty(),
            _ => false,
        };
        doc.remove(key);
        if !empty {
            let v = toml::Value::try_from(&value)
                .map_err(|e| Problem::bad_request(format!("{key}: {e}")).field(key.clone()))?;
            new.insert(key.clone(), v);
        }
    }
    let mut out = doc.to_string();
    if out.trim().is_empty() {
        out = format!("version = {}\n", crate::config::CURRENT_VERSION);
    }
    if !new.is_empty() {
        // Every replaced key is a table or an array of tables: appended after the rest,
        // their headers make them top-level again.
        let tail = toml::to_string(&new).map_err(|e| Problem::bad_request(e.to_string()))?;
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&tail);
    }
    Ok(out)
}

fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// `limits.redis_url = "<redacted>"` (as read back) keeps the value in the file, which may
/// be a `${env:…}` reference or the URL itself.
fn keep_redacted_url(doc: &toml_edit::DocumentMut, limits: &mut Value) -> Result<(), Problem> {
    let Some(m) = limits.as_object_mut() else {
        return Ok(());
    };
    if m.get("redis_url").and_then(Value::as_str) != Some(REDACTED) {
        return Ok(());
    }
    let current = doc
        .get("limits")
        .and_then(|l| l.get("redis_url"))
        .and_then(|u| u.as_str())
        .map(str::to_string);
    match current {
        Some(u) => {
            m.insert("redis_url".into(), Value::String(u));
            Ok(())
        }
        None => Err(Problem::bad_request(
            "limits.redis_url holds the placeholder \"<redacted>\" but the file has no Redis URL to keep; \
             write the URL or a ${env:NAME} reference",
        )
        .field("limits.redis_url")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::merge;

    #[test]
    fn sections_are_replaced_and_the_rest_of_the_file_kept() {
        let text =
            "# my gateway\nversion = 3\n\n[server]\nname = \"gw\" # the name\n\n[authz]\ndefault = \"allow\"\n\n\
                    [[policies]]\nname = \"old\"\neffect = \"deny\"\ntools = [\"x\"]\n\n[log]\nbodies = [\"echo\"]\n";
        let out = merge(
            text,
            &json!({"authz": {"default": "deny"}, "policies": [{"name": "p", "effect": "allow", "tools": ["echo"]}]}),
        )
        .unwrap();
        assert!(
            out.contains("# my gateway") && out.contains("name = \"gw\" # the name"),
            "{out}"
        );
        assert!(!out.contains("old"), "{out}");
        let cfg: crate::config::FileConfig = toml::from_str(&out).unwrap();
        assert_eq!(cfg.authz.default.as_deref(), Some("deny"));
        assert_eq!(cfg.policies.len(), 1);
        assert_eq!(cfg.log.bodies, vec!["echo".to_string()]);
        // An empty list removes the rules.
        let out = merge(&out, &json!({"policies": [], "authz": {}})).unwrap();
        let cfg: crate::config::FileConfig = toml::from_str(&out).unwrap();
        assert!(cfg.policies.is_empty() && cfg.authz.default.is_none(), "{out}");
    }

    #[test]
    fn no_file_gets_a_versioned_one_and_a_redacted_url_is_kept() {
        let out = merge(
            "",
            &json!({"limits": {"requests_per_second": 2, "burst": null, "tools": {"*": {"max_concurrent": 1}}}}),
        )
        .unwrap();
        assert!(out.starts_with("version = 3\n"), "{out}");
        let cfg: crate::config::FileConfig = toml::from_str(&out).unwrap();
        assert_eq!(cfg.limits.requests_per_second, Some(2.0));
        assert_eq!(cfg.limits.tools["*"].max_concurrent, Some(1));
        let with_url = "[limits]\nredis_url = \"${env:REDIS}\"\n";
        let out = merge(with_url, &json!({"limits": {"redis_url": "<redacted>", "burst": 3}})).unwrap();
        assert!(out.contains("redis_url = \"${env:REDIS}\""), "{out}");
        let p = merge("", &json!({"limits": {"redis_url": "<redacted>"}})).unwrap_err();
        assert_eq!(p.field.as_deref(), Some("limits.redis_url"));
        assert!(merge("", &json!({"server": {}})).is_err());
    }
}
