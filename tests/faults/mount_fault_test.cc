// The mount under faults and hostile input, through real FUSE mounts of the
// built mount.mixtape: a stage cache whose disk is full, a tape cut while a
// recall reads it, a damaged catalog, a found tape written by a hostile
// party, other users with and without allow_other, and secrets. Each test
// states its invariant.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/xattr.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/faults/catalog_damage.h"
#include "tests/faults/hostile_tape.h"
#include "tests/fs/mount_util.h"

namespace mixtape::faults::testing {
namespace {

namespace fs = std::filesystem;
using mixtape::fs::testing::LiveMount;
using mixtape::fs::testing::read_whole;

class MountFaultTest : public ::testing::Test {
 protected:
  std::string mnt() const { return f_.file("mnt"); }
  std::string latest(const std::string& path) const { return mnt() + "/latest" + path; }
  std::string options(const std::string& cache, const std::string& extra = "") const {
    return "library=" + f_.library() + ",identity=" + f_.identity() + ",cache=" + cache +
           (extra.empty() ? "" : "," + extra);
  }
  // What a process of another user (nobody) gets from `command`.
  CommandResult as_nobody(const std::string& command) {
    return run_shell("setpriv --reuid=65534 --regid=65534 --clear-groups -- " + command);
  }
  std::string status() { return read_file(mnt() + "/.mixtape/status"); }
  // The options the kernel holds for the mount at mnt(), from mountinfo.
  std::string kernel_options() {
    std::ifstream in("/proc/self/mountinfo");
    for (std::string line; std::getline(in, line);) {
      std::istringstream fields(line);
      std::string id, parent, dev, root, point, opts;
      fields >> id >> parent >> dev >> root >> point >> opts;
      if (point == mnt()) return line;
    }
    return "";
  }

