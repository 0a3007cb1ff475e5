// BLAKE2b-256 of eight messages side by side (RFC 7693, written for this
// project). A single BLAKE2b compression is a chain of dependent additions,
// xors and rotations: row-wise AVX2 code spends ~3.4 cycles per byte
// mostly waiting for the previous instruction. Independent messages fill
// that idle time: register v[i] holds state word i of several lanes,
// message word j of those lanes is one register after a transpose of their
// blocks, and one pass of the twelve rounds compresses a block of each.
//
// The kernels (blake2b_kernels.h) are chosen once per hasher from
// crypto::cpu_level(): eight lanes in 512-bit registers with AVX-512, two
// groups of four lanes in 256-bit registers with AVX2, one Blake2b256 per
// lane elsewhere.
#include <algorithm>
#include <bit>
#include <cstring>
#include <optional>

#include "engine/crypto/blake2b_kernels.h"
#include "engine/crypto/crypto.h"

namespace mixtape::crypto {

using blake2b::kBlock;
using Kernel = Blake2b256Lanes::Kernel;
namespace {

constexpr std::size_t kLanes = Blake2b256Lanes::kLanes;
static_assert(kLanes == blake2b::kLanes);

// The parameter block of an unkeyed BLAKE2b with a 32-byte digest, as it
// enters h[0]: digest length, key length 0, fanout 1, depth 1.
constexpr std::uint64_t kParam0 = 0x01010000ULL ^ kBlake2b256Size;

Kernel resolve(Kernel kernel) {
  if (kernel != Kernel::kFastest) {
    if (!Blake2b256Lanes::supported(kernel))
      throw Error(std::string("this CPU cannot run the BLAKE2b ") + to_string(kernel) + " kernel");
    return kernel;
  }
  switch (cpu_level()) {
    case CpuLevel::kAvx512:
      return Kernel::kAvx512;
    case CpuLevel::kAvx2:
      return Kernel::kAvx2;
    case CpuLevel::kGeneric:
      break;
  }
  return Kernel::kOneByOne;
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

namespace {

constexpr EnumNames<Blake2b256Lanes::Kernel, 4> kLaneKernels{
    {{Blake2b256Lanes::Kernel::kFastest, "fastest"},
     {Blake2b256Lanes::Kernel::kAvx512, "AVX-512"},
     {Blake2b256Lanes::Kernel::kAvx2, "AVX2"},
     {Blake2b256Lanes::Kernel::kOneByOne, "one-by-one"}}};

}  // namespace

const char* to_string(Blake2b256Lanes::Kernel kernel) {
  return kLaneKernels.name(kernel);
}

struct Blake2b256Lanes::State {
  Kernel kernel = Kernel::kOneByOne;
  blake2b::CompressOne compress_one = nullptr;  // side by side: one block of one lane
  // Side by side: word j of lane l's chain value is h[j][l]; counter[l] is
  // the bytes compressed; carry[l] holds the lane's last 0..128 bytes, kept
  // back because the final block is compressed differently.
  alignas(64) blake2b::Chains h;
  alignas(64) std::uint64_t counter[kLanes];
  alignas(64) std::uint8_t carry[kLanes][kBlock];
  std::size_t carry_length[kLanes];
  // One by one.
  std::optional<Blake2b256> one[kLanes];

  bool side_by_side() const { return kernel != Kernel::kOneByOne; }

  void start(std::size_t lane) {
    if (!side_by_side()) {
      one[lane].emplace();
      return;
    }
    for (int j = 0; j < 8; ++j) h[j][lane] = blake2b::kIv[j];
    h[0][lane] ^= kParam0;
    counter[lane] = 0;
    carry_length[lane] = 0;
  }

  // Blocks [from, to) of the lane, compressed on their own: when the lane
  // is the only one with blocks left, a pass over several lanes for one
  // lane's block would cost more. The counter includes each block.
  void compress_alone(std::size_t lane, const LaneBlocks& blocks, std::size_t from,
                      std::size_t to) {
    std::uint64_t chain[8];
    for (int j = 0; j < 8; ++j) chain[j] = h[j][lane];
    for (std::size_t b = from; b < to; ++b) {
      counter[lane] += kBlock;
      compress_one(chain, blocks.at(b), counter[lane], 0);
    }
    for (int j = 0; j < 8; ++j) h[j][lane] = chain[j];
  }

  // One block of each lane in `active`; counters already include them.
  void compress(const std::uint8_t* const block[kLanes], unsigned active) {
    if (kernel == Kernel::kAvx512) {
      if ((active & 0xF0) == 0)
        blake2b::compress_four_avx512(h, 0, block, counter, active);
      else if ((active & 0x0F) == 0)
        blake2b::compress_four_avx512(h, 4, block + 4, counter, active >> 4);
      else
        blake2b::compress_eight_avx512(h, block, counter, active);
      return;
    }
    // AVX2: lanes 0-3, then 4-7; a group with one busy lane goes row-wise.
    for (std::size_t first = 0; first < kLanes; first += 4) {
      const unsigned group = (active >> first) & 0xF;
      if (group == 0) continue;
      if (std::has_single_bit(group)) {
        const std::size_t lane = first + static_cast<std::size_t>(std::countr_zero(group));
        std::uint64_t chain[8];
        for (int j = 0; j < 8; ++j) chain[j] = h[j][lane];
        compress_one(chain, block[lane], counter[lane], 0);
        for (int j = 0; j < 8; ++j) h[j][lane] = chain[j];
        continue;
      }
      blake2b::compress_four_avx2(h, first, block + first, counter, group);
    }
  }
};

bool Blake2b256Lanes::supported(Kernel kernel) {
  switch (kernel) {
    case Kernel::kAvx512:
      return cpu_level_of_hardware() >= CpuLevel::kAvx512;
    case Kernel::kAvx2:
      return cpu_level_of_hardware() >= CpuLevel::kAvx2;
    case Kernel::kFastest:
    case Kernel::kOneByOne:
      return true;
  }
  return false;
}

Blake2b256Lanes::Blake2b256Lanes(Kernel kernel) : state_(std::make_unique<State>()) {
  state_->kernel = resolve(kernel);
  // One lane alone runs the faster of the row-wise vector code and the
  // scalar code, measured once per kernel.
  if (state_->kernel == Kernel::kAvx512) {
    static const blake2b::CompressOne one = blake2b::fastest_one(blake2b::compress_one_avx512);
    state_->compress_one = one;
  }
  if (state_->kernel == Kernel::kAvx2) {
    static const blake2b::CompressOne one = blake2b::fastest_one(blake2b::compress_one_avx2);
    state_->compress_one = one;
  }
  for (std::size_t lane = 0; lane < kLanes; ++lane) state_->start(lane);
}

Blake2b256Lanes::~Blake2b256Lanes() = default;

Kernel Blake2b256Lanes::kernel() const {
  return state_->kernel;
}

bool Blake2b256Lanes::side_by_side() const {
  return state_->side_by_side();
}

void Blake2b256Lanes::reset(std::size_t lane) {
  state_->start(lane);
}

void Blake2b256Lanes::update(std::span<const ByteSpan, kLanes> input) {
  State& s = *state_;
  if (!s.side_by_side()) {
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
    unsigned active = 0;
    for (std::size_t lane = 0; lane < kLanes; ++lane) {
      const bool has_block = step < lanes[lane].count;
      block[lane] = has_block ? lanes[lane].at(step) : kIdle;
      if (has_block) active |= 1u << lane;
    }
    if (std::has_single_bit(active)) {
      // Every other lane is done for this call, so it stays alone.
      const auto only = static_cast<std::size_t>(std::countr_zero(active));
      s.compress_alone(only, lanes[only], step, lanes[only].count);
      break;
    }
    for (std::size_t lane = 0; lane < kLanes; ++lane)
      if (active & (1u << lane)) s.counter[lane] += kBlock;
    s.compress(block, active);
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
  if (!s.side_by_side()) {
    digest = s.one[lane]->finish();
    s.start(lane);
    return digest;
  }
  std::uint64_t chain[8];
  for (int j = 0; j < 8; ++j) chain[j] = s.h[j][lane];
  std::size_t carried = s.carry_length[lane];
  std::memset(s.carry[lane] + carried, 0, kBlock - carried);
  s.compress_one(chain, s.carry[lane], s.counter[lane] + carried, ~0ULL);
  static_assert(std::endian::native == std::endian::little, "digest words are little-endian");
  std::memcpy(digest.data(), chain, digest.size());
  s.start(lane);
  return digest;
}

}  // namespace mixtape::crypto
