-- Long-running jobs (DESIGN §10, ADR 33): a row per job with its lease, its progress
-- and its status; the last K checkpoints of each; and the series rollup jobs keep.
CREATE TABLE jobs (
    id               text PRIMARY KEY,
    dataset          text NOT NULL REFERENCES datasets (name),
    kind             text NOT NULL,
    params           json NOT NULL,
    status           text NOT NULL CHECK (status IN
                         ('queued', 'running', 'paused', 'cancelled', 'completed', 'failed')),
    done             bigint NOT NULL DEFAULT 0,
    total            bigint,
    error            text,
    attempts         integer NOT NULL DEFAULT 0,
    due_at           timestamptz NOT NULL DEFAULT now(),
    worker           text,
    token            text,
    lease_expires_at timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    started_done     bigint NOT NULL DEFAULT 0,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz
);
CREATE INDEX jobs_dataset ON jobs (dataset, created_at);
CREATE INDEX jobs_runnable ON jobs (due_at) WHERE status IN ('queued', 'running');

CREATE TABLE job_checkpoints (
    job_id text NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    n      integer NOT NULL,
    done   bigint NOT NULL,
    state  text NOT NULL,
    at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, n)
);

CREATE TABLE rollup_points (
    dataset   text NOT NULL,
    rollup    text NOT NULL,
    import_id text NOT NULL,
    grp       text NOT NULL,
    seq       bigint NOT NULL,
    at        timestamptz NOT NULL,
    count     bigint NOT NULL,
    sum       float8 NOT NULL,
    mean      float8,
    stddev    float8,
    PRIMARY KEY (dataset, rollup, import_id, grp)
);
CREATE INDEX rollup_points_series ON rollup_points (dataset, rollup, seq);

-- A job queued (created, resumed, restarted, given back) wakes the job workers of
-- every instance.
CREATE TRIGGER jobs_wake_workers
    AFTER INSERT OR UPDATE OF status ON jobs
    FOR EACH ROW WHEN (NEW.status = 'queued')
    EXECUTE FUNCTION intake_notify_work('jobs');
