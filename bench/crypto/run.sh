#!/usr/bin/env bash
# Crypto benchmark: mixtape's age encryption, decryption and BLAKE2b-256
# against `age -r`, `age -d` and `b2sum -l 256` on the same file, in the same
# run, runs interleaved so machine noise hits both sides alike. Prints medians
# and mixtape/peer ratios. Wall-clock time of each whole process, file to file.
#
# Rows "hash, libb2": the same single stream through libb2 instead of
# libsodium; "hash 1MiB, avx2": the lanes as on a CPU without AVX-512
# (bench/cpu.sh). Encryption and decryption rows are native.
#
#   bench/crypto/run.sh [BUILD_DIR]         (default BUILD_DIR: build)
#   env: SIZE_MB=1024 RUNS=3 THREADS=2 DIR=/dev/shm (tmpfs if present, else /tmp)
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/../lib.sh"

size_mb=${SIZE_MB:-1024}
runs=${RUNS:-3}
threads=${THREADS:-2}
default_dir_tmpfs
need_tools -h scripts/install-deps.sh age age-keygen b2sum cmake split

cmake --build "$build" --target crypto_bench >/dev/null
bench="$build/bench/crypto/crypto_bench"
make_work crypto-bench

echo "preparing $size_mb MiB of random data in $DIR ..." >&2
head -c $((size_mb * 1048576)) /dev/urandom >"$work/plain"
age_key
# The same bytes as 1 MiB files, for hashing many files (the writer's case).
mkdir "$work/files"
(cd "$work/files" && split -b 1M -a 5 "$work/plain" part.)
files=("$work"/files/part.*)
# Both decryptors read the same file, written by the age CLI.
age -r "$recipient" -o "$work/peer.age" "$work/plain"

load_before=$(load3)
for ((run = 1; run <= runs; run++)); do
  echo "run $run/$runs ..." >&2
  time_into mixtape_encrypt "$bench" encrypt "$recipient" "$work/plain" "$work/mixtape.age" "$threads"
  time_into age_encrypt age -r "$recipient" -o "$work/age-out.age" "$work/plain"
  time_into mixtape_decrypt "$bench" decrypt "$work/key" "$work/peer.age" "$work/mixtape.out" "$threads"
  time_into age_decrypt age -d -i "$work/key" -o "$work/age.out" "$work/peer.age"
  time_into mixtape_hash "$bench" hash "$work/plain"
  time_into libb2_hash "$bench" hash-libb2 "$work/plain"
  time_into b2sum_hash b2sum -l 256 "$work/plain"
  time_into mixtape_hash_files "$bench" hash-files "${files[@]}"
  time_into mixtape_hash_files_avx2 with_cpu avx2 "$bench" hash-files "${files[@]}"
  time_into b2sum_hash_files b2sum -l 256 "${files[@]}"
done

load_after=$(load3)

# The outputs must be right for the numbers to mean anything.
cmp -s "$work/mixtape.out" "$work/plain" || { echo "run.sh: mixtape decrypt output differs" >&2; exit 1; }
cmp -s "$work/age.out" "$work/plain" || { echo "run.sh: age decrypt output differs" >&2; exit 1; }
age -d -i "$work/key" -o "$work/check.out" "$work/mixtape.age"
cmp -s "$work/check.out" "$work/plain" || { echo "run.sh: age cannot decrypt mixtape's output" >&2; exit 1; }
[ "$("$bench" hash "$work/plain" | cut -d' ' -f1)" = "$(b2sum -l 256 "$work/plain" | cut -d' ' -f1)" ] ||
  { echo "run.sh: BLAKE2b-256 digests differ" >&2; exit 1; }
[ "$("$bench" hash-libb2 "$work/plain" | cut -d' ' -f1)" = "$(b2sum -l 256 "$work/plain" | cut -d' ' -f1)" ] ||
  { echo "run.sh: libb2's BLAKE2b-256 digest differs" >&2; exit 1; }
cmp -s <(with_cpu avx2 "$bench" hash-files "${files[@]}") <(b2sum -l 256 "${files[@]}") ||
  { echo "run.sh: BLAKE2b-256 digests of the 1 MiB files differ (AVX2 lanes)" >&2; exit 1; }
cmp -s <("$bench" hash-files "${files[@]}") <(b2sum -l 256 "${files[@]}") ||
  { echo "run.sh: BLAKE2b-256 digests of the 1 MiB files differ" >&2; exit 1; }

bytes=$((size_mb * 1048576))

cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
echo
echo "crypto benchmark: $size_mb MiB of random data in $DIR, median of $runs runs, THREADS=$threads"
echo "machine: nproc=$(nproc), $cpu_model ($(cpu_name)); age $(age --version); $(b2sum --version | head -1)"
echo "load average (1/5/15 min): $load_before before, $load_after after"
echo
printf '| %-15s | %-20s | %-7s | %-12s | %-20s | %-7s | %-12s |\n' operation "mixtape (wall)" "CPU s" peer "peer (wall)" "CPU s" "mixtape/peer"
printf '|%s|%s|%s|%s|%s|%s|%s|\n' ----------------- ---------------------- --------- -------------- ---------------------- --------- --------------
row() {  # row LABEL MIXTAPE_KEY PEER_KEY PEER_NAME
  awk -v label="$1" -v m="$(median "${wall[$2]}")" -v p="$(median "${wall[$3]}")" \
    -v mc="$(median "${cpu[$2]}")" -v pc="$(median "${cpu[$3]}")" -v bytes="$bytes" -v peer="$4" 'BEGIN {
    printf "| %-15s | %5.0f MB/s (%5.2f s) | %7.2f | %-12s | %5.0f MB/s (%5.2f s) | %7.2f | %11.2fx |\n",
      label, bytes / m / 1e6, m, mc, peer, bytes / p / 1e6, p, pc, p / m }'
}
row encrypt mixtape_encrypt age_encrypt "age -r"
row decrypt mixtape_decrypt age_decrypt "age -d"
row hash mixtape_hash b2sum_hash "b2sum -l 256"
row "hash, libb2" libb2_hash b2sum_hash "b2sum -l 256"
row "hash 1MiB" mixtape_hash_files b2sum_hash_files "b2sum -l 256"
row "hash 1MiB, avx2" mixtape_hash_files_avx2 b2sum_hash_files "b2sum -l 256"
echo
echo "MB/s = 10^6 bytes/s of plaintext, from wall-clock time; CPU s = user + sys seconds of the"
echo "process (all threads). mixtape/peer is the wall-clock speed ratio: > 1 means mixtape is faster."
