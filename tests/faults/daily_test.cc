// Daily reliability (issue [3/7]): what an operator meets who runs mixtape
// from cron for a year, through the built binary. Read-only and 0444 tapes,
// damaged indexes, a wrong key, two writers at once, a mistyped library, a
// killed restore, a tape holding only its label, a backup of the folder that
// holds the catalog and the tapes, a tape another process holds, and what
// the exit status says. Each test states its invariant.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "tests/faults/faults_test_util.h"
#include "tests/faults/hostile_tape.h"

namespace mixtape::faults::testing {
namespace {

namespace fs = std::filesystem;
using backup::testing::MixtapeEnv;

class DailyTest : public ::testing::Test {
 protected:
  std::string lib() const { return " --library " + shell_quote(f_.library()); }
  CommandResult restore(const std::string& library, const std::string& to,
                        const std::string& extra = "") {
    return f_.mixtape("restore " + shell_quote(f_.src()) + " --to " + shell_quote(f_.file(to)) +
                      " --library " + shell_quote(library) + extra);
  }
  // Every regular file of the tree came back, byte for byte, below `to`.
  void expect_restored(const std::string& to) {
    for (const auto& file : regular_files(f_.src())) {
      const std::string back = f_.file(to) + file;
      ASSERT_TRUE(fs::exists(back)) << back;
      EXPECT_TRUE(read_file(back) == read_file(file)) << file;
    }
  }
  std::string status() {
    CommandResult r = f_.mixtape("status");
    EXPECT_EQ(r.status, 0) << r.err;
    return r.out;
  }
  // The `status` line of a tape.
  std::string tape_line(const std::string& serial) {
    const std::string s = status();
    const auto at = s.find("tape " + serial + ":");
    return at == std::string::npos ? "" : s.substr(at, s.find('\n', at) - at);
  }
  // The blocks of tape file `n` of an image: flips a byte inside its first
  // record (its bytes change, its records stay records).
  void damage_tape_file(const std::string& image, std::size_t n) {
    auto blocks = parse_image(image);
    auto files = restore::testing::tape_files(blocks);
    ASSERT_LT(n, files.size());
    restore::testing::flip_byte(image, blocks[files[n]].data_offset + 300);
  }
  // A backup of a tree with a 40 MB file (of `seed`), whose one tape a
  // restore then holds, stopped mid-read (reader_), and a new file for the
  // next backup to write.
  void tape_held_by_a_stopped_restore(std::uint32_t seed) {
    f_.make_tree(4);
    write_file(f_.src() + "/huge.bin", random_text(40'000'000, seed));
    f_.init(1);
    f_.backup("64M");
    BackgroundRun& reader =
        reader_.emplace(f_, std::vector<std::string>{"restore", f_.src(), "--to", f_.file("out"),
                                                     "--library", f_.library()});
    ASSERT_TRUE(
        poll_until([&] { return !open_images(reader.pid()).empty() || !reader.running(); }));
    reader.stop();
    ASSERT_FALSE(open_images(reader.pid()).empty());
    write_file(f_.src() + "/new.txt", "new\n");
  }

