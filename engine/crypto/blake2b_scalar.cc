// BLAKE2b compression of one message in 64-bit general-purpose registers
// (RFC 7693, section 3.2), for any x86-64 CPU. The four G functions of a
// step are independent: a core with several integer units and one-cycle
// rotates (AMD Zen) runs them side by side, faster than the row-wise vector
// code, whose one chain of dependent shuffles waits on each instruction.
// Which one a machine gets is measured once (blake2b.cc).
#include <bit>
#include <cstring>
#include <utility>

#include "engine/crypto/blake2b_kernels.h"

namespace mixtape::crypto::blake2b {
namespace {

inline __attribute__((always_inline)) void g(std::uint64_t& a, std::uint64_t& b, std::uint64_t& c,
                                             std::uint64_t& d, std::uint64_t x, std::uint64_t y) {
  a = a + b + x;
  d = std::rotr(d ^ a, 32);
  c = c + d;
  b = std::rotr(b ^ c, 24);
  a = a + b + y;
  d = std::rotr(d ^ a, 16);
  c = c + d;
  b = std::rotr(b ^ c, 63);
}

template <int R>
inline __attribute__((always_inline)) void round(std::uint64_t v[16], const std::uint64_t m[16]) {
  constexpr const std::uint8_t* s = kSigma[R];
  g(v[0], v[4], v[8], v[12], m[s[0]], m[s[1]]);
  g(v[1], v[5], v[9], v[13], m[s[2]], m[s[3]]);
  g(v[2], v[6], v[10], v[14], m[s[4]], m[s[5]]);
  g(v[3], v[7], v[11], v[15], m[s[6]], m[s[7]]);
  g(v[0], v[5], v[10], v[15], m[s[8]], m[s[9]]);
  g(v[1], v[6], v[11], v[12], m[s[10]], m[s[11]]);
  g(v[2], v[7], v[8], v[13], m[s[12]], m[s[13]]);
  g(v[3], v[4], v[9], v[14], m[s[14]], m[s[15]]);
}

template <int... R>
inline __attribute__((always_inline)) void rounds(std::uint64_t v[16], const std::uint64_t m[16],
                                                  std::integer_sequence<int, R...>) {
  (round<R>(v, m), ...);
}

}  // namespace

void compress_one_scalar(std::uint64_t h[8], const std::uint8_t* block, std::uint64_t counter,
                         std::uint64_t final_flag) {
  static_assert(std::endian::native == std::endian::little, "message words are little-endian");
  std::uint64_t m[16];
  std::memcpy(m, block, sizeof m);
  std::uint64_t v[16];
  for (int i = 0; i < 8; ++i) {
    v[i] = h[i];
    v[8 + i] = kIv[i];
  }
  v[12] ^= counter;
  v[14] ^= final_flag;
  rounds(v, m, std::make_integer_sequence<int, 12>{});
  for (int i = 0; i < 8; ++i) h[i] ^= v[i] ^ v[8 + i];
}

}  // namespace mixtape::crypto::blake2b
