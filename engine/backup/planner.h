// Private to engine/backup: planning a backup run's sessions (pipeline.h):
// what still needs copies, which tapes a session writes and in which
// drives, and what it may write to them.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "engine/backup/pipeline.h"

namespace mixtape::backup {

// What is left to do in this run. copies: the most copies anything still
// needs, the largest shortfall of a version below its goal, or the goal of
// a dirty file (not hashed yet, so its content may turn out to have copies
// already); 0: nothing to do. bytes and items: the copies still to write
// (each dirty file counted at its goal), for the progress line.
struct WorkLeft {
  int copies = 0;
  std::uint64_t bytes = 0;
  std::uint64_t items = 0;
};
WorkLeft work_left(catalog::Writer& catalog, const std::set<Id>& given_up);

// What a session on these tapes may write: every dirty file (hashing tells
// whether it needs a copy), and the versions that need a copy on each of the
// tapes and have none on any, in the catalog's path order.
std::vector<Candidate> candidates_for(catalog::Writer& catalog, const std::vector<Id>& tape_ids,
                                      const std::set<Id>& given_up);

// Bytes of every version below its goal that is still on disk.
std::uint64_t pending_bytes(catalog::Writer& catalog);

// Refuses tapes too small to hold even their label and a catalog copy.
// Returns the files no tape could hold (dirty files by their scanned size,
// and pending versions), each with its error line; the run gives them up
// and backs up the rest.
struct TooLarge {
  Id file_id = 0;
  std::string line;
};
std::vector<TooLarge> files_larger_than_a_tape(catalog::Writer& catalog,
                                               const BackupOptions& options,
                                               std::uint64_t label_bytes, const Sealing& sealing,
                                               std::uint64_t age_header_length);

// Chooses and loads the tapes of the next session and the drives that write
// them.
class SessionPlanner {
 public:
  SessionPlanner(catalog::Writer& catalog, tape::Library& library, const BackupOptions& options,
                 const WriterKeys& keys, Progress& progress)
      : catalog_(catalog), library_(library), options_(options), keys_(keys), progress_(progress) {}

  // Drives not dropped from the run.
  std::vector<std::size_t> live_drives() const;
  void drop_drive(std::size_t index, const std::string& why, BackupReport& report);

  // `count` tapes (the usable ones first, then new ones labelled here), each
  // loaded in its own live drive; a tape already in a live drive stays
  // there. Empty if a drive failed on the way (it is dropped: try again).
  std::vector<Target> choose(std::size_t count, const std::set<std::string>& exhausted,
                             BackupReport& report);

 private:
  catalog::Writer& catalog_;
  tape::Library& library_;
  const BackupOptions& options_;
  const WriterKeys& keys_;
  Progress& progress_;
  std::set<std::size_t> dead_;
};

}  // namespace mixtape::backup
