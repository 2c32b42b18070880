//! Transports in front of the [`waygate_core::Engine`]: Streamable HTTP at `/mcp` (both
//! eras on one endpoint), the 2024-11-05 HTTP+SSE transport at `/sse` + `/messages`, and
//! newline-delimited stdio. Each one only frames bytes and classifies requests; all MCP
//! semantics live in the engine.

pub mod http;
pub mod stdio;

mod respond;
