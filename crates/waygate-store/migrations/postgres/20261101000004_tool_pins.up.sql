-- Migration 2 reserved tool_pins keyed by tool alone (never written); pins are per plugin × tool.
DROP TABLE tool_pins;
CREATE TABLE tool_pins (
    plugin TEXT NOT NULL,
    tool TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    definition TEXT NOT NULL,
    approved_by TEXT NOT NULL,
    approved_at BIGINT NOT NULL,
    PRIMARY KEY (plugin, tool)
);
