//! Secrets never leave: two mechanisms that do not depend on anybody remembering a key name.
//!
//! - [`Secret`]: the type of every configuration value that is a credential by nature
//!   (`mcp.state_key`, `store.url`, `limits.redis_url`, header and env values, JWT shared
//!   keys). It prints, debugs and serializes as `<redacted>`; only [`Secret::expose`] gives
//!   the value, so printing one by accident is impossible.
//! - Every value that arrived through `${env:…}`, `${file:…}` or `${secret:…}` — in any key,
//!   including sections that do not exist yet — is [`register`]ed, and [`scrub`] replaces it
//!   wherever it appears in text bound for a person: log lines, `config show`, diagnostics,
//!   exports of configuration, error messages. `scrub` also removes credentials from URLs in
//!   every form (`user@`, `user:pass@`, `?password=`, `?token=`, …).

use std::borrow::Cow;
use std::sync::RwLock;

/// What stands in for a secret.
pub const REDACTED: &str = "<redacted>";

/// Values shorter than this are not scrubbed by value (too likely to be ordinary text);
/// they still never print through [`Secret`].
const MIN_SCRUB_LEN: usize = 4;

static KNOWN: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Treat `value` as a secret in every later [`scrub`].
pub fn register(value: &str) {
    if value.len() < MIN_SCRUB_LEN {
        return;
    }
    let mut k = KNOWN.write().unwrap_or_else(|e| e.into_inner());
    if !k.iter().any(|v| v == value) {
        k.push(value.to_string());
        // Longest first, so a secret that contains another is replaced whole.
        k.sort_by_key(|v| std::cmp::Reverse(v.len()));
    }
}

/// `text` with every registered secret and every URL credential replaced.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(text);
    {
        let k = KNOWN.read().unwrap_or_else(|e| e.into_inner());
        for v in k.iter() {
            if out.contains(v.as_str()) {
                out = Cow::Owned(out.replace(v.as_str(), REDACTED));
            }
        }
    }
    if out.contains("://") {
        if let Cow::Owned(s) = scrub_urls(&out) {
            out = Cow::Owned(s);
        }
    }
    out
}

/// Query parameters whose values are credentials.
fn secret_param(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.as_str(),
        "password"
            | "passwd"
            | "pass"
            | "pwd"
            | "token"
            | "access_token"
            | "refresh_token"
            | "id_token"
            | "api_key"
            | "apikey"
            | "api-key"
            | "key"
            | "secret"
            | "client_secret"
            | "auth"
            | "authorization"
            | "sig"
            | "signature"
            | "session"
            | "sessionid"
            | "x-amz-signature"
            | "x-amz-credential"
            | "x-amz-security-token"
    ) || n.ends_with("_token")
        || n.ends_with("password")
        || n.ends_with("secret")
}

