#!/usr/bin/env bash
# Remakes the seed corpus in fuzz/corpus/ (docs/FUZZING.md "Seeds"). Seeds
# come from the real tools: the age CLI, GNU tar, sqlite3, and a mixtape
# binary writing real tapes (plain and encrypted) into .tap images; the C2SP
# CCTV age vectors in tests/testdata/cctv-age; and hand-made SIMH images for
# the corners of the image format no writer produces. Encryption is random,
# so every run gives new bytes for the age seeds; keep the corpus small
# (docs/FUZZING.md says why).
#
#   bash fuzz/make_corpus.sh [BUILD_DIR]    (a build with cli/mixtape; default build)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
mixtape=$build/cli/mixtape
corpus=$root/fuzz/corpus
for tool in age age-keygen tar sqlite3 python3; do
  command -v "$tool" >/dev/null || { echo "make_corpus: $tool not found (scripts/install-deps.sh)" >&2; exit 1; }
done
[ -x "$mixtape" ] || { echo "make_corpus: no $mixtape; build first" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for target in age_decrypt age_armor age_keys tar_reader tape_image tape_sidecar index_db mount_options; do
  rm -rf "${corpus:?}/$target"
  mkdir -p "$corpus/$target"
done

# ---- keys: the CCTV identity, so the fuzzers' fixed keys open these files.
identity=AGE-SECRET-KEY-1EGTZVFFV20835NWYV6270LXYVK2VKNX2MMDKWYKLMGR48UAWX40Q2P2LM0
identity2=AGE-SECRET-KEY-143WN7DCXU4G8R5AXQSSYD9AEPYDNT3HXSLWSPK36CDU6E8M59SSSAGZ3KG
echo "$identity" >"$work/key"
echo "$identity2" >"$work/key2"
recipient=$(age-keygen -y "$work/key")
recipient2=$(age-keygen -y "$work/key2")

# ---- age files from the age CLI.
d=$corpus/age_decrypt
printf 'hello, mixtape\n' | age -r "$recipient" >"$d/age-cli-x25519"
age -r "$recipient" </dev/null >"$d/age-cli-empty"
printf 'two recipients\n' | age -r "$recipient2" -r "$recipient" >"$d/age-cli-two-recipients"
head -c 70000 /dev/zero | age -r "$recipient" >"$d/age-cli-two-chunks"
printf 'armored\n' | age -a -r "$recipient" >"$d/age-cli-armored"
cp "$d/age-cli-armored" "$corpus/age_armor/age-cli-armored"
head -c 300 /dev/zero | age -a -r "$recipient" >"$corpus/age_armor/age-cli-armored-multiline"

# ---- the CCTV vectors: the age file after the blank line, inflated when
# compressed. Multi-chunk files are 64 KiB and more each: all but one are
# left out (age-cli-two-chunks above is the other), so the corpus stays small
# and the fuzzers fast.
python3 - "$root/tests/testdata/cctv-age" "$corpus" <<'EOF'
import os, sys, zlib
src, corpus = sys.argv[1], sys.argv[2]
for name in sorted(os.listdir(src)):
    if name in ("README.md", "SOURCE.txt") or name.startswith("hybrid"):
        continue
    raw = open(os.path.join(src, name), "rb").read()
    head, _, body = raw.partition(b"\n\n")
    if b"compressed: zlib" in head:
        body = zlib.decompress(body)
    if len(body) > 4096 and name != "stream_two_final_chunks":
        continue
    target = "age_armor" if b"armored: yes" in head else "age_decrypt"
    open(os.path.join(corpus, target, "cctv-" + name), "wb").write(body)
    for line in head.split(b"\n"):
        if line.startswith(b"identity: AGE-SECRET-KEY-1"):
            open(os.path.join(corpus, "age_keys", "cctv-identity"), "wb").write(line[10:] + b"\n")
EOF

# ---- key text.
k=$corpus/age_keys
age-keygen -o "$k/age-keygen-identity-file" 2>/dev/null
"$mixtape" keygen -o "$k/mixtape-keygen-identity-file" 2>/dev/null
printf '# two keys, CRLF\r\n%s\r\n\r\n%s\r\n' "$identity" "$identity2" >"$k/identity-file-crlf"
printf '# recipients\n%s\n%s\n' "$recipient" "$recipient2" >"$k/recipients-file"
printf '%s' "$recipient" >"$k/recipient"
printf '%s' "$identity" >"$k/identity"
printf 'TEiF0ypqr+bpvcqXNyCVJpL7OuwPdVwPL7KQEbFDOCc' >"$k/stanza-base64"

# ---- real tapes written by mixtape: one plain, one encrypted to the CCTV
# recipient. Small files, a long name, a symlink, an empty directory.
src=$work/src
mkdir -p "$src/dir/empty" "$src/a-directory-whose-name-is-long-enough-that-ustar-needs-its-prefix-field-or-a-pax-path-record-x"
printf 'first file\n' >"$src/dir/one.txt"
head -c 1500 /dev/zero | tr '\0' 'x' >"$src/dir/two.bin"
printf 'deep\n' >"$src/a-directory-whose-name-is-long-enough-that-ustar-needs-its-prefix-field-or-a-pax-path-record-x/f"
ln -s one.txt "$src/dir/link"
for kind in plain age; do
  export MIXTAPE_CATALOG=$work/$kind.db
  if [ $kind = plain ]; then
    "$mixtape" init --no-encryption --record-size 4K >/dev/null
  else
    "$mixtape" init --recipient "$recipient" --record-size 4K >/dev/null
  fi
  "$mixtape" label --serial "F${kind:0:1}0001" --device "$work/$kind.tap" --capacity 64M >/dev/null
  "$mixtape" backup "$src" --device "$work/$kind.tap" --copies 1 >/dev/null
  python3 "$root/tests/backup/simh_split.py" "$work/$kind.tap" "$work/$kind-files" >/dev/null
done
unset MIXTAPE_CATALOG
age -d -i "$work/key" "$work/age-files/2" >/dev/null  # the stock CLI opens it
cp "$work/age-files/2" "$d/mixtape-archive"
cp "$work/plain-files/2" "$corpus/tar_reader/mixtape-archive.tar"
# The label alone: file 0 up to its second member, then the end marker.
python3 - "$work/plain-files/0" "$corpus/tar_reader/mixtape-label.tar" <<'EOF'
import sys, tarfile
data = open(sys.argv[1], "rb").read()
with tarfile.open(sys.argv[1]) as t:
    second = t.getmembers()[1].offset
open(sys.argv[2], "wb").write(data[:second] + bytes(1024))
EOF
# Indexes with 512-byte pages: the same database, a quarter of the bytes.
for pair in archive-index:1 trailing-index:3; do
  cp "$work/plain-files/${pair#*:}" "$work/${pair%%:*}.db"
  sqlite3 "$work/${pair%%:*}.db" 'PRAGMA page_size = 512; VACUUM;'
  cp "$work/${pair%%:*}.db" "$corpus/index_db/mixtape-${pair%%:*}.db"
done

# ---- tars from GNU tar.
t=$work/tar
mkdir -p "$t/d"
printf 'hello\n' >"$t/d/file"
ln -s file "$t/d/sym"
ln "$t/d/file" "$t/d/hard"
mkdir -p "$t/d/long-long-long-long-long-long-long-long-long-long-long-long-long-long-long-long-long-long-name"
printf 'x' >"$t/d/long-long-long-long-long-long-long-long-long-long-long-long-long-long-long-long-long-long-name/leaf-with-a-name-that-is-long-too"
for format in pax gnu ustar; do
  tar -b 1 --format=$format --owner=0 --group=0 --numeric-owner --mtime=@1700000000 -C "$t" -cf "$corpus/tar_reader/gnu-tar-$format.tar" d 2>/dev/null || true
done
tar -b 1 --format=pax --pax-option='globexthdr.name=g,MIXTAPE.blake2b256=0000000000000000000000000000000000000000000000000000000000000000' \
  -C "$t" -cf "$corpus/tar_reader/gnu-tar-pax-global.tar" d/file
tar -C "$t" -cf - d/file | head -c 700 >"$corpus/tar_reader/gnu-tar-truncated.tar"

# ---- SIMH images: a tape holding the real label and archive, and the
# corners of the format (docs/TAPE.md, specs/simh-tap.txt).
python3 - "$work/plain-files" "$corpus/tape_image" "$corpus/tape_sidecar" "$corpus/tar_reader/mixtape-label.tar" <<'EOF'
import os, struct, sys
files, out, sidecar_out, label = sys.argv[1:5]
def rec(data, cls=0):
    n = struct.pack("<I", len(data) | cls << 28)
    return n + data + (b"\0" if len(data) % 2 else b"") + n
FM = struct.pack("<I", 0)
EOM = struct.pack("<I", 0xFFFFFFFF)
GAP = struct.pack("<I", 0xFFFFFFFE)
HALF = struct.pack("<I", 0xFFFEFFFF)
def records(data, size=4096):
    return b"".join(rec(data[i:i + size]) for i in range(0, len(data), size))
tape = records(open(label, "rb").read()) + FM + records(open(os.path.join(files, "2"), "rb").read()) + FM
images = {
    "mixtape-label-and-archive.tap": tape,
    "empty.tap": b"",
    "one-filemark.tap": FM,
    "odd-records.tap": rec(b"a") + rec(b"bcd") + FM + rec(b"efgh" * 3) + FM + FM,
    "gaps-and-markers.tap": rec(b"x" * 6) + GAP + GAP + rec(b"y" * 5) + HALF[:2] + rec(b"z") + struct.pack("<I", 0x70000010) + FM + EOM + rec(b"after eom"),
    "bad-records.tap": rec(b"good") + rec(b"bad!", 8) + struct.pack("<I", 0x80000000) + rec(b"private", 3) + FM,
    "length-mismatch.tap": struct.pack("<I", 4) + b"abcd" + struct.pack("<I", 5) + FM + rec(b"next"),
    "truncated-record.tap": rec(b"whole") + FM + struct.pack("<I", 100) + b"cut short",
}
for name, data in images.items():
    open(os.path.join(out, name), "wb").write(data)

# Sidecar seeds: image, .meta, and the .idx ImageIndex::save would write.
def fnv(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h
def index_of(image):
    blocks, marks, pos = [], [], 0
    while pos + 4 <= len(image):
        (w,) = struct.unpack_from("<I", image, pos)
        if w == 0xFFFFFFFF: break
        if w == 0:
            marks.append(len(blocks)); blocks.append(pos); pos += 4; continue
        if w == 0xFFFEFFFF: pos += 2; continue
        cls, n = w >> 28, w & 0x0FFFFFFF
        if cls in (7, 0xF): pos += 4; continue
        if cls == 8 and n == 0: blocks.append(pos); pos += 4; continue
        end = pos + 8 + n + n % 2
        if end > len(image): break
        if cls in (0, 8): blocks.append(pos)
        pos = end
    body = b"MXTAPIDX" + struct.pack("<IIQQQQQQ", 2, 0, len(image), 0, 0, 0, pos, len(blocks))
    for i, off in enumerate(blocks):
        body += struct.pack("<Q", off | (1 << 63 if i in marks else 0))
    return body + struct.pack("<Q", fnv(body))
meta = b"# mixtape tape image geometry (docs/TAPE.md); sizes in image bytes\ncapacity: 1048576\nearly-warning: 16384\n"
for name in ("odd-records.tap", "gaps-and-markers.tap", "bad-records.tap", "truncated-record.tap"):
    image = images[name]
    for with_meta in (False, True):
        m = meta if with_meta else b""
        seed = struct.pack("<IH", len(image), len(m)) + image + m + index_of(image)
        open(os.path.join(sidecar_out, name[:-4] + ("-meta" if with_meta else "") + ".seed"), "wb").write(seed)
EOF

# ---- mount.mixtape command lines: NUL-separated arguments after a byte
# choosing whether mount(8) called the helper.
python3 - "$corpus/mount_options" <<'EOF'
import os, sys
lines = {
    "fstab-catalog": (1, ["/var/lib/mixtape/catalog.db", "/mnt/tape", "-o", "rw,noauto,user,_netdev,nofail,x-systemd.automount,identity=/root/id.txt,library=/srv/tapes,cache_size=2G,wait=30,recall=read"]),
    "found-tape": (1, ["/srv/tapes/L00042.tap", "/mnt/found", "-o", "rw,identity=/root/id.txt,cache=/var/cache/mixtape,cache_size=512M"]),
    "sloppy-verbose": (0, ["cat.db", "/mnt/x", "-svn", "-o", "bogus=1,foreground,debug,allow_other,recall=never,wait=0.5"]),
    "device-changer": (0, ["cat.db", "relative/dir/../mnt/", "-odevice=/dev/nst0,changer=/dev/sg3,passphrase_file=/root/pass", "-f"]),
}
for name, (by_mount, args) in lines.items():
    open(os.path.join(sys.argv[1], name), "wb").write(bytes([by_mount]) + b"\0".join(a.encode() for a in args))
EOF

# ---- inputs that once crashed a target: every run checks them again.
for kept in "$root"/tests/testdata/fuzz-regressions/*/; do
  target=$(basename "$kept")
  for input in "$kept"*; do cp "$input" "$corpus/$target/regression-$(basename "$input")"; done
done

du -sh "$corpus"
for target in "$corpus"/*/; do
  printf '%-14s %3d seeds\n' "$(basename "$target")" "$(find "$target" -type f | wc -l)"
done
