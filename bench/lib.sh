# shellcheck shell=bash
# Sourced by every benchmark, first thing after `set -euo pipefail`:
#
#   # shellcheck source=bench/lib.sh
#   source "$(dirname "$0")/../lib.sh"
#
# What the benchmarks all do alike (check the machine, build, make a work
# folder that goes away, time commands, take medians, describe the machine),
# kept here so that a fix or a change of method reaches every table at once.
# It also sources bench/cpu.sh (with_cpu).
#
# Sets: root (the checkout), build (the script's first argument, BUILD_DIR,
# default $root/build), me (the script's name, which starts its messages).

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$root/build}
me=$(basename "$0")
# shellcheck source=bench/cpu.sh
. "$root/bench/cpu.sh"

# ---- the machine

need_root() {  # need_root WHY
  [ "$(id -u)" = 0 ] || { echo "$me: needs root ($1)" >&2; exit 1; }
}

need_tools() {  # need_tools [-h HINT] TOOL...: HINT, in brackets, says where to get them
  local hint='' tool
  if [ "${1:-}" = -h ]; then hint=" ($2)"; shift 2; fi
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "$me: $tool not found$hint" >&2; exit 1; }
  done
}

# DIR, unless set: tmpfs, so that the disk does not set the pace of what is measured.
default_dir_tmpfs() {
  if [ -z "${DIR:-}" ]; then
    if [ -d /dev/shm ] && [ -w /dev/shm ]; then DIR=/dev/shm; else DIR=/tmp; fi
  fi
}

cpu_name() { lscpu | sed -n 's/^Model name: *//p'; }
machine() { echo "$(nproc) cores, $(cpu_name), kernel $(uname -r)"; }
device_of() { df --output=source "$1" | tail -1; }  # device_of PATH: what it is stored on
load() { cut -d' ' -f1 /proc/loadavg; }            # the 1-minute load average
load3() { cut -d' ' -f1-3 /proc/loadavg; }          # the 1, 5 and 15-minute ones
cpu_of() { awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/$1/stat"; }  # user + sys of a pid
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# catalog_layout: files, dirs, big from FILES, DIRS, BIG: the catalog
# gen_catalog records and the tree gen_tree makes (bench/catalog/layout.h),
# a million files by default, the size the catalog must stay fast at.
# shellcheck disable=SC2034 # for the script
catalog_layout() {
  files=${FILES:-1000000}
  dirs=${DIRS:-100000}
  big=${BIG:-100000}
}

# ---- the work folder, mounts in it, and mixtape on a library in it

bench_dirs=() bench_mounts=()
bench_cleanup() {
  local m
  for m in "${bench_mounts[@]}"; do mountpoint -q "$m" && fusermount3 -u "$m"; done
  rm -rf "${bench_dirs[@]}"
}
# make_work NAME [MOUNTPOINT...]: work=DIR/mixtape-NAME.XXXXXX, new, with
# those folders in it, all unmounted and removed when the script exits (so
# is any folder the script adds to bench_dirs).
make_work() {
  local m
  work=$(mktemp -d "$DIR/mixtape-$1.XXXXXX")
  shift
  bench_dirs+=("$work")
  for m in "$@"; do
    mkdir -p "$work/$m"
    bench_mounts+=("$work/$m")
  done
  trap bench_cleanup EXIT
}
# age_key: a new age identity in $work/key, its recipient in $recipient.
age_key() {
  age-keygen -o "$work/key" 2>/dev/null
  # shellcheck disable=SC2034 # for the script
  recipient=$(age-keygen -y "$work/key")
}
# random_files DEST SIZE_MB FILE_MB: SIZE_MB of random data as files of
# FILE_MB in DEST (DEST/f00000, f00001, ...): incompressible, as a backup's
# worst case.
random_files() {
  head -c $(($2 * 1048576)) /dev/urandom | split -b "${3}M" -a 5 -d - "$1/f"
}
# HOME in the work folder: nothing the user configured is read, nothing of theirs written.
work_home() {
  mkdir -p "$work/home"
  export HOME="$work/home"
}
# backup_src BACKUP_ARG...: a catalog ($MIXTAPE_CATALOG, one copy, its identity
# in $work/id.txt), and $work/src backed up to the library $work/tapes.
backup_src() {
  "$build/cli/mixtape" init --copies 1 --identity-out "$work/id.txt" >/dev/null 2>&1
  "$build/cli/mixtape" backup "$work/src" --library "$work/tapes" --new-library "$@" >/dev/null 2>&1
}
# mount_lib CACHE [DAEMON...]: mounts $work/cat.db and its library at $mnt
# (the script's) with the stage cache CACHE, by DAEMON (default: this
# build's mount.mixtape).
mount_lib() {
  local cache=$1
  shift
  [ $# -gt 0 ] || set -- "$build/mount-helper/mount.mixtape"
  # shellcheck disable=SC2154 # mnt is the script's
  "$@" "$work/cat.db" "$mnt" -o "library=$work/tapes,identity=$work/id.txt,cache=$cache"
}

# ---- timing

since_places=3  # decimals of since
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" -v p="$since_places" 'BEGIN { printf "%." p "f", b - a }'; }

# "wall user sys" seconds of a command (output discarded, errors kept in
# $work/last.err), via bash's time: children included.
time_cmd() {
  local TIMEFORMAT='%R %U %S'
  { time "$@" >/dev/null 2>"$work/last.err"; } 2>&1
}

# The scripts record a run's figures by appending to a word list per name.
declare -A t wall cpu run_loads
# time_into NAME COMMAND...: COMMAND's wall seconds onto wall[NAME], its CPU
# seconds (user + sys) onto cpu[NAME], the load as it starts onto
# run_loads[NAME]. With extra_cpu set to a command, what that prints after
# COMMAND is added to the CPU seconds: a daemon's, which time does not see.
time_into() {
  local name=$1 w u s more=0
  shift
  run_loads[$name]+="$(load) "
  read -r w u s < <(time_cmd "$@") ||
    { echo "$me: $* failed:" >&2; cat "$work/last.err" >&2; exit 1; }
  [ -z "${extra_cpu:-}" ] || more=$($extra_cpu)
  wall[$name]+="$w "
  cpu[$name]+="$(awk -v u="$u" -v s="$s" -v m="$more" 'BEGIN { print u + s + m }') "
}

# ---- the tables

# median [WORDS]: the median of the numbers in WORDS, or on stdin when no
# argument is given. ">N" (gave up after N) counts as more than any number.
median() {
  if [ $# -gt 0 ]; then tr ' ' '\n' <<<"$1"; else tr ' ' '\n'; fi | grep -v '^$' |
    sed 's/^>/9e9 >/' | sort -g | awk '{ a[NR] = $NF } END { print a[int((NR + 1) / 2)] }'
}
m() { median "${t[$1]:-}"; }  # m KEY: the median of t[KEY]
dump_runs() {                 # every run's figures in t, by name
  local key
  for key in $(printf '%s\n' "${!t[@]}" | sort); do echo "  $key: ${t[$key]}"; done
}
