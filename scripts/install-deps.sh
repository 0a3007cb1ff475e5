#!/usr/bin/env bash
# Installs what mixtape needs to build and test on Debian 12. Run as root.
# Skips apt entirely when everything is already present.
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config git
  libfuse3-dev fuse3 libsqlite3-dev sqlite3 libsodium-dev libarchive-dev
  libb2-dev libcli11-dev libgtest-dev zlib1g-dev libssl-dev
  age attr python3 python3-cryptography tar coreutils xxd gzip bzip2 xz-utils zstd
  groff-base man-db util-linux
  clang libclang-rt-14-dev llvm
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages (${missing[*]}); run as root" >&2
    exit 1
  fi
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
