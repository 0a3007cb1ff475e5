#!/usr/bin/env bash
# The operator's commands against a catalog of FILES files (default
# 1,000,000, made by gen_catalog): each reads only the catalog, and must stay
# keyed at that size. A second backup run is added with sqlite3 (CHANGED
# files get a new version in it), so that diff has something to find; then,
# one run each (wall seconds, and the command's own CPU seconds):
#   status, tapes, snapshots, check, check --max-age 90d,
#   find 'f00012*' (a prefix: a range of the names index), find '*.nothing'
#   (every name read from the index), diff 1 2, diff 1 1, ls of a directory,
#   backup --dry-run of a small tree (the catalog is copied with VACUUM INTO),
#   retire (the copies of 1M versions recounted), tape location.
#
#   bench/catalog/operator.sh [BUILD_DIR]     (default BUILD_DIR: build)
#   env: FILES=1000000 DIRS=100000 BIG=100000 CHANGED=1000 DIR=/var/tmp
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/../lib.sh"

catalog_layout
changed=${CHANGED:-1000}
DIR=${DIR:-/var/tmp}

cmake --build "$build" --target gen_catalog mixtape >/dev/null
make_work operator-bench
work_home
catalog="$work/catalog.db"
export MIXTAPE_CATALOG="$catalog"
mkdir -p "$work/tree"
for i in $(seq 1 100); do echo "$i" > "$work/tree/f$i"; done

"$build/bench/catalog/gen_catalog" "$catalog" "$files" "$dirs" "$big" >/dev/null
"$build/cli/mixtape" status >/dev/null   # upgrades it and stamps its check
# Run 2: CHANGED files change (a new version each); the rest go on unchanged.
now=$(date +%s%N)
sqlite3 "$catalog" <<SQL
BEGIN;
INSERT INTO runs (kind, started_at_ns, finished_at_ns, files, bytes)
  VALUES ('backup', $now, $now + 1000000000, $files, 0);
INSERT INTO run_roots (run_id, root) SELECT max(id), '/bench' FROM runs;
CREATE TEMP TABLE picked AS SELECT id, file_id FROM versions WHERE id % ($files / $changed) = 0;
UPDATE versions SET last_seen_run = 1 WHERE id IN (SELECT id FROM picked);
INSERT INTO versions (file_id, kind, size, hash, mtime_ns, mode, uid, gid, uname, gname,
                      first_seen_run, last_seen_run, copies, goal)
  SELECT v.file_id, v.kind, v.size + 1, randomblob(32), v.mtime_ns + 1, v.mode, v.uid, v.gid,
         v.uname, v.gname, (SELECT max(id) FROM runs), NULL, 0, v.goal
  FROM versions v JOIN picked p ON p.id = v.id;
COMMIT;
SQL
"$build/cli/mixtape" status >/dev/null

time_it() {  # label, command...
  local label=$1 out="$work/out" start end user sys
  shift
  start=$(date +%s.%N)
  /usr/bin/time -f "%U %S" -o "$work/cpu" "$@" >"$out" 2>"$work/err" || true
  end=$(date +%s.%N)
  read -r user sys < <(tail -1 "$work/cpu")
  printf '%-30s %7.2f s wall %7.2f s cpu  %8d lines of output\n' "$label" \
    "$(echo "$end - $start" | bc)" "$(echo "$user + $sys" | bc)" "$(wc -l < "$out")"
}
m="$build/cli/mixtape"
echo "catalog: $files files, $(du -m "$catalog" | cut -f1) MB; $changed changed in run 2"
time_it status $m status
time_it tapes $m tapes
time_it snapshots $m snapshots
time_it check $m check
time_it "check --max-age 90d" $m check --max-age 90d
time_it "find 'f00012*'" $m find 'f00012*'
time_it "find '*.nothing'" $m find '*.nothing'
time_it "diff 1 2" $m diff 1 2
time_it "diff 1 1" $m diff 1 1
time_it "ls /bench/tree/d000" $m ls /bench/tree/d000
time_it "backup --dry-run (100 files)" $m backup "$work/tree" --dry-run
time_it "tape location" $m tape location BENCH1 "offsite: bank box 12"
time_it "retire (1M copies)" $m retire BENCH1 --reason worn
time_it "status (after retire)" $m status
