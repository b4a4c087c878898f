#!/usr/bin/env bash
# Issue 18's benchmark, in one run: a backfill of ROWS records (1M) pulled by a
# json_api source from a local fake vendor API (pages of PAGE records by cursor, served
# from pre-generated files by a small Python server on 127.0.0.1), against importing the
# same records as one JSON document over HTTP (`POST …/imports`). Both into fresh
# datasets of the same contract on one `intake serve`; each timed until every record is
# committed. Prints records/s of each and the ratio (aim: at least 0.7).
#
#   bash scripts/bench/sources.sh [ROWS] [DB]   DB: a PostgreSQL URL (default) or sqlite
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/bench/common.sh
source scripts/bench/common.sh
rows=${1:-1000000}
db=${2:-postgres://postgres@127.0.0.1:5432/test}
page=${PAGE:-1000}
intake_bench "$db" sources

echo "generating $rows records in pages of $page"
mkdir -p "$work/pages"
python3 - "$work" "$rows" "$page" <<'PY'
import json, sys
work, rows, page = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
pages = (rows + page - 1) // page
with open(f"{work}/whole.json", "w") as whole:
    whole.write('{"data": {"items": [')
    for p in range(pages):
        items = [{"id": f"k{i:09d}", "group": f"g{i % 20}", "value": i % 1000 + (i % 7) / 10}
                 for i in range(p * page, min(rows, (p + 1) * page))]
        body = json.dumps(items)[1:-1]
        nxt = f"p{p + 1}" if p + 1 < pages else None
        with open(f"{work}/pages/p{p}.json", "w") as f:
            f.write('{"data": {"items": [' + body + ']}, "meta": {"next": ' + json.dumps(nxt) + '}}')
        whole.write(("," if p else "") + body)
    whole.write("]}}")
PY
ls -l "$work/whole.json" | awk '{ printf "one document: %.1f MB\n", $5 / 1e6 }'

vendor_port=$(free_port)
python3 - "$work/pages" "$vendor_port" >"$work/vendor.log" 2>&1 <<'PY' &
import http.server, os, sys, urllib.parse
pages, port = sys.argv[1], int(sys.argv[2])
class Pages(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out as two writes: with Nagle's algorithm each answer
    # would wait for the client's delayed ACK (40 ms a page).
    disable_nagle_algorithm = True
    def do_GET(self):
        query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        name = query.get("cursor", ["p0"])[0]
        try:
            body = open(os.path.join(pages, os.path.basename(name) + ".json"), "rb").read()
        except OSError:
            self.send_response(404); self.send_header("Content-Length", "0"); self.end_headers(); return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), Pages).serve_forever()
PY
pids+=($!)
vendor="http://127.0.0.1:$vendor_port/items"
for _ in $(seq 1 50); do curl -fs -o /dev/null "$vendor" && break; sleep 0.1; done

INTAKE_OUTBOUND_ALLOW_PRIVATE=true start_intake
contract='{"format": "json", "records": "data.items",
  "fields": {"id": {"type": "string", "required": true},
             "group": {"type": "string", "required": true},
             "value": {"type": "number", "required": true}},
  "key": ["id"], "dimensions": ["group"], "measures": {"value": "value"},
  "merge": "last_wins", "on_invalid": "skip_record"}'
for ds in pulled whole; do
  curl -fsS -X POST "$base/v1/datasets" -H 'Content-Type: application/json' \
    -d "{\"name\": \"$ds\", \"contract\": $contract}" >/dev/null
done

# until_committed DS: waits until DS holds every record (asking for its count only,
# so the polling costs both runs alike), then until none of its imports is waiting.
until_committed() {
  while [ "$(curl -fsS "$base/v1/datasets/$1" | sed -E 's/.*"records":([0-9]+).*/\1/')" != "$rows" ]; do
    sleep 0.1
  done
  while curl -fsS "$base/v1/datasets/$1/imports?limit=1000" | grep -q '"status":"\(received\|processing\)"'; do
    sleep 0.1
  done
}

echo "backfilling $rows records from the fake vendor"
start=$(date +%s.%N)
curl -fsS -X POST "$base/v1/datasets/pulled/sources" -H 'Content-Type: application/json' \
  -d "{\"name\": \"vendor\", \"kind\": \"json_api\", \"url\": \"$vendor\", \"schedule\": \"1h\",
       \"pagination\": {\"kind\": \"cursor\", \"cursor_param\": \"cursor\", \"next_cursor\": \"meta.next\"}}" >/dev/null
until_committed pulled
pulled=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.2f", e - s }')
pages=$(curl -fsS "$base/v1/datasets/pulled/sources/vendor" | sed -E 's/.*"pages_fetched":([0-9]+).*/\1/')

echo "importing the same records as one document over HTTP"
start=$(date +%s.%N)
curl -fsS -o /dev/null -X POST "$base/v1/datasets/whole/imports?wait=true" \
  -H 'Content-Type: application/json' --data-binary @"$work/whole.json"
until_committed whole
whole=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.2f", e - s }')

awk -v n="$rows" -v p="$pulled" -v w="$whole" -v pages="$pages" -v db="${db%%:*}" 'BEGIN {
  printf "%s: pulled %d records in %d pages in %.2f s (%.0f records/s); one document %.2f s (%.0f records/s); ratio %.2f (aim >= 0.7)\n",
    db, n, pages, p, n / p, w, n / w, w / p }'
