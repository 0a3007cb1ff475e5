#!/usr/bin/env bash
# FUSE read benchmark: sequential read of one staged 1 GiB incompressible file
# through mount.mixtape, against reading the stage-cache file itself and
# against archivemount over a plain tar of the same file, in the same run,
# runs interleaved. Each read is `dd bs=1M` to /dev/null, timed whole.
#   cold: page cache dropped (echo 3 > /proc/sys/vm/drop_caches) before each read
#   warm: caches dropped, then the backing file (cache object / tar) read once
#         into the page cache, so the row shows the cost of the FUSE path alone
# Prints medians, MB/s and ratios against the direct read.
#
#   bench/fuse/run.sh [BUILD_DIR]         (default BUILD_DIR: build)
# CASES=cp (in the default "read cp") also runs bench/restore/speed.sh with
# WAYS="restore cp": `cp -r` of a directory from a fresh mount (recall,
# stage, copy out) against `mixtape restore` of the same files.
#
#   env: SIZE_MB=1024 RUNS=3 DIR=/var/tmp (a real disk, so "cold" means cold)
#        CASES="read cp"  CP_MB=1024 FILE_MB=64 CPUS="native avx2": for the cp case
#        RA_KB=...  also measure the mount with its bdi read_ahead_kb set to
#                   RA_KB (mount.mixtape sets 1024 itself when root; RA_KB=128
#                   shows the kernel's default)
#        BASELINE=path/to/another/mount.mixtape  also measure that build
#                   (e.g. the previous commit's), mounted on the same cache
# Needs root (drop_caches), fusermount3, b2sum, archivemount (installed with
# apt-get if missing).
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/../lib.sh"

cases=${CASES:-read cp}
if [[ " $cases " == *" cp "* ]]; then
  SIZE_MB=${CP_MB:-1024} WAYS="restore cp" "$root/bench/restore/speed.sh" "$build"
fi
[[ " $cases " == *" read "* ]] || exit 0

size_mb=${SIZE_MB:-1024}
runs=${RUNS:-3}
DIR=${DIR:-/var/tmp}
ra_kb=${RA_KB:-1024}
# archivemount reads a plain tar at a few tens of MB/s here: it reads only the
# first AM_MB MiB of the file (its MB/s is computed on what it read).
am_mb=${AM_MB:-64}
[ "$am_mb" -le "$size_mb" ] || am_mb=$size_mb
need_root drop_caches
if ! command -v archivemount >/dev/null; then
  apt-get install -y archivemount >/dev/null 2>&1 || { echo "run.sh: cannot install archivemount" >&2; exit 1; }
fi
need_tools fusermount3 b2sum tar dd cmake

cmake --build "$build" --target mixtape mount.mixtape >/dev/null
make_work fuse-bench mnt amnt
mnt="$work/mnt" amnt="$work/amnt"
mkdir -p "$work/src"
work_home
export MIXTAPE_CATALOG="$work/cat.db"

echo "preparing $size_mb MiB of random data in $work ..." >&2
head -c $((size_mb * 1048576)) /dev/urandom >"$work/src/big.bin"
bytes=$((size_mb * 1048576))
hash=$(b2sum -l 256 "$work/src/big.bin" | cut -d' ' -f1)
tar -cf "$work/plain.tar" -C "$work/src" big.bin
mkdir -p "$work/tapes"
backup_src --capacity 8G
rm -f "$work/src/big.bin"   # from here on only the tape, the cache and the tar hold it

mount_lib "$work/cache"
archivemount -o ro "$work/plain.tar" "$amnt"
baseline=${BASELINE:-}
through_mount="$mnt/latest$work/src/big.bin"
echo "staging (recall from the .tap) ..." >&2
cat "$through_mount" >/dev/null
cached="$work/cache/objects/${hash:0:2}/$hash"
# The daemon syncs and renames a verified file into objects/ in the background.
for ((i = 0; i < 600; i++)); do [ -f "$cached" ] && break; sleep 0.1; done
[ -f "$cached" ] || { echo "run.sh: staged object $cached not found" >&2; exit 1; }
[ "$(b2sum -l 256 "$through_mount" | cut -d' ' -f1)" = "$hash" ] || { echo "run.sh: hash mismatch through the mount" >&2; exit 1; }
# archivemount is slow: compare only the first AM_MB MiB with the cache object.
cmp -n $((am_mb * 1048576)) "$amnt/big.bin" "$cached" || { echo "run.sh: archivemount content differs" >&2; exit 1; }
stats_before=$(cat "$mnt/.mixtape/stats")
bdi="/sys/class/bdi/$(mountpoint -d "$mnt")"
ra_default=$(cat "$bdi/read_ahead_kb" 2>/dev/null || echo "?")

