#!/usr/bin/env bash
# The README's test command: install dependencies, build, and run every
# test three ways: the Release build's suite; the same suite built with
# ASan/LSan/UBSan (scripts/test-sanitize.sh, docs/TESTING.md); and each
# libFuzzer target for a short time over its seed corpus (scripts/fuzz.sh,
# docs/FUZZING.md).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
ctest --test-dir build --output-on-failure -j"$(nproc)" --timeout 900
bash scripts/test-sanitize.sh
JOBS="$(nproc)" bash scripts/fuzz.sh 20
