//! The merged, precomputed view of everything the plugins provide.
//!
//! Built once per registry change and shared behind an `Arc`, so the request path only
//! does hash lookups and slice copies. Tool definitions are pre-shaped per revision
//! (2025-03-26 knows no `title`/`outputSchema`, …) and kept in a deterministic order.

use std::collections::HashMap;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Map, Value};
use waygate_protocol::ProtocolVersion;

use crate::naming::{self, Claimant, Claims, Shaping};
use crate::plugin::{Manifest, Plugin, ToolDef};
use crate::policy::Target;

/// Which list items a caller may see (`None`: all).
pub type Filter<'a> = Option<&'a dyn Fn(Target<'_>) -> bool>;
use crate::uri_template::match_template;
pub use shapes::header_params;
use shapes::{apply_override, skipped_keys, text, Shaped};

mod pages;
mod shapes;

/// Where a name in the catalog leads.
#[derive(Clone)]
pub struct Route {
    pub plugin: Arc<dyn Plugin>,
    /// The name the plugin knows the item by (before any collision prefix).
    pub local_name: String,
}

/// Where an exposed resource URI leads.
pub struct ResourceHit<'a> {
    pub route: &'a Route,
    /// A template's variables, `None` for an exact resource.
    pub vars: Option<Map<String, Value>>,
    /// The URI the plugin knows (the exposed one without its namespace).
    pub local_uri: String,
}

pub struct CatalogTool {
    pub name: String,
    pub route: Route,
    /// The plugin's definition text (shared with its manifest): schemas are parsed from
    /// it when the tool is first called, and an unchanged text is how a rebuild knows it
    /// may reuse this entry.
    text: Arc<str>,
    /// Annotations as clients see them (an operator's override applied).
    annotations: Option<Value>,
    has_output_schema: bool,
    /// `_meta` `io.waygate/tags` (or `tags`): what virtual servers may select by.
    tags: Box<[Box<str>]>,
    /// Built with an operator's correction (never reused: the correction may be gone).
    corrected: bool,
    /// `(lower-case header suffix, property name)` for `x-mcp-header` properties.
    pub header_params: Vec<(String, String)>,
    pub task_support: TaskSupport,
    input_schema: crate::validate::LazySchema,
    output_schema: crate::validate::LazySchema,
    /// Each shape serialized once, so a list page is a copy of bytes (`None`: same text as
    /// the next newer shape).
    raw: Box<str>,
    raw_1125: Option<Box<str>>,
    raw_0618: Option<Box<str>>,
    raw_0326: Option<Box<str>>,
}

impl CatalogTool {
    /// The definition's JSON text as `version` shows it.
    fn raw_for(&self, version: ProtocolVersion) -> &str {
        let r1125 = self.raw_1125.as_deref().unwrap_or(&self.raw);
        let r0618 = self.raw_0618.as_deref().unwrap_or(r1125);
        match version {
            v if v.is_modern() => &self.raw,
            ProtocolVersion::V2025_11_25 => r1125,
            ProtocolVersion::V2025_06_18 => r0618,
            _ => self.raw_0326.as_deref().unwrap_or(r0618),
        }
    }

    /// The annotations clients see (an operator's override applied).
    pub fn annotations(&self) -> Option<&Value> {
        self.annotations.as_ref()
    }

    pub fn tags(&self) -> &[Box<str>] {
        &self.tags
    }

    /// The definition as a current-revision client lists it.
    pub fn definition(&self) -> Value {
        serde_json::from_str(&self.raw).unwrap_or(Value::Null)
    }

    fn schema(&self, key: &str) -> Option<Value> {
        let mut def: Value = serde_json::from_str(&self.text).ok()?;
        def.get_mut(key).map(Value::take)
    }

    /// `Err(message)` when `arguments` do not satisfy the tool's `inputSchema`.
    pub fn check_arguments(&self, arguments: &Value) -> Result<(), String> {
        self.input_schema
            .check_with(|| self.schema("inputSchema"), arguments, &self.name)
    }

