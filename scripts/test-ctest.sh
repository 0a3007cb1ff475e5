#!/usr/bin/env bash
# ctest, strict: runs `ctest "$@"` and fails when any test failed, when
# none matched, and when any test did not run at all: skipped or disabled.
# A skipped test is a test that did not test: GoogleTest marks every test of
# a suite whose SetUpTestSuite failed as skipped, and ctest counts skipped
# tests as passing (docs/TESTING.md, "Skipped is a failure").
#
#   bash scripts/test-ctest.sh --test-dir build -j2 --timeout 900 [-L LABEL] ...
#
# scripts/test.sh and scripts/test-sanitize.sh run their tests through it;
# tests/support/strict_ctest_test.cc proves that a forced setup failure makes
# it fail.
set -uo pipefail

junit=$(mktemp "${TMPDIR:-/tmp}/mixtape-ctest-XXXXXX.xml")
trap 'rm -f "$junit"' EXIT

ctest --no-tests=error --output-junit "$junit" "$@"
status=$?

# ctest's JUnit report: status="notrun" for skipped tests (and for those
# that could not start), status="disabled" for disabled ones.
if [ -s "$junit" ]; then
  not_run=$(grep -E '<testcase .*status="(notrun|disabled)"' "$junit" |
    sed -E 's/.*<testcase name="([^"]*)".*status="([^"]*)".*/  \1 (\2)/')
else
  not_run=""
  if [ "$status" -eq 0 ]; then
    echo "test-ctest: ctest wrote no report ($junit); cannot tell what ran" >&2
    status=1
  fi
fi
if [ -n "$not_run" ]; then
  count=$(printf '%s\n' "$not_run" | wc -l)
  echo "test-ctest: $count test(s) did not run (skipped or disabled); a test that does not run" \
    "tests nothing, so this run fails:" >&2
  printf '%s\n' "$not_run" >&2
  [ "$status" -ne 0 ] || status=1
fi
exit "$status"
