#!/usr/bin/env bash
# DESIGN §16 bulk-import bar: 1M CSV rows into PostgreSQL through the import service
# (vault, decode, map, merge, latest state, history, outbox) against a plain `COPY` of
# the same file into one table, measured in the same run. Prints both rates and the
# ratio (the bar is >= 0.5).
#
#   bash scripts/bench/import.sh [ROWS] [DATABASE_URL]
set -euo pipefail
cd "$(dirname "$0")/../.."
rows=${1:-1000000}
url=${2:-postgres://postgres@127.0.0.1:5432/test}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
file=$work/rows.csv

echo "generating $rows rows"
awk -v n="$rows" 'BEGIN { print "id,group,value,note";
  for (i = 0; i < n; i++) printf "k%09d,g%d,%d.%d,note %d\n", i, i % 20, i % 1000, i % 7, i }' > "$file"
ls -l "$file" | awk '{ printf "%.1f MB\n", $5 / 1e6 }'

echo "building the service benchmark (release)"
cargo build --release -q -p intake-postgres --example import_bench

table="copy_baseline_$$"
psql -q "$url" -c "CREATE TABLE $table (id text, grp text, value float8, note text)"
start=$(date +%s.%N)
psql -q "$url" -c "\\copy $table FROM '$file' WITH (FORMAT csv, HEADER true)"
end=$(date +%s.%N)
psql -q "$url" -c "DROP TABLE $table"
copy_rate=$(awk -v n="$rows" -v s="$start" -v e="$end" 'BEGIN { printf "%.0f", n / (e - s) }')
echo "COPY: $rows rows in $(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.2f", e - s }') s ($copy_rate rows/s)"

out=$(target/release/examples/import_bench "$file" "$url")
echo "$out"
service_rate=$(sed -E 's/.*\(([0-9]+) rows\/s.*/\1/' <<<"$out")
awk -v a="$service_rate" -v b="$copy_rate" 'BEGIN { printf "ratio service/COPY: %.2f (bar: >= 0.50)\n", a / b }'
