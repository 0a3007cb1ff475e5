// BLAKE2b-256 must equal `b2sum -l 256`, the tool the archaeology drill uses.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

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

TEST(Blake2b, MissingFileNamesThePath) {
  try {
    blake2b256_file_hex("/nonexistent/mixtape-file");
    FAIL() << "expected an error";
  } catch (const SystemError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/mixtape-file"), std::string::npos);
  }
}

}  // namespace
}  // namespace mixtape::crypto
