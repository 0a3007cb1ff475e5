// Hashing: each dirty file is read once, in large sequential reads. The
// file's size, mtime and ctime are compared before and after the read; a
// file that changed meanwhile is read again, and after kAttempts it is left
// dirty with a warning rather than recorded with a hash of mixed content.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "engine/backup/attributes.h"
#include "engine/backup/backup.h"
#include "engine/crypto/crypto.h"

namespace mixtape::backup {
namespace {

constexpr int kAttempts = 3;
constexpr std::size_t kReadSize = 4 << 20;

bool same_identity(const struct stat& a, const struct stat& b) {
  return a.st_size == b.st_size && to_ns(a.st_mtim) == to_ns(b.st_mtim) &&
         to_ns(a.st_ctim) == to_ns(b.st_ctim) && a.st_ino == b.st_ino;
}

void fill_identity(HashedFile& out, const struct stat& st) {
  out.identity.size = static_cast<std::uint64_t>(st.st_size);
  out.identity.mtime_ns = to_ns(st.st_mtim);
  out.identity.ctime_ns = to_ns(st.st_ctim);
}

std::optional<HashedFile> hash_symlink(const std::string& path, const struct stat& st,
                                       OwnerNames& names, std::string& why) {
  std::string target(static_cast<std::size_t>(st.st_size) + 1, '\0');
  ssize_t n = ::readlink(path.c_str(), target.data(), target.size());
  if (n < 0) {
    why = std::strerror(errno);
    return std::nullopt;
  }
  if (static_cast<std::size_t>(n) >= target.size()) {
    why = "symlink changed while being read";
    return std::nullopt;
  }
  target.resize(static_cast<std::size_t>(n));
  HashedFile out;
  out.version.kind = catalog::VersionKind::kSymlink;
  out.version.size = target.size();
  out.version.hash = crypto::blake2b256(as_bytes(target));
  out.version.symlink_target = target;
  out.version.attrs = attributes_of(st, names);
  fill_identity(out, st);
  return out;
}

std::optional<HashedFile> hash_regular(const std::string& path, OwnerNames& names,
                                       std::string& why, Bytes& buffer) {
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    int raw = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOATIME);
    if (raw < 0 && errno == EPERM) raw = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (raw < 0) {
      why = std::strerror(errno);
      return std::nullopt;
    }
    UniqueFd fd(raw);
    struct stat before {};
    if (::fstat(fd.get(), &before) != 0 || !S_ISREG(before.st_mode)) {
      why = "not a regular file any more";
      return std::nullopt;
    }
    ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
    crypto::Blake2b256 hasher;
    std::uint64_t total = 0;
    bool read_error = false;
    for (;;) {
      ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        why = std::string("read error: ") + std::strerror(errno);
        read_error = true;
        break;
      }
      if (n == 0) break;
      hasher.update({buffer.data(), static_cast<std::size_t>(n)});
      total += static_cast<std::uint64_t>(n);
    }
    if (read_error) return std::nullopt;
    struct stat after {};
    if (::fstat(fd.get(), &after) != 0) {
      why = std::strerror(errno);
      return std::nullopt;
    }
    if (!same_identity(before, after) || total != static_cast<std::uint64_t>(after.st_size)) {
      why = "changed while being read";
      continue;
    }
    HashedFile out;
    out.version.kind = catalog::VersionKind::kFile;
    out.version.size = total;
    out.version.hash = hasher.finish();
    out.version.attrs = attributes_of(after, names);
    fill_identity(out, after);
    return out;
  }
  return std::nullopt;
}

}  // namespace

std::optional<HashedFile> hash_path(const std::string& path, std::string& why) {
  OwnerNames names;
  Bytes buffer(kReadSize);
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    why = std::strerror(errno);
    return std::nullopt;
  }
  if (S_ISLNK(st.st_mode)) return hash_symlink(path, st, names, why);
  return hash_regular(path, names, why, buffer);
}

HashReport hash_dirty(catalog::Catalog& catalog, catalog::Id run_id, Progress& progress) {
  HashReport report;
  std::vector<catalog::FileRef> dirty;
  catalog.for_each_dirty([&](const catalog::FileRef& ref) { dirty.push_back(ref); });
  progress.phase("hash", 0, dirty.size());
  OwnerNames names;
  Bytes buffer(kReadSize);
  std::optional<sqlite::Transaction> transaction;
  transaction.emplace(catalog.database());
  std::uint64_t since_commit = 0;
  for (const auto& ref : dirty) {
    std::string why;
    struct stat st {};
    std::optional<HashedFile> hashed;
    if (::lstat(ref.path.c_str(), &st) != 0) {
      why = std::strerror(errno);
    } else if (S_ISLNK(st.st_mode)) {
      hashed = hash_symlink(ref.path, st, names, why);
    } else {
      hashed = hash_regular(ref.path, names, why, buffer);
    }
    if (!hashed) {
      if (why == "changed while being read")
        ++report.unstable;
      else
        ++report.unreadable;
      progress.warning(ref.path + ": " + why + "; not backed up this time");
      continue;
    }
    auto recorded = catalog.record_version(ref.file_id, hashed->version, run_id);
    catalog.clear_dirty(ref.file_id);
    ++report.files;
    report.bytes += hashed->version.size;
    if (recorded.created) ++report.new_versions;
    progress.advance(hashed->version.size, 1, ref.path);
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
