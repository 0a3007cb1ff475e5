// StageCache: content-addressed, bounded, LRU, crash-safe, and readers that
// wait for byte ranges but never see the last byte of an unverified file.
#include <gtest/gtest.h>

#include <cerrno>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>

#include "engine/crypto/crypto.h"
#include "engine/restore/restore.h"
#include "tests/restore/test_util.h"

namespace mixtape::restore::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

catalog::Hash hash_of(const std::string& data) {
  return crypto::blake2b256(as_bytes(data));
}

Clock::time_point soon(int ms = 50) {
  return Clock::now() + std::chrono::milliseconds(ms);
}

// Stages data, and waits until it is durable under objects/.
void stage(StageCache& cache, const std::string& data) {
  auto sink = cache.stage(hash_of(data), data.size());
  sink->begin({});
  sink->write(as_bytes(data));
  sink->commit();
  cache.flush();
}

std::string read_all(StageCache::Reader& reader) {
  std::string out(reader.size(), '\0');
  std::size_t n =
      reader.read(0, MutableByteSpan(reinterpret_cast<std::uint8_t*>(out.data()), out.size()));
  out.resize(n);
  return out;
}

class StageCacheTest : public ::testing::Test {
 protected:
  StageCacheOptions options(std::uint64_t capacity = 1 << 20) {
    StageCacheOptions o;
    o.directory = tmp_ / "cache";
    o.capacity = capacity;
    return o;
  }
  std::size_t files_in(const std::string& sub) {
    std::size_t n = 0;
    for (const auto& e : fs::recursive_directory_iterator(tmp_ / ("cache/" + sub)))
      n += e.is_regular_file();
    return n;
  }
  TempDir tmp_;
};

