# Sourced by the benchmarks: run mixtape as another CPU (docs/PERFORMANCE.md,
# "Running as another CPU").
#
#   native  whatever this CPU has
#   avx2    as a CPU without AVX-512: mixtape's own kernels (MIXTAPE_CPU)
#           and libcrypto's ChaCha20-Poly1305 (OPENSSL_ia32cap with the
#           AVX-512 bits of CPUID leaf 7 cleared: F, DQ, IFMA, CD, BW, VL in
#           EBX; VBMI, VBMI2, VNNI, BITALG, VPOPCNTDQ in ECX). OpenSSL reads
#           its variable when libcrypto loads, so both are set in the
#           environment of the mixtape process, never inside it.
#   generic as a CPU without AVX2 either (mixtape's kernels only)
#
#   with_cpu SETTING COMMAND...   runs COMMAND under SETTING
#   cpu_settings_check SETTING... fails on an unknown one, or avx2 on a CPU without AVX2

openssl_no_avx512=":~0x5842D0230000"

cpu_env() {  # cpu_env SETTING: the variables to set, for env(1)
  case "$1" in
    native) ;;
    avx2) echo "MIXTAPE_CPU=avx2 OPENSSL_ia32cap=$openssl_no_avx512" ;;
    generic) echo "MIXTAPE_CPU=generic OPENSSL_ia32cap=$openssl_no_avx512" ;;
    *) return 1 ;;
  esac
}

with_cpu() {
  local setting=$1
  shift
  # shellcheck disable=SC2046 # the assignments are words on purpose
  env $(cpu_env "$setting") "$@"
}

cpu_settings_check() {
  local s
  for s in "$@"; do
    cpu_env "$s" >/dev/null || { echo "unknown CPU setting '$s' (native, avx2, generic)" >&2; return 1; }
    if [ "$s" = avx2 ] && ! grep -qw avx2 /proc/cpuinfo; then
      echo "this CPU has no AVX2: CPUS=avx2 cannot be measured here" >&2
      return 1
    fi
  done
}