  Fixture f_;
  std::optional<BackgroundRun> reader_;  // after f_: it ends before f_'s files go
};

// ------------------------------------------------------------ item 3

// Invariant: tapes on a read-only medium restore, verify (recorded ok) and
// recover: reading never needs to write to a tape.
TEST_F(DailyTest, WriteProtectedTapesRestoreVerifyAndRecover) {
  f_.make_tree(8);
  f_.init(2);
  f_.backup();
  ReadOnlyView ro(f_.library(), f_.file("ro-tapes"));

  CommandResult r = restore(ro.path(), "out");
  ASSERT_EQ(r.status, 0) << r.err;
  expect_restored("out");

  r = f_.mixtape("verify --library " + shell_quote(ro.path()));
  EXPECT_EQ(r.status, 0) << r.err;
  for (const char* serial : {"L00001", "L00002"})
    EXPECT_NE(tape_line(serial).find("last verify ok"), std::string::npos) << tape_line(serial);

  r = f_.mixtape("recover --library " + shell_quote(ro.path()) + " --catalog " +
                 shell_quote(f_.file("recovered.db")));
  EXPECT_EQ(r.status, 0) << r.err;
  r = f_.mixtape("ls -R --catalog " + shell_quote(f_.file("recovered.db")) + " " +
                 shell_quote(f_.src()));
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find(f_.src() + "/big.bin"), std::string::npos) << r.out;
}

// Invariant: a user whose tape images are 0444 (and who may not write
// beside them) restores from them.
TEST_F(DailyTest, AUserWithReadOnlyImagesRestoresFromThem) {
  f_.make_tree(4);
  f_.init(1);
  f_.backup();
  constexpr uid_t kNobody = 65534;
  ASSERT_EQ(::chmod(f_.root().c_str(), 0755), 0);
  for (const auto& entry : fs::directory_iterator(f_.library()))
    ASSERT_EQ(::chmod(entry.path().c_str(), 0444), 0);
  // The user's own catalog and key, in a home of their own.
  const std::string home = f_.file("user");
  fs::create_directories(home + "/.config/mixtape");
  fs::copy_file(f_.catalog(), home + "/catalog.db");
  fs::copy_file(f_.identity(), home + "/.config/mixtape/identity.txt");
  fs::create_directories(home + "/out");
  ASSERT_EQ(run_shell("chown -R 65534:65534 " + shell_quote(home)).status, 0);

  MixtapeEnv env;
  env.catalog = home + "/catalog.db";
  env.home = home;
  env.uid = kNobody;
  CommandResult r = backup::testing::run_mixtape(
      env, {"restore", f_.src(), "--to", home + "/out", "--library", f_.library()}, f_.root());
  ASSERT_EQ(r.status, 0) << r.err;
  for (const auto& file : regular_files(f_.src()))
    EXPECT_TRUE(read_file(home + "/out" + file) == read_file(file)) << file;
}

// ------------------------------------------------------------ item 5

// Invariant: a full verify reads the archives' indexes and the trailing
// index too: a damaged one fails the run and the tape is recorded as not ok.
TEST_F(DailyTest, AFullVerifyFindsADamagedTrailingIndexAndRecordsIt) {
  f_.make_tree(8);
  f_.init(1);
  f_.backup();
  auto files = image_files(f_.image("L00001"));
  damage_tape_file(f_.image("L00001"), files.size() - 1);  // the trailing index
  CommandResult r = f_.mixtape("verify" + lib());
  EXPECT_NE(r.status, 0) << r.out;
  EXPECT_NE(r.err.find("trailing index"), std::string::npos) << r.err;
  const std::string line = tape_line("L00001");
  EXPECT_NE(line.find("last verify"), std::string::npos) << line;
  EXPECT_EQ(line.find("last verify ok"), std::string::npos) << line;
}

TEST_F(DailyTest, AFullVerifyFindsADamagedArchiveIndexAndRecordsIt) {
  f_.make_tree(8);
  f_.init(1);
  f_.backup();
  damage_tape_file(f_.image("L00001"), 3);  // the index of archive file 4
  CommandResult r = f_.mixtape("verify" + lib());
  EXPECT_NE(r.status, 0) << r.out;
  EXPECT_NE(r.err.find("index of archive file 4"), std::string::npos) << r.err;
  const std::string line = tape_line("L00001");
  EXPECT_EQ(line.find("last verify ok"), std::string::npos) << line;
}

// Invariant: what --quick finds wrong is recorded as wrong, the trailing
// index included.
TEST_F(DailyTest, AQuickVerifyRecordsADamagedTrailingIndex) {
  f_.make_tree(8);
  f_.init(1);
  f_.backup();
  auto files = image_files(f_.image("L00001"));
  damage_tape_file(f_.image("L00001"), files.size() - 1);
  CommandResult r = f_.mixtape("verify --quick" + lib());
  EXPECT_NE(r.status, 0) << r.out;
  EXPECT_NE(r.err.find("trailing index"), std::string::npos) << r.err;
  const std::string line = tape_line("L00001");
  EXPECT_NE(line.find("last verify"), std::string::npos) << line;
  EXPECT_EQ(line.find("last verify ok"), std::string::npos) << line;
}

// ------------------------------------------------------------ item 6

// Invariant: a verify with a wrong or missing key says it is the key, fails,
// and records nothing: the tapes stay "never verified".
TEST_F(DailyTest, AVerifyWithTheWrongOrNoKeyRecordsNothing) {
  f_.make_tree(4);
  f_.init(2);
  f_.backup();
  ASSERT_EQ(f_.mixtape("keygen -o " + shell_quote(f_.file("other.txt"))).status, 0);
  CommandResult r = f_.mixtape("verify" + lib() + " -i " + shell_quote(f_.file("other.txt")));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("identity"), std::string::npos) << r.err;
  EXPECT_EQ(count_lines(r.err), 1u) << r.err;
  fs::rename(f_.identity(), f_.file("away.txt"));  // the default key is gone
  r = f_.mixtape("verify" + lib());
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("no identity was given"), std::string::npos) << r.err;
  for (const char* serial : {"L00001", "L00002"})
    EXPECT_NE(tape_line(serial).find("never verified"), std::string::npos) << tape_line(serial);
}