    /// `Err(message)` when a result's `structuredContent` does not satisfy `outputSchema`.
    pub fn check_output(&self, result: &Value) -> Result<(), String> {
        match (self.has_output_schema, result.get("structuredContent")) {
            (true, Some(sc)) => self
                .output_schema
                .check_with(|| self.schema("outputSchema"), sc, &self.name),
            (true, None) if result.get("isError").and_then(Value::as_bool) != Some(true) => {
                Err("the tool declares an outputSchema but returned no structuredContent".into())
            }
            _ => Ok(()),
        }
    }
}

impl CatalogTool {
    /// An entry from the plugin's definition (and an operator's correction).
    fn derive(name: String, route: Route, t: &ToolDef, correction: Option<&naming::Override>) -> CatalogTool {
        let mut def = t.definition();
        if let Some(o) = correction {
            apply_override(&mut def, o);
        }
        let empty = Map::new();
        let obj = def.as_object().unwrap_or(&empty);
        let task_support = match obj
            .get("execution")
            .and_then(|e| e.get("taskSupport"))
            .and_then(Value::as_str)
        {
            Some("optional") => TaskSupport::Optional,
            Some("required") => TaskSupport::Required,
            _ => TaskSupport::Forbidden,
        };
        // A shape is kept only where it differs from the next newer one: where the keys it
        // leaves out are not the same ones, among those the definition has.
        let skips = skipped_keys(obj);
        let present = |i: usize| -> u8 {
            ["execution", "outputSchema", "icons", "title", "_meta"]
                .iter()
                .enumerate()
                .filter(|(_, k)| skips[i].contains(k) && obj.contains_key(**k))
                .fold(0, |bits, (b, _)| bits | (1 << b))
        };
        let shape = |i: usize| {
            text(&Shaped {
                def: obj,
                name: &name,
                skip: skips[i],
            })
        };
        CatalogTool {
            raw: shape(0),
            raw_1125: (present(1) != present(0)).then(|| shape(1)),
            raw_0618: (present(2) != present(1)).then(|| shape(2)),
            raw_0326: (present(3) != present(2)).then(|| shape(3)),
            header_params: header_params(&def),
            task_support,
            annotations: obj.get("annotations").cloned(),
            has_output_schema: obj.contains_key("outputSchema"),
            tags: obj
                .get("_meta")
                .and_then(|m| m.get(TAGS).or_else(|| m.get("tags")))
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(Box::from).collect())
                .unwrap_or_default(),
            corrected: correction.is_some(),
            name,
            route,
            text: t.text().clone(),
            input_schema: Default::default(),
            output_schema: Default::default(),
        }
    }

    /// The same entry for a new catalog (compiled schemas are compiled again on use).
    fn reuse(&self, route: Route, text: Arc<str>) -> CatalogTool {
        CatalogTool {
            name: self.name.clone(),
            route,
            text,
            annotations: self.annotations.clone(),
            has_output_schema: self.has_output_schema,
            tags: self.tags.clone(),
            corrected: false,
            header_params: self.header_params.clone(),
            task_support: self.task_support,
            input_schema: Default::default(),
            output_schema: Default::default(),
            raw: self.raw.clone(),
            raw_1125: self.raw_1125.clone(),
            raw_0618: self.raw_0618.clone(),
            raw_0326: self.raw_0326.clone(),
        }
    }
}

/// The `_meta` key under which a tool's tags are read (an array of strings).
pub const TAGS: &str = "io.waygate/tags";

/// Whether a tool may run as a task (declared as `execution.taskSupport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskSupport {
    Forbidden,
    Optional,
    Required,
}

#[derive(Default)]
pub struct Catalog {
    tools: Vec<CatalogTool>,
    tool_index: HashMap<String, usize>,
    /// Definitions as exposed; the route's `local_name` is the plugin's own URI.
    resources: Vec<(Value, Route)>,
    resource_index: HashMap<String, usize>,
    /// `(exposed template, definition, route to the plugin's own template, namespace)`.
    templates: Vec<(String, Value, Route, String)>,
    prompts: Vec<(String, Value, Route)>,
    prompt_index: HashMap<String, usize>,
    completers: Vec<Arc<dyn Plugin>>,
    page_size: usize,
    collisions: Vec<String>,
    fingerprint: Fingerprint,
    /// `(plugin, instructions)` of plugins that have some.
    instructions: Vec<(String, String)>,
}

