//! `--verify`: reach each imported upstream with the federation client (start a stdio
//! server or connect to a Streamable HTTP one), run the MCP handshake and list its tools,
//! before anything is written.

use std::time::Duration;

use crate::config::{OutboundSection, Upstream};
use crate::upstreams::{probe, UpstreamEntry};

/// Outcome per upstream: tool names, or why it failed.
pub async fn verify(
    u: &Upstream,
    timeout: Duration,
    store: Option<&waygate_store::Store>,
) -> Result<Vec<String>, String> {
    let entry = UpstreamEntry {
        upstream: u.clone(),
        outbound: OutboundSection::default(),
    };
    probe(&entry, store, timeout).await.map(|p| p.tools)
}
