// backup(): a run of sessions until every version has its copies.
//
// A session takes as many tapes as drives are left and copies are wanted,
// and writes to them whatever needs a copy on each (never a second copy of
// a version on one tape); a tape that fills is marked full. Files that
// cannot be read, keep changing or are larger than a tape are given up for
// the rest of the run (and left dirty for the next one), so a run always
// ends.
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <mutex>
#include <thread>

#include "engine/backup/hash_stage.h"
#include "engine/backup/planner.h"
#include "engine/backup/write_session.h"

namespace mixtape::backup {
namespace {

// A safety net: a run that keeps going round without converging is a bug.
constexpr int kMaxSessions = 100000;

// Serialises the calls of the hash and write threads, and counts the
// stage's work done (what the totals of the work left are added to).
class LockedProgress final : public Progress {
 public:
  explicit LockedProgress(Progress& inner) : inner_(inner) {}
  void phase(const std::string& name, std::uint64_t bytes, std::uint64_t items) override {
    std::lock_guard lock(mutex_);
    done_bytes_ = done_items_ = 0;
    inner_.phase(name, bytes, items);
  }
  void totals(std::uint64_t bytes, std::uint64_t items) override {
    std::lock_guard lock(mutex_);
    inner_.totals(bytes, items);
  }
  void tape(const std::string& serial) override {
    std::lock_guard lock(mutex_);
    inner_.tape(serial);
  }
  void advance(std::uint64_t bytes, std::uint64_t items, const std::string& current) override {
    std::lock_guard lock(mutex_);
    done_bytes_ += bytes;
    done_items_ += items;
    inner_.advance(bytes, items, current);
  }
  // The stage's totals: what was done in it and `left` to do.
  void work_left(const WorkLeft& left) {
    std::lock_guard lock(mutex_);
    inner_.totals(done_bytes_ + left.bytes, done_items_ + left.items);
  }
  void file_hashed(const std::string& path, std::uint64_t bytes) override {
    std::lock_guard lock(mutex_);
    inner_.file_hashed(path, bytes);
  }
  void warning(const std::string& message) override {
    std::lock_guard lock(mutex_);
    inner_.warning(message);
  }