/// Hashes of what each list shows, to announce only the lists that changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    pub tools: u64,
    pub resources: u64,
    pub prompts: u64,
}

/// Feeds serialized JSON into a hasher without building the string.
struct HashWriter<'a>(&'a mut std::collections::hash_map::DefaultHasher);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::hash::Hasher::write(self.0, buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn hash_texts<'a>(items: impl Iterator<Item = &'a str>) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for t in items {
        std::hash::Hasher::write(&mut h, t.as_bytes());
        std::hash::Hasher::write_u8(&mut h, 0);
    }
    std::hash::Hasher::finish(&h)
}

fn hash_values<'a>(items: impl Iterator<Item = &'a Value>) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for v in items {
        let _ = serde_json::to_writer(HashWriter(&mut h), v);
        std::hash::Hasher::write_u8(&mut h, 0);
    }
    std::hash::Hasher::finish(&h)
}

/// One page of a list.
pub struct Page {
    pub items: Vec<Value>,
    pub next_cursor: Option<String>,
}

impl Catalog {
    /// Merge manifests. Exposed names follow [`naming`](crate::naming): a function of the
    /// shaping rules and the claims, not of the order the plugins came in.
    pub fn build(
        entries: &[(Arc<dyn Plugin>, Arc<Manifest>)],
        page_size: usize,
        shaping: &Shaping,
        claims: &Claims,
        prev: Option<&Catalog>,
    ) -> Catalog {
        let mut c = Catalog {
            page_size: page_size.max(1),
            ..Default::default()
        };
        let claimants: Vec<Claimant> = entries.iter().map(|(p, _)| claims.claimant(p.as_ref())).collect();
        let mut picked: Vec<(usize, usize)> = Vec::new();
        for (ei, (p, m)) in entries.iter().enumerate() {
            let shape = shaping.shape(p.name());
            for (ti, t) in m.tools.iter().enumerate() {
                if shape.is_none_or(|s| s.admits(t.name())) {
                    picked.push((ei, ti));
                }
            }
        }
        let refs: Vec<(&Claimant, &str)> = picked
            .iter()
            .map(|&(ei, ti)| (&claimants[ei], entries[ei].1.tools[ti].name()))
            .collect();
        let assigned = naming::assign(shaping, &claims.tools, &refs, naming::Kind::Name);
        c.collisions = assigned.collisions;
        // The previous catalog's entries by plugin and local name: a tool whose text,
        // exposed name and corrections did not change is reused, not rebuilt.
        let before: HashMap<(&str, &str), &CatalogTool> = prev
            .map(|p| {
                p.tools
                    .iter()
                    .map(|t| ((t.route.plugin.name(), t.route.local_name.as_str()), t))
                    .collect()
            })
            .unwrap_or_default();
        for (&(ei, ti), name) in picked.iter().zip(assigned.names) {
            let (plugin, m) = &entries[ei];
            let t = &m.tools[ti];
            let local = t.name().to_string();
            let correction = shaping.shape(plugin.name()).and_then(|s| s.overrides.get(&local));
            let reused = match before.get(&(plugin.name(), t.name())) {
                Some(old) if correction.is_none() && !old.corrected && old.name == name && *old.text == **t.text() => {
                    Some(old)
                }
                _ => None,
            };
            c.tool_index.insert(name.clone(), usize::MAX);
            let route = Route {
                plugin: plugin.clone(),
                local_name: local,
            };
            c.tools.push(match reused {
                Some(old) => old.reuse(route, t.text().clone()),
                None => CatalogTool::derive(name, route, t, correction),
            });
        }
        let mut prompts: Vec<(usize, usize)> = Vec::new();
        // `(entry, index, is a template)`.
        let mut uris: Vec<(usize, usize, bool)> = Vec::new();
        for (ei, (plugin, m)) in entries.iter().enumerate() {
            prompts.extend((0..m.prompts.len()).map(|pi| (ei, pi)));
            uris.extend((0..m.resources.len()).map(|ri| (ei, ri, false)));
            uris.extend((0..m.resource_templates.len()).map(|ri| (ei, ri, true)));
            if m.completions {
                c.completers.push(plugin.clone());
            }
            if let Some(i) = m.instructions.as_deref().map(str::trim).filter(|i| !i.is_empty()) {
                c.instructions.push((plugin.name().to_string(), i.to_string()));
            }
        }
        c.add_resources(entries, &claimants, &uris, shaping, claims);
        let refs: Vec<(&Claimant, &str)> = prompts
            .iter()
            .map(|&(ei, pi)| (&claimants[ei], entries[ei].1.prompts[pi].name()))
            .collect();
        let assigned = naming::assign(shaping, &claims.prompts, &refs, naming::Kind::Name);
        c.collisions.extend(assigned.collisions);
        for (&(ei, pi), name) in prompts.iter().zip(assigned.names) {
            let (plugin, m) = &entries[ei];
            let p = &m.prompts[pi];
            let mut def = p.definition.clone();
            def["name"] = Value::String(name.clone());
            c.prompt_index.insert(name.clone(), c.prompts.len());
            c.prompts.push((
                name,
                def,
                Route {
                    plugin: plugin.clone(),
                    local_name: p.name().to_string(),
                },
            ));
        }
        // Deterministic order for an unchanged set, whatever the load order was.
        c.tools.sort_by(|a, b| a.name.cmp(&b.name));
        c.tool_index = c.tools.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
        c.fingerprint = Fingerprint {
            tools: hash_texts(c.tools.iter().map(|t| &*t.raw)),
            resources: hash_values(c.resources.iter().map(|r| &r.0).chain(c.templates.iter().map(|t| &t.1))),
            prompts: hash_values(c.prompts.iter().map(|p| &p.1)),
        };
        c
    }

