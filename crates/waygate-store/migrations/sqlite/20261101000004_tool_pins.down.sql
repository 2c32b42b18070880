DROP TABLE tool_pins;
CREATE TABLE tool_pins (
    tool TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    approved_at BIGINT NOT NULL
);
