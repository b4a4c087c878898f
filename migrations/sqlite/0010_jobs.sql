-- Long-running jobs (DESIGN §10, ADR 33): a row per job with its lease, its progress
-- and its status; the last K checkpoints of each; and the series rollup jobs keep.
CREATE TABLE jobs (
    id               TEXT PRIMARY KEY,
    dataset          TEXT NOT NULL REFERENCES datasets (name),
    kind             TEXT NOT NULL,
    params           TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN
                         ('queued', 'running', 'paused', 'cancelled', 'completed', 'failed')),
    done             INTEGER NOT NULL DEFAULT 0,
    total            INTEGER,
    error            TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    due_at           TEXT NOT NULL,
    worker           TEXT,
    token            TEXT,
    lease_expires_at TEXT,
    created_at       TEXT NOT NULL,
    started_at       TEXT,
    started_done     INTEGER NOT NULL DEFAULT 0,
    updated_at       TEXT NOT NULL,
    finished_at      TEXT
);
CREATE INDEX jobs_dataset ON jobs (dataset, created_at);
CREATE INDEX jobs_runnable ON jobs (due_at) WHERE status IN ('queued', 'running');

CREATE TABLE job_checkpoints (
    job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    n      INTEGER NOT NULL,
    done   INTEGER NOT NULL,
    state  TEXT NOT NULL,
    at     TEXT NOT NULL,
    PRIMARY KEY (job_id, n)
);

CREATE TABLE rollup_points (
    dataset   TEXT NOT NULL,
    rollup    TEXT NOT NULL,
    import_id TEXT NOT NULL,
    grp       TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    at        TEXT NOT NULL,
    count     INTEGER NOT NULL,
    sum       REAL NOT NULL,
    mean      REAL,
    stddev    REAL,
    PRIMARY KEY (dataset, rollup, import_id, grp)
);
CREATE INDEX rollup_points_series ON rollup_points (dataset, rollup, seq);

