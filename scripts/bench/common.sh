# Shared by the benchmarks: a free port, the generated CSV and the plain-COPY baseline,
# the webhook receiver. Source it; it defines functions only.

# free_port: a port nothing listens on now.
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# start_receiver PORT LOG: the example webhook receiver (built by the caller) on
# 127.0.0.1:PORT, its pid in RECEIVER_PID once it answers.
start_receiver() {
  target/release/examples/webhook_receiver "127.0.0.1:$1" >"$2" 2>&1 &
  RECEIVER_PID=$!
  for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$1/stats" >/dev/null && return; sleep 0.1; done
}

# generate_rows FILE ROWS [NOTE_BYTES]: `id,group,value,note`, ROWS distinct ids, 20
# groups; each note padded to NOTE_BYTES when given (wide rows: a 1 GB document from
# a few million rows).
generate_rows() {
  local file=$1 rows=$2 pad=${3:-0}
  echo "generating $rows rows"
  awk -v n="$rows" -v pad="$pad" 'BEGIN { print "id,group,value,note";
    fill = sprintf("%*s", pad, ""); gsub(/ /, "x", fill);
    for (i = 0; i < n; i++) printf "k%09d,g%d,%d.%d,note %d%s\n", i, i % 20, i % 1000, i % 7, i, fill }' > "$file"
  ls -l "$file" | awk '{ printf "%.1f MB\n", $5 / 1e6 }'
}

# copy_baseline URL FILE ROWS: `\copy` FILE into a fresh unindexed table, print the
# time, and set COPY_RATE (rows/s).
copy_baseline() {
  local url=$1 file=$2 rows=$3 table="copy_baseline_$$" start end
  psql -q "$url" -c "CREATE TABLE $table (id text, grp text, value float8, note text)"
  start=$(date +%s.%N)
  psql -q "$url" -c "\\copy $table FROM '$file' WITH (FORMAT csv, HEADER true)"
  end=$(date +%s.%N)
  psql -q "$url" -c "DROP TABLE $table"
  COPY_RATE=$(awk -v n="$rows" -v s="$start" -v e="$end" 'BEGIN { printf "%.0f", n / (e - s) }')
  echo "COPY: $rows rows in $(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.2f", e - s }') s ($COPY_RATE rows/s)"
}

# create_bench_dataset BASE: the dataset `bench` on the server at BASE, for the rows of
# generate_rows (keyed by id, grouped by group, measuring value).
create_bench_dataset() {
  local contract='{"format": "csv",
  "fields": {"id": {"type": "string", "required": true},
             "group": {"type": "string", "required": true},
             "value": {"type": "number", "required": true},
             "note": {"type": "string"}},
  "key": ["id"], "dimensions": ["group"], "measures": {"value": "value"},
  "merge": "last_wins", "on_invalid": "skip_record"}'
  curl -fsS -X POST "$1/v1/datasets" -H 'Content-Type: application/json' \
    -d "{\"name\": \"bench\", \"contract\": $contract}" >/dev/null
}

# import_bench_rows BASE FILE: imports FILE into `bench` and waits; exits unless the
# import completed.
import_bench_rows() {
  local answer
  answer=$(curl -sS -X POST "$1/v1/datasets/bench/imports?wait=true" \
    -H 'Content-Type: text/csv' --data-binary @"$2")
  grep -q '"status":"completed"' <<<"$answer" || { echo "the import did not complete: $answer" >&2; exit 1; }
}

# intake_bench DB NAME: what a script measuring one intake on DB (a PostgreSQL URL, or
# `sqlite`) shares: `work` (a temporary directory), `schema` (intake_bench_NAME_PID),
# `port` and `base`, the `pids` array and `stop_all`, and an EXIT trap that stops what
# was started, drops the schema and removes `work` (keeping the server's log at
# BENCH_LOG when set; INTAKE_LOG sets its filter, `warn` unless given).
intake_bench() {
  db=$1
  work=$(mktemp -d)
  schema="intake_bench_$2_$$"
  port=$(free_port)
  base="http://127.0.0.1:$port"
  pids=()
  trap intake_bench_cleanup EXIT
}
stop_all() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; pids=(); }
intake_bench_cleanup() {
  stop_all
  [ -z "${BENCH_LOG:-}" ] || cp "$work/server.log" "$BENCH_LOG" 2>/dev/null || true
  [ "$db" = sqlite ] || psql -q "$db" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
  rm -rf "$work"
}

# start_intake: `intake serve` on `base` over `db` (in `schema`, or a SQLite file in
# `work`), with the rate limiter off (wrk is one caller) and deadlines of an hour (a
# 1M-row import outlasts the default minute); returns once it is ready. INTAKE_BIN
# names another build to measure (for A/B runs); otherwise the release build is made.
start_intake() {
  intake=${INTAKE_BIN:-target/release/intake}
  [ -n "${INTAKE_BIN:-}" ] || { echo "building intake (release)"; cargo build --release -q -p intake-app --bin intake; }
  local db_env
  if [ "$db" = sqlite ]; then
    db_env=(INTAKE_DATABASE_URL="sqlite://$work/intake.db")
  else
    db_env=(INTAKE_DATABASE_URL="$db" INTAKE_DATABASE_SCHEMA="$schema")
  fi
  env "${db_env[@]}" INTAKE_LISTEN="127.0.0.1:$port" INTAKE_LOG="${INTAKE_LOG:-warn}" INTAKE_RATE_LIMIT_PER_SECOND=0 \
    INTAKE_IMPORT_WAIT_SECONDS=3600 INTAKE_REQUEST_TIMEOUT_MS=3600000 INTAKE_MAX_REQUEST_TIMEOUT_MS=3600000 \
    "$intake" serve >"$work/server.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do curl -fs "$base/readyz" >/dev/null && return 0; sleep 0.2; done
  echo "intake did not start:" >&2; cat "$work/server.log" >&2; exit 1
}

# serve_bench_dataset ROWS: `intake serve` (start_intake) holding the dataset `bench`
# of ROWS generated records (in `work`/rows.csv), imported over HTTP.
serve_bench_dataset() {
  generate_rows "$work/rows.csv" "$1"
  start_intake
  create_bench_dataset "$base"
  echo "importing $1 records over HTTP"
  import_bench_rows "$base" "$work/rows.csv"
}
