// BLAKE2b-256 must equal `b2sum -l 256`, the tool the archaeology drill uses.
#include <gtest/gtest.h>
#include <sodium.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include "engine/crypto/blake2b_kernels.h"
#include "engine/crypto/crypto.h"
#include "tests/support/test_support.h"

namespace mixtape::crypto {
namespace {

std::string b2sum_of(const std::string& path) {
  auto b2sum = test_support::run_shell("b2sum -l 256 " + test_support::shell_quote(path));
  EXPECT_EQ(b2sum.status, 0) << b2sum.err;
  return b2sum.out.substr(0, b2sum.out.find(' '));
}

class Blake2bFiles : public ::testing::TestWithParam<std::size_t> {};

TEST_P(Blake2bFiles, MatchesB2sum) {
  std::size_t size = GetParam();
  Bytes data(size);
  std::mt19937_64 rng(size);
  for (auto& b : data) b = static_cast<std::uint8_t>(rng());
  auto path = std::filesystem::temp_directory_path() /
              ("mixtape-b2-" + std::to_string(::getpid()) + "-" + std::to_string(size));
  {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(size));
  }
  std::string expected = b2sum_of(path);
  ASSERT_EQ(expected.size(), 64u);
  EXPECT_EQ(blake2b256_file_hex(path), expected);
  EXPECT_EQ(to_hex(blake2b256(data)), expected);
  // Each kernel of one message agrees, fed whole and in uneven pieces.
  for (auto kernel : {Blake2b256::Kernel::kLibb2, Blake2b256::Kernel::kScalar}) {
    Blake2b256 whole(kernel);
    whole.update(data);
    EXPECT_EQ(to_hex(whole.finish()), expected) << to_string(kernel);
    Blake2b256 pieces(kernel);
    EXPECT_EQ(pieces.kernel(), kernel);
    for (std::size_t pos = 0, step = 1; pos < size; pos += step, step = step * 5 + 3)
      pieces.update(ByteSpan(data).subspan(pos, std::min(step, size - pos)));
    pieces.update({});
    EXPECT_EQ(to_hex(pieces.finish()), expected) << to_string(kernel) << " in pieces";
  }
  // libsodium, a third implementation, agrees.
  Blake2b256Digest reference{};
  ASSERT_EQ(
      crypto_generichash(reference.data(), reference.size(), data.data(), data.size(), nullptr, 0),
      0);
  EXPECT_EQ(to_hex(reference), expected);

