#!/usr/bin/env bash
# Catalog scale benchmark (benchmarks.md, "catalog scale, 1 million files").
#
# A catalog of FILES files (default 1,000,000): BIG of them in one directory
# /bench/big, the rest spread over DIRS leaf directories /bench/tree/dNNN/
# dNNNNNN, made by gen_catalog through the catalog API (no tape needed). Then,
# median of RUNS, runs interleaved with the peer:
#   mount    mount.mixtape until MNT/latest answers (page cache dropped first)
#   find     find MNT/latest | wc -l; also the CPU seconds of find itself
#            (user + system, most of it the kernel's) and of the daemon
#            during the find: on a shared machine CPU time is steadier than
#            wall time
#   ls -l    ls -l of the BIG-entry directory (killed after LS_TIMEOUT s)
#   RSS      the daemon's VmRSS (and peak VmHWM) after those
#   status   mixtape status;  ls: mixtape ls of the big directory
#   walk     walk_tree: the daemon's listing work for that find (the same
#            fs::Tree calls), without FUSE: its CPU seconds
# Peer in the same run: archivemount over a plain tar of the same tree
# (gen_tree's empty files, same layout): mount, find, ls -l, RSS. Published
# figure for reference: ratarmount, 1.26M files, find 1m50s.
# Scan (SCAN=1, the default): gen_tree makes the tree on disk, `mixtape scan`
# records it once (not timed in the table), then `mixtape scan` of the
# unchanged tree is timed against the peer stat walk `find -printf` of every
# file's size, mtime, ctime and inode (what an unchanged scan must look at).
#
#   bench/catalog/run.sh [BUILD_DIR]        (default BUILD_DIR: build)
#   env: FILES=1000000 DIRS=100000 BIG=100000 RUNS=3 DIR=/var/tmp
#        LS_TIMEOUT=120  SCAN=1  PEER=1 (archivemount; 0 skips it)
#        CATALOG=path (reuse a generated catalog; its counts must match)
#        IDENTITY=path (the age identity of an encrypted CATALOG: the mount
#        refuses an encrypted catalog without one)
# Needs root (drop_caches), fusermount3; archivemount and tar for the peer.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/../lib.sh"

catalog_layout
runs=${RUNS:-3}
DIR=${DIR:-/var/tmp}
ls_timeout=${LS_TIMEOUT:-120}
do_scan=${SCAN:-1}
do_peer=${PEER:-1}
need_root drop_caches
[ "$do_peer" != 1 ] || need_tools -h "PEER=0 skips the peer" archivemount tar

cmake --build "$build" --target gen_catalog gen_tree walk_tree mixtape mount.mixtape >/dev/null
gen="$build/bench/catalog/gen_catalog"
gen_tree="$build/bench/catalog/gen_tree"
walk_tree="$build/bench/catalog/walk_tree"
mixtape="$build/cli/mixtape"
mounter="$build/mount-helper/mount.mixtape"
make_work catalog-bench mnt amnt
mnt="$work/mnt" amnt="$work/amnt"
mkdir -p "$work/cache"
work_home

gen_s="-"
if [ -n "${CATALOG:-}" ]; then
  cat_db=$CATALOG
else
  cat_db="$work/cat.db"
  echo "generating a catalog of $files files ..." >&2
  t0=$(now)
  "$gen" "$cat_db" "$files" "$dirs" "$big" >&2
  gen_s=$(since "$t0")
fi
db_mb=$(du -m "$cat_db" | cut -f1)

tree="$work/tree"
if [ "$do_scan" = 1 ] || [ "$do_peer" = 1 ]; then
  echo "making the same tree on disk ..." >&2
  "$gen_tree" "$tree" "$files" "$dirs" "$big" >&2
fi
if [ "$do_peer" = 1 ]; then
  # The tar holds bench/big and bench/tree, as the catalog does.
  mkdir -p "$work/tarroot"
  ln -s "$tree" "$work/tarroot/bench"
  tar -chf "$work/tree.tar" -C "$work/tarroot" bench
fi

# ---- the mount, and the peer
measure_mount() {  # measure_mount NAME MOUNTPOINT TOP BIGDIR PID_PATTERN START...
  # TOP is what find walks; the mount counts as ready once TOP answers.
  local name=$1 point=$2 top=$3 bigdir=$4 pattern=$5 t0 n pid cpu0 times
  shift 5
  drop_caches
  t[${name}_load]+="$(load) "
  t0=$(now)
  "$@"
  until stat "$top" >/dev/null 2>&1; do sleep 0.005; done
  t[${name}_mount]+="$(since "$t0") "
  pid=$(pgrep -f "$pattern" | head -1)
  cpu0=$(cpu_of "$pid")
  t0=$(now)
  times=$( { TIMEFORMAT='%U %S'; time find "$top" | wc -l >"$work/count"; } 2>&1)
  t[${name}_find]+="$(since "$t0") "
  t[${name}_findcpu]+="$(awk '{ printf "%.2f", $1 + $2 }' <<<"$times") "
  t[${name}_finddaemon]+="$(awk -v a="$cpu0" -v b="$(cpu_of "$pid")" 'BEGIN { printf "%.2f", b - a }') "
  n=$(<"$work/count")
  t[${name}_count]=$n
  t0=$(now)
  if n=$(timeout "$ls_timeout" ls -l "$bigdir" | wc -l) && [ "$n" -gt "$big" ]; then
    t[${name}_ls]+="$(since "$t0") "
  else
    t[${name}_ls]+=">$ls_timeout "
  fi
  t[${name}_rss]+="$(awk '/VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$pid/status") "
  t[${name}_hwm]+="$(awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$pid/status") "
  t[${name}_cpu]+="$(cpu_of "$pid") "
  fusermount3 -u "$point"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
}

