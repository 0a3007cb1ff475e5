#!/usr/bin/env bash
# Restore benchmarks (benchmarks.md: recall of 200 random files, single-file
# restore, full restore of a tape, catalog recovery from a found tape). Every
# tape time is the image drive's LTO-6 timing model (docs/TAPE.md), as
# reported by --stats-json and the mount's .mixtape/stats; medians of RUNS.
#
# Data: SIZE_MB of random 1 MiB files in 16 directories, backed up (age
# encrypted, one copy) to a .tap library in DIR; archives are the default
# size (an eighth of the run, so 8 archives).
#
#   recall   200 random files (seeded, RUNS different lists): queued through
#            MNT/.mixtape/recall, then `cp` of the list out of a fresh mount
#            (fresh stage cache). Peer: the same files recalled one by one in
#            list order, one `mixtape restore FILE` each. Also shown: one
#            `mixtape restore` of all 200. Target: locates = archives touched.
#   single   `mixtape restore FILE` of RUNS random files, then of the files
#            nearest to each fraction in SINGLE_AT of the model's break-even
#            distance (where reading from BOT and a locate cost the same,
#            1.61 GB). Target: <= 2 locates; tape_seconds within 10% of the
#            model's lower bound: load + the cheaper of locating to the
#            member's block or reading up to it from BOT + streaming the
#            member's records. Also shown: the bound through the archive's
#            first record (its age header holds the key), which any reader
#            must visit first; the two differ by at most the archive's length.
#   full     `mixtape restore` of the whole tree (the whole tape). Target:
#            99% of tape_seconds streaming (bytes read / 160 MB/s).
#   recover  `mount.mixtape TAPE.tap MNT` of a copy of the tape with no
#            catalog (the found-tape path: load, space to EOD, read the
#            trailing index). Peer: bscan-style full read (`mixtape verify`
#            of the tape, which reads every archive), and the model's time
#            to read every byte of the image. Target: under 5 minutes of
#            tape_seconds for a full LTO-6 tape (extrapolated below).
#
#   speed    bench/restore/speed.sh: `mixtape restore` against the stock
#            pipeline (tape cat | age -d | tar -x, then b2sum) and `cp -r`
#            from the mount, wall clock, native and as an AVX2-only CPU.
#
#   bench/restore/run.sh [BUILD_DIR]        (default BUILD_DIR: build)
#   env: SIZE_MB=2048 RUNS=3 DIR=/var/tmp SEED=1
#        SINGLE_AT="0.05 0.5 0.78 0.95 1.05 1.25" (fractions of the break-even)
#        CASES="tape speed"   tape: recall, single, full, recover; speed: speed.sh
#        SPEED_MB=1024 FILE_MB=64 CPUS="native avx2" DROP=0: passed to speed.sh
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/../lib.sh"

cases=${CASES:-tape speed}
if [[ " $cases " == *" speed "* ]]; then
  SIZE_MB=${SPEED_MB:-1024} "$root/bench/restore/speed.sh" "$build"
fi
[[ " $cases " == *" tape "* ]] || exit 0

size_mb=${SIZE_MB:-2048}
runs=${RUNS:-3}
DIR=${DIR:-/var/tmp}
seed=${SEED:-1}
single_at=${SINGLE_AT:-0.05 0.5 0.78 0.95 1.05 1.25}
need_root "FUSE mounts"
need_tools jq getfattr fusermount3 cmp shuf split sqlite3

cmake --build "$build" --target mixtape mount.mixtape >/dev/null
mixtape="$build/cli/mixtape"
mounter="$build/mount-helper/mount.mixtape"
make_work restore-bench mnt
mnt="$work/mnt"
work_home
export MIXTAPE_CATALOG="$work/cat.db"
lib="$work/tapes" id="$work/id.txt"
since_places=2  # its tables give seconds to the hundredth
# Model constants (engine/tape TimingModel defaults).
rate=160e6 load_s=12 locate_base=10 locate_rate=25e9

