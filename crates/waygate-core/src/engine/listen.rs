//! `subscriptions/listen` (2026-07-28): one long-lived request per subscription, whose
//! stream carries only the notification kinds the client opted into, each tagged with the
//! subscription id (the listen request's JSON-RPC id).

use serde_json::{json, Map, Value};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use waygate_protocol::jsonrpc::{encode_message, encode_response};
use waygate_protocol::{meta, methods, ErrorObject, Id};

use super::Engine;
use crate::context::{CallContext, OutTx};
use crate::events::Event;

/// What a listen request asked for, reduced to what this server honours.
#[derive(Debug, Clone, Default)]
pub struct ListenFilter {
    tools: bool,
    prompts: bool,
    resources: bool,
    uris: Vec<String>,
    task_ids: Vec<String>,
    /// Who listens: task updates go only to the task's owner, resource updates only for
    /// resources the policy lets this caller read (checked at delivery: policies change).
    principal: Option<std::sync::Arc<crate::auth::Principal>>,
    /// The virtual server listened on: only its own lists' changes are announced.
    view: Option<std::sync::Arc<crate::view::View>>,
}

impl ListenFilter {
    fn owner(&self) -> Option<&str> {
        self.principal.as_deref().map(|p| p.id.as_str())
    }
}

impl ListenFilter {
    fn granted(&self) -> Value {
        let mut g = Map::new();
        if self.tools {
            g.insert("toolsListChanged".into(), json!(true));
        }
        if self.prompts {
            g.insert("promptsListChanged".into(), json!(true));
        }
        if self.resources {
            g.insert("resourcesListChanged".into(), json!(true));
        }
        if !self.uris.is_empty() {
            g.insert("resourceSubscriptions".into(), json!(self.uris));
        }
        if !self.task_ids.is_empty() {
            g.insert("taskIds".into(), json!(self.task_ids));
        }
        Value::Object(g)
    }
}

