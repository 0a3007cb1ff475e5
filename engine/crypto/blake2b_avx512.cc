// BLAKE2b kernels for CPUs with AVX-512F and AVX-512VL (this file is
// compiled for them: engine/crypto/CMakeLists.txt; called only when
// crypto::cpu_level() says the CPU has them). blake2b_kernels.h describes
// the interface.

// GCC 12's AVX-512 headers initialise "undefined" registers from themselves,
// which -Wuninitialized reports at every use.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include "engine/crypto/blake2b_kernels.h"
#include "engine/crypto/blake2b_rounds.h"

namespace mixtape::crypto::blake2b {
namespace {

// G on eight lanes (one 512-bit register holds a word of each).
struct Eight {
  static inline __attribute__((always_inline)) void mix(__m512i& a, __m512i& b, __m512i& c,
                                                        __m512i& d, __m512i x, __m512i y) {
    a = _mm512_add_epi64(_mm512_add_epi64(a, b), x);
    d = _mm512_ror_epi64(_mm512_xor_si512(d, a), 32);
    c = _mm512_add_epi64(c, d);
    b = _mm512_ror_epi64(_mm512_xor_si512(b, c), 24);
    a = _mm512_add_epi64(_mm512_add_epi64(a, b), y);
    d = _mm512_ror_epi64(_mm512_xor_si512(d, a), 16);
    c = _mm512_add_epi64(c, d);
    b = _mm512_ror_epi64(_mm512_xor_si512(b, c), 63);
  }
};

// G on four lanes, or on one message's rows, with AVX-512VL's 64-bit rotate.
struct Four {
  static inline __attribute__((always_inline)) void mix(__m256i& a, __m256i& b, __m256i& c,
                                                        __m256i& d, __m256i x, __m256i y) {
    a = _mm256_add_epi64(_mm256_add_epi64(a, b), x);
    d = _mm256_ror_epi64(_mm256_xor_si256(d, a), 32);
    c = _mm256_add_epi64(c, d);
    b = _mm256_ror_epi64(_mm256_xor_si256(b, c), 24);
    a = _mm256_add_epi64(_mm256_add_epi64(a, b), y);
    d = _mm256_ror_epi64(_mm256_xor_si256(d, a), 16);
    c = _mm256_add_epi64(c, d);
    b = _mm256_ror_epi64(_mm256_xor_si256(b, c), 63);
  }
};

// Per round, the message words of the column step (x of G for columns 0..3,
// then y) and of the diagonal step, as permutation indices over the sixteen
// message words held in two 512-bit registers.
struct Schedule {
  alignas(64) std::int64_t columns[12][8];
  alignas(64) std::int64_t diagonals[12][8];
};

constexpr Schedule make_schedule() {
  Schedule s{};
  for (int r = 0; r < 12; ++r) {
    for (int i = 0; i < 4; ++i) {
      s.columns[r][i] = kSigma[r][2 * i];
      s.columns[r][4 + i] = kSigma[r][2 * i + 1];
      s.diagonals[r][i] = kSigma[r][8 + 2 * i];
      s.diagonals[r][4 + i] = kSigma[r][9 + 2 * i];
    }
  }
  return s;
}

constexpr Schedule kSchedule = make_schedule();

// rows[l] holds eight words of lane l; afterwards rows[j] holds word j of
// every lane.
inline __attribute__((always_inline)) void transpose8(__m512i rows[8]) {
  __m512i t[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm512_unpacklo_epi64(rows[i], rows[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi64(rows[i], rows[i + 1]);
  }
  // u0: words 0 and 4 of lanes 0-3, u1: 2 and 6, u2: 1 and 5, u3: 3 and 7;
  // u4-u7 the same for lanes 4-7.
  __m512i u[8];
  for (int half = 0; half < 2; ++half) {
    const int i = 4 * half;
    u[i + 0] = _mm512_shuffle_i64x2(t[i + 0], t[i + 2], 0x88);
    u[i + 1] = _mm512_shuffle_i64x2(t[i + 0], t[i + 2], 0xDD);
    u[i + 2] = _mm512_shuffle_i64x2(t[i + 1], t[i + 3], 0x88);
    u[i + 3] = _mm512_shuffle_i64x2(t[i + 1], t[i + 3], 0xDD);
  }
  rows[0] = _mm512_shuffle_i64x2(u[0], u[4], 0x88);
  rows[4] = _mm512_shuffle_i64x2(u[0], u[4], 0xDD);
  rows[2] = _mm512_shuffle_i64x2(u[1], u[5], 0x88);
  rows[6] = _mm512_shuffle_i64x2(u[1], u[5], 0xDD);
  rows[1] = _mm512_shuffle_i64x2(u[2], u[6], 0x88);
  rows[5] = _mm512_shuffle_i64x2(u[2], u[6], 0xDD);
  rows[3] = _mm512_shuffle_i64x2(u[3], u[7], 0x88);
  rows[7] = _mm512_shuffle_i64x2(u[3], u[7], 0xDD);
}

}  // namespace

// Rows of the 4x4 state are registers; diagonals are lined up by rotating
// rows b, c and d.
void compress_one_avx512(std::uint64_t h[8], const std::uint8_t* block, std::uint64_t counter,
                         std::uint64_t final_flag) {
  const __m512i m0 = _mm512_loadu_si512(block);
  const __m512i m1 = _mm512_loadu_si512(block + 64);
  __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(h));
  __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(h + 4));
  __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kIv));
  __m256i d = _mm256_xor_si256(
      _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kIv + 4)),
      _mm256_set_epi64x(0, static_cast<long long>(final_flag), 0, static_cast<long long>(counter)));
  const __m256i a0 = a;
  const __m256i b0 = b;
  for (int r = 0; r < 12; ++r) {
    __m512i columns = _mm512_permutex2var_epi64(m0, _mm512_load_si512(kSchedule.columns[r]), m1);
    __m512i diagonals =
        _mm512_permutex2var_epi64(m0, _mm512_load_si512(kSchedule.diagonals[r]), m1);
    Four::mix(a, b, c, d, _mm512_castsi512_si256(columns), _mm512_extracti64x4_epi64(columns, 1));
    b = _mm256_permute4x64_epi64(b, _MM_SHUFFLE(0, 3, 2, 1));
    c = _mm256_permute4x64_epi64(c, _MM_SHUFFLE(1, 0, 3, 2));
    d = _mm256_permute4x64_epi64(d, _MM_SHUFFLE(2, 1, 0, 3));
    Four::mix(a, b, c, d, _mm512_castsi512_si256(diagonals),
              _mm512_extracti64x4_epi64(diagonals, 1));
    b = _mm256_permute4x64_epi64(b, _MM_SHUFFLE(2, 1, 0, 3));
    c = _mm256_permute4x64_epi64(c, _MM_SHUFFLE(1, 0, 3, 2));
    d = _mm256_permute4x64_epi64(d, _MM_SHUFFLE(0, 3, 2, 1));
  }
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(h), _mm256_xor_si256(a0, _mm256_xor_si256(a, c)));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(h + 4),
                      _mm256_xor_si256(b0, _mm256_xor_si256(b, d)));
}

