#!/usr/bin/env bash
# DESIGN §16 bulk-import bar, end to end over HTTP: 1M CSV rows POSTed to a running
# `intake serve` on PostgreSQL (`?wait=true`: vault, decode, map, merge, latest state,
# history, outbox, all committed before the answer) against a plain `COPY` of the same
# file into one table, measured in the same run. Prints both rates and the ratio (the
# bar is >= 0.5). The server runs in its own schema, dropped afterwards.
#
#   bash scripts/bench/import_http.sh [ROWS] [DATABASE_URL]
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/bench/common.sh
source scripts/bench/common.sh
rows=${1:-1000000}
url=${2:-postgres://postgres@127.0.0.1:5432/test}
work=$(mktemp -d)
schema="intake_bench_http_$$"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
pid=
cleanup() {
  [ -n "$pid" ] && { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  psql -q "$url" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
file=$work/rows.csv

generate_rows "$file" "$rows"

echo "building intake (release)"
cargo build --release -q -p intake-app --bin intake

copy_baseline "$url" "$file" "$rows"

INTAKE_LISTEN="127.0.0.1:$port" INTAKE_DATABASE_URL="$url" INTAKE_DATABASE_SCHEMA="$schema" \
  INTAKE_LOG=warn INTAKE_IMPORT_WAIT_SECONDS=3600 INTAKE_WORKERS=1 \
  INTAKE_RATE_LIMIT_PER_SECOND=0 INTAKE_REQUEST_TIMEOUT_MS=3600000 \
  INTAKE_MAX_REQUEST_TIMEOUT_MS=3600000 \
  target/release/intake serve >"$work/server.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do curl -fs "$base/readyz" >/dev/null && break; sleep 0.2; done
contract='{"format": "csv",
  "fields": {"id": {"type": "string", "required": true},
             "group": {"type": "string", "required": true},
             "value": {"type": "number", "required": true},
             "note": {"type": "string"}},
  "key": ["id"], "dimensions": ["group"], "measures": {"value": "value"},
  "merge": "last_wins", "on_invalid": "skip_record"}'
curl -fsS -X POST "$base/v1/datasets" -H 'Content-Type: application/json' \
  -d "{\"name\": \"bench\", \"contract\": $contract}" >/dev/null

start=$(date +%s.%N)
answer=$(curl -sS -X POST "$base/v1/datasets/bench/imports?wait=true" \
  -H 'Content-Type: text/csv' --data-binary @"$file")
end=$(date +%s.%N)
grep -q '"status":"completed"' <<<"$answer" || { echo "the import did not complete: $answer" >&2; exit 1; }
http_rate=$(awk -v n="$rows" -v s="$start" -v e="$end" 'BEGIN { printf "%.0f", n / (e - s) }')
echo "HTTP import: $rows rows in $(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.2f", e - s }') s ($http_rate rows/s)"
awk -v a="$http_rate" -v b="$COPY_RATE" 'BEGIN { printf "ratio HTTP import/COPY: %.3f (bar: >= 0.50)\n", a / b }'
awk '/VmHWM/ { printf "server peak RSS: %.0f MB\n", $2 / 1024 }' "/proc/$pid/status"