TEST_F(StageCacheTest, StagesAndReadsByHash) {
  StageCache cache(options());
  const std::string data = random_text(100'000, 1);
  EXPECT_FALSE(cache.contains(hash_of(data)));
  stage(cache, data);
  EXPECT_TRUE(cache.contains(hash_of(data)));
  auto reader = cache.open(hash_of(data), data.size());
  ASSERT_EQ(reader.wait_for(0, data.size(), soon()), WaitStatus::kReady);
  EXPECT_EQ(read_all(reader), data);
  EXPECT_TRUE(fs::exists(tmp_ / ("cache/objects/" + to_hex(hash_of(data)).substr(0, 2) + "/" +
                                 to_hex(hash_of(data)))));
}

TEST_F(StageCacheTest, ReadersAreWokenAsBytesLandButTheLastByteWaitsForTheHash) {
  StageCache cache(options());
  const std::string data = random_text(200'000, 2);
  auto reader = cache.open(hash_of(data), data.size());
  EXPECT_EQ(reader.wait_for(0, 1000, soon()), WaitStatus::kTimedOut);  // nothing yet
  auto sink = cache.stage(hash_of(data), data.size());
  const pid_t waiter = test_support::this_thread_id();
  std::thread writer([&] {
    sink->begin({});
    // Written once the reader waits.
    test_support::poll_until([&] { return test_support::thread_asleep(waiter); });
    sink->write(as_bytes(data).first(100'000));
  });
  // Woken by the first write, not by the deadline.
  EXPECT_EQ(reader.wait_for(0, 50'000, Clock::now() + std::chrono::seconds(300)),
            WaitStatus::kReady);
  writer.join();
  std::string head(50'000, '\0');
  EXPECT_EQ(
      reader.read(0, MutableByteSpan(reinterpret_cast<std::uint8_t*>(head.data()), head.size())),
      head.size());
  EXPECT_EQ(head, data.substr(0, 50'000));
  sink->write(as_bytes(data).subspan(100'000));
  // Every byte landed, but the last one is released only after commit.
  EXPECT_EQ(reader.wait_for(0, data.size() - 1, soon()), WaitStatus::kReady);
  EXPECT_EQ(reader.wait_for(data.size() - 10, 10, soon()), WaitStatus::kTimedOut);
  sink->commit();
  EXPECT_EQ(reader.wait_for(data.size() - 10, 10, soon()), WaitStatus::kReady);
  EXPECT_EQ(read_all(reader), data);
}

TEST_F(StageCacheTest, TheLastByteIsReadableOnceTheHashMatchedNotOnlyOnceOnDisk) {
  // The sync before the rename is held until a reader has read the whole
  // file: neither a reader nor the commit waits for the disk.
  std::mutex mutex;
  std::condition_variable changed;
  bool read_whole = false;
  bool synced = false;
  StageCacheOptions o = options();
  o.sync = [&](int fd) {
    std::unique_lock lock(mutex);
    changed.wait_for(lock, std::chrono::seconds(10), [&] { return read_whole; });
    synced = true;
    return ::fdatasync(fd);
  };
  StageCache cache(o);
  const std::string data = random_text(300'000, 9);
  auto reader = cache.open(hash_of(data), data.size());
  auto sink = cache.stage(hash_of(data), data.size());
  sink->begin({});
  sink->write(as_bytes(data));
  sink->commit();
  EXPECT_TRUE(cache.contains(hash_of(data)));
  ASSERT_EQ(reader.wait_for(0, data.size(), soon()), WaitStatus::kReady);
  EXPECT_EQ(read_all(reader), data);
  {
    std::lock_guard lock(mutex);
    EXPECT_FALSE(synced) << "the reader or the commit waited for the sync";
    EXPECT_EQ(files_in("objects"), 0u) << "renamed into place before it was synced";
    read_whole = true;
  }
  changed.notify_all();
  cache.flush();
  EXPECT_TRUE(synced);
  EXPECT_TRUE(cache.contains(hash_of(data)));
  EXPECT_EQ(files_in("objects"), 1u);
  EXPECT_EQ(files_in("tmp"), 0u);
  EXPECT_EQ(read_all(reader), data);
}

TEST_F(StageCacheTest, FilesWaitingToBeMadeDurableAreEvictedOnceTheyAre) {
  // A full cache whose only candidates are still being synced waits for
  // them instead of refusing the next file.
  std::mutex mutex;
  std::condition_variable changed;
  bool go = false;
  StageCacheOptions o = options(3000);
  o.sync = [&](int fd) {
    std::unique_lock lock(mutex);
    changed.wait_for(lock, std::chrono::seconds(10), [&] { return go; });
    return ::fdatasync(fd);
  };
  StageCache cache(o);
  const std::string a = random_text(1500, 11), b = random_text(1500, 12), c = random_text(1500, 13);
  for (const auto* data : {&a, &b}) {
    auto sink = cache.stage(hash_of(*data), data->size());
    sink->begin({});
    sink->write(as_bytes(*data));
    sink->commit();
  }
  const pid_t stager = test_support::this_thread_id();
  std::thread release([&] {
    // Once the stager waits for a and b to be durable.
    test_support::poll_until([&] { return test_support::thread_asleep(stager); });
    std::lock_guard lock(mutex);
    go = true;
    changed.notify_all();
  });
  auto sink = cache.stage(hash_of(c), c.size());
  sink->begin({});  // waits for a and b to be durable, then evicts a
  release.join();
  sink->write(as_bytes(c));
  sink->commit();
  cache.flush();
  EXPECT_FALSE(cache.contains(hash_of(a)));
  EXPECT_TRUE(cache.contains(hash_of(b)));
  EXPECT_TRUE(cache.contains(hash_of(c)));
  EXPECT_EQ(cache.stats().evicted, 1u);
  EXPECT_EQ(files_in("objects"), 2u);
}

TEST_F(StageCacheTest, AFileThatCannotBeMadeDurableFailsItsReaders) {
  StageCacheOptions o = options();
  o.sync = [](int) {
    errno = EIO;
    return -1;
  };
  StageCache cache(o);
  const std::string data = random_text(50'000, 10);
  auto reader = cache.open(hash_of(data), data.size());
  auto sink = cache.stage(hash_of(data), data.size());
  sink->begin({});
  sink->write(as_bytes(data));
  ASSERT_EQ(reader.wait_for(0, 1000, soon()), WaitStatus::kReady);
  sink->commit();
  cache.flush();
  EXPECT_EQ(reader.wait_for(0, 1000, soon()), WaitStatus::kFailed);
  EXPECT_NE(reader.error().find("cannot sync"), std::string::npos) << reader.error();
  EXPECT_FALSE(cache.contains(hash_of(data)));
  EXPECT_EQ(files_in("objects"), 0u);
  EXPECT_EQ(files_in("tmp"), 0u);
  EXPECT_EQ(cache.stats().failed, 1u);
}

TEST_F(StageCacheTest, AReaderThatSawBytesOfABadCopyFails) {
  StageCache cache(options());
  const std::string data = random_text(100'000, 3);
  auto sink = cache.stage(hash_of(data), data.size());
  sink->begin({});
  sink->write(as_bytes(data).first(10'000));
  auto early = cache.open(hash_of(data), data.size());
  ASSERT_EQ(early.wait_for(0, 5'000, soon()), WaitStatus::kReady);
  sink->abort();  // the copy failed its hash check; another one follows
  EXPECT_EQ(early.wait_for(0, 5'000, soon()), WaitStatus::kFailed);
  EXPECT_NE(early.error().find("reopen"), std::string::npos) << early.error();
  auto late = cache.open(hash_of(data), data.size());
  sink->begin({});
  sink->write(as_bytes(data));
  sink->commit();
  ASSERT_EQ(late.wait_for(0, data.size(), soon()), WaitStatus::kReady);
  EXPECT_EQ(read_all(late), data);
  cache.flush();
  EXPECT_EQ(files_in("tmp"), 0u);
}

TEST_F(StageCacheTest, AFailedRecallWakesReadersWithItsError) {
  StageCache cache(options());
  const std::string data = random_text(1000, 4);
  auto reader = cache.open(hash_of(data), data.size());
  auto sink = cache.stage(hash_of(data), data.size());
  const pid_t waiter = test_support::this_thread_id();
  std::thread failer([&] {
    test_support::poll_until([&] { return test_support::thread_asleep(waiter); });
    sink->fail("/x/y: no copy could be read");
  });
  EXPECT_EQ(reader.wait_for(0, 10, Clock::now() + std::chrono::seconds(300)), WaitStatus::kFailed);
  failer.join();
  EXPECT_EQ(reader.error(), "/x/y: no copy could be read");
  EXPECT_FALSE(cache.contains(hash_of(data)));
}

TEST_F(StageCacheTest, SurvivesRestartsAndDropsHalfWrittenFiles) {
  const std::string data = random_text(5000, 5);
  const std::string half = random_text(7000, 6);
  {
    StageCache cache(options());
    stage(cache, data);
    auto sink = cache.stage(hash_of(half), half.size());
    sink->begin({});
    sink->write(as_bytes(half).first(3000));
    EXPECT_EQ(files_in("tmp"), 1u);
    // A crash: simulate by leaving a temporary file behind.
    fs::path partial = fs::directory_iterator(tmp_ / "cache/tmp")->path();
    fs::copy_file(partial, partial.string() + ".crash");
  }
  StageCache cache(options());
  EXPECT_TRUE(cache.contains(hash_of(data)));
  EXPECT_FALSE(cache.contains(hash_of(half)));
  EXPECT_EQ(files_in("tmp"), 0u);
  EXPECT_EQ(files_in("objects"), 1u);
  EXPECT_EQ(cache.stats().used_bytes, data.size());
}

TEST_F(StageCacheTest, OneProcessAtATime) {
  StageCache cache(options());
  EXPECT_THROW(StageCache second(options()), RestoreError);
}

TEST_F(StageCacheTest, EvictsTheLeastRecentlyUsedUnpinnedFile) {
  StageCache cache(options(3000));
  const std::string a = random_text(1000, 7), b = random_text(1000, 8), c = random_text(1000, 9),
                    d = random_text(1000, 10);
  stage(cache, a);
  stage(cache, b);
  stage(cache, c);
  { auto touch = cache.open(hash_of(a), a.size()); }  // a is now more recent than b
  stage(cache, d);
  EXPECT_TRUE(cache.contains(hash_of(a)));
  EXPECT_FALSE(cache.contains(hash_of(b)));
  EXPECT_TRUE(cache.contains(hash_of(c)));
  EXPECT_TRUE(cache.contains(hash_of(d)));
  EXPECT_EQ(cache.stats().evicted, 1u);
  EXPECT_LE(cache.stats().used_bytes, 3000u);
}

TEST_F(StageCacheTest, OpenFilesAreNeverEvictedAndAFullCacheIsAClearError) {
  StageCache cache(options(2000));
  const std::string a = random_text(1000, 11), b = random_text(1000, 12), c = random_text(1000, 13);
  stage(cache, a);
  stage(cache, b);
  auto ra = cache.open(hash_of(a), a.size());
  auto rb = cache.open(hash_of(b), b.size());
  auto sink = cache.stage(hash_of(c), c.size());
  try {
    sink->begin({});
    FAIL() << "expected the cache to be full";
  } catch (const RestoreError& e) {
    EXPECT_NE(std::string(e.what()).find("is full"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(cache.contains(hash_of(a)));
  EXPECT_TRUE(cache.contains(hash_of(b)));
  const std::string huge = random_text(5000, 14);
  EXPECT_THROW(cache.stage(hash_of(huge), huge.size())->begin({}), RestoreError);
}

// begin() runs on the thread that reads the tape: it only reserves the
// room. The temporary file is created by the first write (the writing
// thread's), or at commit for an empty file; readers waiting before that
// see no bytes and no end, and an abort before any write leaves nothing.
TEST_F(StageCacheTest, TheFileIsCreatedByTheFirstWriteNotByBegin) {
  StageCache cache(options());
  const std::string data = random_text(10'000, 16);
  auto sink = cache.stage(hash_of(data), data.size());
  sink->begin({});
  EXPECT_EQ(files_in("tmp"), 0u);
  EXPECT_EQ(cache.stats().used_bytes, data.size()) << "begin reserves the room";
  auto reader = cache.open(hash_of(data), data.size());
  EXPECT_EQ(reader.wait_for(0, 1, soon()), WaitStatus::kTimedOut);
  EXPECT_EQ(reader.extent(0, 100).length, 0u);
  sink->write(as_bytes(data).first(4000));
  EXPECT_EQ(files_in("tmp"), 1u);
  ASSERT_EQ(reader.wait_for(0, 4000, soon()), WaitStatus::kReady);
  sink->write(as_bytes(data).subspan(4000));
  sink->commit();
  EXPECT_EQ(read_all(reader), data);
  cache.flush();
  EXPECT_EQ(files_in("objects"), 1u);

  // Aborted before its first write: no file was ever made.
  const std::string other = random_text(5'000, 17);
  auto aborted = cache.stage(hash_of(other), other.size());
  aborted->begin({});
  aborted->abort();
  EXPECT_EQ(files_in("tmp"), 0u);
  EXPECT_EQ(cache.stats().used_bytes, data.size());

  // An empty file is created at commit.
  const std::string empty;
  auto none = cache.stage(hash_of(empty), 0);
  none->begin({});
  none->commit();
  cache.flush();
  EXPECT_TRUE(cache.contains(hash_of(empty)));
  EXPECT_EQ(files_in("objects"), 2u);
}

TEST_F(StageCacheTest, AFullDiskIsAClearErrorAndLeavesNothingThatLooksComplete) {
  StageCacheOptions o = options();
  std::uint64_t written = 0;
  o.pwrite = [&](int fd, const void* data, std::size_t size, std::int64_t offset) -> long {
    if (written + size > 4096) {
      errno = ENOSPC;
      return -1;
    }
    written += size;
    return static_cast<long>(::pwrite(fd, data, size, offset));
  };
  StageCache cache(o);
  const std::string data = random_text(10'000, 15);
  auto sink = cache.stage(hash_of(data), data.size());
  sink->begin({});
  sink->write(as_bytes(data).first(4000));
  try {
    sink->write(as_bytes(data).subspan(4000));
    FAIL() << "expected ENOSPC";
  } catch (const RestoreError& e) {
    EXPECT_NE(std::string(e.what()).find("no space left"), std::string::npos) << e.what();
  }
  sink->abort();
  sink.reset();
  EXPECT_FALSE(cache.contains(hash_of(data)));
  EXPECT_EQ(files_in("tmp"), 0u);
  EXPECT_EQ(files_in("objects"), 0u);
  EXPECT_EQ(cache.stats().used_bytes, 0u);
}

}  // namespace
}  // namespace mixtape::restore::testing