TEST_F(DailyTest, AVerifyWithTheWrongPassphraseRecordsNothing) {
  f_.make_tree(2);
  write_file(f_.file("pass"), std::string(kPassphrase) + "\n");
  write_file(f_.file("wrong"), "not the passphrase\n");
  ::chmod(f_.file("pass").c_str(), 0600);
  ::chmod(f_.file("wrong").c_str(), 0600);
  ASSERT_EQ(f_.mixtape("init --copies 1 --passphrase-file " + shell_quote(f_.file("pass"))).status,
            0);
  fs::create_directories(f_.library());
  CommandResult r = f_.mixtape("backup " + shell_quote(f_.src()) + lib() +
                               " --capacity 64M --passphrase-file " + shell_quote(f_.file("pass")));
  ASSERT_EQ(r.status, 0) << r.err;
  r = f_.mixtape("verify" + lib() + " --passphrase-file " + shell_quote(f_.file("wrong")));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("passphrase"), std::string::npos) << r.err;
  EXPECT_NE(tape_line("L00001").find("never verified"), std::string::npos) << tape_line("L00001");
  r = f_.mixtape("verify" + lib());  // none at all
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("passphrase"), std::string::npos) << r.err;
  EXPECT_NE(tape_line("L00001").find("never verified"), std::string::npos) << tape_line("L00001");
  r = f_.mixtape("verify" + lib() + " --passphrase-file " + shell_quote(f_.file("pass")));
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(tape_line("L00001").find("last verify ok"), std::string::npos) << tape_line("L00001");
}

// ------------------------------------------------------------ item 7

// Invariant: one writer at a time. A second backup (to another library)
// and a verify, while a backup runs, are refused naming the running one;
// the first finishes, and no version ends with more copies than its goal.
TEST_F(DailyTest, ASecondWriterIsRefusedNamingTheFirst) {
  f_.make_tree(8);
  write_file(f_.src() + "/huge.bin", random_text(24'000'000, 5));
  f_.init(2);
  fs::create_directories(f_.library());
  fs::create_directories(f_.file("other-tapes"));
  BackgroundRun first(f_, {"backup", f_.src(), "--library", f_.library(), "--capacity", "64M",
                           "--archive-size", "1M"});
  ASSERT_TRUE(poll_until([&] { return !open_images(first.pid()).empty() || !first.running(); }));
  first.stop();
  const std::string holder = "in use by process " + std::to_string(first.pid());
  CommandResult second = f_.mixtape("backup " + shell_quote(f_.src()) + " --library " +
                                    shell_quote(f_.file("other-tapes")) + " --capacity 64M");
  EXPECT_NE(second.status, 0);
  EXPECT_NE(second.err.find(holder), std::string::npos) << second.err;
  EXPECT_NE(second.err.find("mixtape backup"), std::string::npos) << second.err;
  EXPECT_EQ(count_lines(second.err), 1u) << second.err;
  CommandResult verify = f_.mixtape("verify" + lib());
  EXPECT_NE(verify.status, 0);
  EXPECT_NE(verify.err.find(holder), std::string::npos) << verify.err;
  first.resume();
  CommandResult done = first.wait();
  ASSERT_EQ(done.status, 0) << done.err;
  // Now the other library may have its turn: nothing is left to copy.
  second = f_.mixtape("backup " + shell_quote(f_.src()) + " --library " +
                      shell_quote(f_.file("other-tapes")) + " --capacity 64M");
  EXPECT_EQ(second.status, 0) << second.err;
  const std::string versions = listing(f_);
  EXPECT_NE(versions.find("copies 2/2"), std::string::npos) << versions;
  EXPECT_EQ(versions.find("copies 3/2"), std::string::npos) << versions;
}

