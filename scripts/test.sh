#!/usr/bin/env bash
# The README's test command (and CI's): install dependencies, build, run
# every test; then the mount tests again built with ASan/LSan/UBSan (the
# load test's leaks and races), and every fuzzer for a short time over its
# seed corpus. The whole suite under the sanitizers is
# `bash scripts/test-sanitize.sh`; long fuzzing is `bash scripts/fuzz.sh 600`
# (docs/TESTING.md, docs/FUZZING.md).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
# Through test-ctest.sh: a skipped test (a failed SetUpTestSuite) fails the run.
bash scripts/test-ctest.sh --test-dir build --output-on-failure -j"$(nproc)" --timeout 900
bash scripts/test-sanitize.sh -L fuse
JOBS=$(nproc) bash scripts/fuzz.sh "${FUZZ_SECONDS:-10}"
