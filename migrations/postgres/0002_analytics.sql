-- Analytics in SQL (DESIGN §7): the latest state's measures, typed, one row per
-- (dimension, measure) pair of each record, so that an aggregate grouped by (or
-- filtered on) a dimension is one index-only scan and never parses JSON. The pseudo
-- dimension '' (value '') holds every record, for aggregates of the whole dataset.
-- `record_dimensions` counts each group's records (to report those without the
-- measure) and serves filters on other dimensions. Both are written with `records` in
-- the import's transaction; a key's rows are replaced when its state changes.

CREATE TABLE record_facts (
    dataset   text NOT NULL,
    key       text NOT NULL,
    dimension text NOT NULL,
    dim_value text NOT NULL,
    measure   text NOT NULL,
    value     double precision NOT NULL
);
CREATE INDEX record_facts_group ON record_facts (dataset, dimension, measure, dim_value) INCLUDE (value);
CREATE INDEX record_facts_key ON record_facts (dataset, key);

CREATE TABLE record_dimensions (
    dataset   text NOT NULL,
    key       text NOT NULL,
    dimension text NOT NULL,
    value     text NOT NULL,
    PRIMARY KEY (dataset, key, dimension)
);
CREATE INDEX record_dimensions_group ON record_dimensions (dataset, dimension, value) INCLUDE (key);

INSERT INTO record_dimensions (dataset, key, dimension, value)
SELECT r.dataset, r.key, d.key, d.value
FROM records r, jsonb_each_text(r.dimensions) AS d;

INSERT INTO record_facts (dataset, key, dimension, dim_value, measure, value)
SELECT r.dataset, r.key, d.dimension, d.value, m.key, m.value::double precision
FROM records r
CROSS JOIN LATERAL json_each_text(r.record -> 'measures') AS m
CROSS JOIN LATERAL (
    SELECT '' AS dimension, '' AS value
    UNION ALL
    SELECT key, value FROM jsonb_each_text(r.dimensions)
) AS d;
