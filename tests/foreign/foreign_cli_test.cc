// Tapes mixtape did not write, through the built `mixtape`: tape info,
// restore --device with no catalog, import, ls, restore and verify of the
// imported tape beside the backups.
#include <gtest/gtest.h>

#include <filesystem>

#include "tests/foreign/foreign_util.h"

namespace mixtape::foreign::testing {
namespace {

namespace fs = std::filesystem;

class ForeignCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    f_.make_tree(f_.file("one"), 11);
    f_.make_tree(f_.file("two"), 12);
    image_ = f_.tap("found.tap",
                    {"10240:" + f_.tar("one.tar", "--format=gnu -b 20", f_.file("one")),
                     "131072:" + f_.tar("two.tar", "--format=gnu -b 256 -z", f_.file("two"))});
  }

  std::map<std::string, double> stats() { return read_stats_text(read_file(f_.file("s.json"))); }

  ForeignFixture f_;
  std::string image_;
};

TEST_F(ForeignCliTest, TapeInfoSaysWhatEachFileHolds) {
  CommandResult r = f_.mixtape("tape info --device " + shell_quote(image_));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("a tape mixtape did not write; in a drive it is tar-"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("file 1: first block "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(tar)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(tar.gz)"), std::string::npos) << r.out;
}

TEST_F(ForeignCliTest, RestoreDeviceNeedsNoCatalogAndReadsTheTapeOnceToIndexIt) {
  CommandResult r = f_.mixtape("restore /file1 /file2 --to out --device " + shell_quote(image_) +
                               " --stats-json s.json");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(ForeignFixture::diff(f_.file("one"), f_.file("out/file1")), "");
  EXPECT_EQ(ForeignFixture::diff(f_.file("two"), f_.file("out/file2")), "");
  EXPECT_FALSE(fs::exists(f_.catalog()));
  // The index stays in the cache folder: the next restore reads only what
  // it restores.
  std::size_t indexes = 0;
  for (const auto& e : fs::directory_iterator(f_.cache()))
    indexes +=
        e.path().filename().string().starts_with("foreign-") && e.path().extension() == ".db";
  EXPECT_EQ(indexes, 1u);
  r = f_.mixtape("restore /file1/a/small.txt --to out2 --device " + shell_quote(image_) +
                 " --stats-json s.json");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(read_file(f_.file("out2/file1/a/small.txt")), read_file(f_.file("one/a/small.txt")));
  // Its first records (to know the tape) and small.txt's: a fraction of it.
  EXPECT_LT(stats()["bytes_read"], static_cast<double>(fs::file_size(image_)) / 2);
}

TEST_F(ForeignCliTest, ImportPutsTheTapeInLsRestoreAndVerify) {
  ASSERT_EQ(f_.mixtape("init --no-encryption").status, 0);
  CommandResult r = f_.mixtape("import --device " + shell_quote(image_));
  ASSERT_EQ(r.status, 0) << r.err;
  const std::size_t at = r.out.find("imported tape tar-");
  ASSERT_NE(at, std::string::npos) << r.out;
  const std::string serial = r.out.substr(at + 14, 16);
  const std::string prefix = "/imported/" + serial;
  r = f_.mixtape("ls " + prefix + "/file1/a");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("big.bin"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("link"), std::string::npos) << r.out;
  r = f_.mixtape("tapes");
  EXPECT_NE(r.out.find(serial), std::string::npos) << r.out;
  // A second import of the same tape changes nothing.
  r = f_.mixtape("import --device " + shell_quote(image_));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("in the catalog already"), std::string::npos) << r.out;
  r = f_.mixtape("restore " + prefix + " --to out --device " + shell_quote(image_));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(ForeignFixture::diff(f_.file("one"), f_.file("out" + prefix + "/file1")), "");
  EXPECT_EQ(ForeignFixture::diff(f_.file("two"), f_.file("out" + prefix + "/file2")), "");
  r = f_.mixtape("verify --device " + shell_quote(image_));
  ASSERT_EQ(r.status, 0) << r.out << r.err;
}

TEST_F(ForeignCliTest, ImportFromALibraryNamesTapesByTheirImages) {
  ASSERT_EQ(f_.mixtape("init --no-encryption").status, 0);
  fs::create_directories(f_.file("lib"));
  fs::copy_file(image_, f_.file("lib/SHELF1.tap"));
  CommandResult r = f_.mixtape("import --library lib");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("imported tape SHELF1"), std::string::npos) << r.out;
  r = f_.mixtape("restore /imported/SHELF1/file1/a/big.bin --to out --library lib");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(read_file(f_.file("out/imported/SHELF1/file1/a/big.bin")),
            read_file(f_.file("one/a/big.bin")));
}

TEST_F(ForeignCliTest, AMixtapeTapeIsNotImported) {
  ASSERT_EQ(f_.mixtape("init --no-encryption").status, 0);
  ASSERT_EQ(f_.mixtape("label --serial L00001 --library lib --new-library --capacity 64M").status,
            0);
  CommandResult r = f_.mixtape("import --device lib/L00001.tap");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("a mixtape tape"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace mixtape::foreign::testing

namespace mixtape::foreign::testing {
namespace {

// The catalog copies on mixtape's own tapes carry the imported tape too:
// recovered from a backup tape alone, the imported files still restore
// from the tar tape.
TEST_F(ForeignCliTest, AnImportedTapeComesBackWithACatalogRecoveredFromTape) {
  ASSERT_EQ(f_.mixtape("init --no-encryption").status, 0);
  fs::create_directories(f_.file("lib"));
  fs::copy_file(image_, f_.file("lib/SHELF2.tap"));
  ASSERT_EQ(f_.mixtape("import --library lib").status, 0);
  write_file(f_.file("data/x.txt"), "backed up after the import\n");
  CommandResult r = f_.mixtape("backup data --library lib --copies 1");
  ASSERT_EQ(r.status, 0) << r.err;
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(f_.catalog() + suffix);
  ASSERT_EQ(f_.mixtape("init --no-encryption").status, 0);
  std::string mixtape_tape;
  for (const auto& e : fs::directory_iterator(f_.file("lib")))
    if (e.path().extension() == ".tap" && e.path().stem() != "SHELF2") mixtape_tape = e.path();
  ASSERT_FALSE(mixtape_tape.empty());
  r = f_.mixtape("recover --device " + shell_quote(mixtape_tape));
  ASSERT_EQ(r.status, 0) << r.err;
  r = f_.mixtape("restore /imported/SHELF2/file2 --to out --library lib");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(ForeignFixture::diff(f_.file("two"), f_.file("out/imported/SHELF2/file2")), "");
}

}  // namespace
}  // namespace mixtape::foreign::testing
