#!/usr/bin/env bash
# Issue 16's bulk-import bar, end to end over HTTP: ROWS CSV rows POSTed to a running
# `intake serve` (release) on PostgreSQL or SQLite with `?wait=true` (vault, decode,
# map, merge, latest state, history, all committed before the answer), against, in the
# same run:
#   - the minimum durable work written by hand: the rows loaded into a staging table
#     (PostgreSQL `COPY`; SQLite the `sqlite3` shell's `.import`), then the latest state upserted
#     into a typed table keyed by `id` and appended to a history table indexed by key,
#     in one transaction (the bar: intake >= 0.7x this);
#   - the same work by hand on Intake's own tables (the document stored as Intake
#     stores it, precomputed outside the timing; PostgreSQL: the typed table with its
#     covering index per dimension and the shared history; SQLite: history and the
#     latest state pointing into it), which tells the cost of the shape from the
#     cost of the pipeline;
#   - on PostgreSQL, a plain `COPY` into one unindexed table (what the disk allows).
# Prints the rates and ratios, the server's peak RSS and what is left on disk (SQLite:
# the database and its WAL; PostgreSQL: table and index sizes). The server runs in its
# own schema or file, dropped afterwards.
#
#   bash scripts/bench/import_http.sh [ROWS] [DATABASE_URL | sqlite]
#
# SERVER_LOG=FILE keeps the server's log (with INTAKE_LOG="warn,sqlx::query=debug"
# INTAKE_LOG_FORMAT=json, each statement's time).
# NOTE_BYTES=N pads each row's note to N more bytes: `NOTE_BYTES=300 … 3200000 sqlite`
# imports a 1.1 GB document (issue 16's memory bar: peak RSS under 200 MB).
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/bench/common.sh
source scripts/bench/common.sh
rows=${1:-1000000}
db=${2:-postgres://postgres@127.0.0.1:5432/test}
work=$(mktemp -d)
schema="intake_bench_http_$$"
port=$(free_port)
base="http://127.0.0.1:$port"
pid=
cleanup() {
  [ -n "$pid" ] && { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  [ "$db" = sqlite ] || psql -q "$db" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
file=$work/rows.csv

# rate SECONDS: rows per second.
rate() { awk -v n="$rows" -v t="$1" 'BEGIN { printf "%.0f", n / t }'; }
# since START: seconds from START (date +%s.%N) to now.
since() { awk -v s="$1" -v e="$(date +%s.%N)" 'BEGIN { printf "%.2f", e - s }'; }

generate_rows "$file" "$rows" "${NOTE_BYTES:-0}"

echo "building intake (release)"
# INTAKE_BIN: another build of `intake` to measure (for A/B runs); built here otherwise.
intake=${INTAKE_BIN:-target/release/intake}
[ -n "${INTAKE_BIN:-}" ] || cargo build --release -q -p intake-app --bin intake

echo "hand-written minimum: staging, then upsert latest state and append history, one transaction"
start=$(date +%s.%N)
if [ "$db" = sqlite ]; then
  sqlite3 "$work/baseline.db" >/dev/null <<SQL
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE latest (id TEXT PRIMARY KEY, grp TEXT, value REAL, note TEXT) WITHOUT ROWID;
CREATE TABLE history (seq INTEGER PRIMARY KEY, id TEXT, grp TEXT, value REAL, note TEXT);
CREATE INDEX history_id ON history (id);
CREATE TEMP TABLE staging (id TEXT, grp TEXT, value REAL, note TEXT);
.mode csv
.import --skip 1 '$file' staging
BEGIN;
INSERT INTO latest SELECT * FROM staging WHERE true ON CONFLICT (id) DO UPDATE
  SET grp = excluded.grp, value = excluded.value, note = excluded.note;
INSERT INTO history (id, grp, value, note) SELECT * FROM staging;
COMMIT;
SQL
else
  psql -q "$db" -v ON_ERROR_STOP=1 <<SQL
CREATE SCHEMA ${schema}_hand;
SET search_path TO ${schema}_hand;
CREATE TABLE latest (id text PRIMARY KEY, grp text, value float8, note text);
CREATE TABLE history (seq bigserial PRIMARY KEY, id text, grp text, value float8, note text);
CREATE INDEX history_id ON history (id);
BEGIN;
CREATE TEMP TABLE staging (id text, grp text, value float8, note text) ON COMMIT DROP;
\copy staging FROM '$file' WITH (FORMAT csv, HEADER true)
INSERT INTO latest SELECT * FROM staging ON CONFLICT (id) DO UPDATE
  SET grp = excluded.grp, value = excluded.value, note = excluded.note;
INSERT INTO history (id, grp, value, note) SELECT * FROM staging;
COMMIT;
SQL
fi
hand_s=$(since "$start")
hand_rate=$(rate "$hand_s")
echo "  $rows rows in $hand_s s ($hand_rate rows/s)"
[ "$db" = sqlite ] || psql -q "$db" -c "DROP SCHEMA ${schema}_hand CASCADE" 2>/dev/null

# Each row with its document as Intake stores it (ADR 22), outside the timing.
shaped=$work/shaped.csv
awk -F, 'NR > 1 { printf "%s,%s,%s,%s,\"{\"\"k\"\":[\"\"%s\"\"],\"\"d\"\":{\"\"group\"\":\"\"%s\"\"},\"\"m\"\":{\"\"value\"\":%s},\"\"a\"\":{\"\"id\"\":\"\"%s\"\",\"\"note\"\":\"\"%s\"\"}}\"\n", $1, $2, $3, $4, $1, $2, $3, $1, $4 }' "$file" > "$shaped"
echo "hand-written on Intake's own tables: staging, then latest state and history as Intake writes them"
start=$(date +%s.%N)
if [ "$db" = sqlite ]; then
  sqlite3 "$work/shape.db" >/dev/null <<SQL
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE record_history (seq INTEGER PRIMARY KEY, dataset TEXT NOT NULL, key TEXT NOT NULL,
  kind TEXT NOT NULL, record TEXT NOT NULL, import_seq INTEGER NOT NULL, at_us INTEGER NOT NULL);
CREATE INDEX record_history_key ON record_history (dataset, key, seq);
CREATE TABLE records (dataset TEXT NOT NULL, key TEXT NOT NULL, seq INTEGER NOT NULL,
  PRIMARY KEY (dataset, key)) WITHOUT ROWID;
CREATE TEMP TABLE staging (id TEXT, grp TEXT, value REAL, note TEXT, doc TEXT);
.mode csv
.import '$shaped' staging
BEGIN;
INSERT INTO record_history (dataset, key, kind, record, import_seq, at_us)
  SELECT 'bench', id, 'record.created', doc, 1, 1796424550569649 FROM staging;
INSERT INTO records (dataset, key, seq) SELECT dataset, key, seq FROM record_history WHERE true
  ON CONFLICT (dataset, key) DO UPDATE SET seq = excluded.seq;
COMMIT;
SQL
else
  psql -q "$db" -v ON_ERROR_STOP=1 <<SQL
CREATE SCHEMA ${schema}_shape;
SET search_path TO ${schema}_shape;
CREATE TABLE records_1 (key text COLLATE "C" PRIMARY KEY, record json NOT NULL,
  import_id text NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(),
  d1 text COLLATE "C", m1 float8);
CREATE INDEX records_1_d1 ON records_1 (d1) INCLUDE (m1);
CREATE TABLE record_history (seq bigserial PRIMARY KEY, dataset text NOT NULL, key text NOT NULL,
  kind text NOT NULL, record json NOT NULL, import_id text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX record_history_key ON record_history (dataset, key, seq);
BEGIN;
CREATE TEMP TABLE staging (id text, grp text, value float8, note text, doc text) ON COMMIT DROP;
\copy staging FROM '$shaped' WITH (FORMAT csv)
INSERT INTO records_1 (key, record, import_id, d1, m1)
  SELECT id, doc::json, '01a2432d79057418b279b09e89310e57', grp, value FROM staging
  ON CONFLICT (key) DO UPDATE SET record = excluded.record, import_id = excluded.import_id,
    updated_at = now(), d1 = excluded.d1, m1 = excluded.m1;
INSERT INTO record_history (dataset, key, kind, record, import_id)
  SELECT 'bench', id, 'record.created', doc::json, '01a2432d79057418b279b09e89310e57' FROM staging;
COMMIT;
SQL
fi
shape_s=$(since "$start")
shape_rate=$(rate "$shape_s")
echo "  $rows rows in $shape_s s ($shape_rate rows/s)"
[ "$db" = sqlite ] || psql -q "$db" -c "DROP SCHEMA ${schema}_shape CASCADE" 2>/dev/null

if [ "$db" != sqlite ]; then
  copy_baseline "$db" "$file" "$rows"
fi

if [ "$db" = sqlite ]; then
  db_env=(INTAKE_DATABASE_URL="sqlite://$work/intake.db")
else
  db_env=(INTAKE_DATABASE_URL="$db" INTAKE_DATABASE_SCHEMA="$schema")
fi
env "${db_env[@]}" INTAKE_LISTEN="127.0.0.1:$port" \
  INTAKE_LOG="${INTAKE_LOG:-warn}" INTAKE_IMPORT_WAIT_SECONDS=3600 INTAKE_WORKERS=1 \
  INTAKE_RATE_LIMIT_PER_SECOND=0 INTAKE_REQUEST_TIMEOUT_MS=3600000 \
  INTAKE_MAX_REQUEST_TIMEOUT_MS=3600000 \
  "$intake" serve >"${SERVER_LOG:-$work/server.log}" 2>&1 &
pid=$!
for _ in $(seq 1 100); do curl -fs "$base/readyz" >/dev/null && break; sleep 0.2; done
create_bench_dataset "$base"

start=$(date +%s.%N)
answer=$(curl -sS -X POST "$base/v1/datasets/bench/imports?wait=true" \
  -H 'Content-Type: text/csv' --data-binary @"$file")
http_s=$(since "$start")
grep -q '"status":"completed"' <<<"$answer" || { echo "the import did not complete: $answer" >&2; exit 1; }
http_rate=$(rate "$http_s")
echo "intake over HTTP: $rows rows in $http_s s ($http_rate rows/s)"
awk -v a="$http_rate" -v b="$hand_rate" 'BEGIN { printf "  ratio to the hand-written minimum: %.2f (bar: >= 0.70)\n", a / b }'
awk -v a="$http_rate" -v b="$shape_rate" 'BEGIN { printf "  ratio to the same work by hand on Intake'"'"'s own tables: %.2f\n", a / b }'
if [ "$db" != sqlite ]; then
  awk -v a="$http_rate" -v b="$COPY_RATE" 'BEGIN { printf "  ratio to a plain COPY: %.3f\n", a / b }'
fi
awk '/VmHWM/ { printf "  server peak RSS: %.0f MB\n", $2 / 1024 }' "/proc/$pid/status"
csv_bytes=$(stat -c %s "$file")
if [ "$db" = sqlite ]; then
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
  sqlite3 "$work/intake.db" "PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
  disk=$(du -cb "$work"/intake.db* | tail -n 1 | cut -f1)
  awk -v d="$disk" -v c="$csv_bytes" 'BEGIN { printf "  on disk, WAL checkpointed: %.0f MB, %.1fx the CSV (bar: <= 10x)\n", d / 1e6, d / c }'
else
  psql -qAt "$db" -F ' ' -c "SELECT relname, pg_size_pretty(pg_table_size(c.oid)),
      pg_size_pretty(pg_indexes_size(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = '$schema' AND c.relkind = 'r' AND pg_total_relation_size(c.oid) > 1000000
    ORDER BY pg_total_relation_size(c.oid) DESC" | awk '{ printf "  %s: table %s %s, indexes %s %s\n", $1, $2, $3, $4, $5 }'
fi
