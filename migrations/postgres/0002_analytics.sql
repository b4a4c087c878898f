-- Analytics in SQL (DESIGN §7): the latest state's measures and dimensions, one row
-- each, typed, so an aggregate groups on an index and never parses JSON per row.
-- Written with `records` in the import's transaction; a key's rows are replaced when
-- its state changes.

CREATE TABLE record_measures (
    dataset text NOT NULL,
    key     text NOT NULL,
    measure text NOT NULL,
    value   double precision NOT NULL,
    PRIMARY KEY (dataset, key, measure)
);

CREATE TABLE record_dimensions (
    dataset   text NOT NULL,
    key       text NOT NULL,
    dimension text NOT NULL,
    value     text NOT NULL,
    PRIMARY KEY (dataset, key, dimension)
);
-- Grouping and filtering: (dataset, dimension) then the value, with the key inside
-- the index so a group's keys are read without visiting the table.
CREATE INDEX record_dimensions_group ON record_dimensions (dataset, dimension, value) INCLUDE (key);

INSERT INTO record_measures (dataset, key, measure, value)
SELECT r.dataset, r.key, m.key, m.value::double precision
FROM records r, json_each_text(r.record -> 'measures') AS m;

INSERT INTO record_dimensions (dataset, key, dimension, value)
SELECT r.dataset, r.key, d.key, d.value
FROM records r, jsonb_each_text(r.dimensions) AS d;
