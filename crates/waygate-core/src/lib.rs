//! The Waygate request path, independent of any transport.
//!
//! A transport decodes bytes into [`waygate_protocol::Message`]s, works out the era of each
//! request (see [`era`]), builds a [`CallContext`] and hands the request to the
//! [`Engine`]. The engine dispatches to the [`Catalog`] that the [`PluginRegistry`] built
//! from its plugins, and shapes results for the revision the client speaks.

pub mod audit;
pub mod auth;
pub mod catalog;
pub mod context;
pub mod engine;
pub mod era;
pub mod events;
pub mod fleet;
pub mod hooks;
pub mod logctx;
pub mod memory;
pub mod metrics;
pub mod mrtr;
pub mod naming;
pub mod outq;
pub mod plugin;
pub mod policy;
pub mod ratelimit;
pub mod registry;
pub mod session;
pub mod spans;
pub mod tasks;
pub mod uri_template;
pub mod util;
pub mod validate;
pub mod view;

pub use catalog::Catalog;
pub use context::{CallContext, OutTx};
pub use engine::{Engine, EngineConfig};
pub use events::{Event, Events};
pub use plugin::{
    BoxFuture, Invocation, Manifest, Outcome, Plugin, PluginError, PluginInit, PromptDef, ResourceDef,
    ResourceTemplateDef, Target, ToolDef,
};
pub use registry::{CatalogGate, PluginInfo, PluginRegistry, PluginState};
pub use session::{Session, SessionStore};