echo "preparing $size_mb MiB of random 1 MiB files ..." >&2
mkdir -p "$work/src"
head -c $((size_mb * 1048576)) /dev/urandom | (cd "$work/src" && split -b 1M -a 4 - f)
i=0
for f in "$work"/src/f*; do
  d=$(printf 'd%02d' $((i % 16)))
  mkdir -p "$work/src/$d"
  mv "$f" "$work/src/$d/"
  i=$((i + 1))
done
mkdir -p "$lib"
backup_src --capacity 64G
serial=$(basename "$(ls "$lib"/*.tap | head -1)" .tap)
record_size=$(sqlite3 "$work/cat.db" "SELECT value FROM config WHERE key = 'record_size'")
image_bytes=$(stat -c %s "$lib/$serial.tap")
archives=$(sqlite3 "$work/cat.db" "SELECT count(*) FROM archives")
find "$work/src" -type f | sort >"$work/all.txt"
nfiles=$(wc -l <"$work/all.txt")

stat_of() { jq -r ".$1" "$2"; }

# Where each file's copy is: serial:archive_file:block of its first byte.
mount_lib "$work/cache0"
while read -r f; do
  echo "$f $(getfattr --absolute-names --only-values -n user.mixtape.replicas "$mnt/latest$f")"
done <"$work/all.txt" >"$work/where.txt"
fusermount3 -u "$mnt"
archive_of() { awk -v f="$1" '$1 == f { split($2, p, ":"); print p[2] }' "$work/where.txt"; }
block_of() { awk -v f="$1" '$1 == f { split($2, p, ":"); print p[3] }' "$work/where.txt"; }
archive_block_of() {
  sqlite3 "$work/cat.db" "SELECT first_block FROM archives WHERE archive_file = $(archive_of "$1")"
}
# The model's break-even: reading d bytes forward costs no more than a locate.
even=$(awk -v rate="$rate" -v lb="$locate_base" -v lr="$locate_rate" \
  'BEGIN { printf "%.0f", lb / (1 / rate - 1 / lr) }')

# ---------------------------------------------------------------- recall
for ((run = 1; run <= runs; run++)); do
  echo "recall run $run/$runs ..." >&2
  shuf -n 200 --random-source=<(yes "$((seed + run))") "$work/all.txt" >"$work/list.txt"
  touched=$(while read -r f; do archive_of "$f"; done <"$work/list.txt" | sort -u | wc -l)
  t[recall_touched]+="$touched "
  # mixtape: queue the list, then copy it out of the mount.
  rm -rf "$work/out" "$work/cache"
  mkdir -p "$work/out"
  t[recall_load]+="$(load) "
  mount_lib "$work/cache"
  cat "$mnt/.mixtape/stats" >"$work/s0.json"
  t0=$(now)
  cat "$work/list.txt" >"$mnt/.mixtape/recall"
  sed "s|^|$mnt/latest|" "$work/list.txt" | xargs -d '\n' cp -t "$work/out"
  t[recall_wall]+="$(since "$t0") "
  cat "$mnt/.mixtape/stats" >"$work/s1.json"
  fusermount3 -u "$mnt"
  t[recall_locates]+="$(($(stat_of locates "$work/s1.json") - $(stat_of locates "$work/s0.json"))) "
  t[recall_tape]+="$(awk -v a="$(stat_of tape_seconds "$work/s0.json")" -v b="$(stat_of tape_seconds "$work/s1.json")" 'BEGIN { printf "%.1f", b - a }') "
  while read -r f; do cmp -s "$f" "$work/out/$(basename "$f")" || { echo "run.sh: $f differs" >&2; exit 1; }; done <"$work/list.txt"
  # mixtape restore of the whole list in one command.
  rm -rf "$work/out"
  t0=$(now)
  xargs -d '\n' -a "$work/list.txt" "$mixtape" restore --to "$work/out" --library "$lib" \
    --identity "$id" --stats-json "$work/s.json" >/dev/null
  t[batch_wall]+="$(since "$t0") "
  t[batch_locates]+="$(stat_of locates "$work/s.json") "
  t[batch_tape]+="$(stat_of tape_seconds "$work/s.json") "
  # peer: one by one, in list order.
  rm -rf "$work/out"
  locates=0 tape=0 loads=0
  t0=$(now)
  while read -r f; do
    "$mixtape" restore "$f" --to "$work/out" --library "$lib" --identity "$id" \
      --stats-json "$work/s.json" >/dev/null
    locates=$((locates + $(stat_of locates "$work/s.json")))
    loads=$((loads + $(stat_of loads "$work/s.json")))
    tape=$(awk -v a="$tape" -v b="$(stat_of tape_seconds "$work/s.json")" 'BEGIN { print a + b }')
  done <"$work/list.txt"
  t[peer_wall]+="$(since "$t0") "
  t[peer_locates]+="$locates "
  t[peer_tape]+="$(printf '%.1f' "$tape") "
  t[peer_tape_noload]+="$(awk -v a="$tape" -v n="$loads" -v l="$load_s" 'BEGIN { printf "%.1f", a - n * l }') "
