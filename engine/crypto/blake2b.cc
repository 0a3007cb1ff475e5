// BLAKE2b-256 of one message, the same function `b2sum -l 256` computes.
//
// One message is a chain of compressions, and which code runs that chain
// fastest depends on the core: libb2 (the reference implementation, with its
// own SSE/AVX dispatch) is the design's single-stream BLAKE2b, while on AMD
// Zen cores the scalar code of blake2b_scalar.cc is about twice as fast (the
// integer units run the four G functions of a step side by side). So the
// first hasher made measures both on 32 KiB and every later one uses the faster;
// fastest_one() does the same for the lanes' one-message path
// (docs/DECISIONS.md, "BLAKE2b, one message").
#include <blake2.h>
#include <fcntl.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <new>

#include "engine/crypto/blake2b_kernels.h"
#include "engine/crypto/crypto.h"

namespace mixtape::crypto {
namespace {

using blake2b::kBlock;
using Kernel = Blake2b256::Kernel;

static_assert(sizeof(blake2b_state) <= 512, "Blake2b256::state_ too small");
static_assert(alignof(blake2b_state) <= 64, "Blake2b256::state_ under-aligned");

// The parameter block of an unkeyed BLAKE2b with a 32-byte digest, as it
// enters h[0]: digest length, key length 0, fanout 1, depth 1.
constexpr std::uint64_t kParam0 = 0x01010000ULL ^ kBlake2b256Size;

// The scalar kernel's state: the chain value, the bytes compressed, and the
// last 0..128 bytes, kept back because the final block is compressed
// differently.
struct ScalarState {
  std::uint64_t h[8];
  std::uint64_t counter;
  std::size_t buffered;
  std::uint8_t buffer[kBlock];
};
static_assert(sizeof(ScalarState) <= 512, "Blake2b256::state_ too small");

blake2b_state* libb2_state(std::array<std::uint8_t, 512>& storage) {
  return std::launder(reinterpret_cast<blake2b_state*>(storage.data()));
}
ScalarState* scalar_state(std::array<std::uint8_t, 512>& storage) {
  return std::launder(reinterpret_cast<ScalarState*>(storage.data()));
}

// Seconds one run of `work` takes, the least of three (a measurement of
// the code, not of the machine's other work).
template <typename Work>
double least_time(Work work) {
  double best = 1e9;
  for (int trial = 0; trial < 3; ++trial) {
    const auto start = std::chrono::steady_clock::now();
    work();
    best = std::min(
        best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return best;
}

// What the calibrations hash: 32 KiB, long enough to time, short enough to
// cost well under a millisecond.
constexpr std::size_t kSample = 32 << 10;
const std::uint8_t* sample() {
  static const std::array<std::uint8_t, kSample> bytes = [] {
    std::array<std::uint8_t, kSample> b{};
    for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<std::uint8_t>(i * 131 + (i >> 8));
    return b;
  }();
  return bytes.data();
}

double time_of(blake2b::CompressOne compress) {
  return least_time([&] {
    std::uint64_t h[8] = {};
    for (std::size_t at = 0; at < kSample; at += kBlock) compress(h, sample() + at, at + kBlock, 0);
    // Keep the result alive.
    asm volatile("" : : "r"(h) : "memory");
  });
}

Kernel measured_fastest() {
  const double libb2 = least_time([] {
    std::uint8_t digest[kBlake2b256Size];
    ::blake2b(digest, sample(), nullptr, sizeof digest, kSample, 0);
    asm volatile("" : : "r"(digest) : "memory");
  });
  return time_of(blake2b::compress_one_scalar) < libb2 ? Kernel::kScalar : Kernel::kLibb2;
}

}  // namespace

namespace blake2b {

CompressOne fastest_one(CompressOne vector_code) {
  return time_of(compress_one_scalar) < time_of(vector_code) ? compress_one_scalar : vector_code;
}

}  // namespace blake2b

Kernel Blake2b256::fastest() {
  static const Kernel kernel = measured_fastest();
  return kernel;
}

Blake2b256::Blake2b256(Kernel kernel) : kernel_(kernel == Kernel::kFastest ? fastest() : kernel) {
  if (kernel_ == Kernel::kScalar) {
    auto* s = new (state_.data()) ScalarState;
    for (int j = 0; j < 8; ++j) s->h[j] = blake2b::kIv[j];
    s->h[0] ^= kParam0;
    s->counter = 0;
    s->buffered = 0;
    return;
  }
  auto* state = new (state_.data()) blake2b_state;
  if (::blake2b_init(state, kBlake2b256Size) != 0) throw Error("BLAKE2b initialisation failed");
}

void Blake2b256::update(ByteSpan data) {
  if (kernel_ != Kernel::kScalar) {
    static constexpr std::uint8_t kNothing = 0;
    ::blake2b_update(libb2_state(state_), data.empty() ? &kNothing : data.data(), data.size());
    return;
  }
  // The last 1..128 bytes stay in the buffer: only finish() knows which
  // block is the final one.
  ScalarState& s = *scalar_state(state_);
  if (s.buffered + data.size() <= kBlock) {
    if (!data.empty()) std::memcpy(s.buffer + s.buffered, data.data(), data.size());
    s.buffered += data.size();
    return;
  }
  if (s.buffered > 0) {
    const std::size_t fill = kBlock - s.buffered;
    std::memcpy(s.buffer + s.buffered, data.data(), fill);
    data = data.subspan(fill);
    s.counter += kBlock;
    blake2b::compress_one_scalar(s.h, s.buffer, s.counter, 0);
  }
  while (data.size() > kBlock) {
    s.counter += kBlock;
    blake2b::compress_one_scalar(s.h, data.data(), s.counter, 0);
    data = data.subspan(kBlock);
  }
  std::memcpy(s.buffer, data.data(), data.size());
  s.buffered = data.size();
}

Blake2b256Digest Blake2b256::finish() {
  Blake2b256Digest digest{};
  if (kernel_ != Kernel::kScalar) {
    if (::blake2b_final(libb2_state(state_), digest.data(), digest.size()) != 0)
      throw Error("BLAKE2b finalisation failed (hasher finished twice?)");
    return digest;
  }
  ScalarState& s = *scalar_state(state_);
  std::memset(s.buffer + s.buffered, 0, kBlock - s.buffered);
  blake2b::compress_one_scalar(s.h, s.buffer, s.counter + s.buffered, ~0ULL);
  std::memcpy(digest.data(), s.h, digest.size());
  return digest;
}

namespace {

constexpr EnumNames<Blake2b256::Kernel, 3> kKernels{{{Blake2b256::Kernel::kFastest, "fastest"},
                                                     {Blake2b256::Kernel::kLibb2, "libb2"},
                                                     {Blake2b256::Kernel::kScalar, "scalar"}}};

}  // namespace

const char* to_string(Blake2b256::Kernel kernel) {
  return kKernels.name(kernel);
}

Blake2b256Digest blake2b256(ByteSpan data) {
  Blake2b256 hasher;
  hasher.update(data);
  return hasher.finish();
}

std::string blake2b256_file_hex(const std::string& path) {
  UniqueFd fd = open_file(path, O_RDONLY);
  ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  FdSource source(fd.get(), path);
  // 1 MiB: few syscalls, and each block is still in cache when hashed.
  Bytes buffer(1 << 20);
  Blake2b256 hasher;
  for (std::size_t n; (n = source.read(buffer)) > 0;) hasher.update({buffer.data(), n});
  return to_hex(hasher.finish());
}

void HashingSink::write(ByteSpan data) {
  hasher_.update(data);
  if (next_) next_->write(data);
}

void HashingSink::close() {
  if (next_) next_->close();
}

}  // namespace mixtape::crypto
