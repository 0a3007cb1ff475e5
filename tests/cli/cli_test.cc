// What the commands promise when something is missing or goes wrong: a
// failed `init` leaves neither a key nor a catalog behind, and `restore`
// names every file it could not restore (never backed up, or every copy
// lost) and exits non-zero, after restoring everything else.
#include <sys/stat.h>

#include "tests/backup/backup_test_util.h"

namespace mixtape::cli {
namespace {

using backup::testing::kMixtape;
using backup::testing::MixtapeEnv;
using backup::testing::run_mixtape;
using namespace mixtape::test_support;

namespace fs = std::filesystem;

mode_t mode_of(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) throw_errno("lstat " + path);
  return st.st_mode & 07777;
}

bool nothing_at(const std::string& path) {
  return !fs::exists(fs::symlink_status(path));
}

std::size_t lines(const std::string& text) {
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

class CliInit : public ::testing::Test {
 protected:
  CliInit() {
    env_.catalog = dir_.file("default-catalog.db");
    env_.home = dir_.file("home");
  }

  // `mixtape init ARGS` run in `cwd` with `umask`, by a shell as a user would.
  CommandResult init_in(const std::string& cwd, const std::string& args, const char* umask) {
    return run_shell("cd " + shell_quote(cwd) + " && umask " + umask + " && env -i HOME=" +
                     shell_quote(env_.home) + " PATH=/usr/bin:/bin " + kMixtape + " init " + args);
  }

  TempDir dir_;
  MixtapeEnv env_;
};

TEST_F(CliInit, RelativePathsAndAKeyOnlyItsOwnerCanRead) {
  CommandResult r = init_in(dir_.path(), "--catalog c.db --identity-out id.txt", "000");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(mode_of(dir_.file("id.txt")), 0600u) << "a umask of 000 must not widen the key";
  auto identities = crypto::load_identities(dir_.file("id.txt"));
  ASSERT_EQ(identities.size(), 1u);
  EXPECT_EQ(r.out, identities[0].recipient().to_string() + "\n") << "init prints the recipient";
  auto catalog = catalog::Catalog::open_read_only(dir_.file("c.db"));
  EXPECT_EQ(catalog.config().recipients,
            (std::vector<std::string>{r.out.substr(0, r.out.size() - 1)}));

  // Relative paths with folders that do not exist yet; the key's are private.
  fs::create_directories(dir_.file("work"));
  r = init_in(dir_.file("work"), "--catalog db/new/c.db --identity-out keys/new/id.txt", "022");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(fs::is_regular_file(dir_.file("work/db/new/c.db")));
  EXPECT_EQ(mode_of(dir_.file("work/keys/new/id.txt")), 0600u);
  EXPECT_EQ(mode_of(dir_.file("work/keys/new")), 0700u);
  EXPECT_EQ(mode_of(dir_.file("work/keys")), 0700u);
  EXPECT_EQ(mode_of(dir_.file("work/db/new")), 0755u);
}

TEST_F(CliInit, AnExistingKeyIsNeverReplacedAndNoCatalogIsMade) {
  write_file(dir_.file("id.txt"), "someone's key\n");
  CommandResult r = init_in(dir_.path(), "--catalog c.db --identity-out id.txt", "022");
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("id.txt already exists; not overwriting it"), std::string::npos) << r.err;
  EXPECT_EQ(read_file(dir_.file("id.txt")), "someone's key\n");
  EXPECT_TRUE(nothing_at(dir_.file("c.db")));
}

TEST_F(CliInit, ACatalogThatCannotBeMadeTakesTheNewKeyAndFoldersWithIt) {
  // As nobody, so that a read-only folder really refuses (root writes
  // anywhere): the key is written first, then the catalog fails.
  ASSERT_EQ(::chmod(dir_.path().c_str(), 0777), 0);
  fs::create_directories(dir_.file("read-only"));
  ASSERT_EQ(::chmod(dir_.file("read-only").c_str(), 0555), 0);
  env_.uid = 65534;
  CommandResult r = run_mixtape(env_,
                                {"init", "--catalog", dir_.file("read-only/c.db"), "--identity-out",
                                 dir_.file("keys/new/id.txt")},
                                dir_.path());
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("read-only/c.db"), std::string::npos) << r.err;
  EXPECT_TRUE(nothing_at(dir_.file("keys"))) << "the key and the folders made for it are gone";
  EXPECT_TRUE(fs::is_empty(dir_.file("read-only")));

