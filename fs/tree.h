// fs/tree: the namespace mount.mixtape shows (docs: shared/design/namespace.md),
// computed from the catalog alone. It never mentions FUSE: fuse_ops.cc turns
// these answers into replies, and tests use the Tree directly.
//
// Inode numbers are catalog row ids, tagged with what they are and which view
// they are seen through, so they are stable across remounts and forget() has
// nothing to free:
//
//   bits 63..59  node kind (root is inode 1, FUSE's root id)
//   bits 58..40  view: 0 latest, 1 + run id (snapshots), 2^18 + tape id (tapes)
//   bits 39..0   the catalog id (dir, file, version or copy row; run or tape
//                for view roots)
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "engine/catalog/catalog.h"

namespace mixtape::fs {

using Ino = std::uint64_t;

enum class NodeKind : std::uint8_t {
  kRoot = 0,  // inode 1
  kLatestRoot,
  kSnapshotsRoot,
  kSnapshotsLatest,  // symlink to the newest snapshot
  kSnapshotRoot,     // snapshots/<time>: id = run id
  kTapesRoot,
  kTapeRoot,  // tapes/<serial>: id = tape id
  kDir,       // a catalog directory in a view
  kFile,      // a file (regular or symlink) in a view: id = file id
  kVersionsDir,
  kVersion,  // id = version id
  kReplicasDir,
  kReplica,  // id = copy id
  kControlDir,
  kStatusFile,
  kStatsFile,
  kRecallFile,
};

struct Node {
  NodeKind kind = NodeKind::kRoot;
  std::uint32_t view = 0;
  std::uint64_t id = 0;
  bool operator==(const Node&) const = default;
};

inline constexpr std::uint32_t kTapeViewBase = 1u << 18;
inline constexpr std::uint64_t kIdMask = (1ULL << 40) - 1;

Ino encode(const Node& node);
Node decode(Ino ino);

// What stat(2) shows.
struct Attr {
  Ino ino = 0;
  std::uint32_t mode = 0;
  std::uint32_t nlink = 1;
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
};

struct DirEntry {
  std::string name;
  Attr attr;
};

// The error a request ends with; fuse_ops turns it into an errno.
class FsError : public Error {
 public:
  FsError(int error, const std::string& what) : Error(what), errno_(error) {}
  int error() const { return errno_; }

 private:
  int errno_;
};

// Where a file's bytes are: the version and, for replicas/, one copy.
struct Content {
  catalog::VersionRow version;
  std::optional<catalog::Id> copy_id;  // recall from this copy only
  std::optional<catalog::Id> tape_id;  // tapes/<serial>/: recall from this tape only
  std::string path;                    // source path, for messages
};

// Text of the generated files under .mixtape/.
class ControlFiles {
 public:
  virtual ~ControlFiles() = default;
  // .mixtape/status. Without show_paths, no file's path is in it (another
  // user of an allow_other mount may not see what is being recalled from
  // folders closed to them), only drives, tapes and counts.
  virtual std::string status(bool show_paths) = 0;
  virtual std::string stats_json() = 0;
};

class Tree {
 public:
  // Opens read-only catalog connections on demand, one per thread. With
  // tape_at_root (a found tape mixtape did not write, engine/foreign), the
  // root shows the catalog's root directory (file1/, file2/, file3.bin...)
  // beside .mixtape/, instead of latest/, snapshots/ and tapes/.
  explicit Tree(std::string catalog_path, bool tape_at_root = false);

  Attr getattr(Ino ino);
  // nullopt: no such name.
  std::optional<DirEntry> lookup(Ino parent, const std::string& name);
  // Calls fn for the entries after `cookie` (0: from the start), in a stable
  // order, until it returns false; every entry carries the cookie that
  // resumes after it. In a catalog directory the cookie names the entry's
  // row, so a listing resumes with keyed queries and nothing is kept between
  // calls (the mount needs no opendir, and telldir/seekdir positions stay
  // valid). FsError(EINVAL) for a cookie that is not of this directory.
  void list(Ino dir, std::uint64_t cookie,
            const std::function<bool(const DirEntry&, std::uint64_t next)>& fn);
  std::string readlink(Ino ino);
  // user.mixtape.* attributes of a file node (empty for others).
  std::map<std::string, std::string> xattrs(Ino ino, const std::string& state);
  // The bytes a regular file node stands for; FsError(EISDIR/EINVAL) otherwise.
  Content content(Ino ino);

  catalog::Reader& catalog();  // this thread's connection

 private:
  // A pooled connection lent for one request, given back when destroyed.
  // FUSE serves requests on several threads; lending the most recently
  // given back connection keeps a walk's consecutive requests on one warm
  // page cache rather than spreading them over one cold cache per thread.
  class Lease {
   public:
    Lease(Tree& tree, std::unique_ptr<catalog::Reader> connection)
        : tree_(tree), connection_(std::move(connection)) {}
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease();
    catalog::Reader& operator*() const { return *connection_; }

   private:
    Tree& tree_;
    std::unique_ptr<catalog::Reader> connection_;
  };
  Lease borrow();
  Attr attr_of(catalog::Reader& cat, Ino ino);
  std::string link_target(catalog::Reader& cat, Ino ino);
  Attr dir_attr(Ino ino, const catalog::DirRow& dir);
  Attr file_attr(Ino ino, const catalog::VersionRow& version);
  Attr synthetic_dir(Ino ino);
  catalog::View view_of(std::uint32_t view);
  std::uint32_t view_for_run(catalog::Id run) const;
  std::uint32_t view_for_tape(catalog::Id tape) const;
  catalog::Id dir_of_node(const Node& node);
  // The name a listing of dir_id resumes after, from an entry's cookie.
  std::string resume_after(catalog::Reader& cat, catalog::Id dir_id, std::uint64_t cookie);
  std::optional<catalog::Entry> file_entry(catalog::Reader& cat, const Node& node);
  // Children of the directories that are not catalog directories (the
  // root, .mixtape, snapshots, tapes, name.versions, name.replicas): few.
  std::vector<DirEntry> small_dir_children(catalog::Reader& cat, const Node& node);
  std::vector<DirEntry> special_children(catalog::Reader& cat, const Node& node);
  std::vector<DirEntry> version_entries(catalog::Reader& cat, const Node& node);
  std::vector<DirEntry> replica_entries(catalog::Reader& cat, const Node& node);
  std::string version_name(const catalog::FileRow& file, const catalog::VersionRow& v, int n);
  std::string snapshot_name(const catalog::RunRow& run);

  std::string catalog_path_;
  std::mutex mutex_;
  std::unordered_map<std::thread::id, std::unique_ptr<catalog::Reader>> connections_;
  std::vector<std::unique_ptr<catalog::Reader>> idle_;  // the pool, most recent last
  std::int64_t mount_time_ns_;
  bool tape_at_root_ = false;
};

}  // namespace mixtape::fs
