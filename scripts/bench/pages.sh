#!/usr/bin/env bash
# Issue 17 target 3 on PostgreSQL or SQLite, in one run: the latency of one page of 50
# records at a random place in a dataset of ROWS records (1M by default), against the
# same page read by hand-written SQL on the dataset's own tables, no HTTP (a primary-key
# range scan: pgbench on PostgreSQL, python's sqlite3 on SQLite). Pages are:
#   - v2 keyset pages after a random key,
#   - v1 pages at a random offset up to 10,000, and at a random offset up to ROWS
#     (after the first deep page has made the revision's marks: it is timed alone).
# Latency is measured by one client (wrk -t1 -c1 -d10s, scripts/bench/lua/pages.lua),
# and again by four, so it is the page's cost, not a queue's. Bar: p99 <= 5 ms.
#
#   bash scripts/bench/pages.sh [DATABASE_URL | sqlite] [ROWS]
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/bench/common.sh
source scripts/bench/common.sh
db=${1:-postgres://postgres@127.0.0.1:5432/test}
rows=${2:-1000000}
command -v wrk >/dev/null || { echo "wrk is required (apt-get install wrk)" >&2; exit 1; }
intake_bench "$db" pages
serve_bench_dataset "$rows"
# The first deep page of a revision makes its marks (every 1024th key, in one pass).
echo "first deep page (makes the marks): $(curl -fsS -o /dev/null -w '%{time_total}' "$base/v1/datasets/bench/records?limit=50&offset=$((rows / 2))") s"
echo "the next one: $(curl -fsS -o /dev/null -w '%{time_total}' "$base/v1/datasets/bench/records?limit=50&offset=$((rows / 2 + 77))") s"
total=$(curl -fsS "$base/v1/datasets/bench/records?limit=1&offset=$((rows - 1))" | python3 -c 'import json, sys; print(json.load(sys.stdin)["total"])')
[ "$total" = "$rows" ] || { echo "total is $total, not $rows" >&2; exit 1; }
if [ "$db" != sqlite ]; then
  # As autovacuum would after an import this size (it did, a minute later, in trials):
  # the visibility map lets offsets skip keys without reading rows.
  typed=$(psql -qtA "$db" -c "SELECT 'records_' || id FROM $schema.datasets WHERE name = 'bench'")
  psql -q "$db" -c "VACUUM ANALYZE $schema.$typed"
fi

# page MODE CONNECTIONS: wrk's latency of pages of MODE; prints a line, sets p99.
page() {
  MODE=$1 ROWS=$rows wrk -t1 -c"$2" -d10s --latency -s scripts/bench/lua/pages.lua "$base" >"$work/$1.txt"
  p99=$(awk '/ 99%/ { print $2 }' "$work/$1.txt")
  printf '%-34s %s req/s, p50 %s, p99 %s, non-2xx %s\n' "$1 ($2 client$([ "$2" = 1 ] || echo s))" \
    "$(awk '/Requests\/sec/ { print $2 }' "$work/$1.txt")" "$(awk '/ 50%/ { print $2 }' "$work/$1.txt")" \
    "$p99" "$(awk '/Non-2xx/ { n = $5 } END { print n + 0 }' "$work/$1.txt")"
}


echo
echo "== pages of 50 at $rows records, $([ "$db" = sqlite ] && echo SQLite || echo PostgreSQL) (bar: p99 <= 5 ms)"
for clients in 1 4; do
  page v2 "$clients"
  page v1_front "$clients"
  page v1 "$clients"
done

echo
echo "== the same page by hand-written SQL, no HTTP (one client, 10 s)"
if [ "$db" = sqlite ]; then
  python3 - "$work/intake.db" "$rows" <<'PY'
import random, sqlite3, sys, time
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
rows = int(sys.argv[2])
sql = ("SELECT h.record FROM records r JOIN record_history h ON h.seq = r.seq "
       "WHERE r.dataset = 'bench' AND r.key > ? ORDER BY r.key LIMIT 50")
times, end = [], time.monotonic() + 10
while time.monotonic() < end:
    key = "k%09d" % random.randrange(rows)
    start = time.perf_counter()
    db.execute(sql, (key,)).fetchall()
    times.append(time.perf_counter() - start)
times.sort()
print("keyset page (python sqlite3): %d pages, p50 %.2fms, p99 %.2fms"
      % (len(times), 1e3 * times[len(times) // 2], 1e3 * times[int(len(times) * 0.99)]))
PY
else
  cat >"$work/page.sql" <<SQL
\set i random(0, $((rows - 1)))
SELECT record::text, import_id, updated_at FROM $schema.$typed WHERE key > 'k' || lpad(:i::text, 9, '0') ORDER BY key LIMIT 50;
SQL
  (cd "$work" && pgbench -n -c1 -T10 -f page.sql -l --log-prefix=pages "$db" >pgbench.txt)
  sort -n -k3 "$work"/pages.* | awk '{ t[NR] = $3 } END { printf "keyset page (pgbench): %d pages, p50 %.2fms, p99 %.2fms\n", NR, t[int(NR * 0.5)] / 1000, t[int(NR * 0.99)] / 1000 }'
fi
