//! Owns the plugins and their lifecycle, and republishes the [`Catalog`] on every change.
//!
//! States: loaded → initialized → running, or failed / stopped. Loading a plugin runs its
//! `initialize`; a failure leaves it listed as failed and out of the catalog, never takes
//! the server down. Calls already running keep their `Arc` to the old catalog, so an
//! unload or reload never cuts an in-flight call short.

use std::sync::{Arc, RwLock};

use serde_json::Value;
use tokio::sync::Mutex;

use crate::catalog::Catalog;
use crate::events::{Event, Events};
use crate::plugin::{Manifest, Plugin, PluginError, PluginInit};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginState {
    Loaded,
    Initialized,
    Running,
    Failed(String),
    Stopped,
}

impl PluginState {
    pub fn label(&self) -> &str {
        match self {
            Self::Loaded => "loaded",
            Self::Initialized => "initialized",
            Self::Running => "running",
            Self::Failed(_) => "failed",
            Self::Stopped => "stopped",
        }
    }
}

struct Entry {
    plugin: Arc<dyn Plugin>,
    settings: Value,
    state: PluginState,
    manifest: Option<Manifest>,
}

/// A summary row for CLIs and the admin API.
#[derive(Debug, Clone)]
pub struct PluginInfo {
    pub name: String,
    pub state: PluginState,
    pub tools: usize,
    pub resources: usize,
    pub prompts: usize,
}

pub struct PluginRegistry {
    entries: Mutex<Vec<Entry>>,
    catalog: RwLock<Arc<Catalog>>,
    events: Events,
    page_size: usize,
}

impl PluginRegistry {
    pub fn new(events: Events, page_size: usize) -> Self {
        PluginRegistry {
            entries: Mutex::new(Vec::new()),
            catalog: RwLock::new(Arc::new(Catalog::default())),
            events,
            page_size,
        }
    }

    /// The current catalog; cheap (one atomic increment).
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn events(&self) -> &Events {
        &self.events
    }

    /// Add and initialize a plugin. A plugin of the same name is replaced (a reload).
    pub async fn load(&self, plugin: Arc<dyn Plugin>, settings: Value) -> Result<(), PluginError> {
        let name = plugin.name().to_string();
        let mut entries = self.entries.lock().await;
        let old = entries
            .iter()
            .position(|e| e.plugin.name() == name)
            .map(|i| entries.remove(i));
        let init = PluginInit {
            settings: settings.clone(),
            events: self.events.clone(),
        };
        let mut entry = Entry {
            plugin: plugin.clone(),
            settings,
            state: PluginState::Loaded,
            manifest: None,
        };
        let result = plugin.initialize(&init).await;
        let outcome = match result {
            Ok(m) => {
                entry.state = PluginState::Running;
                entry.manifest = Some(m);
                tracing::info!(plugin = %name, "plugin running");
                Ok(())
            }
            Err(e) => {
                tracing::error!(plugin = %name, error = %e, "plugin failed to initialize");
                entry.state = PluginState::Failed(e.to_string());
                Err(e)
            }
        };
        entries.push(entry);
        self.publish(&entries);
        drop(entries);
        if let Some(old) = old {
            old.plugin.shutdown().await;
        }
        outcome
    }

    /// Re-run `initialize` of a loaded plugin with its settings.
    pub async fn reload(&self, name: &str) -> Result<(), PluginError> {
        let (plugin, settings) = {
            let entries = self.entries.lock().await;
            let e = entries
                .iter()
                .find(|e| e.plugin.name() == name)
                .ok_or_else(|| PluginError::NotFound(format!("plugin {name:?} is not loaded")))?;
            (e.plugin.clone(), e.settings.clone())
        };
        plugin.shutdown().await;
        self.load(plugin, settings).await
    }

    /// Remove a plugin from the catalog and shut it down. False when it was not loaded.
    pub async fn unload(&self, name: &str) -> bool {
        let mut entries = self.entries.lock().await;
        let Some(i) = entries.iter().position(|e| e.plugin.name() == name) else {
            return false;
        };
        let e = entries.remove(i);
        self.publish(&entries);
        drop(entries);
        e.plugin.shutdown().await;
        tracing::info!(plugin = %name, "plugin unloaded");
        true
    }

    pub async fn list(&self) -> Vec<PluginInfo> {
        self.entries
            .lock()
            .await
            .iter()
            .map(|e| PluginInfo {
                name: e.plugin.name().to_string(),
                state: e.state.clone(),
                tools: e.manifest.as_ref().map_or(0, |m| m.tools.len()),
                resources: e
                    .manifest
                    .as_ref()
                    .map_or(0, |m| m.resources.len() + m.resource_templates.len()),
                prompts: e.manifest.as_ref().map_or(0, |m| m.prompts.len()),
            })
            .collect()
    }

    /// Shut every plugin down (process exit).
    pub async fn shutdown_all(&self) {
        let mut entries = self.entries.lock().await;
        for e in entries.iter_mut() {
            e.plugin.shutdown().await;
            e.state = PluginState::Stopped;
        }
    }

    fn publish(&self, entries: &[Entry]) {
        let running: Vec<(Arc<dyn Plugin>, Manifest)> = entries
            .iter()
            .filter_map(|e| e.manifest.clone().map(|m| (e.plugin.clone(), m)))
            .collect();
        let catalog = Arc::new(Catalog::build(&running, self.page_size));
        *self.catalog.write().unwrap_or_else(|e| e.into_inner()) = catalog;
        self.events.emit(Event::ToolsChanged);
        self.events.emit(Event::PromptsChanged);
        self.events.emit(Event::ResourcesChanged);
    }
}
