CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    hash TEXT NOT NULL,
    scopes TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT
);
CREATE TABLE audit_log (
    seq BIGSERIAL PRIMARY KEY,
    ts BIGINT NOT NULL,
    record TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE tool_pins (
    tool TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    approved_at BIGINT NOT NULL
);
