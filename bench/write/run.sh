#!/usr/bin/env bash
# Write benchmark: `mixtape backup` of SIZE_MB of random files to a .tap
# library (hash + tar + age + records), against two peers in the same run,
# runs interleaved so machine noise hits all alike:
#   sequential  `tar -cf - DIR | age -r KEY > out`, then `b2sum -l 256` of the files
#   concurrent  `tar -cf - DIR | tee >(b2sum -l 256) | age -r KEY > out` (one
#               read of the files; the hash runs beside the encryption)
# Each data set (SETS: file sizes in MiB) is measured with mixtape run as
# each CPU in CPUS (bench/cpu.sh: native, avx2 = as a CPU without AVX-512);
# the peers do not change with it (age and b2sum use no AVX-512). Prints
# medians, MB/s, CPU ms/MB and mixtape/peer speed ratios, with the load
# average (uptime) at each run.
#
#   bench/write/run.sh [BUILD_DIR]          (default BUILD_DIR: build)
#   env: SIZE_MB=2048 RUNS=3 DIR=/dev/shm (tmpfs if present, else /tmp): library, peer output
#        SETS="1 256"    file sizes (MiB) of the data sets
#        CPUS="native avx2"
#        SRC_DIR=$DIR    where the source files are (a disk: SRC_DIR=/var/tmp)
#        DROP=0          1: drop the page cache before every timed command
#                        (source read from the disk; needs root)
#        MIXTAPE_BIN=/path/to/mixtape: time that binary instead of building
#        BUILD_DIR's (a copy, while the tree is being built)
#        BASELINE=/path/to/mixtape: also time that binary (an older build),
#        interleaved with the others, as rows "..., baseline CPU", for each
#        CPU in CPUS.
# CPU ms/MB (user + sys of the whole process per 10^6 bytes) is the measure
# to compare on a shared machine; wall-clock MB/s depends on the load.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/../lib.sh"

size_mb=${SIZE_MB:-2048}
runs=${RUNS:-3}
default_dir_tmpfs
src_dir=${SRC_DIR:-$DIR}
drop=${DROP:-0}
cpus=${CPUS:-native avx2}
cpu_settings_check $cpus
need_tools -h scripts/install-deps.sh age age-keygen b2sum tar tee cmake split
if [ "$drop" = 1 ] && [ "$(id -u)" != 0 ]; then echo "run.sh: DROP=1 needs root" >&2; exit 1; fi

if [ -n "${MIXTAPE_BIN:-}" ]; then
  mixtape=$MIXTAPE_BIN  # a copy of a build, timed as it is (a build of the tree may be under way)
else
  cmake --build "$build" --target mixtape >/dev/null
  mixtape="$build/cli/mixtape"
fi
baseline=${BASELINE:-}
[ -z "$baseline" ] || [ -x "$baseline" ] || { echo "run.sh: BASELINE $baseline is not executable" >&2; exit 1; }
make_work write-bench
srcwork=$(mktemp -d "$src_dir/mixtape-write-src.XXXXXX")
bench_dirs+=("$srcwork")
age_key
src="$srcwork/src"

record() {  # record NAME COMMAND...
  [ "$drop" != 1 ] || drop_caches
  time_into "$@"
}

# One mixtape run from scratch: a new catalog (encrypting to the same key as
# the peer), a new library. One copy, so every side writes the data once.
mixtape_backup() {  # mixtape_backup CPU [BINARY]
  local setting=$1 bin=${2:-$mixtape}
  rm -rf "$work/catalog.db"* "$work/tapes" "$work/scratch"
  mkdir -p "$work/scratch" "$work/tapes"
  MIXTAPE_CATALOG="$work/catalog.db" "$bin" init --copies 1 --recipient "$recipient" \
    >/dev/null 2>&1
  MIXTAPE_CATALOG="$work/catalog.db" with_cpu "$setting" "$bin" backup "$src" \
    --library "$work/tapes" --capacity 1T --temp-dir "$work/scratch" >"$work/mixtape.out"
}
check_copied() {  # check_copied FILES: the backup must have copied every file, or its time means nothing
  grep -q "backed up $1 file copies" "$work/mixtape.out" ||
    { echo "run.sh: mixtape backup did not copy every file:" >&2; cat "$work/mixtape.out" "$work/last.err" >&2; exit 1; }
}
peer_tar_age() { tar -cf - -C "$srcwork" src | age -r "$recipient" >"$work/peer.age"; }
peer_b2sum() { find "$src" -type f -print0 | sort -z | xargs -0 b2sum -l 256 >"$work/peer.b2"; }
peer_concurrent() {
  rm -f "$work/fifo"
  mkfifo "$work/fifo"
  b2sum -l 256 <"$work/fifo" >"$work/peer.tar.b2" &
  tar -cf - -C "$srcwork" src | tee "$work/fifo" | age -r "$recipient" >"$work/peer.age"
  wait $!
}

bytes=$((size_mb * 1048576))
rows=()