    /// The plugins' own instructions, by plugin name.
    pub fn instructions(&self) -> &[(String, String)] {
        &self.instructions
    }

    /// What the lists hold of the items `keep` takes, hashed (a virtual server's view).
    pub fn fingerprint_where(&self, keep: &dyn Fn(Target<'_>) -> bool) -> Fingerprint {
        Fingerprint {
            tools: hash_texts(
                self.tools
                    .iter()
                    .filter(|t| keep(Target::Tool(&t.name)))
                    .map(|t| &*t.raw),
            ),
            resources: hash_values(
                self.resources
                    .iter()
                    .filter(|r| keep(Target::Resource(r.0.get("uri").and_then(Value::as_str).unwrap_or(""))))
                    .map(|r| &r.0)
                    .chain(
                        self.templates
                            .iter()
                            .filter(|t| keep(Target::Resource(&t.0)))
                            .map(|t| &t.1),
                    ),
            ),
            prompts: hash_values(self.prompts.iter().filter(|p| keep(Target::Prompt(&p.0))).map(|p| &p.1)),
        }
    }

    /// What the lists hold, hashed (see [`Fingerprint`]).
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    pub fn tool(&self, name: &str) -> Option<&CatalogTool> {
        self.tool_index.get(name).map(|&i| &self.tools[i])
    }

    /// Local names that two plugins both wanted bare under `prefix = "never"` (or whose
    /// prefixed forms met): reported in diagnostics, the log and a metric.
    pub fn collisions(&self) -> &[String] {
        &self.collisions
    }

    /// Every tool's exposed name, its plugin and its local name, in catalog order.
    pub fn tool_routes(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.tools
            .iter()
            .map(|t| (t.name.as_str(), t.route.plugin.name(), t.route.local_name.as_str()))
    }

    pub fn tool_count(&self) -> usize {
        self.tools.len()
    }

    /// Every tool, in catalog order (admin views).
    pub fn tools(&self) -> &[CatalogTool] {
        &self.tools
    }

    /// Resources as exposed, with where each leads (admin views).
    pub fn resource_entries(&self) -> impl Iterator<Item = (&Value, &Route)> {
        self.resources.iter().map(|(d, r)| (d, r))
    }

    /// Resource templates as exposed, with where each leads (admin views).
    pub fn template_entries(&self) -> impl Iterator<Item = (&Value, &Route)> {
        self.templates.iter().map(|(_, d, r, _)| (d, r))
    }

    /// Prompts as exposed, with where each leads (admin views).
    pub fn prompt_entries(&self) -> impl Iterator<Item = (&Value, &Route)> {
        self.prompts.iter().map(|(_, d, r)| (d, r))
    }

    /// Resources and templates under their exposed URIs: verbatim, or namespaced by the
    /// plugin's prefix policy exactly as names are (so two plugins' `file:///x` both stay
    /// readable, and a URI does not change when another plugin comes or goes).
    fn add_resources(
        &mut self,
        entries: &[(Arc<dyn Plugin>, Arc<Manifest>)],
        claimants: &[Claimant],
        uris: &[(usize, usize, bool)],
        shaping: &Shaping,
        claims: &Claims,
    ) {
        let local = |&(ei, ri, tpl): &(usize, usize, bool)| {
            let m = &entries[ei].1;
            if tpl {
                m.resource_templates[ri].uri_template()
            } else {
                m.resources[ri].uri()
            }
        };
        let refs: Vec<(&Claimant, &str)> = uris.iter().map(|u| (&claimants[u.0], local(u))).collect();
        let assigned = naming::assign(shaping, &claims.resources, &refs, naming::Kind::Uri);
        self.collisions.extend(assigned.collisions);
        for (u, exposed) in uris.iter().zip(assigned.names) {
            let (plugin, m) = &entries[u.0];
            let own = local(u).to_string();
            let route = Route {
                plugin: plugin.clone(),
                local_name: own.clone(),
            };
            if u.2 {
                let mut def = m.resource_templates[u.1].definition.clone();
                def["uriTemplate"] = Value::String(exposed.clone());
                let ns = exposed.strip_suffix(own.as_str()).unwrap_or_default().to_string();
                self.templates.push((exposed, def, route, ns));
            } else {
                if self.resource_index.contains_key(&exposed) {
                    tracing::warn!(plugin = plugin.name(), uri = %exposed, "resource URI listed twice; the first is kept");
                    continue;
                }
                let mut def = m.resources[u.1].definition.clone();
                def["uri"] = Value::String(exposed.clone());
                self.resource_index.insert(exposed, self.resources.len());
                self.resources.push((def, route));
            }
        }
    }

    pub fn prompt(&self, name: &str) -> Option<&Route> {
        self.prompt_index.get(name).map(|&i| &self.prompts[i].2)
    }

    /// The route for an exposed URI — an exact resource first, then the first matching
    /// template — with the template's variables and the URI as the plugin knows it.
    pub fn resource(&self, uri: &str) -> Option<ResourceHit<'_>> {
        if let Some(&i) = self.resource_index.get(uri) {
            let route = &self.resources[i].1;
            return Some(ResourceHit {
                route,
                vars: None,
                local_uri: route.local_name.clone(),
            });
        }
        self.templates.iter().find_map(|(tpl, _, route, ns)| {
            match_template(tpl, uri).map(|vars| ResourceHit {
                route,
                vars: Some(vars),
                local_uri: uri.strip_prefix(ns.as_str()).unwrap_or(uri).to_string(),
            })
        })
    }

    /// The route of a resource template by its exposed template string.
    pub fn template(&self, template: &str) -> Option<&Route> {
        self.templates.iter().find(|t| t.0 == template).map(|t| &t.2)
    }

    pub fn completers(&self) -> &[Arc<dyn Plugin>] {
        &self.completers
    }
}