// Word j of every lane in one register, after a transpose of the eight
// blocks.
void compress_eight_avx512(Chains h, const std::uint8_t* const blocks[kLanes],
                           const std::uint64_t counters[kLanes], unsigned active) {
  __m512i m[16];
  for (std::size_t l = 0; l < kLanes; ++l) {
    m[l] = _mm512_loadu_si512(blocks[l]);
    m[8 + l] = _mm512_loadu_si512(blocks[l] + 64);
  }
  transpose8(m);
  transpose8(m + 8);
  __m512i v[16];
  for (int j = 0; j < 8; ++j) {
    v[j] = _mm512_load_si512(h[j]);
    v[8 + j] = _mm512_set1_epi64(static_cast<long long>(kIv[j]));
  }
  v[12] = _mm512_xor_si512(v[12], _mm512_loadu_si512(counters));
  rounds<Eight>(v, m, kRounds);
  for (int j = 0; j < 8; ++j) {
    __m512i old = _mm512_load_si512(h[j]);
    __m512i next = _mm512_xor_si512(old, _mm512_xor_si512(v[j], v[8 + j]));
    _mm512_store_si512(h[j], _mm512_mask_blend_epi64(static_cast<__mmask8>(active), old, next));
  }
}

// The same on 256-bit registers: a core runs more 256-bit operations per
// cycle than 512-bit ones, so two or three busy lanes (a few large files)
// cost less here than in eight.
void compress_four_avx512(Chains h, std::size_t first, const std::uint8_t* const blocks[4],
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
  for (int j = 0; j < 8; ++j) {
    auto* at = reinterpret_cast<__m256i*>(h[j] + first);
    __m256i old = _mm256_load_si256(at);
    __m256i next = _mm256_xor_si256(old, _mm256_xor_si256(v[j], v[8 + j]));
    _mm256_store_si256(at, _mm256_mask_blend_epi64(static_cast<__mmask8>(active), old, next));
  }
}

}  // namespace mixtape::crypto::blake2b
