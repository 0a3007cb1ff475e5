// Hashing: each dirty file is read once, in large sequential reads. The
// file's identity (size, mtime, ctime, inode) is compared before and after
// the read; a file that changed meanwhile is read again, and after
// kAttempts it is left dirty with a warning rather than recorded with a
// hash of mixed content.
#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "engine/backup/backup.h"
#include "engine/backup/hasher.h"
#include "engine/crypto/crypto.h"

namespace mixtape::backup {
namespace {

constexpr int kAttempts = 3;
// Small enough to stay in the L2 cache between the kernel's copy and the
// hash that reads it; large enough that system calls cost nothing.
constexpr std::size_t kReadSize = 256 << 10;

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

HashedFile::stat_identity identity_of(const struct stat& st) {
  HashedFile::stat_identity id;
  id.size = static_cast<std::uint64_t>(st.st_size);
  id.mtime_ns = to_ns(st.st_mtim);
  id.ctime_ns = to_ns(st.st_ctim);
  id.dev = st.st_dev;
  id.ino = st.st_ino;
  return id;
}

bool same_identity(const HashedFile::stat_identity& a, const HashedFile::stat_identity& b) {
  return a.size == b.size && a.mtime_ns == b.mtime_ns && a.ctime_ns == b.ctime_ns &&
         a.dev == b.dev && a.ino == b.ino;
}

catalog::ScanState scan_state_for(const HashedFile::stat_identity& id, catalog::Id run_id) {
  catalog::ScanState state;
  state.size = id.size;
  state.mtime_ns = id.mtime_ns;
  state.ctime_ns = id.ctime_ns;
  state.dev = id.dev;
  state.ino = id.ino;
  state.readable = true;
  state.dirty = false;
  state.seen_run = run_id;
  return state;
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

FileHasher::FileHasher(const std::atomic<bool>* cancel) : cancel_(cancel), buffer_(kReadSize) {}

HashResult FileHasher::hash(const std::string& path) {
  struct stat st {};
  if (lstat_source(path, st) != 0) return failed_errno(errno);
  if (S_ISLNK(st.st_mode)) return hash_symlink(path, st);
  if (!S_ISREG(st.st_mode)) return failed(HashFailure::kVanished, "is no longer a regular file");
  const std::uint64_t before = bytes_read_;
  HashResult result = hash_regular(path);
  result.bytes_read = bytes_read_ - before;
  return result;
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

HashResult FileHasher::hash_regular(const std::string& path) {
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    // O_NONBLOCK: if the path was replaced by a fifo since the scan, open
    // must not wait for a writer; the type check below then rejects it.
    int raw = open_source(path, O_RDONLY | O_NONBLOCK | O_NOATIME);
    if (raw < 0 && errno == EPERM) raw = open_source(path, O_RDONLY | O_NONBLOCK);
    if (raw < 0) return failed_errno(errno);
    UniqueFd fd(raw);
    struct stat before {};
    if (::fstat(fd.get(), &before) != 0) return failed_errno(errno);
    if (!S_ISREG(before.st_mode))
      return failed(HashFailure::kVanished, "is no longer a regular file");
    ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
    crypto::Blake2b256 hasher;
    // Read what the file held when it was opened, and one byte more to see
    // whether it grew: reading "to the end" of a file that grows faster than
    // it is read would never end.
    const std::uint64_t expected = static_cast<std::uint64_t>(before.st_size);
    std::uint64_t total = 0;
    bool grew = false;
    for (;;) {
      if (cancel_ && cancel_->load(std::memory_order_relaxed))
        return failed(HashFailure::kCancelled, "cancelled");
      std::size_t want = static_cast<std::size_t>(
          std::min<std::uint64_t>(buffer_.size(), expected - total + (total == expected)));
      ssize_t n = ::read(fd.get(), buffer_.data(), want);
      if (n < 0) {
        if (errno == EINTR) continue;
        return failed(HashFailure::kUnreadable, std::string("read error: ") + std::strerror(errno));
      }
      if (n == 0) break;
      bytes_read_ += static_cast<std::uint64_t>(n);
      if (total == expected) {
        grew = true;
        break;
      }
      hasher.update({buffer_.data(), static_cast<std::size_t>(n)});
      total += static_cast<std::uint64_t>(n);
    }
    struct stat after {};
    if (::fstat(fd.get(), &after) != 0) return failed_errno(errno);
    // The path must still name the file that was read: a file replaced
    // (renamed over) while it was read is read again from the new one.
    struct stat now {};
    bool replaced =
        lstat_source(path, now) != 0 || now.st_ino != after.st_ino || now.st_dev != after.st_dev;
    if (grew || replaced || !same_identity(identity_of(before), identity_of(after)) ||
        total != static_cast<std::uint64_t>(after.st_size)) {
      continue;
    }
    HashResult result;
    HashedFile& out = result.file.emplace();
    out.version.kind = catalog::VersionKind::kFile;
    out.version.size = total;
    out.version.hash = hasher.finish();
    out.version.attrs = attributes_of(after, names_);
    out.identity = identity_of(after);
    return result;
  }
  return failed(HashFailure::kUnstable, "changed while being read");
}

std::optional<HashedFile> hash_path(const std::string& path, std::string& why) {
  FileHasher hasher;
  HashResult result = hasher.hash(path);
  why = result.why;
  return std::move(result.file);
}

HashReport hash_dirty(catalog::Catalog& catalog, catalog::Id run_id, Progress& progress) {
  HashReport report;
  std::vector<catalog::FileRef> dirty;
  catalog.for_each_dirty([&](const catalog::FileRef& ref) { dirty.push_back(ref); });
  progress.phase("hash", 0, dirty.size());
  FileHasher hasher;
  std::optional<sqlite::Transaction> transaction;
  transaction.emplace(catalog.database());
  std::uint64_t since_commit = 0;
  for (const auto& ref : dirty) {
    HashResult result = hasher.hash(ref.path);
    report.bytes_read += result.bytes_read;
    switch (result.failure) {
      case HashFailure::kNone:
        break;
      case HashFailure::kVanished:
        // Gone since the scan: as if the scan had not seen it.
        ++report.vanished;
        catalog.mark_absent(ref.file_id);
        progress.warning(ref.path + ": " + result.why);
        continue;
      case HashFailure::kUnstable:
      case HashFailure::kUnreadable:
      case HashFailure::kCancelled:
        ++(result.failure == HashFailure::kUnstable ? report.unstable : report.unreadable);
        progress.warning(ref.path + ": " + result.why + "; not backed up this time");
        continue;
    }
    const HashedFile& hashed = *result.file;
    auto recorded = catalog.record_version(ref.file_id, hashed.version, run_id);
    // The scan state now describes the content that was hashed (the file may
    // have changed between the scan and the read), so a later backup can
    // trust it without reading the file again.
    catalog.set_scan_state(ref.file_id, scan_state_for(hashed.identity, run_id));
    ++report.files;
    report.bytes += hashed.version.size;
    if (recorded.created) ++report.new_versions;
    progress.file_hashed(ref.path, hashed.version.size);
    progress.advance(hashed.version.size, 1, ref.path);
    // Commit in batches: each commit is an fsync.
    if (++since_commit == 1000) {
      transaction->commit();
      transaction.emplace(catalog.database());
      since_commit = 0;
    }
  }
  transaction->commit();
  return report;
}

}  // namespace mixtape::backup
