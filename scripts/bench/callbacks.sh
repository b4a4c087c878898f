#!/usr/bin/env bash
# Issue 15's callback bars, in one run, on PostgreSQL or SQLite, with `intake serve`
# (release) firing into a subscribed local receiver (every fire writes its event and a
# delivery, which are then sent):
#   - precision: TIMERS accounts imported, their callbacks then set (by SQL, so the
#     import's own pace does not spread them) due from 10 s later at exactly RATE a
#     second (100,000 pending at the start, due at 5,000/s by default); bars: keeps up
#     with 5,000/s, p99 lateness under 100 ms;
#   - catch-up: TIMERS more imported with `callbackTimeMs: 0`, all due at the commit
#     (as after downtime): how fast they drain, beside the yardstick: the same number
#     of pending rows in a table of the same shape and index, marked fired by
#     hand-written SQL in batches of 1,000 (the minimum work: no event, no delivery;
#     on PostgreSQL with as many connections as callback workers), in the same run.
# Lateness and rates come from the server's fire log: each fire's lateness runs to the
# commit of its transaction, and the rate is fires over the time from the first fire
# to the last.
#
#   bash scripts/bench/callbacks.sh [TIMERS] [DATABASE_URL | sqlite] [RATE]
#
# WORKERS=N sets `callback_workers` (2), and the yardstick's connections on PostgreSQL; KEEP=1 copies the server's log to
# /tmp/bench-server.log.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/bench/common.sh
source scripts/bench/common.sh
timers=${1:-100000}
db=${2:-postgres://postgres@127.0.0.1:5432/test}
rate=${3:-5000}
callback_workers=${WORKERS:-2}
work=$(mktemp -d)
schema="intake_bench_callbacks_$$"
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

# sql QUERY: one value from the server's database.
sql() {
  if [ "$db" = sqlite ]; then
    sqlite3 "$work/intake.db" "$1"
  else
    psql -qAt "$db" -c "SET search_path TO $schema; $1" | tail -n 1
  fi
}

echo "building intake and the receiver (release)"
cargo build --release -q -p intake-app --bin intake --example webhook_receiver
start_receiver "$receiver_port" "$work/receiver.log"
pids+=("$RECEIVER_PID")

if [ "$db" = sqlite ]; then
  db_env=(INTAKE_DATABASE_URL="sqlite://$work/intake.db")
else
  db_env=(INTAKE_DATABASE_URL="$db" INTAKE_DATABASE_SCHEMA="$schema" INTAKE_DATABASE_MAX_CONNECTIONS=40)
fi
env "${db_env[@]}" INTAKE_LISTEN="127.0.0.1:$port" INTAKE_LOG="error,intake_domain::callbacks=info" \
  INTAKE_LOG_FORMAT=json INTAKE_RATE_LIMIT_PER_SECOND=0 \
  INTAKE_OUTBOUND_ALLOW_PRIVATE=true INTAKE_CALLBACK_WORKERS="$callback_workers" \
  INTAKE_IMPORT_WAIT_SECONDS=600 INTAKE_REQUEST_TIMEOUT_MS=600000 \
  target/release/intake serve >"$work/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -fs "$base/readyz" >/dev/null && break; sleep 0.2; done
curl -fs -X POST "$base/v1/datasets" -H 'Content-Type: application/json' \
  -d "{\"name\": \"accounts\", \"contract\": $(cat examples/contracts/accounts.json)}" >/dev/null
curl -fs -X POST "$base/v1/datasets/accounts/subscriptions" -H 'Content-Type: application/json' \
  -d "{\"url\": \"$receiver/hook\", \"events\": [\"record.callback\"]}" >/dev/null

# accounts FILE PREFIX FIRST_MS STEP_US: TIMERS accounts, the i-th due FIRST_MS + i * STEP_US µs
# after it is accepted.
accounts() {
  awk -v n="$timers" -v p="$2" -v first="$3" -v step="$4" 'BEGIN { printf "[";
    for (i = 0; i < n; i++) printf "%s{\"id\":\"%s%07d\",\"parentProgram\":\"prog\",\"parentProgramSubType\":\"mint\",\"tokens\":%d,\"data\":{},\"callbackTimeMs\":%d,\"version\":1}",
      (i ? "," : ""), p, i, i, first + int(i * step / 1000);
    print "]" }' >"$1"
}

# wait_settled: until no timer is pending.
wait_settled() {
  while [ "$(sql "SELECT COUNT(*) FROM callbacks WHERE status = 'pending'")" != 0 ]; do sleep 0.2; done
}