secs() {  # wall seconds of dd bs=1M of $1 (first $2 MiB, default all) to /dev/null
  local TIMEFORMAT='%R' count=()
  [ -n "${2:-}" ] && count=(count="$2")
  { time dd if="$1" of=/dev/null bs=1M status=none "${count[@]}"; } 2>&1
}
record() {  # record NAME MODE FILE [BACKING]
  local name=$1 mode=$2 file=$3 backing=${4:-}
  drop_caches
  if [ "$mode" = warm ] && [ -n "$backing" ]; then cat "$backing" >/dev/null; fi
  local limit=
  [ "${name%%_*}" = archivemount ] && limit=$am_mb
  t[$name]+="$(secs "$file" $limit) "
}

load_before=$(load3)
for ((run = 1; run <= runs; run++)); do
  echo "run $run/$runs ..." >&2
  for mode in cold warm; do
    record "direct_$mode" "$mode" "$cached" "$cached"
    record "mixtape_$mode" "$mode" "$through_mount" "$cached"
    record "archivemount_$mode" "$mode" "$amnt/big.bin" "$work/plain.tar"
  done
  if [ -n "$baseline" ]; then
    # The cache folder takes one process at a time: swap the daemons.
    fusermount3 -u "$mnt"
    mount_lib "$work/cache" "$baseline"
    record "baseline_cold" cold "$through_mount"
    record "baseline_warm" warm "$through_mount" "$cached"
    fusermount3 -u "$mnt"
    mount_lib "$work/cache"
    bdi="/sys/class/bdi/$(mountpoint -d "$mnt")"
  fi
  if [ -w "$bdi/read_ahead_kb" ]; then
    echo "$ra_kb" >"$bdi/read_ahead_kb"
    record "mixtape_ra_cold" cold "$through_mount"
    record "mixtape_ra_warm" warm "$through_mount" "$cached"
    echo "$ra_default" >"$bdi/read_ahead_kb"
  fi
done
load_after=$(load3)
stats_after=$(cat "$mnt/.mixtape/stats")

mbps() { awk -v b="$2" -v s="$1" 'BEGIN { printf "%.0f", b / s / 1e6 }'; }

echo
echo "FUSE sequential read, $size_mb MiB staged file, dd bs=1M, median of $runs runs ($work on $(device_of "$DIR"))"
echo "machine: $(machine), load $load_before -> $load_after"
echo "mount bdi read_ahead_kb default: $ra_default"
printf '%-44s %9s %9s %10s\n' "reader" "seconds" "MB/s" "vs direct"
for mode in cold warm; do
  d=$(m "direct_$mode")
  dmbps=$(mbps "$d" "$bytes")
  rows=("direct_$mode:direct read of the cache object" "mixtape_$mode:mount.mixtape" "archivemount_$mode:archivemount on the tar (first $am_mb MiB)")
  [ -n "${t[mixtape_ra_$mode]:-}" ] && rows+=("mixtape_ra_$mode:mount.mixtape, read_ahead_kb=$ra_kb")
  [ -n "${t[baseline_$mode]:-}" ] && rows+=("baseline_$mode:baseline mount.mixtape")
  for row in "${rows[@]}"; do
    key=${row%%:*} label=${row#*:}
    med=$(m "$key")
    b=$bytes
    [ "${key%%_*}" = archivemount ] && b=$((am_mb * 1048576))
    r=$(mbps "$med" "$b")
    printf '%-44s %9s %9s %9.2fx\n' "$mode: $label" "$med" "$r" "$(awk -v a="$r" -v b="$dmbps" 'BEGIN { print a / b }')"
  done
done
echo "all runs (s):"
dump_runs
echo "stats before: $stats_before"
echo "stats after:  $stats_after"
