-- Deleting a dataset (ADR 37): what it derived (latest state, history, events, timers,
-- subscriptions, sources, jobs) goes at once; its documents stay in the vault under a
-- tombstone (`deleted_at`), which keeps the name taken, until a purge removes them and
-- the row.
ALTER TABLE datasets ADD COLUMN deleted_at TEXT;