# fires PREFIX: of the fire log's lines for keys starting with PREFIX, the count,
# lateness p50, p99 and max, and the rate (fires over first to last fire).
fires() {
  python3 - "$work/server.log" "$1" <<'PY'
import json, sys
from datetime import datetime
late, times = [], []
for line in open(sys.argv[1]):
    if '"callback fired' not in line:
        continue
    entry = json.loads(line)
    fields = entry["fields"]
    if fields["key"].startswith(sys.argv[2]):
        late.append(fields["lateness_ms"])
        times.append(datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00")).timestamp())
late.sort()
pick = lambda q: late[min(len(late) - 1, int(q * len(late)))]
span = max(times) - min(times)
print(f"{len(late)} fired; lateness p50 {pick(0.5)} ms, p99 {pick(0.99)} ms, max {late[-1]} ms; "
      f"{len(late) / span:.0f} fires/s")
PY
}

echo "precision: $timers timers due from 10 s on, at $rate a second"
accounts "$work/due.json" a 3600000 0
start=$(date +%s.%N)
curl -fs -X POST "$base/v1/datasets/accounts/imports?wait=true" -H 'Content-Type: application/json' \
  --data-binary @"$work/due.json" >/dev/null
echo "  imported in $(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }') s; $(sql "SELECT COUNT(*) FROM callbacks WHERE status = 'pending'") pending"
step_us=$(awk -v r="$rate" 'BEGIN { printf "%.0f", 1e6 / r }')
if [ "$db" = sqlite ]; then
  python3 - "$work/intake.db" "$step_us" <<'PY'
import sqlite3, sys
from datetime import datetime, timedelta, timezone
c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)
first = datetime.now(timezone.utc) + timedelta(seconds=10)
ids = [r[0] for r in c.execute("SELECT id FROM callbacks WHERE status = 'pending' ORDER BY id")]
at = lambda n: (first + timedelta(microseconds=n * int(sys.argv[2]))).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
c.execute("BEGIN IMMEDIATE")
c.executemany("UPDATE callbacks SET due_at = ? WHERE id = ?", ((at(n), i) for n, i in enumerate(ids)))
c.execute("COMMIT")
PY
else
  sql "UPDATE callbacks c SET due_at = now() + interval '10 s' + n.rn * $step_us * interval '1 microsecond'
       FROM (SELECT id, row_number() OVER (ORDER BY id) - 1 AS rn FROM callbacks WHERE status = 'pending') n
       WHERE c.id = n.id" >/dev/null
fi
wait_settled
echo "  $(fires a) (bars: keeps up with $rate/s, p99 under 100 ms)"

echo "catch-up: $timers timers all due at the import's commit"
accounts "$work/now.json" b 0 0
curl -fs -X POST "$base/v1/datasets/accounts/imports?wait=true" -H 'Content-Type: application/json' \
  --data-binary @"$work/now.json" >/dev/null
wait_settled
catchup=$(fires b)
echo "  $catchup"
intake_rate=$(echo "$catchup" | sed -E 's/.* ([0-9]+) fires\/s$/\1/')

echo "yardstick: $timers pending rows of the same shape, marked fired by hand-written SQL (batches of 1,000)"
if [ "$db" = sqlite ]; then
  base_rate=$(python3 - "$work/baseline.db" "$timers" <<'PY'
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("PRAGMA journal_mode = WAL"); c.execute("PRAGMA synchronous = NORMAL")
c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, dataset TEXT, key TEXT, version INTEGER, import_id TEXT, due_at TEXT, status TEXT, settled_at TEXT, lease_token TEXT, lease_expires_at TEXT)")
c.execute("CREATE INDEX t_due ON t (due_at) WHERE status = 'pending'")
c.execute("BEGIN")
c.executemany("INSERT INTO t (dataset, key, version, import_id, due_at, status) VALUES ('accounts', ?, 1, 'x', '2026-01-01T00:00:00.000000Z', 'pending')",
              ((f"b{i:07d}",) for i in range(int(sys.argv[2]))))
c.execute("COMMIT")
start = time.time()
while True:
    c.execute("BEGIN IMMEDIATE")
    n = c.execute("UPDATE t SET status = 'fired', settled_at = '2026-01-01T00:00:01.000000Z' WHERE id IN (SELECT id FROM t WHERE status = 'pending' AND due_at <= '2026-01-01T00:00:01.000000Z' ORDER BY due_at LIMIT 1000)").rowcount
    c.execute("COMMIT")
    if n == 0:
        break
print(f"{int(sys.argv[2]) / (time.time() - start):.0f}")
PY
)
else
  psql -q "$db" -c "SET search_path TO $schema;
    CREATE TABLE baseline (LIKE callbacks INCLUDING DEFAULTS);
    INSERT INTO baseline (id, dataset, key, version, import_id, due_at)
      SELECT i, 'accounts', 'b' || lpad(i::text, 7, '0'), 1, 'x', now() FROM generate_series(1, $timers) i;
    ALTER TABLE baseline ADD PRIMARY KEY (id);
    CREATE INDEX baseline_due ON baseline (due_at) WHERE status = 'pending'; ANALYZE baseline;"
  start=$(date +%s.%N)
  loops=()
  for _ in $(seq 1 "$callback_workers"); do
    psql -q "$db" -c "SET search_path TO $schema" -c "
      DO \$\$ DECLARE n int; BEGIN LOOP
        WITH next AS (SELECT id FROM baseline WHERE status = 'pending' AND due_at <= now()
                      ORDER BY due_at LIMIT 1000 FOR UPDATE SKIP LOCKED)
        UPDATE baseline b SET status = 'fired', settled_at = now() FROM next WHERE b.id = next.id;
        GET DIAGNOSTICS n = ROW_COUNT; COMMIT; EXIT WHEN n = 0;
      END LOOP; END \$\$;" &
    loops+=($!)
  done
  wait "${loops[@]}"
  end=$(date +%s.%N)
  base_rate=$(awk -v n="$timers" -v s="$start" -v e="$end" 'BEGIN { printf "%.0f", n / (e - s) }')
fi
echo "  $base_rate rows/s"
echo "  catch-up ratio to the yardstick: $(awk -v a="$intake_rate" -v b="$base_rate" 'BEGIN { printf "%.2f", a / b }')"
echo "  delivered to the receiver: $(curl -fs "$receiver/stats")"
