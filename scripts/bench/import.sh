#!/usr/bin/env bash
# DESIGN §16 bulk-import bar: 1M CSV rows into PostgreSQL through the import service
# (vault, decode, map, merge, latest state, history, outbox) against a plain `COPY` of
# the same file into one table, measured in the same run. Prints both rates and the
# ratio (the bar is >= 0.5).
#
#   bash scripts/bench/import.sh [ROWS] [DATABASE_URL]
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/bench/common.sh
source scripts/bench/common.sh
rows=${1:-1000000}
url=${2:-postgres://postgres@127.0.0.1:5432/test}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
file=$work/rows.csv

generate_rows "$file" "$rows"

echo "building the service benchmark (release)"
cargo build --release -q -p intake-postgres --example import_bench

copy_baseline "$url" "$file" "$rows"

out=$(target/release/examples/import_bench "$file" "$url")
echo "$out"
service_rate=$(sed -E 's/.*\(([0-9]+) rows\/s.*/\1/' <<<"$out")
awk -v a="$service_rate" -v b="$COPY_RATE" 'BEGIN { printf "ratio service/COPY: %.2f (bar: >= 0.50)\n", a / b }'