// ------------------------------------------------------------ item 8

// Invariant: a library folder that does not exist is refused (nothing is
// made, nothing enters the catalog) unless --new-library asks for it, and a
// new library's tapes need their size given.
TEST_F(DailyTest, AMistypedLibraryIsRefusedAndANewOneNeedsItsTapeSize) {
  f_.make_tree(2);
  f_.init(1);
  const std::string typo = f_.file("tpaes");
  CommandResult r = f_.mixtape("backup " + shell_quote(f_.src()) + " --library " +
                               shell_quote(typo) + " --capacity 64M");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("no tape library at " + typo), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--new-library"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(typo));
  r = f_.mixtape("label --serial L00100 --library " + shell_quote(typo) + " --capacity 64M");
  EXPECT_NE(r.status, 0);
  EXPECT_FALSE(fs::exists(typo));
  r = f_.mixtape("tapes");
  EXPECT_EQ(r.out.find("L0"), std::string::npos) << r.out;

  r = f_.mixtape("backup " + shell_quote(f_.src()) + lib() + " --new-library");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("--capacity"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(f_.library()));

  r = f_.mixtape("backup " + shell_quote(f_.src()) + lib() + " --new-library --capacity 64M");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(fs::exists(f_.image("L00001")));
}

// ------------------------------------------------------------ item 11

// Invariant: the temporaries a killed restore leaves are gone after the
// next restore into the same place.
TEST_F(DailyTest, AKilledRestoreLeavesNoTemporariesOnceRestoreRunsAgain) {
  f_.make_tree(4);
  write_file(f_.src() + "/huge.bin", random_text(40'000'000, 6));
  f_.init(1);
  f_.backup("64M");
  const std::string to = f_.file("out");
  BackgroundRun run(f_, {"restore", f_.src(), "--to", to, "--library", f_.library()});
  ASSERT_TRUE(poll_until([&] { return !leftovers(to).empty() || !run.running(); }));
  ::kill(run.pid(), SIGKILL);
  run.wait();
  ASSERT_FALSE(leftovers(to).empty()) << "the restore ended before it could be killed mid-file";
  CommandResult r = restore(f_.library(), "out", " --overwrite");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(leftovers(to), std::vector<std::string>{});
  expect_restored("out");
}

// Invariant: restore and verify agree on what a tape holds: an empty file
// whose member on tape is a hard link to a place outside is not restored
// (an empty file there would say the tape held one), and verify reports it.
TEST_F(DailyTest, AnEmptyFileWhoseMemberIsAHardLinkOutsideIsNotRestored) {
  HostileTape tape(f_);
  write_file(tape.src("empty/e.txt"), "");
  tape.make();
  tape.tamper_archive({"hardlink:" + tape.member("empty/e.txt") + ":" + kOutside});
  const std::string to = f_.file("out");
  CommandResult r =
      f_.mixtape("restore " + shell_quote(tape.src("empty")) + " --to " + shell_quote(to) + lib());
  EXPECT_NE(r.status, 0) << r.out;
  EXPECT_NE(r.err.find("not restored: " + tape.src("empty/e.txt")), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(to + tape.src("empty/e.txt")));
  r = f_.mixtape("verify" + lib());
  EXPECT_NE(r.status, 0) << r.out;
  EXPECT_NE(r.err.find(tape.src("empty/e.txt")), std::string::npos) << r.err;
}

