//! `[catalog]` (how exposed names are formed) and `[[servers]]` (virtual servers), and
//! their translation into the core's naming rules and views.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use waygate_core::naming::{Override, Prefix, Shape, Shaping};
use waygate_core::view::{View, ViewSpec};

use super::{ConfigError, FileConfig};

/// `[catalog]`: the gateway-wide naming rules.
#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogSection {
    /// `on-conflict` (default), `always` or `never`; each upstream may override it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Between prefix and name (default `__`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub separator: Option<String>,
}

/// `[[servers]]`: a named subset of the catalog served at `/servers/{name}/mcp`.
#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct VirtualServer {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// `<plugin-or-upstream>/<item glob>`, or a plugin glob for all of its items.
    pub include: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Tools must carry these annotation values (e.g. `{ readOnlyHint = true }`).
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub annotations: serde_json::Map<String, serde_json::Value>,
    /// Tools must carry a tag matching one of these globs (an OpenAPI operation's tags, or
    /// any tool's `_meta` `io.waygate/tags`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// A caller needs one of these scopes (or one of `roles`); empty = any MCP caller.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

type Err<'a> = &'a dyn Fn(&str, String) -> ConfigError;

pub(super) fn validate(cfg: &FileConfig, err: Err<'_>) -> Result<(), ConfigError> {
    if let Some(p) = &cfg.catalog.prefix {
        if Prefix::parse(p).is_none() {
            return Err(err(
                "catalog.prefix",
                format!("got {p:?}, expected always, on-conflict or never"),
            ));
        }
    }
    if let Some(s) = &cfg.catalog.separator {
        Shaping::check_text("the separator", s).map_err(|m| err("catalog.separator", m))?;
    }
    let mut seen = std::collections::HashSet::new();
    for (i, s) in cfg.servers.iter().enumerate() {
        let key = format!("servers[{i}]");
        if s.name.is_empty()
            || s.name.len() > 64
            || !s
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(err(
                &format!("{key}.name"),
                format!(
                    "got {:?}, expected 1 to 64 letters, digits, '-' or '_' (it is a URL path segment)",
                    s.name
                ),
            ));
        }
        if !seen.insert(&s.name) {
            return Err(err(
                &format!("{key}.name"),
                format!("duplicate virtual server name {:?}", s.name),
            ));
        }
        if s.include.is_empty() {
            return Err(err(
                &format!("{key}.include"),
                "empty; expected at least one \"<plugin-or-upstream>/<tool glob>\" or plugin name".into(),
            ));
        }
        for (k, list) in [("include", &s.include), ("exclude", &s.exclude)] {
            if let Some(p) = list.iter().find(|p| p.is_empty() || p.starts_with('/')) {
                return Err(err(
                    &format!("{key}.{k}"),
                    format!("got {p:?}, expected \"<plugin-or-upstream>/<glob>\" or a plugin name"),
                ));
            }
        }
    }
    Ok(())
}

/// The naming rules, filters and overrides of a configuration.
pub fn shaping(cfg: &FileConfig) -> Shaping {
    shaping_of(&cfg.catalog, cfg.upstreams.iter())
}

/// The naming rules of `[catalog]` with the shapes of these upstreams (from the file and
/// added at runtime).
pub fn shaping_of<'a>(rules: &CatalogSection, upstreams: impl Iterator<Item = &'a super::Upstream>) -> Shaping {
    let mut plugins = HashMap::new();
    for u in upstreams {
        let shape = Shape {
            prefix: u.prefix.as_deref().and_then(Prefix::parse),
            prefix_with: u.prefix_with.clone(),
            allow: u.tools.allow.clone(),
            deny: u.tools.deny.clone(),
            overrides: u
                .tools
                .overrides
                .iter()
                .map(|(name, o)| {
                    (
                        name.clone(),
                        Override {
                            title: o.title.clone(),
                            description: o.description.clone(),
                            annotations: o.annotations.clone(),
                        },
                    )
                })
                .collect(),
        };
        if shape != Shape::default() {
            plugins.insert(u.name.clone(), shape);
        }
    }
    Shaping {
        prefix: rules.prefix.as_deref().and_then(Prefix::parse).unwrap_or_default(),
        separator: rules.separator.clone().unwrap_or_else(|| "__".into()),
        plugins,
    }
}

/// The virtual servers of a configuration.
pub fn views(cfg: &FileConfig) -> Vec<View> {
    cfg.servers
        .iter()
        .map(|s| {
            View::new(ViewSpec {
                name: s.name.clone(),
                title: s.title.clone(),
                instructions: s.instructions.clone(),
                include: s.include.clone(),
                exclude: s.exclude.clone(),
                annotations: s.annotations.clone(),
                tags: s.tags.clone(),
                scopes: s.scopes.clone(),
                roles: s.roles.clone(),
            })
        })
        .collect()
}
