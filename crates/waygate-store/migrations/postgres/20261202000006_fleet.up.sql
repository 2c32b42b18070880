-- Session-era sessions shared by every replica (issue 16): a session created on one replica
-- keeps working when its next request lands on another. Rows are written at initialize and
-- when the session's state changes; each replica keeps a local cache.
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    owner TEXT,
    view TEXT,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen BIGINT NOT NULL
);
CREATE INDEX sessions_last_seen ON sessions (last_seen);
-- A client's answer to a server-to-client request that landed on a replica other than the
-- one waiting for it; the waiting replica takes the row when NOTIFY wakes it.
CREATE TABLE pending_answers (
    session_id TEXT NOT NULL,
    request_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (session_id, request_id)
);
-- Tasks visible from every replica: the running replica writes status and result through.
CREATE TABLE tasks (
    id TEXT PRIMARY KEY,
    owner TEXT,
    tool TEXT NOT NULL,
    state TEXT NOT NULL,
    -- Writes may arrive out of order; an older state never replaces a newer one.
    seq BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX tasks_expires ON tasks (expires_at);
