#!/usr/bin/env bash
# Issue 16's small synchronous import: COUNT Markr documents of RESULTS results each
# (every one different, so none is an idempotent repeat), POSTed one after another to
# `POST /import` of a running `intake serve` (release) on PostgreSQL or SQLite, which
# answers once the import is processed; prints p50, p99 and max of the request
# latency. In the same run, as the yardstick, the same number of different documents
# of the same size POSTed to `POST /v1/datasets/exam-results/imports` of a server with
# no import workers (stored in the vault and queued: the request path without
# processing or waiting, and nothing processed beside it), with the ratio of the p50s.
# Bars: p50 <= 25 ms, p99 <= 60 ms.
#
#   bash scripts/bench/markr_import.sh [COUNT] [DATABASE_URL | sqlite] [RESULTS]
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/bench/common.sh
source scripts/bench/common.sh
count=${1:-200}
db=${2:-postgres://postgres@127.0.0.1:5432/test}
results=${3:-500}
work=$(mktemp -d)
schema="intake_bench_markr_$$"
port=$(free_port)
pid=
cleanup() {
  [ -n "$pid" ] && { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  [ "$db" = sqlite ] || psql -q "$db" -c "DROP SCHEMA IF EXISTS ${schema}_a CASCADE; DROP SCHEMA IF EXISTS ${schema}_b CASCADE" >/dev/null 2>&1 || true
  [ -n "${KEEP:-}" ] && cp "$work"/server-*.log /tmp/; rm -rf "$work"
}
trap cleanup EXIT

# serve NAME WORKERS: `intake serve` with its own database (NAME) and WORKERS import
# workers on $port, once it answers; its pid in $pid.
serve() {
  if [ "$db" = sqlite ]; then
    db_env=(INTAKE_DATABASE_URL="sqlite://$work/$1.db")
  else
    db_env=(INTAKE_DATABASE_URL="$db" INTAKE_DATABASE_SCHEMA="${schema}_$1")
  fi
  env "${db_env[@]}" INTAKE_LISTEN="127.0.0.1:$port" INTAKE_LOG="${INTAKE_LOG:-warn}" INTAKE_RATE_LIMIT_PER_SECOND=0 \
    INTAKE_WORKERS="$2" INTAKE_IMPORT_WAIT_SECONDS=1 "$intake" serve >"${SERVER_LOG:-$work/server}-$1.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && return; sleep 0.2; done
  echo "the server did not start:" >&2; cat "$work/server-$1.log" >&2; exit 1
}

# stop: stops the server.
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }

echo "building intake (release)"
# INTAKE_BIN: another build of `intake` to measure (for A/B runs); built here otherwise.
intake=${INTAKE_BIN:-target/release/intake}
[ -n "${INTAKE_BIN:-}" ] || cargo build --release -q -p intake-app --bin intake

# measure MODE: the python client below, against the running server.
measure() {
python3 - "$port" "$count" "$results" "$1" <<'PY'
import http.client, sys, time

port, count, results, mode = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

def document(n):
    """Markr document n: `results` results of students n*results.., test 9000+n%20."""
    rows = []
    for i in range(results):
        answers = "".join(
            f'<answer question="{q}" marks-available="1" marks-awarded="{(n + i + q) % 2}">A</answer>'
            for q in range(20))
        rows.append(
            f'<mcq-test-result scanned-on="2017-12-04T12:12:10+11:00"><first-name>S</first-name>'
            f'<last-name>N{n}</last-name><student-number>{n * results + i:08d}</student-number>'
            f'<test-id>{9000 + n % 20}</test-id>{answers}'
            f'<summary-marks available="20" obtained="{(n + i) % 21}" /></mcq-test-result>')
    return ('<?xml version="1.0" encoding="UTF-8" ?><mcq-test-results>'
            + "".join(rows) + "</mcq-test-results>").encode()

def run(path, first, content_type, expect):
    conn = http.client.HTTPConnection("127.0.0.1", port)
    took, last = [], None
    for n in range(first, first + count):
        body = document(n)
        start = time.perf_counter()
        conn.request("POST", path, body, {"Content-Type": content_type})
        answer = conn.getresponse()
        data = answer.read()
        took.append((time.perf_counter() - start) * 1000)
        if answer.status != expect:
            sys.exit(f"POST {path}: {answer.status} {data[:300]!r}")
        last = answer.getheader("Location")
    took.sort()
    pick = lambda q: took[min(len(took) - 1, int(q * len(took)))]
    return (pick(0.5), pick(0.99), took[-1]), last

def first():
    """The first synchronous import creates the dataset: not measured."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    conn.request("POST", "/import", document(10**6), {"Content-Type": "text/xml+markr"})
    answer = conn.getresponse(); answer.read()
    if answer.status not in ((200, 202) if mode == "stored" else (200,)):
        sys.exit(f"the first import answered {answer.status}")

size = len(document(0))
first()
if mode == "stored":
    (q50, q99, qmost), _ = run("/v1/datasets/exam-results/imports", 0, "application/xml", 202)
    print(f"yardstick, {count} stored and queued (no import workers): "
          f"p50 {q50:.1f} ms, p99 {q99:.1f} ms, max {qmost:.1f} ms")
    print(f"P50 {q50}")
else:
    (p50, p99, most), _ = run("/import", 0, "text/xml+markr", 200)
    print(f"{count} synchronous imports of {results} results ({size / 1000:.0f} kB): "
          f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {most:.1f} ms (bars: p50 <= 25 ms, p99 <= 60 ms)")
    print(f"P50 {p50}")
PY
}

serve a 0
stored=$(measure stored)
stop
serve b 2
waited=$(measure waited)
echo "$waited" | grep -v '^P50'
echo "$stored" | grep -v '^P50'
awk -v a="$(echo "$waited" | sed -n 's/^P50 //p')" -v b="$(echo "$stored" | sed -n 's/^P50 //p')" \
  'BEGIN { printf "ratio of the p50s, synchronous / stored: %.2f\n", a / b }'
