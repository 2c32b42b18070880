//! How a plugin's tool and prompt names become the names clients see.
//!
//! LLM providers accept only `^[a-zA-Z0-9_-]{1,64}$` as a function name, and clients cache
//! names (allow-lists, prompts, saved conversations), so an exposed name must be valid and
//! must not move when something unrelated happens. Three rules give that:
//! - the name is a pure function of the plugin, its local name, its [`Shape`] and the set
//!   of plugins that ever claimed the same local name in this process ([`Claims`]) — not
//!   of load order, and not of which claimant happens to be running right now;
//! - a name that is not provider-safe is mangled deterministically (invalid characters to
//!   `_`, then a short hash of the full name when anything was changed or cut), and the
//!   catalog keeps the route, so the mapping back to `(plugin, local name)` is exact;
//! - two claimants never share an exposed name: a collision is prefixed and reported,
//!   never shadowed.

use std::collections::HashMap;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::policy::glob;

/// Longest name LLM providers accept for a function.
pub const MAX_NAME: usize = 64;

/// When a plugin's names carry its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Prefix {
    /// Always `<prefix><sep><name>`.
    Always,
    /// Only names another plugin also claims; the first claimant by rank keeps the bare
    /// name (local plugins before remote ones, then by plugin name; one that asked for
    /// `never` goes first).
    #[default]
    OnConflict,
    /// Never, unless two `never` claimants would share a name: then all but the first by
    /// rank are prefixed and the collision is reported as a configuration problem.
    Never,
}

impl Prefix {
    pub fn parse(s: &str) -> Option<Prefix> {
        match s {
            "always" => Some(Prefix::Always),
            "on-conflict" => Some(Prefix::OnConflict),
            "never" => Some(Prefix::Never),
            _ => None,
        }
    }
}

/// An operator's fix for one tool's definition (a bad description, wrong annotations).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Override {
    pub title: Option<String>,
    pub description: Option<String>,
    /// Merged key by key into the tool's `annotations`.
    pub annotations: Option<serde_json::Map<String, Value>>,
}

/// How one plugin's items enter the catalog.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Shape {
    /// `None`: the gateway-wide default.
    pub prefix: Option<Prefix>,
    /// Prefix text instead of the plugin name.
    pub prefix_with: Option<String>,
    /// Globs on local tool names; empty = all.
    pub allow: Vec<String>,
    /// Globs on local tool names, applied after `allow`.
    pub deny: Vec<String>,
    /// By local tool name.
    pub overrides: HashMap<String, Override>,
}

impl Shape {
    /// Whether a local tool name passes `allow` and `deny`.
    pub fn admits(&self, local: &str) -> bool {
        (self.allow.is_empty() || self.allow.iter().any(|g| glob(g, local)))
            && !self.deny.iter().any(|g| glob(g, local))
    }
}

/// The gateway-wide naming rules and every plugin's [`Shape`].
#[derive(Debug, Clone, PartialEq)]
pub struct Shaping {
    pub prefix: Prefix,
    pub separator: String,
    pub plugins: HashMap<String, Shape>,
}

impl Default for Shaping {
    fn default() -> Self {
        Shaping {
            prefix: Prefix::OnConflict,
            separator: "__".into(),
            plugins: HashMap::new(),
        }
    }
}

impl Shaping {
    pub fn shape(&self, plugin: &str) -> Option<&Shape> {
        self.plugins.get(plugin)
    }

    fn prefix_of(&self, plugin: &str) -> Prefix {
        self.shape(plugin).and_then(|s| s.prefix).unwrap_or(self.prefix)
    }

    fn prefix_text<'a>(&'a self, plugin: &'a str) -> &'a str {
        self.shape(plugin)
            .and_then(|s| s.prefix_with.as_deref())
            .unwrap_or(plugin)
    }

    /// `Err(message)` when a separator or prefix could not appear in a provider-safe name.
    pub fn check_text(what: &str, s: &str) -> Result<(), String> {
        if s.is_empty() || s.len() > 32 || !s.bytes().all(is_safe) {
            return Err(format!(
                "got {s:?}, expected 1 to 32 of letters, digits, '_' or '-' ({what} is part of every exposed name)"
            ));
        }
        Ok(())
    }
}

/// The claimants of one local name, in rank order. A sorted `Vec`: almost every name has
/// one claimant, and a one-element B-tree costs a 500-byte node per name at catalog scale.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimSet(Vec<Claimant>);

