#!/usr/bin/env bash
# Issue 14's delivery bars, in one run, on PostgreSQL or SQLite:
#   - deliveries/s of `intake serve` (release) to a local receiver, beside the receiver's
#     own request rate for the same POST measured by wrk (the yardstick): N events are
#     queued while the subscription is paused, then it is resumed and timed until the
#     receiver has them all; bar: at least 5,000 deliveries/s;
#   - the latency from an event's commit to its arrival while the workers are idle:
#     ONE single-row imports one at a time, the receiver timing each arrival against
#     the event's timestamp; bar: p99 under 50 ms.
#
#   bash scripts/bench/deliveries.sh [EVENTS] [DATABASE_URL | sqlite] [CONCURRENCY]
#
# CONCURRENCY (64) is `delivery_concurrency`, the requests in flight to the one
# subscription, and wrk's connection count for the yardstick. WORKERS=N sets
# `delivery_workers` (4); ONE=N the number of single-row imports (200); INTAKE_LOG the
# server's filter; KEEP=1 copies the server's log to /tmp/bench-server.log.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/bench/common.sh
source scripts/bench/common.sh
events=${1:-50000}
db=${2:-postgres://postgres@127.0.0.1:5432/test}
concurrency=${3:-64}
delivery_workers=${WORKERS:-4}
singles=${ONE:-200}
command -v wrk >/dev/null || { echo "wrk is required (apt-get install wrk)" >&2; exit 1; }
work=$(mktemp -d)
schema="intake_bench_deliveries_$$"
port=$(free_port)
receiver_port=$(free_port)
base="http://127.0.0.1:$port"
receiver="http://127.0.0.1:$receiver_port"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  [ "$db" = sqlite ] || psql -q "$db" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
  [ -n "${KEEP:-}" ] && cp "$work/server.log" /tmp/bench-server.log; rm -rf "$work"
}
trap cleanup EXIT

echo "building intake and the receiver (release)"
cargo build --release -q -p intake-app --bin intake --example webhook_receiver
start_receiver "$receiver_port" "$work/receiver.log"
pids+=("$RECEIVER_PID")

body='{"type":"record.created","timestamp":"2026-12-03T10:00:00.000Z","data":{"dataset":"customers","import":"01a23af8bc017631b4d7350bc9c5ffb7","key":"c-000001","record":{"key":["c-000001"],"fields":{"id":"c-000001","first_name":"Gen","last_name":"Erated","email":"g1@example.com"}},"sequence":1}}'
cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["webhook-id"] = "01a23af8bc017631b4d7350bc9c5ffb7"
wrk.headers["webhook-timestamp"] = "1796292000"
wrk.headers["webhook-signature"] = "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="
LUA
echo "the receiver alone (wrk -t1 -c$concurrency -d5s, POST /hook)"
baseline=$(wrk -t1 -c"$concurrency" -d5s -s "$work/post.lua" "$receiver/hook" | awk '/Requests\/sec/ { printf "%.0f", $2 }')
echo "  $baseline requests/s"
curl -fs -X POST "$receiver/reset"

if [ "$db" = sqlite ]; then
  db_env=(INTAKE_DATABASE_URL="sqlite://$work/intake.db")
else
  db_env=(INTAKE_DATABASE_URL="$db" INTAKE_DATABASE_SCHEMA="$schema" INTAKE_DATABASE_MAX_CONNECTIONS=40)
fi
env "${db_env[@]}" INTAKE_LISTEN="127.0.0.1:$port" INTAKE_LOG=${INTAKE_LOG:-warn} INTAKE_RATE_LIMIT_PER_SECOND=0 \
  INTAKE_OUTBOUND_ALLOW_PRIVATE=true INTAKE_DELIVERY_WORKERS="$delivery_workers" \
  INTAKE_DELIVERY_CONCURRENCY="$concurrency" \
  INTAKE_IMPORT_WAIT_SECONDS=600 INTAKE_REQUEST_TIMEOUT_MS=600000 \
  target/release/intake serve >"$work/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -fs "$base/readyz" >/dev/null && break; sleep 0.2; done
curl -fs -X POST "$base/v1/datasets" -H 'Content-Type: application/json' \
  -d "{\"name\": \"customers\", \"contract\": $(cat examples/contracts/customers.json)}" >/dev/null
sub=$(curl -fs -X POST "$base/v1/datasets/customers/subscriptions" -H 'Content-Type: application/json' \
  -d "{\"url\": \"$receiver/hook\", \"events\": [\"record.created\"]}" | sed -E 's/.*"id":"([^"]+)".*/\1/')
path="$base/v1/datasets/customers/subscriptions/$sub"

echo "throughput: $events events queued while paused, then resumed"
curl -fs -X PATCH "$path" -H 'Content-Type: application/json' -d '{"paused": true}' >/dev/null
awk -v n="$events" 'BEGIN { print "id,first_name,last_name,email,phone";
  for (i = 0; i < n; i++) printf "c-%07d,Gen,Erated,g%d@example.com,\n", i, i }' >"$work/customers.csv"
curl -fs -X POST "$base/v1/datasets/customers/imports?wait=true" -H 'Content-Type: text/csv' \
  --data-binary @"$work/customers.csv" >/dev/null
start=$(date +%s.%N)
curl -fs -X PATCH "$path" -H 'Content-Type: application/json' -d '{"paused": false}' >/dev/null
while :; do
  got=$(curl -fs "$receiver/stats" | sed -E 's/.*"count":([0-9]+).*/\1/')
  [ "$got" -ge "$events" ] && break
  sleep 0.05
done
end=$(date +%s.%N)
rate=$(awk -v n="$events" -v s="$start" -v e="$end" 'BEGIN { printf "%.0f", n / (e - s) }')
echo "  $events deliveries in $(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.2f", e - s }') s: $rate deliveries/s"
echo "  ratio to the receiver's own rate: $(awk -v a="$rate" -v b="$baseline" 'BEGIN { printf "%.2f", a / b }') (bar: at least 5000 deliveries/s)"

echo "latency: $singles single-row imports, one at a time, workers idle between them"
curl -fs -X POST "$receiver/reset"
for i in $(seq 1 "$singles"); do
  printf 'id,first_name,last_name,email\nl-%05d,Lat,Ency,l%d@example.com\n' "$i" "$i" |
    curl -fs -X POST "$base/v1/datasets/customers/imports?wait=true" -H 'Content-Type: text/csv' \
      --data-binary @- >/dev/null
  sleep 0.05
done
sleep 1
stats=$(curl -fs "$receiver/stats")
echo "  $stats (bar: p99 under 50 ms)"
