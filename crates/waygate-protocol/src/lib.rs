//! MCP protocol facts in one place: revisions and their era, method names, `_meta` keys,
//! JSON-RPC framing and error codes, and the header value encoding of 2026-07-28.
//!
//! Nothing here does I/O, so every transport and the engine agree on the same rules.

pub mod error;
pub mod headers;
pub mod jsonrpc;
pub mod meta;
pub mod methods;
pub mod raw;
pub mod scan;
pub mod unique;
pub mod version;

pub use error::{codes, ErrorObject};
pub use jsonrpc::{Id, Incoming, Message, ParseError, Reply};
pub use version::{Era, ProtocolVersion};
