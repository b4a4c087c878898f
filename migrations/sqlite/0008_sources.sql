-- Pull sources (issue 18, ADR 30): one row per source with its declaration (the JSON
-- the client gave, secrets by name only), where it is (cursor, watermarks, validators,
-- counts, failures) and its lease. A page's import and the source's new cursor are
-- written in one transaction. Times are RFC 3339 text (sortable).
CREATE TABLE sources (
    dataset          TEXT NOT NULL REFERENCES datasets (name),
    name             TEXT NOT NULL,
    spec             TEXT NOT NULL,
    paused           INTEGER NOT NULL DEFAULT 0,
    cursor           TEXT,
    watermark        TEXT,
    run_watermark    TEXT,
    etag             TEXT,
    last_modified    TEXT,
    next_run_at      TEXT NOT NULL,
    last_run_at      TEXT,
    last_success_at  TEXT,
    pages            INTEGER NOT NULL DEFAULT 0,
    records          INTEGER NOT NULL DEFAULT 0,
    failures         INTEGER NOT NULL DEFAULT 0,
    degraded         INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT,
    worker           TEXT,
    lease_token      TEXT,
    lease_expires_at TEXT,
    created_at       TEXT NOT NULL,
    PRIMARY KEY (dataset, name)
);
CREATE INDEX sources_due ON sources (next_run_at) WHERE NOT paused;

-- A source's imports (its health reads the faulty ones).
CREATE INDEX imports_source ON imports (dataset, source, seq);