  // Fed in uneven pieces through a HashingSink, the digest is the same.
  MemorySink copy;
  HashingSink sink(&copy);
  for (std::size_t pos = 0, step = 1; pos < size; pos += step, step = step * 3 + 1)
    sink.write(ByteSpan(data).subspan(pos, std::min(step, size - pos)));
  sink.close();
  EXPECT_EQ(to_hex(sink.digest()), expected);
  EXPECT_EQ(copy.bytes(), data);
  std::filesystem::remove(path);
}

INSTANTIATE_TEST_SUITE_P(Sizes, Blake2bFiles,
                         ::testing::Values(0, 1, 127, 128, 129, 65536, 3 * 1048576 + 7,
                                           9 * 1048576 + 1));

TEST(Blake2b, KnownVectorForAbc) {
  // b2sum -l 256 of the three bytes "abc".
  EXPECT_EQ(to_hex(blake2b256(as_bytes("abc"))),
            "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319");
}

TEST(Blake2b, TheFastestKernelIsOneOfTheTwoAndTheDefault) {
  const Blake2b256::Kernel fastest = Blake2b256::fastest();
  EXPECT_TRUE(fastest == Blake2b256::Kernel::kLibb2 || fastest == Blake2b256::Kernel::kScalar);
  EXPECT_EQ(Blake2b256().kernel(), fastest);
  EXPECT_EQ(Blake2b256::fastest(), fastest) << "measured once";
  ::testing::Test::RecordProperty("one_message", to_string(fastest));
}

TEST(Blake2b, EveryOneMessageCompressionOfThisCpuIsTheSame) {
  // The row-wise vector kernels and the scalar one, block by block against
  // each other, with the final flag, on 300 random blocks.
  std::vector<blake2b::CompressOne> kernels = {blake2b::compress_one_scalar};
  if (cpu_level_of_hardware() >= CpuLevel::kAvx2) kernels.push_back(blake2b::compress_one_avx2);
  if (cpu_level_of_hardware() >= CpuLevel::kAvx512) kernels.push_back(blake2b::compress_one_avx512);
  std::mt19937_64 rng(3);
  std::vector<std::uint8_t> block(blake2b::kBlock);
  std::array<std::uint64_t, 8> chain{};
  for (auto& w : chain) w = rng();
  for (int i = 0; i < 300; ++i) {
    for (auto& b : block) b = static_cast<std::uint8_t>(rng());
    const std::uint64_t counter = rng() % (1ULL << 40);
    const std::uint64_t final_flag = i % 7 == 0 ? ~0ULL : 0;
    std::array<std::uint64_t, 8> first = chain;
    kernels[0](first.data(), block.data(), counter, final_flag);
    for (std::size_t k = 1; k < kernels.size(); ++k) {
      std::array<std::uint64_t, 8> other = chain;
      kernels[k](other.data(), block.data(), counter, final_flag);
      ASSERT_EQ(other, first) << "kernel " << k << ", block " << i;
    }
    chain = first;
  }
  // And the vector code fastest_one() may choose instead is one of the two.
  for (std::size_t k = 1; k < kernels.size(); ++k) {
    auto chosen = blake2b::fastest_one(kernels[k]);
    EXPECT_TRUE(chosen == kernels[k] || chosen == blake2b::compress_one_scalar);
  }
}

TEST(Blake2b, MissingFileNamesThePath) {
  try {
    blake2b256_file_hex("/nonexistent/mixtape-file");
    FAIL() << "expected an error";
  } catch (const SystemError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/mixtape-file"), std::string::npos);
  }
}

// ---------------------------------------------------------------- lanes

using Kernel = Blake2b256Lanes::Kernel;
constexpr std::size_t kLanes = Blake2b256Lanes::kLanes;

class Blake2bLanes : public ::testing::TestWithParam<Kernel> {
 protected:
  Blake2bLanes() : data_(1 << 20) {
    std::mt19937_64 rng(42);
    for (auto& b : data_) b = static_cast<std::uint8_t>(rng());
  }
  // Message of lane `lane` of length n: a slice of data_ of its own.
  ByteSpan message(std::size_t lane, std::size_t n) const {
    return ByteSpan(data_).subspan(lane * 4099 % 65536, n);
  }
  Bytes data_;
};

TEST_P(Blake2bLanes, EveryLaneIsItsOwnMessageWhateverThePieces) {
  Blake2b256Lanes lanes(GetParam());
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    // Short messages (block edges) in the first half, longer ones after; a
    // lane left empty now and then.
    std::array<std::size_t, kLanes> length{}, fed{};
    for (auto& n : length) n = rng() % (trial < 100 ? 600 : 200000);
    if (trial % 5 == 0) length[rng() % kLanes] = 0;
    for (bool more = true; more;) {
      more = false;
      std::array<ByteSpan, kLanes> pieces{};
      for (std::size_t lane = 0; lane < kLanes; ++lane) {
        // Pieces of 0 to 40,000 bytes: lanes run out at different steps,
        // and some steps leave a lane out altogether.
        std::size_t n =
            std::min<std::size_t>(length[lane] - fed[lane], rng() % 3 == 0 ? 0 : rng() % 40000);
        pieces[lane] = message(lane, length[lane]).subspan(fed[lane], n);
        fed[lane] += n;
        more = more || fed[lane] < length[lane];
      }
      lanes.update(pieces);
    }
    for (std::size_t lane = 0; lane < kLanes; ++lane)
      ASSERT_EQ(to_hex(lanes.finish(lane)), to_hex(blake2b256(message(lane, length[lane]))))
          << "trial " << trial << ", lane " << lane << ", " << length[lane] << " bytes";
  }
}

TEST_P(Blake2bLanes, BlockEdgesFedWholeOrBlockByBlock) {
  Blake2b256Lanes lanes(GetParam());
  for (std::size_t n : {0, 1, 127, 128, 129, 255, 256, 257, 1023, 1024, 1025}) {
    // Lane 0 gets the message whole, lane 1 a block at a time (the carry
    // exactly full), lane 2 a byte at a time; the others something else.
    std::array<ByteSpan, kLanes> whole{};
    whole[0] = message(0, n);
    for (std::size_t lane = 3; lane < kLanes; ++lane) whole[lane] = message(lane, 3000);
    lanes.update(whole);
    for (std::size_t at = 0; at < n; at += 128) {
      std::array<ByteSpan, kLanes> block{};
      block[1] = message(0, n).subspan(at, std::min<std::size_t>(128, n - at));
      lanes.update(block);
    }
    for (std::size_t at = 0; at < n; ++at) {
      std::array<ByteSpan, kLanes> byte{};
      byte[2] = message(0, n).subspan(at, 1);
      lanes.update(byte);
    }
    const std::string expected = to_hex(blake2b256(message(0, n)));
    EXPECT_EQ(to_hex(lanes.finish(0)), expected) << n << " bytes whole";
    EXPECT_EQ(to_hex(lanes.finish(1)), expected) << n << " bytes block by block";
    EXPECT_EQ(to_hex(lanes.finish(2)), expected) << n << " bytes byte by byte";
    for (std::size_t lane = 3; lane < kLanes; ++lane)
      EXPECT_EQ(to_hex(lanes.finish(lane)), to_hex(blake2b256(message(lane, 3000))));
  }
}

