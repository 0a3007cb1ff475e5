#!/usr/bin/env bash
# Fetches what mixtape-static (the program tape file 0 carries) is linked
# from, and the source of each, from Debian with apt, into OUT:
#
#   OUT/root/       the static libraries (-dev packages, unpacked, never
#                   installed): SQLite, libsodium, OpenSSL's libcrypto,
#                   libarchive and the compressors it reads through, libb2
#   OUT/sources/    the Debian source package of each (.dsc, .orig.tar.*,
#                   .debian.tar.*), and of the C library and the C++
#                   runtime the compiler links in (glibc, gcc-12), at the
#                   versions installed here
#   OUT/sources/SOURCES.txt  which source is which library, how to rebuild
#
# Each -dev package is the version the source is fetched for, so the two
# always match (the installed -dev packages may be older than what the
# archive still serves). apt runs with a configuration of its own under
# OUT/apt (the machine's Debian entries, with their sources): nothing on
# the machine is changed. Run again, it fetches nothing it has.
#
#   bash scripts/static-deps.sh OUT
set -euo pipefail
out=$(realpath -m "$1")
mkdir -p "$out/apt/lists/partial" "$out/apt/cache/archives/partial" "$out/debs" "$out/root" \
  "$out/sources"
[ -f "$out/done" ] && exit 0

# The machine's Debian archive entries (deb822), with their sources too.
list="$out/apt/debian.sources"
: >"$list"
for f in /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] || continue
  awk 'BEGIN { RS = ""; ORS = "\n\n" } /debian-archive-keyring/ {
         sub(/Types:[^\n]*/, "Types: deb deb-src"); print }' "$f" >>"$list"
done
if [ ! -s "$list" ]; then
  echo "static-deps: no Debian archive entry in /etc/apt/sources.list.d/*.sources" >&2
  exit 1
fi
apt=(apt-get -q -o "Dir::Etc::SourceList=$list" -o "Dir::Etc::SourceParts=/nonexistent"
  -o "Dir::State::Lists=$out/apt/lists" -o "Dir::Cache=$out/apt/cache"
  -o "Dir::State::status=/var/lib/dpkg/status" -o "APT::Get::List-Cleanup=0")
"${apt[@]}" update >/dev/null

manifest="$out/SOURCES.txt.new"
cat >"$manifest" <<'EOF'
The sources of bin/mixtape-<version>-<arch>
============================================

That program is statically linked: it runs on any Linux of its architecture
with nothing installed. Everything linked into it is here, as Debian source
packages (Debian 12, "bookworm"): mixtape-<version>.tar.gz is mixtape itself;
each library below is a .dsc file with the tarballs it names (the upstream
.orig.tar.* and Debian's changes, .debian.tar.*).

To look inside one without Debian's tools: tar -xf NAME.orig.tar.* (the
upstream source), tar -xf NAME.debian.tar.* (debian/patches/ holds Debian's
changes, applied in the order of debian/patches/series). With Debian's
tools: dpkg-source -x NAME.dsc unpacks and patches it.

To rebuild the program on a Debian 12 machine: install these -dev packages
(at these versions or later ones of Debian 12), then build mixtape as its
README says; `cmake --build build --target mixtape-static` makes the same
program (build/cli/mixtape-static). Without Debian, build each library from
its source (./configure && make), then mixtape with CMake, linking with
-static against them.

library                 linked from (Debian package)      source package
EOF

# library name, -dev package: static libraries fetched as -dev packages.
libraries=(
  "SQLite:libsqlite3-dev"
  "libsodium:libsodium-dev"
  "OpenSSL libcrypto:libssl-dev"
  "libarchive:libarchive-dev"
  "zlib (gzip):zlib1g-dev"
  "bzip2:libbz2-dev"
  "liblzma (xz):liblzma-dev"
  "zstd:libzstd-dev"
  "libb2 (BLAKE2b):libb2-dev"
)
cd "$out/debs"
for entry in "${libraries[@]}"; do
  name=${entry%%:*}
  package=${entry#*:}
  # The newest version whose source the archive serves too (an index may
  # name a version whose files are not there yet).
  fetched=
  for version in $("${apt[@]/apt-get/apt-cache}" madison "$package" | awk '{ print $3 }'); do
    rm -f "${package}"_*.deb
    "${apt[@]}" download "$package=$version" >/dev/null 2>&1 || continue
    deb=$(ls "${package}"_*.deb)
    source=$(dpkg-deb -f "$deb" Source)
    source=${source:-$package}
    if [[ $source =~ ^([^ ]+)\ \((.*)\)$ ]]; then
      source=${BASH_REMATCH[1]}
      source_version=${BASH_REMATCH[2]}
    else
      source_version=$version
    fi
    # Into a scratch folder first: a version whose files are only partly
    # there leaves nothing behind.
    attempt=$(mktemp -d "$out/attempt.XXXXXX")
    if (cd "$attempt" && "${apt[@]}" source --download-only "$source=$source_version" \
      >/dev/null 2>&1); then
      mv "$attempt"/* "$out/sources/"
      rm -rf "$attempt"
      fetched=yes
      break
    fi
    rm -rf "$attempt"
  done
  if [ -z "$fetched" ]; then
    echo "static-deps: no version of $package whose source the archive serves" >&2
    exit 1
  fi
  dpkg-deb -x "$deb" "$out/root"
  printf '%-23s %-33s %s\n' "$name" "$package $version" "$source $source_version" >>"$manifest"
done

# The compiler's own: the C library (glibc) and the C++ runtime (gcc-12's
# libstdc++ and libgcc), as installed here.
for entry in "C library:libc6-dev" "C++ runtime:libstdc++-12-dev"; do
  name=${entry%%:*}
  package=${entry#*:}
  read -r source source_version version < <(dpkg-query -W \
    -f='${source:Package} ${source:Version} ${Version}\n' "$package")
  if ! (cd "$out/sources" && "${apt[@]}" source --download-only "$source=$source_version" \
    >/dev/null); then
    echo "static-deps: the archive no longer serves $source $source_version, which the" \
      "installed $package links into the program; upgrade it (apt-get install $package)" >&2
    exit 1
  fi
  printf '%-23s %-33s %s\n' "$name" "$package $version" "$source $source_version" >>"$manifest"
done
rm -f "$out"/sources/*.asc
mv "$manifest" "$out/sources/SOURCES.txt"
touch "$out/done"