bench_set() {  # bench_set LABEL FILE_MB
  local label=$1 file_mb=$2 setting
  rm -rf "$src"
  mkdir -p "$src"
  echo "preparing $size_mb MiB of random data as $((size_mb / file_mb)) files of $file_mb MiB in $src_dir ..." >&2
  random_files "$src" "$size_mb" "$file_mb"
  sync
  local kinds=()
  for setting in $cpus; do
    [ -z "$baseline" ] || kinds+=("x.$setting")
    kinds+=("m.$setting")
  done
  for ((run = 1; run <= runs; run++)); do
    echo "$label: run $run/$runs ..." >&2
    local kind
    for kind in "${kinds[@]}"; do
      if [ "${kind%%.*}" = x ]; then
        record "$kind$label" mixtape_backup "${kind#x.}" "$baseline"
      else
        record "$kind$label" mixtape_backup "${kind#m.}"
      fi
      check_copied $((size_mb / file_mb))
      rm -rf "$work/tapes"
    done
    record "t$label" peer_tar_age
    rm -f "$work/peer.age"
    record "b$label" peer_b2sum
    record "c$label" peer_concurrent
    rm -f "$work/peer.age"
  done
  # Same hashes on both sides: mixtape's catalog against b2sum's list.
  local first="$src/f00000"
  local ours theirs
  ours=$(MIXTAPE_CATALOG="$work/catalog.db" "$mixtape" ls --versions "$first" | awk '/version 1/ {print $5}')
  theirs=$(grep -F "  $first" "$work/peer.b2" | cut -d' ' -f1)
  [ "$ours" = "$theirs" ] || { echo "run.sh: hashes differ for $first: $ours vs $theirs" >&2; exit 1; }
  archives=$(grep -o 'in [0-9]* archive' "$work/mixtape.out" | cut -d' ' -f2)
  for kind in "${kinds[@]}"; do
    local name="$label, ${kind#?.}"
    [ "${kind%%.*}" = x ] && name="$label, baseline ${kind#x.}"
    rows+=("$(awk -v label="$name" -v archives="$archives" -v bytes="$bytes" \
      -v m="$(median "${wall[$kind$label]}")" -v mc="$(median "${cpu[$kind$label]}")" \
      -v t="$(median "${wall[t$label]}")" -v tc="$(median "${cpu[t$label]}")" \
      -v b="$(median "${wall[b$label]}")" -v bc="$(median "${cpu[b$label]}")" \
      -v c="$(median "${wall[c$label]}")" -v cc="$(median "${cpu[c$label]}")" 'BEGIN {
        p = t + b; mb = bytes / 1e6
        printf "| %-17s | %3s | %5.0f MB/s (%5.2f s) | %5.2f | %4.2f | %5.0f MB/s (%5.2f s) | %4.2f | %5.0f MB/s (%5.2f s) | %4.2f | %5.2fx | %5.2fx |",
          label, archives, mb / m, m, mc * 1000 / mb, mc / m, mb / p, p, (tc + bc) * 1000 / mb,
          mb / c, c, cc * 1000 / mb, p / m, c / m }')")
  done
  for kind in "${kinds[@]}" t b c; do
    echo "$label $kind: wall s: ${wall[$kind$label]}; CPU s: ${cpu[$kind$label]}; load: ${run_loads[$kind$label]}" >&2
  done
  rm -rf "$src" "$work/peer.b2" "$work/peer.tar.b2"
}

load_before=$(load3)
for set_mb in ${SETS:-1 256}; do bench_set "$set_mb MiB" "$set_mb"; done
load_after=$(load3)

echo
echo "write benchmark: $size_mb MiB of random files in $src_dir ($(device_of "$src_dir")$([ "$drop" = 1 ] && echo ", page cache dropped before each run")) to a .tap library in $DIR, median of $runs runs"
echo "machine: nproc=$(nproc), $(cpu_name); age $(age --version); $(tar --version | head -1); $(b2sum --version | head -1)"
echo "load average (1/5/15 min): $load_before before, $load_after after"
echo
printf '| %-17s | %-3s | %-20s | %-5s | %-4s | %-20s | %-4s | %-20s | %-4s | %-6s | %-6s |\n' "files, CPU" arc \
  "mixtape backup" ms/MB CPUs "sequential peer" ms/MB "concurrent peer" ms/MB "vs seq" "vs conc"
printf '|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n' ------------------- ----- ---------------------- ------- \
  ------ ---------------------- ------ ---------------------- ------ -------- --------
for row in "${rows[@]}"; do echo "$row"; done
echo
echo "MB/s = 10^6 bytes/s of file data, from wall-clock time. mixtape backup = init + scan + hash +"
echo "index + tar + age + records to the image (one copy). sequential peer = tar|age, then b2sum;"
echo "concurrent peer = tar | tee >(b2sum) | age. ms/MB = CPU (user + sys, all threads and processes)"
echo "per 10^6 bytes; CPUs = mixtape's CPU s / wall s. vs seq, vs conc: peer time / mixtape time"
echo "(above 1: mixtape faster). CPU avx2: mixtape as a CPU without AVX-512 (bench/cpu.sh)."
