// Real mounts whose recalls fail or wait: a damaged copy that directory
// read-ahead must not recall again and again, and a tape put into the
// library while a read waits for it (-o wait=).
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <regex>
#include <set>
#include <thread>

#include "tests/faults/faults_test_util.h"
#include "tests/fs/mount_util.h"

namespace mixtape::fs {
namespace {

namespace stdfs = std::filesystem;
using faults::testing::Fixture;
using namespace mixtape::test_support;
using faults::testing::xattr;
using testing::LiveMount;
using testing::read_whole;

class MountOfflineTest : public ::testing::Test {
 protected:
  std::string mnt() const { return f_.file("mnt"); }
  std::string latest(const std::string& path) const { return mnt() + "/latest" + path; }
  void mount(const std::string& extra = "") {
    auto r = mount_.mount(f_.catalog(), "library=" + f_.library() + ",identity=" + f_.identity() +
                                            ",cache=" + f_.file("cache") +
                                            (extra.empty() ? "" : "," + extra));
    ASSERT_EQ(r.status, 0) << r.err;
  }
  // A counter of .mixtape/stats ("recalls_failed": 2).
  std::uint64_t stat(const std::string& name) {
    return stat_in(read_file(mnt() + "/.mixtape/stats"), name);
  }

  // Until nothing is on its way to the daemon: no request of the kernel's
  // unanswered (a failed read's other requests, the kernel's read-ahead,
  // may still be retrying as it returns), the recall queue idle, and its
  // counters the same on both sides of that.
  void settle() {
    std::string stats, seen;
    ASSERT_TRUE(poll_until(
        [&] {
          const std::string before = read_file(mnt() + "/.mixtape/stats");
          const std::string status = read_file(mnt() + "/.mixtape/status");
          // Staged files become durable (cache_files) in the background.
          const bool idle = control_.waiting(mnt()) == 0 &&
                            status.find("queue: 0 files waiting") != std::string::npos &&
                            stat_in(before, "cache_persisting") == 0 &&
                            stat_in(before, "recalls") == stat_in(before, "recalls_staged") +
                                                              stat_in(before, "recalls_failed");
          stats = read_file(mnt() + "/.mixtape/stats");
          seen = status;
          return idle && stats == before;
        },
        std::chrono::seconds(300)))
        << "the mount never settled:\n"
        << stats << seen;
  }
  static std::uint64_t stat_in(const std::string& stats, const std::string& name) {
    std::smatch m;
    if (!std::regex_search(stats, m, std::regex("\"" + name + "\": ([0-9]+)")))
      throw Error("no " + name + " in " + stats);
    return std::stoull(m[1]);
  }

