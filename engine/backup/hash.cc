// Hashing: each dirty file is read once, in large sequential reads. The
// file's identity (size, mtime, ctime, inode) is compared before and after
// the read; a file that changed meanwhile is read again, and after
// kAttempts it is left dirty with a warning rather than recorded with a
// hash of mixed content.
#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include "engine/backup/backup.h"
#include "engine/backup/hasher.h"
#include "engine/crypto/crypto.h"

namespace mixtape::backup {
namespace {

constexpr int kAttempts = 3;
// One read of one lane. A step reads every lane before hashing them, so
// the lanes' reads together (1 MiB) stay in the L2 cache between the
// kernel's copy and the hash; still large enough that system calls cost
// nothing.
constexpr std::size_t kReadSize = 128 << 10;

// ENOENT and ENOTDIR: the path (or a directory on it) is gone. ELOOP from
// O_NOFOLLOW: it became a symlink. Either way what was scanned is not there.
bool gone(int error) {
  return error == ENOENT || error == ENOTDIR || error == ELOOP;
}

HashResult failed(HashFailure failure, std::string why) {
  HashResult result;
  result.failure = failure;
  result.why = std::move(why);
  return result;
}

HashResult failed_errno(int error) {
  return failed(gone(error) ? HashFailure::kVanished : HashFailure::kUnreadable,
                gone(error) ? "vanished before it was read" : std::strerror(error));
}

}  // namespace

catalog::FileIdentity identity_of(const struct stat& st) {
  catalog::FileIdentity id;
  id.size = static_cast<std::uint64_t>(st.st_size);
  id.mtime_ns = to_ns(st.st_mtim);
  id.ctime_ns = to_ns(st.st_ctim);
  id.dev = st.st_dev;
  id.ino = st.st_ino;
  return id;
}

std::optional<SourcePath> SourcePath::open_parent(const std::string& path) {
  SourcePath out;
  if (path.size() < PATH_MAX) {
    out.name_ = path;
    return out;
  }
  // Walk down from "/" one component at a time. Components are names of at
  // most NAME_MAX bytes, so every openat() here is short.
  std::size_t last_slash = path.rfind('/');
  UniqueFd dir(::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!dir.valid()) return std::nullopt;
  std::size_t start = 1;
  while (start < last_slash) {
    std::size_t end = path.find('/', start);
    std::string component = path.substr(start, end - start);
    start = end + 1;
    if (component.empty()) continue;
    int next =
        ::openat(dir.get(), component.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0) return std::nullopt;
    dir.reset(next);
  }
  out.dir_ = std::move(dir);
  out.name_ = path.substr(last_slash + 1);
  return out;
}

int lstat_source(const std::string& path, struct stat& st) {
  auto source = SourcePath::open_parent(path);
  if (!source) return -1;
  return ::fstatat(source->dir_fd(), source->name(), &st, AT_SYMLINK_NOFOLLOW);
}

int open_source(const std::string& path, int flags) {
  auto source = SourcePath::open_parent(path);
  if (!source) return -1;
  return ::openat(source->dir_fd(), source->name(), flags | O_NOFOLLOW | O_CLOEXEC);
}

struct FileHasher::Lane {
  std::string path;
  std::uint64_t tag = 0;
  bool in_use = false;
  int attempt = 0;
  UniqueFd fd;
  struct stat before {};
  std::uint64_t expected = 0;  // the size when opened
  std::uint64_t total = 0;     // bytes hashed this attempt
  std::uint64_t bytes_read = 0;
  Bytes buffer;
};

FileHasher::FileHasher(const std::atomic<bool>* cancel) : cancel_(cancel), lanes_(kLanes) {}

FileHasher::~FileHasher() = default;

std::size_t FileHasher::free_lanes() const {
  return static_cast<std::size_t>(
      std::count_if(lanes_.begin(), lanes_.end(), [](const Lane& l) { return !l.in_use; }));
}

void FileHasher::expect_idle(const char* what) const {
  // Results of files already in lanes would come back in place of this one's.
  if (free_lanes() != kLanes)
    throw Error(std::string("FileHasher::") + what + " with lanes in use");
}

HashResult FileHasher::hash(const std::string& path) {
  expect_idle("hash");
  if (auto at_once = add(path, 0)) return std::move(*at_once);
  for (;;) {
    auto finished = step();
    if (!finished.empty()) return std::move(finished.front().result);
  }
}

void FileHasher::hash_all(const std::vector<std::string>& paths,
                          const std::function<void(std::size_t, HashResult)>& done) {
  expect_idle("hash_all");
  std::size_t next = 0;
  std::size_t finished = 0;
  while (finished < paths.size()) {
    while (next < paths.size() && free_lanes() > 0) {
      if (auto at_once = add(paths[next], next)) {
        done(next, std::move(*at_once));
        ++finished;
      }
      ++next;
    }
    for (auto& ended : step()) {
      done(static_cast<std::size_t>(ended.tag), std::move(ended.result));
      ++finished;
    }
  }
}

std::optional<HashResult> FileHasher::add(const std::string& path, std::uint64_t tag) {
  struct stat st {};
  if (lstat_source(path, st) != 0) return failed_errno(errno);
  if (S_ISLNK(st.st_mode)) return hash_symlink(path, st);
  if (!S_ISREG(st.st_mode)) return failed(HashFailure::kVanished, "is no longer a regular file");
  auto free = std::find_if(lanes_.begin(), lanes_.end(), [](const Lane& l) { return !l.in_use; });
  if (free == lanes_.end()) throw Error("FileHasher::add: every lane is in use");
  Lane& lane = *free;
  lane.path = path;
  lane.tag = tag;
  lane.attempt = 0;
  lane.bytes_read = 0;
  if (lane.buffer.empty()) lane.buffer.resize(kReadSize);
  if (auto failure = open_attempt(lane)) {
    lane.fd.reset();
    return failure;
  }
  lane.in_use = true;
  return std::nullopt;
}

HashResult FileHasher::hash_symlink(const std::string& path, const struct stat& st) {
  auto source = SourcePath::open_parent(path);
  if (!source) return failed_errno(errno);
  std::string target(static_cast<std::size_t>(st.st_size) + 1, '\0');
  ssize_t n = ::readlinkat(source->dir_fd(), source->name(), target.data(), target.size());
  if (n < 0) {
    // EINVAL: no longer a symlink.
    return errno == EINVAL ? failed(HashFailure::kVanished, "is no longer a symlink")
                           : failed_errno(errno);
  }
  if (static_cast<std::size_t>(n) >= target.size())
    return failed(HashFailure::kUnstable, "changed while being read");
  target.resize(static_cast<std::size_t>(n));
  HashResult result;
  HashedFile& out = result.file.emplace();
  out.version.kind = catalog::VersionKind::kSymlink;
  out.version.size = target.size();
  out.version.hash = crypto::blake2b256(as_bytes(target));
  out.version.symlink_target = std::move(target);
  out.version.attrs = attributes_of(st, names_);
  out.identity = identity_of(st);
  return result;
}

std::optional<HashResult> FileHasher::open_attempt(Lane& lane) {
  // O_NONBLOCK: if the path was replaced by a fifo since the scan, open
  // must not wait for a writer; the type check below then rejects it.
  int raw = open_source(lane.path, O_RDONLY | O_NONBLOCK | O_NOATIME);
  if (raw < 0 && errno == EPERM) raw = open_source(lane.path, O_RDONLY | O_NONBLOCK);
  if (raw < 0) return failed_errno(errno);
  lane.fd.reset(raw);
  if (::fstat(lane.fd.get(), &lane.before) != 0) return failed_errno(errno);
  if (!S_ISREG(lane.before.st_mode))
    return failed(HashFailure::kVanished, "is no longer a regular file");
  ::posix_fadvise(lane.fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  lane.expected = static_cast<std::uint64_t>(lane.before.st_size);
  lane.total = 0;
  return std::nullopt;
}

std::vector<FileHasher::Finished> FileHasher::step() {
  std::vector<Finished> finished;
  const bool cancelled = cancel_ && cancel_->load(std::memory_order_relaxed);
  std::array<ByteSpan, kLanes> pieces{};
  std::array<bool, kLanes> ended{};  // read to its end this step
  for (std::size_t i = 0; i < kLanes; ++i) {
    Lane& lane = lanes_[i];
    if (!lane.in_use) continue;
    if (cancelled) {
      finished.push_back(release(i, failed(HashFailure::kCancelled, "cancelled")));
      continue;
    }
    // Read what the file held when it was opened, and one byte more to see
    // whether it grew: reading "to the end" of a file that grows faster than
    // it is read would never end.
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(
        lane.buffer.size(), lane.expected - lane.total + (lane.total == lane.expected)));
    ssize_t n;
    do n = ::read(lane.fd.get(), lane.buffer.data(), want);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
      finished.push_back(release(
          i, failed(HashFailure::kUnreadable, std::string("read error: ") + std::strerror(errno))));
      continue;
    }
    if (n == 0) {
      ended[i] = true;
      continue;
    }
    lane.bytes_read += static_cast<std::uint64_t>(n);
    if (lane.total == lane.expected) {  // it grew: read it again
      if (auto result = retry(i)) finished.push_back(release(i, std::move(*result)));
      continue;
    }
    pieces[i] = {lane.buffer.data(), static_cast<std::size_t>(n)};
    lane.total += static_cast<std::uint64_t>(n);
  }
  digests_.update(pieces);
  for (std::size_t i = 0; i < kLanes; ++i) {
    if (!ended[i]) continue;
    if (auto result = verify(i)) finished.push_back(release(i, std::move(*result)));
  }
  return finished;
}

