//! `initialize` (handshake era) and `server/discover` (2026-07-28): what this server is and
//! can do.

use std::sync::Arc;

use serde_json::{json, Map, Value};
use waygate_protocol::{meta, ErrorObject, ProtocolVersion};

use super::Engine;
use crate::context::TransportKind;
use crate::session::Session;

impl Engine {
    /// Capabilities as the given revision spells them.
    pub fn capabilities(&self, version: ProtocolVersion) -> Value {
        let mut caps = json!({
            "tools": { "listChanged": true },
            "resources": { "subscribe": true, "listChanged": true },
            "prompts": { "listChanged": true },
            "completions": {},
            "logging": {},
        });
        if version.is_modern() {
            caps["extensions"] = json!({ meta::TASKS_EXTENSION: {} });
        } else if version >= ProtocolVersion::V2025_11_25 {
            caps["tasks"] = json!({ "list": {}, "cancel": {}, "requests": { "tools": { "call": {} } } });
        }
        if version < ProtocolVersion::V2025_03_26 {
            if let Some(o) = caps.as_object_mut() {
                o.remove("completions");
            }
        }
        caps
    }

    /// Handle `initialize`: negotiate the revision and open a session. `register` puts the
    /// session in the shared store (HTTP); a stdio connection keeps its own.
    pub fn initialize(
        &self,
        params: Option<&Map<String, Value>>,
        transport: TransportKind,
        register: bool,
        owner: Option<Arc<crate::auth::Principal>>,
        view: Option<Arc<crate::view::View>>,
    ) -> Result<(Arc<Session>, Value), ErrorObject> {
        let requested = params
            .and_then(|p| p.get("protocolVersion"))
            .ok_or_else(|| ErrorObject::invalid_params("Invalid params: initialize requires \"protocolVersion\""))?
            .as_str()
            .ok_or_else(|| ErrorObject::invalid_params("Invalid params: \"protocolVersion\" must be a string"))?;
        let caps = match params.and_then(|p| p.get("capabilities")) {
            None | Some(Value::Null) => json!({}),
            Some(c @ Value::Object(_)) => c.clone(),
            Some(_) => {
                return Err(ErrorObject::invalid_params(
                    "Invalid params: \"capabilities\" must be an object",
                ))
            }
        };
        let client_info = params.and_then(|p| p.get("clientInfo")).cloned();
        let version = ProtocolVersion::negotiate_legacy(requested);
        let session = Session::new(version, transport, caps, client_info, owner).with_view(view);
        if let Some(v) = &session.view {
            session.view_baseline(v.fingerprint(&self.registry.catalog()));
        }
        let session = Arc::new(session);
        if register {
            self.sessions.insert(session.clone())?;
        }
        let mut server_info = self.server_info.clone();
        if version >= ProtocolVersion::V2025_06_18 {
            server_info["title"] = json!(session
                .view
                .as_deref()
                .and_then(|v| v.title.as_deref())
                .unwrap_or("Waygate MCP gateway"));
        }
        let mut result = json!({
            "protocolVersion": version.as_str(),
            "capabilities": self.capabilities(version),
            "serverInfo": server_info,
        });
        if let Some(i) = self.instructions_for(session.view.as_deref()) {
            result["instructions"] = json!(i);
        }
        tracing::info!(session = %session.id, version = %version, requested, transport = transport.as_str(), "session opened");
        Ok((session, result))
    }

    /// `server/discover`: every revision we serve, newest first (handshake-era entries
    /// mean "use initialize"), our capabilities and identity.
    pub fn discover(&self) -> Value {
        self.discover_for(None)
    }

    /// `server/discover` on a virtual server (its own instructions and upstreams).
    pub fn discover_for(&self, view: Option<&crate::view::View>) -> Value {
        let mut r = json!({
            "supportedVersions": ProtocolVersion::supported_strings(),
            "capabilities": self.capabilities(ProtocolVersion::LATEST_MODERN),
            "ttlMs": self.cfg.list_ttl_ms,
            "cacheScope": "public",
        });
        if let Some(i) = self.instructions_for(view) {
            r["instructions"] = json!(i);
        }
        r
    }

    /// The gateway's (or the virtual server's) instructions, then each plugin's own under
    /// its name — only plugins that have something in the view.
    pub fn instructions_for(&self, view: Option<&crate::view::View>) -> Option<String> {
        let own = match view {
            Some(v) => v.instructions.as_deref(),
            None => self.cfg.instructions.as_deref(),
        };
        let catalog = self.registry.catalog();
        let mut out = own.unwrap_or_default().trim().to_string();
        for (plugin, text) in catalog.instructions() {
            if view.is_some_and(|v| !v.admits_plugin(plugin)) {
                continue;
            }
            if !out.is_empty() {
                out.push_str("\n\n");
            }
            out.push_str(&format!("## {plugin}\n{text}"));
        }
        (!out.is_empty()).then_some(out)
    }
}
