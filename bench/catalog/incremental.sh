#!/usr/bin/env bash
# Backups that cost what changed (format 2): an incremental backup over a
# large catalog against the same data backed up with a fresh catalog, in
# the same run, interleaved; and recovering that catalog from the tape.
#
# MODE=generated (default): a catalog of FILES files made by gen_catalog (as
#   bench/catalog/run.sh does), whose files are on tape BENCH1 (rows only),
#   then a real backup of one small file to tape L00001 (its first index a
#   full copy of the catalog). Measured, median of RUNS:
#     incremental  DATA of new files backed up to L00001 (appends: its
#                  first index holds the changes since L00001's last one)
#     fresh        the same files with a new catalog, to a new tape
#   and their wall time, CPU and tape bytes; then `mixtape recover` of
#   L00001 from its trailing index and from its indexes alone (wall time
#   and the drive model's tape_seconds, LTO-6).
# MODE=tree: FILES empty files on disk (gen_tree), backed up once (not
#   timed); then DATA of new files under the same root, and the whole root
#   backed up again (the unchanged part scanned): against the same new files
#   with a fresh catalog plus `find -printf` of the FILES files' stat fields
#   (what an unchanged scan must look at).
#
#   bench/catalog/incremental.sh [BUILD_DIR]     (default BUILD_DIR: build)
#   env: MODE=generated|tree FILES=1000000 DIRS=100000 BIG=100000 DATA_FILES=16
#        DATA_FILE_SIZE=64M RUNS=3 DIR=/var/tmp CATALOG=path (reuse a
#        gen_catalog catalog of that FILES count) IDENTITY=path (the age
#        identity of CATALOG's recipient; without it a new one is made)
#        STAMP=1 (0: each incremental begins with a full integrity check)
# Needs root (drop_caches between runs).
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/../lib.sh"

mode=${MODE:-generated}
catalog_layout
data_files=${DATA_FILES:-16}
data_file_size=${DATA_FILE_SIZE:-64M}
runs=${RUNS:-3}
DIR=${DIR:-/var/tmp}
need_root drop_caches

cmake --build "$build" --target gen_catalog gen_tree mixtape >/dev/null
gen="$build/bench/catalog/gen_catalog"
gen_tree="$build/bench/catalog/gen_tree"
mixtape="$build/cli/mixtape"
make_work incremental-bench
work_home

bytes_of() { du -cb "$@" 2>/dev/null | tail -1 | cut -f1; }
stat_of() { sed -n "s/.*\"$2\": *\([0-9.e+-]*\).*/\1/p" "$1" | head -1; }
# Runs a command, recording its wall and CPU seconds into t[NAME_wall] and
# t[NAME_cpu] (children included: mixtape's threads).
timed() {
  local name=$1 t0 times
  shift
  t0=$(now)
  times=$( { TIMEFORMAT='%U %S'; time "$@" >"$work/out" 2>"$work/err"; } 2>&1) ||
    { echo "incremental.sh: $* failed:" >&2; cat "$work/err" >&2; exit 1; }
  t[${name}_wall]+="$(since "$t0") "
  t[${name}_cpu]+="$(awk '{ printf "%.2f", $1 + $2 }' <<<"$times") "
}
mt() { MIXTAPE_ARCHAEOLOGY_BINARY="$work/bin-stand-in" "$mixtape" "$@"; }
# A stand-in for the program in file 0: the same on every tape, small.
printf '#!/bin/sh\necho stand-in\n' >"$work/bin-stand-in"
# Every tape is encrypted, as a catalog made by `mixtape init` encrypts.
mkdir -p "$HOME/.config/mixtape"
# IDENTITY: the identity whose recipient a reused CATALOG encrypts to (its
# tapes must be recovered with it).
if [ -n "${IDENTITY:-}" ]; then
  cp "$IDENTITY" "$HOME/.config/mixtape/identity.txt"
  recipient=$(sed -n 's/^# public key: //p' "$IDENTITY")
