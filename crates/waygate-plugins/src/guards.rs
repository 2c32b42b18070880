//! Built-in guard hooks for the hook chain: secret redaction, argument deny lists and an
//! output size limit. Each is configured as a `[[hooks]]` entry, so priority, mode,
//! conditions and timeout come from the chain, and only the check itself lives here.

use regex::{Regex, RegexSet};
use serde_json::Value;
use waygate_core::hooks::{Hook, HookTarget, Verdict};
use waygate_core::BoxFuture;

/// Credential shapes found inside any string (not only whole values).
const SECRET_PATTERNS: [&str; 13] = [
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
    r"\b(?:ghp|gho|ghs|ghu|ghr)_[A-Za-z0-9]{20,}",
    r"\bgithub_pat_[A-Za-z0-9_]{20,}",
    r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{16,}",
    r"\b(?:sk|rk|pk)_live_[A-Za-z0-9]{16,}",
    r"\bxox[abposr]-[A-Za-z0-9-]{10,}",
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    r"\bAIza[0-9A-Za-z_-]{35}",
    r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
    r"(?i)\bbearer\s+[A-Za-z0-9._~+/-]{16,}=*",
    r"\bwg_[A-Za-z0-9_-]{16,}",
    r"\bglpat-[A-Za-z0-9_-]{20,}",
    r"(?i)(?:password|passwd|secret|api[_-]?key|token)\s*[=:]\s*[^\s,;&]{6,}",
];

/// Replaces credential-shaped substrings in arguments and results with `[REDACTED]`.
pub struct RedactSecrets {
    res: Vec<Regex>,
    any: RegexSet,
    pre: bool,
    post: bool,
}

impl RedactSecrets {
    /// `settings`: `patterns` (extra regexes), `phases` (`["pre", "post"]` by default).
    pub fn new(settings: &Value) -> Result<Self, String> {
        let mut pats: Vec<String> = SECRET_PATTERNS.iter().map(|s| s.to_string()).collect();
        pats.extend(strings(settings, "patterns")?);
        let res = pats
            .iter()
            .map(|p| Regex::new(p).map_err(|e| format!("settings.patterns: {p:?}: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let any = RegexSet::new(&pats).map_err(|e| e.to_string())?;
        let phases = strings(settings, "phases")?;
        let on = |p: &str| phases.is_empty() || phases.iter().any(|x| x == p);
        Ok(RedactSecrets {
            res,
            any,
            pre: on("pre"),
            post: on("post"),
        })
    }

    fn scrub(&self, v: &mut Value) -> bool {
        match v {
            Value::String(s) if self.any.is_match(s) => {
                let mut out = std::mem::take(s);
                for re in &self.res {
                    if re.is_match(&out) {
                        out = re.replace_all(&out, "[REDACTED]").into_owned();
                    }
                }
                *s = out;
                true
            }
            Value::Array(a) => a.iter_mut().fold(false, |acc, x| self.scrub(x) | acc),
            Value::Object(m) => m.values_mut().fold(false, |acc, x| self.scrub(x) | acc),
            _ => false,
        }
    }

    fn verdict(&self, on: bool, v: &mut Value) -> Result<Verdict, String> {
        Ok(if on && self.scrub(v) {
            Verdict::Modified
        } else {
            Verdict::Pass
        })
    }
}

impl Hook for RedactSecrets {
    fn kind(&self) -> &str {
        "redact_secrets"
    }
    fn pre<'a>(&'a self, _t: &'a HookTarget<'a>, a: &'a mut Value) -> BoxFuture<'a, Result<Verdict, String>> {
        Box::pin(async move { self.verdict(self.pre, a) })
    }
    fn post<'a>(&'a self, _t: &'a HookTarget<'a>, r: &'a mut Value) -> BoxFuture<'a, Result<Verdict, String>> {
        Box::pin(async move { self.verdict(self.post, r) })
    }
}

/// Refuses calls whose arguments match a pattern.
pub struct DenyList {
    set: RegexSet,
    patterns: Vec<String>,
    /// Only these argument names are checked (all string values when empty).
    arguments: Vec<String>,
}

impl DenyList {
    /// `settings`: `patterns` (regexes, required) and `arguments` (names to check).
    pub fn new(settings: &Value) -> Result<Self, String> {
        let patterns = strings(settings, "patterns")?;
        if patterns.is_empty() {
            return Err("settings.patterns: expected at least one regular expression".into());
        }
        let set = RegexSet::new(&patterns).map_err(|e| format!("settings.patterns: {e}"))?;
        Ok(DenyList {
            set,
            patterns,
            arguments: strings(settings, "arguments")?,
        })
    }

    fn first_match(&self, path: &str, v: &Value) -> Option<(String, String)> {
        match v {
            Value::String(s) => self
                .set
                .matches(s)
                .iter()
                .next()
                .map(|i| (path.to_string(), self.patterns[i].clone())),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .find_map(|(i, x)| self.first_match(&format!("{path}[{i}]"), x)),
            Value::Object(m) => m.iter().find_map(|(k, x)| {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                self.first_match(&p, x)
            }),
            _ => None,
        }
    }
}

impl Hook for DenyList {
    fn kind(&self) -> &str {
        "deny_list"
    }
    fn pre<'a>(&'a self, _t: &'a HookTarget<'a>, a: &'a mut Value) -> BoxFuture<'a, Result<Verdict, String>> {
        Box::pin(async move {
            let hit = if self.arguments.is_empty() {
                self.first_match("", a)
            } else {
                self.arguments
                    .iter()
                    .find_map(|n| a.get(n).and_then(|v| self.first_match(n, v)))
            };
            Ok(match hit {
                Some((arg, pat)) => Verdict::Deny(format!("argument {arg:?} matches the denied pattern {pat:?}")),
                None => Verdict::Pass,
            })
        })
    }
}

/// Truncates results over `max_bytes` with an explicit marker naming the original size.
pub struct OutputLimit {
    max: usize,
}

impl OutputLimit {
    pub fn new(settings: &Value) -> Result<Self, String> {
        let max = settings
            .get("max_bytes")
            .and_then(Value::as_u64)
            .filter(|n| *n >= 64)
            .ok_or("settings.max_bytes: expected a number of bytes >= 64")?;
        Ok(OutputLimit { max: max as usize })
    }
}

impl Hook for OutputLimit {
    fn kind(&self) -> &str {
        "output_limit"
    }
    fn post<'a>(&'a self, _t: &'a HookTarget<'a>, r: &'a mut Value) -> BoxFuture<'a, Result<Verdict, String>> {
        Box::pin(async move {
            Ok(if waygate_core::util::cap_result(r, self.max) {
                Verdict::Modified
            } else {
                Verdict::Pass
            })
        })
    }
}

fn strings(settings: &Value, key: &str) -> Result<Vec<String>, String> {
    match settings.get(key) {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("settings.{key}: expected strings"))
            })
            .collect(),
        Some(_) => Err(format!("settings.{key}: expected a list of strings")),
    }
}

