// The mount beside daily backups (issue [3/7]), through real FUSE mounts of
// the built mount.mixtape: a catalog mounted for good (as by an fstab line)
// while a cron job backs up, reads that wait for a tape nobody brings, a
// found tape, options that cannot work, other users, and remounting. Each
// test states its invariant.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/file.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>

#include "tests/faults/faults_test_util.h"
#include "tests/fs/mount_util.h"

namespace mixtape::faults::testing {
namespace {

namespace fs = std::filesystem;
using mixtape::fs::testing::kMountHelper;
using mixtape::fs::testing::LiveMount;
using mixtape::fs::testing::read_whole;

// A program run in the background, its output in files; killed if still
// running when destroyed.
class Spawned {
 public:
  Spawned(const std::vector<std::string>& argv, std::string out, std::string err)
      : out_(std::move(out)), err_(std::move(err)) {
    pid_ = ::fork();
    if (pid_ < 0) throw_errno("fork");
    if (pid_ > 0) return;
    int o = ::open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int e = ::open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (o < 0 || e < 0) ::_exit(126);
    ::dup2(o, 1);
    ::dup2(e, 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  Spawned(const Spawned&) = delete;
  Spawned& operator=(const Spawned&) = delete;
  ~Spawned() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      wait();
    }
  }
  pid_t pid() const { return pid_; }
  bool running() {
    if (pid_ <= 0) return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == 0) return true;
    finish(status);
    return false;
  }
  // The exit status; -1 if killed by a signal.
  int wait() {
    if (pid_ > 0) {
      int status = 0;
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      finish(status);
    }
    return exit_;
  }
  std::string err() const { return fs::exists(err_) ? read_file(err_) : ""; }

 private:
  void finish(int status) {
    pid_ = 0;
    exit_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  std::string out_, err_;
  pid_t pid_ = 0;
  int exit_ = -1;
};

// Whether a process has ended (gone, or a zombie nobody reaped).
bool ended(pid_t pid) {
  if (::kill(pid, 0) != 0) return true;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  const auto paren = line.rfind(')');
  return paren == std::string::npos || line.substr(paren + 2, 1) == "Z";
}

class MountDailyTest : public ::testing::Test {
 protected:
  std::string mnt() const { return f_.file("mnt"); }
  std::string latest(const std::string& path) const { return mnt() + "/latest" + path; }
  // The options of an fstab line for the catalog.
  std::string fstab(const std::string& extra, const std::string& library = "") const {
    return "noauto,nofail,identity=" + f_.identity() +
           ",library=" + (library.empty() ? f_.library() : library) + ",cache=" + f_.file("cache") +
           (extra.empty() ? "" : "," + extra);
  }
  std::string status() { return read_file(mnt() + "/.mixtape/status"); }
  std::string mounted() {
    std::ifstream in("/proc/self/mountinfo");
    for (std::string line; std::getline(in, line);)
      if (line.find(" " + mnt() + " ") != std::string::npos) return line;
    return "";
  }
  // A one-copy backup of a small tree, mounted with `options`, and a file
  // read through the mount, so that its daemon has had the tape.
  void back_up_mount_and_read(LiveMount& mount, const std::string& options) {
    f_.make_tree(4);
    f_.init(1);
    f_.backup();
    CommandResult r = mount.mount(f_.catalog(), options);
    ASSERT_EQ(r.status, 0) << r.err;
    std::string data;
    ASSERT_EQ(read_whole(latest(f_.src() + "/d1/f1"), data), 0);
  }

  // A backed-up small tree mounted with its tapes away (library= an empty
  // folder), and a `cat` of d1/f1 through the mount (reader) waiting for
  // the tape nobody brings.
  void read_waiting_for_an_absent_tape(LiveMount& mount, std::optional<Spawned>& reader) {
    f_.make_tree(4);
    f_.init(1);
    f_.backup();
    fs::create_directories(f_.file("away"));
    CommandResult r = mount.mount(f_.catalog(), fstab("", f_.file("away")));
    ASSERT_EQ(r.status, 0) << r.err;
    const std::string file = f_.src() + "/d1/f1";
    reader.emplace(std::vector<std::string>{"cat", latest(file)}, f_.file("cat.out"),
                   f_.file("cat.err"));
    ASSERT_TRUE(poll_until([&] { return status().find("waiting: " + file) != std::string::npos; }))
        << status();
  }

