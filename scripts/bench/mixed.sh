#!/usr/bin/env bash
# Issue 17 target 4 on PostgreSQL or SQLite: 60 s of mixed load (wrk -t2 -cCONNECTIONS
# -d60s, scripts/bench/lua/mixed.lua: 50 % cached aggregates, 30 % record pages, 15 %
# single records, 5 % small imports) on a dataset of ROWS records (100,000), printing
# the request rate, latency percentiles, statuses other than 2xx and socket errors
# (bar: no errors, p99 <= 50 ms), then how many of the imports sent were processed and
# failed. The empty handler under the same wrk settings is the yardstick for the rate.
#
#   bash scripts/bench/mixed.sh [DATABASE_URL | sqlite] [ROWS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/bench/common.sh
source scripts/bench/common.sh
db=${1:-postgres://postgres@127.0.0.1:5432/test}
rows=${2:-100000}
connections=${3:-64}
seconds=${SECONDS_OF_LOAD:-60}
command -v wrk >/dev/null || { echo "wrk is required (apt-get install wrk)" >&2; exit 1; }
intake_bench "$db" mixed
empty_port=$(free_port)
echo "building the empty handler (release)"
cargo build --release -q -p intake-actix-web-api --example empty_handler
serve_bench_dataset "$rows"
curl -fsS "$base/v1/datasets/bench/aggregate?measure=value&group_by=group" >/dev/null

echo
echo "== ${seconds} s of mixed load, $([ "$db" = sqlite ] && echo SQLite || echo PostgreSQL), $rows records (wrk -t2 -c$connections)"
ROWS=$rows wrk -t2 -c"$connections" -d"${seconds}s" --latency -s scripts/bench/lua/mixed.lua "$base" | tee "$work/mixed.txt" |
  grep -E "Requests/sec|Latency|^ +(50|90|99)%|Non-2xx|Socket errors|imports sent|statuses|errors \(|requests in"
# The imports still queued finish; then each import of the load is counted by status.
for _ in $(seq 1 600); do
  waiting=$(curl -fsS "$base/v1/datasets/bench/imports?limit=1000" | python3 -c '
import json, sys
print(sum(1 for i in json.load(sys.stdin)["imports"] if i["status"] in ("received", "processing")))')
  [ "$waiting" = 0 ] && break
  sleep 0.5
done
# Every import, a page of 1,000 at a time (the first is the bulk load of the records).
python3 - "$base" <<'PY'
import collections, json, sys, urllib.request
statuses, offset = collections.Counter(), 0
while True:
    url = f"{sys.argv[1]}/v1/datasets/bench/imports?limit=1000&offset={offset}"
    page = json.load(urllib.request.urlopen(url))["imports"]
    statuses.update(i["status"] for i in page)
    offset += len(page)
    if len(page) < 1000:
        break
print("every import by status (the bulk load included):", dict(statuses))
PY
stop_all
target/release/examples/empty_handler "127.0.0.1:$empty_port" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$empty_port/" >/dev/null && break; sleep 0.1; done
empty=$(wrk -t2 -c"$connections" -d10s "http://127.0.0.1:$empty_port/" | awk '/Requests\/sec/ { print $2 }')
mixed=$(awk '/Requests\/sec/ { print $2 }' "$work/mixed.txt")
echo "empty handler (wrk -t2 -c$connections -d10s): $empty req/s"
awk -v a="$mixed" -v b="$empty" 'BEGIN { printf "ratio mixed load / empty handler: %.3f\n", a / b }'