TEST_P(Blake2bLanes, ALaneFinishedOrResetMidwayLeavesTheOthersAlone) {
  Blake2b256Lanes lanes(GetParam());
  std::array<ByteSpan, kLanes> first{}, second{};
  for (std::size_t lane = 0; lane < kLanes; ++lane) {
    first[lane] = message(lane, 50000);
    second[lane] = message(lane, 100000).subspan(50000);
  }
  lanes.update(first);
  // Lane 2 ends after the first half, lane 5 starts over with other bytes.
  EXPECT_EQ(to_hex(lanes.finish(2)), to_hex(blake2b256(message(2, 50000))));
  lanes.reset(5);
  second[2] = message(2, 777);
  second[5] = message(6, 1234);
  lanes.update(second);
  for (std::size_t lane = 0; lane < kLanes; ++lane) {
    std::string expected = to_hex(blake2b256(lane == 2   ? message(2, 777)
                                             : lane == 5 ? message(6, 1234)
                                                         : message(lane, 100000)));
    EXPECT_EQ(to_hex(lanes.finish(lane)), expected) << "lane " << lane;
  }
  // A finished lane holds an empty message.
  EXPECT_EQ(to_hex(lanes.finish(0)), to_hex(blake2b256({})));
}

TEST_P(Blake2bLanes, AFewBusyLanesAnywhere) {
  // Two or three busy lanes among the first four, and two far apart: each
  // set of busy lanes may take a different path through update().
  const std::vector<std::vector<std::size_t>> sets = {
      {0, 1}, {0, 2, 3}, {1, 6}, {3, 4}, {7}, {4, 5}, {0, 1, 2, 5}, {2, 4, 5, 6, 7}};
  for (const auto& busy : sets) {
    Blake2b256Lanes lanes(GetParam());
    for (std::size_t at = 0; at < 300000; at += 70001) {
      std::array<ByteSpan, kLanes> pieces{};
      for (std::size_t lane : busy)
        pieces[lane] = message(lane, 300000).subspan(at, std::min<std::size_t>(70001, 300000 - at));
      lanes.update(pieces);
    }
    for (std::size_t lane = 0; lane < kLanes; ++lane) {
      const bool fed = std::find(busy.begin(), busy.end(), lane) != busy.end();
      EXPECT_EQ(to_hex(lanes.finish(lane)), to_hex(blake2b256(message(lane, fed ? 300000 : 0))))
          << "lane " << lane << " of " << busy.size() << " busy";
    }
  }
}

TEST_P(Blake2bLanes, ALaneFedAloneMatchesB2sum) {
  // One busy lane takes the one-message path; its digest must be b2sum's.
  auto path =
      std::filesystem::temp_directory_path() / ("mixtape-b2-lanes-" + std::to_string(::getpid()));
  {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(data_.data()),
              static_cast<std::streamsize>(data_.size()));
  }
  Blake2b256Lanes lanes(GetParam());
  std::array<ByteSpan, kLanes> pieces{};
  for (std::size_t at = 0; at < data_.size(); at += 100000) {
    pieces[6] = ByteSpan(data_).subspan(at, std::min<std::size_t>(100000, data_.size() - at));
    lanes.update(pieces);
  }
  EXPECT_EQ(to_hex(lanes.finish(6)), b2sum_of(path));
  std::filesystem::remove(path);
}

TEST_P(Blake2bLanes, EveryLaneCountFromOneToEightMatchesB2sum) {
  // 1..8 busy lanes of different lengths, so each set of busy lanes of
  // every kernel's groups runs (a group of four with one busy lane goes
  // row-wise); each digest against b2sum of the same bytes.
  std::vector<std::filesystem::path> paths;
  std::vector<std::string> expected;
  for (std::size_t lane = 0; lane < kLanes; ++lane) {
    auto path = std::filesystem::temp_directory_path() /
                ("mixtape-b2-count-" + std::to_string(::getpid()) + "-" + std::to_string(lane));
    ByteSpan bytes = message(lane, 20000 + 9001 * lane);
    {
      std::ofstream out(path, std::ios::binary);
      out.write(reinterpret_cast<const char*>(bytes.data()),
                static_cast<std::streamsize>(bytes.size()));
    }
    expected.push_back(b2sum_of(path));
    paths.push_back(path);
  }
  Blake2b256Lanes lanes(GetParam());
  for (std::size_t busy = 1; busy <= kLanes; ++busy) {
    // The busy lanes start at lane busy - 1 and wrap round: lanes 4-7 are
    // busy alone as often as lanes 0-3.
    std::vector<std::size_t> which;
    for (std::size_t i = 0; i < busy; ++i) which.push_back((busy - 1 + i) % kLanes);
    for (std::size_t at = 0; at < 100000; at += 12345) {
      std::array<ByteSpan, kLanes> pieces{};
      for (std::size_t lane : which) {
        ByteSpan whole = message(lane, 20000 + 9001 * lane);
        if (at < whole.size())
          pieces[lane] = whole.subspan(at, std::min<std::size_t>(12345, whole.size() - at));
      }
      lanes.update(pieces);
    }
    for (std::size_t lane : which)
      EXPECT_EQ(to_hex(lanes.finish(lane)), expected[lane]) << busy << " busy, lane " << lane;
  }
  for (const auto& path : paths) std::filesystem::remove(path);
}