/// Build a built-in guard by kind; `None` for an unknown kind.
pub fn builtin(kind: &str, settings: &Value) -> Option<Result<std::sync::Arc<dyn Hook>, String>> {
    use std::sync::Arc;
    Some(match kind {
        "redact_secrets" => RedactSecrets::new(settings).map(|h| Arc::new(h) as Arc<dyn Hook>),
        "deny_list" => DenyList::new(settings).map(|h| Arc::new(h) as Arc<dyn Hook>),
        "output_limit" => OutputLimit::new(settings).map(|h| Arc::new(h) as Arc<dyn Hook>),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const T: HookTarget<'static> = HookTarget {
        kind: "tool",
        name: "t",
        plugin: "p",
        principal: None,
    };

    #[tokio::test]
    async fn redaction_catches_embedded_tokens_and_keeps_ordinary_text() {
        let h = RedactSecrets::new(&json!({})).unwrap();
        let mut v = json!({
            "content": [{"type": "text", "text": "token ghp_abcdefghijklmnopqrstuvwxyz0123 and AKIAABCDEFGHIJKLMNOP; Authorization: Bearer abcdefghijklmnopqrstuvwxyz"}],
            "nested": ["password=hunter2hunter2", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"],
            "pem": "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----",
        });
        assert_eq!(h.post(&T, &mut v).await.unwrap(), Verdict::Modified);
        let s = v.to_string();
        for leak in [
            "ghp_abc",
            "AKIAABCD",
            "abcdefghijklmnopqrstuvwxyz\"",
            "hunter2",
            "eyJhbGci",
            "MIIEow",
        ] {
            assert!(!s.contains(leak), "{leak} leaked: {s}");
        }
        assert!(s.contains("token [REDACTED] and [REDACTED]"), "{s}");
        let mut plain = json!({"text": "the sky is blue; skip-list and task-1234 are fine", "n": 5});
        assert_eq!(h.pre(&T, &mut plain).await.unwrap(), Verdict::Pass);
        assert_eq!(plain["text"], "the sky is blue; skip-list and task-1234 are fine");
    }

    #[tokio::test]
    async fn deny_list_blocks_matching_arguments_only() {
        let h =
            DenyList::new(&json!({"patterns": ["(?i)\\brm\\s+-rf\\b", "\\.\\./"], "arguments": ["command", "path"]}))
                .unwrap();
        let mut bad = json!({"command": "RM -rf /", "other": "x"});
        assert!(matches!(h.pre(&T, &mut bad).await.unwrap(), Verdict::Deny(r) if r.contains("\"command\"")));
        let mut nested = json!({"path": ["ok", "../etc/passwd"]});
        assert!(matches!(h.pre(&T, &mut nested).await.unwrap(), Verdict::Deny(r) if r.contains("path[1]")));
        let mut unchecked = json!({"note": "rm -rf /"});
        assert_eq!(h.pre(&T, &mut unchecked).await.unwrap(), Verdict::Pass);
        let mut fine = json!({"command": "ls -la"});
        assert_eq!(h.pre(&T, &mut fine).await.unwrap(), Verdict::Pass);
        assert!(DenyList::new(&json!({"patterns": ["("]})).is_err());
        assert!(DenyList::new(&json!({})).is_err());
    }

    #[tokio::test]
    async fn output_limit_truncates_with_marker() {
        let h = OutputLimit::new(&json!({"max_bytes": 200})).unwrap();
        let mut big = json!({"content": [{"type": "text", "text": "x".repeat(1000)}]});
        assert_eq!(h.post(&T, &mut big).await.unwrap(), Verdict::Modified);
        let text = big["content"][0]["text"].as_str().unwrap();
        assert!(
            text.contains("truncated by Waygate") && text.contains("limit 200"),
            "{text}"
        );
        let mut small = json!({"content": [{"type": "text", "text": "ok"}]});
        assert_eq!(h.post(&T, &mut small).await.unwrap(), Verdict::Pass);
    }
}
