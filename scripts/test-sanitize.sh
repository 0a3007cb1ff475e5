#!/usr/bin/env bash
# The test suite built with AddressSanitizer, LeakSanitizer and
# UndefinedBehaviorSanitizer (into ./build-asan). Fails when any test fails
# or did not run (a skipped test fails: scripts/test-ctest.sh), or when any
# process wrote a sanitizer report, including the mount.mixtape daemons,
# whose stderr goes to /dev/null once they are mounted: every report goes to
# a file under build-asan/sanitizer-reports instead.
#
#   bash scripts/test-sanitize.sh                 the whole suite
#   bash scripts/test-sanitize.sh -L fuse         one label: builds only its
#                                                 tests (what CI runs)
#   bash scripts/test-sanitize.sh -R Mount ...    other ctest arguments
#
# The whole suite: about 10 minutes on 2 cores after a first build of about
# 15 (docs/TESTING.md).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh

build=build-asan
launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
fi
# -O1 -g: readable stacks at a bearable speed; asserts stay on.
cmake -S . -B "$build" -G Ninja -DMIXTAPE_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" \
  "${launcher[@]}" >/dev/null
# `-L label` first: only that label's tests are built (tests/CMakeLists.txt).
targets=()
if [ "${1:-}" = -L ] && [ -n "${2:-}" ]; then targets=(--target "tests-$2"); fi
nice cmake --build "$build" -j"$(nproc)" "${targets[@]}"

# File 0 of every tape carries the program that wrote it. The sanitized
# program is over 100 MB, more than the small tapes the tests label: tapes
# written in this run carry the Release build's (./build, as scripts/build.sh
# makes it) of the same sources instead.
[ -f build/build.ninja ] || cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "${launcher[@]}" >/dev/null
nice cmake --build build -j"$(nproc)" --target mixtape
export MIXTAPE_ARCHAEOLOGY_BINARY="$PWD/build/cli/mixtape"

reports="$PWD/$build/sanitizer-reports"
rm -rf "$reports"
# World-writable: some tests run mixtape as another user.
mkdir -p -m 1777 "$reports"
common="log_path=$reports/report:log_exe_name=1:print_summary=1"
# halt_on_error: the first report ends the process with a failing status.
export ASAN_OPTIONS="$common:detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1:detect_invalid_pointer_pairs=0"
export UBSAN_OPTIONS="$common:halt_on_error=1:print_stacktrace=1"
export LSAN_OPTIONS="$common"
if [ -f scripts/lsan.supp ]; then
  export LSAN_OPTIONS="$LSAN_OPTIONS:suppressions=$PWD/scripts/lsan.supp"
fi
# Tests that size their data by this run smaller trees (the same code paths).
export MIXTAPE_TEST_SANITIZED=1

status=0
# test-ctest.sh: any test skipped or not run fails the run too.
bash scripts/test-ctest.sh --test-dir "$build" --output-on-failure -j2 --timeout 900 "$@" || status=$?

shopt -s nullglob
found=("$reports"/report*)
if [ ${#found[@]} -gt 0 ]; then
  echo "test-sanitize: ${#found[@]} sanitizer report(s):" >&2
  for f in "${found[@]}"; do
    echo "==== $f" >&2
    cat "$f" >&2
  done
  status=1
fi
if [ "$status" -eq 0 ]; then
  echo "test-sanitize: all tests passed, no sanitizer reports"
fi
exit "$status"