load_before=$(load3)
for ((run = 1; run <= runs; run++)); do
  echo "run $run/$runs: mount ..." >&2
  measure_mount mixtape "$mnt" "$mnt/latest" "$mnt/latest/bench/big" "[m]ount.mixtape $cat_db $mnt" \
    "$mounter" "$cat_db" "$mnt" -o "cache=$work/cache${IDENTITY:+,identity=$IDENTITY}"
  if [ "$do_peer" = 1 ]; then
    echo "run $run/$runs: archivemount ..." >&2
    measure_mount peer "$amnt" "$amnt/bench" "$amnt/bench/big" "[a]rchivemount .*$work/tree.tar" \
      archivemount -o ro "$work/tree.tar" "$amnt"
  fi
  t0=$(now)
  MIXTAPE_CATALOG="$cat_db" "$mixtape" status >/dev/null
  t[status]+="$(since "$t0") "
  t0=$(now)
  n=$(MIXTAPE_CATALOG="$cat_db" "$mixtape" ls /bench/big | wc -l)
  [ "$n" -ge "$big" ] || { echo "run.sh: mixtape ls listed $n entries" >&2; exit 1; }
  t[lsbig]+="$(since "$t0") "
  t[walk]+="$("$walk_tree" "$cat_db" | awk '{ print $(NF - 2) }') "
done

# ---- scan of an unchanged tree, and the peer stat walk
if [ "$do_scan" = 1 ]; then
  scan_db="$work/scan.db"
  MIXTAPE_CATALOG="$scan_db" "$mixtape" init --no-encryption --copies 1 >/dev/null 2>&1
  echo "first scan of $files files (recorded once, not timed) ..." >&2
  t0=$(now)
  MIXTAPE_CATALOG="$scan_db" "$mixtape" scan "$tree" >/dev/null 2>&1
  first_scan_s=$(since "$t0")
  for ((run = 1; run <= runs; run++)); do
    echo "run $run/$runs: rescan ..." >&2
    t[scan_load]+="$(load) "
    t0=$(now)
    out=$(MIXTAPE_CATALOG="$scan_db" "$mixtape" scan "$tree" 2>&1)
    t[scan]+="$(since "$t0") "
    grep -q "$files files: 0 new, 0 changed, 0 vanished" <<<"$out" ||
      { echo "run.sh: the rescan saw changes: $out" >&2; exit 1; }
    t0=$(now)
    n=$(find "$tree" -printf '%s %T@ %C@ %i\n' | wc -l)
    t[statwalk]+="$(since "$t0") "
  done
fi
load_after=$(load3)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0 && b !~ />/) printf "%.2fx", b / a; else print "-" }'; }

echo
echo "Catalog scale: $files files, $dirs directories + one of $big entries; catalog $db_mb MB in $DIR ($(device_of "$DIR")); median of $runs runs"
echo "machine: $(machine); load $load_before -> $load_after"
echo "generation (gen_catalog): ${gen_s} s"
printf '%-36s %10s %12s %8s %10s\n' "measure" "mixtape" "archivemount" "ratio" "target"
row() { printf '%-36s %10s %12s %8s %10s\n' "$1" "$2" "$3" "$4" "$5"; }
peer() { [ "$do_peer" = 1 ] && m "peer_$1" || echo "-"; }
row "mount until it answers (s)" "$(m mixtape_mount)" "$(peer mount)" "$(ratio "$(m mixtape_mount)" "$(peer mount)")" "< 1"
row "find | wc -l (s)" "$(m mixtape_find)" "$(peer find)" "$(ratio "$(m mixtape_find)" "$(peer find)")" "< 20"
row "  entries found" "${t[mixtape_count]}" "${t[peer_count]:--}" "" ""
row "  find's CPU s" "$(m mixtape_findcpu)" "$(peer findcpu)" "" "-"
row "  daemon CPU s during find" "$(m mixtape_finddaemon)" "$(peer finddaemon)" "" "-"
row "  walk_tree CPU s (listing only)" "$(m walk)" "" "" "-"
row "ls -l of the $big-entry dir (s)" "$(m mixtape_ls)" "$(peer ls)" "$(ratio "$(m mixtape_ls)" "$(peer ls)")" "-"
row "daemon VmRSS after those (MB)" "$(m mixtape_rss)" "$(peer rss)" "" "< 200"
row "daemon peak VmHWM (MB)" "$(m mixtape_hwm)" "$(peer hwm)" "" "-"
row "daemon CPU s (mount..ls -l)" "$(m mixtape_cpu)" "$(peer cpu)" "" "-"
row "mixtape status (s)" "$(m status)" "" "" "-"
row "mixtape ls of the big dir (s)" "$(m lsbig)" "" "" "-"
if [ "$do_scan" = 1 ]; then
  echo "scan of the unchanged tree ($files files on $(device_of "$DIR")); first scan: $first_scan_s s"
  printf '%-36s %10s %12s %8s\n' "measure" "mixtape" "find -printf" "ratio"
  row "scan, nothing changed (s)" "$(m scan)" "$(m statwalk)" "$(ratio "$(m statwalk)" "$(m scan)")" ""
fi
echo "ratio: archivemount time / mixtape time (above 1: mixtape faster); scan: mixtape / find"
echo "published (not measured here): ratarmount, 1.26M files: find 1m50s (110 s)"
echo "all runs:"
dump_runs
