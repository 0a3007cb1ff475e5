#!/usr/bin/env bash
# Restore speed: SIZE_MB of random FILE_MB files, backed up (age encrypted,
# one copy) to a .tap library in DIR, then restored three ways into DIR, runs
# interleaved so machine noise hits all alike:
#   restore  `mixtape restore SRC --to OUT` (every hash checked)
#   cp       `cp -r` from a fresh mount (empty stage cache): recall, stage,
#            copy out, as users restore; the daemon's CPU counted too
#   stock    the stock pipeline: for each archive, `mixtape tape cat --file N
#            | age -d | tar -x -C OUT`, then `b2sum -l 256` of every file
# mixtape runs as each CPU in CPUS (bench/cpu.sh: native, avx2 = as a CPU
# without AVX-512); the stock tools do not change with it. Every output is
# compared with the source. Prints medians, MB/s, CPU ms/MB and the ratios
# restore/stock and cp/restore (same CPU setting, same run), with the load
# average at each run. bench/restore/run.sh (CASES=speed) and
# bench/fuse/run.sh (CASES=cp) run this.
#
#   bench/restore/speed.sh [BUILD_DIR]      (default BUILD_DIR: build)
#   env: SIZE_MB=1024 FILE_MB=64 RUNS=3 DIR=/var/tmp CPUS="native avx2"
#        DROP=0   1: drop the page cache before each run (the image read from disk)
#        WAYS="restore cp stock"
#        BASELINE=path/to/another/mount.mixtape  also `cp -r` through that daemon
#                 (e.g. a copy of the previous commit's), interleaved: row "cp base"
#        KEEP=1   every run writes into new folders (its output, the mount's stage
#                 cache), all deleted at the end (needs SIZE_MB x 2 x runs x ways on
#                 DIR's disk). The default 0 deletes the last run's just before the
#                 next, and an ext4 without a journal (this machine's /) then spends a
#                 creator's time skipping inodes deleted in the last 30 s
#                 (recently_deleted): with 1 MiB files, seconds per run (restore pays
#                 it for its files, cp for its files and the stage cache's)
#        PROFILE=DIR  `perf record -a -g -e cpu-clock` (the whole machine: cp and the
#                 daemon alike) while each timed command runs, into DIR/NAME.RUN.data;
#                 the times then include perf's cost (for where the CPU goes, not speed);
#                 `perf report -i FILE --comm cp,mount.mixtape,...` to read one

# Needs root (FUSE mounts, drop_caches), age, tar, b2sum, fusermount3.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/../lib.sh"

size_mb=${SIZE_MB:-1024}
file_mb=${FILE_MB:-64}
runs=${RUNS:-3}
DIR=${DIR:-/var/tmp}
drop=${DROP:-0}
cpus=${CPUS:-native avx2}
ways=${WAYS:-restore cp stock}
cpu_settings_check $cpus
need_root "FUSE mounts, drop_caches"
need_tools age tar b2sum fusermount3 sqlite3 split

cmake --build "$build" --target mixtape mount.mixtape >/dev/null
mixtape="$build/cli/mixtape"
make_work restore-speed mnt
mnt="$work/mnt"
mkdir -p "$work/src"
work_home
export MIXTAPE_CATALOG="$work/cat.db"
lib="$work/tapes" id="$work/id.txt" out="$work/out" cache="$work/cache"