impl ClaimSet {
    pub fn insert(&mut self, c: Claimant) {
        if let Err(at) = self.0.binary_search(&c) {
            self.0.insert(at, c);
        }
    }

    pub fn contains(&self, c: &Claimant) -> bool {
        self.0.binary_search(c).is_ok()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Claimant> {
        self.0.iter()
    }

    pub fn retain(&mut self, keep: impl FnMut(&Claimant) -> bool) {
        self.0.retain(keep);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<Claimant> for ClaimSet {
    fn from_iter<I: IntoIterator<Item = Claimant>>(iter: I) -> Self {
        let mut v: Vec<Claimant> = iter.into_iter().collect();
        v.sort();
        v.dedup();
        ClaimSet(v)
    }
}

/// A plugin that wants a local name, ordered by rank: local plugins before remote ones,
/// then by when the plugin first joined (config order at start, later additions after),
/// so a newcomer never takes a name from a plugin clients already know.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Claimant {
    pub remote: bool,
    pub seq: u64,
    pub plugin: String,
}

/// Which plugins ever claimed each local name, by kind (tools, prompts). Kept by the
/// registry for the life of the process so a claimant that is disabled or down still
/// counts; a plugin removed for good is forgotten with [`Claims::forget`].
#[derive(Debug, Default)]
pub struct Claims {
    pub tools: HashMap<String, ClaimSet>,
    pub prompts: HashMap<String, ClaimSet>,
    /// Resource URIs and templates.
    pub resources: HashMap<String, ClaimSet>,
    /// When each plugin first joined.
    seqs: HashMap<String, u64>,
    next: u64,
}

impl Claims {
    /// A plugin's claimant identity; the first call fixes its place in the order.
    pub fn join(&mut self, plugin: &dyn crate::plugin::Plugin) -> Claimant {
        let next = &mut self.next;
        let seq = *self.seqs.entry(plugin.name().to_string()).or_insert_with(|| {
            *next += 1;
            *next
        });
        Claimant {
            remote: plugin.is_remote(),
            seq,
            plugin: plugin.name().to_string(),
        }
    }

    /// The identity of a plugin that already joined (one that did not gets the last place).
    pub fn claimant(&self, plugin: &dyn crate::plugin::Plugin) -> Claimant {
        Claimant {
            remote: plugin.is_remote(),
            seq: self.seqs.get(plugin.name()).copied().unwrap_or(u64::MAX),
            plugin: plugin.name().to_string(),
        }
    }

    pub fn forget(&mut self, plugin: &str) {
        self.seqs.remove(plugin);
        for map in [&mut self.tools, &mut self.prompts, &mut self.resources] {
            map.retain(|_, set| {
                set.retain(|c| c.plugin != plugin);
                !set.is_empty()
            });
        }
    }
}

fn is_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Whether a name is what LLM providers accept.
pub fn is_provider_safe(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME && name.bytes().all(is_safe)
}

/// The provider-safe form of `full`: itself when already safe; otherwise invalid
/// characters become `_`, and a `_` + 8 hex digits of SHA-256(`full`) suffix keeps names
/// that differed only in what was replaced or cut apart.
pub fn mangle(full: &str) -> String {
    if is_provider_safe(full) {
        return full.to_string();
    }
    let digest = Sha256::digest(full.as_bytes());
    let suffix: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    let keep = MAX_NAME - 1 - suffix.len();
    let mut out: String = full
        .chars()
        .map(|c| if c.is_ascii() && is_safe(c as u8) { c } else { '_' })
        .take(keep)
        .collect();
    if out.is_empty() {
        out.push('_');
    }
    out.push('_');
    out.push_str(&suffix);
    out
}

/// What is being named: tool and prompt names (provider-safe, mangled) or resource URIs
/// and templates (kept verbatim when bare, namespaced as `waygate://{prefix}/{uri}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Name,
    Uri,
}

/// The namespaced form of a resource URI or template: still a URI (the prefix is a valid
/// host, the original URI a valid path), and reversible by removing the `waygate://{prefix}/`
/// the catalog remembers.
pub fn namespace_uri(prefix: &str, local: &str) -> String {
    format!("waygate://{prefix}/{local}")
}

/// The exposed names of one kind of item. `items` are `(claimant, local name)` in any
/// order; returns the exposed name of each, in the same order, and the local names that
/// collided under `prefix = "never"` (to report).
pub fn assign(
    shaping: &Shaping,
    claims: &HashMap<String, ClaimSet>,
    items: &[(&Claimant, &str)],
    kind: Kind,
) -> Assigned {
    let sep = shaping.separator.as_str();
    let render = |prefix: &str, local: &str| match kind {
        Kind::Name => mangle(&format!("{prefix}{sep}{local}")),
        Kind::Uri => namespace_uri(prefix, local),
    };
    let bare = |local: &str| match kind {
        Kind::Name => mangle(local),
        Kind::Uri => local.to_string(),
    };
    let mut names = Vec::with_capacity(items.len());
    let mut collisions = Vec::new();
    for (claimant, local) in items {
        let plugin = claimant.plugin.as_str();
        let prefixed = || render(shaping.prefix_text(plugin), local);
        let others = claims
            .get(*local)
            .map(|set| set.iter().filter(|c| c.plugin != plugin).count())
            .unwrap_or(0);
        // The bare name goes to the first claimant by rank that asked for `never`, else to
        // the first that asked for `on-conflict`; `always` claimants never take it.
        let winner = claims.get(*local).and_then(|set| {
            let with = |p: Prefix| set.iter().find(|c| shaping.prefix_of(&c.plugin) == p);
            with(Prefix::Never)
                .or_else(|| with(Prefix::OnConflict))
                .map(|c| c.plugin.as_str())
        });
        let name = match shaping.prefix_of(plugin) {
            Prefix::Always => prefixed(),
            _ if others == 0 || winner == Some(plugin) => bare(local),
            Prefix::OnConflict => prefixed(),
            Prefix::Never => {
                collisions.push(local.to_string());
                prefixed()
            }
        };
        names.push(name);
    }
    // Mangling or prefix text can still make two items meet (`a.b` vs `a_b` cannot, the
    // hash tells them apart; a `prefix_with` equal to another plugin's name can).
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut clash = Vec::new();
    for (i, n) in names.iter().enumerate() {
        if let Some(&j) = seen.get(n.as_str()) {
            clash.push((j, i));
        } else {
            seen.insert(n, i);
        }
    }
    for (j, i) in clash {
        collisions.push(names[i].clone());
        let (a, b) = (items[j], items[i]);
        let plugin = &b.0.plugin;
        names[i] = match kind {
            Kind::Name => mangle(&format!("{}{sep}{plugin}{sep}{}", shaping.prefix_text(plugin), b.1)),
            Kind::Uri => namespace_uri(&format!("{}.{plugin}", shaping.prefix_text(plugin)), b.1),
        };
        tracing::warn!(name = %names[j], first = %a.0.plugin, second = %plugin, "exposed names meet; the second is renamed");
    }
    Assigned { names, collisions }
}

pub struct Assigned {
    pub names: Vec<String>,
    pub collisions: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(remote: bool, plugin: &str) -> Claimant {
        Claimant {
            remote,
            seq: 0,
            plugin: plugin.to_string(),
        }
    }