// Invariant: recovering a library in which one tape holds only its label
// (labelled, never written) recovers the others and succeeds.
TEST_F(DailyTest, RecoveringALibraryPassesOverATapeHoldingOnlyItsLabel) {
  f_.make_tree(2);
  f_.init(1);
  f_.backup();
  ASSERT_EQ(f_.mixtape("label --serial L00100" + lib() + " --capacity 64M").status, 0);
  const std::string blank = f_.image("L00100");
  end_image_before(blank, restore::testing::tape_files(parse_image(blank)).at(1));
  CommandResult r = f_.mixtape("recover" + lib() + " --catalog " + shell_quote(f_.file("new.db")));
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("L00100"), std::string::npos) << r.err;
  r = f_.mixtape("ls --catalog " + shell_quote(f_.file("new.db")) + " " + shell_quote(f_.src()));
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("big.bin"), std::string::npos) << r.out;
}

// Invariant: backing up the folder that holds the catalog and the tapes
// does not back up mixtape's own files: a second run finds nothing changed.
TEST_F(DailyTest, BackingUpTheFolderOfTheCatalogAndTapesSkipsThem) {
  f_.make_tree(2);
  f_.init(1);
  fs::create_directories(f_.library());
  // The test's own output files change with every command, like any log.
  const std::string run = "backup " + shell_quote(f_.root()) + lib() +
                          " --capacity 64M --exclude stdout --exclude stderr";
  CommandResult r = f_.mixtape(run);
  ASSERT_EQ(r.status, 0) << r.err;
  r = f_.mixtape(run);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find(" 0 new, 0 changed"), std::string::npos) << r.out;
  r = f_.mixtape("ls -R " + shell_quote(f_.root()));
  EXPECT_EQ(r.out.find("catalog.db"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find(".tap"), std::string::npos) << r.out;
}

// ------------------------------------------------------------ items 1 and 12

// Invariant: a backup that finds its tape held by another process waits
// for it (saying so) and then does its work.
TEST_F(DailyTest, ABackupWaitsForATapeAnotherProcessHolds) {
  ASSERT_NO_FATAL_FAILURE(tape_held_by_a_stopped_restore(7));
  BackgroundRun& reader = *reader_;
  MixtapeEnv env;
  env.catalog = f_.catalog();
  env.home = f_.file("home");
  const std::string out = f_.file("backup.out"), err = f_.file("backup.err");
  const pid_t backup = backup::testing::spawn_mixtape(
      env, {"backup", f_.src(), "--library", f_.library(), "--capacity", "64M"}, out, err);
  const bool waited = poll_until(
      [&] { return fs::exists(err) && read_file(err).find("waiting") != std::string::npos; });
  const pid_t holder = reader.pid();
  reader.resume();
  reader.wait();
  CommandResult r = backup::testing::wait_mixtape(backup, out, err);
  EXPECT_TRUE(waited) << r.err;
  EXPECT_NE(r.err.find("in use by process " + std::to_string(holder)), std::string::npos) << r.err;
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("backed up 1 file copy"), std::string::npos) << r.out;
}

// Invariant: a backup that could not do everything it was asked exits
// non-zero and says what is left; here its only tape is held by another
// process (named) past --drive-wait.
TEST_F(DailyTest, ABackupThatCouldNotWriteExitsNonZeroNamingTheHolder) {
  ASSERT_NO_FATAL_FAILURE(tape_held_by_a_stopped_restore(8));
  BackgroundRun& reader = *reader_;
  CommandResult r = f_.mixtape("backup " + shell_quote(f_.src()) + lib() + " --drive-wait 0");
  EXPECT_NE(r.status, 0) << r.out;
  EXPECT_NE(r.err.find("in use by process " + std::to_string(reader.pid()) + " (" +
                       restore::testing::kMixtape + " restore"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("1 file is not backed up yet"), std::string::npos) << r.err;
}

// Invariant: the same when the tapes are on a read-only medium: nothing
// can be written, and the exit status says so.
TEST_F(DailyTest, ABackupToWriteProtectedTapesExitsNonZero) {
  f_.make_tree(2);
  f_.init(1);
  f_.backup();
  ReadOnlyView ro(f_.library(), f_.file("ro-tapes"));
  write_file(f_.src() + "/new.txt", "new\n");
  CommandResult r = f_.mixtape("backup " + shell_quote(f_.src()) + " --library " +
                               shell_quote(ro.path()) + " --capacity 64M");
  EXPECT_NE(r.status, 0) << r.out;
  EXPECT_NE(r.err.find("drive failed"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("run backup again"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace mixtape::faults::testing