 private:
  Progress& inner_;
  std::mutex mutex_;
  std::uint64_t done_bytes_ = 0, done_items_ = 0;
};

void check_roots(const std::vector<std::string>& roots) {
  if (roots.empty()) throw Error("nothing to back up: no roots given");
  for (const auto& root : roots) {
    struct stat st {};
    if (root.empty() || root[0] != '/')
      throw Error("backup root must be an absolute path: " + root);
    if (::lstat(root.c_str(), &st) != 0) throw SystemError("cannot back up " + root, errno);
  }
}

struct SessionResult {
  WriteSession::Outcome outcome;
  HashStageResult hashed;
  // Per target: its room was the least, so it bounded the packing (if the
  // hash stage found the tape filled, these are the full ones).
  std::vector<bool> constraining;
};

// One session: the hash stage and the write stage (one drive per tape)
// joined by the queue, then each tape's trailing index and commit.
SessionResult run_session(catalog::Writer& catalog, const std::vector<Target>& targets, Id run_id,
                          const Sealing& sealing, std::uint64_t age_header_length,
                          const BackupOptions& options, std::uint64_t archive_size,
                          std::uint64_t label_bytes, std::vector<Candidate> candidates,
                          Progress& progress) {
  const std::uint64_t catalog_size = catalog_bytes(catalog);
  std::vector<Room> rooms;
  std::vector<Id> tape_ids;
  for (const auto& target : targets) {
    const catalog::TapeRow& tape = target.tape;
    rooms.push_back(room_for(tape.capacity, tape.bytes_used, tape.record_size, catalog_size,
                             label_bytes, sealing, age_header_length));
    tape_ids.push_back(tape.id);
  }
  // Every archive goes to every tape: packed for the one with the least room
  // (and the smallest records, the most framing).
  Room room = rooms.front();
  for (const Room& r : rooms) {
    room.session = std::min(room.session, r.session);
    room.empty_tape = std::min(room.empty_tape, r.empty_tape);
    room.record_size = std::min(room.record_size, r.record_size);
  }

  SessionResult result;
  for (const Room& r : rooms) result.constraining.push_back(r.session == room.session);
  BoundedQueue<ArchiveJob> jobs(1);
  std::atomic<bool> cancel{false};
  HashStage stage(catalog, tape_ids, run_id, archive_size, room, cancel, progress);
  WriteSession session(catalog, targets, run_id, sealing, age_header_length, options, progress);
  std::exception_ptr write_error;
  {
    std::jthread hasher([&] { stage.run(std::move(candidates), jobs, result.hashed); });
    try {
      result.outcome = session.write(jobs);
    } catch (...) {
      write_error = std::current_exception();
    }
    // The writer is done (or no tape takes more): stop hashing ahead, and
    // wait for the stage, which commits its versions, before committing.
    cancel = true;
    jobs.cancel();
  }
  if (write_error) std::rethrow_exception(write_error);
  session.commit(result.outcome);
  return result;
}

}  // namespace

BackupReport backup(catalog::Writer& catalog, tape::Library& library, const BackupOptions& options,
                    const WriterKeys& keys, Progress& user_progress) {
  LockedProgress progress(user_progress);
  BackupReport report;
  check_roots(options.roots);
  Sealing sealing = sealing_for(catalog, keys);
  std::uint64_t age_header_length = sealing.header_length();
  if (options.copies) {
    if (*options.copies < 1) throw Error("--copies must be at least 1");
    for (const auto& root : options.roots) catalog.set_copy_goal(root, *options.copies);
  }
  Id run_id = catalog.begin_run(catalog::RunKind::kBackup, options.roots);
  report.scan = scan(catalog, options.roots, options.walk, run_id, progress);
  // File 0 and the first trailing index of a new tape (the catalog's small
  // tables only).
  std::uint64_t record_size = catalog.config().record_size;
  // (4 KiB of slack: a longer serial prefix makes the label a block longer.)
  std::uint64_t label_bytes =
      tape_bytes(file0_size(catalog, options.label, sealing) + 4096, record_size) +
      tape_bytes(64 << 10, record_size);
  std::set<Id> given_up;  // files not to try again in this run
  for (auto& too_large :
       files_larger_than_a_tape(catalog, options, label_bytes, sealing, age_header_length)) {
    progress.warning(too_large.line);
    report.too_large.push_back(std::move(too_large.line));
    given_up.insert(too_large.file_id);
  }
  std::uint64_t archive_size =
      options.archive_size ? options.archive_size
                           : default_archive_size(report.scan.dirty_bytes + pending_bytes(catalog));

  SessionPlanner planner(catalog, library, options, keys, progress);
  std::set<std::string> exhausted;  // tapes with nothing (more) to take in this run
  // Sessions write to at most this many tapes at once; lowered when a
  // session of that many found nothing that needs a copy on each of them.
  std::size_t width_limit = library.drive_count();
  // One stage for the whole run, however many tapes and sessions: its
  // totals are revised at each session from what is still left.
  progress.phase("backup", 0, 0);
  for (int sessions = 0;; ++sessions) {
    if (sessions == kMaxSessions) throw Error("internal error: backup does not finish");
    const WorkLeft left = work_left(catalog, given_up);
    progress.work_left(left);
    const int wanted = left.copies;
    if (wanted <= 0) break;
    const std::size_t drives = planner.live_drives().size();
    if (drives == 0) {
      progress.warning(
          "no drive left to write with; what still needs copies waits for the next run");
      break;
    }
    const std::size_t width = std::min({static_cast<std::size_t>(wanted), drives, width_limit});
    std::vector<Target> targets = planner.choose(width, exhausted, report);
    if (targets.empty()) continue;  // a drive failed while loading: choose again
    std::vector<Id> tape_ids;
    for (const auto& t : targets) tape_ids.push_back(t.tape.id);
    std::vector<Candidate> candidates = candidates_for(catalog, tape_ids, given_up);
    if (candidates.empty()) {
      if (width == 1)
        exhausted.insert(targets.front().tape.serial);
      else
        width_limit = width - 1;
      continue;
    }
    SessionResult session =
        run_session(catalog, targets, run_id, sealing, age_header_length, options, archive_size,
                    label_bytes, std::move(candidates), progress);
    const auto& hashed = session.hashed;
    const auto& outcome = session.outcome;
    report.hash.files += hashed.report.files;
    report.hash.bytes += hashed.report.bytes;
    report.hash.bytes_read += hashed.report.bytes_read;
    report.hash.new_versions += hashed.report.new_versions;
    report.hash.vanished += hashed.report.vanished;
    report.hash.unreadable += hashed.report.unreadable;
    report.hash.unstable += hashed.report.unstable;
    report.not_copied += outcome.not_copied;
    report.hash.vanished += outcome.vanished.size();
    report.source_bytes_written += outcome.source_bytes;
    report.checkpoints += outcome.checkpoints;
    given_up.insert(hashed.given_up.begin(), hashed.given_up.end());
    given_up.insert(outcome.changed.begin(), outcome.changed.end());
    report.too_large.insert(report.too_large.end(), hashed.too_large.begin(),
                            hashed.too_large.end());

    bool wrote = false, filled = hashed.tape_filled, failed = false, all_fresh = true;
    std::size_t writing_tapes = 0;
    for (std::size_t i = 0; i < outcome.lanes.size(); ++i) {
      const LaneOutcome& lane = outcome.lanes[i];
      const std::string& serial = lane.target.tape.serial;
      all_fresh = all_fresh && lane.target.fresh;
      filled = filled || lane.full;
      if (!lane.archives.empty()) {
        wrote = true;
        ++writing_tapes;
        if (std::find(report.tapes.begin(), report.tapes.end(), serial) == report.tapes.end())
          report.tapes.push_back(serial);
      }
      report.archives += lane.archives.size();
      for (const auto& archive : lane.archives) {
        report.copies += archive.copies.size();
        report.bytes += archive.plain_bytes;
      }
      if (lane.failure) {
        failed = true;
        exhausted.insert(serial);  // not again in this run
        if (drive_failure(lane.failure->kind()))
          planner.drop_drive(lane.target.drive_index, lane.failure->what(), report);
      } else if (hashed.tape_filled && session.constraining[i] && lane.committed && !lane.full) {
        catalog.set_tape_state(lane.target.tape.id, catalog::TapeState::kFull);
      }
    }
    if (writing_tapes > 1) ++report.multi_drive_sessions;
    // The session committed what it wrote; now its errors count.
    if (hashed.error) std::rethrow_exception(hashed.error);

    if (!wrote && !failed) {
      if (filled && all_fresh) {
        // Labelling yet another tape would fare no better: that file is
        // given up, the rest goes on.
        if (!hashed.first_unfitted_id) throw Error("internal error: a tape filled with nothing");
        std::string line = hashed.first_unfitted + " does not fit on an empty tape " +
                           targets.front().tape.serial + " (" +
                           format_size(targets.front().tape.capacity) + "); it cannot be backed up";
        progress.warning(line);
        report.too_large.push_back(std::move(line));
        given_up.insert(hashed.first_unfitted_id);
        continue;
      }
      if (!filled) {
        if (width == 1)
          exhausted.insert(targets.front().tape.serial);
        else
          width_limit = width - 1;
      }
    }
  }
  catalog.finish_run(run_id);
  catalog.set_run_totals(run_id, report.scan.files, report.scan.bytes);
  catalog.for_each_pending(0, [&](const catalog::PendingVersion&) { ++report.below_goal; });
  return report;
}

}  // namespace mixtape::backup
