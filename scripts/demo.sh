#!/usr/bin/env bash
# The README's main job: install dependencies, build, back up a folder (a
# sample made here, or the one given as $1) to a virtual tape library of .tap
# images, mount the catalog, and show a directory, a file's versions and its
# replicas through the mount; reading a file recalls it from tape.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
mixtape=$PWD/build/cli/mixtape

demo=${MIXTAPE_DEMO_DIR:-/tmp/mixtape-demo}
rm -rf "$demo"
mkdir -p "$demo"
export MIXTAPE_CATALOG=$demo/catalog.db
source_dir=${1:-}
if [ -z "$source_dir" ]; then
  source_dir=$demo/photos
  mkdir -p "$source_dir/2019/raw" "$source_dir/2020" "$source_dir/empty-album"
  for i in 1 2 3; do head -c $((200000 * i)) /dev/urandom >"$source_dir/2019/raw/IMG_000$i.raw"; done
  head -c 1500000 /dev/urandom >"$source_dir/2020/clip.mov"
  echo "first draft" >"$source_dir/2020/notes.txt"
  ln -s ../2019/raw/IMG_0001.raw "$source_dir/2020/favourite.raw"
fi
source_dir=$(cd "$source_dir" && pwd)

echo "== mixtape init (identity in $demo/identity.txt)"
"$mixtape" init --copies 2 --identity-out "$demo/identity.txt"
echo "== mixtape backup $source_dir --library $demo/tapes"
"$mixtape" backup "$source_dir" --library "$demo/tapes" --new-library --capacity 256M --stats-json "$demo/stats.json"
if [ -f "$source_dir/2020/notes.txt" ] && [ -z "${1:-}" ]; then
  echo "second draft" >"$source_dir/2020/notes.txt"
  echo "== changed notes.txt; backup again"
  "$mixtape" backup "$source_dir" --library "$demo/tapes" --capacity 256M
fi
echo "== mixtape tapes"
"$mixtape" tapes
echo "== mixtape ls --versions --replicas $source_dir -R"
"$mixtape" ls -R --versions --replicas "$source_dir"
echo "== mixtape status"
"$mixtape" status
echo "== drive counters of the first backup ($demo/stats.json)"
cat "$demo/stats.json"
echo "== the first tape, file by file"
first=$(ls "$demo/tapes"/*.tap | head -n 1)
"$mixtape" tape info --device "$first"

mnt=$demo/mnt
mkdir -p "$mnt"
echo "== mount.mixtape $MIXTAPE_CATALOG $mnt -o library=$demo/tapes,identity=$demo/identity.txt"
"$PWD/build/mount-helper/mount.mixtape" "$MIXTAPE_CATALOG" "$mnt" \
  -o "library=$demo/tapes,identity=$demo/identity.txt,cache=$demo/cache"
trap 'fusermount3 -u "$mnt" 2>/dev/null || true' EXIT
echo "== ls $mnt"
ls "$mnt"
dir=$mnt/latest$source_dir
echo "== ls -la $dir"
ls -la "$dir"
file=$(find "$dir" -maxdepth 2 -type f | sort | head -n 1)
[ -z "${1:-}" ] && file=$dir/2020/notes.txt
echo "== ls $file.versions/"
ls "$file.versions/"
echo "== ls $file.replicas/"
ls "$file.replicas/"
echo "== getfattr -d $file"
getfattr -d --absolute-names "$file"
echo "== cat $file (recalled from tape, verified, staged)"
head -c 300 "$file" | cat -v | head -n 5
echo
echo "== cat $mnt/.mixtape/status"
cat "$mnt/.mixtape/status"
echo "== done; the mount stays at $mnt until: fusermount3 -u $mnt"
trap - EXIT
