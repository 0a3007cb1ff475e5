// scan() and hashing: what is marked dirty, what is read, and that a file is
// never recorded with a hash of content it did not have.
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <thread>

#include "engine/backup/hasher.h"
#include "tests/backup/backup_test_util.h"
#include "tests/support/test_support.h"

namespace mixtape::backup::testing {
namespace {

using catalog::Catalog;

// Bytes this process has read with read(2) and friends (page cache or not).
std::uint64_t bytes_read_by_process() {
  std::ifstream io("/proc/self/io");
  std::string key;
  std::uint64_t value = 0;
  while (io >> key >> value)
    if (key == "rchar:") return value;
  return 0;
}

// File timestamps come from a coarse clock (a few ms per tick): a change
// made in the same tick as the last one leaves them as they were. Waits until
// that clock has moved past the file's ctime, so the next change shows.
void let_timestamps_move_on(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) throw_errno("lstat " + path);
  for (;;) {
    struct timespec now {};
    ::clock_gettime(CLOCK_REALTIME_COARSE, &now);
    if (now.tv_sec > st.st_ctim.tv_sec ||
        (now.tv_sec == st.st_ctim.tv_sec && now.tv_nsec > st.st_ctim.tv_nsec))
      return;
    std::this_thread::yield();
  }
}

class ScanTest : public ::testing::Test {
 protected:
  ScanTest() {
    catalog::CatalogConfig config;
    config.encryption = catalog::Encryption::kNone;
    catalog_.emplace(Catalog::create(dir_.file("catalog.db"), config));
    std::filesystem::create_directories(root_);
  }

  // One scan run: scan, hash what is dirty, finish.
  std::pair<ScanReport, HashReport> scan_and_hash(const WalkOptions& options = {}) {
    auto run = catalog_->begin_run(catalog::RunKind::kScan, {root_});
    ScanReport scanned = scan(*catalog_, {root_}, options, run, progress_);
    HashReport hashed = hash_dirty(*catalog_, run, progress_);
    catalog_->finish_run(run);
    return {scanned, hashed};
  }

  std::vector<std::string> dirty_paths() {
    std::vector<std::string> out;
    catalog_->for_each_dirty([&](const catalog::FileRef& ref) { out.push_back(ref.path); });
    return out;
  }

  std::optional<catalog::VersionRow> latest(const std::string& path) {
    auto id = catalog_->file_by_path(path);
    if (!id) return std::nullopt;
    return catalog_->latest_version(*id);
  }

