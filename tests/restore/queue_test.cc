// RecallQueue: which copy, in which order, on which drive. Tapes are made by
// the real writer (the built binary); the queue runs in-process so the
// tests can watch the order in which sinks are begun.
#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "engine/crypto/crypto.h"
#include "engine/restore/restore.h"
#include "engine/tape/libraries.h"
#include "tests/restore/test_util.h"

namespace mixtape::restore::testing {
namespace {

namespace fs = std::filesystem;
using Position = std::pair<std::uint64_t, std::uint64_t>;  // (archive first block, header offset)

// Shared by every sink of a test: the order sinks were begun in.
struct Journal {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<std::string> begun;
  std::set<std::thread::id> threads;
  void add(const std::string& path) {
    std::lock_guard lock(mutex);
    begun.push_back(path);
    threads.insert(std::this_thread::get_id());
    changed.notify_all();
  }
};

class RecordingSink final : public RecallSink {
 public:
  RecordingSink(Journal& journal, std::string path, std::function<void()> on_begin = {})
      : journal_(journal), path_(std::move(path)), on_begin_(std::move(on_begin)) {}
  void begin(const catalog::VersionRow&) override {
    journal_.add(path_);
    data_.clear();
    if (on_begin_) on_begin_();
  }
  void write(ByteSpan data) override { data_.append(as_chars(data)); }
  void commit() override { committed_ = true; }
  void abort() noexcept override { ++aborts_; }
  const std::string& data() const { return data_; }
  bool committed() const { return committed_; }
  int aborts() const { return aborts_; }

