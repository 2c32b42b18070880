//! `completion/complete`: offered to the plugins that complete, after the same authorization
//! as the prompt or template it names (a hidden one answers like an unknown one).

use std::sync::Arc;

use serde_json::{json, Map, Value};
use waygate_protocol::ErrorObject;

use super::calls::{map_error, Kind};
use super::Engine;
use crate::context::CallContext;
use crate::plugin::{Invocation, Outcome, PluginError, Target};

impl Engine {
    pub(super) async fn complete(
        self: &Arc<Self>,
        params: Option<Map<String, Value>>,
        ctx: &CallContext,
    ) -> Result<Value, ErrorObject> {
        let params = params.unwrap_or_default();
        let reference = params
            .get("ref")
            .filter(|r| r.is_object())
            .cloned()
            .ok_or_else(|| ErrorObject::invalid_params("Invalid params: completion needs a \"ref\" object"))?;
        if !params
            .get("argument")
            .is_some_and(|a| a.get("name").is_some_and(Value::is_string))
        {
            return Err(ErrorObject::invalid_params(
                "Invalid params: completion needs \"argument\": {name, value}",
            ));
        }
        let catalog = self.registry.catalog();
        let policy = self.policy();
        let visible = |t: crate::policy::Target<'_>| super::views::sees(policy.as_deref(), ctx, &catalog, t);
        let empty = || json!({ "completion": { "values": [], "total": 0, "hasMore": false } });
        let mut reference = reference;
        // The plugin that owns the named prompt or template is asked, under its own name.
        let owner = match reference.get("type").and_then(Value::as_str) {
            Some("ref/prompt") => {
                let name = reference.get("name").and_then(Value::as_str).unwrap_or_default();
                // A prompt the caller may not get is answered exactly like a missing one.
                let route = match catalog.prompt(name) {
                    Some(r) if visible(crate::policy::Target::Prompt(name)) => r.clone(),
                    _ => return Err(ErrorObject::invalid_params(format!("Unknown prompt: {name}"))),
                };
                reference["name"] = Value::String(route.local_name.clone());
                route.plugin
            }
            Some("ref/resource") => {
                // An unknown template completes to nothing; so does one the caller may not read.
                let uri = reference.get("uri").and_then(Value::as_str).unwrap_or_default();
                let route = match catalog.template(uri).or_else(|| catalog.resource(uri).map(|h| h.route)) {
                    Some(r) if visible(crate::policy::Target::Resource(uri)) => r.clone(),
                    _ => return Ok(empty()),
                };
                reference["uri"] = Value::String(route.local_name.clone());
                route.plugin
            }
            other => {
                return Err(ErrorObject::invalid_params(format!(
                    "Invalid params: ref.type must be \"ref/prompt\" or \"ref/resource\", got {other:?}"
                )))
            }
        };
        let invocation = Invocation {
            target: Target::Complete { reference },
            arguments: Value::Object(params),
            input_responses: None,
            state: None,
            raw_arguments: None,
            caller_meta: None,
        };
        if !catalog.completers().iter().any(|p| Arc::ptr_eq(p, &owner)) {
            return Ok(empty());
        }
        drop(catalog);
        match owner.execute(&invocation, ctx).await {
            Ok(Outcome::Complete(v)) => Ok(v),
            Ok(Outcome::Forward(raw)) => Ok(Outcome::forwarded_value(&raw)),
            Err(PluginError::NotFound(_)) | Ok(Outcome::InputRequired { .. }) => Ok(empty()),
            Err(e) => Err(map_error(Kind::Prompt, e, ctx.version, "")),
        }
    }
}
