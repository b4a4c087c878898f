-- How many records each dataset holds, kept by the imports that add them (issue 17):
-- a page's `total` and a dataset's overview read this number instead of counting the
-- dataset's keys, which at a million records took longer than the page itself.

ALTER TABLE datasets ADD COLUMN records INTEGER NOT NULL DEFAULT 0;

UPDATE datasets SET records = (SELECT COUNT(*) FROM records r WHERE r.dataset = datasets.name);
