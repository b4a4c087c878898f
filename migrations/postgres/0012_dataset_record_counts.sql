-- How many records each dataset holds, kept by the imports that add them (issue 17):
-- a page's `total` and a dataset's overview read this number instead of counting the
-- dataset's typed table, which at a million records took longer than the page itself.
-- An import adds the rows its upserts inserted, in its own transaction.

ALTER TABLE datasets ADD COLUMN records bigint NOT NULL DEFAULT 0;

DO $$
DECLARE
    ds record;
    n bigint;
BEGIN
    FOR ds IN SELECT name, id FROM datasets LOOP
        EXECUTE format('SELECT count(*) FROM %I', 'records_' || ds.id) INTO n;
        UPDATE datasets SET records = n WHERE name = ds.name;
    END LOOP;
END
$$;