TEST_P(Blake2bLanes, RunsTheKernelItWasAskedFor) {
  Blake2b256Lanes lanes(GetParam());
  if (GetParam() == Kernel::kFastest) {
    EXPECT_NE(lanes.kernel(), Kernel::kFastest);
  } else {
    EXPECT_EQ(lanes.kernel(), GetParam());
  }
  EXPECT_EQ(lanes.side_by_side(), lanes.kernel() != Kernel::kOneByOne);
}

TEST(Blake2bLanesKernel, FastestIsTheBestMixtapeCpuAllows) {
  // ctest runs this binary twice: as it is, and with MIXTAPE_CPU=avx2
  // (tests/crypto/CMakeLists.txt), so the AVX2 kernels are the ones
  // dispatched in one of the runs on every machine that has AVX2.
  const char* setting = std::getenv("MIXTAPE_CPU");
  const CpuLevel hardware = cpu_level_of_hardware();
  CpuLevel expected = hardware;
  if (setting && *setting) {
    auto cap = parse_cpu_level(setting);
    ASSERT_TRUE(cap) << setting;
    expected = std::min(*cap, hardware);
  }
  EXPECT_EQ(cpu_level(), expected);
  const Kernel kernel = Blake2b256Lanes().kernel();
  EXPECT_EQ(kernel, expected == CpuLevel::kAvx512 ? Kernel::kAvx512
                    : expected == CpuLevel::kAvx2 ? Kernel::kAvx2
                                                  : Kernel::kOneByOne);
  // Which one this machine runs is worth knowing next to the timings.
  ::testing::Test::RecordProperty("kernel", to_string(kernel));
  ::testing::Test::RecordProperty("hardware", to_string(hardware));
}

TEST(Blake2bLanesKernel, CpuLevelNames) {
  EXPECT_EQ(parse_cpu_level("avx512"), CpuLevel::kAvx512);
  EXPECT_EQ(parse_cpu_level("AVX-512"), CpuLevel::kAvx512);
  EXPECT_EQ(parse_cpu_level("avx2"), CpuLevel::kAvx2);
  EXPECT_EQ(parse_cpu_level("Generic"), CpuLevel::kGeneric);
  EXPECT_EQ(parse_cpu_level("sse2"), std::nullopt);
  EXPECT_EQ(parse_cpu_level(""), std::nullopt);
  for (CpuLevel level : {CpuLevel::kGeneric, CpuLevel::kAvx2, CpuLevel::kAvx512})
    EXPECT_EQ(parse_cpu_level(to_string(level)), level);
  EXPECT_TRUE(Blake2b256Lanes::supported(Kernel::kOneByOne));
  EXPECT_FALSE(Blake2b256Lanes(Kernel::kOneByOne).side_by_side());
}

// Every kernel this CPU runs, whichever kFastest picks.
std::vector<Kernel> kernels_of_this_cpu() {
  std::vector<Kernel> kernels;
  for (Kernel k : {Kernel::kFastest, Kernel::kAvx512, Kernel::kAvx2, Kernel::kOneByOne})
    if (Blake2b256Lanes::supported(k)) kernels.push_back(k);
  return kernels;
}

INSTANTIATE_TEST_SUITE_P(Kernels, Blake2bLanes, ::testing::ValuesIn(kernels_of_this_cpu()),
                         [](const ::testing::TestParamInfo<Kernel>& info) {
                           switch (info.param) {
                             case Kernel::kFastest:
                               return "Fastest";
                             case Kernel::kAvx512:
                               return "Avx512";
                             case Kernel::kAvx2:
                               return "Avx2";
                             case Kernel::kOneByOne:
                               return "OneByOne";
                           }
                           return "Unknown";
                         });

}  // namespace
}  // namespace mixtape::crypto