  // A catalog folder that cannot be made (a file is in the way): as root.
  write_file(dir_.file("plain-file"), "x");
  env_.uid.reset();
  r = run_mixtape(env_,
                  {"init", "--catalog", dir_.file("plain-file/c.db"), "--identity-out",
                   dir_.file("keys/id.txt")},
                  dir_.path());
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("plain-file"), std::string::npos) << r.err;
  EXPECT_TRUE(nothing_at(dir_.file("keys")));
  EXPECT_EQ(read_file(dir_.file("plain-file")), "x");
}

// ------------------------------------------------------------ restore

class CliRestore : public backup::testing::MixtapeCliTest {
 protected:
  CliRestore() { fs::create_directories(src_); }

  CommandResult backup() {
    return mixtape({"backup", src_, "--library", library_, "--new-library", "--capacity", "64M"});
  }
  CommandResult restore(const std::string& path, const std::string& to) {
    return mixtape({"restore", path, "--to", to, "--library", library_});
  }
  static std::string last_line(const std::string& text) {
    return text.substr(text.rfind('\n', text.size() - 2) + 1);
  }
};

TEST_F(CliRestore, FilesNeverBackedUpAreNamedAndTheExitStatusIsOne) {
  ASSERT_EQ(mixtape({"init", "--copies", "1"}).status, 0);
  write_file(src_ + "/a.txt", "backed up");
  write_file(src_ + "/sub/b.txt", "backed up too");
  ASSERT_EQ(backup().status, 0);
  // Seen by a scan, never written to tape.
  write_file(src_ + "/new.txt", "only on disk");
  write_file(src_ + "/sub/new.txt", "only on disk too");
  ASSERT_EQ(mixtape({"scan", src_}).status, 0);

  const std::string to = dir_.file("out");
  CommandResult r = restore(src_, to);
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  EXPECT_EQ(read_file(to + src_ + "/a.txt"), "backed up");
  EXPECT_EQ(read_file(to + src_ + "/sub/b.txt"), "backed up too");
  EXPECT_NE(r.out.find("restored 2 files"), std::string::npos) << r.out;
  for (const char* name : {"/new.txt", "/sub/new.txt"}) {
    EXPECT_NE(r.err.find("mixtape: not restored: " + src_ + name +
                         ": no copy on any tape (never backed up, or every copy was lost)\n"),
              std::string::npos)
        << r.err;
    EXPECT_TRUE(nothing_at(to + src_ + name)) << name;
  }
  EXPECT_EQ(lines(r.err), 3u) << r.err;
  EXPECT_EQ(last_line(r.err),
            "mixtape: 2 paths could not be restored (see above); everything else was\n");

  // What has a copy restores with status 0.
  r = restore(src_ + "/sub/b.txt", dir_.file("out-b"));
  EXPECT_EQ(r.status, 0) << r.err;
  // A single path never backed up: one line, and the summary.
  r = restore(src_ + "/new.txt", dir_.file("out-new"));
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(last_line(r.err),
            "mixtape: 1 path could not be restored (see above); everything else was\n");
}

TEST_F(CliRestore, FilesWhoseOnlyTapeIsLostAreNamedAndTheRestIsRestored) {
  ASSERT_EQ(mixtape({"init", "--copies", "1"}).status, 0);
  write_file(src_ + "/old/lost.txt", "on the lost tape");
  ASSERT_EQ(backup().status, 0);
  {
    // The first tape is full, so the next run starts another; then it is lost.
    auto catalog = catalog::Catalog::open(env_.catalog);
    ASSERT_EQ(catalog.tapes().size(), 1u);
    catalog.set_tape_state(catalog.tapes()[0].id, catalog::TapeState::kFull);
  }
  write_file(src_ + "/kept.txt", "on the second tape");
  ASSERT_EQ(backup().status, 0);
  {
    auto catalog = catalog::Catalog::open(env_.catalog);
    ASSERT_EQ(catalog.tapes().size(), 2u);
    catalog.set_tape_state(catalog.tapes()[0].id, catalog::TapeState::kRetired);
  }

  const std::string to = dir_.file("out");
  CommandResult r = restore(src_, to);
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  EXPECT_EQ(read_file(to + src_ + "/kept.txt"), "on the second tape");
  EXPECT_NE(r.err.find("mixtape: not restored: " + src_ + "/old/lost.txt: no copy on any tape"),
            std::string::npos)
      << r.err;
  EXPECT_TRUE(nothing_at(to + src_ + "/old/lost.txt"));
  EXPECT_EQ(last_line(r.err),
            "mixtape: 1 path could not be restored (see above); everything else was\n");
}

}  // namespace
}  // namespace mixtape::cli