  Fixture f_;
};

// ------------------------------------------------------------ item 1, side by side

// Invariant: while a mount holds the tape a backup needs, the backup fails
// (exit status 1) naming the mount's process and what it left undone; it
// never backs up nothing and calls that success.
TEST_F(MountDailyTest, ABackupWhileTheMountHoldsItsTapeFailsNamingTheMount) {
  LiveMount mount(mnt());
  ASSERT_NO_FATAL_FAILURE(back_up_mount_and_read(mount, fstab("idle=600")));
  const pid_t daemon = mount.daemon();
  ASSERT_FALSE(open_images(daemon).empty()) << "the mount does not hold the tape after a read";
  write_file(f_.src() + "/new.txt", "new\n");
  CommandResult r = f_.mixtape("backup " + shell_quote(f_.src()) + " --library " +
                               shell_quote(f_.library()) + " --drive-wait 0");
  EXPECT_NE(r.status, 0) << r.out;
  EXPECT_NE(r.err.find("in use by process " + std::to_string(daemon) + " (" + kMountHelper),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("1 file is not backed up yet"), std::string::npos) << r.err;
}

// Invariant (fstab plus cron): a mounted catalog whose reader is done lets
// go of its tape after idle= seconds, so the nightly backup runs and
// succeeds, and the mount then reads what it wrote.
TEST_F(MountDailyTest, AnIdleMountLetsTheNightlyBackupRun) {
  LiveMount mount(mnt());
  ASSERT_NO_FATAL_FAILURE(back_up_mount_and_read(mount, fstab("idle=1")));
  const pid_t daemon = mount.daemon();
  EXPECT_TRUE(poll_until([&] { return open_images(daemon).empty(); }))
      << "the idle mount keeps its tape";
  EXPECT_NE(status().find("drive 0: empty"), std::string::npos) << status();

  write_file(f_.src() + "/new.txt", "new\n");
  CommandResult r =
      f_.mixtape("backup " + shell_quote(f_.src()) + " --library " + shell_quote(f_.library()));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("backed up 1 file copy"), std::string::npos) << r.out;
  std::string data;
  EXPECT_EQ(read_whole(latest(f_.src() + "/new.txt"), data), 0);
  EXPECT_EQ(data, "new\n");
}

// Invariant: the same for a mount of one drive (device=, here an image):
// an idle mount closes it, looking at the mount does not take it back, and
// a backup to that drive runs.
TEST_F(MountDailyTest, AnIdleMountOfADeviceLetsTheBackupRun) {
  const std::string device = f_.image("L00001");
  LiveMount mount(mnt());
  ASSERT_NO_FATAL_FAILURE(
      back_up_mount_and_read(mount, "identity=" + f_.identity() + ",device=" + device +
                                        ",cache=" + f_.file("cache") + ",idle=1"));
  const pid_t daemon = mount.daemon();
  EXPECT_TRUE(poll_until([&] { return open_images(daemon).empty(); }))
      << "the idle mount keeps its drive";
  // Asking about a file that is not staged lists what the drive holds.
  EXPECT_EQ(xattr(latest(f_.src() + "/d2/f2"), "user.mixtape.state"), "offline");
  EXPECT_TRUE(open_images(daemon).empty()) << "looking at the mount took the drive back";
  write_file(f_.src() + "/new.txt", "new\n");
  CommandResult r = f_.mixtape("backup " + shell_quote(f_.src()) + " --device " +
                               shell_quote(device) + " --drive-wait 0");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("backed up 1 file copy"), std::string::npos) << r.out;
}

// ------------------------------------------------------------ item 2

// Invariant: a read waiting (for ever, by default) for a tape nobody
// brings does not outlive the unmount: once its reader is killed and the
// mount is unmounted, mount.mixtape exits and lets go of the cache, so the
// same mount can be made again.
TEST_F(MountDailyTest, AReadWaitingForAnAbsentTapeEndsWithTheUnmount) {
  {
    LiveMount mount(mnt());
    std::optional<Spawned> reader;
    ASSERT_NO_FATAL_FAILURE(read_waiting_for_an_absent_tape(mount, reader));
    const pid_t daemon = mount.daemon();
    ::kill(reader->pid(), SIGKILL);
    reader->wait();
    EXPECT_TRUE(
        poll_until([&] { return run_shell("fusermount3 -u " + shell_quote(mnt())).status == 0; }));
    const bool gone = poll_until([&] { return ended(daemon); });
    EXPECT_TRUE(gone) << "mount.mixtape outlived its unmount";
    if (!gone) ::kill(daemon, SIGKILL);  // or it holds the cache for ever
    mount.unmount();
  }
  LiveMount again(mnt());
  CommandResult r = again.mount(f_.catalog(), fstab(""));
  EXPECT_EQ(r.status, 0) << r.err;
}

