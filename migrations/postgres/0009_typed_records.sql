-- A typed table per dataset (ADR 22): each dataset's latest state moves from
-- `records` (plus a `record_facts` row per dimension and measure and a
-- `record_dimensions` row per dimension) to `records_<id>`: the key (bytewise
-- collation, so pages read the primary key in order), the record, and a column per
-- dimension (`d1`, … text) and measure (`m1`, … float8) that any contract version
-- declared or any stored record holds, `dataset_fields` naming them. Each dimension
-- is indexed with every measure included (up to 31: an index holds 32 columns).
-- History stays one shared table.

ALTER TABLE datasets ADD COLUMN id bigserial UNIQUE;

CREATE TABLE dataset_fields (
    dataset text NOT NULL REFERENCES datasets (name),
    kind    text NOT NULL CHECK (kind IN ('dimension', 'measure')),
    name    text NOT NULL,
    col     text NOT NULL,
    PRIMARY KEY (dataset, kind, name)
);

DO $$
DECLARE
    ds record;
    f record;
    t text;
    n integer;
    cols text;
    exprs text;
    measures text;
BEGIN
    FOR ds IN SELECT name, id FROM datasets ORDER BY id LOOP
        t := 'records_' || ds.id;
        EXECUTE format('CREATE TABLE %I (key text COLLATE "C" PRIMARY KEY, record json NOT NULL, '
            'import_id text NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())', t);
        cols := '';
        exprs := '';
        n := 0;
        FOR f IN
            SELECT name FROM (
                SELECT jsonb_array_elements_text(body -> 'dimensions') AS name
                FROM contracts WHERE dataset = ds.name
                UNION
                SELECT jsonb_object_keys(dimensions) FROM records WHERE dataset = ds.name
            ) names ORDER BY name
        LOOP
            n := n + 1;
            INSERT INTO dataset_fields VALUES (ds.name, 'dimension', f.name, 'd' || n);
            EXECUTE format('ALTER TABLE %I ADD COLUMN %I text COLLATE "C"', t, 'd' || n);
            cols := cols || format(', %I', 'd' || n);
            exprs := exprs || format(', dimensions ->> %L', f.name);
        END LOOP;
        n := 0;
        measures := '';
        FOR f IN
            SELECT name FROM (
                SELECT jsonb_object_keys(body -> 'measures') AS name
                FROM contracts WHERE dataset = ds.name
                UNION
                SELECT json_object_keys(record -> 'measures') FROM records WHERE dataset = ds.name
            ) names ORDER BY name
        LOOP
            n := n + 1;
            INSERT INTO dataset_fields VALUES (ds.name, 'measure', f.name, 'm' || n);
            EXECUTE format('ALTER TABLE %I ADD COLUMN %I float8', t, 'm' || n);
            cols := cols || format(', %I', 'm' || n);
            exprs := exprs || format(', (record -> ''measures'' ->> %L)::float8', f.name);
            -- An index holds 32 columns: the dimension and up to 31 measures.
            IF n <= 31 THEN
                measures := measures || CASE WHEN n > 1 THEN ', ' ELSE '' END || format('%I', 'm' || n);
            END IF;
        END LOOP;
        EXECUTE format('INSERT INTO %I (key, record, import_id, updated_at%s) '
            'SELECT key, record, import_id, updated_at%s FROM records WHERE dataset = $1', t, cols, exprs)
            USING ds.name;
        FOR f IN SELECT col FROM dataset_fields WHERE dataset = ds.name AND kind = 'dimension' LOOP
            EXECUTE format('CREATE INDEX %I ON %I (%I)%s', t || '_' || f.col, t, f.col,
                CASE WHEN measures = '' THEN '' ELSE ' INCLUDE (' || measures || ')' END);
        END LOOP;
    END LOOP;
END
$$;

DROP TABLE record_facts;
DROP TABLE record_dimensions;
DROP TABLE records;
