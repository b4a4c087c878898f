-- Storage of the embedded default (DESIGN §4, §6): catalog, raw vault and queue,
-- latest state, history, identities, conflicts, outbox and callback timers.
-- Timestamps are RFC 3339 UTC text with microseconds, so they sort as text.

CREATE TABLE datasets (
    name             TEXT PRIMARY KEY,
    current_contract INTEGER NOT NULL,
    revision         INTEGER NOT NULL DEFAULT 0,
    created_at       TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE contracts (
    dataset      TEXT NOT NULL REFERENCES datasets (name),
    version      INTEGER NOT NULL,
    body         TEXT NOT NULL,
    published_at TEXT NOT NULL,
    PRIMARY KEY (dataset, version)
) WITHOUT ROWID;

-- One row per committed document; `seq` orders the queue and listings.
CREATE TABLE imports (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT NOT NULL UNIQUE,
    dataset          TEXT NOT NULL REFERENCES datasets (name),
    contract         INTEGER NOT NULL,
    content_type     TEXT NOT NULL,
    source           TEXT NOT NULL,
    idempotency_key  TEXT,
    size             INTEGER NOT NULL,
    sha256           TEXT NOT NULL,
    received_at      TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('received', 'processing', 'completed', 'failed')),
    report           TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    lease_worker     TEXT,
    lease_token      TEXT,
    lease_expires_at TEXT
);
CREATE UNIQUE INDEX imports_body ON imports (dataset, sha256);
CREATE UNIQUE INDEX imports_idempotency ON imports (dataset, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX imports_queue ON imports (status, seq);
CREATE INDEX imports_dataset ON imports (dataset, seq);

-- The raw bytes, in order. Written before the import row exists (by import id).
CREATE TABLE vault_chunks (
    import_id TEXT NOT NULL,
    n         INTEGER NOT NULL,
    bytes     BLOB NOT NULL,
    PRIMARY KEY (import_id, n)
) WITHOUT ROWID;

CREATE TABLE records (
    dataset    TEXT NOT NULL,
    key        TEXT NOT NULL,
    record     TEXT NOT NULL,
    dimensions TEXT NOT NULL,
    import_id  TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (dataset, key)
) WITHOUT ROWID;

CREATE TABLE record_history (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset    TEXT NOT NULL,
    key        TEXT NOT NULL,
    kind       TEXT NOT NULL,
    record     TEXT NOT NULL,
    import_id  TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX record_history_key ON record_history (dataset, key, seq);

CREATE TABLE identities (
    dataset      TEXT NOT NULL,
    identity_key TEXT NOT NULL,
    fields       TEXT NOT NULL,
    PRIMARY KEY (dataset, identity_key)
) WITHOUT ROWID;

CREATE TABLE conflicts (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset   TEXT NOT NULL,
    import_id TEXT NOT NULL,
    conflict  TEXT NOT NULL
);
CREATE INDEX conflicts_dataset ON conflicts (dataset, seq);

CREATE TABLE outbox (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,
    dataset       TEXT NOT NULL,
    kind          TEXT NOT NULL,
    payload       TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    due_at        TEXT NOT NULL,
    claimed_until TEXT,
    delivered_at  TEXT,
    is_dead       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX outbox_due ON outbox (due_at) WHERE delivered_at IS NULL AND is_dead = 0;

-- One pending timer per key: a newer version replaces it.
CREATE TABLE callback_timers (
    dataset   TEXT NOT NULL,
    key       TEXT NOT NULL,
    version   INTEGER,
    import_id TEXT NOT NULL,
    due_at    TEXT NOT NULL,
    PRIMARY KEY (dataset, key)
) WITHOUT ROWID;
CREATE INDEX callback_timers_due ON callback_timers (due_at);
