// kill -9 of a live mount's daemon, in the middle of a recall: the mount
// point says ENOTCONN, nothing the dead daemon held (stage cache lock, tape
// image lock, catalog) stands in the way of a backup or of a new daemon on
// the same mount point, a file staged before the kill is served from the
// stage cache without touching tape, and the interrupted recall left nothing
// half-written that could ever be served.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "fs/mount_util.h"
#include "restore/test_util.h"

namespace mixtape::fs {
namespace {

using restore::testing::Fixture;
using namespace mixtape::test_support;
using testing::daemon_pid;
using testing::LiveMount;
using testing::read_whole;
using Clock = std::chrono::steady_clock;

std::uint64_t stats_field(const std::string& json, const std::string& name) {
  auto key = json.find("\"" + name + "\": ");
  if (key == std::string::npos) throw Error("no field " + name + " in " + json);
  return std::stoull(json.substr(key + name.size() + 4));
}

std::string xattr(const std::string& path, const std::string& name) {
  char value[256];
  ssize_t n = ::getxattr(path.c_str(), name.c_str(), value, sizeof value);
  return n < 0 ? "error: " + std::string(std::strerror(errno)) : std::string(value, n);
}

// Relative paths of everything below `root`, sorted.
std::vector<std::string> listing(const std::string& root) {
  std::vector<std::string> out;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root))
    out.push_back(entry.path().lexically_relative(root).string());
  std::sort(out.begin(), out.end());
  return out;
}

class MountDaemonKillTest : public ::testing::Test {
 protected:
  // A big file takes long enough to recall that the kill lands in the
  // middle of it.
  static constexpr std::size_t kHugeSize = 96'000'000;

  void SetUp() override {
    f_.make_tree(8);
    huge_ = random_text(kHugeSize, 77);
    write_file(f_.src() + "/huge.bin", huge_);
    f_.init(1);
    backup();
  }

  void backup() {
    auto r =
        f_.mixtape("backup " + shell_quote(f_.src()) + " --library " + shell_quote(f_.library()) +
                   " --new-library --capacity 512M --archive-size 64M");
    ASSERT_EQ(r.status, 0) << r.err;
  }

  void mount() {
    auto r = mount_.mount(f_.catalog(), "library=" + f_.library() + ",identity=" + f_.identity() +
                                            ",cache=" + cache());
    ASSERT_EQ(r.status, 0) << r.err;
  }

  std::string cache() const { return f_.file("cache"); }
  std::string latest() const { return mount_.path() + "/latest" + f_.src(); }
  std::string stats() { return read_file(mount_.path() + "/.mixtape/stats"); }
  std::string hex_of(const std::string& path) { return to_hex(f_.version(path).hash); }

  // Files in the stage cache's folder `sub` (objects or tmp), by name.
  std::vector<std::string> cache_entries(const std::string& sub) {
    std::vector<std::string> out;
    if (!std::filesystem::exists(cache() + "/" + sub)) return out;
    for (const auto& e : std::filesystem::recursive_directory_iterator(cache() + "/" + sub))
      if (e.is_regular_file()) out.push_back(e.path().string());
    return out;
  }