std::optional<HashResult> FileHasher::verify(std::size_t index) {
  Lane& lane = lanes_[index];
  struct stat after {};
  if (::fstat(lane.fd.get(), &after) != 0) return failed_errno(errno);
  // The path must still name the file that was read: a file replaced
  // (renamed over) while it was read is read again from the new one.
  struct stat now {};
  bool replaced =
      lstat_source(lane.path, now) != 0 || now.st_ino != after.st_ino || now.st_dev != after.st_dev;
  if (replaced || identity_of(lane.before) != identity_of(after) ||
      lane.total != static_cast<std::uint64_t>(after.st_size)) {
    return retry(index);
  }
  HashResult result;
  HashedFile& out = result.file.emplace();
  out.version.kind = catalog::VersionKind::kFile;
  out.version.size = lane.total;
  out.version.hash = digests_.finish(index);
  out.version.attrs = attributes_of(after, names_);
  out.identity = identity_of(after);
  return result;
}

std::optional<HashResult> FileHasher::retry(std::size_t index) {
  Lane& lane = lanes_[index];
  digests_.reset(index);
  lane.fd.reset();
  if (++lane.attempt == kAttempts)
    return failed(HashFailure::kUnstable, "changed while being read");
  return open_attempt(lane);
}

FileHasher::Finished FileHasher::release(std::size_t index, HashResult result) {
  Lane& lane = lanes_[index];
  digests_.reset(index);
  lane.fd.reset();
  lane.in_use = false;
  result.bytes_read = lane.bytes_read;
  return Finished{lane.tag, std::move(result)};
}

