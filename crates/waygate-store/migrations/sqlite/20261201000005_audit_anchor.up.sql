-- The signed head of the audit chain (one row): the newest record's seq and hash with an
-- HMAC under a key the database does not hold, so deleting the newest records is detected.
CREATE TABLE audit_anchor (
    id INTEGER PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    mac TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
