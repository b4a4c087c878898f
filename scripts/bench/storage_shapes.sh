#!/usr/bin/env bash
# The storage shapes of issue 16, measured by hand-written SQL in one run on
# PostgreSQL (ADR 22 records the choice): ROWS CSV rows (`id,group,value,note`, 20
# groups) loaded from a staging table in one transaction into
#   - today's shape: `records` (the document as json, the dimensions as jsonb under a
#     GIN index), `record_history`, two `record_facts` rows per record (the whole
#     dataset and the group) and a `record_dimensions` row, with today's indexes;
#   - a typed table per dataset: the key as primary key, a column per dimension and
#     measure, the document beside them, an index per dimension including the
#     measures, and history indexed by key;
# then, for each, the size on disk and the aggregate the API serves (count, mean,
# population standard deviation, min, max, quartiles of `value` by `group`, best of 3).
#
# With `sqlite` instead of a URL, the same on a SQLite file, where today's shape has no
# fact rows (analytics run in process): `records` and `record_history` with their JSON
# documents, against a typed table with a compact document, an index (group, value)
# and history referring to its import by number; the aggregate is count, mean, min and
# max by group in SQL (the quartiles are computed in process there).
#
#   bash scripts/bench/storage_shapes.sh [ROWS] [DATABASE_URL | sqlite]
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/bench/common.sh
source scripts/bench/common.sh
rows=${1:-1000000}
url=${2:-postgres://postgres@127.0.0.1:5432/test}
schema="intake_bench_shapes_$$"
work=$(mktemp -d)
cleanup() {
  psql -q "$url" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
generate_rows "$work/rows.csv" "$rows"

if [ "$url" = sqlite ]; then
  # lite LABEL DB SQL: runs SQL on DB (after loading the staging table) and prints the time.
  lite() {
    local start end
    start=$(date +%s.%N)
    sqlite3 "$2" >/dev/null <<SQL
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
$3
SQL
    end=$(date +%s.%N)
    awk -v l="$1" -v n="$rows" -v s="$start" -v e="$end" \
      'BEGIN { printf "  %-34s %6.2f s  %8.0f rows/s\n", l, e - s, n / (e - s) }'
  }
  staging=".mode csv
CREATE TEMP TABLE staging (id TEXT, grp TEXT, value REAL, note TEXT);
.import --skip 1 '$work/rows.csv' staging"
  doc="json_object('key', json_array(id), 'version', NULL, 'dimensions', json_object('group', grp),
    'measures', json_object('value', value), 'attributes', json_object('id', json_object('text', id),
    'note', json_object('text', note)))"
  echo "loading $rows rows in one transaction each (staging loaded by the sqlite3 shell, timed too)"
  lite "today's shape (records, history)" "$work/today.db" "
CREATE TABLE records (dataset TEXT NOT NULL, key TEXT NOT NULL, record TEXT NOT NULL,
  dimensions TEXT NOT NULL, import_id TEXT NOT NULL, updated_at TEXT NOT NULL,
  PRIMARY KEY (dataset, key)) WITHOUT ROWID;
CREATE TABLE record_history (seq INTEGER PRIMARY KEY AUTOINCREMENT, dataset TEXT NOT NULL,
  key TEXT NOT NULL, kind TEXT NOT NULL, record TEXT NOT NULL, import_id TEXT NOT NULL,
  created_at TEXT NOT NULL);
CREATE INDEX record_history_key ON record_history (dataset, key, seq);
$staging
BEGIN;
INSERT INTO records SELECT 'bench', id, $doc, json_object('group', grp),
  '0192f1c4-5b7e-7c3a-9d2e-3f4a5b6c7d8e', strftime('%Y-%m-%dT%H:%M:%fZ') FROM staging;
INSERT INTO record_history (dataset, key, kind, record, import_id, created_at)
  SELECT 'bench', id, 'created', $doc, '0192f1c4-5b7e-7c3a-9d2e-3f4a5b6c7d8e',
  strftime('%Y-%m-%dT%H:%M:%fZ') FROM staging;
COMMIT;"
  lite "typed, compact document" "$work/typed.db" "
CREATE TABLE typed (key TEXT PRIMARY KEY, version INTEGER, grp TEXT, value REAL,
  doc TEXT NOT NULL, import INTEGER NOT NULL, updated_at INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX typed_group ON typed (grp, value);
CREATE TABLE typed_history (seq INTEGER PRIMARY KEY, key TEXT NOT NULL, kind INTEGER NOT NULL,
  doc TEXT NOT NULL, import INTEGER NOT NULL, created_at INTEGER NOT NULL);
CREATE INDEX typed_history_key ON typed_history (key, seq);
$staging
BEGIN;
INSERT INTO typed SELECT id, NULL, grp, value, json_array(note), 1, unixepoch() FROM staging;
INSERT INTO typed_history (key, kind, doc, import, created_at)
  SELECT id, 1, json_array(grp, value, note), 1, unixepoch() FROM staging;
COMMIT;"
  echo "on disk (WAL checkpointed)"
  for db in today typed; do
    sqlite3 "$work/$db.db" "PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
    printf "  %-34s %6.0f MB\n" "$db" "$(du -cb "$work/$db".db* | tail -n 1 | awk '{ print $1 / 1e6 }')"
  done
  echo "count, mean, min, max of value by group (best of 3)"
  for q in "today's shape|$work/today.db|SELECT json_extract(dimensions, '\$.group') g, count(*), avg(json_extract(record, '\$.measures.value')), min(json_extract(record, '\$.measures.value')), max(json_extract(record, '\$.measures.value')) FROM records WHERE dataset = 'bench' GROUP BY g" \
           "typed, covering index|$work/typed.db|SELECT grp, count(*), avg(value), min(value), max(value) FROM typed GROUP BY grp"; do
    IFS='|' read -r label file query <<<"$q"
    best_ms=$(for _ in 1 2 3; do
      s=$(date +%s%N); sqlite3 "$file" "$query" >/dev/null; e=$(date +%s%N); echo $(( (e - s) / 1000000 ))
    done | sort -n | head -n 1)
    printf "  %-34s %8s ms\n" "$label" "$best_ms"
  done
  exit 0
fi

# timed LABEL SQL: runs SQL in the schema and prints how long it took.
timed() {
  local start end
  start=$(date +%s.%N)
  psql -q "$url" -v ON_ERROR_STOP=1 -c "SET search_path TO $schema" -c "$2" >/dev/null
  end=$(date +%s.%N)
  awk -v l="$1" -v n="$rows" -v s="$start" -v e="$end" \
    'BEGIN { printf "  %-34s %6.2f s  %8.0f rows/s\n", l, e - s, n / (e - s) }'
}

# best LABEL SQL: the best of three runs of a query, in ms.
best() {
  local ms
  ms=$(psql -qAt "$url" -c "SET search_path TO $schema" -c '\timing on' \
         -c "$2" -c "$2" -c "$2" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | sort -n | head -n 1)
  printf "  %-34s %8.1f ms\n" "$1" "$ms"
}

size() {
  psql -qAt "$url" -c "SELECT pg_size_pretty(SUM(pg_total_relation_size(c.oid)))
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = '$schema' AND c.relkind = 'r' AND c.relname = ANY('{$1}')"
}

psql -q "$url" -v ON_ERROR_STOP=1 <<SQL
CREATE SCHEMA $schema;
SET search_path TO $schema;
CREATE UNLOGGED TABLE staging (id text, grp text, value float8, note text);
\copy staging FROM '$work/rows.csv' WITH (FORMAT csv, HEADER true)
CREATE TABLE records (dataset text NOT NULL, key text NOT NULL, record json NOT NULL,
  dimensions jsonb NOT NULL, import_id text NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (dataset, key));
CREATE INDEX records_dimensions ON records USING gin (dimensions jsonb_path_ops);
CREATE TABLE record_history (seq bigserial PRIMARY KEY, dataset text NOT NULL, key text NOT NULL,
  kind text NOT NULL, record json NOT NULL, import_id text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX record_history_key ON record_history (dataset, key, seq);
CREATE TABLE record_facts (dataset text NOT NULL, key text NOT NULL, dimension text NOT NULL,
  dim_value text NOT NULL, measure text NOT NULL, value double precision NOT NULL);
CREATE INDEX record_facts_group ON record_facts (dataset, dimension, measure, dim_value) INCLUDE (value);
CREATE INDEX record_facts_key ON record_facts (dataset, key);
CREATE TABLE record_dimensions (dataset text NOT NULL, key text NOT NULL, dimension text NOT NULL,
  value text NOT NULL, PRIMARY KEY (dataset, key, dimension));
CREATE INDEX record_dimensions_group ON record_dimensions (dataset, dimension, value) INCLUDE (key);
CREATE TABLE typed (key text PRIMARY KEY, version bigint, "group" text, value float8,
  record json NOT NULL, import_id text NOT NULL, updated_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX typed_group ON typed ("group") INCLUDE (value);
CREATE TABLE typed_history (seq bigserial PRIMARY KEY, key text NOT NULL, kind text NOT NULL,
  record json NOT NULL, import_id text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX typed_history_key ON typed_history (key, seq);
SQL

doc="json_build_object('key', json_build_array(id), 'attributes', json_build_object('id', id, 'group', grp, 'value', value, 'note', note), 'dimensions', json_build_object('group', grp), 'measures', json_build_object('value', value))"
echo "loading $rows rows in one transaction each"
timed "today's shape (6 rows a record)" "BEGIN;
  INSERT INTO records (dataset, key, record, dimensions, import_id)
    SELECT 'bench', id, $doc, jsonb_build_object('group', grp), 'imp' FROM staging;
  INSERT INTO record_history (dataset, key, kind, record, import_id)
    SELECT 'bench', id, 'created', $doc, 'imp' FROM staging;
  INSERT INTO record_facts SELECT 'bench', id, '', '', 'value', value FROM staging;
  INSERT INTO record_facts SELECT 'bench', id, 'group', grp, 'value', value FROM staging;
  INSERT INTO record_dimensions SELECT 'bench', id, 'group', grp FROM staging;
  COMMIT;"
timed "typed table per dataset" "BEGIN;
  INSERT INTO typed (key, \"group\", value, record, import_id)
    SELECT id, grp, value, $doc, 'imp' FROM staging;
  INSERT INTO typed_history (key, kind, record, import_id)
    SELECT id, 'created', $doc, 'imp' FROM staging;
  COMMIT;"
psql -q "$url" -c "SET search_path TO $schema" -c "VACUUM ANALYZE" >/dev/null

echo "on disk"
echo "  today's shape                      $(size records,record_history,record_facts,record_dimensions)"
echo "  typed table per dataset            $(size typed,typed_history)"

stats='count(*), avg(value), stddev_pop(value), min(value), max(value),
  percentile_cont(ARRAY[0.25, 0.5, 0.75]) WITHIN GROUP (ORDER BY value)'
echo "aggregate of value by group (best of 3)"
best "today's shape (facts)" "SELECT dim_value, $stats FROM record_facts
  WHERE dataset = 'bench' AND dimension = 'group' AND measure = 'value' GROUP BY dim_value"
best "typed, covering index" "SELECT \"group\", $stats FROM typed GROUP BY \"group\""
best "one group, today's shape" "SELECT $stats FROM record_facts
  WHERE dataset = 'bench' AND dimension = 'group' AND measure = 'value' AND dim_value = 'g7'"
best "one group, typed" "SELECT $stats FROM typed WHERE \"group\" = 'g7'"
