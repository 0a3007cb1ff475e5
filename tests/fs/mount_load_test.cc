// The mount under load, as the daemon sees it: 32 readers at once,
// thousands of opens of staged files from 8 threads, find walking the whole
// mount while files are recalled; nothing hangs (a watchdog turns a
// deadlock into a failure), every byte is right, the daemon's memory stays
// bounded and its open files come back to what they were. How fast staged
// files open is measured by bench/fuse/opens.sh, not here.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
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
using testing::describe;
using testing::LiveMount;
using testing::open_files;
using testing::read_whole;
using testing::rss_kib;
using testing::sanitized_run;
using testing::Watchdog;
using Clock = std::chrono::steady_clock;

constexpr int kReaders = 32;

// Errors seen by worker threads, reported by the test's thread.
class Problems {
 public:
  void add(const std::string& what) {
    std::lock_guard lock(mutex_);
    if (list_.size() < 20) list_.push_back(what);
    ++count_;
  }
  std::size_t count() const {
    std::lock_guard lock(mutex_);
    return count_;
  }
  std::string text() const {
    std::lock_guard lock(mutex_);
    std::string out;
    for (const auto& p : list_) out += "  " + p + "\n";
    return out;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> list_;
  std::size_t count_ = 0;
};

std::uint64_t stats_field(const std::string& json, const std::string& name) {
  auto key = json.find("\"" + name + "\": ");
  if (key == std::string::npos) throw Error("no field " + name + " in " + json);
  return std::stoull(json.substr(key + name.size() + 4));
}

class MountLoadTest : public ::testing::Test {
 protected:
  // Sizes: the load is the same under ASan but for fewer opens of staged
  // files (each several times slower there); the deadlines, which only a
  // hang reaches, are looser.
  const std::uint64_t opens_per_thread{sanitized_run() ? 150u : 400u};
  const std::chrono::seconds phase_limit{sanitized_run() ? 600 : 180};
  static constexpr int kFilesPerReader = 8;
  static constexpr int kRecallDirs = 4;
  static constexpr int kRecallFiles = 12;

  void SetUp() override {
    // load/rNN/fM: small files, recalled by the 32 readers, then opened
    // again and again once staged. recall/cN/gM: left unstaged until the
    // find phase, with one 2 MB file per directory so recalls take a while.
    for (int r = 0; r < kReaders; ++r) {
      for (int f = 0; f < kFilesPerReader; ++f) {
        std::string name = "load/r" + two_digits(r) + "/f" + std::to_string(f);
        add(name, 1024 + (r * 131 + f * 977) % 40000, 1000 + r * 100 + f);
        load_files_.push_back(name);
      }
    }
    for (int c = 0; c < kRecallDirs; ++c) {
      for (int g = 0; g < kRecallFiles; ++g) {
        std::string name = "recall/c" + std::to_string(c) + "/g" + two_digits(g);
        add(name, g == 0 ? 2'000'000 : 16'000 + (c * 7 + g * 13'001) % 280'000, 9000 + c * 100 + g);
        recall_files_[c].push_back(name);
      }
    }
    f_.init(1);
    f_.backup();
  }

  static std::string two_digits(int n) { return (n < 10 ? "0" : "") + std::to_string(n); }

  void add(const std::string& name, std::size_t size, std::uint32_t seed) {
    expected_[name] = random_text(size, seed);
    write_file(f_.src() + "/" + name, expected_[name]);
  }

  std::string in_mount(const std::string& name) const {
    return mount_.path() + "/latest" + f_.src() + "/" + name;
  }

  // Reads a file through the mount and checks every byte.
  bool check(const std::string& name, Problems& problems) {
    std::string got;
    int error = read_whole(in_mount(name), got);
    if (error != 0) {
      problems.add(name + ": " + std::strerror(error));
      return false;
    }
    if (got != expected_.at(name)) {
      problems.add(name + ": " + std::to_string(got.size()) + " bytes that differ from the " +
                   std::to_string(expected_.at(name).size()) + " backed up");
      return false;
    }
    return true;
  }

  std::string stats() { return read_file(mount_.path() + "/.mixtape/stats"); }

  // Whether the daemon has recalls queued or running (read-ahead
  // included), by its own counters.
  static bool recalling(const std::string& stats) {
    return stats_field(stats, "recalls") >
           stats_field(stats, "recalls_staged") + stats_field(stats, "recalls_failed");
  }

  // Polls `ready` every `pause` until it holds; fails the test if
  // phase_limit (which only a hang reaches) passes first.
  template <typename Ready>
  bool wait_until(Ready ready, const std::string& what,
                  std::chrono::milliseconds pause = std::chrono::milliseconds(20)) {
    const auto deadline = Clock::now() + phase_limit;
    while (!ready()) {
      if (Clock::now() > deadline) {
        ADD_FAILURE() << what << " within " << phase_limit.count() << " s";
        return false;
      }
      std::this_thread::sleep_for(pause);
    }
    return true;
  }

  // Waits until every recall the daemon queued (read-ahead included) ended.
  void wait_for_idle_queue() {
    std::string s;
    if (!wait_until([&] { return !recalling(s = stats()); }, "the recall queue never went idle"))
      ADD_FAILURE() << s;
  }

