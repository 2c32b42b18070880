//! Protocol revisions and the era each belongs to.

use std::fmt;

/// A protocol revision this server understands. Ordered oldest first so comparisons
/// (`v >= V2025_06_18`) express "this feature exists since".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProtocolVersion {
    V2024_11_05,
    V2025_03_26,
    V2025_06_18,
    V2025_11_25,
    V2026_07_28,
}

/// Session-based handshake revisions versus the stateless per-request revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Era {
    /// `initialize` handshake, optional `Mcp-Session-Id` (2024-11-05 … 2025-11-25).
    Legacy,
    /// Per-request `_meta` envelope, no session (2026-07-28 and later).
    Modern,
}

impl ProtocolVersion {
    /// Newest first: the order used when answering a version question.
    pub const ALL: [ProtocolVersion; 5] = [
        Self::V2026_07_28,
        Self::V2025_11_25,
        Self::V2025_06_18,
        Self::V2025_03_26,
        Self::V2024_11_05,
    ];
    /// The newest revision served through `initialize`.
    pub const LATEST_LEGACY: ProtocolVersion = Self::V2025_11_25;
    /// The newest stateless revision.
    pub const LATEST_MODERN: ProtocolVersion = Self::V2026_07_28;
    /// Assumed for a legacy HTTP request that carries no `MCP-Protocol-Version` header.
    pub const HEADERLESS_DEFAULT: ProtocolVersion = Self::V2025_03_26;

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "2024-11-05" => Self::V2024_11_05,
            "2025-03-26" => Self::V2025_03_26,
            "2025-06-18" => Self::V2025_06_18,
            "2025-11-25" => Self::V2025_11_25,
            "2026-07-28" => Self::V2026_07_28,
            _ => return None,
        })
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::V2024_11_05 => "2024-11-05",
            Self::V2025_03_26 => "2025-03-26",
            Self::V2025_06_18 => "2025-06-18",
            Self::V2025_11_25 => "2025-11-25",
            Self::V2026_07_28 => "2026-07-28",
        }
    }

    pub const fn era(self) -> Era {
        match self {
            Self::V2026_07_28 => Era::Modern,
            _ => Era::Legacy,
        }
    }

    pub const fn is_modern(self) -> bool {
        matches!(self.era(), Era::Modern)
    }

    /// JSON-RPC batches exist only in 2025-03-26 (2024-11-05 allowed them too).
    pub const fn allows_batches(self) -> bool {
        matches!(self, Self::V2024_11_05 | Self::V2025_03_26)
    }

    /// Answer to a legacy `initialize` asking for `requested`: echo it when it is a legacy
    /// revision we serve, else offer our newest legacy revision (also when a client asks
    /// for 2026-07-28 inside `initialize`, which has no handshake).
    pub fn negotiate_legacy(requested: &str) -> ProtocolVersion {
        match Self::parse(requested) {
            Some(v) if !v.is_modern() => v,
            _ => Self::LATEST_LEGACY,
        }
    }

    /// Every version string, newest first, for `supported` lists in errors.
    pub fn supported_strings() -> Vec<&'static str> {
        Self::ALL.iter().map(|v| v.as_str()).collect()
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_round_trips_every_revision() {
        for v in ProtocolVersion::ALL {
            assert_eq!(ProtocolVersion::parse(v.as_str()), Some(v));
        }
        assert_eq!(ProtocolVersion::parse("2025-13-01"), None);
    }

    #[test]
    fn legacy_negotiation_never_picks_modern() {
        assert_eq!(
            ProtocolVersion::negotiate_legacy("2026-07-28"),
            ProtocolVersion::V2025_11_25
        );
        assert_eq!(
            ProtocolVersion::negotiate_legacy("2025-06-18"),
            ProtocolVersion::V2025_06_18
        );
        assert_eq!(
            ProtocolVersion::negotiate_legacy("1999-01-01"),
            ProtocolVersion::V2025_11_25
        );
    }

    #[test]
    fn eras() {
        assert!(ProtocolVersion::V2026_07_28.is_modern());
        assert!(!ProtocolVersion::V2025_11_25.is_modern());
        assert!(ProtocolVersion::V2025_03_26.allows_batches());
        assert!(!ProtocolVersion::V2025_06_18.allows_batches());
    }
}
