#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, docs/FUZZING.md) with clang in
# build-fuzz and runs each one for a bounded time over a copy of its seed
# corpus. Fails if any target finds a crash, leak, timeout or out-of-memory;
# the input that did it is kept in build-fuzz/fuzz-artifacts/<target>/.
# Prints one line per target: runs, seconds, coverage and the result.
#
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET] [--targets a,b] [--merge-corpus]
#
#   SECONDS_PER_TARGET  default 60; CI runs 20
#   --targets a,b       only these targets (names as in fuzz/: age_decrypt, ...)
#   --merge-corpus      afterwards, add the inputs that found new coverage to
#                       fuzz/corpus/<target>/ (minimised with -merge=1); without
#                       it nothing in the source tree is written
#   env JOBS=N          targets run N at a time (default 1)
#   env FUZZ_NICE=N     nice level of the fuzzers (default 10)
#   env FUZZ_BUILD_DIR  the clang build (default build-fuzz)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}
seconds=60
merge=0
only=""
while [ $# -gt 0 ]; do
  case $1 in
    --merge-corpus) merge=1 ;;
    --targets) only=${2:?--targets needs a list}; shift ;;
    --targets=*) only=${1#--targets=} ;;
    -h | --help) sed -n '2,19p' "$0"; exit 0 ;;
    *[!0-9]* | "") echo "fuzz.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    *) seconds=$1 ;;
  esac
  shift
done
jobs=${JOBS:-1}
nice_level=${FUZZ_NICE:-10}

for tool in clang clang++ cmake ninja; do
  command -v "$tool" >/dev/null || { echo "fuzz.sh: $tool not found (run scripts/install-deps.sh)" >&2; exit 1; }
done

targets=()
for source in "$root"/fuzz/*_fuzzer.cc; do
  name=$(basename "$source" _fuzzer.cc)
  if [ -z "$only" ] || [[ ",$only," == *",$name,"* ]]; then targets+=("$name"); fi
done
[ ${#targets[@]} -gt 0 ] || { echo "fuzz.sh: no target matches '$only'" >&2; exit 2; }

# ---- build
launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
# -O1 -g with assertions on: the usual libFuzzer trade of speed for checks.
# MIXTAPE_WERROR=OFF: a clang-only warning in the engine must not stop the
# fuzzers from building (fuzz/ itself is built with -Werror).
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DMIXTAPE_FUZZ=ON -DMIXTAPE_WERROR=OFF -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
  "${launcher[@]}" >/dev/null
nice cmake --build "$build" --target mixtape_fuzzers -- -j"$(nproc)" >"$build/fuzz-build.log" 2>&1 || {
  tail -40 "$build/fuzz-build.log" >&2
  echo "fuzz.sh: build failed (full log: $build/fuzz-build.log)" >&2
  exit 1
}

# ---- run
# Scratch files of the targets (images, index databases) go to tmpfs when
# there is one: the image and index fuzzers write a file per input.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then tmp_base=/dev/shm; else tmp_base=$build; fi
scratch=$(mktemp -d "$tmp_base/mixtape-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
work=$build/fuzz-work
rm -rf "$work"
mkdir -p "$work" "$build/fuzz-artifacts"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

run_target() {
  local name=$1
  local dir=$work/$name
  local artifacts=$build/fuzz-artifacts/$name/
  # Findings of earlier runs are gone: what is there afterwards is this run's.
  rm -rf "$artifacts"
  mkdir -p "$dir/corpus" "$artifacts"
  cp -r "$root/fuzz/corpus/$name/." "$dir/corpus/"
  local dict=()
  [ -f "$root/fuzz/$name.dict" ] && dict=(-dict="$root/fuzz/$name.dict")
  local start=$SECONDS rc=0
  TMPDIR=$scratch nice -n "$nice_level" "$build/fuzz/${name}_fuzzer" "$dir/corpus" "${dict[@]}" \
    -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts" >"$dir/log" 2>&1 || rc=$?
  echo "$rc $((SECONDS - start))" >"$dir/result"
}

running=0
for name in "${targets[@]}"; do
  echo "fuzz.sh: $name for ${seconds}s ..." >&2
  run_target "$name" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait

# ---- report
failed=0
printf '%-14s %12s %8s %8s %8s  %s\n' target runs seconds cov ft result
for name in "${targets[@]}"; do
  dir=$work/$name
  read -r rc elapsed <"$dir/result"
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
  status=$(grep -E '^#[0-9]+' "$dir/log" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$status")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$status")
  if [ "$rc" -eq 0 ]; then
    result=ok
  else
    failed=1
    result="FAILED (exit $rc; log $dir/log; input in $build/fuzz-artifacts/$name/)"
  fi
  printf '%-14s %12s %8s %8s %8s  %s\n' "$name" "${runs:-?}" "$elapsed" "${cov:-?}" "${ft:-?}" "$result"
done

if [ "$failed" -ne 0 ]; then
  for name in "${targets[@]}"; do
    read -r rc _ <"$work/$name/result"
    [ "$rc" -eq 0 ] && continue
    echo "---- $name: the end of its log" >&2
    grep -v '^#[0-9]' "$work/$name/log" | tail -40 >&2
    echo "reproduce: $build/fuzz/${name}_fuzzer <input from $build/fuzz-artifacts/$name/>" >&2
  done
  exit 1
fi

if [ "$merge" -eq 1 ]; then
  for name in "${targets[@]}"; do
    TMPDIR=$scratch "$build/fuzz/${name}_fuzzer" -merge=1 "$root/fuzz/corpus/$name" \
      "$work/$name/corpus" >"$work/$name/merge.log" 2>&1
    echo "fuzz.sh: merged into fuzz/corpus/$name: $(grep -o 'added [0-9]* new units' "$work/$name/merge.log" || echo 'nothing new')" >&2
  done
fi
