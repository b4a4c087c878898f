-- Callback timers with their outcome (ADR 20): a row per timer, `pending` until it is
-- `fired` (its `record.callback` event written in the same transaction) or `cancelled`
-- by a newer version of its key (`replaced_by`). Settled rows stay for the listing
-- until they are pruned. Timers are leased like deliveries.

CREATE TABLE callbacks (
    id               bigserial PRIMARY KEY,
    dataset          text NOT NULL,
    key              text NOT NULL,
    version          bigint,
    import_id        text NOT NULL,
    due_at           timestamptz NOT NULL,
    status           text NOT NULL DEFAULT 'pending', -- pending | fired | cancelled
    settled_at       timestamptz,
    replaced_by      bigint,
    event_id         text,
    lease_token      text,
    lease_expires_at timestamptz
);
CREATE UNIQUE INDEX callbacks_pending_key ON callbacks (dataset, key) WHERE status = 'pending';
CREATE INDEX callbacks_due ON callbacks (due_at) WHERE status = 'pending';
CREATE INDEX callbacks_listed ON callbacks (dataset, status, id);

INSERT INTO callbacks (dataset, key, version, import_id, due_at)
    SELECT dataset, key, version, import_id, due_at FROM callback_timers;
DROP TABLE callback_timers;

-- New timers wake the callback workers of every instance (see 0003).
CREATE TRIGGER callbacks_wake_workers
    AFTER INSERT ON callbacks
    FOR EACH STATEMENT
    EXECUTE FUNCTION intake_notify_work('callbacks');