  TempDir dir_;
  std::string root_ = dir_.file("root");
  std::optional<Catalog> catalog_;
  SilentProgress progress_;
};

TEST_F(ScanTest, FirstScanHashesEverythingOnce) {
  for (int i = 0; i < 5; ++i)
    write_file(root_ + "/d/f" + std::to_string(i), random_text(1000 * i, i));
  ::symlink("d/f1", (root_ + "/link").c_str());
  auto [scanned, hashed] = scan_and_hash();
  EXPECT_EQ(scanned.files, 6u);
  EXPECT_EQ(scanned.new_files, 6u);
  EXPECT_EQ(scanned.dirty_bytes, 10000u);
  EXPECT_EQ(scanned.largest_dirty_path, root_ + "/d/f4");
  EXPECT_EQ(hashed.files, 6u);
  EXPECT_EQ(hashed.new_versions, 6u);
  EXPECT_TRUE(dirty_paths().empty());
  auto f3 = latest(root_ + "/d/f3");
  ASSERT_TRUE(f3);
  EXPECT_EQ(to_hex(f3->hash), hash_hex(random_text(3000, 3)));
  auto link = latest(root_ + "/link");
  ASSERT_TRUE(link);
  EXPECT_EQ(link->kind, catalog::VersionKind::kSymlink);
  EXPECT_EQ(link->symlink_target, "d/f1");
}

TEST_F(ScanTest, UnchangedRescanMarksNothingDirtyAndReadsNoFileData) {
  // 64 MiB of files: reading any of it again would show in rchar.
  for (int i = 0; i < 16; ++i)
    write_file(root_ + "/sub" + std::to_string(i % 3) + "/f" + std::to_string(i),
               random_text(4 << 20, i));
  scan_and_hash();
  ASSERT_TRUE(dirty_paths().empty());

  // The run itself is a row of its own; the scan must add nothing to it.
  auto run = catalog_->begin_run(catalog::RunKind::kScan, {root_});
  const auto wal = [&] { return std::filesystem::file_size(dir_.file("catalog.db") + "-wal"); };
  const auto wal_before = wal();
  std::uint64_t before = bytes_read_by_process();
  ScanReport scanned = scan(*catalog_, {root_}, {}, run, progress_);
  HashReport hashed = hash_dirty(*catalog_, run, progress_);
  std::uint64_t read = bytes_read_by_process() - before;
  EXPECT_EQ(wal(), wal_before) << "an unchanged scan wrote to the catalog";
  catalog_->finish_run(run);
  EXPECT_EQ(scanned.files, 16u);
  EXPECT_EQ(scanned.new_files, 0u);
  EXPECT_EQ(scanned.changed, 0u);
  EXPECT_EQ(scanned.dirty_bytes, 0u);
  EXPECT_EQ(hashed.files, 0u);
  EXPECT_TRUE(dirty_paths().empty());
  // Catalog pages only (a few hundred KiB at most), no file data.
  EXPECT_LT(read, 2u << 20) << "the rescan read " << read << " bytes";
  // Every version goes on, open; none added.
  auto versions = catalog_->versions_of(*catalog_->file_by_path(root_ + "/sub0/f0"));
  ASSERT_EQ(versions.size(), 1u);
  EXPECT_EQ(versions[0].last_seen_run, 0);
  EXPECT_TRUE(catalog_->resolve(root_ + "/sub0/f0", catalog::View::snapshot(run)));
}

TEST_F(ScanTest, ChangedSizeMtimeOrCtimeMarksDirty) {
  for (const char* name : {"grow", "retime", "chown", "same"})
    write_file(root_ + "/" + name, random_text(5000, 7));
  scan_and_hash();
  const std::string grow = root_ + "/grow", retime = root_ + "/retime", chown = root_ + "/chown";

  write_file(grow, random_text(6000, 7));  // new size
  struct timespec times[2] = {{0, UTIME_OMIT}, {1234567890, 5}};
  ASSERT_EQ(::utimensat(AT_FDCWD, retime.c_str(), times, 0), 0);  // same size, new mtime
  struct stat st {};
  ASSERT_EQ(::stat(chown.c_str(), &st), 0);
  let_timestamps_move_on(chown);
  ASSERT_EQ(::chown(chown.c_str(), st.st_uid, st.st_gid), 0);  // ctime only

  auto run = catalog_->begin_run(catalog::RunKind::kScan, {root_});
  ScanReport scanned = scan(*catalog_, {root_}, {}, run, progress_);
  EXPECT_EQ(scanned.changed, 3u);
  EXPECT_EQ(dirty_paths(), (std::vector<std::string>{chown, grow, retime}));
  HashReport hashed = hash_dirty(*catalog_, run, progress_);
  catalog_->finish_run(run);
  EXPECT_EQ(hashed.files, 3u);
  // Content or metadata changed for two; a ctime-only change is re-read but
  // the same version is kept.
  EXPECT_EQ(hashed.new_versions, 2u);
  EXPECT_EQ(to_hex(latest(grow)->hash), hash_hex(random_text(6000, 7)));
  EXPECT_EQ(latest(retime)->attrs.mtime_ns, 1234567890000000005);
  EXPECT_EQ(catalog_->versions_of(*catalog_->file_by_path(chown)).size(), 1u);
  EXPECT_TRUE(dirty_paths().empty());
}

TEST_F(ScanTest, AFileAppendedToWhileHashedIsNeverRecordedWithAWrongHash) {
  const std::string path = root_ + "/growing";
  write_file(path, random_text(64 << 20, 1));
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> appends{0};
  // A log being written to: 4 KiB every 100 us (40 MB/s at most), so it
  // keeps changing during every read without filling the disk.
  std::thread appender([&] {
    UniqueFd fd = open_file(path, O_WRONLY | O_APPEND);
    std::string chunk = random_text(4096, 2);
    while (!stop) {
      write_all(fd.get(), as_bytes(chunk), path);
      ++appends;
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  });
  while (appends < 10) std::this_thread::yield();
  int refused = 0;
  std::vector<std::pair<std::uint64_t, std::string>> results;
  for (int trial = 0; trial < 3; ++trial) {
    std::string why;
    auto hashed = hash_path(path, why);
    if (!hashed) {
      EXPECT_EQ(why, "changed while being read");
      ++refused;
    } else {
      results.emplace_back(hashed->version.size, to_hex(hashed->version.hash));
    }
  }
  stop = true;
  appender.join();
  // Appends never change earlier bytes: any hash returned must be that of
  // the file's first `size` bytes.
  std::string final_content = read_file(path);
  for (const auto& [size, hash] : results) {
    ASSERT_LE(size, final_content.size());
    EXPECT_EQ(hash, hash_hex(std::string_view(final_content).substr(0, size)));
  }
  EXPECT_GE(refused, 1) << "a file growing throughout the read was accepted every time";
  // Once it is still, it hashes.
  std::string why;
  auto hashed = hash_path(path, why);
  ASSERT_TRUE(hashed) << why;
  EXPECT_EQ(to_hex(hashed->version.hash), hash_hex(final_content));
}

TEST_F(ScanTest, AFileRewrittenInPlaceWhileHashedGetsOneOfItsContentsOrNothing) {
  // Same size throughout; only the timestamps can tell the hasher.
  const std::string path = root_ + "/flipping";
  const std::string a = random_text(32 << 20, 3), b = random_text(32 << 20, 4);
  write_file(path, a);
  std::atomic<bool> stop{false};
  std::atomic<int> rewrites{0};
  std::thread writer([&] {
    UniqueFd fd = open_file(path, O_WRONLY);
    for (int i = 0; !stop; ++i) {
      const std::string& content = i % 2 ? a : b;
      for (std::size_t off = 0; off < content.size() && !stop; off += 1 << 20) {
        if (::pwrite(fd.get(), content.data() + off, 1 << 20, static_cast<off_t>(off)) < 0) return;
      }
      ++rewrites;
    }
  });
  while (rewrites < 1) std::this_thread::yield();
  int refused = 0;
  for (int trial = 0; trial < 3; ++trial) {
    std::string why;
    auto hashed = hash_path(path, why);
    if (!hashed) {
      ++refused;
      continue;
    }
    std::string hash = to_hex(hashed->version.hash);
    EXPECT_TRUE(hash == hash_hex(a) || hash == hash_hex(b)) << "a hash of mixed content";
  }
  stop = true;
  writer.join();
  EXPECT_GE(refused, 1);
}

// Every path hashed with a FileHasher's lanes kept full (by hand, not with
// hash_all, to see that every lane was in use at some step); the results by
// path.
std::map<std::string, HashResult> hash_in_lanes(const std::vector<std::string>& paths,
                                                bool& every_lane_was_busy) {
  FileHasher hasher;
  std::map<std::string, HashResult> out;
  std::size_t next = 0;
  every_lane_was_busy = false;
  while (out.size() < paths.size()) {
    while (next < paths.size() && hasher.free_lanes() > 0) {
      if (auto at_once = hasher.add(paths[next], next)) out.emplace(paths[next], *at_once);
      ++next;
    }
    every_lane_was_busy = every_lane_was_busy || hasher.free_lanes() == 0;
    for (auto& finished : hasher.step()) out.emplace(paths[finished.tag], finished.result);
  }
  return out;
}

TEST_F(ScanTest, FilesHashedInLanesEachGetTheHashOfTheirOwnContent) {
  std::vector<std::string> paths;
  std::map<std::string, std::string> content;
  const std::size_t sizes[] = {0,
                               1,
                               127,
                               128,
                               129,
                               4096,
                               128 << 10,
                               (128 << 10) - 1,
                               (128 << 10) + 1,
                               300000,
                               (1 << 20) + 3,
                               5 << 20,
                               77,
                               1 << 20};
  for (int round = 0; round < 3; ++round) {
    for (std::size_t i = 0; i < std::size(sizes); ++i) {
      std::string path = root_ + "/f" + std::to_string(round) + "-" + std::to_string(i);
      content[path] = random_text(sizes[i], static_cast<std::uint32_t>(round * 100 + i));
      write_file(path, content[path]);
      paths.push_back(path);
    }
  }
  std::filesystem::create_symlink("f0-3", root_ + "/link");
  paths.push_back(root_ + "/link");
  paths.push_back(root_ + "/missing");
  bool every_lane_was_busy = false;
  auto results = hash_in_lanes(paths, every_lane_was_busy);
  EXPECT_TRUE(every_lane_was_busy);
  for (const auto& [path, data] : content) {
    const HashResult& result = results.at(path);
    ASSERT_TRUE(result.file) << path << ": " << result.why;
    EXPECT_EQ(to_hex(result.file->version.hash), hash_hex(data)) << path;
    EXPECT_EQ(result.file->version.size, data.size()) << path;
    EXPECT_EQ(result.bytes_read, data.size()) << path;
  }
  const HashResult& link = results.at(root_ + "/link");
  ASSERT_TRUE(link.file);
  EXPECT_EQ(link.file->version.kind, catalog::VersionKind::kSymlink);
  EXPECT_EQ(to_hex(link.file->version.hash), hash_hex("f0-3"));
  EXPECT_EQ(results.at(root_ + "/missing").failure, HashFailure::kVanished);
}

TEST_F(ScanTest, AWholeFileHashIsRefusedWhileLanesAreInUse) {
  // Its result could be confused with theirs: hash() and hash_all() want
  // idle lanes.
  write_file(root_ + "/a", random_text(1 << 20, 1));
  FileHasher hasher;
  ASSERT_FALSE(hasher.add(root_ + "/a", 7));
  EXPECT_THROW_MESSAGE(hasher.hash(root_ + "/a"), Error, "FileHasher::hash with lanes in use");
  EXPECT_THROW_MESSAGE(hasher.hash_all({root_ + "/a"}, [](std::size_t, HashResult) {}), Error,
                       "FileHasher::hash_all with lanes in use");
  std::vector<FileHasher::Finished> finished;
  while (finished.empty()) finished = hasher.step();
  EXPECT_EQ(finished.front().tag, 7u);
  EXPECT_TRUE(finished.front().result.file);
  EXPECT_TRUE(hasher.hash(root_ + "/a").file);
}

TEST_F(ScanTest, AFileGrowingInOneLaneLeavesTheOtherLanesExact) {
  std::vector<std::string> paths;
  std::map<std::string, std::string> content;
  for (int i = 0; i < 7; ++i) {
    std::string path = root_ + "/still" + std::to_string(i);
    content[path] = random_text(8 << 20, static_cast<std::uint32_t>(i));
    write_file(path, content[path]);
    paths.push_back(path);
  }
  const std::string growing = root_ + "/growing";
  write_file(growing, random_text(8 << 20, 99));
  paths.insert(paths.begin() + 3, growing);
  std::atomic<bool> stop{false};
  std::atomic<int> appends{0};
  std::thread appender([&] {
    UniqueFd fd = open_file(growing, O_WRONLY | O_APPEND);
    std::string chunk = random_text(4096, 2);
    while (!stop) {
      write_all(fd.get(), as_bytes(chunk), growing);
      ++appends;
      std::this_thread::sleep_for(std::chrono::microseconds(100));  // a rate, not a wait
    }
  });
  while (appends < 10) std::this_thread::yield();
  bool every_lane_was_busy = false;
  auto results = hash_in_lanes(paths, every_lane_was_busy);
  stop = true;
  appender.join();
  EXPECT_TRUE(every_lane_was_busy);
  for (const auto& [path, data] : content) {
    ASSERT_TRUE(results.at(path).file) << path << ": " << results.at(path).why;
    EXPECT_EQ(to_hex(results.at(path).file->version.hash), hash_hex(data)) << path;
  }
  // Appends never change earlier bytes: a hash, if any, is of a prefix.
  const HashResult& grown = results.at(growing);
  if (grown.file) {
    std::string now = read_file(growing);
    ASSERT_LE(grown.file->version.size, now.size());
    EXPECT_EQ(to_hex(grown.file->version.hash),
              hash_hex(std::string_view(now).substr(0, grown.file->version.size)));
  } else {
    EXPECT_EQ(grown.failure, HashFailure::kUnstable) << grown.why;
  }
}

TEST_F(ScanTest, HashDirtyLeavesAnUnstableFileDirtyWithoutAVersion) {
  const std::string path = root_ + "/log";
  write_file(path, random_text(32 << 20, 5));
  auto run = catalog_->begin_run(catalog::RunKind::kScan, {root_});
  scan(*catalog_, {root_}, {}, run, progress_);
  std::atomic<bool> stop{false};
  std::thread appender([&] {
    UniqueFd fd = open_file(path, O_WRONLY | O_APPEND);
    while (!stop) {
      write_all(fd.get(), as_bytes(std::string(512, 'x')), path);
      std::this_thread::sleep_for(std::chrono::microseconds(100));  // a rate, not a wait
    }
  });
  HashReport hashed = hash_dirty(*catalog_, run, progress_);
  stop = true;
  appender.join();
  catalog_->finish_run(run);
  EXPECT_EQ(hashed.unstable, 1u);
  EXPECT_EQ(hashed.files, 0u);
  EXPECT_EQ(dirty_paths(), std::vector<std::string>{path});
  EXPECT_FALSE(latest(path));
}

TEST_F(ScanTest, AFileVanishedAfterTheScanIsDroppedNotFailed) {
  write_file(root_ + "/stays", "a");
  write_file(root_ + "/goes", "b");
  auto run = catalog_->begin_run(catalog::RunKind::kScan, {root_});
  scan(*catalog_, {root_}, {}, run, progress_);
  ASSERT_EQ(dirty_paths().size(), 2u);
  ASSERT_EQ(::unlink((root_ + "/goes").c_str()), 0);
  HashReport hashed = hash_dirty(*catalog_, run, progress_);
  catalog_->finish_run(run);
  EXPECT_EQ(hashed.vanished, 1u);
  EXPECT_EQ(hashed.unreadable, 0u);
  EXPECT_EQ(hashed.files, 1u);
  EXPECT_TRUE(dirty_paths().empty());
}

TEST_F(ScanTest, ExclusionsByNameAndByPath) {
  write_file(root_ + "/keep.txt", "k");
  write_file(root_ + "/a/junk.tmp", "j");
  write_file(root_ + "/a/keep.txt", "k");
  write_file(root_ + "/cache/x", "c");
  write_file(root_ + "/b/cache/y", "kept: the path pattern names one directory");
  WalkOptions options;
  options.excludes = {"*.tmp", root_ + "/cache"};
  auto [scanned, hashed] = scan_and_hash(options);
  EXPECT_EQ(scanned.files, 3u);
  EXPECT_TRUE(catalog_->file_by_path(root_ + "/keep.txt"));
  EXPECT_TRUE(catalog_->file_by_path(root_ + "/a/keep.txt"));
  EXPECT_TRUE(catalog_->file_by_path(root_ + "/b/cache/y"));
  EXPECT_FALSE(catalog_->file_by_path(root_ + "/a/junk.tmp"));
  EXPECT_FALSE(catalog_->file_by_path(root_ + "/cache/x"));
  EXPECT_FALSE(catalog_->dir_by_path(root_ + "/cache"));
}

TEST_F(ScanTest, OtherFilesystemsAreNotEnteredUnlessAsked) {
  const std::string mnt = root_ + "/mnt";
  std::filesystem::create_directories(mnt);
  // Root is required by the suite (FUSE mounts); mounting a tmpfs must work.
  ASSERT_EQ(::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=1m"), 0)
      << "cannot mount a tmpfs: " << std::strerror(errno);
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{mnt};
  write_file(mnt + "/inside", "on another filesystem");
  write_file(root_ + "/outside", "here");

  auto [scanned, hashed] = scan_and_hash();
  EXPECT_EQ(scanned.files, 1u);
  EXPECT_TRUE(catalog_->file_by_path(root_ + "/outside"));
  EXPECT_FALSE(catalog_->file_by_path(mnt + "/inside"));

  WalkOptions cross;
  cross.cross_filesystems = true;
  std::tie(scanned, hashed) = scan_and_hash(cross);
  EXPECT_EQ(scanned.files, 2u);
  EXPECT_TRUE(catalog_->file_by_path(mnt + "/inside"));
}

TEST_F(ScanTest, OddNamesLongPathsSparseFilesAndSymlinkLoops) {
  const std::string newline = root_ + "/new\nline", binary = root_ +
                                                             "/bad\xff\xfe"
                                                             "utf8";
  write_file(newline, "n");
  write_file(binary, "b");
  // A path of about 4,000 bytes, and one longer than PATH_MAX (4096), which
  // the kernel refuses whole: both must be read.
  std::string deep = root_;
  while (deep.size() + 51 <= 3800) deep += "/" + std::string(50, 'd');
  const std::string long_path = deep + "/" + std::string(4000 - deep.size() - 1, 'f');
  ASSERT_EQ(long_path.size(), 4000u);
  write_file(long_path, "long");
  // Beyond PATH_MAX no single path names it: made one directory at a time.
  std::string too_long = deep;
  {
    UniqueFd dir = open_file(deep, O_RDONLY | O_DIRECTORY);
    while (too_long.size() < 5000) {
      std::string name(250, 'e');
      too_long += "/" + name;
      ASSERT_EQ(::mkdirat(dir.get(), name.c_str(), 0755), 0) << std::strerror(errno);
      dir = UniqueFd(::openat(dir.get(), name.c_str(), O_RDONLY | O_DIRECTORY));
      ASSERT_TRUE(dir.valid());
    }
    too_long += "/file";
    int fd = ::openat(dir.get(), "file", O_WRONLY | O_CREAT, 0644);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    write_all(fd, as_bytes("beyond PATH_MAX"), "too long");
    ::close(fd);
  }
  // Sparse: 16 MiB of hole with a little data at the end.
  const std::string sparse = root_ + "/sparse";
  {
    UniqueFd fd = open_file(sparse, O_WRONLY | O_CREAT, 0644);
    ASSERT_EQ(::pwrite(fd.get(), "end", 3, 16 << 20), 3);
  }
  ::symlink("loop2", (root_ + "/loop1").c_str());
  ::symlink("loop1", (root_ + "/loop2").c_str());
  ::symlink(".", (root_ + "/self").c_str());

  auto [scanned, hashed] = scan_and_hash();
  EXPECT_EQ(scanned.problems, 0u);
  EXPECT_EQ(hashed.unreadable, 0u);
  EXPECT_EQ(to_hex(latest(newline)->hash), hash_hex("n"));
  EXPECT_EQ(to_hex(latest(binary)->hash), hash_hex("b"));
  EXPECT_EQ(to_hex(latest(long_path)->hash), hash_hex("long"));
  ASSERT_TRUE(latest(too_long));
  EXPECT_EQ(to_hex(latest(too_long)->hash), hash_hex("beyond PATH_MAX"));
  EXPECT_EQ(to_hex(latest(sparse)->hash), hash_hex(std::string(16 << 20, '\0') + "end"));
  EXPECT_EQ(latest(root_ + "/loop1")->symlink_target, "loop2");
  EXPECT_EQ(latest(root_ + "/self")->symlink_target, ".");
  EXPECT_FALSE(catalog_->dir_by_path(root_ + "/self"));  // never followed
}

TEST_F(ScanTest, ASingleFileRootIsSeenByEveryRun) {
  const std::string file = root_ + "/only";
  write_file(file, "x");
  for (int i = 0; i < 2; ++i) {
    auto run = catalog_->begin_run(catalog::RunKind::kScan, {file});
    scan(*catalog_, {file}, {}, run, progress_);
    hash_dirty(*catalog_, run, progress_);
    catalog_->finish_run(run);
  }
  auto versions = catalog_->versions_of(*catalog_->file_by_path(file));
  ASSERT_EQ(versions.size(), 1u);
  EXPECT_EQ(versions[0].last_seen_run, 0);  // open: still there
  EXPECT_TRUE(catalog_->resolve(file, catalog::View::snapshot(catalog_->runs().back().id)));
  // Still on disk as hashed: the planner offers it for its copies.
  int pending = 0;
  catalog_->for_each_pending(0, [&](const catalog::PendingVersion&) { ++pending; });
  EXPECT_EQ(pending, 1);
}

// Runs `body` in a child process as uid/gid 65534 (root reads everything,
// so unreadable files need another user); the child's exit status is the
// number of failed checks, and its stderr says which.
template <typename Body>
void as_nobody(Body body) {
  std::fflush(nullptr);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setresgid(65534, 65534, 65534) != 0 ||
        ::setresuid(65534, 65534, 65534) != 0)
      ::_exit(100);
    int failures = 0;
    try {
      failures = body();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child: %s\n", e.what());
      failures = 99;
    }
    std::fflush(nullptr);
    ::_exit(failures);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "checks failed in the unprivileged child (see stderr)";
}

#define CHILD_CHECK(condition)                                                          \
  do {                                                                                  \
    if (!(condition)) {                                                                 \
      std::fprintf(stderr, "child check failed: %s (line %d)\n", #condition, __LINE__); \
      ++failures;                                                                       \
    }                                                                                   \
  } while (0)

TEST(ScanAsUser, UnreadableFilesAndDirectoriesAreReportedAndKept) {
  TempDir dir;
  ASSERT_EQ(::chmod(dir.path().c_str(), 0777), 0);
  const std::string root = dir.file("tree"), db = dir.file("nobody.db");
  as_nobody([&] {
    int failures = 0;
    write_file(root + "/ok", "fine");
    write_file(root + "/secret", "no");
    write_file(root + "/locked/inside", "in");
    catalog::CatalogConfig config;
    config.encryption = catalog::Encryption::kNone;
    Catalog catalog = Catalog::create(db, config);
    SilentProgress progress;
    auto run = catalog.begin_run(catalog::RunKind::kScan, {root});
    scan(catalog, {root}, {}, run, progress);
    hash_dirty(catalog, run, progress);
    catalog.finish_run(run);

    let_timestamps_move_on(root + "/secret");
    ::chmod((root + "/secret").c_str(), 0);  // a new ctime: dirty, and now unreadable
    ::chmod((root + "/locked").c_str(), 0);
    write_file(root + "/ok", "changed");
    run = catalog.begin_run(catalog::RunKind::kScan, {root});
    ScanReport scanned = scan(catalog, {root}, {}, run, progress);
    HashReport hashed = hash_dirty(catalog, run, progress);
    catalog.finish_run(run);
    CHILD_CHECK(scanned.problems == 1);   // the locked directory
    CHILD_CHECK(hashed.unreadable == 1);  // the secret file
    CHILD_CHECK(hashed.files == 1);
    int dirty = 0;
    catalog.for_each_dirty([&](const catalog::FileRef& ref) {
      CHILD_CHECK(ref.path == root + "/secret");
      ++dirty;
    });
    CHILD_CHECK(dirty == 1);
    // What is in the unreadable directory is not taken for deleted.
    auto locked = catalog.dir_by_path(root + "/locked");
    CHILD_CHECK(locked.has_value());
    if (locked) {
      auto entries = catalog.scan_entries(locked->id);
      CHILD_CHECK(entries.size() == 1 && entries[0].state.has_value());
    }
    ::chmod((root + "/secret").c_str(), 0600);
    ::chmod((root + "/locked").c_str(), 0700);
    return failures;
  });
}

}  // namespace
}  // namespace mixtape::backup::testing
