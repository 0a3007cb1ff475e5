#!/usr/bin/env bash
# Catalog scale benchmark: a catalog of FILES files (default 1,000,000) in
# 100,000 directories plus one directory of 100,000 entries, made by
# gen_catalog through the catalog API, then, median of RUNS:
#   mount      mount.mixtape until MNT/latest answers (page cache dropped first)
#   find       find MNT/latest | wc -l
#   ls -l      ls -l of the 100,000-entry directory (killed after LS_TIMEOUT s)
#   RSS        the daemon's VmRSS after those
#   status     mixtape status
# Peer: ratarmount's published figure (1.26M files: find 1m50s), not measured.
#
#   bench/catalog/run.sh [BUILD_DIR]        (default BUILD_DIR: build)
#   env: FILES=1000000 DIRS=100000 BIG=100000 RUNS=3 DIR=/var/tmp
#        LS_TIMEOUT=120  CATALOG=path (reuse an existing generated catalog)
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
files=${FILES:-1000000}
dirs=${DIRS:-100000}
big=${BIG:-100000}
runs=${RUNS:-3}
DIR=${DIR:-/var/tmp}
ls_timeout=${LS_TIMEOUT:-120}
[ "$(id -u)" = 0 ] || { echo "run.sh: needs root (drop_caches)" >&2; exit 1; }

cmake --build "$build" --target gen_catalog mixtape mount.mixtape >/dev/null
gen="$build/bench/catalog/gen_catalog"
mixtape="$build/cli/mixtape"
mounter="$build/mount-helper/mount.mixtape"
work=$(mktemp -d "$DIR/mixtape-catalog-bench.XXXXXX")
mnt="$work/mnt"
mkdir -p "$mnt" "$work/home" "$work/cache"
cleanup() {
  mountpoint -q "$mnt" && fusermount3 -u "$mnt"
  rm -rf "$work"
}
trap cleanup EXIT
export HOME="$work/home"

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }

gen_s="-"
if [ -n "${CATALOG:-}" ]; then
  cat_db=$CATALOG
else
  cat_db="$work/cat.db"
  echo "generating $files files ..." >&2
  t0=$(now)
  "$gen" "$cat_db" "$files" "$dirs" "$big" >&2
  gen_s=$(since "$t0")
fi
export MIXTAPE_CATALOG="$cat_db"
db_mb=$(du -m "$cat_db" | cut -f1)

declare -A t
count_find="" count_ls=""
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for ((run = 1; run <= runs; run++)); do
  echo "run $run/$runs ..." >&2
  sync; echo 3 >/proc/sys/vm/drop_caches
  t0=$(now)
  "$mounter" "$cat_db" "$mnt" -o "cache=$work/cache"
  until stat "$mnt/latest" >/dev/null 2>&1; do sleep 0.005; done
  t[mount]+="$(since "$t0") "
  pid=$(pgrep -f "[m]ount.mixtape $cat_db $mnt" | head -1)

  t0=$(now)
  count_find=$(find "$mnt/latest" | wc -l)
  t[find]+="$(since "$t0") "

  t0=$(now)
  if count_ls=$(timeout "$ls_timeout" ls -l "$mnt/latest/bench/big" | wc -l) && [ "$count_ls" -gt "$big" ]; then
    t[ls]+="$(since "$t0") "
  else
    t[ls]+=">$ls_timeout "
  fi
  t[rss]+="$(awk '/VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$pid/status") "
  fusermount3 -u "$mnt"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done

  t0=$(now)
  "$mixtape" status >/dev/null
  t[status]+="$(since "$t0") "
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

median() { tr ' ' '\n' | grep -v '^$' | sed 's/^>/9e9 >/' | sort -g | awk '{ a[NR] = $NF } END { print a[int((NR + 1) / 2)] }'; }

echo
echo "Catalog scale: $files files, $dirs directories + one of $big entries; catalog $db_mb MB in $DIR ($(df --output=source "$DIR" | tail -1)); median of $runs runs"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $load_before -> $load_after"
echo "generation (gen_catalog): ${gen_s} s"
printf '%-44s %12s %14s\n' "measure" "median" "target"
printf '%-44s %12s %14s\n' "mount until MNT/latest answers (s)" "$(echo "${t[mount]}" | median)" "< 1"
printf '%-44s %12s %14s\n' "find MNT/latest | wc -l ($count_find) (s)" "$(echo "${t[find]}" | median)" "< 20"
printf '%-44s %12s %14s\n' "ls -l of the $big-entry directory (s)" "$(echo "${t[ls]}" | median)" "-"
printf '%-44s %12s %14s\n' "daemon VmRSS after find + ls (MB)" "$(echo "${t[rss]}" | median)" "< 200"
printf '%-44s %12s %14s\n' "mixtape status (s)" "$(echo "${t[status]}" | median)" "-"
echo "peer (published, not measured): ratarmount, 1.26M files: find 1m50s (110 s)"
echo "all runs:"
for key in mount find ls rss status; do echo "  $key: ${t[$key]}"; done
