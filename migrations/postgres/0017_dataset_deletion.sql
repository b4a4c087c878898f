-- Deleting a dataset (ADR 37): what it derived (latest state, history, events, timers,
-- subscriptions, sources, jobs) goes at once; its documents stay in the vault under a
-- tombstone (`deleted_at`), which keeps the name taken, until a purge removes them and
-- the row. Every instance forgets the dataset's layout and catalog row when it hears
-- `NOTIFY intake_work, '<schema>:dropped:<name>'`.
ALTER TABLE datasets ADD COLUMN deleted_at timestamptz;

CREATE FUNCTION intake_notify_dataset_dropped() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('intake_work', TG_TABLE_SCHEMA || ':dropped:' || OLD.name);
    RETURN NULL;
END
$$;

CREATE TRIGGER datasets_tombstoned
    AFTER UPDATE ON datasets
    FOR EACH ROW WHEN (NEW.deleted_at IS DISTINCT FROM OLD.deleted_at)
    EXECUTE FUNCTION intake_notify_dataset_dropped();

CREATE TRIGGER datasets_purged
    AFTER DELETE ON datasets
    FOR EACH ROW EXECUTE FUNCTION intake_notify_dataset_dropped();
