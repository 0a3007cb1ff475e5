// Private to engine/backup: the hash stage of the write pipeline
// (pipeline.h). On a thread of its own, with its own catalog connection, it
// hashes the session's dirty candidates a few files ahead on a pool of
// hashing threads, records their versions, checks that known versions'
// files are still as hashed, and packs what each tape of the session needs
// into archives whose offsets are known before they are written.
#pragma once

#include <atomic>
#include <exception>
#include <future>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "engine/backup/pipeline.h"

namespace mixtape::backup {

class HashPool;

struct HashStageResult {
  HashReport report;
  std::set<Id> given_up;     // files not to try again in this run
  bool tape_filled = false;  // a member did not fit in the room left
  std::string first_unfitted;
  Id first_unfitted_id = 0;
  // Files larger than a whole tape (grown since the scan checked them):
  // given up, with the error line for each.
  std::vector<std::string> too_large;
  std::exception_ptr error;
};

// How far the hash stage hashes ahead of the file it packs. An archive's
// index (every member's hash) precedes it on tape, so archive k is written
// once all its files are hashed; hashing only about the rest of the archive
// being packed and the next one lets the writer write archive k while k+1
// is hashed, instead of waiting for everything the look-ahead took in
// (lanes advance together, so files hashed side by side end together).
// Large files are hashed in pairs or groups (one file alone in the lanes
// costs nearly what a group does), so a thread's group is admitted whole
// while it is not too large.
struct Lookahead {
  std::size_t group = 1;        // files submitted together, at least
  std::size_t least_files = 1;  // always this many (one per hashing thread)
  std::size_t group_files = 1;  // this many while they are under group_bytes
  std::uint64_t group_bytes = 0;
  std::size_t most_files = 1;    // never more (the threads' lanes, twice over)
  std::uint64_t most_bytes = 0;  // otherwise: about two archives

  // group: files a thread hashes in one pass of its lanes.
  static Lookahead for_stage(unsigned threads, std::size_t group, std::uint64_t archive_size,
                             std::uint64_t cache_share);
  // Whether one more file may be submitted with this much already ahead
  // (files and scanned bytes submitted and not yet packed).
  bool admits(std::size_t files_ahead, std::uint64_t bytes_ahead) const;
};

// The hashing threads of a stage, and the files one of them hashes in one
// pass of its lanes (a group: eight on AVX-512, four on AVX2, else one).
unsigned hash_threads();
std::size_t hash_group();

// Prepares the archives of one session: for every tape of the session, the
// same members (versions that need a copy on each of them and have none on
// any), packed to fit the tape with the least room.
class HashStage {
 public:
  HashStage(const catalog::Writer& writer, std::vector<Id> tape_ids, Id run_id,
            std::uint64_t archive_size, const Room& room, const std::atomic<bool>& cancel,
            Progress& progress);
  HashStage(const HashStage&) = delete;
  HashStage& operator=(const HashStage&) = delete;

  // Never throws: errors end up in result.error. Closes `out` when done, and
  // leaves no transaction open, so the writer can commit after it.
  void run(std::vector<Candidate> candidates, BoundedQueue<ArchiveJob>& out,
           HashStageResult& result);

 private:
  void produce(const std::vector<Candidate>& candidates, HashPool& pool,
               BoundedQueue<ArchiveJob>& out, HashStageResult& result);
  // Pre-submits hashing of the dirty candidates after `from`.
  void top_up(const std::vector<Candidate>& candidates, std::size_t from, HashPool& pool,
              std::map<std::size_t, std::future<HashResult>>& pending);
  // Turns a candidate into a member of this tape's next archive, or nullopt
  // (it needs no copy here, or could not be read: reported and counted).
  std::optional<Member> prepare(const Candidate& candidate,
                                std::optional<std::future<HashResult>> hashing, HashPool& pool,
                                HashStageResult& result);
  std::optional<catalog::ScanState> scan_state(Id file_id);
  bool on_session_tape(Id version_id);
  void write_transaction();

  catalog::Catalog catalog_;
  std::vector<Id> tape_ids_;
  Id run_id_;
  std::uint64_t archive_size_;
  Room room_;
  const std::atomic<bool>& cancel_;
  Progress& progress_;
  catalog::WriteBatch batch_{catalog_};
  Lookahead lookahead_;
  std::size_t submitted_ = 0;
  std::uint64_t bytes_ahead_ = 0;  // scanned sizes of the files submitted and not yet taken
  Id cached_dir_ = 0;
  std::map<Id, catalog::ScanState> cached_states_;
};

}  // namespace mixtape::backup
