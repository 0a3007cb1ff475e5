// Recalls on a library with two drives: both drives work at once, every
// file comes back with the right bytes, and no tape is ever loaded into a
// second drive while it sits in the first. Tapes are written by the built
// binary with two drives (one pass, two copies), the queue runs in-process.
#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <numeric>
#include <set>
#include <thread>

#include "engine/crypto/crypto.h"
#include "engine/restore/restore.h"
#include "engine/tape/libraries.h"
#include "tests/restore/test_util.h"

namespace mixtape::restore::testing {
namespace {

namespace fs = std::filesystem;

// Counts the drives reading at once (a drive's worker begins the next
// file's sink while the previous one is still being hashed and written, so
// a drive counts once however many of its files are in flight), holds
// every read until all requests are queued, and keeps the drives in step
// (neither begins its n+2th file before the other began its n+1th, for
// half a second at most),
// so that what the drives do depends neither on how fast the test queues
// nor on how the machine schedules them.
struct Concurrency {
  std::mutex mutex;
  std::condition_variable changed;
  std::map<std::thread::id, int> reading;  // files in flight, by the drive that began them
  int most = 0;                            // drives reading at once, at most
  bool all_queued = false;
  std::map<std::thread::id, int> begun;
  void queued() {
    std::lock_guard lock(mutex);
    all_queued = true;
    changed.notify_all();
  }
};

// Collects a file's bytes and which thread (drive worker) read it.

class CollectingSink final : public RecallSink {
 public:
  CollectingSink(Concurrency& concurrency, bool wait_for_company)
      : concurrency_(concurrency), wait_for_company_(wait_for_company) {}
  void begin(const catalog::VersionRow&) override {
    data_.clear();
    thread_ = std::this_thread::get_id();
    std::unique_lock lock(concurrency_.mutex);
    ++concurrency_.reading[thread_];
    concurrency_.most = std::max(concurrency_.most, static_cast<int>(concurrency_.reading.size()));
    concurrency_.changed.notify_all();
    // The first files wait (10 s at most) until another drive reads too, so
    // only two drives working at once get past them.
    if (wait_for_company_)
      concurrency_.changed.wait_for(lock, std::chrono::seconds(10),
                                    [&] { return concurrency_.most >= 2; });
    concurrency_.changed.wait_for(lock, std::chrono::seconds(10),
                                  [&] { return concurrency_.all_queued; });
    const int mine = ++concurrency_.begun[thread_];
    concurrency_.changed.notify_all();
    concurrency_.changed.wait_for(lock, std::chrono::milliseconds(500), [&] {
      for (const auto& [id, n] : concurrency_.begun)
        if (id != thread_ && n < mine - 1) return false;
      return true;
    });
  }
  void write(ByteSpan data) override { data_.append(as_chars(data)); }
  void commit() override { done(); }
  void abort() noexcept override { done(); }
  const std::string& data() const { return data_; }
  std::thread::id thread() const { return thread_; }

 private:
  void done() {
    std::lock_guard lock(concurrency_.mutex);
    if (--concurrency_.reading[thread_] == 0) concurrency_.reading.erase(thread_);
  }
  Concurrency& concurrency_;
  bool wait_for_company_;
  std::string data_;
  std::thread::id thread_;
};

class MultiDriveRecallTest : public ::testing::Test {
 protected:
  // Files of 20-160 KB, written with `drives` drives and `copies` copies.
  void make(int copies, const std::string& capacity = "64M") {
    for (int i = 0; i < 80; ++i)
      write_file(f_.src() + "/d" + std::to_string(i % 5) + "/f" + std::to_string(i),
                 random_text(20000 + (i * 7919) % 140000, 500 + i));
    f_.init(copies);
    CommandResult r =
        f_.mixtape("backup " + shell_quote(f_.src()) + " --library " + shell_quote(f_.library()) +
                   " --drives 2 --new-library --capacity " + capacity + " --archive-size 512K");
    ASSERT_EQ(r.status, 0) << r.err << r.out;
    keys_.identities = crypto::load_identities(f_.identity());
  }
  std::vector<std::string> files() {
    std::vector<std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(f_.src()))
      if (e.is_regular_file()) out.push_back(e.path().string());
    std::sort(out.begin(), out.end());
    return out;
  }
  // Requests every file; returns (path, sink, handle) once all are done.
  struct Recalled {
    std::string path;
    std::shared_ptr<CollectingSink> sink;
    RecallHandle handle;
  };
  std::vector<Recalled> recall_all(RecallQueue& queue, std::size_t waiting_first = 0) {
    std::vector<std::pair<std::string, catalog::Id>> versions;
    for (const auto& path : files()) versions.emplace_back(path, f_.version(path).id);
    std::vector<Recalled> out;
    for (const auto& [path, id] : versions) {
      auto sink = std::make_shared<CollectingSink>(concurrency_, out.size() < waiting_first);
      out.push_back({path, sink, queue.request({id, 0, sink, std::nullopt, {}, {}})});
    }
    concurrency_.queued();
    for (auto& r : out)
      EXPECT_EQ(r.handle.wait().state, RecallState::kStaged) << r.handle.status().error;
    return out;
  }
  // Every file recalled through a queue over `library`, the first alone
  // before the rest; the queue's counters, taken before it goes.
  RecallQueueStats recall_through_a_queue(tape::Library& library, std::vector<Recalled>& recalled) {
    RecallQueue queue(f_.catalog(), library, keys_, nullptr);
    recalled = recall_all(queue, 1);
    return queue.stats();
  }
  void expect_right_bytes(const std::vector<Recalled>& recalled) {
    for (const auto& r : recalled) EXPECT_EQ(r.sink->data(), read_file(r.path)) << r.path;
  }

