// Block mapping (docs/FORMAT.md "Finding bytes on tape"), checked against
// values computed by hand from the formula.
#include <gtest/gtest.h>

#include "engine/format/format.h"

namespace mixtape::format {
namespace {

// B0 = 1000, H = 200, R = 512 KiB; the payload starts at c = 216.
constexpr ArchiveGeometry kEncrypted{1000, 524288, true, 200};
constexpr ArchiveGeometry kPlain{1000, 524288, false, 0};

TEST(Locate, FirstByteIsAfterHeaderAndNonce) {
  EXPECT_EQ(locate(kEncrypted, 0), (TapePosition{1000, 216, 0, 0, 216}));
}

TEST(Locate, LastByteOfFirstChunk) {
  EXPECT_EQ(locate(kEncrypted, 65535), (TapePosition{1000, 216, 0, 65535, 216}));
}

TEST(Locate, SecondChunkStartsAfterTag) {
  // c = 216 + 65552 = 65768
  EXPECT_EQ(locate(kEncrypted, 65536), (TapePosition{1000, 65768, 1, 0, 65768}));
}

TEST(Locate, ChunkInSecondRecord) {
  // i = 8: c = 216 + 8 * 65552 = 524632 = 524288 + 344
  EXPECT_EQ(locate(kEncrypted, 8 * 65536 + 5), (TapePosition{1001, 344, 8, 5, 524632}));
}

TEST(Locate, TenMegabytesIn) {
  // o = 10,000,000: i = 152 (152 * 65536 = 9,961,472; remainder 38,528);
  // c = 216 + 152 * 65552 = 9,964,120 = 19 * 524,288 + 2,648.
  EXPECT_EQ(locate(kEncrypted, 10000000), (TapePosition{1019, 2648, 152, 38528, 9964120}));
}

TEST(Locate, PlainArchiveUsesPlaintextOffset) {
  // c = o = 10,000,000 = 19 * 524,288 + 38,528
  EXPECT_EQ(locate(kPlain, 10000000), (TapePosition{1019, 38528, 0, 0, 10000000}));
  EXPECT_EQ(locate(kPlain, 0), (TapePosition{1000, 0, 0, 0, 0}));
}

TEST(Locate, SmallRecords) {
  // R = 512 (smallest allowed): o = 65536 -> c = 216 + 65552 = 65768 = 128 * 512 + 232.
  ArchiveGeometry g{7, 512, true, 200};
  EXPECT_EQ(locate(g, 65536), (TapePosition{135, 232, 1, 0, 65768}));
}

TEST(Locate, WorkedExampleOfFormatMd) {
  // docs/FORMAT.md section 8: B0 = 64, H = 168, R = 512 KiB, o = 10000384.
  EXPECT_EQ(locate(ArchiveGeometry{64, 524288, true, 168}, 10000384),
            (TapePosition{83, 2616, 152, 38912, 9964088}));
}

TEST(Locate, RefusesZeroRecordSize) {
  EXPECT_THROW(locate(ArchiveGeometry{0, 0, true, 200}, 0), FormatError);
}

TEST(AgeEncryptedSize, CountsNonceChunksAndTags) {
  EXPECT_EQ(age_encrypted_size(200, 0), 200u + 16 + 16);  // one empty final chunk
  EXPECT_EQ(age_encrypted_size(200, 1), 200u + 16 + 1 + 16);
  EXPECT_EQ(age_encrypted_size(200, 65536), 200u + 16 + 65536 + 16);  // full last chunk
  EXPECT_EQ(age_encrypted_size(200, 65537), 200u + 16 + 65537 + 32);
  EXPECT_EQ(age_encrypted_size(0, 10 * 65536), 16u + 10 * 65552);
}

TEST(RecordCount, RoundsUp) {
  EXPECT_EQ(record_count(0, 512), 0u);
  EXPECT_EQ(record_count(1, 512), 1u);
  EXPECT_EQ(record_count(524288, 524288), 1u);
  EXPECT_EQ(record_count(524289, 524288), 2u);
}

TEST(Constants, MatchTheSpec) {
  EXPECT_EQ(kAgeEncryptedChunkSize, 65552u);
  EXPECT_EQ(kDefaultRecordSize, 524288u);
  EXPECT_EQ(kTarBlockSize, 512u);
  EXPECT_EQ(kFormatVersion, 2);
  EXPECT_EQ(kOldestFormatVersion, 1);
}

}  // namespace
}  // namespace mixtape::format
