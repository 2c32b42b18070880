//! Literal secrets in a configuration file's text, for snapshots shown by the API: a quoted
//! value under a key that names a credential (or inside `headers`/`env`) becomes
//! `"<redacted>"` unless it is a `${…}` reference, then known secret values and URL
//! credentials are scrubbed. Comments and layout are kept, so diffs stay readable.

use std::sync::OnceLock;

use regex::Regex;

fn pair() -> Option<&'static Regex> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r#"(?P<key>"[^"]*"|[A-Za-z0-9_.-]+)(?P<eq>\s*=\s*)(?P<val>"(?:[^"\\]|\\.)*"|'[^']*')"#).ok()
    })
    .as_ref()
}

fn secretish(key: &str) -> bool {
    let k = key.trim_matches('"').to_ascii_lowercase();
    [
        "token",
        "secret",
        "password",
        "passwd",
        "key",
        "auth",
        "credential",
        "cookie",
        "session",
    ]
    .iter()
    .any(|w| k.contains(w))
}

fn is_reference(val: &str) -> bool {
    let v = val.trim_matches(|c| c == '"' || c == '\'').trim();
    v.starts_with("${") && v.ends_with('}') && v.matches("${").count() == 1
}

pub fn toml_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_table_of_values = false;
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with('[') {
            let name = t.trim_matches(|c| c == '[' || c == ']' || c == ' ');
            in_table_of_values = name.ends_with("headers") || name.ends_with(".env") || name == "env";
        }
        let inline_values = t.starts_with("headers") || t.starts_with("env");
        // Without the pattern nothing can be told apart: show no line at all.
        let Some(re) = pair() else {
            out.push_str("<redacted>\n");
            continue;
        };
        let redacted = re.replace_all(line, |c: &regex::Captures<'_>| {
            let (key, eq, val) = (&c["key"], &c["eq"], &c["val"]);
            if (secretish(key) || in_table_of_values || inline_values) && !is_reference(val) && !t.starts_with('#') {
                format!("{key}{eq}\"<redacted>\"")
            } else {
                c[0].to_string()
            }
        });
        out.push_str(&waygate_security::redact::scrub(&redacted));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_credentials_go_references_stay() {
        let text = "[[upstreams]]\nname = \"gh\"\nurl = \"https://u:p@h/x\"\nheaders = { Authorization = \"Bearer abc\", X-Ref = \"${secret:t}\" }\n[upstreams.env]\nFOO = \"bar\"\n[auth]\napi_key = 'k1'\n";
        let shown = toml_text(text);
        assert!(!shown.contains("Bearer abc"), "{shown}");
        assert!(!shown.contains("\"bar\""), "{shown}");
        assert!(!shown.contains("'k1'"), "{shown}");
        assert!(!shown.contains("u:p@"), "{shown}");
        assert!(shown.contains("${secret:t}"), "{shown}");
        assert!(shown.contains("name = \"gh\""), "{shown}");
    }
}
