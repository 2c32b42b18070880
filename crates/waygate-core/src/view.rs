//! Virtual servers: named subsets of the catalog, each served on its own endpoint.
//!
//! A view narrows what a caller can see and use exactly the way a policy does — an item
//! outside the view is answered like an unknown one — so every path that checks the
//! policy (lists, calls, reads, prompts, completions, tasks, subscriptions, deliveries)
//! checks the view through the same predicate. Membership is decided on the serving
//! plugin and the item's own name (`github/*issue*`), never on the exposed name, so a
//! renamed or re-prefixed tool stays in the views it was put in.

use std::sync::Mutex;

use serde_json::{Map, Value};

use crate::auth::Principal;
use crate::catalog::{Catalog, Fingerprint};
use crate::policy::{glob, Target};

/// One virtual server.
#[derive(Debug)]
pub struct View {
    pub name: String,
    pub title: Option<String>,
    pub instructions: Option<String>,
    /// `<plugin>/<item glob>` or a bare plugin glob (all of that plugin's items).
    include: Vec<(String, Option<String>)>,
    exclude: Vec<(String, Option<String>)>,
    /// Tools must carry each of these annotation values (e.g. `readOnlyHint = true`).
    annotations: Map<String, Value>,
    /// Tools must carry a tag matching one of these globs (`_meta` `io.waygate/tags`, e.g.
    /// an OpenAPI operation's tags); empty: no tag filter.
    tags: Vec<String>,
    /// A caller needs one of these scopes (admin always passes); empty: any `mcp` caller.
    scopes: Vec<String>,
    /// … or one of these roles.
    roles: Vec<String>,
    /// The fingerprint of this view over the last catalog it was asked about.
    memo: Mutex<Option<(usize, Fingerprint)>>,
}

/// What a view is made from (the `[[servers]]` entry, validated).
#[derive(Debug, Default, Clone)]
pub struct ViewSpec {
    pub name: String,
    pub title: Option<String>,
    pub instructions: Option<String>,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub annotations: Map<String, Value>,
    pub tags: Vec<String>,
    pub scopes: Vec<String>,
    pub roles: Vec<String>,
}

/// The scope prefix that limits a credential to named virtual servers (`server:triage`).
pub const SERVER_SCOPE: &str = "server:";

fn split(patterns: &[String]) -> Vec<(String, Option<String>)> {
    patterns
        .iter()
        .map(|p| match p.split_once('/') {
            Some((plugin, item)) => (plugin.to_string(), Some(item.to_string())),
            None => (p.clone(), None),
        })
        .collect()
}

impl View {
    pub fn new(spec: ViewSpec) -> View {
        View {
            name: spec.name,
            title: spec.title,
            instructions: spec.instructions,
            include: split(&spec.include),
            exclude: split(&spec.exclude),
            annotations: spec.annotations,
            tags: spec.tags,
            scopes: spec.scopes,
            roles: spec.roles,
            memo: Mutex::new(None),
        }
    }

    /// Whether the patterns take an item of `plugin` known there as `local`.
    pub fn admits_item(&self, plugin: &str, local: &str) -> bool {
        let hit =
            |(p, item): &(String, Option<String>)| glob(p, plugin) && item.as_deref().is_none_or(|i| glob(i, local));
        self.include.iter().any(hit) && !self.exclude.iter().any(hit)
    }

    /// Whether any pattern takes items of `plugin` (its instructions then apply).
    pub fn admits_plugin(&self, plugin: &str) -> bool {
        self.include.iter().any(|(p, _)| glob(p, plugin))
    }

    fn admits_tags(&self, tags: &[Box<str>]) -> bool {
        self.tags.is_empty() || tags.iter().any(|t| self.tags.iter().any(|g| glob(g, t)))
    }

    fn admits_annotations(&self, annotations: Option<&Value>) -> bool {
        self.annotations.is_empty()
            || self
                .annotations
                .iter()
                .all(|(k, v)| annotations.and_then(|a| a.get(k)) == Some(v))
    }

