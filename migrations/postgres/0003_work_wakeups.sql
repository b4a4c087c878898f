-- Work committed by any instance wakes the idle workers of every instance (DESIGN §3):
-- rows becoming claimable send `NOTIFY intake_work, '<schema>:<kind>'`. PostgreSQL
-- sends notifications when the transaction commits (never for a rolled-back one) and
-- folds identical ones of a transaction into one, so a burst costs one wake-up.
-- Workers still poll slowly as a safety net (a listener reconnecting misses some).

CREATE FUNCTION intake_notify_work() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('intake_work', TG_TABLE_SCHEMA || ':' || TG_ARGV[0]);
    RETURN NULL;
END
$$;

-- A document received, released at shutdown or queued again for reprocessing.
CREATE TRIGGER imports_wake_workers
    AFTER INSERT OR UPDATE OF status ON imports
    FOR EACH ROW WHEN (NEW.status = 'received')
    EXECUTE FUNCTION intake_notify_work('imports');
