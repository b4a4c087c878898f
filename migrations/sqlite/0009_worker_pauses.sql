-- Kinds of work paused by an operator (issue 19, ADR 31): a row per paused kind,
-- read by every process on the file. Resuming deletes the row. Times are RFC 3339
-- text.
CREATE TABLE worker_pauses (
    kind      TEXT PRIMARY KEY,
    paused_at TEXT NOT NULL
);