  Fixture f_;
};

// ------------------------------------------------------------ full cache disk

// Invariant: when the stage cache's disk cannot hold a file, reading it is
// EIO, .mixtape/status names the cause, nothing half-staged is left in the
// cache, other files still read, and once the disk has room the same file
// reads whole.
TEST_F(MountFaultTest, AFullCacheDiskIsEioWithTheCauseAndOtherFilesStillRead) {
  f_.make_tree(8);
  f_.init(1);
  f_.backup();
  SmallDisk cache(f_.file("cache"), 2 << 20);  // big.bin is 3 MB
  LiveMount mount(mnt());
  CommandResult r = mount.mount(f_.catalog(), options(cache.path()));
  ASSERT_EQ(r.status, 0) << r.err;

  std::string data;
  EXPECT_EQ(read_whole(latest(f_.src() + "/big.bin"), data), EIO);
  const std::string s = status();
  auto at = s.find("failed: " + f_.src() + "/big.bin: ");
  ASSERT_NE(at, std::string::npos) << s;
  EXPECT_NE(s.substr(at, s.find('\n', at) - at)
                .find("no space left on the disk of stage cache " + cache.path()),
            std::string::npos)
      << s;
  EXPECT_TRUE(fs::is_empty(cache.file("tmp")));
  EXPECT_EQ(read_whole(latest(f_.src() + "/d1/f1"), data), 0);
  EXPECT_TRUE(data == read_file(f_.src() + "/d1/f1"));

  cache.resize(16 << 20);
  EXPECT_EQ(read_whole(latest(f_.src() + "/big.bin"), data), 0);
  EXPECT_TRUE(data == read_file(f_.src() + "/big.bin"));
}

// ------------------------------------------------------------ cut tape

// Invariant: a tape image cut while the mount recalls a file from it (the
// daemon held still while the cut is made, far ahead of the reader) makes
// that file EIO; the daemon stays up, other files read, and .mixtape/status
// says which file failed and why.
TEST_F(MountFaultTest, ATapeCutDuringARecallIsEioForThatFileAndTheDaemonServesOthers) {
  f_.make_tree(8);
  write_file(f_.src() + "/huge.bin", random_text(40'000'000, 9));
  f_.init(1);
  f_.backup("64M");
  const std::string huge = f_.src() + "/huge.bin";
  auto replica = replica_on(f_, huge, "L00001");
  const std::uint64_t cut = block_of(replica, replica.copy.data_offset + 30'000'000);
  LiveMount mount(mnt());
  CommandResult r = mount.mount(f_.catalog(), options(f_.file("cache")));
  ASSERT_EQ(r.status, 0) << r.err;
  const pid_t daemon = mount.daemon();
  ASSERT_GT(daemon, 0);

  int read_error = -1;
  std::thread reader([&] {
    std::string data;
    read_error = read_whole(latest(huge), data);
  });
  int percent = -1;
  EXPECT_TRUE(poll_until([&] {
    std::string state = xattr(latest(huge), "user.mixtape.state");
    if (!state.starts_with("staging ")) return false;
    percent = std::stoi(state.substr(8));
    return percent >= 1;
  }));
  ::kill(daemon, SIGSTOP);
  EXPECT_LT(percent, 50) << "the recall ran too far ahead to cut in front of it";
  fs::resize_file(f_.image("L00001"), parse_image(f_.image("L00001"))[cut].data_offset + 100);
  ::kill(daemon, SIGCONT);
  reader.join();
  EXPECT_EQ(read_error, EIO);
  // Read before anything else: opening a file queues its neighbours, and
  // that recalls huge.bin once more.
  const std::string s = status();
  auto at = s.find("failed: " + huge + ": ");
  ASSERT_NE(at, std::string::npos) << s;
  const std::string line = s.substr(at, s.find('\n', at) - at);
  EXPECT_NE(line.find("tape L00001"), std::string::npos) << line;
  EXPECT_NE(line.find("block"), std::string::npos) << line;

  EXPECT_EQ(::kill(daemon, 0), 0) << "the daemon died";
  std::size_t served = 0;
  for (const auto& file : regular_files(f_.src())) {
    if (file == huge || fs::file_size(file) == 0) continue;
    auto r2 = replica_on(f_, file, "L00001");
    const std::uint64_t end = r2.copy.data_offset + fs::file_size(file);
    if (block_of(r2, (end / format::kAgeChunkSize + 1) * format::kAgeChunkSize) >= cut) continue;
    std::string data;
    EXPECT_EQ(read_whole(latest(file), data), 0) << file;
    EXPECT_TRUE(data == read_file(file)) << file;
    ++served;
  }
  EXPECT_GT(served, 0u);
}

// ------------------------------------------------------------ damaged catalog

class MountDamagedCatalogTest : public MountFaultTest,
                                public ::testing::WithParamInterface<Damage> {};

INSTANTIATE_TEST_SUITE_P(Damages, MountDamagedCatalogTest, ::testing::ValuesIn(damages()),
                         [](const auto& info) { return std::string(info.param.name); });

// Invariant: mount.mixtape refuses a damaged catalog with one line naming
// the file and what to do, exit status 1, and nothing mounted.
TEST_P(MountDamagedCatalogTest, TheMountRefusesItWithOneLine) {
  f_.make_tree(4);
  f_.init(1);
  f_.backup();
  CommandResult r = run_shell("sqlite3 " + shell_quote(f_.catalog()) + " VACUUM");
  ASSERT_EQ(r.status, 0) << r.err;
  GetParam().apply(f_.catalog(), f_.root());
  LiveMount mount(mnt());
  r = mount.mount(f_.catalog(), options(f_.file("cache")));
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(count_lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("mount.mixtape: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(f_.catalog()), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(GetParam().says), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("mixtape recover"), std::string::npos) << r.err;
  EXPECT_EQ(kernel_options(), "") << "something was mounted";
}

// ------------------------------------------------------------ hostile tapes

// Invariant: a found tape whose archive lies (hostile_tape.h) mounts from
// its genuine indexes; every lying file is EIO, each honest file reads
// whole, symlinks show the catalog's targets, and the daemon stays up.
TEST_F(MountFaultTest, AFoundHostileTapeMountsAndOnlyItsLiesAreEio) {
  HostileTape tape(f_);
  tape.make();
  tape.tamper_every_way();
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(f_.catalog() + suffix);
  LiveMount mount(mnt());
  CommandResult r =
      mount.mount(f_.image("L00001"), "identity=" + f_.identity() + ",cache=" + f_.file("cache"));
  ASSERT_EQ(r.status, 0) << r.err;
  mixtape::fs::testing::Watchdog watchdog("reading the hostile tape", std::chrono::seconds(120),
                                          mount.daemon());
  std::string data;
  for (const auto& path : tape.lying()) EXPECT_EQ(read_whole(latest(path), data), EIO) << path;
  for (const auto& path : tape.honest()) {
    EXPECT_EQ(read_whole(latest(path), data), 0) << path;
    EXPECT_TRUE(data == read_file(path)) << path;
  }
  EXPECT_EQ(fs::read_symlink(latest(tape.src("s1"))).string(),
            std::string(std::string_view(kOutside).size(), 'a'));
  EXPECT_GT(mount.daemon(), 0);
  const std::string s = status();
  for (const auto& path : tape.lying())
    EXPECT_NE(s.find("failed: " + path + ": "), std::string::npos) << s;
}

// Invariant: a size lie shared by a found tape's catalog and its archive
// (8 GiB for a small member) is EIO from the member's header: the stage
// cache, on a small disk, never tries to make room for it, and says why.
TEST_F(MountFaultTest, ASizeLieOnAFoundTapeIsRefusedBeforeTheCacheMakesRoomForIt) {
  HostileTape tape(f_);
  tape.make();
  tape.lie_about_a_size_everywhere();
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(f_.catalog() + suffix);
  SmallDisk cache(f_.file("cache"), 16 << 20);
  LiveMount mount(mnt());
  CommandResult r =
      mount.mount(f_.image("L00001"), "identity=" + f_.identity() + ",cache=" + cache.path());
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string liar = tape.src("lie/ustar-size.txt");
  EXPECT_EQ(fs::file_size(latest(liar)), HostileTape::kClaimedSize);
  std::string data;
  EXPECT_EQ(read_whole(latest(liar), data), EIO);
  const std::string s = status();
  auto at = s.find("failed: " + liar + ": ");
  ASSERT_NE(at, std::string::npos) << s;
  EXPECT_NE(s.substr(at, s.find('\n', at) - at).find("run past the end of its archive"),
            std::string::npos)
      << s;
  EXPECT_TRUE(fs::is_empty(cache.file("tmp")));
  EXPECT_EQ(read_whole(latest(tape.honest().at(0)), data), 0);
  EXPECT_TRUE(data == read_file(tape.honest().at(0)));
}

// Invariant: a found tape whose trailing index hides a recursive-CTE bomb
// behind a view mounts anyway, at once, from the tape's other indexes; one
// whose every index is hostile is refused with one line.
TEST_F(MountFaultTest, AFoundTapeWithHostileIndexesMountsFromTheOthersOrIsRefused) {
  HostileTape tape(f_);
  tape.make();
  tape.rewrite_tape_file(tape.last_file(), [](const std::string& db) {
    HostileTape::run_sql(
        db,
        "db.executescript('ALTER TABLE catalog_files RENAME TO hidden; CREATE VIEW catalog_files "
        "AS WITH RECURSIVE bomb(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM bomb) "
        "SELECT hidden.* FROM hidden, bomb;')");
  });
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(f_.catalog() + suffix);
  {
    LiveMount mount(mnt());
    CommandResult r =
        run_shell(std::string("timeout 60 ") + mixtape::fs::testing::kMountHelper + " " +
                  shell_quote(f_.image("L00001")) + " " + shell_quote(mnt()) + " -o " +
                  shell_quote("identity=" + f_.identity() + ",cache=" + f_.file("cache")));
    ASSERT_EQ(r.status, 0) << r.err;
    std::string data;
    for (const auto& path : tape.honest()) {
      EXPECT_EQ(read_whole(latest(path), data), 0) << path;
      EXPECT_TRUE(data == read_file(path)) << path;
    }
    mount.unmount();
  }
  tape.rewrite_tape_file(1, [](const std::string& db) {
    HostileTape::run_sql(db,
                         "db.executescript('CREATE TRIGGER hostile BEFORE DELETE ON member "
                         "BEGIN SELECT 1; END;')");
  });
  LiveMount mount(mnt());
  CommandResult r =
      mount.mount(f_.image("L00001"), "identity=" + f_.identity() + ",cache=" + f_.file("cache"));
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(count_lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("no readable index on tape L00001"), std::string::npos) << r.err;
}

// ------------------------------------------------------------ other users

// Invariant: with allow_other, the kernel still checks permissions
// (default_permissions is always on): another user reads a 0644 file but
// gets EACCES for a 0600 file owned by root.
TEST_F(MountFaultTest, AllowOtherStillEnforcesPermissions) {
  f_.make_tree(4);
  f_.init(1);
  f_.backup();
  ASSERT_EQ(::chmod(f_.root().c_str(), 0755), 0);  // let nobody reach the mount point
  LiveMount mount(mnt());
  ASSERT_EQ(::chmod(mnt().c_str(), 0755), 0);
  CommandResult r = mount.mount(f_.catalog(), options(f_.file("cache"), "allow_other"));
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string mountinfo = kernel_options();
  EXPECT_NE(mountinfo.find("allow_other"), std::string::npos) << mountinfo;
  EXPECT_NE(mountinfo.find("default_permissions"), std::string::npos) << mountinfo;

  const std::string shared = latest(f_.src() + "/d1/f1"),
                    secret = latest(f_.src() + "/private.txt");
  ASSERT_EQ(mode_of(shared), 0644u);
  ASSERT_EQ(mode_of(secret), 0600u);
  r = as_nobody("cat " + shell_quote(shared));
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(r.out == read_file(f_.src() + "/d1/f1"));
  r = as_nobody("cat " + shell_quote(secret));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("Permission denied"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
  // root (the mounting user) still reads it.
  EXPECT_EQ(read_file(secret), "secret\n");
}

// Invariant: without allow_other, another user cannot even look at the
// mount point (EACCES), let alone read a file below it.
TEST_F(MountFaultTest, WithoutAllowOtherOtherUsersGetEaccesAtTheMountPoint) {
  f_.make_tree(4);
  f_.init(1);
  f_.backup();
  ASSERT_EQ(::chmod(f_.root().c_str(), 0755), 0);
  LiveMount mount(mnt());
  ASSERT_EQ(::chmod(mnt().c_str(), 0755), 0);
  CommandResult r = mount.mount(f_.catalog(), options(f_.file("cache")));
  ASSERT_EQ(r.status, 0) << r.err;
  for (const std::string& command : {"stat " + shell_quote(mnt()), "ls " + shell_quote(mnt()),
                                     "cat " + shell_quote(latest(f_.src() + "/d1/f1"))}) {
    r = as_nobody(command);
    EXPECT_NE(r.status, 0) << command;
    EXPECT_NE(r.err.find("Permission denied"), std::string::npos) << command << ": " << r.err;
  }
  EXPECT_TRUE(read_file(latest(f_.src() + "/d1/f1")) == read_file(f_.src() + "/d1/f1"));
}

// ------------------------------------------------------------ secrets

// Everything a mount shows of itself and its files: .mixtape/status,
// .mixtape/stats and every extended attribute of every file under it.
std::string shown_by_the_mount(const std::string& mnt, std::size_t& attributes) {
  std::string shown = read_file(mnt + "/.mixtape/status") + read_file(mnt + "/.mixtape/stats");
  for (auto it = fs::recursive_directory_iterator(mnt); it != fs::recursive_directory_iterator();
       ++it) {
    char names[4096];
    ssize_t n = ::llistxattr(it->path().c_str(), names, sizeof names);
    for (ssize_t at = 0; n > 0 && at < n; at += static_cast<ssize_t>(std::strlen(names + at)) + 1) {
      char value[4096];
      ssize_t v = ::lgetxattr(it->path().c_str(), names + at, value, sizeof value);
      if (v > 0) shown += std::string(names + at) + "=" + std::string(value, v) + "\n";
      ++attributes;
    }
  }
  return shown;
}

// Invariant: a mount given an identity others can read warns once on
// stderr and works; and nothing it shows (.mixtape/status, .mixtape/stats,
// any extended attribute of any file, its messages) holds the secret key,
// its payload or its bytes.
TEST_F(MountFaultTest, NoSecretInStatusStatsOrExtendedAttributes) {
  f_.make_tree(6);
  f_.init(2);
  f_.backup();
  const Secrets secrets(f_.identity());
  ::chmod(f_.identity().c_str(), 0644);
  LiveMount mount(mnt());
  CommandResult r = mount.mount(f_.catalog(), options(f_.file("cache")));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err, "mount.mixtape: warning: identity file " + f_.identity() +
                       " can be read by anyone (mode 0644); make it private with `chmod 600 " +
                       f_.identity() + "`\n");
  std::string shown = r.out + r.err;
  std::string data;
  EXPECT_EQ(read_whole(latest(f_.src() + "/big.bin"), data), 0);
  EXPECT_TRUE(data == read_file(f_.src() + "/big.bin"));
  EXPECT_NE(read_whole(mnt() + "/latest/no-such-file", data), 0);
  std::size_t attributes = 0;
  shown += shown_by_the_mount(mnt(), attributes);
  EXPECT_GT(attributes, 10u);
  EXPECT_EQ(secrets.found_in(shown), std::vector<std::string>{}) << shown;
}

// Invariant: a passphrase catalog (init --passphrase-file) mounts with
// passphrase_file= and no identity, its files read back whole, and nothing
// the mount shows or says holds the passphrase. A passphrase file others
// can read is warned about once.
TEST_F(MountFaultTest, APassphraseCatalogReadsAndShowsNoPassphrase) {
  f_.make_tree(6);
  const std::string passphrase = f_.file("passphrase");
  write_file(passphrase, std::string(kPassphrase) + "\n");
  ::chmod(passphrase.c_str(), 0600);
  const std::string with_passphrase = " --passphrase-file " + shell_quote(passphrase);
  CommandResult r = f_.mixtape("init --copies 1" + with_passphrase);
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_FALSE(fs::exists(f_.identity())) << "a passphrase catalog made an identity";
  r = f_.mixtape("backup " + shell_quote(f_.src()) + " --library " + shell_quote(f_.library()) +
                 " --new-library --capacity 64M" + with_passphrase);
  ASSERT_EQ(r.status, 0) << r.err;
  ::chmod(passphrase.c_str(), 0644);
  LiveMount mount(mnt());
  r = mount.mount(f_.catalog(), "library=" + f_.library() + ",cache=" + f_.file("cache") +
                                    ",passphrase_file=" + passphrase);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(count_lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("passphrase file " + passphrase + " can be read by anyone"),
            std::string::npos)
      << r.err;
  std::string shown = r.out + r.err;
  std::string data;
  for (const std::string& file : regular_files(f_.src())) {
    ASSERT_EQ(read_whole(latest(file), data), 0) << file;
    EXPECT_TRUE(data == read_file(file)) << file;
  }
  std::size_t attributes = 0;
  shown += shown_by_the_mount(mnt(), attributes);
  EXPECT_GT(attributes, 10u);
  const std::string lower_shown = lower(shown);
  const std::string secret = lower(kPassphrase);
  for (std::size_t at = 0; at + 16 <= secret.size(); ++at)
    EXPECT_EQ(lower_shown.find(secret.substr(at, 16)), std::string::npos) << shown;
}

}  // namespace
}  // namespace mixtape::faults::testing