echo "preparing $size_mb MiB of random data as $((size_mb / file_mb)) files of $file_mb MiB ..." >&2
random_files "$work/src" "$size_mb" "$file_mb"
backup_src --capacity 64G
tape=$(ls "$lib"/*.tap | head -1)
mapfile -t archive_files < <(sqlite3 "$work/cat.db" "SELECT archive_file FROM archives ORDER BY archive_file")
b2sum -l 256 "$work"/src/f* | sed "s|$work/src/||" | sort >"$work/expected.b2"
bytes=$((size_mb * 1048576))

check_out() {  # check_out DIR: the files restored there are the source's
  (cd "$1" && b2sum -l 256 f* | sort) | cmp -s - "$work/expected.b2" ||
    { echo "speed.sh: $2 restored other bytes" >&2; exit 1; }
}

record() {  # record NAME EXTRA_CPU_CMD COMMAND...: EXTRA_CPU_CMD prints CPU s to add (or "")
  local name=$1 extra_cpu=$2
  shift 2
  if [ "${KEEP:-0}" = 1 ]; then
    out="$work/out.$name.$run" cache="$work/cache.$name.$run"
  else
    rm -rf "$out" "$cache"
  fi
  # DROP=1: the image is read from disk; otherwise only the last run's writes are flushed.
  if [ "$drop" = 1 ]; then drop_caches; else sync; fi
  local perf_pid=
  if [ -n "${PROFILE:-}" ]; then
    mkdir -p "$PROFILE"
    perf record -a -g -e cpu-clock -F 999 -o "$PROFILE/$name.$run.data" 2>/dev/null &
    perf_pid=$!
    sleep 0.5
  fi
  time_into "$name" "$@"
  if [ -n "$perf_pid" ]; then kill -INT "$perf_pid"; wait "$perf_pid" || true; fi
}

way_restore() {  # way_restore CPU
  with_cpu "$1" "$mixtape" restore "$work/src" --to "$out" --library "$lib" --identity "$id"
}
way_cp() {  # way_cp CPU [DAEMON]: mount (fresh cache), cp -r; the daemon's CPU in $work/daemon.cpu
  mount_lib "$cache" with_cpu "$1" "${2:-$build/mount-helper/mount.mixtape}"
  cp -r "$mnt/latest$work/src" "$out"
  cpu_of "$(pgrep -f "[m]ount.mixtape $work/cat.db $mnt" | head -1)" >"$work/daemon.cpu"
}
# The unmount (not timed: the kernel drops the mount's page cache, the
# daemon finishes syncing the stage cache) and the daemon's CPU.
daemon_cpu() {
  local pid
  pid=$(pgrep -f "[m]ount.mixtape $work/cat.db $mnt" | head -1)
  fusermount3 -u "$mnt"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.01; done
  cat "$work/daemon.cpu"
}
way_stock() {
  mkdir -p "$out"
  local n
  for n in "${archive_files[@]}"; do
    "$mixtape" tape cat --device "$tape" --file "$n" | age -d -i "$id" |
      tar -x -C "$out" --warning=no-unknown-keyword
  done
  (cd "$out$work/src" && b2sum -l 256 f* >/dev/null)
}

load_before=$(load3)
for ((run = 1; run <= runs; run++)); do
  echo "run $run/$runs ..." >&2
  for setting in $cpus; do
    if [[ " $ways " == *" restore "* ]]; then
      record "restore.$setting" "" way_restore "$setting"
      check_out "$out$work/src" "mixtape restore"
    fi
    if [[ " $ways " == *" cp "* ]]; then
      record "cp.$setting" daemon_cpu way_cp "$setting"
      check_out "$out" "cp from the mount"
      if [ -n "${BASELINE:-}" ]; then
        record "cpbase.$setting" daemon_cpu way_cp "$setting" "$BASELINE"
        check_out "$out" "cp from the baseline's mount"
      fi
    fi
  done
  if [[ " $ways " == *" stock "* ]]; then
    record stock "" way_stock
    check_out "$out$work/src" "the stock pipeline"
  fi
done
load_after=$(load3)
rm -rf "$out" "$cache" "$work"/out.* "$work"/cache.*

mw() { median "${wall[$1]:-}"; }
echo
echo "restore speed: $((size_mb / file_mb)) files of $file_mb MiB ($size_mb MiB) on one tape (${#archive_files[@]} archives), restored into $DIR ($(device_of "$DIR"))$([ "$drop" = 1 ] && echo ", page cache dropped before each run"); median of $runs runs"
echo "machine: nproc=$(nproc), $(cpu_name), kernel $(uname -r); age $(age --version); $(tar --version | head -1)"
echo "load average (1/5/15 min): $load_before before, $load_after after"
echo
printf '| %-22s | %-20s | %-6s | %-9s | %-9s |\n' "way, CPU" "wall" "ms/MB" "vs stock" "vs restore"
printf '|%s|%s|%s|%s|%s|\n' ------------------------ ---------------------- -------- ----------- -----------
row() {  # row LABEL KEY [RESTORE_KEY]
  local label=$1 key=$2 against=${3:-}
  [ -n "${wall[$key]:-}" ] || return 0
  awk -v label="$label" -v w="$(mw "$key")" -v c="$(median "${cpu[$key]}")" -v bytes="$bytes" \
    -v s="$(mw stock)" -v r="$( [ -n "$against" ] && mw "$against")" 'BEGIN {
      mb = bytes / 1e6
      vs = s > 0 ? sprintf("%8.2fx", s / w) : "        -"
      vr = r > 0 ? sprintf("%9.2fx", r / w) : "         -"
      printf "| %-22s | %5.0f MB/s (%5.2f s) | %6.2f | %s | %s |\n", label, mb / w, w, c * 1000 / mb, vs, vr }'
}
for setting in $cpus; do
  row "mixtape restore, $setting" "restore.$setting"
  row "cp -r from mount, $setting" "cp.$setting" "restore.$setting"
  row "cp -r, baseline, $setting" "cpbase.$setting" "restore.$setting"
done
row "stock pipeline" stock
echo
echo "MB/s = 10^6 bytes/s of file data, wall clock. ms/MB = CPU (user + sys, every thread and process,"
echo "for cp the daemon's too) per 10^6 bytes. vs stock = stock time / this time; vs restore ="
echo "mixtape restore's time / cp's time (same CPU setting): above 1, faster."
echo "all runs (wall s; CPU s; load):"
for key in $(printf '%s\n' "${!wall[@]}" | sort); do
  echo "  $key: ${wall[$key]}; ${cpu[$key]}; ${run_loads[$key]}"
done
