# Shared by the import benchmarks: the generated CSV and the plain-COPY baseline.
# Source it; it defines functions only.

# generate_rows FILE ROWS: `id,group,value,note`, ROWS distinct ids, 20 groups.
generate_rows() {
  local file=$1 rows=$2
  echo "generating $rows rows"
  awk -v n="$rows" 'BEGIN { print "id,group,value,note";
    for (i = 0; i < n; i++) printf "k%09d,g%d,%d.%d,note %d\n", i, i % 20, i % 1000, i % 7, i }' > "$file"
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
