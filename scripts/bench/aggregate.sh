#!/usr/bin/env bash
# DESIGN §16 analytics bars, in one run on PostgreSQL:
#   - an uncached aggregate over 1M records through the API, against the hand-written
#     SQL aggregate of the same rows in one plain table with a covering index (psql),
#     bar: within 1.2x (issue 17); the same SQL without the index is a second line;
#   - requests/s of a cached aggregate GET, against an empty actix-web handler on the
#     same machine (wrk -t2 -c64 -d10s), bar: at least 40 %.
# Also prints the engine's own SQL run directly (psql) and its plan, to show where the
# time goes. Loads the records with an HTTP import into a schema dropped afterwards.
# The server runs with the rate limiter off (wrk is one caller; set
# INTAKE_RATE_LIMIT_PER_SECOND to measure with it) and deadlines of an hour (the
# import of 1M rows outlasts the default minute).
#
#   bash scripts/bench/aggregate.sh [ROWS] [DATABASE_URL]
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/bench/common.sh
source scripts/bench/common.sh
rows=${1:-1000000}
url=${2:-postgres://postgres@127.0.0.1:5432/test}
command -v wrk >/dev/null || { echo "wrk is required (apt-get install wrk)" >&2; exit 1; }
work=$(mktemp -d)
schema="intake_bench_aggregate_$$"
table="aggregate_baseline_$$"
port=$(free_port)
empty_port=$(free_port)
base="http://127.0.0.1:$port"
pids=()
stop_all() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; pids=(); }
cleanup() {
  stop_all
  psql -q "$url" -c "DROP SCHEMA IF EXISTS $schema CASCADE" -c "DROP TABLE IF EXISTS $table" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
file=$work/rows.csv
generate_rows "$file" "$rows"

echo "building intake and the empty handler (release)"
cargo build --release -q -p intake-app --bin intake
cargo build --release -q -p intake-actix-web-api --example empty_handler

# serve CACHE_BYTES: starts intake on the bench schema.
serve() {
  INTAKE_LISTEN="127.0.0.1:$port" INTAKE_DATABASE_URL="$url" INTAKE_DATABASE_SCHEMA="$schema" \
    INTAKE_LOG=warn INTAKE_IMPORT_WAIT_SECONDS=3600 INTAKE_CACHE_BYTES="$1" \
    INTAKE_RATE_LIMIT_PER_SECOND="${INTAKE_RATE_LIMIT_PER_SECOND:-0}" \
    INTAKE_REQUEST_TIMEOUT_MS=3600000 INTAKE_MAX_REQUEST_TIMEOUT_MS=3600000 \
    target/release/intake serve >>"$work/server.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do curl -fs "$base/readyz" >/dev/null && return 0; sleep 0.2; done
  echo "intake did not start:" >&2; cat "$work/server.log" >&2; exit 1
}

# best_of N CMD...: runs CMD N times, prints the fastest wall time in ms.
best_of() {
  local n=$1 best= start end ms
  shift
  for _ in $(seq 1 "$n"); do
    start=$(date +%s%N); "$@" >/dev/null; end=$(date +%s%N)
    ms=$(( (end - start) / 1000000 ))
    if [ -z "$best" ] || [ "$ms" -lt "$best" ]; then best=$ms; fi
  done
  echo "$best"
}

serve 0
create_bench_dataset "$base"
echo "importing $rows records over HTTP"
import_bench_rows "$base" "$file"
typed=$(psql -qtA "$url" -c "SELECT 'records_' || id FROM $schema.datasets WHERE name = 'bench'")
psql -q "$url" -c "VACUUM ANALYZE $schema.$typed"

echo
echo "== uncached aggregate, $rows records, 20 groups"
psql -q "$url" -c "CREATE TABLE $table (id text, grp text, value float8, note text)"
psql -q "$url" -c "\\copy $table FROM '$file' WITH (FORMAT csv, HEADER true)"
psql -q "$url" -c "VACUUM ANALYZE $table"
baseline_sql="SELECT grp, count(value), sum(value), avg(value), stddev_pop(value), min(value), max(value),
  percentile_cont(ARRAY[0.25, 0.5, 0.75]) WITHIN GROUP (ORDER BY value) FROM $table GROUP BY grp ORDER BY grp"
dimension=$(psql -qtA "$url" -c "SELECT col FROM $schema.dataset_fields WHERE dataset = 'bench' AND name = 'group'")
measure=$(psql -qtA "$url" -c "SELECT col FROM $schema.dataset_fields WHERE dataset = 'bench' AND name = 'value'")
engine_sql="SET search_path TO $schema;
SELECT $dimension AS grp, count(*), count($measure), sum($measure), avg($measure), stddev_pop($measure),
  min($measure), max($measure),
  percentile_cont(ARRAY[0.25, 0.5, 0.75]::float8[]) WITHIN GROUP (ORDER BY $measure)
FROM $typed WHERE $dimension IS NOT NULL GROUP BY 1"
unindexed_ms=$(best_of 5 psql -q "$url" -c "$baseline_sql")
psql -q "$url" -c "CREATE INDEX ON $table (grp) INCLUDE (value)" -c "VACUUM ANALYZE $table"
sql_ms=$(best_of 5 psql -q "$url" -c "$baseline_sql")
engine_ms=$(best_of 5 psql -q "$url" -c "$engine_sql")
api_ms=$(best_of 5 curl -fsS "$base/v1/datasets/bench/aggregate?measure=value&group_by=group")
echo "hand-written SQL on one plain table with a covering (grp) INCLUDE (value) index (psql): $sql_ms ms (best of 5)"
echo "the same SQL before the index: $unindexed_ms ms (best of 5)"
echo "the engine's statement on the dataset's typed table (psql): $engine_ms ms (best of 5)"
echo "API, cache off: $api_ms ms (best of 5)"
awk -v a="$api_ms" -v b="$sql_ms" 'BEGIN { printf "ratio API uncached / hand-written SQL with the index: %.2f (bar: <= 1.20)\n", a / b }'
awk -v a="$api_ms" -v b="$unindexed_ms" 'BEGIN { printf "ratio API uncached / hand-written SQL without it: %.2f\n", a / b }'
awk -v a="$api_ms" -v b="$engine_ms" 'BEGIN { printf "ratio API uncached / engine SQL: %.2f\n", a / b }'
echo "the engine's plan:"
plan_sql=${engine_sql#*;}
psql -q "$url" -c "SET search_path TO $schema" -c "EXPLAIN ${plan_sql%%;*}"
stop_all

echo
echo "== cached aggregate GET against an empty handler (wrk -t2 -c64 -d10s)"
serve $((64 << 20))
path="/v1/datasets/bench/aggregate?measure=value&group_by=group"
curl -fsS "$base$path" >/dev/null # fills the cache
cached=$(wrk -t2 -c64 -d10s --latency "$base$path" | tee "$work/cached.txt" | awk '/Requests\/sec/ { print $2 }')
stop_all
target/release/examples/empty_handler "127.0.0.1:$empty_port" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$empty_port/" >/dev/null && break; sleep 0.1; done
empty=$(wrk -t2 -c64 -d10s --latency "http://127.0.0.1:$empty_port/" | awk '/Requests\/sec/ { print $2 }')
echo "cached aggregate GET: $cached req/s ($(awk '/99%/ { print $2 }' "$work/cached.txt") p99)"
echo "empty handler: $empty req/s"
awk -v a="$cached" -v b="$empty" 'BEGIN { printf "ratio cached GET / empty handler: %.2f (bar: >= 0.40)\n", a / b }'
