#!/usr/bin/env bash
# Multi-drive write benchmark: `mixtape backup --copies 2` of SIZE_MB of
# random files to a .tap library on tmpfs, with two drives (both tapes in
# one pass: one read, two writes) against one drive (the two tapes one after
# the other: the files read again for the second). Runs interleaved so
# machine noise hits both alike. Prints medians of wall-clock and CPU time,
# bytes read from the source files (--stats-json source_bytes_read), and the
# time the LTO-6 timing model says the drives would have spent: the busiest
# drive for two drives working at once, the sum for one drive.
#
#   bench/write/multidrive.sh [BUILD_DIR]     (default BUILD_DIR: build)
#   env: SIZE_MB=1024 FILE_MB=8 RUNS=3 DIR=/dev/shm (tmpfs if present, else /tmp)
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/../lib.sh"

size_mb=${SIZE_MB:-1024}
file_mb=${FILE_MB:-8}
runs=${RUNS:-3}
default_dir_tmpfs
need_tools -h scripts/install-deps.sh age-keygen cmake split python3

cmake --build "$build" --target mixtape >/dev/null
mixtape="$build/cli/mixtape"
make_work multidrive-bench
age_key

echo "preparing $size_mb MiB of random data as $((size_mb / file_mb)) files of $file_mb MiB in $DIR ..." >&2
mkdir -p "$work/src"
random_files "$work/src" "$size_mb" "$file_mb"
files=$((size_mb / file_mb))

# One run from scratch with DRIVES drives: a new catalog, a new library.
# Appends "wall cpu source_bytes_read model_seconds" to $work/DRIVES.txt.
backup_run() {
  local drives=$1 w u s
  rm -rf "$work/catalog.db"* "$work/tapes" "$work/scratch" "$work/stats.json"
  mkdir -p "$work/scratch"
  MIXTAPE_CATALOG="$work/catalog.db" "$mixtape" init --copies 2 --recipient "$recipient" \
    >/dev/null 2>&1
  local TIMEFORMAT='%R %U %S'
  read -r w u s < <({ time MIXTAPE_CATALOG="$work/catalog.db" "$mixtape" backup "$work/src" \
    --library "$work/tapes" --new-library --drives "$drives" --capacity 1T --temp-dir "$work/scratch" \
    --stats-json "$work/stats.json" >"$work/mixtape.out" 2>"$work/last.err"; } 2>&1) ||
    { echo "multidrive.sh: backup with $drives drive(s) failed:" >&2; cat "$work/last.err" >&2; exit 1; }
  grep -q "backed up $((2 * files)) file copies" "$work/mixtape.out" ||
    { echo "multidrive.sh: backup did not copy every file twice:" >&2; cat "$work/mixtape.out" >&2; exit 1; }
  python3 - "$work/stats.json" "$drives" "$w" "$u" "$s" >>"$work/$drives.txt" <<'EOF'
import json, sys
stats = json.load(open(sys.argv[1]))
drives, wall, user, system = int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
if drives > 1:
    model = max(stats["drive%d_tape_seconds" % d] for d in range(drives))
else:
    model = stats["tape_seconds"]
print(wall, user + system, stats["source_bytes_read"], model)
EOF
}

for ((run = 1; run <= runs; run++)); do
  echo "run $run/$runs: two drives ..." >&2
  backup_run 2
  echo "run $run/$runs: one drive ..." >&2
  backup_run 1
done

column_median() { awk -v c="$2" '{print $c}' "$1" | median; }  # of column $2 of file $1
bytes=$((size_mb * 1048576))
load=$(load3)
cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
echo
echo "multi-drive write benchmark: backup --copies 2 of $size_mb MiB ($files files of $file_mb MiB)"
echo "to a .tap library in $DIR, median of $runs runs; machine: nproc=$(nproc), $cpu_model"
echo "load average (1/5/15 min) at the end: $load"
echo
printf '| %-6s | %-23s | %-7s | %-24s | %-32s |\n' drives "wall (2 copies)" "CPU s" \
  "source bytes read" "LTO-6 model, drive time"
printf '|%s|%s|%s|%s|%s|\n' -------- ------------------------- --------- -------------------------- \
  ----------------------------------
for drives in 2 1; do
  f="$work/$drives.txt"
  awk -v d="$drives" -v bytes="$bytes" -v w="$(column_median "$f" 1)" -v c="$(column_median "$f" 2)" \
    -v r="$(column_median "$f" 3)" -v m="$(column_median "$f" 4)" 'BEGIN {
      printf "| %-6s | %5.0f MB/s (%7.2f s) | %7.2f | %10.0f (%.2f x data) | %6.1f s %-23s |\n",
        d, 2 * bytes / w / 1e6, w, c, r, r / bytes, m, (d > 1 ? "(busiest drive)" : "(one drive, both tapes)") }'
done
echo
echo "MB/s = 10^6 bytes/s of file data written to tape (both copies), from wall-clock time."
echo "source bytes read = hashing + writing (one read to hash, then one per pass that writes)."
