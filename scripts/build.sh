#!/usr/bin/env bash
# Configures and builds mixtape into ./build (Release; pass -DCMAKE_BUILD_TYPE=RelWithDebInfo to profile).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build build -j"$(nproc)"