/// Credentials removed from every URL inside `text`: the whole userinfo (a bare `user@` may
/// be a token, as in `https://ghp_…@github.com`) and the values of credential parameters.
pub fn scrub_urls(text: &str) -> Cow<'_, str> {
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        // The scheme: letters, digits, + - . right before "://".
        let scheme_start = rest[..i]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || "+-.".contains(c)))
            .map_or(0, |p| p + 1);
        let end = rest[i + 3..]
            .find(|c: char| c.is_whitespace() || "\"'<>`,;)]}".contains(c))
            .map_or(rest.len(), |p| i + 3 + p);
        out.push_str(&rest[..scheme_start]);
        let url = &rest[scheme_start..end];
        match redact_url(url) {
            Cow::Borrowed(u) => out.push_str(u),
            Cow::Owned(u) => {
                changed = true;
                out.push_str(&u);
            }
        }
        rest = &rest[end..];
    }
    if !changed {
        return Cow::Borrowed(text);
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// One URL with its userinfo and credential parameters replaced by `***`.
pub fn redact_url(url: &str) -> Cow<'_, str> {
    let Some(s) = url.find("://") else {
        return Cow::Borrowed(url);
    };
    let authority_end = url[s + 3..].find(['/', '?', '#']).map_or(url.len(), |p| s + 3 + p);
    let mut out = String::new();
    let mut changed = false;
    match url[s + 3..authority_end].rfind('@') {
        Some(at) => {
            let userinfo = &url[s + 3..s + 3 + at];
            out.push_str(&url[..s + 3]);
            match userinfo.split_once(':') {
                Some((user, _)) if !user.is_empty() => {
                    out.push_str(user);
                    out.push_str(":***");
                }
                _ => out.push_str("***"),
            }
            out.push_str(&url[s + 3 + at..authority_end]);
            changed = true;
        }
        None => out.push_str(&url[..authority_end]),
    }
    let tail = &url[authority_end..];
    match tail.find('?') {
        Some(q) => {
            out.push_str(&tail[..=q]);
            let (query, frag) = match tail[q + 1..].find('#') {
                Some(h) => (&tail[q + 1..q + 1 + h], &tail[q + 1 + h..]),
                None => (&tail[q + 1..], ""),
            };
            for (i, pair) in query.split('&').enumerate() {
                if i > 0 {
                    out.push('&');
                }
                match pair.split_once('=') {
                    Some((k, v)) if secret_param(k) && !v.is_empty() => {
                        out.push_str(k);
                        out.push_str("=***");
                        changed = true;
                    }
                    _ => out.push_str(pair),
                }
            }
            out.push_str(frag);
        }
        None => out.push_str(tail),
    }
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(url)
    }
}

/// [`scrub`] every string inside a JSON value (diagnostics, API answers).
pub fn scrub_json(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) => {
            if let Cow::Owned(clean) = scrub(s) {
                *s = clean;
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(scrub_json),
        serde_json::Value::Object(o) => o.values_mut().for_each(scrub_json),
        _ => {}
    }
}

/// A credential from the configuration. Deserializes from a plain string; prints,
/// debugs and serializes as `<redacted>`.
#[derive(Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(v: impl Into<String>) -> Self {
        Secret(v.into())
    }

    /// The value itself, for the one place that uses it (a key derivation, a connection).
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_credentials_in_every_form() {
        let cases = [
            ("postgres://app:s3cret@db:5432/x", "postgres://app:***@db:5432/x"),
            ("https://ghp_abcdef@github.com/o/r", "https://***@github.com/o/r"),
            ("redis://:pw@cache:6379/0", "redis://***@cache:6379/0"),
            (
                "https://h/p?user=a&password=hunter2&x=1",
                "https://h/p?user=a&password=***&x=1",
            ),
            ("https://h/p?access_token=abc#frag", "https://h/p?access_token=***#frag"),
            ("https://h/p?Token=abc&sig=zz", "https://h/p?Token=***&sig=***"),
            ("https://h/plain?page=2", "https://h/plain?page=2"),
            ("https://user@h.example/a@b", "https://***@h.example/a@b"),
        ];
        for (i, o) in cases {
            assert_eq!(redact_url(i), o, "{i}");
        }
        let line = r#"connecting to "postgres://u:pw@h/db" and https://x/y?token=t ok"#;
        assert_eq!(
            scrub_urls(line),
            r#"connecting to "postgres://u:***@h/db" and https://x/y?token=*** ok"#
        );
        assert!(matches!(scrub_urls("no urls here"), Cow::Borrowed(_)));
    }

    #[test]
    fn registered_values_are_scrubbed_everywhere() {
        register("tok-12345-abcdef");
        register("tok-12345");
        register("ab"); // too short to scrub by value
        let s = scrub("header=tok-12345-abcdef, other=tok-12345, tiny=ab");
        assert_eq!(s, "header=<redacted>, other=<redacted>, tiny=ab");
    }

    #[test]
    fn secret_type_never_prints() {
        let s: Secret = serde_json::from_str("\"hunter2\"").unwrap();
        assert_eq!(s.expose(), "hunter2");
        assert_eq!(format!("{s} {s:?}"), "<redacted> <redacted>");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"<redacted>\"");
    }
}
