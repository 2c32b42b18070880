//! Admin REST for plugins, pins and hooks (`/api/v1/plugins…`, `/api/v1/pins…`,
//! `/api/v1/hooks`). Every change is audited with the caller's name.

use http::{Method, StatusCode};
use serde_json::{json, Value};
use waygate_transport::http::AdminRequest;

use super::{PluginManager, Spec};

type Answer = Option<(StatusCode, Value)>;

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn error(code: u16, msg: impl Into<String>) -> Answer {
    Some((status(code), json!({"error": msg.into()})))
}

/// An error naming the field at fault, when there is one.
fn refusal(code: u16, msg: String, field: Option<&str>) -> Answer {
    let mut body = json!({"error": msg});
    if let Some(f) = field {
        body["field"] = json!(f);
    }
    Some((status(code), body))
}

pub async fn handle(
    m: &PluginManager,
    engine: Option<&waygate_core::Engine>,
    cfg: &crate::config::FileConfig,
    req: &AdminRequest<'_>,
) -> Answer {
    let parts: Vec<&str> = req.path.trim_end_matches('/').split('/').skip(3).collect();
    let audit = |action: &'static str, target: &str, ok: bool| {
        if let Some(e) = engine {
            e.audit_admin(action, target, if ok { "ok" } else { "error" }, Some(req.actor.into()));
        }
    };
    match (req.method, parts.as_slice()) {
        (&Method::GET, ["plugins"]) => Some((StatusCode::OK, json!({"plugins": m.list().await}))),
        (&Method::POST, ["plugins"]) => {
            let body: Value = match serde_json::from_slice(req.body) {
                Ok(v) => v,
                Err(e) => return error(400, format!("body is not JSON: {e}")),
            };
            let spec = match Spec::from_request(&body) {
                Ok(s) => s,
                Err(e) => return error(400, e),
            };
            let name = spec.name().to_string();
            let r = m.load(spec).await;
            audit("admin/plugin.load", &name, r.is_ok());
            match r {
                Ok(()) => Some((StatusCode::CREATED, json!({"loaded": name, "plugins": m.list().await}))),
                Err((c, e)) => error(c, e),
            }
        }
        (&Method::GET, ["plugins", name]) => match m.list().await.into_iter().find(|p| p["name"] == *name) {
            Some(p) => Some((StatusCode::OK, p)),
            None => error(404, format!("no plugin named {name:?}")),
        },
        (&Method::DELETE, ["plugins", name]) => {
            let r = m.unload(name).await;
            audit("admin/plugin.unload", name, r.is_ok());
            r.map_or_else(
                |(c, e)| error(c, e),
                |()| Some((StatusCode::OK, json!({"unloaded": name}))),
            )
        }
        (&Method::POST, ["plugins", name, action]) => {
            let (r, what) = match *action {
                "reload" => (m.reload(name).await, "admin/plugin.reload"),
                "enable" => (m.set_enabled(name, true).await, "admin/plugin.enable"),
                "disable" => (m.set_enabled(name, false).await, "admin/plugin.disable"),
                _ => return error(404, format!("unknown action {action:?}; use reload, enable or disable")),
            };
            audit(what, name, r.is_ok());
            match r {
                Ok(()) => {
                    let row = m.list().await.into_iter().find(|p| p["name"] == *name);
                    Some((StatusCode::OK, row.unwrap_or(Value::Null)))
                }
                Err((c, e)) => error(c, e),
            }
        }
        (&Method::GET, ["pins"]) => {
            let held: Vec<Value> = m
                .pins
                .get()
                .map(|p| p.held())
                .unwrap_or_default()
                .into_iter()
                .map(|(plugin, tool, h)| {
                    json!({"plugin": plugin, "tool": tool, "sha256": h.sha256,
                           "approved_sha256": h.approved_sha256, "definition": h.definition})
                })
                .collect();
            Some((StatusCode::OK, json!({"held": held})))
        }
        (&Method::POST, ["pins", plugin, tool, "approve"]) => {
            let (Some(pins), Some(store)) = (m.pins.get(), m.store.get()) else {
                return error(503, "pinning is not ready (store not open yet)");
            };
            let r = pins.approve(store, plugin, tool, req.actor).await;
            audit("admin/pin.approve", &format!("{plugin}/{tool}"), r.is_ok());
            match r {
                Ok(sha) => {
                    m.registry.republish().await;
                    Some((
                        StatusCode::OK,
                        json!({"approved": {"plugin": plugin, "tool": tool, "sha256": sha}}),
                    ))
                }
                Err(e) => error(404, e),
            }
        }
        (&Method::GET, ["hooks"]) => {
            let chain = engine.map(|e| e.hooks().describe()).unwrap_or_default();
            Some((StatusCode::OK, json!({"hooks": chain})))
        }
        (&Method::GET, ["upstreams"]) => Some((StatusCode::OK, json!({"upstreams": m.list_upstreams().await}))),
        (&Method::GET, ["upstreams", name]) => {
            match m.list_upstreams().await.into_iter().find(|u| u["name"] == *name) {
                Some(u) => Some((StatusCode::OK, u)),
                None => error(404, format!("no upstream named {name:?}")),
            }
        }
        (&Method::POST, ["upstreams"]) | (&Method::PUT, ["upstreams", _]) => {
            let mut entry: crate::config::Upstream = match serde_json::from_slice(req.body) {
                Ok(v) => v,
                Err(e) => return refusal(400, format!("body is not an upstream entry: {e}"), None),
            };
            if let [_, name] = parts.as_slice() {
                if entry.name.is_empty() {
                    entry.name = name.to_string();
                } else if entry.name != *name {
                    return refusal(
                        400,
                        format!("body names {:?}, the path {name:?}", entry.name),
                        Some("name"),
                    );
                }
            } else if m
                .list_upstreams()
                .await
                .iter()
                .any(|u| u["name"] == entry.name.as_str())
            {
                return refusal(
                    409,
                    format!(
                        "an upstream named {:?} exists; PUT /api/v1/upstreams/{} changes it",
                        entry.name, entry.name
                    ),
                    Some("name"),
                );
            }
            let name = entry.name.clone();
            let r = m.put_upstream(cfg, entry).await;
            audit("admin/upstream.put", &name, r.is_ok());
            match r {
                Ok(created) => {
                    let row = m
                        .list_upstreams()
                        .await
                        .into_iter()
                        .find(|u| u["name"] == name.as_str());
                    let code = if created { StatusCode::CREATED } else { StatusCode::OK };
                    Some((code, row.unwrap_or(Value::Null)))
                }
                Err((c, e, field)) => refusal(c, e, field.as_deref()),
            }
        }
        (&Method::DELETE, ["upstreams", name]) => {
            let r = m.remove_upstream(name).await;
            audit("admin/upstream.remove", name, r.is_ok());
            match r {
                Ok(()) => Some((StatusCode::OK, json!({"removed": name}))),
                Err((c, e, field)) => refusal(c, e, field.as_deref()),
            }
        }
        (&Method::POST, ["upstreams", name, "restart"]) => {
            if !m.list_upstreams().await.iter().any(|u| u["name"] == *name) {
                return error(404, format!("no upstream named {name:?}"));
            }
            let r = m.reload(name).await;
            audit("admin/upstream.restart", name, r.is_ok());
            match r {
                Ok(()) => {
                    let row = m.list_upstreams().await.into_iter().find(|u| u["name"] == *name);
                    Some((StatusCode::OK, row.unwrap_or(Value::Null)))
                }
                Err((c, e)) => error(c, e),
            }
        }
        (_, ["plugins", ..]) | (_, ["pins", ..]) | (_, ["hooks"]) | (_, ["upstreams", ..]) => {
            error(405, format!("{} is not supported on {}", req.method, req.path))
        }
        _ => None,
    }
}