done

# ---------------------------------------------------------------- single file
# single_restore KEY FILE: restores FILE alone, records its numbers under KEY.
single_restore() {
  local key=$1 f=$2
  rm -rf "$work/out"
  t[${key}_load]+="$(load) "
  "$mixtape" restore "$f" --to "$work/out" --library "$lib" --identity "$id" \
    --stats-json "$work/s.json" >/dev/null
  cmp -s "$f" "$work/out$f" || { echo "run.sh: $f differs" >&2; exit 1; }
  local size block a0 got bound hbound
  size=$(stat -c %s "$f")
  block=$(block_of "$f")
  a0=$(archive_block_of "$f")
  got=$(stat_of tape_seconds "$work/s.json")
  # Lower bound: load, then reach the member's block from BOT the cheaper
  # way, then stream its records (image bytes: a record is 8 + its size).
  # Through the header: reach the archive's first record, read it, reach
  # the member's block from the next one.
  read -r bound hbound < <(awk -v b="$block" -v a="$a0" -v r="$record_size" -v s="$size" \
    -v rate="$rate" -v l="$load_s" -v lb="$locate_base" -v lr="$locate_rate" '
    function reach(d,  x) { if (d <= 0) return 0; x = lb + d / lr; return d / rate < x ? d / rate : x }
    BEGIN {
      rec = (r + 8) / rate; recs = int((s + r - 1) / r)
      direct = l + reach(b * (r + 8)) + recs * rec
      header = b == a ? direct : l + reach(a * (r + 8)) + rec + reach((b - a - 1) * (r + 8)) + recs * rec
      printf "%.2f %.2f\n", direct, header }')
  t[${key}_where]+="$(awk -v b="$block" -v r="$record_size" -v e="$even" 'BEGIN { printf "%.2f", b * (r + 8) / e }') "
  t[${key}_into]+="$(awk -v b="$block" -v a="$a0" -v r="$record_size" 'BEGIN { printf "%.0f", (b - a) * (r + 8) / 1e6 }') "
  t[${key}_locates]+="$(stat_of locates "$work/s.json") "
  t[${key}_tape]+="$(printf '%.2f' "$got") "
  t[${key}_bound]+="$bound "
  t[${key}_hbound]+="$hbound "
  t[${key}_ratio]+="$(awk -v a="$got" -v b="$bound" 'BEGIN { printf "%.3f", a / b }') "
  t[${key}_hratio]+="$(awk -v a="$got" -v b="$hbound" 'BEGIN { printf "%.3f", a / b }') "
}
for ((run = 1; run <= runs; run++)); do
  echo "single-file run $run/$runs ..." >&2
  single_restore single "$(awk -v s="$((seed * 1000 + run))" 'BEGIN { srand(s) } { a[NR] = $0 } END { print a[int(rand() * NR) + 1] }' "$work/all.txt")"
done
# The files nearest to fractions of the break-even distance from BOT.
for at in $single_at; do
  echo "single-file restore at $at x break-even ..." >&2
  target=$(awk -v x="$at" -v e="$even" 'BEGIN { printf "%.0f", x * e }')
  f=$(awk -v t="$target" -v r="$record_size" '{ split($2, p, ":"); d = p[3] * (r + 8) - t; if (d < 0) d = -d }
    NR == 1 || d < best { best = d; f = $1 } END { print f }' "$work/where.txt")
  single_restore sweep "$f"
done

# ---------------------------------------------------------------- full restore
for ((run = 1; run <= runs; run++)); do
  echo "full restore run $run/$runs ..." >&2
  rm -rf "$work/out"
  t[full_load]+="$(load) "
  t0=$(now)
  "$mixtape" restore "$work/src" --to "$work/out" --library "$lib" --identity "$id" \
    --stats-json "$work/s.json" >/dev/null
  t[full_wall]+="$(since "$t0") "
  bytes=$(stat_of bytes_read "$work/s.json")
  tape=$(stat_of tape_seconds "$work/s.json")
  loads=$(stat_of loads "$work/s.json")
  t[full_locates]+="$(stat_of locates "$work/s.json") "
  t[full_tape]+="$(printf '%.1f' "$tape") "
  t[full_stream]+="$(awk -v b="$bytes" -v r="$rate" 'BEGIN { printf "%.1f", b / r }') "
  t[full_share]+="$(awk -v b="$bytes" -v r="$rate" -v s="$tape" 'BEGIN { printf "%.4f", b / r / s }') "
  t[full_share_noload]+="$(awk -v b="$bytes" -v r="$rate" -v s="$tape" -v n="$loads" -v l="$load_s" \
    'BEGIN { printf "%.4f", b / r / (s - n * l) }') "
done
diff -r "$work/src" "$work/out$work/src" >/dev/null || { echo "run.sh: full restore differs" >&2; exit 1; }

# ---------------------------------------------------------------- found tape
for ((run = 1; run <= runs; run++)); do
  echo "found-tape run $run/$runs ..." >&2
  rm -rf "$work/found" "$work/fhome"
  mkdir -p "$work/found" "$work/fhome"
  cp "$lib/$serial.tap" "$work/found/$serial.tap"
  t[recover_load]+="$(load) "
  t0=$(now)
  HOME="$work/fhome" MIXTAPE_CATALOG= "$mounter" "$work/found/$serial.tap" "$mnt" \
    -o "identity=$id,cache=$work/found/cache"
  t[recover_wall]+="$(since "$t0") "
  cat "$mnt/.mixtape/stats" >"$work/s.json"
  n=$(find "$mnt/latest" -type f | wc -l)
  fusermount3 -u "$mnt"
  [ "$n" = "$nfiles" ] || { echo "run.sh: the found tape shows $n files, not $nfiles" >&2; exit 1; }
  t[recover_tape]+="$(stat_of tape_seconds "$work/s.json") "
  t[recover_bytes]+="$(stat_of bytes_read "$work/s.json") "
  t[recover_eod]+="$(stat_of eod_spaces "$work/s.json") "
  t[recover_spaces]+="$(stat_of filemark_spaces "$work/s.json") "
  t[recover_rewinds]+="$(stat_of rewinds "$work/s.json") "
  # Peer: read the whole tape (verify reads every archive and index).
  "$mixtape" verify --library "$lib" --identity "$id" --stats-json "$work/v.json" >/dev/null
  t[verify_tape]+="$(stat_of tape_seconds "$work/v.json") "
done
full_read=$(awk -v b="$image_bytes" -v r="$rate" -v l="$load_s" 'BEGIN { printf "%.1f", l + b / r }')
# The same recovery on a full LTO-6 tape (2.5 TB): a found image is opened,
# not loaded (add the load), and the space to EOD and the rewind from the
# end (there is one) cover the whole tape instead of this image.
lto6=2.5e12

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }

echo
echo "Restore: $nfiles files of 1 MiB ($size_mb MiB) on one tape ($serial, $archives archives, image $image_bytes bytes, records of $record_size), age-encrypted; median of $runs runs; LTO-6 timing model"
echo "machine: $(machine), work in $DIR ($(device_of "$DIR"))"
echo
echo "recall of 200 random files (load per run: ${t[recall_load]})"
printf '%-46s %9s %14s %9s\n' "" "locates" "tape_seconds" "wall s"
printf '%-46s %9s %14s %9s\n' "archives touched by the list" "$(m recall_touched)" "" ""
printf '%-46s %9s %14s %9s\n' "mixtape: .mixtape/recall + cp from the mount" "$(m recall_locates)" "$(m recall_tape)" "$(m recall_wall)"
printf '%-46s %9s %14s %9s\n' "mixtape restore of the 200 in one command" "$(m batch_locates)" "$(m batch_tape)" "$(m batch_wall)"
printf '%-46s %9s %14s %9s\n' "peer: mixtape restore, one file at a time" "$(m peer_locates)" "$(m peer_tape)" "$(m peer_wall)"
printf '%-46s %9s %14s %9s\n' "  peer without its 200 loads" "" "$(m peer_tape_noload)" ""
echo "ratio peer/mixtape: locates $(ratio "$(m peer_locates)" "$(m recall_locates)"), tape_seconds $(ratio "$(m peer_tape)" "$(m recall_tape)") ($(ratio "$(m peer_tape_noload)" "$(m recall_tape)") without the peer's loads)"
echo
echo "single-file restore (load per run: ${t[single_load]}); break-even $even bytes"
for key in single sweep; do
  [ -n "${t[${key}_tape]:-}" ] || continue
  [ "$key" = single ] && echo "  random files:" || echo "  files at fractions of the break-even (load: ${t[sweep_load]}):"
  echo "    member at (x break-even): ${t[${key}_where]}; MB into its archive: ${t[${key}_into]}"
  echo "    locates: ${t[${key}_locates]}(target <= 2)"
  echo "    tape_seconds: ${t[${key}_tape]}; lower bound: ${t[${key}_bound]}; through the header: ${t[${key}_hbound]}"
  echo "    tape_seconds / lower bound: ${t[${key}_ratio]}median $(m ${key}_ratio), max $(echo "${t[${key}_ratio]}" | tr ' ' '\n' | sort -g | tail -1) (target <= 1.10)"
  echo "    tape_seconds / bound through the header: ${t[${key}_hratio]}"
done
echo
echo "full restore of the tape (load per run: ${t[full_load]})"
echo "  tape_seconds $(m full_tape), of which streaming $(m full_stream): share $(m full_share) (target >= 0.99); without the load: $(m full_share_noload); locates ${t[full_locates]}; wall $(m full_wall) s"
echo
echo "catalog recovery from a found tape (load per run: ${t[recover_load]})"
echo "  mount.mixtape TAPE.tap: tape_seconds $(m recover_tape) (eod spaces ${t[recover_eod]}, bytes read $(m recover_bytes)); wall $(m recover_wall) s"
echo "  peer, bscan-style full read: mixtape verify $(m verify_tape) s; model, every byte of the image: $full_read s; ratio $(ratio "$(m verify_tape)" "$(m recover_tape)")"
echo "  (filemark spaces ${t[recover_spaces]}, rewinds ${t[recover_rewinds]}: one of them from the end)"
echo "  full LTO-6 tape (2.5 TB), same model: recovery $(awk -v m="$(m recover_tape)" -v b="$image_bytes" -v t="$lto6" -v l="$load_s" -v lr="$locate_rate" 'BEGIN { printf "%.0f", m + l + (t - b) / lr + 60 * (t - b) / t }') s (this run's + load + the longer space to EOD and rewind; target < 300), full read $(awk -v r="$rate" -v l="$load_s" -v t="$lto6" 'BEGIN { printf "%.0f", l + t / r }') s"
echo "all runs:"
dump_runs
