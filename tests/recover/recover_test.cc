// engine/recover as the mount uses it: a catalog for a found tape, built in
// a cache folder from the tape alone.
#include <gtest/gtest.h>

#include <filesystem>

#include "engine/recover/recover.h"
#include "engine/tape/image_drive.h"
#include "tests/restore/test_util.h"

namespace mixtape::restore::testing {
namespace {

namespace fs = std::filesystem;

// L00001, the one tape of a one-copy backup, in an image drive, and the
// keys that read it.
class FoundTapeTest : public TreeTest {
 protected:
  void SetUp() override {
    TreeTest::SetUp();
    f_.init(1);
    f_.backup();
    keys_.identities = crypto::load_identities(f_.identity());
    drive_ = tape::ImageDrive::open(f_.image("L00001"), true);
  }

  crypto::AgeDecryptKeys keys_;
  std::unique_ptr<tape::ImageDrive> drive_;
};

TEST_F(FoundTapeTest, BuildsACatalogInTheCacheFolderFromTheTapeAlone) {
  const std::string cache = f_.file("cache");
  for (int round = 0; round < 2; ++round) {  // a second mount replaces it
    recover::FoundTape found = recover::catalog_for_found_tape(*drive_, cache, keys_);
    EXPECT_EQ(found.catalog_path, cache + "/tape-L00001.db");
    EXPECT_EQ(found.report.serial, "L00001");
    EXPECT_EQ(found.report.source, recover::RecoverSource::kTrailingIndex);
    auto catalog = catalog::Catalog::open_read_only(found.catalog_path);
    auto big = catalog.resolve(f_.src() + "/big.bin");
    ASSERT_TRUE(big);
    auto copies = catalog.copies_of(big->version.id);
    ASSERT_EQ(copies.size(), 1u);
    EXPECT_EQ(copies[0].tape.serial, "L00001");
  }
  for (const auto& e : fs::directory_iterator(cache))
    EXPECT_EQ(e.path().filename().string().rfind("tape-L00001.db", 0), 0u)
        << "left in the cache folder: " << e.path();
  EXPECT_EQ(drive_->stats().locates, 0u);
}

TEST_F(FoundTapeTest, TheTrailingIndexIsReadWithExactSpacing) {
  const std::string path = f_.file("trailing.db");
  recover::TrailingIndex trailing = recover::read_trailing_index(*drive_, keys_, path);
  EXPECT_EQ(trailing.header.kind, format::IndexKind::kTrailing);
  EXPECT_EQ(trailing.header.serial, "L00001");
  EXPECT_EQ(drive_->stats().bytes_read, trailing.bytes);
  EXPECT_EQ(drive_->stats().filemark_spaces, 2u);
  EXPECT_EQ(drive_->stats().eod_spaces, 1u);
  EXPECT_EQ(drive_->stats().locates, 0u);
  format::IndexReader index(path);  // a valid index file
  EXPECT_EQ(index.header().catalog_id, trailing.header.catalog_id);
}

}  // namespace
}  // namespace mixtape::restore::testing
