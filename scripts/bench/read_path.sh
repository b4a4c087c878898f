#!/usr/bin/env bash
# Issue 17's read path on PostgreSQL or SQLite, in one run: requests/s of cached GETs
# (wrk -t2 -c64 -d10s) against an empty actix-web handler measured by the same wrk in
# the same run (bar: a cached aggregate at >= 0.40 of it). The dataset holds ROWS
# records (20 groups), imported over HTTP first.
#
#   bash scripts/bench/read_path.sh [DATABASE_URL | sqlite] [ROWS]
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/bench/common.sh
source scripts/bench/common.sh
db=${1:-postgres://postgres@127.0.0.1:5432/test}
rows=${2:-100000}
command -v wrk >/dev/null || { echo "wrk is required (apt-get install wrk)" >&2; exit 1; }
intake_bench "$db" reads
empty_port=$(free_port)
echo "building the empty handler (release)"
cargo build --release -q -p intake-actix-web-api --example empty_handler
serve_bench_dataset "$rows"

# measure NAME PATH: wrk against PATH of intake; prints and keeps req/s in $rate.
measure() {
  curl -fsS "$base$2" >/dev/null # fills the cache
  wrk -t2 -c64 -d10s --latency "$base$2" >"$work/$1.txt"
  rate=$(awk '/Requests\/sec/ { print $2 }' "$work/$1.txt")
  echo "$1: $rate req/s (p99 $(awk '/ 99%/ { print $2 }' "$work/$1.txt"), non-2xx $(awk '/Non-2xx/ { print $5 }' "$work/$1.txt"))"
}

echo
echo "== cached GETs (wrk -t2 -c64 -d10s), $([ "$db" = sqlite ] && echo SQLite || echo PostgreSQL), $rows records"
measure "cached aggregate" "/v1/datasets/bench/aggregate?measure=value&group_by=group"
aggregate=$rate
stop_all
target/release/examples/empty_handler "127.0.0.1:$empty_port" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$empty_port/" >/dev/null && break; sleep 0.1; done
empty=$(wrk -t2 -c64 -d10s --latency "http://127.0.0.1:$empty_port/" | awk '/Requests\/sec/ { print $2 }')
echo "empty handler: $empty req/s"
awk -v a="$aggregate" -v b="$empty" 'BEGIN { printf "ratio cached aggregate / empty handler: %.3f (bar: >= 0.40)\n", a / b }'