  // Open files of the daemon, less the catalog connections (one per FUSE
  // thread, opened as threads start, which is not a leak), less libfuse's
  // splice pipes (both ends of one pipe per FUSE thread that replied to a
  // read by splice, kept until the thread exits; counted by splice_pipes)
  // and less staged objects and files being staged (which must all be
  // closed once nothing is open: the final check compares against this).
  std::map<std::string, int> steady_files(pid_t pid) {
    auto files = open_files(pid);
    std::erase_if(files, [&](const auto& entry) {
      const std::string& path = entry.first;
      return path == f_.catalog() || path == f_.catalog() + "-wal" ||
             path == f_.catalog() + "-shm" || path.rfind(cache() + "/objects/", 0) == 0 ||
             path.rfind(cache() + "/tmp/", 0) == 0 || is_thread_pipe(entry);
    });
    return files;
  }
  std::size_t splice_pipes(pid_t pid) {
    auto files = open_files(pid);
    return static_cast<std::size_t>(std::count_if(files.begin(), files.end(), is_thread_pipe));
  }
  static bool is_thread_pipe(const std::pair<const std::string, int>& entry) {
    return entry.first.rfind("pipe:", 0) == 0 && entry.second == 2;
  }
  std::map<std::string, int> cache_files(pid_t pid) {
    auto files = open_files(pid);
    std::erase_if(files, [&](const auto& entry) {
      return entry.first.rfind(cache() + "/", 0) != 0 || entry.first == cache() + "/lock";
    });
    return files;
  }
  std::string cache() const { return f_.file("cache"); }

  // 8 threads, each opening, reading whole and checking opens_per_thread
  // staged files; returns the number of opens that returned the right bytes.
  std::uint64_t open_staged_files(Problems& problems) {
    std::atomic<std::uint64_t> opens{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&, t] {
        const auto first = static_cast<std::size_t>(t) * 31;
        for (std::size_t i = first; i < first + opens_per_thread; ++i) {
          if (check(load_files_[i % load_files_.size()], problems)) ++opens;
        }
      });
    }
    for (auto& t : threads) t.join();
    return opens;
  }

  Fixture f_;
  LiveMount mount_{f_.file("mnt")};
  std::map<std::string, std::string> expected_;
  std::vector<std::string> load_files_;
  std::map<int, std::vector<std::string>> recall_files_;
};

