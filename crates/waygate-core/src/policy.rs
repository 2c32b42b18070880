//! Authorization: which principal may call which tool, read which resource, get which
//! prompt — and, by the same rules, see which items in the lists.
//!
//! Rules are evaluated deny-overrides: a matching `deny` rule wins, else a matching `allow`
//! rule permits, else the default applies. The default only governs the three *access*
//! methods (`tools/call`, `resources/read`, `prompts/get`); lifecycle and list methods are
//! always allowed unless a rule names them in `methods`, because lists are filtered item by
//! item instead. Every decision carries the name of the rule that made it, for the log and
//! the audit row.

use std::sync::Arc;

use waygate_protocol::methods;

use crate::auth::Principal;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// One rule, compiled from the configuration.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub effect: Effect,
    /// Subjects: the rule applies to a principal matching any of these (all empty = everyone).
    pub principals: Vec<String>,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
    /// Globs over MCP method names; empty = any method.
    pub methods: Vec<String>,
    /// Globs over tool names, resource URIs and prompt names.
    pub tools: Vec<String>,
    pub resources: Vec<String>,
    pub prompts: Vec<String>,
}

/// What a request addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    Tool(&'a str),
    Resource(&'a str),
    Prompt(&'a str),
    /// A method without a named target (lists, ping, discover, …).
    None,
}

/// The outcome, with the rule that decided (`None`: the default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub rule: Option<Arc<str>>,
}

#[derive(Debug)]
pub struct Policy {
    rules: Vec<(Rule, Arc<str>)>,
    default_allow: bool,
}

impl Policy {
    pub fn new(rules: Vec<Rule>, default_allow: bool) -> Self {
        let rules = rules
            .into_iter()
            .map(|r| {
                let n = Arc::from(r.name.as_str());
                (r, n)
            })
            .collect();
        Policy { rules, default_allow }
    }

    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Decide one request. `principal` is `None` for unauthenticated transports (stdio,
    /// `--no-auth`); such callers match only rules without subjects.
    pub fn decide(&self, principal: Option<&Principal>, method: &str, target: Target<'_>) -> Decision {
        let mut allow: Option<&Arc<str>> = None;
        for (rule, name) in &self.rules {
            if !subject_matches(rule, principal) || !rule_applies(rule, method, target) {
                continue;
            }
            match rule.effect {
                Effect::Deny => {
                    return Decision {
                        allowed: false,
                        rule: Some(name.clone()),
                    }
                }
                Effect::Allow => allow = allow.or(Some(name)),
            }
        }
        if let Some(name) = allow {
            return Decision {
                allowed: true,
                rule: Some(name.clone()),
            };
        }
        let governed = matches!(target, Target::Tool(_) | Target::Resource(_) | Target::Prompt(_));
        Decision {
            allowed: self.default_allow || !governed,
            rule: None,
        }
    }

    /// Whether a list item is visible: the same decision as calling it.
    pub fn visible(&self, principal: Option<&Principal>, target: Target<'_>) -> bool {
        let method = match target {
            Target::Tool(_) => methods::TOOLS_CALL,
            Target::Resource(_) => methods::RESOURCES_READ,
            Target::Prompt(_) => methods::PROMPTS_GET,
            Target::None => return true,
        };
        self.decide(principal, method, target).allowed
    }
}

fn subject_matches(rule: &Rule, p: Option<&Principal>) -> bool {
    if rule.principals.is_empty() && rule.roles.is_empty() && rule.scopes.is_empty() {
        return true;
    }
    let Some(p) = p else { return false };
    rule.principals.iter().any(|g| glob(g, &p.id) || glob(g, &p.name))
        || rule.roles.iter().any(|g| p.roles.iter().any(|r| glob(g, r)))
        || rule.scopes.iter().any(|g| p.scopes.iter().any(|s| glob(g, s)))
}

fn rule_applies(rule: &Rule, method: &str, target: Target<'_>) -> bool {
    if !rule.methods.is_empty() && !rule.methods.iter().any(|g| glob(g, method)) {
        return false;
    }
    let any_target = !(rule.tools.is_empty() && rule.resources.is_empty() && rule.prompts.is_empty());
    match target {
        Target::Tool(n) => !any_target || rule.tools.iter().any(|g| glob(g, n)),
        Target::Resource(u) => !any_target || rule.resources.iter().any(|g| glob(g, u)),
        Target::Prompt(n) => !any_target || rule.prompts.iter().any(|g| glob(g, n)),
        // A rule about named targets says nothing about lists or lifecycle methods; a
        // rule about methods only does.
        Target::None => !any_target && !rule.methods.is_empty(),
    }
}

/// The target of a request's params, for the methods that have one.
pub fn target_of<'a>(method: &str, params: Option<&'a serde_json::Map<String, serde_json::Value>>) -> Target<'a> {
    let get = |k: &str| params.and_then(|p| p.get(k)).and_then(|v| v.as_str()).unwrap_or("");
    match method {
        methods::TOOLS_CALL => Target::Tool(get("name")),
        methods::RESOURCES_READ | methods::RESOURCES_SUBSCRIBE => Target::Resource(get("uri")),
        methods::PROMPTS_GET => Target::Prompt(get("name")),
        _ => Target::None,
    }
}

