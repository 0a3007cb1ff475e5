// Helpers of the mount tests that watch the daemon itself: a real mount of
// a backed-up library, the mount.mixtape process serving it, its memory and
// open files as /proc shows them, the FUSE requests it has not answered
// (fusectl), and a watchdog that turns a hang into a failure.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/test_support.h"

namespace mixtape::fs::testing {

inline constexpr char kMountHelper[] = MIXTAPE_BINARY_DIR "/mount-helper/mount.mixtape";

// scripts/test-sanitize.sh sets MIXTAPE_TEST_SANITIZED: the same tests run
// with smaller sizes and looser time limits under ASan (several times
// slower). What they assert stays the same.
inline bool sanitized_run() {
  const char* value = std::getenv("MIXTAPE_TEST_SANITIZED");
  return value && *value && std::string(value) != "0";
}

// The pid of the mount.mixtape process serving `mountpoint` (its command
// line names it); 0 if there is none.
inline pid_t daemon_pid(const std::string& mountpoint) {
  std::error_code ignored;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ignored)) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "cmdline", std::ios::binary);
    std::vector<std::string> argv;
    for (std::string arg; std::getline(in, arg, '\0');) argv.push_back(arg);
    if (argv.empty() || !argv[0].ends_with("mount.mixtape")) continue;
    if (std::find(argv.begin(), argv.end(), mountpoint) != argv.end())
      return static_cast<pid_t>(std::stol(name));
  }
  return 0;
}

// VmRSS of a process in KiB (from /proc/<pid>/status).
inline std::uint64_t rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6));
  throw Error("no VmRSS for process " + std::to_string(pid));
}

// What each open file descriptor of a process points at, and how many
// descriptors point there.
inline std::map<std::string, int> open_files(pid_t pid) {
  std::map<std::string, int> files;
  std::error_code ignored;
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  for (const auto& entry : std::filesystem::directory_iterator(dir, ignored)) {
    auto target = std::filesystem::read_symlink(entry.path(), ignored);
    if (!ignored) ++files[target.string()];
  }
  return files;
}

inline std::string describe(const std::map<std::string, int>& files) {
  std::string out;
  for (const auto& [path, count] : files) out += "  " + std::to_string(count) + " x " + path + "\n";
  return out;
}

// Fails the test if the phase it guards has not ended by the deadline, and
// then kills the mount daemon: every request blocked in the mount returns
// ENOTCONN, so a deadlock ends the test with a message instead of hanging it.
class Watchdog {
 public:
  Watchdog(std::string phase, std::chrono::seconds limit, pid_t daemon)
      : phase_(std::move(phase)), limit_(limit), daemon_(daemon), thread_([this] { watch(); }) {}
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  ~Watchdog() {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    changed_.notify_all();
    thread_.join();
  }

 private:
  void watch() {
    std::unique_lock lock(mutex_);
    if (changed_.wait_for(lock, limit_, [&] { return done_; })) return;
    ADD_FAILURE() << phase_ << " did not finish within " << limit_.count()
                  << " s: the mount is deadlocked or stuck; killing mount.mixtape (pid " << daemon_
                  << ") so the blocked readers return";
    if (daemon_ > 0) ::kill(daemon_, SIGKILL);
  }

  std::string phase_;
  std::chrono::seconds limit_;
  pid_t daemon_;
  std::mutex mutex_;
  std::condition_variable changed_;
  bool done_ = false;
  std::thread thread_;  // last: starts once the members it reads exist
};

// The kernel's FUSE control filesystem (fusectl), mounted on a directory
// of the test's own: for each FUSE mount, how many requests the kernel has
// sent its daemon, or queued for it, that are not answered yet (the
// kernel's own read-ahead included). Zero means nothing is on its way to
// the daemon: what a test waits for instead of a pause. Needs root.
class FuseControl {
 public:
  explicit FuseControl(std::string path) : path_(std::move(path)) {
    std::filesystem::create_directories(path_);
    if (::mount("fusectl", path_.c_str(), "fusectl", 0, nullptr) != 0)
      throw_errno("cannot mount fusectl on " + path_);
  }
  FuseControl(const FuseControl&) = delete;
  FuseControl& operator=(const FuseControl&) = delete;
  ~FuseControl() { ::umount2(path_.c_str(), MNT_DETACH); }

  // Requests of the FUSE mount at `mountpoint` not answered yet.
  int waiting(const std::string& mountpoint) const {
    struct stat st {};
    if (::stat(mountpoint.c_str(), &st) != 0) throw_errno("stat " + mountpoint);
    // A connection is named by its device number (major 0: the minor).
    const std::string file = path_ + "/" + std::to_string(minor(st.st_dev)) + "/waiting";
    std::ifstream in(file);
    int count = -1;
    if (!(in >> count)) throw Error("cannot read " + file);
    return count;
  }

 private:
  std::string path_;
};

// Reads a whole file with open/read/close; returns 0 or the errno of the
// call that failed.
inline int read_whole(const std::string& path, std::string& out) {
  out.clear();
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  UniqueFd file(fd);
  char buffer[1 << 16];
  for (;;) {
    ssize_t n = ::read(file.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) return 0;
    out.append(buffer, static_cast<std::size_t>(n));
  }
}

// A real mount by the built mount.mixtape, unmounted (lazily, so a killed
// daemon's mount goes too) when it goes out of scope.
class LiveMount {
 public:
  explicit LiveMount(std::string mountpoint) : mountpoint_(std::move(mountpoint)) {
    std::filesystem::create_directories(mountpoint_);
  }
  LiveMount(const LiveMount&) = delete;
  LiveMount& operator=(const LiveMount&) = delete;
  ~LiveMount() {
    if (mounted_) unmount();
  }

  // Mounts `source`; the result of mount.mixtape (status 0 once mounted).
  // `environment`: VAR=value words for the helper's command line.
  test_support::CommandResult mount(const std::string& source, const std::string& options,
                                    const std::string& environment = "") {
    auto r = test_support::run_shell(
        environment + " " + kMountHelper + " " + test_support::shell_quote(source) + " " +
        test_support::shell_quote(mountpoint_) + " -o " + test_support::shell_quote(options));
    mounted_ = r.status == 0;
    return r;
  }
  // Detaches the mount even if its daemon is gone or files are open.
  test_support::CommandResult unmount() {
    mounted_ = false;
    return test_support::run_shell("fusermount3 -u -z " + test_support::shell_quote(mountpoint_));
  }
  const std::string& path() const { return mountpoint_; }
  pid_t daemon() const { return daemon_pid(mountpoint_); }

 private:
  std::string mountpoint_;
  bool mounted_ = false;
};

}  // namespace mixtape::fs::testing
