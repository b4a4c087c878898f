-- An import finishing (its report committed) wakes whoever waits for it in any
-- instance (`?wait=true`, `POST /import`): `NOTIFY intake_work,
-- '<schema>:finished:<import id>'`, relayed like the work wake-ups of 0003.

CREATE FUNCTION intake_notify_finished() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('intake_work', TG_TABLE_SCHEMA || ':finished:' || NEW.id);
    RETURN NULL;
END
$$;

CREATE TRIGGER imports_wake_waiters
    AFTER UPDATE OF status ON imports
    FOR EACH ROW WHEN (NEW.status IN ('completed', 'failed') AND OLD.status <> NEW.status)
    EXECUTE FUNCTION intake_notify_finished();
