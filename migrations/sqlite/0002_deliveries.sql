-- Deliveries (DESIGN §8): subscriptions of a dataset, and one delivery per (event,
-- subscription) so one receiver's outage never delays another's. Events stay in
-- `outbox`, written only when a subscription wants them; its old delivery columns
-- are unused.

CREATE TABLE subscriptions (
    id         TEXT PRIMARY KEY,
    dataset    TEXT NOT NULL REFERENCES datasets (name),
    url        TEXT NOT NULL,
    events     TEXT,               -- a JSON array of kinds; NULL: every kind
    secret     TEXT NOT NULL,
    status     TEXT NOT NULL DEFAULT 'active',
    created_at TEXT NOT NULL
);
CREATE INDEX subscriptions_dataset ON subscriptions (dataset, created_at);

CREATE TABLE deliveries (
    subscription_id  TEXT NOT NULL,
    event_id         TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending', -- pending | delivered | dead
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT NOT NULL,
    lease_token      TEXT,
    lease_expires_at TEXT,
    last_attempt_at  TEXT,
    last_status      INTEGER,
    last_error       TEXT,
    failed_at        TEXT,                -- the last failed attempt, kept after a success
    failed_status    INTEGER,
    PRIMARY KEY (subscription_id, event_id)
) WITHOUT ROWID;
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_by_status ON deliveries (subscription_id, status, last_attempt_at);
