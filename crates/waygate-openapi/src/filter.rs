//! Which operations become tools: `include` / `exclude` rules by method, path glob and tag.
//!
//! A rule is written as the operator thinks of an operation: `"GET /pets/*"`,
//! `"POST,PUT /orders/*"`, `"/admin/*"` (any method), `"DELETE"` (any path) or
//! `"tag:billing"` (glob on the tag). An operation is kept when no include rule is given or
//! one matches, and no exclude rule matches.

use waygate_core::policy::glob;

const METHODS: [&str; 8] = ["GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE"];

/// One parsed rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    Tag(String),
    /// Methods (empty = any) and a path glob.
    Route(Vec<String>, String),
}

impl Rule {
    /// Parse a rule; the error says what was expected.
    pub fn parse(text: &str) -> Result<Rule, String> {
        let t = text.trim();
        if let Some(tag) = t.strip_prefix("tag:") {
            return match tag.trim() {
                "" => Err(format!("got {text:?}, expected a tag after \"tag:\"")),
                tag => Ok(Rule::Tag(tag.to_string())),
            };
        }
        let mut parts = t.split_whitespace();
        let (first, second) = (parts.next(), parts.next());
        if parts.next().is_some() {
            return Err(format!(
                "got {text:?}, expected \"METHOD /path/glob\", \"/path/glob\" or \"tag:NAME\""
            ));
        }
        let methods = |m: &str| -> Result<Vec<String>, String> {
            if m == "*" {
                return Ok(Vec::new());
            }
            m.split(',')
                .map(|x| {
                    let up = x.trim().to_ascii_uppercase();
                    if METHODS.contains(&up.as_str()) {
                        Ok(up)
                    } else {
                        Err(format!(
                            "got {x:?} in {text:?}, expected an HTTP method (GET, POST, …) or *"
                        ))
                    }
                })
                .collect()
        };
        match (first, second) {
            (Some(p), None) if p.starts_with('/') || p == "*" => Ok(Rule::Route(Vec::new(), p.to_string())),
            (Some(m), None) => Ok(Rule::Route(methods(m)?, "*".into())),
            (Some(m), Some(p)) if p.starts_with('/') || p == "*" => Ok(Rule::Route(methods(m)?, p.to_string())),
            _ => Err(format!(
                "got {text:?}, expected \"METHOD /path/glob\", \"/path/glob\" or \"tag:NAME\""
            )),
        }
    }

    fn matches(&self, method: &str, path: &str, tags: &[String]) -> bool {
        match self {
            Rule::Tag(g) => tags.iter().any(|t| glob(g, t)),
            Rule::Route(ms, p) => (ms.is_empty() || ms.iter().any(|m| m.eq_ignore_ascii_case(method))) && glob(p, path),
        }
    }
}

/// Include and exclude rules together.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub include: Vec<Rule>,
    pub exclude: Vec<Rule>,
}

impl Filter {
    /// Parse both lists; the error names the list and the rule.
    pub fn parse(include: &[String], exclude: &[String]) -> Result<Filter, String> {
        let list = |key: &str, rules: &[String]| {
            rules
                .iter()
                .map(|r| Rule::parse(r).map_err(|e| format!("{key}: {e}")))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Filter {
            include: list("include", include)?,
            exclude: list("exclude", exclude)?,
        })
    }

    pub fn admits(&self, method: &str, path: &str, tags: &[String]) -> bool {
        (self.include.is_empty() || self.include.iter().any(|r| r.matches(method, path, tags)))
            && !self.exclude.iter().any(|r| r.matches(method, path, tags))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_read_as_written() {
        let f = Filter::parse(
            &["GET /pet/*".into(), "tag:st*".into()],
            &["DELETE".into(), "post,put /store/order".into()],
        )
        .unwrap();
        let none: Vec<String> = vec![];
        assert!(f.admits("GET", "/pet/{petId}", &none));
        assert!(!f.admits("POST", "/pet", &none));
        assert!(f.admits("GET", "/store/inventory", &["store".into()]));
        assert!(!f.admits("POST", "/store/order", &["store".into()]));
        assert!(!f.admits("DELETE", "/pet/{petId}", &none));
        assert!(Rule::parse("FETCH /x").unwrap_err().contains("HTTP method"));
        assert!(Rule::parse("GET pets").is_err());
        assert!(Rule::parse("tag:").is_err());
        assert_eq!(Rule::parse("/a/*").unwrap(), Rule::Route(vec![], "/a/*".into()));
    }
}