// Invariant: SIGTERM ends a mount whose read waits for a tape.
TEST_F(MountDailyTest, SigtermEndsAMountWhoseReadWaitsForATape) {
  LiveMount mount(mnt());
  std::optional<Spawned> reader;
  ASSERT_NO_FATAL_FAILURE(read_waiting_for_an_absent_tape(mount, reader));
  const pid_t daemon = mount.daemon();
  ::kill(daemon, SIGTERM);
  const bool gone = poll_until([&] { return ended(daemon); });
  EXPECT_TRUE(gone) << "mount.mixtape ignored SIGTERM";
  if (!gone) ::kill(daemon, SIGKILL);  // or the reader waits for ever
  EXPECT_NE(reader->wait(), 0);
}

// Invariant: a found tape mounted alone fails a read of a file whose only
// copy is on another tape at once (ENOMEDIUM), as no other tape can come.
TEST_F(MountDailyTest, AFoundTapeFailsAtOnceForAFileOnlyOnAnotherTape) {
  f_.make_tree(4);
  for (int i = 0; i < 3; ++i)
    write_file(f_.src() + "/big" + std::to_string(i) + ".bin", random_text(8'000'000, 20 + i));
  f_.init(1);
  fs::create_directories(f_.library());
  CommandResult r = f_.mixtape("backup " + shell_quote(f_.src()) + " --library " +
                               shell_quote(f_.library()) + " --capacity 24M --archive-size 1M");
  ASSERT_EQ(r.status, 0) << r.err;
  // The tape written last knows, from its trailing index, every copy on
  // the tapes before it.
  ASSERT_TRUE(fs::exists(f_.image("L00002")));
  std::string elsewhere;
  for (const auto& file : regular_files(f_.src())) {
    auto replicas = f_.replicas(file);
    if (fs::file_size(file) > 0 && replicas.size() == 1 && replicas[0].tape.serial == "L00001")
      elsewhere = file;
  }
  ASSERT_FALSE(elsewhere.empty()) << "no file is on L00001 alone";
  LiveMount mount(mnt());
  r = mount.mount(f_.image("L00002"), "identity=" + f_.identity() + ",cache=" + f_.file("cache"));
  ASSERT_EQ(r.status, 0) << r.err;
  mixtape::fs::testing::Watchdog watchdog("reading a file of another tape",
                                          std::chrono::seconds(60), mount.daemon());
  std::string data;
  EXPECT_EQ(read_whole(latest(elsewhere), data), ENOMEDIUM)
      << read_file(mnt() + "/.mixtape/status");
}

// ------------------------------------------------------------ item 9

// Invariant: a library that does not exist, or keys that cannot read the
// catalog's tapes, are refused at mount time with one line, and nothing is
// mounted or made.
TEST_F(MountDailyTest, TheMountRefusesAMissingLibraryOrKeyAtOnce) {
  f_.make_tree(2);
  f_.init(1);
  f_.backup();
  LiveMount mount(mnt());
  const std::string missing = f_.file("no-such-tapes");
  CommandResult r = mount.mount(f_.catalog(), fstab("", missing));
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(count_lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("no tape library at " + missing), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(missing));
  EXPECT_EQ(mounted(), "");

  // No identity: none named, none in the (empty) home.
  fs::create_directories(f_.file("empty-home"));
  r = mount.mount(f_.catalog(), "library=" + f_.library() + ",cache=" + f_.file("cache"),
                  "HOME=" + shell_quote(f_.file("empty-home")));
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(count_lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("no identity"), std::string::npos) << r.err;
  EXPECT_EQ(mounted(), "");

  // Someone else's identity.
  ASSERT_EQ(f_.mixtape("keygen -o " + shell_quote(f_.file("other.txt"))).status, 0);
  r = mount.mount(f_.catalog(), "library=" + f_.library() + ",cache=" + f_.file("cache") +
                                    ",identity=" + f_.file("other.txt"));
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(count_lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("cannot decrypt"), std::string::npos) << r.err;
  EXPECT_EQ(mounted(), "");
}

// ------------------------------------------------------------ item 10