TEST_F(MountLoadTest, ReadersOpensAndFindAlongsideRecallsNeitherHangNorLeak) {
  // Under ASan, freed memory waits in a quarantine of 256 MB before reuse:
  // a smaller one lets the daemon's own memory show through in VmRSS.
  std::string environment;
  if (sanitized_run()) {
    const char* asan = std::getenv("ASAN_OPTIONS");
    environment = "ASAN_OPTIONS=" + shell_quote((asan && *asan ? std::string(asan) + ":" : "") +
                                                "quarantine_size_mb=16");
  }
  auto mounted = mount_.mount(
      f_.catalog(), "library=" + f_.library() + ",identity=" + f_.identity() + ",cache=" + cache(),
      environment);
  ASSERT_EQ(mounted.status, 0) << mounted.err;
  const pid_t pid = daemon_pid(mount_.path());
  ASSERT_GT(pid, 0) << "no mount.mixtape process serves " << mount_.path();

  // The tape is loaded by a first recall, so the baseline of open files
  // includes it: a loaded tape stays open, as a tape stays in its drive.
  Problems problems;
  ASSERT_TRUE(check(load_files_[0], problems)) << problems.text();
  wait_for_idle_queue();
  const auto baseline = steady_files(pid);
  const std::uint64_t rss_start = rss_kib(pid);

  {  // (a) 32 readers at once, each its own directory then its neighbour's,
     // so that two readers wait on the same recall.
    Watchdog watchdog("32 concurrent readers", phase_limit, pid);
    std::vector<std::thread> readers;
    for (int r = 0; r < kReaders; ++r) {
      readers.emplace_back([&, r] {
        for (int pass = 0; pass < 2; ++pass) {
          int dir = (r + pass) % kReaders;
          for (int f = 0; f < kFilesPerReader; ++f)
            check("load/r" + two_digits(dir) + "/f" + std::to_string(f), problems);
        }
      });
    }
    for (auto& t : readers) t.join();
  }
  ASSERT_EQ(problems.count(), 0u) << "concurrent readers:\n" << problems.text();
  wait_for_idle_queue();

  {  // (b) staged files opened and read again and again: no tape is touched.
    Watchdog watchdog("opening staged files", phase_limit, pid);
    const std::string before = stats();
    std::uint64_t opens = open_staged_files(problems);
    const std::string after = stats();
    EXPECT_EQ(problems.count(), 0u) << "opens of staged files:\n" << problems.text();
    EXPECT_EQ(opens, 8u * opens_per_thread);
    EXPECT_EQ(stats_field(after, "bytes_read"), stats_field(before, "bytes_read")) << after;
    EXPECT_GE(stats_field(after, "cache_hits") - stats_field(before, "cache_hits"), opens) << after;
  }

  {  // (c) find walks the whole mount, again and again, while files nobody
     // read yet are recalled: all queued at once through .mixtape/recall
     // (the one drive serves them in turn) and read by a thread per
     // directory. The first find starts as soon as the daemon's counters
     // show recalls waiting; a find ran during recalls when they did as it
     // began and, as it ended, recalls still waited or some had ended since.
    Watchdog watchdog("find alongside recalls", phase_limit, pid);
    {
      std::ofstream recall(mount_.path() + "/.mixtape/recall", std::ios::trunc);
      for (const auto& [dir, names] : recall_files_)
        for (const auto& name : names) recall << f_.src() << "/" << name << "\n";
      ASSERT_TRUE(recall.good());
    }  // closed: queued as the daemon sees the release
    std::string first;
    // Polled without a pause (each poll is a read through the mount): 48
    // recalls, 8 MB of them, cannot all end between two.
    ASSERT_TRUE(wait_until([&] { return recalling(first = stats()); },
                           "the recalls written to .mixtape/recall were never seen waiting",
                           std::chrono::milliseconds(0)))
        << first;
    std::vector<std::thread> recallers;
    for (const auto& [dir, names] : recall_files_) {
      recallers.emplace_back([&, names = names] {
        for (const auto& name : names) check(name, problems);
      });
    }
    std::atomic<bool> readers_done{false};
    std::vector<std::size_t> found;
    int during_recalls = 0;
    std::thread finder([&] {
      std::string before = first;
      while (!readers_done || found.size() < 3) {
        auto r = run_shell("find " + shell_quote(mount_.path()));
        if (r.status != 0) {
          problems.add("find: status " + std::to_string(r.status) + ": " + r.err);
          return;
        }
        const std::string after = stats();
        found.push_back(static_cast<std::size_t>(std::count(r.out.begin(), r.out.end(), '\n')));
        const auto ended = [](const std::string& s) {
          return stats_field(s, "recalls_staged") + stats_field(s, "recalls_failed");
        };
        if (recalling(before) && (recalling(after) || ended(after) > ended(before)))
          ++during_recalls;
        before = stats();
      }
    });
    for (auto& t : recallers) t.join();
    readers_done = true;
    finder.join();
    EXPECT_EQ(problems.count(), 0u) << "find alongside recalls:\n" << problems.text();
    ASSERT_GE(found.size(), 3u);
    EXPECT_GE(during_recalls, 1) << "find never ran while the daemon recalled files";
    // Every run saw the whole mount, the same each time: the 32 x 8 + 4 x 12
    // files under latest/ and snapshots/ and tapes/ at least.
    for (std::size_t n : found) EXPECT_EQ(n, found[0]);
    EXPECT_GT(found[0], 3 * expected_.size());
  }
  wait_for_idle_queue();

  {  // (d) repeated rounds of opens leave the daemon's memory where it was.
    Watchdog watchdog("rounds of opens", phase_limit, pid);
    std::vector<std::uint64_t> rss;
    for (int round = 0; round < 4; ++round) {
      open_staged_files(problems);
      rss.push_back(rss_kib(pid));
    }
    std::printf("daemon VmRSS: %llu KiB at start, after rounds:",
                static_cast<unsigned long long>(rss_start));
    for (auto kib : rss) std::printf(" %llu", static_cast<unsigned long long>(kib));
    std::printf(" KiB\n");
    EXPECT_EQ(problems.count(), 0u) << "rounds of opens:\n" << problems.text();
    // ASan keeps freed memory in quarantine (256 MB) and shadows the rest.
    const std::uint64_t bound_kib = (sanitized_run() ? 1024 : 192) * 1024;
    const std::uint64_t growth_kib = (sanitized_run() ? 64 : 8) * 1024;
    for (auto kib : rss) EXPECT_LT(kib, bound_kib) << "the daemon's memory is not bounded";
    EXPECT_LE(rss.back(), rss[1] + growth_kib)
        << "the daemon's memory grows round after round: " << rss[1] << " KiB after round 2, "
        << rss.back() << " KiB after round 4";
  }

  // (e) With every file closed, the daemon holds what it held before the
  // load. Releases reach the daemon after close() returns: waited for.
  wait_for_idle_queue();
  auto now = steady_files(pid);
  auto staged = cache_files(pid);
  const auto deadline = Clock::now() + phase_limit;
  while ((now != baseline || !staged.empty()) && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    now = steady_files(pid);
    staged = cache_files(pid);
  }
  EXPECT_EQ(now, baseline) << "open files before the load:\n"
                           << describe(baseline) << "and after it:\n"
                           << describe(now);
  EXPECT_TRUE(staged.empty()) << "stage cache files still open with no file open:\n"
                              << describe(staged);
  // One per FUSE thread at most (fuse_fs.cc starts up to 16).
  EXPECT_LE(splice_pipes(pid), 16u) << "splice pipes beyond one per FUSE thread";
  EXPECT_EQ(daemon_pid(mount_.path()), pid) << "the daemon died under load";
}

}  // namespace
}  // namespace mixtape::fs
