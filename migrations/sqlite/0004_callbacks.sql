-- Callback timers with their outcome (ADR 20): a row per timer, `pending` until it is
-- `fired` (its `record.callback` event written in the same transaction) or `cancelled`
-- by a newer version of its key (`replaced_by`). Settled rows stay for the listing
-- until they are pruned. Timers are leased like deliveries.

CREATE TABLE callbacks (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset          TEXT NOT NULL,
    key              TEXT NOT NULL,
    version          INTEGER,
    import_id        TEXT NOT NULL,
    due_at           TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending', -- pending | fired | cancelled
    settled_at       TEXT,
    replaced_by      INTEGER,
    event_id         TEXT,
    lease_token      TEXT,
    lease_expires_at TEXT
);
CREATE UNIQUE INDEX callbacks_pending_key ON callbacks (dataset, key) WHERE status = 'pending';
CREATE INDEX callbacks_due ON callbacks (due_at) WHERE status = 'pending';
CREATE INDEX callbacks_listed ON callbacks (dataset, status, id);

INSERT INTO callbacks (dataset, key, version, import_id, due_at)
    SELECT dataset, key, version, import_id, due_at FROM callback_timers;
DROP TABLE callback_timers;
