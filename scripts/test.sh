#!/usr/bin/env bash
# The README's test command: install dependencies, build, run every test.
# The same suite under ASan/LSan/UBSan is scripts/test-sanitize.sh
# (docs/TESTING.md); the fuzzers are scripts/fuzz.sh (docs/FUZZING.md).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
ctest --test-dir build --output-on-failure -j"$(nproc)" --timeout 900
