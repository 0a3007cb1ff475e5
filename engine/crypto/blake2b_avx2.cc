// BLAKE2b kernels for CPUs with AVX2 and no AVX-512 (this file is compiled
// for AVX2: engine/crypto/CMakeLists.txt; called only when
// crypto::cpu_level() says the CPU has it). blake2b_kernels.h describes the
// interface.
//
// AVX2 has no 64-bit rotate. BLAKE2b's rotations by 32, 24 and 16 bits are
// whole bytes, so each is one shuffle of the bytes of every word
// (vpshufd, vpshufb); the rotation by 63 is a rotation left by one:
// (x + x) | (x >> 63). Sixteen 256-bit registers hold the state of four
// lanes; their message words are read from memory where they are used.
#include <immintrin.h>

#include <cstring>

#include "engine/crypto/blake2b_kernels.h"
#include "engine/crypto/blake2b_rounds.h"

namespace mixtape::crypto::blake2b {
namespace {

// G on four lanes (one 256-bit register holds a word of each), or on one
// message's rows.
struct Four {
  static inline __attribute__((always_inline)) __m256i ror24(__m256i x) {
    const __m256i bytes = _mm256_setr_epi8(3, 4, 5, 6, 7, 0, 1, 2, 11, 12, 13, 14, 15, 8, 9, 10, 3,
                                           4, 5, 6, 7, 0, 1, 2, 11, 12, 13, 14, 15, 8, 9, 10);
    return _mm256_shuffle_epi8(x, bytes);
  }
  static inline __attribute__((always_inline)) __m256i ror16(__m256i x) {
    const __m256i bytes = _mm256_setr_epi8(2, 3, 4, 5, 6, 7, 0, 1, 10, 11, 12, 13, 14, 15, 8, 9, 2,
                                           3, 4, 5, 6, 7, 0, 1, 10, 11, 12, 13, 14, 15, 8, 9);
    return _mm256_shuffle_epi8(x, bytes);
  }
  static inline __attribute__((always_inline)) void mix(__m256i& a, __m256i& b, __m256i& c,
                                                        __m256i& d, __m256i x, __m256i y) {
    a = _mm256_add_epi64(_mm256_add_epi64(a, b), x);
    d = _mm256_shuffle_epi32(_mm256_xor_si256(d, a), _MM_SHUFFLE(2, 3, 0, 1));  // ror 32
    c = _mm256_add_epi64(c, d);
    b = ror24(_mm256_xor_si256(b, c));
    a = _mm256_add_epi64(_mm256_add_epi64(a, b), y);
    d = ror16(_mm256_xor_si256(d, a));
    c = _mm256_add_epi64(c, d);
    b = _mm256_xor_si256(b, c);
    b = _mm256_or_si256(_mm256_srli_epi64(b, 63), _mm256_add_epi64(b, b));  // ror 63
  }
};

// Four message words of one block as a row: m[s[i0]] lowest.
inline __attribute__((always_inline)) __m256i row(const std::uint64_t m[16], int i0, int i1, int i2,
                                                  int i3) {
  return _mm256_set_epi64x(static_cast<long long>(m[i3]), static_cast<long long>(m[i2]),
                           static_cast<long long>(m[i1]), static_cast<long long>(m[i0]));
}

// Round R of one message whose rows are a, b, c, d: the column step, then
// the diagonal step with rows b, c and d rotated into line and back.
template <int R>
inline __attribute__((always_inline)) void row_round(__m256i& a, __m256i& b, __m256i& c, __m256i& d,
                                                     const std::uint64_t m[16]) {
  constexpr const std::uint8_t* s = kSigma[R];
  Four::mix(a, b, c, d, row(m, s[0], s[2], s[4], s[6]), row(m, s[1], s[3], s[5], s[7]));
  b = _mm256_permute4x64_epi64(b, _MM_SHUFFLE(0, 3, 2, 1));
  c = _mm256_permute4x64_epi64(c, _MM_SHUFFLE(1, 0, 3, 2));
  d = _mm256_permute4x64_epi64(d, _MM_SHUFFLE(2, 1, 0, 3));
  Four::mix(a, b, c, d, row(m, s[8], s[10], s[12], s[14]), row(m, s[9], s[11], s[13], s[15]));
  b = _mm256_permute4x64_epi64(b, _MM_SHUFFLE(2, 1, 0, 3));
  c = _mm256_permute4x64_epi64(c, _MM_SHUFFLE(1, 0, 3, 2));
  d = _mm256_permute4x64_epi64(d, _MM_SHUFFLE(0, 3, 2, 1));
}

template <int... R>
inline __attribute__((always_inline)) void row_rounds(__m256i& a, __m256i& b, __m256i& c,
                                                      __m256i& d, const std::uint64_t m[16],
                                                      std::integer_sequence<int, R...>) {
  (row_round<R>(a, b, c, d, m), ...);
}

}  // namespace

// A message's rounds are one chain of dependent operations; gathering the
// message words into rows is independent of it and fills its gaps.
void compress_one_avx2(std::uint64_t h[8], const std::uint8_t* block, std::uint64_t counter,
                       std::uint64_t final_flag) {
  std::uint64_t m[16];
  std::memcpy(m, block, sizeof m);  // words are little-endian, as x86 reads them
  __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(h));
  __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(h + 4));
  __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kIv));
  __m256i d = _mm256_xor_si256(
      _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kIv + 4)),
      _mm256_set_epi64x(0, static_cast<long long>(final_flag), 0, static_cast<long long>(counter)));
  const __m256i a0 = a;
  const __m256i b0 = b;
  row_rounds(a, b, c, d, m, kRounds);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(h), _mm256_xor_si256(a0, _mm256_xor_si256(a, c)));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(h + 4),
                      _mm256_xor_si256(b0, _mm256_xor_si256(b, d)));
}

void compress_four_avx2(Chains h, std::size_t first, const std::uint8_t* const blocks[4],
                        const std::uint64_t counters[kLanes], unsigned active) {
  __m256i m[16];
  load_four(m, blocks);
  __m256i v[16];
  for (int j = 0; j < 8; ++j) {
    v[j] = _mm256_load_si256(reinterpret_cast<const __m256i*>(h[j] + first));
    v[8 + j] = _mm256_set1_epi64x(static_cast<long long>(kIv[j]));
  }
  v[12] = _mm256_xor_si256(v[12],
                           _mm256_load_si256(reinterpret_cast<const __m256i*>(counters + first)));
  rounds<Four>(v, m, kRounds);
  // All ones in the words of active lanes: those take the new chain value.
  const __m256i take = _mm256_cmpgt_epi64(
      _mm256_and_si256(_mm256_set1_epi64x(active), _mm256_setr_epi64x(1, 2, 4, 8)),
      _mm256_setzero_si256());
  for (int j = 0; j < 8; ++j) {
    auto* at = reinterpret_cast<__m256i*>(h[j] + first);
    __m256i old = _mm256_load_si256(at);
    __m256i next = _mm256_xor_si256(old, _mm256_xor_si256(v[j], v[8 + j]));
    _mm256_store_si256(at, _mm256_blendv_epi8(old, next, take));
  }
}

}  // namespace mixtape::crypto::blake2b
