//! The engine side of virtual servers: the installed views, and the one predicate every
//! path uses to decide whether a caller sees an item (policy and view together).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};
use waygate_protocol::ErrorObject;

use super::Engine;
use crate::catalog::Catalog;
use crate::context::CallContext;
use crate::policy::{Policy, Target};
use crate::view::View;

impl Engine {
    /// Install the virtual servers (a config reload replaces them; sessions opened on a
    /// removed one end with their next request, which finds no such server).
    pub fn set_views(&self, views: Vec<View>) {
        let map: HashMap<String, Arc<View>> = views.into_iter().map(|v| (v.name.clone(), Arc::new(v))).collect();
        *self.views.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(map);
    }

    pub fn view(&self, name: &str) -> Option<Arc<View>> {
        self.views.read().unwrap_or_else(|e| e.into_inner()).get(name).cloned()
    }

    /// The names of the virtual servers, sorted.
    pub fn view_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .views
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        v.sort();
        v
    }

    /// Whether `ctx`'s caller may call tool `name`: it exists, the policy lets this caller
    /// call it and its virtual server (if any) admits it. A REST front answers 404 for
    /// `false` exactly as it would for an unknown name, before reading the arguments.
    pub fn may_call_tool(&self, name: &str, ctx: &CallContext) -> bool {
        let catalog = self.registry.catalog();
        let target = Target::Tool(name);
        catalog.tool(name).is_some()
            && self
                .policy()
                .is_none_or(|p| p.decide(ctx.principal.as_deref(), "tools/call", target).allowed)
            && ctx.view.as_deref().is_none_or(|v| v.admits(&catalog, target))
    }

    /// `Some(error)` when the request names an item outside the caller's virtual server;
    /// the error is the one an unknown item gets.
    pub(super) fn outside_view(
        &self,
        view: &View,
        method: &str,
        params: Option<&Map<String, Value>>,
        ctx: &CallContext,
    ) -> Option<ErrorObject> {
        let target = crate::policy::target_of(method, params);
        if matches!(target, Target::None) || view.admits(&self.registry.catalog(), target) {
            return None;
        }
        tracing::debug!(server = %view.name, method, subject = ?target, "outside the virtual server");
        Some(hidden(target, method, ctx))
    }
}

/// Whether a caller sees `target`: the policy lets it, and its view (if any) holds it.
pub(crate) fn sees(policy: Option<&Policy>, ctx: &CallContext, catalog: &Catalog, target: Target<'_>) -> bool {
    policy.is_none_or(|p| p.visible(ctx.principal.as_deref(), target))
        && ctx.view.as_deref().is_none_or(|v| v.admits(catalog, target))
}

/// `Some(error)` when the policy forbids the request. Named targets the caller may not use
/// are answered exactly like unknown ones, so a denial does not reveal what exists; the
/// log names the rule that decided.
pub(super) fn authorize(
    policy: &crate::policy::Policy,
    method: &str,
    params: Option<&Map<String, Value>>,
    ctx: &CallContext,
) -> Option<ErrorObject> {
    let target = crate::policy::target_of(method, params);
    let d = policy.decide(ctx.principal.as_deref(), method, target);
    let who = ctx.principal.as_ref().map(|p| &*p.label).unwrap_or("anonymous");
    let rule = d.rule.as_deref().unwrap_or("<default>");
    if d.allowed {
        tracing::debug!(principal = who, method, subject = ?target, rule, "authorization: allowed");
        return None;
    }
    tracing::info!(principal = who, method, subject = ?target, rule, "authorization: denied");
    Some(hidden(target, method, ctx))
}

/// What a caller gets for an item it may not see: exactly what an unknown one gets.
pub(crate) fn hidden(target: crate::policy::Target<'_>, method: &str, ctx: &CallContext) -> ErrorObject {
    use crate::policy::Target;
    match target {
        Target::Tool(n) => {
            ErrorObject::invalid_params(format!("Unknown tool: {n}")).with_data(serde_json::json!({ "name": n }))
        }
        Target::Resource(u) => super::calls::not_found_resource(u, ctx.version),
        Target::Prompt(n) => ErrorObject::invalid_params(format!("Unknown prompt: {n}")),
        Target::None => ErrorObject::invalid_request(format!("method {method} is not permitted for this caller")),
    }
}