  // Starts reading huge.bin and kills the daemon once part, not all, of it
  // was recalled. The reader (a cat) must then fail.
  void kill_during_the_recall_of_huge() {
    const pid_t pid = mount_.daemon();
    ASSERT_GT(pid, 0);
    const std::string huge = latest() + "/huge.bin";
    const std::string command =
        "exec cat " + shell_quote(huge) + " > /dev/null 2> " + shell_quote(f_.file("cat.err"));
    pid_t cat = ::fork();
    ASSERT_GE(cat, 0);
    if (cat == 0) {
      ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    std::string state;
    auto deadline = Clock::now() + std::chrono::seconds(120);
    bool midway = false;
    while (Clock::now() < deadline) {
      state = xattr(huge, "user.mixtape.state");
      // "staging N%": some bytes landed, not all.
      if (state.rfind("staging ", 0) == 0 && state != "staging 0%") {
        midway = true;
        break;
      }
      if (state == "staged") break;
    }
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(cat, &status, 0);
    ASSERT_TRUE(midway) << "the kill did not land during the recall of huge.bin (state: " << state
                        << "); it must be bigger for this machine";
    EXPECT_FALSE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "cat read all of huge.bin from a daemon killed mid-recall";
    // The kernel notices the daemon is gone once its last thread exited.
    ASSERT_TRUE(test_support::poll_until([&] { return daemon_pid(mount_.path()) == 0; }))
        << "mount.mixtape survived kill -9";
  }

  Fixture f_;
  LiveMount mount_{f_.file("mnt")};
  std::string huge_;
};

TEST_F(MountDaemonKillTest, AKilledDaemonIsEnotconnAndANewOneServesTheCacheWithoutTape) {
  mount();
  const std::string small = "d1/f1";
  const std::string small_bytes = read_file(f_.src() + "/" + small);
  std::string got;
  ASSERT_EQ(read_whole(latest() + "/" + small, got), 0);
  ASSERT_TRUE(got == small_bytes);
  const auto before = listing(latest());
  // Read-ahead may still be recalling the neighbours of d1/f1: let it end.
  ASSERT_TRUE(test_support::poll_until([&] {
    std::string s = stats();
    return stats_field(s, "recalls") ==
           stats_field(s, "recalls_staged") + stats_field(s, "recalls_failed");
  })) << stats();

  ASSERT_NO_FATAL_FAILURE(kill_during_the_recall_of_huge());

  // The kernel may answer from the root's attributes for up to a second.
  int rc = 0, error = 0;
  test_support::poll_until(
      [&] {
        struct stat st {};
        rc = ::stat(mount_.path().c_str(), &st);
        error = errno;
        return rc != 0;
      },
      std::chrono::seconds(120), std::chrono::milliseconds(20));
  EXPECT_EQ(rc, -1) << "stat of the mount point still works 2 minutes after its daemon died";
  EXPECT_EQ(error, ENOTCONN) << std::strerror(error);

  // Nothing the dead daemon held is stale: the catalog takes a backup, and
  // the tape image (which the daemon had open, shared-locked) is written.
  write_file(f_.src() + "/after-the-kill.txt", "written after the kill\n");
  backup();

  auto u = run_shell("umount -l " + shell_quote(mount_.path()));
  ASSERT_EQ(u.status, 0) << u.err;
  // The stage cache lock goes with the process: a new daemon on the same
  // mount point and cache starts.
  mount();
  auto after = listing(latest());
  auto expected = before;
  expected.push_back("after-the-kill.txt");
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(after, expected);

  // d1/f1 was staged before the kill: served from the cache, no tape read.
  ASSERT_EQ(read_whole(latest() + "/" + small, got), 0);
  EXPECT_TRUE(got == small_bytes);
  std::string s = stats();
  EXPECT_EQ(stats_field(s, "bytes_read"), 0u) << s;
  EXPECT_EQ(stats_field(s, "records_read"), 0u) << s;
  EXPECT_EQ(stats_field(s, "locates"), 0u) << s;
  EXPECT_EQ(stats_field(s, "recalls"), 0u) << s;
  EXPECT_GE(stats_field(s, "cache_hits"), 1u) << s;
}

TEST_F(MountDaemonKillTest, ARecallInterruptedByTheKillLeavesNothingHalfWritten) {
  ASSERT_NO_FATAL_FAILURE(mount());
  ASSERT_NO_FATAL_FAILURE(kill_during_the_recall_of_huge());
  const std::string hex = hex_of(f_.src() + "/huge.bin");

  // The half-recalled file is where only the next daemon looks, to delete
  // it: in tmp/, never under objects/.
  auto partial = cache_entries("tmp");
  ASSERT_EQ(partial.size(), 1u) << "no file was being staged when the daemon died";
  EXPECT_EQ(std::filesystem::path(partial[0]).filename().string().rfind(hex + ".", 0), 0u)
      << partial[0];
  for (const auto& object : cache_entries("objects")) {
    EXPECT_NE(std::filesystem::path(object).filename().string(), hex)
        << "huge.bin is under objects/ after a recall cut short";
    // Every object there is whole: its bytes hash to its name.
    EXPECT_EQ(hash_hex(read_file(object)), std::filesystem::path(object).filename().string())
        << object;
  }

  auto u = run_shell("fusermount3 -u -z " + shell_quote(mount_.path()));
  ASSERT_EQ(u.status, 0) << u.err;
  mount();
  EXPECT_TRUE(cache_entries("tmp").empty()) << "the new daemon kept a half-staged file";
  const std::string huge = latest() + "/huge.bin";
  EXPECT_EQ(xattr(huge, "user.mixtape.state"), "offline");
  // Read again, it is recalled again, whole.
  std::string got;
  ASSERT_EQ(read_whole(huge, got), 0);
  EXPECT_EQ(got.size(), huge_.size());
  EXPECT_TRUE(got == huge_) << "huge.bin differs after the recall that followed the kill";
  EXPECT_GT(stats_field(stats(), "bytes_read"), kHugeSize) << stats();
  EXPECT_EQ(xattr(huge, "user.mixtape.state"), "staged");
}

}  // namespace
}  // namespace mixtape::fs