// Invariant: with allow_other, .mixtape/status shows other users no path
// (what is recalled may come from folders closed to them); its owner and
// root see the paths.
TEST_F(MountDailyTest, WithAllowOtherTheStatusShowsOtherUsersNoPath) {
  f_.make_tree(4);
  f_.init(1);
  f_.backup();
  fs::create_directories(f_.file("away"));
  ASSERT_EQ(::chmod(f_.root().c_str(), 0755), 0);
  LiveMount mount(mnt());
  ASSERT_EQ(::chmod(mnt().c_str(), 0755), 0);
  CommandResult r = mount.mount(f_.catalog(), fstab("allow_other,wait=0", f_.file("away")));
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string secret = f_.src() + "/private.txt";
  std::string data;
  EXPECT_EQ(read_whole(latest(secret), data), ENOMEDIUM);
  EXPECT_NE(status().find("waiting: " + secret), std::string::npos) << status();
  r = run_shell("setpriv --reuid=65534 --regid=65534 --clear-groups -- cat " +
                shell_quote(mnt() + "/.mixtape/status"));
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("waiting: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("insert tape L00001"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find(f_.src()), std::string::npos) << r.out;
}

// ------------------------------------------------------------ item 11

// Invariant: a found tape's block index is kept in the mount's cache, never
// written beside the tape; the tape may be on a read-only medium.
TEST_F(MountDailyTest, AFoundTapeKeepsItsBlockIndexInTheCache) {
  f_.make_tree(4);
  f_.init(1);
  f_.backup();
  const std::string found = f_.file("found");
  fs::create_directories(found);
  fs::copy_file(f_.image("L00001"), found + "/L00001.tap");
  fs::copy_file(f_.image("L00001") + ".meta", found + "/L00001.tap.meta");
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(f_.catalog() + suffix);
  {
    LiveMount mount(mnt());
    CommandResult r =
        mount.mount(found + "/L00001.tap",
                    "identity=" + f_.identity() + ",cache=" + f_.file("cache") + ",idle=0");
    ASSERT_EQ(r.status, 0) << r.err;
    std::string data;
    EXPECT_EQ(read_whole(latest(f_.src() + "/d1/f1"), data), 0);
    EXPECT_TRUE(data == read_file(f_.src() + "/d1/f1"));
    const pid_t daemon = mount.daemon();
    EXPECT_TRUE(poll_until([&] { return open_images(daemon).empty(); }));  // idle: index saved
    mount.unmount();
  }
  EXPECT_FALSE(fs::exists(found + "/L00001.tap.idx")) << "an index was written beside the tape";
  bool in_cache = false;
  for (const auto& e : fs::directory_iterator(f_.file("cache")))
    in_cache = in_cache || e.path().extension() == ".idx";
  EXPECT_TRUE(in_cache);

  ReadOnlyView ro(found, f_.file("found-ro"));
  LiveMount mount(mnt());
  CommandResult r = mount.mount(ro.path() + "/L00001.tap",
                                "identity=" + f_.identity() + ",cache=" + f_.file("cache2"));
  ASSERT_EQ(r.status, 0) << r.err;
  std::string data;
  EXPECT_EQ(read_whole(latest(f_.src() + "/big.bin"), data), 0);
  EXPECT_TRUE(data == read_file(f_.src() + "/big.bin"));
}

// Invariant: a mount whose cache another process still holds (an old
// daemon finishing after its unmount returned) waits for it, saying so,
// and then mounts.
TEST_F(MountDailyTest, AMountWaitsForTheCacheAnEndingMountStillHolds) {
  f_.make_tree(2);
  f_.init(1);
  f_.backup();
  fs::create_directories(f_.file("cache"));
  UniqueFd lock = open_file(f_.file("cache") + "/lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  ASSERT_EQ(::flock(lock.get(), LOCK_EX), 0);
  LiveMount mount(mnt());
  Spawned mounter({kMountHelper, f_.catalog(), mnt(), "-o", fstab("")}, f_.file("mount.out"),
                  f_.file("mount.err"));
  EXPECT_TRUE(poll_until(
      [&] { return mounter.err().find("waiting") != std::string::npos || !mounter.running(); }));
  lock.reset();
  EXPECT_EQ(mounter.wait(), 0) << mounter.err();
  EXPECT_NE(mounted(), "");
  mount.unmount();
}

}  // namespace
}  // namespace mixtape::faults::testing