  Fixture f_;
  LiveMount mount_{f_.file("mnt")};
  testing::FuseControl control_{f_.file("fusectl")};
};

// Ten files of one archive, each holding age chunks of its own (so damage
// in one is that file's alone).
std::string file_in_dir(const Fixture& f, int i) {
  return f.src() + "/dir/a" + std::to_string(i);
}
constexpr std::size_t kFileSize = 300'000;

// Invariant: a file whose recall read a tape and failed (a damaged copy) is
// not recalled again by the read-ahead of its neighbours' opens; an open of
// the file itself still retries; .mixtape/status names it once, then the
// cause with its tape and block.
TEST_F(MountOfflineTest, ReadAheadPassesOverAFileWhoseRecallFailed) {
  for (int i = 0; i < 10; ++i) write_file(file_in_dir(f_, i), random_text(kFileSize, 40 + i));
  f_.init(1);
  f_.backup("64M");
  const std::string bad = file_in_dir(f_, 5);
  auto replicas = f_.replicas(bad);
  ASSERT_EQ(replicas.size(), 1u);
  f_.flip(replicas[0], replicas[0].copy.data_offset + kFileSize / 2);
  mount();

  // Opened first, a5 fails; its read-ahead stages a6..a9.
  std::string data;
  EXPECT_EQ(read_whole(latest(bad), data), EIO);
  settle();
  const std::uint64_t failed = stat("recalls_failed");
  const std::uint64_t recalls = stat("recalls");
  EXPECT_GE(failed, 1u);

  // Backwards, so that each open is of a file not staged yet, and its
  // read-ahead would queue a5 again.
  for (int i = 4; i >= 0; --i) {
    ASSERT_EQ(read_whole(latest(file_in_dir(f_, i)), data), 0) << i;
    EXPECT_TRUE(data == random_text(kFileSize, 40 + i)) << i;
  }
  settle();
  EXPECT_EQ(stat("recalls_failed"), failed) << "read-ahead recalled the failed file again";
  EXPECT_EQ(stat("recalls"), recalls + 5) << "a recall per open, and none besides";
  for (int i = 6; i < 10; ++i) {
    ASSERT_EQ(read_whole(latest(file_in_dir(f_, i)), data), 0) << i;
    EXPECT_TRUE(data == random_text(kFileSize, 40 + i)) << i;
  }

  // Opened itself again, it is tried again (and fails again: the copy is
  // bad). The reader can see the failure a moment before the queue has
  // counted it (the drive worker aborts the staging, which wakes the
  // reader, then takes the queue's lock to record the failure).
  const std::uint64_t records = stat("records_read");
  EXPECT_EQ(read_whole(latest(bad), data), EIO);
  settle();
  EXPECT_GT(stat("recalls_failed"), failed);
  EXPECT_GT(stat("records_read"), records);

  const std::string status = read_file(mnt() + "/.mixtape/status");
  const auto at = status.find("failed: " + bad + ": ");
  ASSERT_NE(at, std::string::npos) << status;
  const std::string line = status.substr(at, status.find('\n', at) - at);
  EXPECT_EQ(line.find(bad), line.rfind(bad)) << "the path is said twice: " << line;
  EXPECT_NE(line.find("tape L00001"), std::string::npos) << line;
  EXPECT_NE(line.find("block"), std::string::npos) << line;
}

// Invariant: opening a file queues the files after it in its directory that
// lie further along the same tape, in its archive and in later ones, so
// that `cp -r` of a directory of large files (an archive each) finds the
// next file staged instead of waiting for the drive: each file recalled
// once, and nothing else.
TEST_F(MountOfflineTest, ReadAheadGoesOnIntoLaterArchivesOfTheTape) {
  for (int i = 0; i < 10; ++i) write_file(file_in_dir(f_, i), random_text(kFileSize, 40 + i));
  write_file(f_.src() + "/other/b0", random_text(kFileSize, 60));
  f_.init(1);
  f_.backup("1M");
  std::set<std::int64_t> archives;
  for (int i = 0; i < 10; ++i) archives.insert(f_.replicas(file_in_dir(f_, i))[0].archive.id);
  ASSERT_GE(archives.size(), 3u) << "the directory should span several archives";
  mount();

  std::string data;
  ASSERT_EQ(read_whole(latest(file_in_dir(f_, 2)), data), 0);
  EXPECT_TRUE(data == random_text(kFileSize, 42));
  settle();
  // a2 and a3..a9 (a0 and a1 come before it in the directory; other/ is
  // another directory).
  EXPECT_EQ(stat("recalls"), 8u);
  EXPECT_EQ(stat("recalls_staged"), 8u);
  EXPECT_EQ(stat("cache_files"), 8u);
  const std::uint64_t records = stat("records_read");
  for (int i = 3; i < 10; ++i) {
    ASSERT_EQ(read_whole(latest(file_in_dir(f_, i)), data), 0) << i;
    EXPECT_TRUE(data == random_text(kFileSize, 40 + i)) << i;
  }
  EXPECT_EQ(stat("records_read"), records) << "a file read ahead was read from tape again";
  EXPECT_EQ(stat("recalls"), 8u);
}

// Invariant: a read waiting for a tape that is not in the library goes on
// once the tape is put in, well before its -o wait deadline: the file
// reads whole. (The deadline is far off, so only a read that never
// noticed the tape reaches it; a watchdog ends that case sooner.)
TEST_F(MountOfflineTest, ATapePutInDuringTheWaitIsReadBeforeTheDeadline) {
  f_.make_tree(4);
  f_.init(1);
  f_.backup();
  const std::string drawer = f_.file("drawer");
  stdfs::rename(f_.library(), drawer);  // the tape leaves the library
  stdfs::create_directories(f_.library());
  mount("wait=3600");
  const std::string big = latest(f_.src() + "/big.bin");
  ASSERT_EQ(xattr(big, "user.mixtape.state"), "offline (insert tape L00001)");

  int error = -1;
  std::string data;
  std::thread reader([&] { error = read_whole(big, data); });
  {
    testing::Watchdog watchdog("the read waiting for tape L00001", std::chrono::seconds(300),
                               mount_.daemon());
    // The read waits for the tape: the mount says so.
    EXPECT_TRUE(poll_until(
        [&] {
          return read_file(mnt() + "/.mixtape/status")
                     .find("waiting: " + f_.src() + "/big.bin: insert tape L00001") !=
                 std::string::npos;
        },
        std::chrono::seconds(300)))
        << read_file(mnt() + "/.mixtape/status");
    // Index first, then the image: the tape appears whole, in one rename.
    for (const auto& entry : stdfs::directory_iterator(drawer))
      if (entry.path().extension() != ".tap")
        stdfs::rename(entry.path(), f_.library() + "/" + entry.path().filename().string());
    stdfs::rename(drawer + "/L00001.tap", f_.image("L00001"));
    reader.join();
  }
  EXPECT_EQ(error, 0) << "the read gave up although the tape came long before its deadline";
  EXPECT_TRUE(data == random_text(3'000'000, 1));
}

}  // namespace
}  // namespace mixtape::fs
