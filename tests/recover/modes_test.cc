// The two catalogs that are not `init`'s default: plain tapes (`init
// --no-encryption`) and passphrase tapes (`init --passphrase-file`), end to
// end through the built binary as an operator runs it: backup, restore,
// verify (which finds damage), recover from the library and from a tape
// found alone, and what the tape holds: a plain tar and SQLite file that
// stock tools read, or age files that only the passphrase opens. (The
// mount of both: tests/fs/mount_modes_test.cc.)
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include "tests/backup/backup_test_util.h"
#include "tests/restore/test_util.h"

namespace mixtape::restore::testing {
namespace {

namespace fs = std::filesystem;

enum class Mode { kPlain, kPassphrase };

std::string name_of(Mode mode) {
  return mode == Mode::kPlain ? "PlainTapes" : "PassphraseTapes";
}

class ModesTest : public ::testing::TestWithParam<Mode> {
 protected:
  void SetUp() override {
    f_.make_tree(12);
    std::string init = "init --copies 2";
    if (GetParam() == Mode::kPassphrase) {
      write_file(f_.file("passphrase"), "correct horse battery staple\n");
      ::chmod(f_.file("passphrase").c_str(), 0600);
      keys_ = " --passphrase-file " + shell_quote(f_.file("passphrase"));
      init += keys_;
    } else {
      init += " --no-encryption";
    }
    CommandResult r = f_.mixtape(init);
    ASSERT_EQ(r.status, 0) << r.err;
    ASSERT_FALSE(fs::exists(f_.identity())) << "an identity was made for a catalog needing none";
    r = f_.mixtape("backup " + shell_quote(f_.src()) + " --library " + shell_quote(f_.library()) +
                   " --new-library --capacity 64M --archive-size 1M" + keys_);
    ASSERT_EQ(r.status, 0) << r.err << r.out;
    before_ = f_.listing();
  }

  std::string library() const { return " --library " + shell_quote(f_.library()); }

  Fixture f_;
  std::string keys_;  // what reading commands are given: nothing for plain tapes
  std::string before_;
};

TEST_P(ModesTest, RestoreGivesBackEveryByte) {
  EXPECT_EQ(f_.restore_differences("out", keys_), "");
}

TEST_P(ModesTest, VerifyReadsEveryCopyAndFindsDamage) {
  CommandResult r = f_.mixtape("verify" + library() + keys_);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("verified 2 tapes"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" 0 bad\n"), std::string::npos) << r.out;

  const std::string big = f_.src() + "/big.bin";
  for (const auto& replica : f_.replicas(big))
    if (replica.tape.serial == "L00001") f_.flip(replica, replica.copy.data_offset + 1'000'000);
  r = f_.mixtape("verify" + library() + keys_);
  EXPECT_NE(r.status, 0) << r.out;
  EXPECT_NE(r.out.find(" 1 bad\n"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find(big), std::string::npos) << r.err;
  // The other copy still restores it whole.
  EXPECT_EQ(f_.restore_differences("out", keys_), "");
}

TEST_P(ModesTest, RecoverFromTheLibraryGivesTheCatalogBack) {
  f_.drop_catalog();
  CommandResult r = f_.mixtape("recover" + library() + keys_);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(f_.listing(), before_);
  EXPECT_EQ(f_.restore_differences("out", keys_), "");
}

TEST_P(ModesTest, RecoverFromAFoundTapeAlone) {
  f_.drop_catalog();
  CommandResult r = f_.mixtape("recover --device " + shell_quote(f_.image("L00001")) + keys_);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("recovered tape L00001 from its trailing index"), std::string::npos)
      << r.out;
  // Everything, with the one copy that tape holds.
  const std::string found = f_.listing();
  EXPECT_NE(found.find("replica L00001"), std::string::npos) << found;
  EXPECT_EQ(found.find("replica L00002"), std::string::npos) << found;
  fs::remove(f_.image("L00002"));
  EXPECT_EQ(f_.restore_differences("out", keys_), "");
}

// Plain tapes: the index is a SQLite file and the archive a tar, read by
// sqlite3 and GNU tar straight off the tape; nothing on it is age.
// Passphrase tapes: every index and archive is an age file with one scrypt
// stanza, and nothing reads without the passphrase.
TEST_P(ModesTest, WhatTheTapeHolds) {
  const auto files = backup::testing::tape_files(f_.image("L00001"));
  ASSERT_GE(files.size(), 4u);  // file 0, index, archive, ..., trailing index
  for (std::size_t n = 1; n < files.size(); ++n) {
    const std::string& file = files[n];
    SCOPED_TRACE("tape file " + std::to_string(n));
    if (GetParam() == Mode::kPlain) {
      EXPECT_EQ(file.find("age-encryption.org"), std::string::npos);
      if (n % 2 == 1) {
        EXPECT_EQ(file.substr(0, 16), std::string("SQLite format 3\0", 16));
      }
    } else {
      EXPECT_TRUE(file.starts_with("age-encryption.org/v1\n-> scrypt "));
      EXPECT_EQ(file.find("SQLite format 3"), std::string::npos);
    }
  }
  if (GetParam() == Mode::kPlain) {
    write_file(f_.file("index.db"), files[1]);
    CommandResult tables = test_support::run_shell("sqlite3 " + shell_quote(f_.file("index.db")) +
                                                   " 'SELECT count(*) FROM member'");
    EXPECT_EQ(tables.status, 0) << tables.err;
    EXPECT_GT(std::stoi(tables.out.empty() ? "0" : tables.out), 0) << tables.out;
    std::string members;
    for (std::size_t n = 2; n + 1 < files.size(); n += 2) {
      write_file(f_.file("archive.tar"), files[n]);
      CommandResult t = test_support::run_shell("tar --warning=no-unknown-keyword -tf " +
                                                shell_quote(f_.file("archive.tar")));
      EXPECT_EQ(t.status, 0) << t.err;
      members += t.out;
    }
    EXPECT_NE(members.find(f_.src().substr(1) + "/big.bin\n"), std::string::npos) << members;
    return;
  }
  CommandResult none = f_.mixtape("restore " + shell_quote(f_.src()) + " --to " +
                                  shell_quote(f_.file("none")) + library());
  EXPECT_EQ(none.status, 1);
  EXPECT_NE(none.err.find("mixtape: not restored: " + f_.src() +
                          "/big.bin: cannot decrypt the archive: the age file is encrypted with a "
                          "passphrase, and no passphrase was given"),
            std::string::npos)
      << none.err;
  EXPECT_FALSE(fs::exists(f_.file("none") + f_.src() + "/big.bin"));
  write_file(f_.file("wrong"), "not the passphrase\n");
  ::chmod(f_.file("wrong").c_str(), 0600);
  CommandResult wrong =
      f_.mixtape("restore " + shell_quote(f_.src()) + " --to " + shell_quote(f_.file("wrong-out")) +
                 library() + " --passphrase-file " + shell_quote(f_.file("wrong")));
  EXPECT_EQ(wrong.status, 1);
  EXPECT_NE(wrong.err.find("wrong --identity or --passphrase-file"), std::string::npos)
      << wrong.err;
  EXPECT_FALSE(fs::exists(f_.file("wrong-out") + f_.src() + "/big.bin"));
}

INSTANTIATE_TEST_SUITE_P(Catalogs, ModesTest, ::testing::Values(Mode::kPlain, Mode::kPassphrase),
                         [](const auto& info) { return name_of(info.param); });

}  // namespace
}  // namespace mixtape::restore::testing
