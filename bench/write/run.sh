#!/usr/bin/env bash
# Write benchmark: `mixtape backup` of SIZE_MB of random files to a .tap
# library on tmpfs (hash + tar + age + records), against the peer pipeline
# `tar -cf - DIR | age -r KEY > out` plus `b2sum -l 256` of the same files,
# in the same run, runs interleaved so machine noise hits both sides alike.
# Two data sets: 1 MiB files, then 256 MiB files. Prints medians, MB/s and
# the mixtape/peer speed ratio. Wall-clock time of each whole process.
#
#   bench/write/run.sh [BUILD_DIR]          (default BUILD_DIR: build)
#   env: SIZE_MB=2048 RUNS=3 DIR=/dev/shm (tmpfs if present, else /tmp)
#        BASELINE=/path/to/mixtape: also time that binary (an older build),
#        interleaved with the others, as a row "... (baseline)".
#        SETS="1 256": the file sizes (MiB) of the data sets.
# CPU ms/MB (user + sys of the whole process per 10^6 bytes) is the measure
# to compare on a shared machine; wall-clock MB/s depends on the load.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
size_mb=${SIZE_MB:-2048}
runs=${RUNS:-3}
if [ -z "${DIR:-}" ]; then
  if [ -d /dev/shm ] && [ -w /dev/shm ]; then DIR=/dev/shm; else DIR=/tmp; fi
fi
for tool in age age-keygen b2sum tar cmake split; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool not found (scripts/install-deps.sh)" >&2; exit 1; }
done

