-- A dataset's revision (an import committed) or current contract (a version was
-- published) changed, or the dataset is gone: every instance forgets the catalog row
-- it keeps in memory (ADR 25). `NOTIFY intake_work, '<schema>:dataset:<name>'`,
-- relayed like the work wake-ups of 0003 and sent, like them, at commit.

CREATE FUNCTION intake_notify_dataset_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('intake_work', TG_TABLE_SCHEMA || ':dataset:' || OLD.name);
    RETURN NULL;
END
$$;

CREATE TRIGGER datasets_changed
    AFTER UPDATE ON datasets
    FOR EACH ROW WHEN (NEW.revision IS DISTINCT FROM OLD.revision
                       OR NEW.current_contract IS DISTINCT FROM OLD.current_contract)
    EXECUTE FUNCTION intake_notify_dataset_changed();

CREATE TRIGGER datasets_deleted
    AFTER DELETE ON datasets
    FOR EACH ROW EXECUTE FUNCTION intake_notify_dataset_changed();
