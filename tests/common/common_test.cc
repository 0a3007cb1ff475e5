#include "engine/common/common.h"

#include <gtest/gtest.h>

namespace mixtape {
namespace {

TEST(ParseSize, AcceptsBinaryUnits) {
  EXPECT_EQ(parse_size("4096"), 4096u);
  EXPECT_EQ(parse_size("512K"), 512u * 1024);
  EXPECT_EQ(parse_size("64M"), 64ull << 20);
  EXPECT_EQ(parse_size("2.5T"), (5ull << 40) / 2);
  EXPECT_EQ(parse_size("1GB"), 1ull << 30);
}

TEST(ParseSize, RejectsGarbage) {
  EXPECT_THROW(parse_size(""), Error);
  EXPECT_THROW(parse_size("M"), Error);
  EXPECT_THROW(parse_size("12Q"), Error);
  EXPECT_THROW(parse_size("-1K"), Error);
  EXPECT_THROW(parse_size("99999999P"), Error);
}

TEST(Hex, RoundTrips) {
  Bytes bytes = {0x00, 0x01, 0xab, 0xff};
  EXPECT_EQ(to_hex(bytes), "0001abff");
  EXPECT_EQ(from_hex("0001ABff"), bytes);
  EXPECT_THROW(from_hex("abc"), Error);
  EXPECT_THROW(from_hex("zz"), Error);
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

}  // namespace
}  // namespace mixtape