else
  recipient=$("$mixtape" keygen -o "$HOME/.config/mixtape/identity.txt" 2>&1 | grep -o 'age1[a-z0-9]*')
fi

# ---- the data the backups write: DATA_FILES files of DATA_FILE_SIZE, each different
data="$work/data"
mkdir -p "$data"
size_bytes=$(numfmt --from=iec "$data_file_size")
head -c "$size_bytes" /dev/urandom >"$work/body"
for ((i = 0; i < data_files; i++)); do
  { printf 'file %d\n' "$i"; tail -c +10 "$work/body"; } >"$data/new$(printf %04d "$i").bin"
done
data_bytes=$(bytes_of "$data"/*)

# ---- the base state: catalog + library, kept pristine and copied per run
base="$work/base"
mkdir -p "$base/lib"
t0=$(now)
case "$mode" in
  generated)
    if [ -n "${CATALOG:-}" ]; then
      cp "$CATALOG" "$base/catalog.db"
    else
      echo "generating a catalog of $files files ..." >&2
      "$gen" "$base/catalog.db" "$files" "$dirs" "$big" "$recipient" >&2
    fi
    mkdir -p "$work/one"
    echo one >"$work/one/first.txt"
    echo "first backup to L00001 (its first index: the whole catalog) ..." >&2
    MIXTAPE_CATALOG="$base/catalog.db" mt backup "$work/one" --library "$base/lib" \
      --new-library --capacity 200G >&2
    src_root="$data"
    ;;
  tree)
    echo "making $files files on disk and backing them up once ..." >&2
    "$gen_tree" "$work/tree" "$files" "$dirs" "$big" >&2
    MIXTAPE_CATALOG="$base/catalog.db" mt init --recipient "$recipient" --copies 1 >/dev/null 2>&1
    MIXTAPE_CATALOG="$base/catalog.db" mt backup "$work/tree" --library "$base/lib" \
      --new-library --capacity 200G >&2
    mv "$data" "$work/tree/new"  # the new files join the backed-up tree
    data="$work/tree/new"
    src_root="$work/tree"
    ;;
  *) echo "incremental.sh: MODE must be generated or tree" >&2; exit 1 ;;
esac
setup_s=$(since "$t0")
catalog_mb=$(du -m "$base/catalog.db" | cut -f1)
versions=$(sqlite3 "$base/catalog.db" 'SELECT count(*) FROM versions')

load_before=$(load3)
for ((run = 1; run <= runs; run++)); do
  echo "run $run/$runs ..." >&2
  # incremental
  rm -rf "$work/inc" && cp -a "$base" "$work/inc"
  # As the previous night's backup leaves it: checked and stamped (a copy
  # has a new inode, so the stamp of the base would not match and the
  # backup would begin with a full integrity check; STAMP=0 measures that).
  [ "${STAMP:-1}" = 0 ] || MIXTAPE_CATALOG="$work/inc/catalog.db" mt status >/dev/null
  drop_caches
  t[load]+="$(load) "
  MIXTAPE_CATALOG="$work/inc/catalog.db" timed inc \
    mt backup "$src_root" --library "$work/inc/lib" --capacity 200G --stats-json "$work/inc.json"
  t[inc_tape]+="$(stat_of "$work/inc.json" bytes_written) "
  # fresh: the same new files, a new catalog and tape
  rm -rf "$work/fresh" && mkdir -p "$work/fresh"
  MIXTAPE_CATALOG="$work/fresh/catalog.db" mt init --recipient "$recipient" --copies 1 \
    >/dev/null 2>&1
  drop_caches
  MIXTAPE_CATALOG="$work/fresh/catalog.db" timed fresh \
    mt backup "$data" --library "$work/fresh/lib" --new-library --capacity 200G --stats-json "$work/fresh.json"
  t[fresh_tape]+="$(stat_of "$work/fresh.json" bytes_written) "
  if [ "$mode" = tree ]; then
    drop_caches
    timed statwalk sh -c "find '$work/tree' -path '$data' -prune -o -printf '%s %T@ %C@ %i\n' | wc -l"
  fi
done

# ---- recovering the incremental's tape (the last run's)
image="$work/inc/lib/L00001.tap"
trailing=$(mt tape info --device "$image" | awk '/^file / { last = $0 } END { print last }' |
  sed 's/.*bytes \([0-9]*\).*/\1/')
for how in trailing walk; do
  rm -f "$work/rec.db"*
  args=(recover --catalog "$work/rec.db" --device "$image" --stats-json "$work/rec.json")
  [ "$how" = walk ] && args+=(--walk-indexes)
  drop_caches
  timed "rec_$how" mt "${args[@]}"
  t[rec_${how}_tape_s]="$(stat_of "$work/rec.json" tape_seconds)"
  t[rec_${how}_read]="$(stat_of "$work/rec.json" bytes_read)"
done
load_after=$(load3)

mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1e6 }'; }