 private:
  Journal& journal_;
  std::string path_;
  std::function<void()> on_begin_;
  std::string data_;
  bool committed_ = false;
  int aborts_ = 0;
};

// Opens when told; waits at most 10 s so a broken test cannot hang.
class Gate {
 public:
  void open() {
    std::lock_guard lock(mutex_);
    open_ = true;
    changed_.notify_all();
  }
  void wait() {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, std::chrono::seconds(10), [&] { return open_; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  bool open_ = false;
};

class QueueTest : public ::testing::Test {
 protected:
  void make(int copies, int extra_files = 60) {
    f_.make_tree();
    for (int i = 0; i < extra_files; ++i)
      write_file(f_.src() + "/q/h" + std::to_string(i),
                 random_text(3000 + i * 977 % 30000, 900 + i));
    f_.init(copies);
    f_.backup();
    keys_.identities = crypto::load_identities(f_.identity());
  }
  std::vector<std::string> files() {
    std::vector<std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(f_.src()))
      if (e.is_regular_file() && !e.is_symlink() && fs::file_size(e.path()) > 0)
        out.push_back(e.path().string());
    std::sort(out.begin(), out.end());
    return out;
  }
  Position position(const std::string& path, const std::string& serial = "L00001") {
    for (const auto& r : f_.replicas(path))
      if (r.tape.serial == serial) return {r.archive.first_block, r.copy.header_offset};
    throw Error(path + " has no copy on " + serial);
  }
  // Files sorted by their position on L00001.
  std::vector<std::string> in_tape_order() {
    auto all = files();
    std::sort(all.begin(), all.end(),
              [&](const auto& a, const auto& b) { return position(a) < position(b); });
    return all;
  }
  RecallHandle request(RecallQueue& queue, const std::string& path,
                       std::function<void()> on_begin = {}) {
    auto sink = std::make_shared<RecordingSink>(journal_, path, std::move(on_begin));
    sinks_[path] = sink;
    return queue.request({f_.version(path).id, 0, sink, std::nullopt, {}, {}});
  }
  void wait_until_begun(std::size_t count) {
    std::unique_lock lock(journal_.mutex);
    journal_.changed.wait_for(lock, std::chrono::seconds(10),
                              [&] { return journal_.begun.size() >= count; });
  }

  Fixture f_;
  crypto::AgeDecryptKeys keys_;
  Journal journal_;
  std::map<std::string, std::shared_ptr<RecordingSink>> sinks_;
};

TEST_F(QueueTest, ABurstIsServedInTapeOrderInOnePass) {
  make(1);
  auto ordered = in_tape_order();
  tape::ImageLibrary library(f_.library());
  RecallQueue queue(f_.catalog(), library, keys_, nullptr);
  Gate gate;
  // The first file on tape holds the drive while the burst arrives.
  std::vector<RecallHandle> handles{request(queue, ordered[0], [&] { gate.wait(); })};
  wait_until_begun(1);
  auto shuffled = std::vector<std::string>(ordered.begin() + 1, ordered.end());
  std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937(3));
  for (const auto& p : shuffled) handles.push_back(request(queue, p));
  gate.open();
  for (auto& h : handles) EXPECT_EQ(h.wait().state, RecallState::kStaged) << h.status().error;
  EXPECT_EQ(journal_.begun, ordered);
  EXPECT_EQ(queue.stats().passes, 1u);
  EXPECT_LE(library.stats().locates, 1u);
  for (const auto& p : ordered) EXPECT_EQ(sinks_[p]->data(), read_file(p)) << p;
}

TEST_F(QueueTest, RequestsAheadOfTheHeadJoinThePassTheOthersWaitForTheNext) {
  make(1);
  auto ordered = in_tape_order();
  const std::size_t middle = ordered.size() / 2;
  tape::ImageLibrary library(f_.library());
  RecallQueue queue(f_.catalog(), library, keys_, nullptr);
  Gate gate;
  std::vector<RecallHandle> handles{request(queue, ordered[middle], [&] { gate.wait(); })};
  wait_until_begun(1);
  for (std::size_t i = 0; i < ordered.size(); ++i)
    if (i != middle) handles.push_back(request(queue, ordered[i]));
  gate.open();
  for (auto& h : handles) EXPECT_EQ(h.wait().state, RecallState::kStaged) << h.status().error;
  std::vector<std::string> expected{ordered[middle]};
  expected.insert(expected.end(), ordered.begin() + static_cast<std::ptrdiff_t>(middle) + 1,
                  ordered.end());
  expected.insert(expected.end(), ordered.begin(),
                  ordered.begin() + static_cast<std::ptrdiff_t>(middle));
  EXPECT_EQ(journal_.begun, expected);
  EXPECT_EQ(queue.stats().passes, 2u);
}

TEST_F(QueueTest, PrefersTheTapeAlreadyInADrive) {
  make(2, 0);
  tape::ImageLibrary library(f_.library());
  library.load("L00002");
  RecallQueue queue(f_.catalog(), library, keys_, nullptr);
  auto handle = request(queue, f_.src() + "/big.bin");
  RecallStatus status = handle.wait();
  ASSERT_EQ(status.state, RecallState::kStaged) << status.error;
  EXPECT_EQ(status.tape, "L00002");
  EXPECT_EQ(library.stats().loads, 1u) << "no tape swap";
}

TEST_F(QueueTest, AFailedCopyIsRetriedOnTheNextTape) {
  make(2, 0);
  const std::string big = f_.src() + "/big.bin";
  for (const auto& r : f_.replicas(big))
    if (r.tape.serial == "L00001") f_.flip(r, r.copy.data_offset + 1'000'000);
  tape::ImageLibrary library(f_.library());
  RecallQueue queue(f_.catalog(), library, keys_, nullptr);
  auto handle = request(queue, big);
  RecallStatus status = handle.wait();
  ASSERT_EQ(status.state, RecallState::kStaged) << status.error;
  EXPECT_EQ(status.tape, "L00002");
  EXPECT_EQ(queue.stats().copy_failures, 1u);
  EXPECT_EQ(sinks_[big]->aborts(), 1);
  EXPECT_EQ(sinks_[big]->data(), read_file(big));
}

TEST_F(QueueTest, WhenNoCopyIsLeftTheErrorNamesEveryTape) {
  make(2, 0);
  const std::string big = f_.src() + "/big.bin";
  for (const auto& r : f_.replicas(big)) f_.flip(r, r.copy.data_offset + 1'000'000);
  tape::ImageLibrary library(f_.library());
  RecallQueue queue(f_.catalog(), library, keys_, nullptr);
  RecallStatus status = request(queue, big).wait();
  ASSERT_EQ(status.state, RecallState::kFailed);
  EXPECT_EQ(status.error.rfind(big + ": ", 0), 0u) << status.error;
  EXPECT_NE(status.error.find("tape L00001"), std::string::npos) << status.error;
  EXPECT_NE(status.error.find("tape L00002"), std::string::npos) << status.error;
  EXPECT_FALSE(sinks_[big]->committed());
}

TEST_F(QueueTest, SeveralDrivesRecallInParallel) {
  make(2);
  tape::ImageLibrary library(f_.library(), 2);
  RecallQueue queue(f_.catalog(), library, keys_, nullptr);
  // The first file begun waits (up to 10 s) until a second drive begins
  // another: only two drives working at once can get past it.
  std::mutex mutex;
  std::condition_variable changed;
  int begun = 0;
  auto rendezvous = [&] {
    std::unique_lock lock(mutex);
    ++begun;
    changed.notify_all();
    changed.wait_for(lock, std::chrono::seconds(10), [&] { return begun >= 2; });
  };
  std::vector<RecallHandle> handles;
  for (const auto& p : files()) handles.push_back(request(queue, p, rendezvous));
  for (auto& h : handles) EXPECT_EQ(h.wait().state, RecallState::kStaged) << h.status().error;
  EXPECT_EQ(journal_.threads.size(), 2u);
  EXPECT_GT(library.drive(0).stats().records_read, 0u);
  EXPECT_GT(library.drive(1).stats().records_read, 0u);
}

TEST_F(QueueTest, StagesIntoTheCacheAndMergesRequestsForTheSameContent) {
  make(1, 0);
  tape::ImageLibrary library(f_.library());
  StageCacheOptions options;
  options.directory = f_.file("cache");
  StageCache cache(options);
  RecallQueue queue(f_.catalog(), library, keys_, &cache);
  const std::string big = f_.src() + "/big.bin";
  auto version = f_.version(big);
  auto reader = cache.open(version.hash, version.size);
  RecallHandle first = queue.request(version.id);
  RecallHandle second = queue.request(version.id);
  // The reader is woken as bytes land, long before the recall finishes.
  ASSERT_EQ(reader.wait_for(0, 1000, std::chrono::steady_clock::now() + std::chrono::seconds(30)),
            WaitStatus::kReady);
  EXPECT_EQ(first.wait().state, RecallState::kStaged) << first.status().error;
  EXPECT_EQ(second.wait().state, RecallState::kStaged);
  EXPECT_EQ(queue.stats().requests, 1u);
  EXPECT_EQ(cache.stats().staged, 1u);
  ASSERT_EQ(reader.wait_for(0, version.size, std::chrono::steady_clock::now()), WaitStatus::kReady);
  std::string data(version.size, '\0');
  reader.read(0, MutableByteSpan(reinterpret_cast<std::uint8_t*>(data.data()), data.size()));
  EXPECT_EQ(data, read_file(big));
  EXPECT_EQ(queue.request(version.id).status().state, RecallState::kStaged) << "a cache hit";
}

TEST_F(QueueTest, AWrongIdentityFailsClearly) {
  make(1, 0);
  tape::ImageLibrary library(f_.library());
  crypto::AgeDecryptKeys wrong;
  wrong.identities.push_back(crypto::X25519Identity::generate());
  RecallQueue queue(f_.catalog(), library, wrong, nullptr);
  RecallStatus status = request(queue, f_.src() + "/big.bin").wait();
  ASSERT_EQ(status.state, RecallState::kFailed);
  EXPECT_NE(status.error.find("wrong --identity"), std::string::npos) << status.error;
}

TEST_F(QueueTest, ATapeOutsideTheLibraryIsNotMadeUp) {
  make(1, 0);
  fs::remove(f_.image("L00001"));
  tape::ImageLibrary library(f_.library());
  RecallQueue queue(f_.catalog(), library, keys_, nullptr);
  RecallStatus status = request(queue, f_.src() + "/big.bin").wait();
  ASSERT_EQ(status.state, RecallState::kFailed);
  EXPECT_NE(status.error.find("L00001 is not in the library"), std::string::npos) << status.error;
  EXPECT_FALSE(fs::exists(f_.image("L00001"))) << "no blank tape was made";
}

TEST_F(QueueTest, ARequestCarriesWhatItsCallerResolved) {
  // The mount's tree and a restore's plan have read the version and its
  // path already: the queue takes them as given (its messages name the
  // path given) and reads only the copies; a row of another version is
  // refused.
  make(1, 0);
  fs::remove(f_.image("L00001"));
  tape::ImageLibrary library(f_.library());
  RecallQueue queue(f_.catalog(), library, keys_, nullptr);
  const catalog::VersionRow version = f_.version(f_.src() + "/big.bin");
  RecallRequest carried;
  carried.version_id = version.id;
  carried.version = version;
  carried.path = "/as/the/caller/named/it";
  carried.sink = std::make_shared<RecordingSink>(journal_, carried.path, std::function<void()>{});
  RecallStatus status = queue.request(carried).wait();
  ASSERT_EQ(status.state, RecallState::kFailed);
  EXPECT_EQ(status.error.rfind("/as/the/caller/named/it: ", 0), 0u) << status.error;

  RecallRequest mismatched = carried;
  mismatched.version_id = version.id + 1000;
  EXPECT_THROW_MESSAGE(queue.request(mismatched), RestoreError, "no version");
}

TEST_F(QueueTest, AnEmptyFileNeedsNoTape) {
  make(1, 0);
  tape::ImageLibrary library(f_.library());
  RecallQueue queue(f_.catalog(), library, keys_, nullptr);
  RecallStatus status = request(queue, f_.src() + "/empty.txt").wait();
  EXPECT_EQ(status.state, RecallState::kStaged) << status.error;
  EXPECT_EQ(library.stats().loads, 0u);
}

}  // namespace
}  // namespace mixtape::restore::testing