std::optional<HashedFile> hash_path(const std::string& path, std::string& why) {
  FileHasher hasher;
  HashResult result = hasher.hash(path);
  why = result.why;
  return std::move(result.file);
}

std::optional<catalog::RecordedVersion> record_hashed(catalog::Writer& catalog, catalog::Id file_id,
                                                      const std::string& path,
                                                      const HashResult& result, catalog::Id run_id,
                                                      HashReport& report, Progress& progress) {
  report.bytes_read += result.bytes_read;
  switch (result.failure) {
    case HashFailure::kNone:
      break;
    case HashFailure::kCancelled:
      return std::nullopt;
    case HashFailure::kVanished:
      // Gone since the scan: as if the scan had not seen it.
      ++report.vanished;
      catalog.mark_absent(file_id, run_id);
      progress.warning(path + ": " + result.why + "; not backed up");
      return std::nullopt;
    case HashFailure::kUnstable:
    case HashFailure::kUnreadable:
      ++(result.failure == HashFailure::kUnstable ? report.unstable : report.unreadable);
      catalog.mark_dirty(file_id, run_id);
      progress.warning(path + ": " + result.why + "; not backed up this time");
      return std::nullopt;
  }
  const HashedFile& hashed = *result.file;
  auto recorded = catalog.record_version(file_id, hashed.version, run_id);
  catalog.set_scan_state(file_id, catalog::ScanState{hashed.identity});
  ++report.files;
  report.bytes += hashed.version.size;
  if (recorded.created) ++report.new_versions;
  progress.file_hashed(path, hashed.version.size);
  return recorded;
}

HashReport hash_dirty(catalog::Writer& catalog, catalog::Id run_id, Progress& progress) {
  HashReport report;
  std::vector<catalog::FileRef> dirty;
  catalog.for_each_dirty([&](const catalog::FileRef& ref) { dirty.push_back(ref); });
  std::uint64_t total = 0;
  for (const auto& ref : dirty) total += ref.size;
  progress.phase("hash", total, dirty.size());
  // Commit in batches: each commit is an fsync.
  catalog::WriteBatch batch(catalog, 1000);
  batch.begin();
  FileHasher hasher;
  std::vector<std::string> paths;
  paths.reserve(dirty.size());
  for (const auto& ref : dirty) paths.push_back(ref.path);
  hasher.hash_all(paths, [&](std::size_t i, HashResult result) {
    const catalog::FileRef& ref = dirty[i];
    if (!record_hashed(catalog, ref.file_id, ref.path, result, run_id, report, progress)) {
      progress.advance(ref.size, 1, ref.path);  // done with, if not hashed
      return;
    }
    progress.advance(result.file->version.size, 1, ref.path);
    batch.wrote();
  });
  batch.commit();
  return report;
}

}  // namespace mixtape::backup
