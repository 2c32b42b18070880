//! Catalog and resource change events, fanned out to every listener (legacy GET streams,
//! legacy resource subscriptions, 2026-07-28 `subscriptions/listen` streams).

use tokio::sync::broadcast;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    ToolsChanged,
    PromptsChanged,
    ResourcesChanged,
    ResourceUpdated(String),
    /// A task of the tasks extension changed state (its id).
    TaskUpdated(String),
}

/// Cheap to clone; a send with no listener is not an error.
#[derive(Clone)]
pub struct Events {
    tx: broadcast::Sender<Event>,
}

impl Default for Events {
    fn default() -> Self {
        Self::new()
    }
}

impl Events {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(256);
        Self { tx }
    }
    pub fn emit(&self, e: Event) {
        let _ = self.tx.send(e);
    }
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}