    /// Whether a named target is part of this view (`Target::None` always is).
    pub fn admits(&self, catalog: &Catalog, target: Target<'_>) -> bool {
        match target {
            Target::Tool(n) => catalog.tool(n).is_some_and(|t| {
                self.admits_item(t.route.plugin.name(), &t.route.local_name)
                    && self.admits_annotations(t.annotations())
                    && self.admits_tags(t.tags())
            }),
            Target::Prompt(n) => catalog
                .prompt(n)
                .is_some_and(|r| self.admits_item(r.plugin.name(), &r.local_name)),
            Target::Resource(uri) => catalog
                .resource(uri)
                .map(|h| h.route)
                .or_else(|| catalog.template(uri))
                .is_some_and(|r| self.admits_item(r.plugin.name(), &r.local_name)),
            Target::None => true,
        }
    }

    /// Whether a caller may use this view at all. A credential limited to virtual servers
    /// (`server:NAME` scopes) reaches only those; `scopes`/`roles` narrow it further.
    pub fn may_enter(&self, principal: Option<&Principal>) -> bool {
        let Some(p) = principal else {
            // Authentication is off: the endpoint is as open as `/mcp`.
            return self.scopes.is_empty() && self.roles.is_empty();
        };
        if p.has_scope("admin") {
            return true;
        }
        if limited_to_servers(p)
            && !p
                .scopes
                .iter()
                .any(|s| s.strip_prefix(SERVER_SCOPE) == Some(&self.name))
        {
            return false;
        }
        (self.scopes.is_empty() && self.roles.is_empty())
            || self.scopes.iter().any(|s| p.scopes.contains(s))
            || self.roles.iter().any(|r| p.roles.contains(r))
    }

    /// What this view shows of `catalog`, hashed per list (memoized per catalog).
    pub fn fingerprint(&self, catalog: &std::sync::Arc<Catalog>) -> Fingerprint {
        let key = std::sync::Arc::as_ptr(catalog) as usize;
        let mut memo = self.memo.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((k, f)) = *memo {
            if k == key {
                return f;
            }
        }
        let f = catalog.fingerprint_where(&|t| self.admits(catalog, t));
        *memo = Some((key, f));
        f
    }
}

/// Whether a credential carries `server:` scopes, which confine it to those servers.
pub fn limited_to_servers(p: &Principal) -> bool {
    !p.has_scope("admin") && p.scopes.iter().any(|s| s.starts_with(SERVER_SCOPE))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Method;

    fn view(include: &[&str], exclude: &[&str]) -> View {
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        View::new(ViewSpec {
            name: "triage".into(),
            include: v(include),
            exclude: v(exclude),
            ..Default::default()
        })
    }

    #[test]
    fn patterns_name_plugin_and_item() {
        let v = view(&["github/*issue*", "demo/echo", "files"], &["github/delete_*"]);
        assert!(v.admits_item("github", "create_issue"));
        assert!(!v.admits_item("github", "delete_issue"));
        assert!(!v.admits_item("github", "push"));
        assert!(v.admits_item("demo", "echo") && !v.admits_item("demo", "add"));
        assert!(v.admits_item("files", "anything/at/all"));
    }

    #[test]
    fn server_scopes_confine_a_credential() {
        let v = view(&["demo"], &[]);
        let p = |scopes: &[&str]| {
            let s: Vec<String> = scopes.iter().map(|x| x.to_string()).collect();
            Principal::new("k".into(), "k".into(), s.clone(), s, Method::ApiKey)
        };
        assert!(v.may_enter(Some(&p(&["mcp"]))));
        assert!(v.may_enter(Some(&p(&["mcp", "server:triage"]))));
        assert!(!v.may_enter(Some(&p(&["mcp", "server:other"]))));
        assert!(v.may_enter(Some(&p(&["admin"]))));
        assert!(limited_to_servers(&p(&["mcp", "server:other"])));
        assert!(!limited_to_servers(&p(&["mcp"])));
        let narrow = View::new(ViewSpec {
            name: "ops".into(),
            include: vec!["demo".into()],
            scopes: vec!["ops".into()],
            ..Default::default()
        });
        assert!(!narrow.may_enter(Some(&p(&["mcp"]))) && narrow.may_enter(Some(&p(&["mcp", "ops"]))));
        assert!(!narrow.may_enter(None));
    }
}