    fn claims(entries: &[(&str, &[(bool, &str)])]) -> HashMap<String, ClaimSet> {
        entries
            .iter()
            .map(|(n, cs)| (n.to_string(), cs.iter().map(|(r, p)| c(*r, p)).collect()))
            .collect()
    }

    #[test]
    fn mangled_names_are_provider_safe_deterministic_and_distinct() {
        assert_eq!(mangle("echo"), "echo");
        let a = mangle("files.read");
        let b = mangle("files_read");
        assert_eq!(b, "files_read");
        assert!(is_provider_safe(&a) && a != b && a.starts_with("files_read_"), "{a}");
        assert_eq!(a, mangle("files.read"));
        let long = "x".repeat(64);
        assert_eq!(mangle(&long), long);
        let longer = format!("{long}y");
        let m = mangle(&longer);
        assert!(
            is_provider_safe(&m) && m.len() == 64 && m != mangle(&format!("{long}z")),
            "{m}"
        );
        let u = mangle("überprüfen werkzeug");
        assert!(is_provider_safe(&u), "{u}");
        assert!(is_provider_safe(&mangle("")));
    }

    #[test]
    fn on_conflict_is_order_independent_and_ranked() {
        let s = Shaping::default();
        let cl = claims(&[("add", &[(false, "demo"), (true, "inner")])]);
        let (demo, inner) = (c(false, "demo"), c(true, "inner"));
        let one = assign(&s, &cl, &[(&inner, "add"), (&demo, "add")], Kind::Name);
        assert_eq!(one.names, ["inner__add", "add"]);
        let two = assign(&s, &cl, &[(&demo, "add"), (&inner, "add")], Kind::Name);
        assert_eq!(two.names, ["add", "inner__add"]);
        // The local plugin being down does not rename the remote one.
        assert_eq!(assign(&s, &cl, &[(&inner, "add")], Kind::Name).names, ["inner__add"]);
        // Among equals, the one that joined first keeps the name, whatever its name.
        let (early, late) = (
            Claimant {
                remote: true,
                seq: 1,
                plugin: "zeta".into(),
            },
            Claimant {
                remote: true,
                seq: 2,
                plugin: "alpha".into(),
            },
        );
        let cl: HashMap<String, ClaimSet> =
            [("t".to_string(), [early.clone(), late.clone()].into_iter().collect())].into();
        assert_eq!(
            assign(&s, &cl, &[(&late, "t"), (&early, "t")], Kind::Name).names,
            ["alpha__t", "t"]
        );
        assert!(one.collisions.is_empty());
    }

