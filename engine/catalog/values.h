// The catalog's values: errors, ids, settings and the rows it hands out.
// Part of the catalog module's interface, split from catalog.h (which
// includes it) to keep each file readable in one sitting: include
// "engine/catalog/catalog.h", not this.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/common/common.h"
#include "engine/crypto/crypto.h"

namespace mixtape::catalog {

// Semantic errors: a catalog newer than this binary, not a catalog, a foreign
// index, an invalid path, a hostile index. SQLite failures are
// sqlite::SqliteError; both derive from mixtape::Error.
class CatalogError : public Error {
 public:
  using Error::Error;
};

using Id = std::int64_t;  // a row id; positive; 0 means none
using Hash = crypto::Blake2b256Digest;

inline constexpr Id kRootDirId = 1;  // the directory "/"

// ------------------------------------------------------------------ config

enum class Encryption { kNone, kRecipients, kPassphrase };

struct CatalogConfig {
  Encryption encryption = Encryption::kRecipients;
  std::vector<std::string> recipients;  // age1... (Encryption::kRecipients)
  // Bytes per tape record of new tapes: a multiple of 512 up to 1 MiB
  // (tape::kMaxWriteRecordSize; create() refuses more).
  std::uint64_t record_size = 512 * 1024;
  int default_copies = 2;  // stored as the copy goal of "/"
};

// ------------------------------------------------------------------ rows

enum class RunKind { kScan, kBackup };

struct RunRow {
  Id id = 0;
  RunKind kind = RunKind::kBackup;
  std::int64_t started_at_ns = 0;   // strictly increasing with id
  std::int64_t finished_at_ns = 0;  // 0 while running or if interrupted
  std::vector<std::string> roots;   // sorted
  // What the run found under its roots: regular files and symlinks, and
  // their bytes; none for runs that did not say (before schema 3).
  std::optional<std::uint64_t> files;
  std::optional<std::uint64_t> bytes;
};

// Metadata shared by directories and versions; mode includes the file type
// bits (S_IFDIR, S_IFREG, S_IFLNK).
struct Attributes {
  std::uint32_t mode = 0;
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::string uname;
  std::string gname;
  std::int64_t mtime_ns = 0;
  bool operator==(const Attributes&) const = default;
};

struct DirRow {
  Id id = 0;
  Id parent = 0;          // 0 for the root
  std::string name;       // "" for the root
  std::string path;       // "/" or "/a/b"
  Attributes attrs;       // as last seen; mode 040755 and zeros until first seen
  Id first_seen_run = 0;  // 0: never seen by a scan (made as an ancestor)
  Id last_seen_run = 0;   // 0: still there (if ever seen)
};

struct FileRow {
  Id id = 0;
  Id dir = 0;
  std::string name;
};

// The stat fields that change whenever a file's content may have changed:
// a write moves mtime and ctime, a replacement (rename over it, even one
// that restores the mtime, as rsync -t does) changes the inode and ctime.
// The scan compares them with what it saw last, the writer with what they
// were when the file was hashed.
struct FileIdentity {
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
  std::int64_t ctime_ns = 0;
  std::uint64_t dev = 0;
  std::uint64_t ino = 0;
  bool operator==(const FileIdentity&) const = default;
};

// What a scan saw of a path on disk, to tell whether it changed.
struct ScanState {
  FileIdentity identity;
  bool readable = true;
  bool dirty = false;  // changed since its last version was recorded
  bool operator==(const ScanState&) const = default;
};

// A file of a directory with its scan state (none if never scanned or absent).
struct ScanEntry {
  Id file_id = 0;
  std::string name;
  std::optional<ScanState> state;
};

struct FileRef {
  Id file_id = 0;
  std::string path;
  std::uint64_t size = 0;  // when last scanned (for_each_dirty)
};

enum class VersionKind { kFile, kSymlink };

struct VersionRow {
  Id id = 0;
  Id file_id = 0;
  VersionKind kind = VersionKind::kFile;
  std::uint64_t size = 0;  // for a symlink, the length of its target
  // BLAKE2b-256 of the content; for a symlink, of its target (record_version
  // computes it).
  Hash hash{};
  Attributes attrs;
  std::string symlink_target;  // empty unless kSymlink
  Id first_seen_run = 0;
  Id last_seen_run = 0;  // 0: open, still on disk as hashed
  // Maintained by the catalog, ignored on input:
  int copies = 0;  // distinct non-retired tapes holding a committed copy
  int goal = 0;    // the copy goal of the file's path
};

struct RecordedVersion {
  Id id = 0;
  bool created = false;  // false: an identical latest version goes on
};

enum class TapeState { kLabelled, kOpen, kFull, kRetired };

struct TapeRow {
  Id id = 0;
  std::string serial;
  std::uint64_t capacity = 0;
  std::uint64_t record_size = 0;
  bool encrypted = true;
  TapeState state = TapeState::kLabelled;
  std::uint64_t bytes_used = 0;
  // Tape file number where the next session starts writing: the trailing
  // index once one exists (1 on a tape holding only file 0).
  std::int64_t append_file = 1;
  std::optional<std::uint64_t> append_block;  // its first logical block, if known
  std::int64_t labelled_at_ns = 0;
  std::int64_t written_at_ns = 0;  // last session; 0 if never written
  // A tape mixtape did not write (a tar tape, engine/foreign): its
  // fingerprint, since it has no label. Empty for mixtape's own tapes.
  // Such a tape is 'full': nothing is ever written to it.
  std::string foreign_id;
  bool is_foreign() const { return !foreign_id.empty(); }
  // Set by set_tape_location and retire_tape only:
  std::string location;        // where the tape is kept; "" not said
  std::string retired_reason;  // "lost", "destroyed", "bad" or "worn"; "" unless retired
  std::int64_t retired_at_ns = 0;
};

// Why a tape is retired (mixtape retire --reason).
bool is_retire_reason(std::string_view reason);

struct ArchiveRow {
  Id id = 0;
  Id tape_id = 0;
  std::int64_t index_file = 0;    // tape file number of the index before it
  std::uint64_t index_block = 0;  // first logical block of that index
  std::int64_t archive_file = 0;  // tape file number of the archive
  std::uint64_t first_block = 0;  // first logical block of the archive
  bool encrypted = true;
  std::uint64_t age_header_len = 0;  // H; 0 when not encrypted
  std::uint64_t cipher_bytes = 0;    // bytes on tape
  std::uint64_t plain_bytes = 0;     // bytes of the plaintext tar
  std::uint64_t members = 0;
  std::int64_t written_at_ns = 0;
  Id run_id = 0;
  // A tape file of a foreign tape (engine/foreign): how it reads ("tar",
  // "tar.gz", ..., "raw" for one that is no tar); empty for mixtape's
  // archives. Its offsets are in the uncompressed tar stream.
  std::string foreign_format;
  // Its own record size when not the tape's (0 with a foreign_format:
  // records vary, so it is read from its start).
  std::uint64_t record_size = 0;
  bool is_foreign() const { return !foreign_format.empty(); }
};

struct CopyRow {
  Id id = 0;
  Id archive_id = 0;
  Id version_id = 0;
  std::uint64_t header_offset = 0;  // of the tar header in the plaintext tar
  std::uint64_t data_offset = 0;    // of the member's data in the plaintext tar
};

// A copy with the archive and tape it lives on: all a restore needs to
// locate it (block arithmetic in docs/FORMAT.md).
struct LocatedCopy {
  CopyRow copy;
  ArchiveRow archive;
  TapeRow tape;
};

// A copy on a tape, with what it holds (for verify and per-tape restores).
struct CopyWithVersion {
  CopyRow copy;
  std::int64_t archive_file = 0;
  VersionRow version;
  std::string path;
};

// A version below its copy goal, with its path (for planning).
struct PendingVersion {
  VersionRow version;
  std::string path;
};

struct CopyGoal {
  std::string prefix;  // "/" is the default goal
  int copies = 0;
};

enum class VerifyResult { kOk, kMismatch, kUnreadable, kMissing };

struct VerificationRow {
  Id id = 0;
  Id archive_id = 0;
  Id version_id = 0;  // 0: the archive as a whole
  std::int64_t checked_at_ns = 0;
  VerifyResult result = VerifyResult::kOk;
  std::string detail;
  Id run_id = 0;
};

struct TapeUsage {
  TapeRow tape;
  std::uint64_t archives = 0;
  std::uint64_t members = 0;
  std::uint64_t plain_bytes = 0;
};

struct CatalogStatus {
  std::uint64_t dirs = 0;
  std::uint64_t files = 0;
  std::uint64_t versions = 0;
  std::uint64_t version_bytes = 0;
  std::uint64_t copies = 0;
  std::uint64_t below_goal_versions = 0;  // every version ever recorded counts
  std::uint64_t below_goal_bytes = 0;
  std::uint64_t dirty_files = 0;
  std::vector<TapeUsage> tapes;
};

}  // namespace mixtape::catalog