  Fixture f_;
  crypto::AgeDecryptKeys keys_;
  Concurrency concurrency_;
};

TEST_F(MultiDriveRecallTest, TwoCopiesAreRecalledOnTwoDrivesAtOnceWithTheRightBytes) {
  make(2);
  tape::ImageLibrary library(f_.library(), 2);
  ASSERT_EQ(library.serials(), (std::vector<std::string>{"L00001", "L00002"}));
  std::vector<Recalled> recalled;
  // Every file is on both tapes: the first drive takes one tape, the
  // second the other (never the same one), from the middle of the shared
  // requests, so both serve a share.
  const RecallQueueStats stats = recall_through_a_queue(library, recalled);
  expect_right_bytes(recalled);
  EXPECT_EQ(concurrency_.most, 2);
  ASSERT_EQ(stats.staged_by_drive.size(), 2u);
  EXPECT_GT(stats.staged_by_drive[0], 0u);
  EXPECT_GT(stats.staged_by_drive[1], 0u);
  EXPECT_EQ(std::accumulate(stats.staged_by_drive.begin(), stats.staged_by_drive.end(), 0ull),
            recalled.size());
  EXPECT_EQ(stats.copy_failures, 0u);
  EXPECT_GT(library.drive(0).stats().records_read, 0u);
  EXPECT_GT(library.drive(1).stats().records_read, 0u);
  // They shared the work rather than racing through the same requests:
  // in tape order, each drive read a long run of neighbouring files (the
  // one that started second from the middle of what the first had ahead).
  // Drives in step racing from the front would alternate file by file.
  std::vector<std::pair<std::pair<std::uint64_t, std::uint64_t>, std::thread::id>> order;
  for (const auto& r : recalled)
    for (const auto& c : f_.replicas(r.path))
      if (c.tape.serial == "L00001")
        order.push_back({{c.archive.first_block, c.copy.header_offset}, r.sink->thread()});
  ASSERT_EQ(order.size(), recalled.size());
  std::sort(order.begin(), order.end());
  std::size_t switches = 0;
  for (std::size_t i = 1; i < order.size(); ++i) switches += order[i].second != order[i - 1].second;
  EXPECT_LE(switches, 8u);
  // One load per tape, none moved from one drive to the other.
  EXPECT_EQ(library.moves(), 0u);
  EXPECT_EQ(library.stats().loads, 2u);
  EXPECT_NE(library.loaded_serial(0), library.loaded_serial(1));
}

TEST_F(MultiDriveRecallTest, ATapeInOneDriveIsNeverLoadedIntoTheOther) {
  // One copy, tapes small enough that the files fill two: each file is on
  // one tape only, so both tapes must be read. A tape holds file 0 (this
  // binary and its source tarball, measured here: 7 MiB or so), the
  // writer's safety margin (eight 512 KiB records, 1 MiB, 1%, the catalog
  // twice: 5.6 MiB) and room for about 5 MiB of files, so the 7 MiB of
  // files need both tapes and never a third.
  // The program file 0 carries: the one the test environment names (a
  // sanitizer run names a Release build's, a 25th of its own).
  const char* program = std::getenv("MIXTAPE_ARCHAEOLOGY_BINARY");
  const std::uint64_t label =
      fs::file_size(program && *program ? program : MIXTAPE_BINARY_DIR "/cli/mixtape") +
      fs::file_size(MIXTAPE_BINARY_DIR "/engine/format/mixtape-" MIXTAPE_VERSION ".tar.gz");
  const std::uint64_t capacity = (label + (56 << 20) / 10 + (5 << 20)) >> 10 << 10;
  make(1, std::to_string(capacity >> 10) + "K");
  tape::ImageLibrary library(f_.library(), 2, {capacity, 0});
  ASSERT_EQ(library.serials(), (std::vector<std::string>{"L00001", "L00002"}));
  // L00001 sits in drive 1 when the queue starts.
  library.load("L00001", 1);
  std::vector<Recalled> recalled;
  const RecallQueueStats stats = recall_through_a_queue(library, recalled);
  expect_right_bytes(recalled);
  EXPECT_EQ(concurrency_.most, 2);
  EXPECT_EQ(library.moves(), 0u);
  EXPECT_EQ(library.loaded_serial(1), std::optional<std::string>("L00001"));
  // Drive 1 served L00001 where it was; drive 0 loaded L00002.
  EXPECT_EQ(library.drive(1).stats().loads, 1u);  // the load above
  EXPECT_EQ(library.drive(0).stats().loads, 1u);
  EXPECT_EQ(library.loaded_serial(0), std::optional<std::string>("L00002"));
  EXPECT_GT(stats.staged_by_drive[0], 0u);
  EXPECT_GT(stats.staged_by_drive[1], 0u);
}

TEST_F(MultiDriveRecallTest, RestoreWithTwoDrivesThroughTheCommand) {
  make(2);
  const std::string to = f_.file("restored");
  const std::string stats = f_.file("stats.json");
  CommandResult r =
      f_.mixtape("restore " + shell_quote(f_.src()) + " --to " + shell_quote(to) + " --library " +
                 shell_quote(f_.library()) + " --drives 2 --stats-json " + shell_quote(stats));
  ASSERT_EQ(r.status, 0) << r.err;
  for (const auto& path : files()) EXPECT_EQ(read_file(to + path), read_file(path)) << path;
  auto counters = read_stats(stats);
  EXPECT_GT(counters["drive0_records_read"] + counters["drive1_records_read"], 0);
  EXPECT_EQ(counters["records_read"],
            counters["drive0_records_read"] + counters["drive1_records_read"]);
  EXPECT_LE(counters["loads"], 2);
}

}  // namespace
}  // namespace mixtape::restore::testing