    #[test]
    fn uris_stay_verbatim_unless_namespaced_and_never_lose_their_text() {
        let s = Shaping::default();
        let long = format!("file:///{}", "d/".repeat(60));
        let cl = claims(&[
            ("demo://readme", &[(false, "demo"), (true, "inner")]),
            (long.as_str(), &[(true, "inner")]),
        ]);
        let (demo, inner) = (c(false, "demo"), c(true, "inner"));
        let out = assign(
            &s,
            &cl,
            &[(&inner, "demo://readme"), (&demo, "demo://readme"), (&inner, &long)],
            Kind::Uri,
        );
        // No mangling: a URI is not a provider name, and its text is what the plugin reads.
        assert_eq!(
            out.names,
            ["waygate://inner/demo://readme", "demo://readme", long.as_str()]
        );
        assert!(out.collisions.is_empty());
    }

    #[test]
    fn always_never_prefix_with_and_separator() {
        let mut s = Shaping {
            separator: "-".into(),
            ..Default::default()
        };
        s.plugins.insert(
            "github".into(),
            Shape {
                prefix: Some(Prefix::Always),
                prefix_with: Some("gh".into()),
                ..Default::default()
            },
        );
        s.plugins.insert(
            "b".into(),
            Shape {
                prefix: Some(Prefix::Never),
                ..Default::default()
            },
        );
        s.plugins.insert(
            "c".into(),
            Shape {
                prefix: Some(Prefix::Never),
                ..Default::default()
            },
        );
        let cl = claims(&[
            ("x", &[(true, "a"), (true, "b")]),
            ("y", &[(true, "b"), (true, "c")]),
            ("issue", &[(true, "github")]),
        ]);
        let (gh, a, b, cc) = (c(true, "github"), c(true, "a"), c(true, "b"), c(true, "c"));
        let out = assign(
            &s,
            &cl,
            &[(&gh, "issue"), (&a, "x"), (&b, "x"), (&b, "y"), (&cc, "y")],
            Kind::Name,
        );
        // `never` wins the bare name over `on-conflict`; two `never`s collide (reported).
        assert_eq!(out.names, ["gh-issue", "a-x", "x", "y", "c-y"]);
        assert_eq!(out.collisions, ["y"]);
    }

    #[test]
    fn a_prefix_that_meets_another_name_is_still_unique() {
        let mut s = Shaping::default();
        s.plugins.insert(
            "a".into(),
            Shape {
                prefix: Some(Prefix::Always),
                prefix_with: Some("b".into()),
                ..Default::default()
            },
        );
        s.plugins.insert(
            "b".into(),
            Shape {
                prefix: Some(Prefix::Always),
                ..Default::default()
            },
        );
        let cl = claims(&[("t", &[(true, "a"), (true, "b")])]);
        let (a, b) = (c(true, "a"), c(true, "b"));
        let out = assign(&s, &cl, &[(&a, "t"), (&b, "t")], Kind::Name);
        assert_eq!(out.names[0], "b__t");
        assert!(
            out.names[1] != "b__t" && is_provider_safe(&out.names[1]),
            "{:?}",
            out.names
        );
        assert_eq!(out.collisions.len(), 1);
    }

    #[test]
    fn filters() {
        let s = Shape {
            allow: vec!["*issue*".into(), "search".into()],
            deny: vec!["delete_*".into()],
            ..Default::default()
        };
        assert!(s.admits("create_issue") && s.admits("search"));
        assert!(!s.admits("delete_issue") && !s.admits("push"));
        assert!(Shape::default().admits("anything"));
    }
}
