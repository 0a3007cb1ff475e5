#include "engine/common/common.h"
#include "engine/catalog/catalog.h"
#include "engine/crypto/crypto.h"
#include "engine/format/format.h"
#include "engine/tape/tape.h"
#include "tests/support/test_support.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <optional>
#include <string>

namespace mixtape {
namespace {

enum class Color { kRed, kGreen, kBlue };
constexpr EnumNames<Color, 2> kColors{{{Color::kRed, "red"}, {Color::kGreen, "green"}}};

TEST(EnumNames, NamesAndParsesBothWays) {
  EXPECT_STREQ(kColors.name(Color::kRed), "red");
  EXPECT_STREQ(kColors.name(Color::kGreen), "green");
  EXPECT_STREQ(kColors.name(Color::kBlue), "?");  // missing from the table
  EXPECT_EQ(kColors.parse("green"), Color::kGreen);
  EXPECT_EQ(kColors.parse("Green"), std::nullopt);
  EXPECT_EQ(kColors.parse(""), std::nullopt);
}

// Every value up to the last enumerator has a name in its table (the
// compiler no longer checks a switch for them: docs/DECISIONS.md).
template <typename Enum, typename ToString>
void expect_every_value_named(Enum last, ToString to_string) {
  for (int i = 0; i <= static_cast<int>(last); ++i) {
    EXPECT_NE(std::string(to_string(static_cast<Enum>(i))), "?") << "value " << i;
  }
}

TEST(EnumNames, EveryEnumOfTheEngineHasAllItsNames) {
  using namespace catalog;
  expect_every_value_named(RunKind::kBackup, [](RunKind v) { return to_string(v); });
  expect_every_value_named(VersionKind::kSymlink, [](VersionKind v) { return to_string(v); });
  expect_every_value_named(TapeState::kRetired, [](TapeState v) { return to_string(v); });
  expect_every_value_named(VerifyResult::kMissing, [](VerifyResult v) { return to_string(v); });
  expect_every_value_named(tape::TapeErrorKind::kDeviceError,
                           [](tape::TapeErrorKind v) { return std::string(tape::to_string(v)); });
  expect_every_value_named(crypto::AgeErrorKind::KeyMalformed,
                           [](crypto::AgeErrorKind v) { return crypto::to_string(v); });
  expect_every_value_named(crypto::CpuLevel::kAvx512,
                           [](crypto::CpuLevel v) { return crypto::to_string(v); });
  expect_every_value_named(crypto::Blake2b256::Kernel::kScalar,
                           [](crypto::Blake2b256::Kernel v) { return crypto::to_string(v); });
  expect_every_value_named(crypto::Blake2b256Lanes::Kernel::kOneByOne,
                           [](crypto::Blake2b256Lanes::Kernel v) { return crypto::to_string(v); });
  expect_every_value_named(format::MemberType::kOther, [](format::MemberType v) {
    return std::string(format::member_type_name(v));
  });
}

TEST(ParseSize, AcceptsBinaryUnits) {
  EXPECT_EQ(parse_size("4096"), 4096u);
  EXPECT_EQ(parse_size("512K"), 512u * 1024);
  EXPECT_EQ(parse_size("64M"), 64ull << 20);
  EXPECT_EQ(parse_size("2.5T"), (5ull << 40) / 2);
  EXPECT_EQ(parse_size("1GB"), 1ull << 30);
}

TEST(ParseSize, RejectsGarbage) {
  EXPECT_THROW_MESSAGE(parse_size(""), Error, "empty size");
  EXPECT_THROW_MESSAGE(parse_size("M"), Error, "invalid size 'M'");
  EXPECT_THROW_MESSAGE(parse_size("12Q"), Error, "invalid size '12Q'");
  EXPECT_THROW_MESSAGE(parse_size("-1K"), Error, "invalid size '-1K'");
  EXPECT_THROW_MESSAGE(parse_size("99999999P"), Error, "invalid size '99999999P'");
}

TEST(Hex, RoundTrips) {
  Bytes bytes = {0x00, 0x01, 0xab, 0xff};
  EXPECT_EQ(to_hex(bytes), "0001abff");
  EXPECT_EQ(from_hex("0001ABff"), bytes);
  EXPECT_THROW_MESSAGE(from_hex("abc"), Error, "hex string has odd length");
  EXPECT_THROW_MESSAGE(from_hex("zz"), Error, "invalid hex digit in 'zz'");
}

TEST(MemorySource, ReadsSequentiallyAndAtOffsets) {
  std::string text = "hello world";
  MemorySource source(as_bytes(text));
  Bytes buf(5);
  EXPECT_EQ(read_full(source, buf), 5u);
  EXPECT_EQ(as_chars(buf), "hello");
  EXPECT_EQ(source.read_at(6, buf), 5u);
  EXPECT_EQ(as_chars(buf), "world");
  EXPECT_EQ(source.read_at(11, buf), 0u);
}

// Sets (or, given nullptr, unsets) an environment variable for a scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) saved_ = old;
    if (value)
      ::setenv(name, value, 1);
    else
      ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (saved_)
      ::setenv(name_, saved_->c_str(), 1);
    else
      ::unsetenv(name_);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> saved_;
};

TEST(UserPath, TheXdgVariableWinsThenHome) {
  ScopedEnv home("HOME", "/home/someone");
  {
    ScopedEnv config("XDG_CONFIG_HOME", "/elsewhere/config");
    ScopedEnv data("XDG_DATA_HOME", "/elsewhere/data");
    ScopedEnv cache("XDG_CACHE_HOME", "/elsewhere/cache");
    EXPECT_EQ(user_path(UserDir::kConfig, "mixtape/identity.txt"),
              "/elsewhere/config/mixtape/identity.txt");
    EXPECT_EQ(user_path(UserDir::kData, "mixtape/catalog.db"),
              "/elsewhere/data/mixtape/catalog.db");
    EXPECT_EQ(user_path_or_root(UserDir::kCache, "mixtape/stage"),
              "/elsewhere/cache/mixtape/stage");
  }
  ScopedEnv config("XDG_CONFIG_HOME", "");  // empty counts as unset
  ScopedEnv data("XDG_DATA_HOME", nullptr);
  ScopedEnv cache("XDG_CACHE_HOME", nullptr);
  EXPECT_EQ(user_path(UserDir::kConfig, "mixtape/identity.txt"),
            "/home/someone/.config/mixtape/identity.txt");
  EXPECT_EQ(user_path(UserDir::kData, "mixtape/catalog.db"),
            "/home/someone/.local/share/mixtape/catalog.db");
  EXPECT_EQ(user_path(UserDir::kCache, "mixtape/checked"), "/home/someone/.cache/mixtape/checked");
}

// Without $HOME the stamp cache has no place (it is only a cache), while the
// CLI's defaults fall back to root's home.
TEST(UserPath, WithoutHomeEmptyOrRoot) {
  ScopedEnv home("HOME", nullptr);
  ScopedEnv cache("XDG_CACHE_HOME", nullptr);
  ScopedEnv config("XDG_CONFIG_HOME", nullptr);
  EXPECT_EQ(user_path(UserDir::kCache, "mixtape/checked"), "");
  EXPECT_EQ(user_path_or_root(UserDir::kConfig, "mixtape/identity.txt"),
            "/root/.config/mixtape/identity.txt");
}

TEST(BufferPool, ABufferComesBackOnlyWhenNobodyElseHoldsIt) {
  BufferPool pool;
  auto a = pool.take(4096);
  std::shared_ptr<const void> held = a;  // as a drive's queue holds a chunk
  const auto* a_bytes = a->data.get();
  a.reset();
  auto b = pool.take(4096);
  EXPECT_NE(b->data.get(), a_bytes) << "handed out while still held";
  EXPECT_EQ(pool.buffers(), 2u);
  held.reset();
  b.reset();
  auto c = pool.take(4096);
  EXPECT_EQ(c->data.get(), a_bytes) << "the first free buffer of the size";
  EXPECT_EQ(pool.buffers(), 2u);
  auto d = pool.take(8192);
  EXPECT_EQ(d->size, 8192u);
  EXPECT_EQ(pool.buffers(), 3u) << "no free buffer of that size";
}

}  // namespace
}  // namespace mixtape
