// Disks that fill up (a small tmpfs): the restore's destination, and the
// catalog's disk during a scan and during a backup. Invariants: the run
// fails with one clear line naming the cause; nothing half-written is left
// behind; the catalog stays whole (SQLite's integrity_check) and never
// claims a copy the tapes do not hold (each claimed copy is read back);
// and once there is room again the work completes.
#include <gtest/gtest.h>

#include <filesystem>

#include "tests/faults/faults_test_util.h"

namespace mixtape::faults::testing {
namespace {

namespace fs = std::filesystem;

// SQLite's own full check, by the sqlite3 tool: "ok" or the damage.
std::string integrity_check(const std::string& db) {
  CommandResult r = run_shell("sqlite3 " + shell_quote(db) + " 'PRAGMA integrity_check'");
  EXPECT_EQ(r.status, 0) << r.err;
  return r.out;
}

// The last line of a command's stderr, where mixtape puts its one error.
std::string last_line(const std::string& text) {
  std::string t = text;
  while (!t.empty() && t.back() == '\n') t.pop_back();
  return t.substr(t.rfind('\n') == std::string::npos ? 0 : t.rfind('\n') + 1);
}

class DiskFaultTest : public ::testing::Test {
 protected:
  // The run failed with one line, saying the disk is full; that line.
  static std::string expect_one_line_disk_full(const CommandResult& r) {
    EXPECT_NE(r.status, 0) << r.out;
    EXPECT_EQ(count_lines(r.err), 1u) << r.err;
    const std::string line = last_line(r.err);
    EXPECT_TRUE(line.find("disk is full") != std::string::npos ||
                line.find("No space left") != std::string::npos)
        << line;
    return line;
  }
  // Many files with long names: their catalog rows take some hundreds of
  // KB, more than a small disk has left.
  void many_files(int count) {
    for (int i = 0; i < count; ++i) {
      write_file(f_.src() + "/dir-with-a-rather-long-name-" + std::to_string(i % 20) +
                     "/file-with-a-rather-long-name-" + std::to_string(i) + ".txt",
                 "file " + std::to_string(i) + "\n");
    }
  }
  CommandResult mixtape(const std::string& catalog, const std::string& args) {
    return f_.mixtape(args + " --catalog " + shell_quote(catalog));
  }
  void init(const std::string& catalog) {
    CommandResult r =
        mixtape(catalog, "init --copies 1 --identity-out " + shell_quote(f_.identity()));
    ASSERT_EQ(r.status, 0) << r.err;
  }
  std::string backup_args() const {
    return "backup " + shell_quote(f_.src()) + " --library " + shell_quote(f_.library()) +
           " --new-library --capacity 64M";
  }
  // Every copy the catalog claims is read back from its tape and hashed.
  std::size_t claimed_copies_are_on_tape(const std::string& catalog_path) {
    auto catalog = catalog::Catalog::open_read_only(catalog_path);
    auto identity = crypto::load_identities(f_.identity()).at(0);
    return backup::testing::verify_catalog_against_tapes(catalog, f_.library(), identity);
  }

