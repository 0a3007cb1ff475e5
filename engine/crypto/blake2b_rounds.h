// Private to engine/crypto's BLAKE2b kernel files (blake2b_avx512.cc,
// blake2b_avx2.cc): the twelve rounds over lanes side by side and the 4x4
// transpose, shared by kernels compiled for different instruction sets.
// Everything here has internal linkage, so each kernel file gets its own
// copy compiled for its own instruction set.
#pragma once

#include <immintrin.h>

#include <utility>

#include "engine/crypto/blake2b_kernels.h"

namespace mixtape::crypto::blake2b {
namespace {

// Round R over lanes side by side: v[i] is state word i of every lane, m[j]
// message word j of every lane. Ops::mix is G on registers of lanes.
template <class Ops, int R, class V>
inline __attribute__((always_inline)) void round(V v[16], const V m[16]) {
  constexpr const std::uint8_t* s = kSigma[R];
  Ops::mix(v[0], v[4], v[8], v[12], m[s[0]], m[s[1]]);
  Ops::mix(v[1], v[5], v[9], v[13], m[s[2]], m[s[3]]);
  Ops::mix(v[2], v[6], v[10], v[14], m[s[4]], m[s[5]]);
  Ops::mix(v[3], v[7], v[11], v[15], m[s[6]], m[s[7]]);
  Ops::mix(v[0], v[5], v[10], v[15], m[s[8]], m[s[9]]);
  Ops::mix(v[1], v[6], v[11], v[12], m[s[10]], m[s[11]]);
  Ops::mix(v[2], v[7], v[8], v[13], m[s[12]], m[s[13]]);
  Ops::mix(v[3], v[4], v[9], v[14], m[s[14]], m[s[15]]);
}

// The twelve rounds, unrolled so that every message index is a constant:
// rounds<Ops>(v, m, kRounds).
constexpr auto kRounds = std::make_integer_sequence<int, 12>{};
template <class Ops, class V, int... R>
inline __attribute__((always_inline)) void rounds(V v[16], const V m[16],
                                                  std::integer_sequence<int, R...>) {
  (round<Ops, R>(v, m), ...);
}

// rows[l] holds four words of lane l; afterwards rows[j] holds word j of
// every lane (AVX2 instructions only).
inline __attribute__((always_inline)) void transpose4(__m256i rows[4]) {
  const __m256i t0 = _mm256_unpacklo_epi64(rows[0], rows[1]);
  const __m256i t1 = _mm256_unpackhi_epi64(rows[0], rows[1]);
  const __m256i t2 = _mm256_unpacklo_epi64(rows[2], rows[3]);
  const __m256i t3 = _mm256_unpackhi_epi64(rows[2], rows[3]);
  rows[0] = _mm256_permute2x128_si256(t0, t2, 0x20);
  rows[1] = _mm256_permute2x128_si256(t1, t3, 0x20);
  rows[2] = _mm256_permute2x128_si256(t0, t2, 0x31);
  rows[3] = _mm256_permute2x128_si256(t1, t3, 0x31);
}

// The sixteen message words of four lanes' blocks, word j of every lane in
// m[j] (lane i's block at blocks[i]).
inline __attribute__((always_inline)) void load_four(__m256i m[16],
                                                     const std::uint8_t* const blocks[4]) {
  for (int group = 0; group < 4; ++group) {
    for (int l = 0; l < 4; ++l)
      m[4 * group + l] =
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blocks[l] + 32 * group));
    transpose4(m + 4 * group);
  }
}

}  // namespace
}  // namespace mixtape::crypto::blake2b