cmake --build "$build" --target mixtape >/dev/null
mixtape="$build/cli/mixtape"
baseline=${BASELINE:-}
[ -z "$baseline" ] || [ -x "$baseline" ] || { echo "run.sh: BASELINE $baseline is not executable" >&2; exit 1; }
work=$(mktemp -d "$DIR/mixtape-write-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
age-keygen -o "$work/key" 2>/dev/null
recipient=$(age-keygen -y "$work/key")

# "wall user sys" seconds of a command (output discarded), via bash's time.
time_cmd() {
  local TIMEFORMAT='%R %U %S'
  { time "$@" >/dev/null 2>"$work/last.err"; } 2>&1
}

declare -A wall cpu
record() {  # record NAME COMMAND...
  local name=$1 w u s
  shift
  read -r w u s < <(time_cmd "$@") ||
    { echo "run.sh: $* failed:" >&2; cat "$work/last.err" >&2; exit 1; }
  wall[$name]+="$w "
  cpu[$name]+="$(awk -v u="$u" -v s="$s" 'BEGIN { print u + s }') "
}

# One mixtape run from scratch: a new catalog (encrypting to the same key as
# the peer), a new library, everything on $DIR. One copy, so both sides write
# the data once.
mixtape_backup() {  # mixtape_backup [BINARY]
  local bin=${1:-$mixtape}
  rm -rf "$work/catalog.db"* "$work/tapes" "$work/scratch"
  mkdir -p "$work/scratch" "$work/tapes"
  MIXTAPE_CATALOG="$work/catalog.db" "$bin" init --copies 1 --recipient "$recipient" \
    >/dev/null 2>&1
  MIXTAPE_CATALOG="$work/catalog.db" "$bin" backup "$work/src" --library "$work/tapes" \
    --capacity 1T --temp-dir "$work/scratch" >"$work/mixtape.out"
}
check_copied() {  # check_copied FILES: the backup must have copied every file, or its time means nothing
  grep -q "backed up $1 file copies" "$work/mixtape.out" ||
    { echo "run.sh: mixtape backup did not copy every file:" >&2; cat "$work/mixtape.out" "$work/last.err" >&2; exit 1; }
}
peer_tar_age() { tar -cf - -C "$work" src | age -r "$recipient" >"$work/peer.age"; }
peer_b2sum() { find "$work/src" -type f -print0 | sort -z | xargs -0 b2sum -l 256 >"$work/peer.b2"; }

median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
bytes=$((size_mb * 1048576))
rows=()

bench_set() {  # bench_set LABEL FILE_MB
  local label=$1 file_mb=$2
  rm -rf "$work/src"
  mkdir -p "$work/src"
  echo "preparing $size_mb MiB of random data as $((size_mb / file_mb)) files of $file_mb MiB in $DIR ..." >&2
  head -c $((size_mb * 1048576)) /dev/urandom | split -b "${file_mb}M" -a 5 -d - "$work/src/f"
  for ((run = 1; run <= runs; run++)); do
    echo "$label: run $run/$runs ..." >&2
    if [ -n "$baseline" ]; then
      record "x$label" mixtape_backup "$baseline"
      check_copied $((size_mb / file_mb))
      rm -rf "$work/tapes"
    fi
    record "m$label" mixtape_backup
    check_copied $((size_mb / file_mb))
    rm -rf "$work/tapes"
    record "t$label" peer_tar_age
    rm -f "$work/peer.age"
    record "b$label" peer_b2sum
  done
  # Same hashes on both sides: mixtape's catalog against b2sum's list.
  local first="$work/src/f00000"
  local ours theirs
  ours=$(MIXTAPE_CATALOG="$work/catalog.db" "$mixtape" ls --versions "$first" | awk '/version 1/ {print $5}')
  theirs=$(grep -F "  $first" "$work/peer.b2" | cut -d' ' -f1)
  [ "$ours" = "$theirs" ] || { echo "run.sh: hashes differ for $first: $ours vs $theirs" >&2; exit 1; }
  archives=$(grep -o 'in [0-9]* archive' "$work/mixtape.out" | cut -d' ' -f2)
  local kinds=m
  [ -z "$baseline" ] || kinds="x m"
  for kind in $kinds; do
    local name=$label
    [ "$kind" = m ] || name="$label (baseline)"
    rows+=("$(awk -v label="$name" -v archives="$archives" -v bytes="$bytes" \
      -v m="$(median "${wall[$kind$label]}")" -v mc="$(median "${cpu[$kind$label]}")" \
      -v t="$(median "${wall[t$label]}")" -v tc="$(median "${cpu[t$label]}")" \
      -v b="$(median "${wall[b$label]}")" -v bc="$(median "${cpu[b$label]}")" 'BEGIN {
        p = t + b
        printf "| %-9s | %8s | %5.0f MB/s (%5.2f s) | %6.2f | %6.2f | %5.2f s | %5.2f s | %5.0f MB/s (%5.2f s) | %6.2f | %6.2f | %11.2fx |",
          label, archives, bytes / m / 1e6, m, mc, mc * 1000 / (bytes / 1e6), t, b, bytes / p / 1e6, p,
          tc + bc, (tc + bc) * 1000 / (bytes / 1e6), p / m }')")
  done
  echo "$label: mixtape wall s: ${wall[m$label]}; CPU s: ${cpu[m$label]}" >&2
  [ -z "$baseline" ] || echo "$label: baseline wall s: ${wall[x$label]}; CPU s: ${cpu[x$label]}" >&2
  rm -rf "$work/src" "$work/peer.b2"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for set_mb in ${SETS:-1 256}; do bench_set "$set_mb MiB" "$set_mb"; done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
echo
echo "write benchmark: $size_mb MiB of random files to a .tap library in $DIR, median of $runs runs"
echo "machine: nproc=$(nproc), $cpu_model; age $(age --version); $(tar --version | head -1); $(b2sum --version | head -1)"
echo "load average (1/5/15 min): $load_before before, $load_after after"
echo
printf '| %-9s | %-8s | %-20s | %-6s | %-6s | %-7s | %-7s | %-20s | %-6s | %-6s | %-7s |\n' files archives \
  "mixtape backup" "CPU s" "ms/MB" "tar|age" b2sum "peer total" "CPU s" "ms/MB" "mixtape/peer"
printf '|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n' ----------- ---------- ---------------------- -------- \
  -------- --------- --------- ---------------------- -------- -------- --------------
for row in "${rows[@]}"; do echo "$row"; done
echo
echo "MB/s = 10^6 bytes/s of file data, from wall-clock time. mixtape backup = init + scan + hash +"
echo "index + tar + age + records to the image (one copy); peer total = tar|age, then b2sum.  CPU s ="
echo "user + sys seconds (all threads, all processes); ms/MB = CPU ms per 10^6 bytes of file data."
echo "mixtape/peer > 1 means mixtape is faster (wall-clock)."
