// `mixtape recover`: the catalog back from tapes, run as a user runs the
// built binary. The --stats-json counters prove a found tape costs its
// trailing index and nothing else.
#include <gtest/gtest.h>

#include <filesystem>

#include "tests/restore/test_util.h"

namespace mixtape::restore::testing {
namespace {

namespace fs = std::filesystem;

class RecoverCliTest : public TreeTest {
 protected:
  CommandResult recover(const std::string& args) {
    CommandResult r =
        f_.mixtape("recover " + args + " --stats-json " + shell_quote(f_.file("stats.json")));
    stats_ = read_stats(f_.file("stats.json"));
    return r;
  }
  // Blocks (records) and bytes of the last tape file of an image.
  std::pair<std::uint64_t, std::uint64_t> last_file(const std::string& image) {
    auto blocks = parse_image(image);
    auto starts = tape_files(blocks);
    std::uint64_t records = 0, bytes = 0;
    for (std::uint64_t b = starts.back(); b < blocks.size() && !blocks[b].filemark; ++b) {
      ++records;
      bytes += blocks[b].size;
    }
    return {records, bytes};
  }

  std::map<std::string, double> stats_;
};

TEST_F(RecoverCliTest, AFoundTapeCostsItsTrailingIndexAndNothingElse) {
  f_.init(1);
  f_.backup();
  const std::string before = f_.listing();
  f_.drop_catalog();
  CommandResult r = recover("--device " + shell_quote(f_.image("L00001")));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("from its trailing index"), std::string::npos) << r.out;
  auto [records, bytes] = last_file(f_.image("L00001"));
  // Space to EOD, back over the last filemark (a complete tape ends with
  // one), back over the one before, read it, read the file: no locate, one
  // EOD space, two filemark spaces, and exactly the trailing index's bytes.
  EXPECT_EQ(stats_["locates"], 0);
  EXPECT_EQ(stats_["eod_spaces"], 1);
  EXPECT_EQ(stats_["filemark_spaces"], 2);
  EXPECT_EQ(stats_["rewinds"], 0);
  EXPECT_EQ(stats_["records_read"], static_cast<double>(records));
  EXPECT_EQ(stats_["bytes_read"], static_cast<double>(bytes));
  EXPECT_LT(stats_["bytes_read"], static_cast<double>(fs::file_size(f_.image("L00001")) / 10));
  EXPECT_EQ(f_.listing(), before);
  // Not only listed: every file comes back from the tape through it.
  EXPECT_EQ(f_.restore_differences("out"), "");
}

TEST_F(RecoverCliTest, DeletedCatalogComesBackFromTheLibraryExactly) {
  f_.init(2);
  f_.backup();
  const std::string before = f_.listing();
  const std::string status_before = f_.mixtape("status").out;
  f_.drop_catalog();
  CommandResult r = recover("--library " + shell_quote(f_.library()));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(f_.listing(), before);
  // Again: the union of the same tapes adds nothing.
  r = recover("--library " + shell_quote(f_.library()));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("added 0 runs, 0 tapes, 0 directories, 0 files, 0 versions, 0 archives, "
                       "0 copies"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(f_.listing(), before);
  EXPECT_EQ(f_.mixtape("status").out, status_before);
  EXPECT_EQ(f_.restore_differences("out"), "");
}

TEST_F(RecoverCliTest, TapesMergeIntoTheirUnion) {
  f_.init(2);
  f_.backup();
  const std::string before = f_.listing();
  f_.drop_catalog();
  // L00001 was written first: its trailing index knows nothing of L00002.
  CommandResult r = recover("--library " + shell_quote(f_.library()) + " --serial L00001");
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string half = f_.listing();
  EXPECT_NE(half.find("copies 1/2"), std::string::npos) << half;
  EXPECT_EQ(half.find("replica L00002"), std::string::npos) << half;
  r = recover("--library " + shell_quote(f_.library()) + " --serial L00002");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(f_.listing(), before);
  EXPECT_EQ(f_.restore_differences("out"), "");
}

TEST_F(RecoverCliTest, ADamagedTrailingIndexFallsBackToWalkingTheIndexes) {
  f_.init(1);
  f_.backup();
  const std::string before = f_.listing();
  f_.drop_catalog();
  auto blocks = parse_image(f_.image("L00001"));
  flip_byte(f_.image("L00001"), blocks[tape_files(blocks).back()].data_offset + 5000);
  CommandResult r = recover("--device " + shell_quote(f_.image("L00001")));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("trailing index is not usable"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("from a walk over"), std::string::npos) << r.out;
  EXPECT_EQ(f_.listing(), before);
  // The archives themselves were passed over, not read.
  EXPECT_LT(stats_["bytes_read"], static_cast<double>(fs::file_size(f_.image("L00001")) / 2));
  EXPECT_EQ(f_.restore_differences("out"), "");
}

TEST_F(RecoverCliTest, WalkingTheIndexesGivesTheSameCatalog) {
  f_.init(2);
  f_.backup();
  const std::string before = f_.listing();
  f_.drop_catalog();
  CommandResult r = recover("--library " + shell_quote(f_.library()) + " --walk-indexes");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(f_.listing(), before);
  EXPECT_EQ(f_.restore_differences("out"), "");
}

TEST_F(RecoverCliTest, AnInterruptedSessionKeepsItsCompleteArchives) {
  f_.init(1);
  f_.backup();
  const std::string before = f_.listing();
  f_.drop_catalog();
  // The tape ends after the last archive's filemark: the trailing index
  // was never written.
  auto blocks = parse_image(f_.image("L00001"));
  fs::resize_file(f_.image("L00001"), blocks[tape_files(blocks).back()].data_offset - 4);
  CommandResult r = recover("--device " + shell_quote(f_.image("L00001")));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("not an index"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("from a walk over"), std::string::npos) << r.out;
  EXPECT_EQ(f_.listing(), before);
  // Only the first records of the last archive were read to tell it is not
  // an index (the age decryptor reads ahead a few MiB).
  EXPECT_LT(stats_["bytes_read"], static_cast<double>(fs::file_size(f_.image("L00001")) / 2));
  // The next backup appends after those archives instead of overwriting
  // them, and everything restores.
  write_file(f_.src() + "/later.txt", "written after the recovery\n");
  f_.backup();
  r = f_.mixtape("restore " + shell_quote(f_.src()) + " --to " + shell_quote(f_.file("out")) +
                 " --library " + shell_quote(f_.library()));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(read_file(f_.file("out") + f_.src() + "/later.txt"), "written after the recovery\n");
  EXPECT_EQ(read_file(f_.file("out") + f_.src() + "/big.bin"), read_file(f_.src() + "/big.bin"));
}

TEST_F(RecoverCliTest, ATruncatedTapeGivesBackWhatIsWhole) {
  f_.init(1);
  f_.backup();
  std::int64_t last_archive = 0;
  {
    auto catalog = catalog::Catalog::open_read_only(f_.catalog());
    last_archive =
        catalog.archives_of_tape(catalog.tape_by_serial("L00001")->id).back().archive_file;
  }
  f_.drop_catalog();
  auto blocks = parse_image(f_.image("L00001"));
  auto starts = tape_files(blocks);
  fs::resize_file(f_.image("L00001"), blocks[starts[last_archive] + 1].data_offset + 10);
  CommandResult r = recover("--device " + shell_quote(f_.image("L00001")));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("incomplete"), std::string::npos) << r.err;
  auto catalog = catalog::Catalog::open_read_only(f_.catalog());
  std::size_t with_copy = 0, without = 0;
  catalog.walk(f_.src(), catalog::View::latest(), [&](const std::string&, const catalog::Entry& e) {
    if (e.is_dir) return;
    auto copies = catalog.copies_of(e.version.id);
    for (const auto& c : copies) EXPECT_LT(c.archive.archive_file, last_archive);
    (copies.empty() ? without : with_copy) += 1;
  });
  EXPECT_GT(with_copy, 0u);
  EXPECT_GT(without, 0u) << "the files of the cut archive have no copy";
  // What has a copy restores with its bytes; what has none is named.
  r = f_.mixtape("restore " + shell_quote(f_.src()) + " --to " + shell_quote(f_.file("out")) +
                 " --library " + shell_quote(f_.library()));
  EXPECT_EQ(r.status, 1) << r.err;
  std::size_t restored = 0, lost = 0;
  catalog.walk(
      f_.src(), catalog::View::latest(), [&](const std::string& path, const catalog::Entry& e) {
        if (e.is_dir || e.version.kind != catalog::VersionKind::kFile || e.version.size == 0)
          return;
        if (catalog.copies_of(e.version.id).empty()) {
          ++lost;
          EXPECT_NE(r.err.find("mixtape: not restored: " + path + ": "), std::string::npos)
              << path << " has no copy and was not named:\n"
              << r.err;
          EXPECT_FALSE(fs::exists(f_.file("out") + path)) << path;
        } else {
          ++restored;
          EXPECT_EQ(read_file(f_.file("out") + path), read_file(path)) << path;
        }
      });
  EXPECT_GT(restored, 0u);
  EXPECT_GT(lost, 0u);
}

TEST_F(RecoverCliTest, AWrongIdentityIsRefusedAndLeavesNoCatalog) {
  f_.init(1);
  f_.backup();
  f_.drop_catalog();
  ASSERT_EQ(f_.mixtape("keygen -o " + shell_quote(f_.file("other.txt"))).status, 0);
  CommandResult r = recover("--device " + shell_quote(f_.image("L00001")) + " -i " +
                            shell_quote(f_.file("other.txt")));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("wrong --identity"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(f_.catalog()));
}

TEST_F(RecoverCliTest, ATapeOfAnotherCatalogIsRefusedUnlessForced) {
  f_.init(1);
  f_.backup();
  const std::string before = f_.listing();
  Fixture other;
  other.make_tree();
  other.init(1);
  other.backup();
  std::string identities =
      " -i " + shell_quote(f_.identity()) + " -i " + shell_quote(other.identity());
  CommandResult r = recover("--device " + shell_quote(other.image("L00001")) + identities);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("belongs to catalog"), std::string::npos) << r.err;
  EXPECT_EQ(f_.listing(), before);
  r = recover("--device " + shell_quote(other.image("L00001")) + identities + " --force");
  ASSERT_EQ(r.status, 0) << r.err;
}

TEST_F(RecoverCliTest, ABlankTapeIsAClearError) {
  ASSERT_EQ(
      f_.mixtape("tape mkimage --device " + shell_quote(f_.file("blank.tap")) + " --capacity 1M")
          .status,
      0);
  CommandResult r = recover("--device " + shell_quote(f_.file("blank.tap")));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("blank"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(f_.catalog()));
}

}  // namespace
}  // namespace mixtape::restore::testing
