-- ADR 23: a record's document is stored once. History keeps every version of it, names
-- its import by number (imports.seq) and its time as microseconds since the Unix epoch;
-- the latest state is a row per key pointing at the history row that holds the record
-- as it is now. Before, each record was two wide rows, each with the document, a
-- 32-character import id and a 27-character timestamp.

ALTER TABLE records RENAME TO records_0005;
ALTER TABLE record_history RENAME TO record_history_0005;

CREATE TABLE record_history (
    seq        INTEGER PRIMARY KEY,
    dataset    TEXT NOT NULL,
    key        TEXT NOT NULL,
    kind       TEXT NOT NULL,
    record     TEXT NOT NULL,
    import_seq INTEGER NOT NULL, -- imports.seq
    at_us      INTEGER NOT NULL  -- microseconds since the Unix epoch
);

-- Timestamps were written as RFC 3339 with microseconds and `Z` (27 characters).
INSERT INTO record_history (seq, dataset, key, kind, record, import_seq, at_us)
SELECT h.seq, h.dataset, h.key, h.kind, h.record, i.seq,
       CASE WHEN length(h.created_at) = 27
            THEN unixepoch(substr(h.created_at, 1, 19)) * 1000000
                 + CAST(substr(h.created_at, 21, 6) AS INTEGER)
            ELSE CAST(round((julianday(h.created_at) - 2440587.5) * 86400000000) AS INTEGER) END
FROM record_history_0005 h JOIN imports i ON i.id = h.import_id
ORDER BY h.seq;

DROP TABLE record_history_0005;
CREATE INDEX record_history_key ON record_history (dataset, key, seq);

-- Every change wrote both rows with the same document, so a key's newest history row
-- holds its latest state; should one not, the latest state is appended to history.
INSERT INTO record_history (dataset, key, kind, record, import_seq, at_us)
SELECT r.dataset, r.key,
       CASE WHEN EXISTS (SELECT 1 FROM record_history h WHERE h.dataset = r.dataset AND h.key = r.key)
            THEN 'updated' ELSE 'created' END,
       r.record, i.seq,
       CASE WHEN length(r.updated_at) = 27
            THEN unixepoch(substr(r.updated_at, 1, 19)) * 1000000
                 + CAST(substr(r.updated_at, 21, 6) AS INTEGER)
            ELSE CAST(round((julianday(r.updated_at) - 2440587.5) * 86400000000) AS INTEGER) END
FROM records_0005 r JOIN imports i ON i.id = r.import_id
WHERE r.record IS NOT (SELECT h.record FROM record_history h
                       WHERE h.dataset = r.dataset AND h.key = r.key ORDER BY h.seq DESC LIMIT 1)
ORDER BY r.dataset, r.key;

CREATE TABLE records (
    dataset TEXT NOT NULL,
    key     TEXT NOT NULL,
    seq     INTEGER NOT NULL, -- the record_history row holding the record as it is now
    PRIMARY KEY (dataset, key)
) WITHOUT ROWID;

INSERT INTO records (dataset, key, seq)
SELECT r.dataset, r.key,
       (SELECT max(h.seq) FROM record_history h WHERE h.dataset = r.dataset AND h.key = r.key)
FROM records_0005 r
ORDER BY r.dataset, r.key;

DROP TABLE records_0005;
