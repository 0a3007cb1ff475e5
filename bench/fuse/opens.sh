#!/usr/bin/env bash
# FUSE opens benchmark: how many staged small files a second 8 threads open,
# read whole and close through mount.mixtape, against the same files read
# from a directory on the same disk, in the same run, runs interleaved.
# (The load test, tests/fs/mount_load_test.cc, asserts that these opens
# are right and touch no tape; how fast they are is measured here.)
#
#   bench/fuse/opens.sh [BUILD_DIR]       (default BUILD_DIR: build)
#
#   env: FILES=256 (1 KiB-40 KiB each, in 32 directories) OPENS=20000 (per
#        run, all threads together) THREADS=8 RUNS=3 DIR=/var/tmp
# Needs root (FUSE), fusermount3, python3. Prints medians and the ratio.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/../lib.sh"

files=${FILES:-256}
opens=${OPENS:-20000}
threads=${THREADS:-8}
runs=${RUNS:-3}
DIR=${DIR:-/var/tmp}
need_tools fusermount3 python3 cmake

cmake --build "$build" --target mixtape mount.mixtape >/dev/null
make_work opens-bench mnt
mnt="$work/mnt"
mkdir -p "$work/src"
work_home
export MIXTAPE_CATALOG="$work/cat.db"

python3 - "$work/src" "$files" <<'EOF'
import os, random, sys
root, count = sys.argv[1], int(sys.argv[2])
rng = random.Random(1)
for i in range(count):
    d = os.path.join(root, "r%02d" % (i % 32))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%d" % i), "wb") as f:
        f.write(rng.randbytes(1024 + (i * 977) % 40000))
EOF
backup_src --new-library --capacity 1G
mount_lib "$work/cache"
through="$mnt/latest$work/src"
echo "staging $files files ..." >&2
# Read every file once (recalled, staged) and check it against its source.
diff -r "$work/src" "$through" >/dev/null || { echo "opens.sh: the mount differs" >&2; exit 1; }
read_before=$(grep -o '"bytes_read": [0-9]*' "$mnt/.mixtape/stats")

# Seconds for THREADS threads to open, read whole and close OPENS files of
# the tree at $1, round robin.
opens_seconds() {
  python3 - "$1" "$opens" "$threads" <<'EOF'
import os, sys, threading, time
root, total, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
paths = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs)
def work(t):
    for i in range(t, total, threads):
        fd = os.open(paths[(i * 31) % len(paths)], os.O_RDONLY)
        while os.read(fd, 1 << 16):
            pass
        os.close(fd)
workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
start = time.monotonic()
for w in workers: w.start()
for w in workers: w.join()
print("%.4f" % (time.monotonic() - start))
EOF
}

load_before=$(load3)
for ((run = 1; run <= runs; run++)); do
  echo "run $run/$runs ..." >&2
  t[direct]+="$(opens_seconds "$work/src") "
  t[mixtape]+="$(opens_seconds "$through") "
done
load_after=$(load3)
read_after=$(grep -o '"bytes_read": [0-9]*' "$mnt/.mixtape/stats")
[ "$read_before" = "$read_after" ] || { echo "opens.sh: the opens read the tape" >&2; exit 1; }

direct=$(m direct)
mixtape_s=$(m mixtape)
echo
echo "opens of staged files: $opens opens of $files files (1-40 KiB), $threads threads, median of $runs runs"
echo "load average before: $load_before; after: $load_after"
awk -v n="$opens" -v d="$direct" -v m="$mixtape_s" 'BEGIN {
  printf "%-28s %10s %12s\n", "reader", "seconds", "opens/s"
  printf "%-28s %10.3f %12.0f\n", "direct (source directory)", d, n / d
  printf "%-28s %10.3f %12.0f\n", "mount.mixtape (staged)", m, n / m
  printf "mixtape / direct: %.2f\n", d / m
}'
