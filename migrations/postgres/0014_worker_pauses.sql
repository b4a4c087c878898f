-- Kinds of work paused by an operator (issue 19, ADR 31): a row per paused kind,
-- read by every instance, so a pause made on one is obeyed by all. Resuming deletes
-- the row. Queued work is untouched.
CREATE TABLE worker_pauses (
    kind      text PRIMARY KEY,
    paused_at timestamptz NOT NULL
);
