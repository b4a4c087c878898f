-- Pull sources (issue 18, ADR 30): one row per source with its declaration (the JSON
-- the client gave, secrets by name only), where it is (cursor, watermarks, validators,
-- counts, failures) and its lease. A page's import and the source's new cursor are
-- written in one transaction.
CREATE TABLE sources (
    dataset          text NOT NULL REFERENCES datasets (name),
    name             text NOT NULL,
    spec             jsonb NOT NULL,
    paused           boolean NOT NULL DEFAULT false,
    cursor           text,
    watermark        text,
    run_watermark    text,
    etag             text,
    last_modified    text,
    next_run_at      timestamptz NOT NULL,
    last_run_at      timestamptz,
    last_success_at  timestamptz,
    pages            bigint NOT NULL DEFAULT 0,
    records          bigint NOT NULL DEFAULT 0,
    failures         integer NOT NULL DEFAULT 0,
    degraded         boolean NOT NULL DEFAULT false,
    last_error       text,
    worker           text,
    lease_token      text,
    lease_expires_at timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dataset, name)
);
CREATE INDEX sources_due ON sources (next_run_at) WHERE NOT paused;

-- A source's imports (its health reads the faulty ones).
CREATE INDEX imports_source ON imports (dataset, source, seq);

-- A source made due (created, run now, reset, resumed, given back) wakes the source
-- workers of every instance (see 0003).
CREATE TRIGGER sources_wake_workers
    AFTER INSERT OR UPDATE OF next_run_at, paused, lease_token ON sources
    FOR EACH ROW WHEN (NOT NEW.paused AND NEW.lease_token IS NULL)
    EXECUTE FUNCTION intake_notify_work('sources');
