// Private to engine/backup: reading and hashing one source path, and
// opening source paths of any length.
//
// A FileHasher owns its read buffer and its uid/gid name cache, so hashing
// many small files costs no allocation per file; the write pipeline keeps
// one per hashing thread. The outcome tells the caller what to do with the
// path: a vanished file is gone (its scan state is dropped, nothing failed),
// an unreadable or unstable one stays dirty and makes the run incomplete.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>

#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "engine/backup/attributes.h"
#include "engine/backup/backup.h"
#include "engine/common/common.h"
#include "engine/crypto/crypto.h"

namespace mixtape::backup {

enum class HashFailure {
  kNone,
  kVanished,    // no longer there, or no longer a file or symlink
  kUnreadable,  // permissions, I/O errors
  kUnstable,    // kept changing while it was read
  kCancelled,   // the caller asked to stop
};

struct HashResult {
  std::optional<HashedFile> file;  // set when failure is kNone
  HashFailure failure = HashFailure::kNone;
  std::string why;  // for the warning
  // Bytes of file data read, every attempt counted (a run's source reads
  // are the sum of these and the write stage's).
  std::uint64_t bytes_read = 0;
};

// Regular files are hashed in lanes (crypto::Blake2b256Lanes): up to
// kLanes files at once, a read of each per step, hashed side by side. hash()
// is one file from start to end; a pipeline keeps the lanes full with add()
// and step().
class FileHasher {
 public:
  static constexpr std::size_t kLanes = crypto::Blake2b256Lanes::kLanes;
  struct Finished {
    std::uint64_t tag = 0;  // as given to add()
    HashResult result;
  };

  // A read loop checks `cancel` between reads, so a multi-GiB file does not
  // hold up a pipeline that is stopping.
  explicit FileHasher(const std::atomic<bool>* cancel = nullptr);
  ~FileHasher();
  FileHasher(const FileHasher&) = delete;
  FileHasher& operator=(const FileHasher&) = delete;

  // One path, whole, while no lane is in use.
  HashResult hash(const std::string& path);
  // Every path, with the lanes kept full, while no lane is in use;
  // done(index into paths, result) in the order the files end.
  void hash_all(const std::vector<std::string>& paths,
                const std::function<void(std::size_t, HashResult)>& done);

  std::size_t free_lanes() const;
  // Starts hashing path in a free lane (there must be one). A symlink, or a
  // path that is not there or cannot be opened, is finished at once: its
  // result is returned here instead of from a later step().
  std::optional<HashResult> add(const std::string& path, std::uint64_t tag);
  // Reads the next piece of every file in a lane, hashes the pieces side by
  // side and returns the files that ended (hashed, or failed) in this step.
  std::vector<Finished> step();

 private:
  struct Lane;
  void expect_idle(const char* what) const;
  HashResult hash_symlink(const std::string& path, const struct stat& st);
  // Opens the lane's file for its next attempt: a failure if it cannot be.
  std::optional<HashResult> open_attempt(Lane& lane);
  // The lane's file ended: the result if it is still the file that was
  // read, nullopt after starting another attempt.
  std::optional<HashResult> verify(std::size_t index);
  std::optional<HashResult> retry(std::size_t index);
  Finished release(std::size_t index, HashResult result);

  const std::atomic<bool>* cancel_;
  crypto::Blake2b256Lanes digests_;
  std::vector<Lane> lanes_;
  OwnerNames names_;
};

// The identity (catalog::FileIdentity) of a file as stat found it.
catalog::FileIdentity identity_of(const struct stat& st);

// Records what hashing one file for run_id found, the one way `mixtape
// scan` and the backup's hash stage both do it: a version, with the scan
// state now describing exactly the content hashed (so later sessions and
// runs trust it without reading the file again); a vanished file marked
// absent; a file that could not be read or kept changing marked dirty and
// warned about, for the next run. Counts into `report` (bytes read
// included). Returns the version recorded, or nullopt (cancelled: nothing
// recorded).
std::optional<catalog::RecordedVersion> record_hashed(catalog::Writer& catalog, catalog::Id file_id,
                                                      const std::string& path,
                                                      const HashResult& result, catalog::Id run_id,
                                                      HashReport& report, Progress& progress);

// A source path as a directory descriptor and a name relative to it.
// Paths shorter than PATH_MAX are used as they are (AT_FDCWD); longer ones
// are reached by opening each directory in turn, without following
// symlinks, since the kernel refuses them whole (ENAMETOOLONG).
class SourcePath {
 public:
  // nullopt with errno set when a directory on the way cannot be opened.
  static std::optional<SourcePath> open_parent(const std::string& path);
  int dir_fd() const { return dir_.valid() ? dir_.get() : AT_FDCWD; }
  const char* name() const { return name_.c_str(); }

 private:
  UniqueFd dir_;
  std::string name_;
};

// lstat(2) and open(2) (O_NOFOLLOW | O_CLOEXEC added) for paths of any
// length; -1 with errno set on failure, as the system calls.
int lstat_source(const std::string& path, struct stat& st);
int open_source(const std::string& path, int flags);

}  // namespace mixtape::backup