/// `*` matches any run of characters (including none), `?` one character; everything else
/// matches itself. Iterative with backtracking to the last star: linear for typical rules
/// and never recursive, whatever the input.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && p[pi] == t[ti])) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Method;

    fn principal(name: &str, roles: &[&str]) -> Principal {
        let roles: Vec<String> = roles.iter().map(|s| s.to_string()).collect();
        Principal::new(name.into(), name.into(), roles.clone(), roles, Method::ApiKey)
    }

    fn rule(name: &str, effect: Effect) -> Rule {
        Rule {
            name: name.into(),
            effect,
            principals: vec![],
            roles: vec![],
            scopes: vec![],
            methods: vec![],
            tools: vec![],
            resources: vec![],
            prompts: vec![],
        }
    }

    #[test]
    fn globs() {
        assert!(glob("files__read_*", "files__read_text"));
        assert!(!glob("files__read_*", "files__write"));
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "aXXbYYc"));
        assert!(!glob("a*b*c", "aXXbYY"));
        assert!(glob("?x", "éx"));
        assert!(glob("file:///docs/*", "file:///docs/a/b.md"));
        assert!(!glob("", "x"));
        // Pathological pattern stays fast.
        let long = "a".repeat(5000);
        assert!(!glob("*a*a*a*a*a*b", &long));
    }

    #[test]
    fn reader_may_call_only_read_tools() {
        let mut allow = rule("readers", Effect::Allow);
        allow.roles = vec!["reader".into()];
        allow.tools = vec!["files__read_*".into()];
        let p = Policy::new(vec![allow], false);
        let reader = principal("r", &["mcp", "reader"]);
        let d = p.decide(Some(&reader), methods::TOOLS_CALL, Target::Tool("files__read_text"));
        assert_eq!(
            d,
            Decision {
                allowed: true,
                rule: Some("readers".into())
            }
        );
        let d = p.decide(Some(&reader), methods::TOOLS_CALL, Target::Tool("files__write"));
        assert_eq!(
            d,
            Decision {
                allowed: false,
                rule: None
            }
        );
        // Lists and lifecycle are not governed by the default.
        assert!(p.decide(Some(&reader), methods::TOOLS_LIST, Target::None).allowed);
        // Other principals get the default; anonymous callers too.
        let other = principal("o", &["mcp"]);
        assert!(!p.visible(Some(&other), Target::Tool("files__read_text")));
        assert!(!p.visible(None, Target::Tool("files__read_text")));
        // A rule about tools does not open resources.
        assert!(!p.visible(Some(&reader), Target::Resource("files__read_x")));
    }

    #[test]
    fn deny_overrides_allow() {
        let mut allow = rule("all", Effect::Allow);
        allow.tools = vec!["*".into()];
        let mut deny = rule("no-exec", Effect::Deny);
        deny.principals = vec!["intern".into()];
        deny.tools = vec!["exec*".into()];
        let p = Policy::new(vec![allow, deny], false);
        let intern = principal("intern", &[]);
        let d = p.decide(Some(&intern), methods::TOOLS_CALL, Target::Tool("exec_cmd"));
        assert_eq!(d.rule.as_deref(), Some("no-exec"));
        assert!(!d.allowed);
        assert!(p.visible(Some(&principal("boss", &[])), Target::Tool("exec_cmd")));
        assert!(p.visible(Some(&intern), Target::Tool("echo")));
    }

    #[test]
    fn method_rules() {
        let mut deny = rule("no-lists", Effect::Deny);
        deny.roles = vec!["guest".into()];
        deny.methods = vec!["*/list".into()];
        let p = Policy::new(vec![deny], true);
        let guest = principal("g", &["guest"]);
        assert!(!p.decide(Some(&guest), methods::TOOLS_LIST, Target::None).allowed);
        assert!(p.decide(Some(&guest), methods::PING, Target::None).allowed);
        assert!(p.decide(Some(&guest), methods::TOOLS_CALL, Target::Tool("x")).allowed);
    }
}
