//! Federation: upstream MCP servers behind the gateway's one endpoint.
//!
//! An [`Upstream`] is a [`waygate_core::Plugin`] like any other tier, so its tools enter
//! the same catalog and pass the same policy, hooks, pinning, limits, audit and metrics.
//! What it adds is a client: it spawns a stdio server (or connects to a Streamable HTTP
//! one), performs the MCP handshake, lists what the server offers and forwards calls —
//! results are passed through verbatim, because a gateway must not drop fields it does not
//! know. A supervisor watches the connection (process exit, failed pings), reconnects with
//! backoff, counts restarts and republishes the catalog when the upstream's lists change.
//!
//! The client is written here rather than taken from `rmcp`: a pass-through gateway wants
//! the upstream's JSON untouched (unknown fields, `_meta`), and the wire handling it needs
//! is small; see `docs/design/upstreams.md`.

mod client;
mod envelope;
mod error;
mod guard;
mod http;
mod inbound;
mod legacy;
mod link;
mod listing;
mod openapi;
mod pool;
mod relay;
mod request;
mod sse;
mod stats;
mod stdio;
mod subscriptions;
mod supervisor;
mod task_call;
pub mod tls;
mod upstream;

pub use client::{Caller, Client, Deadline, Era, Notification, RequestOpts, Target};
pub use error::UpstreamError;
pub use guard::Containment;
pub use http::{HttpMode, HttpTarget};
pub use link::{Ask, CallLink};
pub use openapi::OpenApiTarget;
pub use stats::{render_metrics, Status};
pub use stdio::StdioTarget;
pub use upstream::{Upstream, UpstreamSpec, Wiring};
pub use waygate_openapi::Filter as OpenApiFilter;

/// The revision the gateway asks upstreams for (they may answer with an older one).
pub const PROTOCOL_VERSION: &str = "2025-11-25";
