// Private to engine/backup: the write stage of the pipeline (pipeline.h).
//
// A session writes to one tape per drive it uses. Every archive is read from
// the source files, tarred and encrypted once, and written by all drives at
// once (one read, N writes); each tape gets its own index before it (serial,
// file numbers and first block differ per tape), and its own trailing index
// after the last one. A drive whose write fails is dropped from the session;
// the others go on.
//
// Committing: a tape's archives and copies are added to the catalog in a
// transaction from inside which its trailing index is written, and the
// transaction commits only once the tape holds it. A crash before then
// leaves the catalog as it was; the tape's append point is unchanged, so
// the next session overwrites whatever this one left. With commit_every, a
// session commits this way every so many bytes (a checkpoint), then writes
// its next index over that trailing index and goes on, so a crash loses at
// most that much tape work.
#pragma once

#include <memory>
#include <optional>
#include <set>
#include <vector>

#include "engine/backup/fan_out.h"
#include "engine/backup/pipeline.h"

namespace mixtape::backup {

struct WrittenArchive {
  catalog::ArchiveRow row;
  std::vector<catalog::CopyRow> copies;
  std::uint64_t plain_bytes = 0;
  std::uint64_t index_bytes = 0;  // on tape
  catalog::IndexMark mark;        // what its index holds of the catalog
};

// What became of one tape of a session.
struct LaneOutcome {
  Target target;
  std::vector<WrittenArchive> archives;  // committed
  bool full = false;                     // takes no more archives (full, or a media error)
  bool positioned = false;               // reached its append point: something may be written
  std::int64_t file = 0;                 // tape file number of the next index
  std::uint64_t trailing_block = 0;      // where its trailing index goes
  // The write error that dropped it from the session (not the physical end,
  // which only makes it full).
  std::optional<tape::TapeError> failure;
  bool committed = false;  // its last commit succeeded: the tape ends as the catalog says
};

class WriteSession {
 public:
  WriteSession(catalog::Writer& catalog, std::vector<Target> targets, Id run_id,
               const Sealing& sealing, std::uint64_t age_header_length,
               const BackupOptions& options, Progress& progress);
  ~WriteSession();
  WriteSession(const WriteSession&) = delete;
  WriteSession& operator=(const WriteSession&) = delete;

  struct Outcome {
    std::vector<LaneOutcome> lanes;  // in the order of the targets
    std::uint64_t not_copied = 0;
    std::set<Id> changed;            // files that changed between hashing and writing
    std::set<Id> vanished;           // files deleted between hashing and writing
    std::uint64_t source_bytes = 0;  // read from source files
    std::uint64_t checkpoints = 0;   // commits before the end of the session
  };

  // Writes the jobs from each tape's append point on, until the queue ends
  // or no tape takes more, committing at checkpoints (options.commit_every).
  // What was written since the last checkpoint is committed by commit().
  Outcome write(BoundedQueue<ArchiveJob>& jobs);
  void commit(Outcome& outcome);

 private:
  struct Lane;
  enum class Copied { kYes, kChanged, kVanished };

  static void position_at_append_point(Lane& lane);
  void drop(Lane& lane, std::optional<std::uint64_t> abandoned_from);
  void write_archive(const ArchiveJob& job, Outcome& outcome);
  void checkpoint(Outcome& outcome);
  // Commits what the lane wrote since its last commit; true if it did.
  bool commit_lane(Lane& lane, const Outcome& outcome);
  void commit_at(Lane& lane, const Outcome& outcome, std::uint64_t trailing_block);
  void mark_files(const Outcome& outcome);
  Copied write_member(format::PaxWriter& tar, crypto::AgeEncryptor* direct, const Member& member);

  catalog::Writer& catalog_;
  std::vector<std::unique_ptr<Lane>> lanes_;
  Id run_id_;
  const Sealing& sealing_;
  std::uint64_t age_header_length_;
  const BackupOptions& options_;
  Progress& progress_;
  std::uint64_t source_bytes_ = 0;
  std::uint64_t since_checkpoint_ = 0;  // archive bytes written since the last commit
  std::uint64_t tapes_taking_ = 0;      // the archive being written goes to this many tapes
  Bytes buffer_;
  // The fan-out's chunks and the encryptors' batches, reused from archive
  // to archive (queued drive commands may hold some).
  BufferPool chunks_;
  BufferPool age_buffers_;
};

}  // namespace mixtape::backup