  Fixture f_;
};

// Invariant: a restore whose destination disk fills up fails the file that
// did not fit with the cause ("No space left on device") and its name,
// leaves no half-written file, restores every file that fits, and restores
// the rest once there is room.
TEST_F(DiskFaultTest, ARestoreDiskThatFillsUpFailsTheFileClearlyAndLeavesNothingHalfWritten) {
  f_.make_tree(8);
  f_.init(1);
  f_.backup();
  SmallDisk disk(f_.file("small"), 2 << 20);  // big.bin is 3 MB, the rest far less
  const std::string to = disk.file("out");
  CommandResult r = f_.mixtape("restore " + shell_quote(f_.src()) + " --to " + shell_quote(to) +
                               " --library " + shell_quote(f_.library()));
  EXPECT_EQ(r.status, 1);
  const std::string big = f_.src() + "/big.bin";
  EXPECT_NE(r.err.find("mixtape: not restored: " + big + ": "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("No space left on device"), std::string::npos) << r.err;
  EXPECT_EQ(count_lines(r.err), 2u) << "one line for big.bin, one summary:\n" << r.err;
  EXPECT_FALSE(fs::exists(to + big));
  EXPECT_TRUE(leftovers(to).empty());
  for (const auto& file : regular_files(f_.src())) {
    if (file == big) continue;
    EXPECT_EQ(read_file(to + file), read_file(file)) << file;
  }

  disk.resize(8 << 20);
  r = f_.mixtape("restore " + shell_quote(big) + " --to " + shell_quote(to) + " --library " +
                 shell_quote(f_.library()));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(read_file(to + big) == read_file(big));
}

// The catalog's disk is full while a scan (or the scan a backup starts
// with) adds its rows.
class CatalogDiskFullTest : public DiskFaultTest,
                            public ::testing::WithParamInterface<const char*> {};

INSTANTIATE_TEST_SUITE_P(Commands, CatalogDiskFullTest, ::testing::Values("scan", "backup"));

// Invariant: the run fails with one line naming the catalog's trouble, the
// catalog is whole and readable afterwards, it claims no copy that is not
// on tape, and after the disk grows the same command completes.
TEST_P(CatalogDiskFullTest, TheRunFailsWithOneLineAndTheCatalogStaysWhole) {
  many_files(2000);
  SmallDisk disk(f_.file("catalog-disk"), 400 << 10);
  const std::string catalog = disk.file("catalog.db");
  init(catalog);
  const std::string command =
      std::string(GetParam()) == "scan" ? "scan " + shell_quote(f_.src()) : backup_args();
  CommandResult r = mixtape(catalog, command);
  const std::string line = expect_one_line_disk_full(r);
  EXPECT_NE(line.find(catalog), std::string::npos) << line;
  EXPECT_EQ(integrity_check(catalog), "ok\n");
  EXPECT_EQ(mixtape(catalog, "status").status, 0);
  if (fs::exists(f_.library())) claimed_copies_are_on_tape(catalog);

  disk.resize(16 << 20);
  r = mixtape(catalog, command);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(integrity_check(catalog), "ok\n");
  CommandResult status = mixtape(catalog, "status");
  EXPECT_NE(status.out.find("files: 2000 "), std::string::npos) << status.out;
  if (std::string(GetParam()) == "backup") {
    EXPECT_EQ(claimed_copies_are_on_tape(catalog), 2000u);
  }
}

// Invariant: when the catalog's disk fills up after the tapes were written,
// at the commit of the copies, the backup fails with one line; the catalog
// is whole and claims no copy (it committed none), though the tape holds
// them; the next backup, with room, writes and commits everything, and a
// restore brings every file back.
TEST_F(DiskFaultTest, ACatalogDiskFullAtTheCommitClaimsNothingAndTheNextBackupCompletes) {
  f_.make_tree(16);
  // A dozen more archives after the first, so that the backup is still
  // writing when the test catches it, however loaded the machine.
  for (int i = 0; i < 24; ++i)
    write_file(f_.src() + "/more/m" + std::to_string(i), random_text(512 << 10, 500 + i));
  SmallDisk disk(f_.file("catalog-disk"), 8 << 20);
  const std::string catalog = disk.file("catalog.db");
  init(catalog);
  // The disk fills up while the tape is being written (the scan is done):
  // the backup is held still once the first archive is under way.
  BackgroundRun run(f_, {"backup", f_.src(), "--library", f_.library(), "--new-library",
                         "--capacity", "64M", "--archive-size", "1M", "--catalog", catalog});
  auto filemarks = [&] {
    std::error_code ignored;
    if (!fs::exists(f_.image("L00001"), ignored)) return 0L;
    auto blocks = parse_image(f_.image("L00001"));
    return static_cast<long>(
        std::count_if(blocks.begin(), blocks.end(), [](const auto& b) { return b.filemark; }));
  };
  ASSERT_TRUE(poll_until([&] { return filemarks() >= 3 || !run.running(); }));
  run.stop();
  disk.fill(0);
  run.resume();
  CommandResult r = run.wait();
  const std::string line = expect_one_line_disk_full(r);
  // The failure came once the tape was being written: it holds an archive.
  // (Whether at the commit or at the next index, whose catalog copy marks
  // the catalog first, depends on when the disk filled: either way nothing
  // may be claimed.)
  EXPECT_GE(image_files(f_.image("L00001")).size(), 3u);
  disk.unfill();
  EXPECT_EQ(integrity_check(catalog), "ok\n");
  EXPECT_EQ(claimed_copies_are_on_tape(catalog), 0u) << "nothing was committed";
  CommandResult status = mixtape(catalog, "status");
  EXPECT_NE(status.out.find("copies: 0;"), std::string::npos) << status.out;

  r = mixtape(catalog, backup_args());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(integrity_check(catalog), "ok\n");
  EXPECT_GT(claimed_copies_are_on_tape(catalog), 16u);
  {
    auto c = catalog::Catalog::open_read_only(catalog);
    backup::testing::expect_trailing_indexes(
        c, f_.library(), crypto::load_identities(f_.identity()).at(0), f_.root());
  }
  r = mixtape(catalog, "restore " + shell_quote(f_.src()) + " --to " + shell_quote(f_.file("out")) +
                           " --library " + shell_quote(f_.library()));
  ASSERT_EQ(r.status, 0) << r.err;
  for (const auto& file : regular_files(f_.src()))
    EXPECT_TRUE(read_file(f_.file("out") + file) == read_file(file)) << file;
}

}  // namespace
}  // namespace mixtape::faults::testing