echo
echo "Incremental backup, MODE=$mode: $versions file versions in the catalog ($catalog_mb MB), then $data_files x $data_file_size new ($(mb "$data_bytes") MB); median of $runs runs, interleaved; $DIR ($(device_of "$DIR"))"
echo "machine: $(machine); load $load_before -> $load_after (at run starts: ${t[load]})"
echo "setup (not timed): $setup_s s"
printf '%-44s %12s %12s %8s\n' "measure" "incremental" "fresh" "ratio"
fresh_wall=$(m fresh_wall)
if [ "$mode" = tree ]; then
  fresh_wall=$(awk -v a="$(m fresh_wall)" -v b="$(m statwalk_wall)" 'BEGIN { printf "%.3f", a + b }')
  printf '%-44s %12s %12s\n' "find -printf of the unchanged files (s)" "" "$(m statwalk_wall)"
fi
printf '%-44s %12s %12s %7.2fx\n' "wall time (s)$([ "$mode" = tree ] && echo ', fresh + find')" \
  "$(m inc_wall)" "$fresh_wall" "$(awk -v a="$(m inc_wall)" -v b="$fresh_wall" 'BEGIN { print a / b }')"
printf '%-44s %12s %12s %7.2fx\n' "CPU time (s)" "$(m inc_cpu)" "$(m fresh_cpu)" \
  "$(awk -v a="$(m inc_cpu)" -v b="$(m fresh_cpu)" 'BEGIN { print a / b }')"
printf '%-44s %12s %12s\n' "tape bytes written (MB; fresh: with file 0)" "$(mb "$(m inc_tape)")" \
  "$(mb "$(m fresh_tape)")"
printf '%-44s %12s\n' "  incremental's tape bytes / data bytes" \
  "$(awk -v a="$(m inc_tape)" -v b="$data_bytes" 'BEGIN { printf "%.3fx", a / b }')"
printf '%-44s %12s\n' "  of which the trailing index (MB)" "$(mb "$trailing")"
printf '%-44s %12s\n' "  tape bytes beyond data + trailing index" \
  "$(awk -v a="$(m inc_tape)" -v d="$data_bytes" -v c="$trailing" 'BEGIN { printf "%.2f%% of the data", (a - d - c) * 100 / d }')"
printf '%-44s %12s %12s %12s\n' "recover" "wall (s)" "tape_seconds" "read (MB)"
printf '%-44s %12s %12s %12s\n' "  from the trailing index" "$(m rec_trailing_wall)" \
  "${t[rec_trailing_tape_s]}" "$(mb "${t[rec_trailing_read]}")"
printf '%-44s %12s %12s %12s\n' "  from the indexes alone (--walk-indexes)" "$(m rec_walk_wall)" \
  "${t[rec_walk_tape_s]}" "$(mb "${t[rec_walk_read]}")"