impl Engine {
    /// Validate a listen request before any stream is opened, so errors can still be
    /// plain JSON-RPC errors.
    pub fn listen_filter(
        &self,
        params: Option<&Map<String, Value>>,
        ctx: &CallContext,
    ) -> Result<ListenFilter, ErrorObject> {
        let n = params
            .and_then(|p| p.get("notifications"))
            .and_then(Value::as_object)
            .ok_or_else(|| {
                ErrorObject::invalid_params(
                    "Invalid params: subscriptions/listen requires a \"notifications\" filter object",
                )
            })?;
        let flag = |k: &str| n.get(k).and_then(Value::as_bool).unwrap_or(false);
        let strings = |k: &str| -> Result<Vec<String>, ErrorObject> {
            match n.get(k) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|v| v.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| {
                        ErrorObject::invalid_params(format!(
                            "Invalid params: notifications.{k} must be an array of strings"
                        ))
                    }),
                Some(_) => Err(ErrorObject::invalid_params(format!(
                    "Invalid params: notifications.{k} must be an array of strings"
                ))),
            }
        };
        let task_ids = strings("taskIds")?;
        if !task_ids.is_empty() {
            ctx.require_tasks_extension()?;
        }
        Ok(ListenFilter {
            tools: flag("toolsListChanged"),
            prompts: flag("promptsListChanged"),
            resources: flag("resourcesListChanged"),
            uris: strings("resourceSubscriptions")?,
            task_ids,
            principal: ctx.principal.clone(),
            view: ctx.view.clone(),
        })
    }

    /// Tell the plugins owning `uris` that a caller subscribed to them (an upstream then
    /// subscribes on the server that owns the resource). Unknown URIs are left alone.
    pub(super) fn watch_resources(&self, uris: &[String]) {
        let catalog = self.registry.catalog();
        for uri in uris {
            if let Some(hit) = catalog.resource(uri) {
                let plugin = hit.route.plugin.clone();
                let local = hit.local_uri;
                tokio::spawn(async move { plugin.watch(&local).await });
            }
        }
    }

    /// Run a subscription until the client goes away (`out` closes or `cancel` fires) or the
    /// server shuts down, in which case the closing result is sent.
    pub async fn run_listen(&self, id: Id, filter: ListenFilter, out: OutTx, cancel: CancellationToken) {
        // Subscribe before acknowledging so no change between the two is lost.
        let mut rx = self.events.subscribe();
        self.watch_resources(&filter.uris);
        let sub_meta = || json!({ meta::SUBSCRIPTION_ID: id.to_value() });
        let ack = json!({ "_meta": sub_meta(), "notifications": filter.granted() });
        if out
            .send(encode_message(None, methods::N_SUBSCRIPTIONS_ACK, &ack))
            .is_err()
        {
            return;
        }
        // What the view showed when last announced, per list (tools, prompts, resources).
        let mut seen = filter
            .view
            .as_ref()
            .map(|v| v.fingerprint(&self.registry.catalog()))
            .unwrap_or_default();
        loop {
            let ev = tokio::select! {
                ev = rx.recv() => ev,
                _ = cancel.cancelled() => return,
                _ = out.closed() => return,
                _ = self.shutdown.cancelled() => {
                    let done = json!({ "resultType": "complete", "_meta": sub_meta() });
                    let _ = out.send(encode_response(Some(&id), Ok(&done)));
                    return;
                }
            };
            let ev = match ev {
                Ok(ev) => ev,
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(
                        skipped = n,
                        "listen stream lagged; sending list_changed for everything it asked for"
                    );
                    for (on, m) in [
                        (filter.tools, methods::N_TOOLS_CHANGED),
                        (filter.prompts, methods::N_PROMPTS_CHANGED),
                        (filter.resources, methods::N_RESOURCES_CHANGED),
                    ] {
                        if on {
                            let _ = out.send(encode_message(None, m, &json!({ "_meta": sub_meta() })));
                        }
                    }
                    continue;
                }
                Err(RecvError::Closed) => return,
            };
            if let (Some(v), Event::ToolsChanged | Event::PromptsChanged | Event::ResourcesChanged) =
                (&filter.view, &ev)
            {
                let now = v.fingerprint(&self.registry.catalog());
                let same = match ev {
                    Event::ToolsChanged => now.tools == seen.tools,
                    Event::PromptsChanged => now.prompts == seen.prompts,
                    _ => now.resources == seen.resources,
                };
                match ev {
                    Event::ToolsChanged => seen.tools = now.tools,
                    Event::PromptsChanged => seen.prompts = now.prompts,
                    _ => seen.resources = now.resources,
                }
                if same {
                    continue;
                }
            }
            let msg = match &ev {
                Event::ToolsChanged if filter.tools => Some((methods::N_TOOLS_CHANGED, json!({ "_meta": sub_meta() }))),
                Event::PromptsChanged if filter.prompts => {
                    Some((methods::N_PROMPTS_CHANGED, json!({ "_meta": sub_meta() })))
                }
                Event::ResourcesChanged if filter.resources => {
                    Some((methods::N_RESOURCES_CHANGED, json!({ "_meta": sub_meta() })))
                }
                Event::ResourceUpdated(uri)
                    if filter
                        .uris
                        .iter()
                        .any(|u| uri == u || uri.starts_with(&format!("{}/", u.trim_end_matches('/'))))
                        && self.policy().is_none_or(|p| {
                            p.visible(filter.principal.as_deref(), crate::policy::Target::Resource(uri))
                        })
                        && filter.view.as_deref().is_none_or(|v| {
                            v.admits(&self.registry.catalog(), crate::policy::Target::Resource(uri))
                        }) =>
                {
                    Some((methods::N_RESOURCE_UPDATED, json!({ "uri": uri, "_meta": sub_meta() })))
                }
                Event::TaskUpdated(task_id) if filter.task_ids.contains(task_id) => {
                    self.tasks.snapshot(task_id, filter.owner()).map(|mut t| {
                        t["_meta"] = sub_meta();
                        (methods::N_TASKS, t)
                    })
                }
                _ => None,
            };
            if let Some((m, p)) = msg {
                if out.send(encode_message(None, m, &p)).is_err() {
                    return;
                }
            }
        }
    }
}
