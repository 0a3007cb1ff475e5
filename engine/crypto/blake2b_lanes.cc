// BLAKE2b-256 of eight messages side by side (RFC 7693, written for this
// project). A single BLAKE2b compression is a chain of dependent additions,
// xors and rotations: libsodium's AVX2 code spends ~3.4 cycles per byte
// mostly waiting for the previous instruction. Eight independent messages
// fill that idle time: register v[i] holds state word i of all eight lanes,
// message word j of all eight lanes is one register after a transpose of the
// eight blocks, and one pass of the twelve rounds compresses eight blocks.
//
// The AVX-512 code is compiled with target attributes and chosen at run time
// (the compiler's CPU check includes the OS saving the ZMM registers); other
// CPUs get one libsodium state per lane.
#include <sodium.h>

// GCC 12's AVX-512 headers initialise "undefined" registers from themselves,
// which -Wuninitialized reports at every use.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <bit>
#include <cstring>
#include <optional>
#include <utility>

#include "engine/crypto/crypto.h"

namespace mixtape::crypto {
namespace {

constexpr std::size_t kLanes = Blake2b256Lanes::kLanes;
constexpr std::size_t kBlock = 128;

constexpr std::uint64_t kIv[8] = {
    0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL, 0xa54ff53a5f1d36f1ULL,
    0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL, 0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL};

constexpr std::uint8_t kSigma[12][16] = {{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
                                         {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
                                         {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
                                         {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
                                         {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
                                         {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
                                         {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
                                         {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
                                         {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
                                         {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
                                         {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
                                         {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3}};

// The parameter block of an unkeyed BLAKE2b with a 32-byte digest, as it
// enters h[0]: digest length, key length 0, fanout 1, depth 1.
constexpr std::uint64_t kParam0 = 0x01010000ULL ^ kBlake2b256Size;

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

#define MIXTAPE_AVX512 __attribute__((target("avx512f,avx512vl")))

// ------------------------------------------------------------ one message

MIXTAPE_AVX512 inline __attribute__((always_inline)) void mix(__m256i& a, __m256i& b, __m256i& c,
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

// One compression of one message; rows of the 4x4 state are registers,
// diagonals are lined up by rotating rows b, c and d.
MIXTAPE_AVX512 void compress_one(std::uint64_t h[8], const std::uint8_t* block,
                                 std::uint64_t counter, std::uint64_t final_flag) {
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
    mix(a, b, c, d, _mm512_castsi512_si256(columns), _mm512_extracti64x4_epi64(columns, 1));
    b = _mm256_permute4x64_epi64(b, _MM_SHUFFLE(0, 3, 2, 1));
    c = _mm256_permute4x64_epi64(c, _MM_SHUFFLE(1, 0, 3, 2));
    d = _mm256_permute4x64_epi64(d, _MM_SHUFFLE(2, 1, 0, 3));
    mix(a, b, c, d, _mm512_castsi512_si256(diagonals), _mm512_extracti64x4_epi64(diagonals, 1));
    b = _mm256_permute4x64_epi64(b, _MM_SHUFFLE(2, 1, 0, 3));
    c = _mm256_permute4x64_epi64(c, _MM_SHUFFLE(1, 0, 3, 2));
    d = _mm256_permute4x64_epi64(d, _MM_SHUFFLE(0, 3, 2, 1));
  }
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(h), _mm256_xor_si256(a0, _mm256_xor_si256(a, c)));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(h + 4),
                      _mm256_xor_si256(b0, _mm256_xor_si256(b, d)));
}

// ------------------------------------------------------------ eight messages

MIXTAPE_AVX512 inline __attribute__((always_inline)) void mix(__m512i& a, __m512i& b, __m512i& c,
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

// rows[l] holds eight words of lane l; afterwards rows[j] holds word j of
// every lane.
MIXTAPE_AVX512 inline __attribute__((always_inline)) void transpose8(__m512i rows[8]) {
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

// Round R over lanes side by side: v[i] is state word i of every lane,
// m[j] message word j of every lane (__m512i: eight lanes, __m256i: four).
template <int R, class V>
MIXTAPE_AVX512 inline __attribute__((always_inline)) void round(V v[16], const V m[16]) {
  constexpr const std::uint8_t* s = kSigma[R];
  mix(v[0], v[4], v[8], v[12], m[s[0]], m[s[1]]);
  mix(v[1], v[5], v[9], v[13], m[s[2]], m[s[3]]);
  mix(v[2], v[6], v[10], v[14], m[s[4]], m[s[5]]);
  mix(v[3], v[7], v[11], v[15], m[s[6]], m[s[7]]);
  mix(v[0], v[5], v[10], v[15], m[s[8]], m[s[9]]);
  mix(v[1], v[6], v[11], v[12], m[s[10]], m[s[11]]);
  mix(v[2], v[7], v[8], v[13], m[s[12]], m[s[13]]);
  mix(v[3], v[4], v[9], v[14], m[s[14]], m[s[15]]);
}

// The twelve rounds, unrolled so that every message index is a constant:
// rounds(v, m, kRounds).
constexpr auto kRounds = std::make_integer_sequence<int, 12>{};
template <class V, int... R>
MIXTAPE_AVX512 inline __attribute__((always_inline)) void rounds(V v[16], const V m[16],
                                                                 std::integer_sequence<int, R...>) {
  (round<R>(v, m), ...);
}

// One block of each lane in `active`; h[j] is word j of every lane,
// counters[l] the lane's byte count including this block. Lanes outside
// `active` keep their state (their block pointer need only be readable).
MIXTAPE_AVX512 void compress_eight(std::uint64_t h[8][kLanes], const std::uint8_t* const blocks[8],
                                   const std::uint64_t counters[kLanes], __mmask8 active) {
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
  rounds(v, m, kRounds);
  for (int j = 0; j < 8; ++j) {
    __m512i old = _mm512_load_si512(h[j]);
    __m512i next = _mm512_xor_si512(old, _mm512_xor_si512(v[j], v[8 + j]));
    _mm512_store_si512(h[j], _mm512_mask_blend_epi64(active, old, next));
  }
}

// ------------------------------------------------------------ four messages
//
// The same on 256-bit registers, for lanes 0-3 when only they have blocks:
// a core runs more 256-bit operations per cycle than 512-bit ones, so two
// or three busy lanes (a few large files) cost less here than in eight.

// rows[l] holds four words of lane l; afterwards rows[j] holds word j of
// every lane.
MIXTAPE_AVX512 inline __attribute__((always_inline)) void transpose4(__m256i rows[4]) {
  const __m256i t0 = _mm256_unpacklo_epi64(rows[0], rows[1]);
  const __m256i t1 = _mm256_unpackhi_epi64(rows[0], rows[1]);
  const __m256i t2 = _mm256_unpacklo_epi64(rows[2], rows[3]);
  const __m256i t3 = _mm256_unpackhi_epi64(rows[2], rows[3]);
  rows[0] = _mm256_permute2x128_si256(t0, t2, 0x20);
  rows[1] = _mm256_permute2x128_si256(t1, t3, 0x20);
  rows[2] = _mm256_permute2x128_si256(t0, t2, 0x31);
  rows[3] = _mm256_permute2x128_si256(t1, t3, 0x31);
}

// compress_eight for lanes 0-3 only (h[j][0..3], counters[0..3]).
MIXTAPE_AVX512 void compress_four(std::uint64_t h[8][kLanes], const std::uint8_t* const blocks[4],
                                  const std::uint64_t counters[kLanes], __mmask8 active) {
  __m256i m[16];
  for (int group = 0; group < 4; ++group) {
    for (int l = 0; l < 4; ++l)
      m[4 * group + l] =
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blocks[l] + 32 * group));
    transpose4(m + 4 * group);
  }
  __m256i v[16];
  for (int j = 0; j < 8; ++j) {
    v[j] = _mm256_load_si256(reinterpret_cast<const __m256i*>(h[j]));
    v[8 + j] = _mm256_set1_epi64x(static_cast<long long>(kIv[j]));
  }
  v[12] = _mm256_xor_si256(v[12], _mm256_load_si256(reinterpret_cast<const __m256i*>(counters)));
  rounds(v, m, kRounds);
  for (int j = 0; j < 8; ++j) {
    __m256i old = _mm256_load_si256(reinterpret_cast<const __m256i*>(h[j]));
    __m256i next = _mm256_xor_si256(old, _mm256_xor_si256(v[j], v[8 + j]));
    _mm256_store_si256(reinterpret_cast<__m256i*>(h[j]),
                       _mm256_mask_blend_epi64(active, old, next));
  }
}

// libgcc fills in the CPU model before main, so no __builtin_cpu_init().
bool cpu_has_avx512() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
}

// A lane's blocks in one update(): the carry completed from the input, if
// it had bytes, then whole blocks of the input.
struct LaneBlocks {
  const std::uint8_t* first = nullptr;
  const std::uint8_t* rest = nullptr;
  std::size_t count = 0;
  const std::uint8_t* at(std::size_t b) const {
    if (!first) return rest + b * kBlock;
    return b == 0 ? first : rest + (b - 1) * kBlock;
  }
};

}  // namespace

struct Blake2b256Lanes::State {
  bool side_by_side = false;
  // Side by side: word j of lane l's chain value is h[j][l]; counter[l] is
  // the bytes compressed (the counter's high word stays 0: no file reaches
  // 2^64 bytes); carry[l] holds the lane's last 0..128 bytes, kept back
  // because the final block is compressed differently.
  alignas(64) std::uint64_t h[8][kLanes];
  alignas(64) std::uint64_t counter[kLanes];
  alignas(64) std::uint8_t carry[kLanes][kBlock];
  std::size_t carry_length[kLanes];
  // One by one.
  std::optional<Blake2b256> one[kLanes];

  void start(std::size_t lane) {
    if (!side_by_side) {
      one[lane].emplace();
      return;
    }
    for (int j = 0; j < 8; ++j) h[j][lane] = kIv[j];
    h[0][lane] ^= kParam0;
    counter[lane] = 0;
    carry_length[lane] = 0;
  }

  // Blocks [from, to) of the lane, compressed on their own: when the lane
  // is the only one with blocks left, eight lanes' work for one lane's block
  // would cost more.
  MIXTAPE_AVX512 void compress_alone(std::size_t lane, const LaneBlocks& lane_blocks,
                                     std::size_t from, std::size_t to) {
    std::uint64_t chain[8];
    for (int j = 0; j < 8; ++j) chain[j] = h[j][lane];
    for (std::size_t b = from; b < to; ++b) {
      counter[lane] += kBlock;
      compress_one(chain, lane_blocks.at(b), counter[lane], 0);
    }
    for (int j = 0; j < 8; ++j) h[j][lane] = chain[j];
  }
};

Blake2b256Lanes::Blake2b256Lanes(Kernel kernel) : state_(std::make_unique<State>()) {
  if (sodium_init() < 0) throw Error("libsodium failed to initialise");
  state_->side_by_side = kernel == Kernel::kFastest && cpu_has_avx512();
  for (std::size_t lane = 0; lane < kLanes; ++lane) state_->start(lane);
}

Blake2b256Lanes::~Blake2b256Lanes() = default;

bool Blake2b256Lanes::side_by_side() const {
  return state_->side_by_side;
}

void Blake2b256Lanes::reset(std::size_t lane) {
  state_->start(lane);
}

void Blake2b256Lanes::update(std::span<const ByteSpan, kLanes> input) {
  State& s = *state_;
  if (!s.side_by_side) {
    for (std::size_t lane = 0; lane < kLanes; ++lane) s.one[lane]->update(input[lane]);
    return;
  }
  // The last 1..128 bytes of a lane stay back as its carry: the final block
  // is compressed differently, and only finish() knows which one it is.
  LaneBlocks lanes[kLanes];
  ByteSpan tail[kLanes];
  std::size_t most = 0;
  for (std::size_t lane = 0; lane < kLanes; ++lane) {
    ByteSpan in = input[lane];
    std::size_t& carried = s.carry_length[lane];
    if (carried + in.size() <= kBlock) {
      if (!in.empty()) std::memcpy(s.carry[lane] + carried, in.data(), in.size());
      carried += in.size();
      continue;
    }
    LaneBlocks& blocks = lanes[lane];
    if (carried > 0) {
      const std::size_t fill = kBlock - carried;
      std::memcpy(s.carry[lane] + carried, in.data(), fill);
      in = in.subspan(fill);
      blocks.first = s.carry[lane];
      blocks.count = 1;
    }
    const std::size_t whole = (in.size() - 1) / kBlock;
    blocks.rest = in.data();
    blocks.count += whole;
    tail[lane] = in.subspan(whole * kBlock);
    most = std::max(most, blocks.count);
  }
  static constexpr std::uint8_t kIdle[kBlock] = {};
  for (std::size_t step = 0; step < most; ++step) {
    const std::uint8_t* block[kLanes];
    __mmask8 active = 0;
    std::size_t busy = 0;
    std::size_t only = 0;
    for (std::size_t lane = 0; lane < kLanes; ++lane) {
      const bool has_block = step < lanes[lane].count;
      block[lane] = has_block ? lanes[lane].at(step) : kIdle;
      if (!has_block) continue;
      active = static_cast<__mmask8>(active | (1u << lane));
      ++busy;
      only = lane;
    }
    if (busy == 1) {
      // Every other lane is done for this call, so it stays alone.
      s.compress_alone(only, lanes[only], step, lanes[only].count);
      break;
    }
    for (std::size_t lane = 0; lane < kLanes; ++lane)
      if (active & (1u << lane)) s.counter[lane] += kBlock;
    if ((active & 0xF0) == 0)
      compress_four(s.h, block, s.counter, active);
    else
      compress_eight(s.h, block, s.counter, active);
  }
  for (std::size_t lane = 0; lane < kLanes; ++lane) {
    if (lanes[lane].count == 0) continue;
    std::memcpy(s.carry[lane], tail[lane].data(), tail[lane].size());
    s.carry_length[lane] = tail[lane].size();
  }
}

Blake2b256Digest Blake2b256Lanes::finish(std::size_t lane) {
  State& s = *state_;
  Blake2b256Digest digest{};
  if (!s.side_by_side) {
    digest = s.one[lane]->finish();
    s.start(lane);
    return digest;
  }
  std::uint64_t chain[8];
  for (int j = 0; j < 8; ++j) chain[j] = s.h[j][lane];
  std::size_t carried = s.carry_length[lane];
  std::memset(s.carry[lane] + carried, 0, kBlock - carried);
  compress_one(chain, s.carry[lane], s.counter[lane] + carried, ~0ULL);
  static_assert(std::endian::native == std::endian::little, "digest words are little-endian");
  std::memcpy(digest.data(), chain, digest.size());
  s.start(lane);
  return digest;
}

}  // namespace mixtape::crypto
