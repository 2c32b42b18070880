CREATE TABLE config_snapshots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at BIGINT NOT NULL,
    source TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    content TEXT NOT NULL
);
CREATE TABLE plugin_state (
    name TEXT PRIMARY KEY,
    enabled BIGINT NOT NULL,
    settings TEXT NOT NULL DEFAULT '{}',
    updated_at BIGINT NOT NULL
);
CREATE TABLE upstreams (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
