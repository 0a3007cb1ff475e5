// The write pipeline.
//
//   hash stage (own thread + hash pool, own catalog connection)   write stage (caller's thread)
//   -----------------------------------------------------------   ----------------------------
//   for each candidate of this tape, in path order:                for each ArchiveJob:
//     dirty file    -> read + hash (pool, a few files ahead),        index  -> age -> records
//                      record the version                           archive: pax tar -> age ->
//     known version -> check the source is as it was hashed           records -> drive (files
//     pack into an ArchiveJob (offsets known in advance)              re-read from page cache)
//   ----------------------- BoundedQueue<ArchiveJob>, capacity 1 ----------------------->
//
// An index names every member's hash and precedes its archive, so archive
// k+1 is hashed while archive k is written; the queue gives back-pressure,
// not unbounded memory. The hash stage hashes several files at once on a
// small pool, so hashing (the slowest step per byte) can use every core the
// write stage leaves idle.
//
// After the last archive of a session the trailing index is written inside
// the catalog transaction that adds the session's archives and copies, and
// only once the tape holds it is that transaction committed. A crash before
// then leaves the catalog as it was; the tape's append point is unchanged,
// so the next session overwrites whatever this one left.
//
// backup() runs sessions until every version has its copies: each session
// writes to one tape whatever that tape can take (never a second copy of a
// version), and a tape that fills is marked full. Files that cannot be read
// or keep changing are given up for the rest of the run (and left dirty for
// the next one), so a run always ends.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <filesystem>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "engine/backup/attributes.h"
#include "engine/backup/backup.h"
#include "engine/backup/hasher.h"
#include "engine/backup/tape_file.h"
#include "engine/format/format.h"

namespace mixtape::backup {
namespace {

using catalog::Id;

constexpr std::uint64_t kMaxArchiveSize = 4ULL << 30;
constexpr std::uint64_t kMinArchiveSize = 64ULL << 20;
// Archives per run the default size aims for: enough that hashing archive
// k+1 overlaps writing archive k for most of the run.
constexpr std::uint64_t kArchivesPerRun = 8;
// Small enough that the encryptor copies each read from the L2 cache: 12%
// less CPU than 1 MiB reads in bench/write (smaller gains nothing more).
constexpr std::size_t kCopyBuffer = 256 << 10;
// SIMH images spend 8 bytes of length words per record (and a filemark 4);
// tape capacity is counted in image bytes, so planning counts them too.
constexpr std::uint64_t kRecordOverhead = 9;
// Files hashed ahead of the one being packed, per hashing thread.
constexpr std::size_t kLookaheadPerThread = 2;
// A safety net: a run that keeps going round without converging is a bug.
constexpr int kMaxSessions = 100000;

std::uint64_t file_size_or_zero(const std::string& path) {
  std::error_code ignored;
  std::uint64_t size = std::filesystem::file_size(path, ignored);
  return ignored ? 0 : size;
}

// ------------------------------------------------------------ progress

// Serialises the calls of the hash and write threads.
class LockedProgress final : public Progress {
 public:
  explicit LockedProgress(Progress& inner) : inner_(inner) {}
  void phase(const std::string& name, std::uint64_t bytes, std::uint64_t items) override {
    std::lock_guard lock(mutex_);
    inner_.phase(name, bytes, items);
  }
  void advance(std::uint64_t bytes, std::uint64_t items, const std::string& current) override {
    std::lock_guard lock(mutex_);
    inner_.advance(bytes, items, current);
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
};

// ------------------------------------------------------------ sizes

// Bytes of tape a tape file of `bytes` bytes takes, record framing included.
std::uint64_t tape_bytes(std::uint64_t bytes, std::uint64_t record_size) {
  return bytes + format::record_count(bytes, record_size) * kRecordOverhead + kRecordOverhead;
}

// The catalog's logical size (what a copy of it into an index takes), which
// the file size is not: the WAL may hold many versions of the same pages.
std::uint64_t catalog_bytes(catalog::Catalog& catalog) {
  auto pages = catalog.database().prepare("PRAGMA page_count");
  auto page_size = catalog.database().prepare("PRAGMA page_size");
  if (!pages.step() || !page_size.step()) return file_size_or_zero(catalog.path());
  return static_cast<std::uint64_t>(pages.column_int(0)) *
         static_cast<std::uint64_t>(page_size.column_int(0));
}

// Room kept free at the end of a tape: its trailing index (a catalog copy)
// with slack for the catalog growing during the session, a few records, and
// 1% for everything estimated.
std::uint64_t safety_margin(std::uint64_t catalog_size, std::uint64_t capacity,
                            std::uint64_t record_size) {
  return capacity / 100 + 2 * catalog_size + 8 * record_size + (1 << 20);
}

std::uint64_t default_archive_size(std::uint64_t work_bytes) {
  // The write stage re-reads each file from the page cache, which must hold
  // the archive being written and the ones hashed ahead of it.
  std::uint64_t largest = kMaxArchiveSize;
  struct sysinfo info {};
  if (::sysinfo(&info) == 0)
    largest = std::min<std::uint64_t>(
        largest, static_cast<std::uint64_t>(info.totalram) * info.mem_unit / 8);
  largest = std::max(largest, kMinArchiveSize);
  return std::clamp(work_bytes / kArchivesPerRun, kMinArchiveSize, largest);
}

format::MemberInfo member_info(const catalog::VersionRow& version, const std::string& path) {
  format::MemberInfo info;
  info.path = path.substr(1);
  info.type = version.kind == catalog::VersionKind::kSymlink ? format::MemberType::kSymlink
                                                             : format::MemberType::kFile;
  info.size = version.kind == catalog::VersionKind::kFile ? version.size : 0;
  info.mode = version.attrs.mode & 07777;
  info.uid = version.attrs.uid;
  info.gid = version.attrs.gid;
  info.uname = version.attrs.uname;
  info.gname = version.attrs.gname;
  info.mtime_ns = version.attrs.mtime_ns;
  info.linkpath = version.symlink_target;
  if (version.kind == catalog::VersionKind::kFile) info.blake2b256 = to_hex(version.hash);
  return info;
}

// ------------------------------------------------------------ the queue

template <typename T>
class BoundedQueue {
 public:
  explicit BoundedQueue(std::size_t capacity) : capacity_(capacity) {}

  // False if the consumer has gone away.
  bool push(T item) {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return items_.size() < capacity_ || cancelled_; });
    if (cancelled_) return false;
    items_.push_back(std::move(item));
    changed_.notify_all();
    return true;
  }
  // nullopt once the producer closed and everything was taken.
  std::optional<T> pop() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return !items_.empty() || closed_; });
    if (items_.empty()) return std::nullopt;
    T item = std::move(items_.front());
    items_.pop_front();
    changed_.notify_all();
    return item;
  }
  void close() {
    std::lock_guard lock(mutex_);
    closed_ = true;
    changed_.notify_all();
  }
  // The consumer stops: the producer's next push returns false.
  void cancel() {
    std::lock_guard lock(mutex_);
    cancelled_ = true;
    items_.clear();
    changed_.notify_all();
  }

 private:
  std::size_t capacity_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<T> items_;
  bool closed_ = false;
  bool cancelled_ = false;
};

// ------------------------------------------------------------ hash pool

// Hashes files on worker threads, each with its own FileHasher (buffer and
// name cache). Results are futures, so the caller consumes them in its order.
class HashPool {
 public:
  HashPool(unsigned threads, const std::atomic<bool>& cancel) {
    for (unsigned i = 0; i < threads; ++i) workers_.emplace_back([this, &cancel] { work(cancel); });
  }
  ~HashPool() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    ready_.notify_all();
    // jthreads join; tasks not started are dropped with their promises,
    // which nobody waits on any more.
  }
  HashPool(const HashPool&) = delete;
  HashPool& operator=(const HashPool&) = delete;

  std::future<HashResult> submit(const std::string& path) {
    std::packaged_task<HashResult(FileHasher&)> task(
        [path](FileHasher& hasher) { return hasher.hash(path); });
    auto future = task.get_future();
    {
      std::lock_guard lock(mutex_);
      tasks_.push_back(std::move(task));
    }
    ready_.notify_one();
    return future;
  }

 private:
  void work(const std::atomic<bool>& cancel) {
    FileHasher hasher(&cancel);
    for (;;) {
      std::packaged_task<HashResult(FileHasher&)> task;
      {
        std::unique_lock lock(mutex_);
        ready_.wait(lock, [&] { return stopping_ || !tasks_.empty(); });
        if (stopping_) return;
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task(hasher);
    }
  }

  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::packaged_task<HashResult(FileHasher&)>> tasks_;
  bool stopping_ = false;
  std::vector<std::jthread> workers_;  // last: joined before the rest goes
};

// ------------------------------------------------------------ hash stage

struct Candidate {
  std::string path;
  Id file_id = 0;
  std::optional<catalog::VersionRow> version;  // nullopt: dirty, hash first
};

struct Member {
  std::string path;
  Id file_id = 0;
  catalog::VersionRow version;
  format::MemberInfo info;
  format::MemberOffsets offsets;
  HashedFile::stat_identity identity;  // as the content named by version.hash
};

struct ArchiveJob {
  std::vector<Member> members;
  std::uint64_t plain_size = 0;  // finished tar
};

// Where the tape stands when a session starts, for packing.
struct Room {
  std::uint64_t session = 0;      // bytes this session may use before the trailing index
  std::uint64_t empty_tape = 0;   // what a whole empty tape of this size offers
  std::uint64_t record_size = 0;  // R
  std::uint64_t index_base = 0;   // an index's size before its member rows (catalog copy)
  std::uint64_t age_header_length = 0;
  const Sealing* sealing = nullptr;

  // Tape bytes an archive of this plaintext size takes with its index.
  std::uint64_t footprint(std::uint64_t plain_size, std::uint64_t index_member_bytes) const {
    std::uint64_t index = sealed_size(*sealing, age_header_length, index_base + index_member_bytes);
    return tape_bytes(sealed_size(*sealing, age_header_length, plain_size), record_size) +
           tape_bytes(index, record_size);
  }
};

// Index bytes one member adds (its row), roughly.
std::uint64_t index_member_bytes(const std::string& path) {
  return path.size() + 256;
}

// label_bytes: what a fresh tape spends before its first archive (file 0
// and the trailing index written when it is labelled).
Room room_for(std::uint64_t capacity, std::uint64_t bytes_used, std::uint64_t record_size,
              std::uint64_t catalog_size, std::uint64_t label_bytes, const Sealing& sealing,
              std::uint64_t age_header_length) {
  std::uint64_t margin = safety_margin(catalog_size, capacity, record_size);
  Room room;
  room.record_size = record_size;
  room.index_base = catalog_size + (64 << 10);
  room.age_header_length = age_header_length;
  room.sealing = &sealing;
  room.session = capacity > bytes_used + margin ? capacity - bytes_used - margin : 0;
  std::uint64_t empty_used = margin + label_bytes;
  room.empty_tape = capacity > empty_used ? capacity - empty_used : 0;
  return room;
}

// Whether a member of this size fits on an empty tape at all.
bool fits_empty_tape(const Room& room, std::uint64_t size, const std::string& path) {
  std::uint64_t member = 3 * format::kTarBlockSize + size + format::kTarBlockSize;
  return room.footprint(member + format::kTarEndOfArchiveSize, index_member_bytes(path)) <=
         room.empty_tape;
}

struct HashStageResult {
  HashReport report;
  std::set<Id> given_up;     // files not to try again in this run
  bool tape_filled = false;  // a member did not fit in the room left
  std::string first_unfitted;
  std::exception_ptr error;
};

class HashStage {
 public:
  HashStage(const std::string& catalog_path, Id tape_id, Id run_id, std::uint64_t archive_size,
            const Room& room, const std::atomic<bool>& cancel, Progress& progress)
      : catalog_(catalog::Catalog::open(catalog_path)),
        tape_id_(tape_id),
        run_id_(run_id),
        archive_size_(archive_size),
        room_(room),
        cancel_(cancel),
        progress_(progress) {}

  // Never throws: errors end up in result.error. Closes `out` when done, and
  // leaves no transaction open, so the writer can commit after it.
  void run(std::vector<Candidate> candidates, BoundedQueue<ArchiveJob>& out,
           HashStageResult& result) {
    try {
      HashPool pool(std::max(1u, std::min(4u, std::thread::hardware_concurrency())), cancel_);
      produce(candidates, pool, out, result);
    } catch (...) {
      result.error = std::current_exception();
    }
    try {
      // What was recorded is true (each version is the hash of what its
      // file held), so it is kept even when the stage failed.
      if (transaction_) transaction_->commit();
    } catch (...) {
      if (!result.error) result.error = std::current_exception();
    }
    transaction_.reset();
    out.close();
  }

 private:
  // Pre-submits hashing of the dirty candidates in [from, from + window).
  void top_up(const std::vector<Candidate>& candidates, std::size_t from, std::size_t window,
              HashPool& pool, std::map<std::size_t, std::future<HashResult>>& pending) {
    std::size_t end = std::min(candidates.size(), from + window);
    for (; submitted_ < end; ++submitted_) {
      if (!candidates[submitted_].version)
        pending.emplace(submitted_, pool.submit(candidates[submitted_].path));
    }
  }

  void produce(const std::vector<Candidate>& candidates, HashPool& pool,
               BoundedQueue<ArchiveJob>& out, HashStageResult& result) {
    const std::size_t window =
        kLookaheadPerThread * std::max(1u, std::thread::hardware_concurrency());
    std::map<std::size_t, std::future<HashResult>> pending;
    ArchiveJob job;
    format::PaxLayout layout;
    std::uint64_t used = 0;  // tape bytes of the archives (with indexes) already emitted
    std::uint64_t job_index_bytes = 0;
    auto emit = [&]() -> bool {
      if (job.members.empty()) return true;
      job.plain_size = layout.finished_size();
      used += room_.footprint(job.plain_size, job_index_bytes);
      // The versions of the job must be committed before the writer copies
      // the catalog into the job's index.
      if (transaction_) transaction_->commit();
      transaction_.reset();
      bool accepted = out.push(std::move(job));
      job = ArchiveJob{};
      layout = format::PaxLayout{};
      job_index_bytes = 0;
      return accepted;
    };
    for (std::size_t i = 0; i < candidates.size(); ++i) {
      if (cancel_.load()) return;
      top_up(candidates, i, window, pool, pending);
      std::optional<std::future<HashResult>> hashing;
      if (auto it = pending.find(i); it != pending.end()) {
        hashing = std::move(it->second);
        pending.erase(it);
      }
      std::optional<Member> member = prepare(candidates[i], std::move(hashing), pool, result);
      if (!member) continue;
      std::uint64_t member_size =
          format::pax_header_size(member->info) + round_up(member->info.size);
      std::uint64_t member_index = index_member_bytes(member->path);
      if (room_.footprint(member_size + format::kTarEndOfArchiveSize, member_index) >
          room_.empty_tape) {
        // It grew since the scan checked it.
        throw Error(member->path + " (" + format_size(member->info.size) +
                    ") is larger than a whole tape; it cannot be backed up");
      }
      if (!job.members.empty() && layout.position() + member_size > archive_size_) {
        if (!emit()) return;
      }
      if (used + room_.footprint(layout.position() + member_size + format::kTarEndOfArchiveSize,
                                 job_index_bytes + member_index) >
          room_.session) {
        // Not on this tape; smaller files after it may still fit (first fit
        // in path order). The tape counts as full once the session ends.
        if (!result.tape_filled) result.first_unfitted = member->path;
        result.tape_filled = true;
        continue;
      }
      member->offsets = layout.add(member->info);
      job_index_bytes += member_index;
      job.members.push_back(std::move(*member));
    }
    emit();
  }

  static std::uint64_t round_up(std::uint64_t n) {
    return (n + format::kTarBlockSize - 1) / format::kTarBlockSize * format::kTarBlockSize;
  }

  void write_transaction() {
    if (!transaction_) transaction_.emplace(catalog_.database());
  }

  // The scan state of a file, read a directory at a time (candidates come
  // in path order, so each directory is read about once).
  std::optional<catalog::ScanState> scan_state(Id file_id) {
    auto file = catalog_.file(file_id);
    if (!file) return std::nullopt;
    if (file->dir != cached_dir_) {
      cached_dir_ = file->dir;
      cached_states_.clear();
      for (auto& entry : catalog_.scan_entries(file->dir))
        if (entry.state) cached_states_.emplace(entry.file_id, *entry.state);
    }
    auto it = cached_states_.find(file_id);
    if (it == cached_states_.end()) return std::nullopt;
    return it->second;
  }

  // Turns a candidate into a member of this tape's next archive, or nullopt
  // (it needs no copy here, or could not be read: reported and counted).
  std::optional<Member> prepare(const Candidate& candidate,
                                std::optional<std::future<HashResult>> hashing, HashPool& pool,
                                HashStageResult& result) {
    Member member;
    member.path = candidate.path;
    member.file_id = candidate.file_id;
    if (candidate.version) {
      // Hashed in an earlier session or run. The scan state describes the
      // content that was hashed; if the file no longer matches it, it has
      // changed since and is hashed again now.
      struct stat st {};
      if (lstat_source(candidate.path, st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR) {
          write_transaction();
          catalog_.mark_absent(candidate.file_id);
          ++result.report.vanished;
          progress_.warning(candidate.path + ": vanished before it was written");
        } else {
          ++result.report.unreadable;
          result.given_up.insert(candidate.file_id);
          progress_.warning(candidate.path + ": " + std::strerror(errno) +
                            "; not backed up this time");
        }
        return std::nullopt;
      }
      auto state = scan_state(candidate.file_id);
      HashedFile::stat_identity now = identity_of(st);
      if (state && same_identity(now, {state->size, state->mtime_ns, state->ctime_ns, state->dev,
                                       state->ino})) {
        member.version = *candidate.version;
        member.identity = now;
        member.info = member_info(member.version, member.path);
        return member;
      }
      hashing = pool.submit(candidate.path);
    }
    HashResult hashed = hashing->get();
    switch (hashed.failure) {
      case HashFailure::kNone:
        break;
      case HashFailure::kCancelled:
        return std::nullopt;
      case HashFailure::kVanished:
        write_transaction();
        catalog_.mark_absent(candidate.file_id);
        ++result.report.vanished;
        progress_.warning(candidate.path + ": " + hashed.why + "; not backed up");
        return std::nullopt;
      case HashFailure::kUnreadable:
      case HashFailure::kUnstable:
        ++(hashed.failure == HashFailure::kUnstable ? result.report.unstable
                                                    : result.report.unreadable);
        result.given_up.insert(candidate.file_id);
        write_transaction();
        catalog_.mark_dirty(candidate.file_id);
        progress_.warning(candidate.path + ": " + hashed.why + "; not backed up this time");
        return std::nullopt;
    }
    HashedFile& file = *hashed.file;
    write_transaction();
    auto recorded = catalog_.record_version(candidate.file_id, file.version, run_id_);
    // The scan state now describes exactly the content that was hashed, so
    // later sessions (other copies) can trust it without hashing again.
    catalog_.set_scan_state(candidate.file_id, scan_state_for(file.identity, run_id_));
    ++result.report.files;
    result.report.bytes += file.version.size;
    if (recorded.created) ++result.report.new_versions;
    progress_.file_hashed(candidate.path, file.version.size);
    auto version = catalog_.version(recorded.id);
    if (!version || version->copies >= version->goal || on_this_tape(recorded.id))
      return std::nullopt;
    member.version = *version;
    member.identity = file.identity;
    member.info = member_info(member.version, member.path);
    return member;
  }

  bool on_this_tape(Id version_id) {
    for (const auto& replica : catalog_.copies_of(version_id))
      if (replica.tape.id == tape_id_) return true;
    return false;
  }

  catalog::Catalog catalog_;
  Id tape_id_;
  Id run_id_;
  std::uint64_t archive_size_;
  Room room_;
  const std::atomic<bool>& cancel_;
  Progress& progress_;
  std::optional<sqlite::Transaction> transaction_;
  std::size_t submitted_ = 0;
  Id cached_dir_ = 0;
  std::map<Id, catalog::ScanState> cached_states_;
};

// ------------------------------------------------------------ write stage

struct WrittenArchive {
  catalog::ArchiveRow row;
  std::vector<catalog::CopyRow> copies;
  std::uint64_t plain_bytes = 0;
  std::uint64_t index_bytes = 0;  // on tape
};

class WriteSession {
 public:
  WriteSession(catalog::Catalog& catalog, tape::Drive& drive, catalog::TapeRow tape, Id run_id,
               const Sealing& sealing, std::uint64_t age_header_length,
               const BackupOptions& options, Progress& progress)
      : catalog_(catalog),
        drive_(drive),
        tape_(std::move(tape)),
        run_id_(run_id),
        sealing_(sealing),
        age_header_length_(age_header_length),
        options_(options),
        progress_(progress),
        record_size_(static_cast<std::size_t>(tape_.record_size)) {}

  struct Outcome {
    std::vector<WrittenArchive> archives;
    bool tape_full = false;
    std::uint64_t not_copied = 0;
    std::set<Id> changed;   // files that changed between hashing and writing
    std::set<Id> vanished;  // files deleted between hashing and writing
  };

  // Writes the jobs from the append point on, until the queue ends or the
  // tape is full. Nothing is committed: see commit().
  Outcome write(BoundedQueue<ArchiveJob>& jobs) {
    position_at_append_point();
    Outcome outcome;
    file_ = tape_.append_file;
    progress_.phase("write " + tape_.serial, 0, 0);
    while (auto job = jobs.pop()) {
      std::uint64_t start_block = drive_.tell();
      std::optional<WrittenArchive> written;
      try {
        written = write_archive(*job, outcome);
      } catch (const tape::TapeError& e) {
        if (e.kind() != tape::TapeErrorKind::kPhysicalEnd) throw;
        progress_.warning(tape_.serial + ": " + e.what() + "; the archive goes to the next tape");
      }
      if (!written) {
        // The tape ran out (early warning during the index, or the physical
        // end): the trailing index goes where this archive's index began,
        // and its files go to the next tape.
        drive_.locate(start_block);
        outcome.tape_full = true;
        break;
      }
      outcome.archives.push_back(std::move(*written));
      file_ += 2;
      if (early_warning_) {
        outcome.tape_full = true;
        break;
      }
    }
    return outcome;
  }

  // Adds the session's archives and copies, writes the trailing index from
  // inside that transaction, and commits once the tape holds it. If the
  // tape ends before the trailing index does (a physical end without early
  // warning), the last archive is given up and the trailing index written
  // where its index began, and so on: a tape must always end in a trailing
  // index, and dropped archives only leave their files for the next tape.
  void commit(Outcome& outcome) {
    std::uint64_t position = drive_.tell();
    for (;;) {
      try {
        commit_at(outcome, position);
        return;
      } catch (const tape::TapeError& e) {
        if (e.kind() != tape::TapeErrorKind::kPhysicalEnd || outcome.archives.empty()) throw;
        progress_.warning(tape_.serial +
                          ": no room for the trailing index; the last archive "
                          "goes to the next tape");
        position = outcome.archives.back().row.index_block;
        outcome.archives.pop_back();
        outcome.tape_full = true;
        file_ -= 2;
      }
    }
  }

 private:
  void commit_at(const Outcome& outcome, std::uint64_t trailing_block) {
    drive_.locate(trailing_block);
    auto transaction = catalog_.transaction();
    std::uint64_t bytes_used = tape_.bytes_used;
    for (const auto& archive : outcome.archives) {
      Id archive_id = catalog_.add_archive(archive.row);
      for (auto copy : archive.copies) {
        copy.archive_id = archive_id;
        catalog_.add_copy(copy);
      }
      bytes_used += archive.row.cipher_bytes + archive.index_bytes;
    }
    // Hashed anew by the next run (the scan would notice anyway).
    for (Id file_id : outcome.changed) catalog_.mark_dirty(file_id);
    for (Id file_id : outcome.vanished) catalog_.mark_absent(file_id);
    catalog::TapeRow tape = tape_;
    tape.append_file = file_;
    tape.append_block = trailing_block;
    tape.bytes_used = bytes_used;
    tape.written_at_ns = now_ns();
    tape.state = outcome.tape_full ? catalog::TapeState::kFull : catalog::TapeState::kOpen;
    catalog_.update_tape(tape);
    write_trailing_index(catalog_, drive_, tape, sealing_, temp_directory(options_.temp_dir));
    transaction.commit();
  }

  void position_at_append_point() {
    if (tape_.append_block) {
      drive_.locate(*tape_.append_block);
    } else {
      drive_.rewind();
      drive_.space_filemarks_forward(static_cast<std::uint32_t>(tape_.append_file));
    }
  }

  format::IndexHeader index_header(std::int64_t index_file) {
    format::IndexHeader header;
    header.kind = format::IndexKind::kArchive;
    header.serial = tape_.serial;
    header.record_size = tape_.record_size;
    header.generation = index_generation(index_file);
    header.index_file = static_cast<std::uint64_t>(index_file);
    header.archive_file = static_cast<std::uint64_t>(index_file + 1);
    header.catalog_id = catalog_.catalog_id();
    header.created = format::format_utc(now_ns() / 1000000000);
    header.encrypted = sealing_.mode != Sealing::Mode::kNone;
    return header;
  }

  // The index, then the archive. nullopt if early warning came during the
  // index (the archive is not started: the tape is full).
  std::optional<WrittenArchive> write_archive(const ArchiveJob& job, Outcome& outcome) {
    std::uint64_t index_block = drive_.tell();
    format::ArchiveRecord record;
    record.tape_file = static_cast<std::uint64_t>(file_ + 1);
    record.age_header_length = age_header_length_;
    record.plaintext_size = job.plain_size;
    record.ciphertext_size = sealed_size(sealing_, age_header_length_, job.plain_size);
    record.member_count = job.members.size();
    ScratchFile index_path(temp_directory(options_.temp_dir), "index");
    build_index(index_path.path(), index_header(file_), job, record, index_block);

    WrittenFile index = write_file_to_tape(drive_, record_size_, sealing_, index_path.path());
    if (index.early_warning) return std::nullopt;
    std::uint64_t first_block = drive_.tell();
    if (first_block != record.first_block)
      throw Error("internal error: archive starts at block " + std::to_string(first_block) +
                  ", index said " + std::to_string(record.first_block));

    TapeFileWriter archive_writer(drive_, record_size_, sealing_, false);
    if (archive_writer.header_length() != age_header_length_)
      throw Error("internal error: age header length changed");
    WrittenArchive written;
    written.index_bytes = index.bytes_on_tape;
    written.row.tape_id = tape_.id;
    written.row.index_file = file_;
    written.row.index_block = index_block;
    written.row.archive_file = file_ + 1;
    written.row.first_block = first_block;
    written.row.encrypted = sealing_.mode != Sealing::Mode::kNone;
    written.row.age_header_len = age_header_length_;
    written.row.plain_bytes = job.plain_size;
    written.row.members = job.members.size();
    written.row.run_id = run_id_;

    format::PaxWriter tar(archive_writer.sink());
    if (buffer_.empty()) buffer_.resize(kCopyBuffer);
    for (const auto& member : job.members) {
      Copied copied = write_member(tar, member);
      progress_.advance(member.info.size, 1, member.path);
      if (copied == Copied::kVanished) {
        outcome.vanished.insert(member.file_id);
        continue;
      }
      if (copied == Copied::kChanged) {
        ++outcome.not_copied;
        outcome.changed.insert(member.file_id);
        continue;
      }
      catalog::CopyRow copy;
      copy.version_id = member.version.id;
      copy.header_offset = member.offsets.header_offset;
      copy.data_offset = member.offsets.data_offset;
      written.copies.push_back(copy);
      written.plain_bytes += member.info.size;
    }
    tar.finish();
    archive_writer.close();
    if (archive_writer.bytes_on_tape() != record.ciphertext_size)
      throw Error("internal error: archive is " + std::to_string(archive_writer.bytes_on_tape()) +
                  " bytes, index said " + std::to_string(record.ciphertext_size));
    written.row.cipher_bytes = archive_writer.bytes_on_tape();
    written.row.written_at_ns = now_ns();
    early_warning_ = early_warning_ || archive_writer.early_warning();
    return written;
  }

  // Writes the index, then fixes its archive's first block: that depends on
  // the index's own size, so it is settled by rewriting until stable.
  void build_index(const std::string& path, const format::IndexHeader& header,
                   const ArchiveJob& job, format::ArchiveRecord& record,
                   std::uint64_t index_block) {
    {
      format::IndexWriter writer(path, header);
      // A scratch file, durable only once it is on tape: fsyncs (a dozen per
      // index with a rollback journal) would only stall the drive.
      writer.database().exec("PRAGMA synchronous = OFF");
      for (const auto& member : job.members) writer.add_member({member.info, member.offsets});
      writer.set_archive(record);
      catalog_.copy_into(writer.database());
      writer.finish();
    }
    for (int attempt = 0; attempt < 4; ++attempt) {
      std::uint64_t size = std::filesystem::file_size(path);
      std::uint64_t sealed = sealed_size(sealing_, age_header_length_, size);
      std::uint64_t first_block = index_block + format::record_count(sealed, record_size_) + 1;
      if (first_block == record.first_block) return;
      record.first_block = first_block;
      sqlite::Database db(path, sqlite::OpenMode::kReadWrite);
      db.exec("PRAGMA journal_mode = MEMORY; PRAGMA synchronous = OFF");
      db.prepare("UPDATE archive SET first_block = ?").bind(1, first_block).run();
    }
    throw Error("internal error: index size does not settle");
  }

  enum class Copied { kYes, kChanged, kVanished };

  // Streams one member. If the file no longer matches what was hashed, or is
  // gone, the member is filled to its declared size and no copy is recorded:
  // the tar stays well-formed whatever happens to the source.
  Copied write_member(format::PaxWriter& tar, const Member& member) {
    if (member.info.type == format::MemberType::kSymlink) {
      // The target was read when it was hashed; what goes on tape is
      // exactly the version's content, whatever the link says now.
      tar.add_symlink(member.info);
      return Copied::kYes;
    }
    tar.begin_file(member.info);
    std::uint64_t remaining = member.info.size;
    crypto::Blake2b256 rehash;
    int raw = open_source(member.path, O_RDONLY | O_NONBLOCK | O_NOATIME);
    if (raw < 0 && errno == EPERM) raw = open_source(member.path, O_RDONLY | O_NONBLOCK);
    // Deleted since it was hashed: as if the scan had not seen it, like a
    // file that vanishes before hashing; not a failure of the backup.
    bool vanished = raw < 0 && (errno == ENOENT || errno == ENOTDIR);
    UniqueFd fd(raw);
    struct stat before {};
    bool good = raw >= 0 && ::fstat(raw, &before) == 0 && S_ISREG(before.st_mode) &&
                same_identity(identity_of(before), member.identity);
    if (good) ::posix_fadvise(raw, 0, 0, POSIX_FADV_SEQUENTIAL);
    while (remaining > 0) {
      std::size_t want =
          static_cast<std::size_t>(std::min<std::uint64_t>(remaining, buffer_.size()));
      ssize_t n = good ? ::read(raw, buffer_.data(), want) : 0;
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        // Shrunk or unreadable: keep the tar well-formed, drop the copy.
        good = false;
        std::memset(buffer_.data(), 0, want);
        n = static_cast<ssize_t>(want);
      }
      ByteSpan chunk(buffer_.data(), static_cast<std::size_t>(n));
      if (options_.paranoid && good) rehash.update(chunk);
      tar.write_data(chunk);
      remaining -= static_cast<std::uint64_t>(n);
    }
    tar.end_file();
    if (good) {
      struct stat after {};
      good = ::fstat(raw, &after) == 0 && same_identity(identity_of(after), member.identity);
    }
    if (good && options_.paranoid) good = rehash.finish() == member.version.hash;
    if (vanished) {
      progress_.warning(member.path + ": vanished before it was written; not backed up");
      return Copied::kVanished;
    }
    if (!good) {
      progress_.warning(member.path + " changed between hashing and writing; not copied to " +
                        tape_.serial);
      return Copied::kChanged;
    }
    return Copied::kYes;
  }

  catalog::Catalog& catalog_;
  tape::Drive& drive_;
  catalog::TapeRow tape_;
  Id run_id_;
  const Sealing& sealing_;
  std::uint64_t age_header_length_;
  const BackupOptions& options_;
  Progress& progress_;
  std::size_t record_size_;
  std::int64_t file_ = 0;  // tape file number of the next index
  bool early_warning_ = false;
  Bytes buffer_;
};

// ------------------------------------------------------------ planning

bool has_work(catalog::Catalog& catalog, Id tape_id, const std::set<Id>& given_up) {
  bool found = false;
  if (catalog.dirty_count() > given_up.size()) return true;
  catalog.for_each_dirty([&](const catalog::FileRef& ref) {
    if (!given_up.count(ref.file_id)) found = true;
  });
  if (found) return true;
  catalog.for_each_pending(tape_id, [&](const catalog::PendingVersion& pending) {
    if (!given_up.count(pending.version.file_id)) found = true;
  });
  return found;
}

std::vector<Candidate> candidates_for(catalog::Catalog& catalog, Id tape_id,
                                      const std::set<Id>& given_up) {
  std::vector<Candidate> out;
  catalog.for_each_dirty([&](const catalog::FileRef& ref) {
    if (!given_up.count(ref.file_id)) out.push_back({ref.path, ref.file_id, std::nullopt});
  });
  catalog.for_each_pending(tape_id, [&](const catalog::PendingVersion& pending) {
    if (!given_up.count(pending.version.file_id))
      out.push_back({pending.path, pending.version.file_id, pending.version});
  });
  // The catalog's order, (directory path, name): a directory's files stay
  // together in archives (what restores and directory read-ahead want), and
  // the hash stage reads each directory's scan states once.
  auto key = [](const std::string& path) {
    std::size_t slash = path.rfind('/');
    return std::pair<std::string_view, std::string_view>(
        std::string_view(path).substr(0, slash == 0 ? 1 : slash),
        std::string_view(path).substr(slash + 1));
  };
  std::stable_sort(out.begin(), out.end(), [&](const Candidate& a, const Candidate& b) {
    return key(a.path) < key(b.path);
  });
  return out;
}

// A tape that can take more: not full or retired, loadable, and not already
// found to have nothing (more) to take in this run.
std::optional<catalog::TapeRow> usable_tape(catalog::Catalog& catalog, tape::Library& library,
                                            const std::set<std::string>& exhausted) {
  auto in_library = library.serials();
  for (const auto& tape : catalog.tapes()) {
    if (tape.state == catalog::TapeState::kFull || tape.state == catalog::TapeState::kRetired)
      continue;
    if (exhausted.count(tape.serial)) continue;
    if (std::find(in_library.begin(), in_library.end(), tape.serial) == in_library.end()) continue;
    return tape;
  }
  return std::nullopt;
}

// Refuses, before anything is written, a file that no tape could hold.
void check_sizes_fit(catalog::Catalog& catalog, const ScanReport& scan,
                     const BackupOptions& options, std::uint64_t label_bytes,
                     const Sealing& sealing, std::uint64_t age_header_length) {
  std::uint64_t capacity = options.label.capacity ? options.label.capacity : tape::kLto6NativeBytes;
  for (const auto& tape : catalog.tapes())
    if (tape.state != catalog::TapeState::kRetired) capacity = std::max(capacity, tape.capacity);
  // The catalog grows while the run records versions: counted twice over.
  Room room = room_for(capacity, 0, catalog.config().record_size, 2 * catalog_bytes(catalog),
                       label_bytes, sealing, age_header_length);
  if (room.empty_tape == 0)
    throw Error("tapes of " + format_size(capacity) + " are too small: file 0 alone (the label, " +
                "with this program and its source) takes " + format_size(label_bytes) +
                ", and the catalog's copies need room too");
  std::string path = scan.largest_dirty_path;
  std::uint64_t size = scan.largest_dirty_size;
  catalog.for_each_pending(0, [&](const catalog::PendingVersion& pending) {
    if (pending.version.size > size) {
      size = pending.version.size;
      path = pending.path;
    }
  });
  if (!path.empty() && !fits_empty_tape(room, size, path))
    throw Error(path + " (" + format_size(size) + ") is larger than a tape (" +
                format_size(capacity) + "); exclude it with --exclude or use larger tapes");
}

std::uint64_t pending_bytes(catalog::Catalog& catalog) {
  std::uint64_t total = 0;
  catalog.for_each_pending(0, [&](const catalog::PendingVersion& p) { total += p.version.size; });
  return total;
}

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
};

// One tape, one session: hash stage and write stage joined by the queue,
// then the trailing index and the commit.
SessionResult run_session(catalog::Catalog& catalog, tape::Drive& drive,
                          const catalog::TapeRow& tape, Id run_id, const Sealing& sealing,
                          std::uint64_t age_header_length, const BackupOptions& options,
                          std::uint64_t archive_size, std::uint64_t label_bytes,
                          std::vector<Candidate> candidates, Progress& progress) {
  Room room = room_for(tape.capacity, tape.bytes_used, tape.record_size, catalog_bytes(catalog),
                       label_bytes, sealing, age_header_length);

  SessionResult result;
  BoundedQueue<ArchiveJob> jobs(1);
  std::atomic<bool> cancel{false};
  HashStage stage(catalog.path(), tape.id, run_id, archive_size, room, cancel, progress);
  WriteSession session(catalog, drive, tape, run_id, sealing, age_header_length, options, progress);
  std::exception_ptr write_error;
  {
    std::jthread hasher([&] { stage.run(std::move(candidates), jobs, result.hashed); });
    try {
      result.outcome = session.write(jobs);
    } catch (...) {
      write_error = std::current_exception();
    }
    // The writer is done (or the tape is full): stop hashing ahead, and
    // wait for the stage, which commits its versions, before committing.
    cancel = true;
    jobs.cancel();
  }
  if (write_error) std::rethrow_exception(write_error);
  session.commit(result.outcome);
  return result;
}

}  // namespace

BackupReport backup(catalog::Catalog& catalog, tape::Library& library, const BackupOptions& options,
                    const WriterKeys& keys, Progress& user_progress) {
  LockedProgress progress(user_progress);
  BackupReport report;
  check_roots(options.roots);
  Sealing sealing = sealing_for(catalog, keys);
  std::uint64_t age_header_length = age_header_length_of(sealing);
  if (options.copies) {
    if (*options.copies < 1) throw Error("--copies must be at least 1");
    for (const auto& root : options.roots) catalog.set_copy_goal(root, *options.copies);
  }
  Id run_id = catalog.begin_run(catalog::RunKind::kBackup, options.roots);
  report.scan = scan(catalog, options.roots, options.walk, run_id, progress);
  // File 0 and the first trailing index of a new tape.
  std::uint64_t record_size = catalog.config().record_size;
  // (4 KiB of slack: a longer serial prefix makes the label a block longer.)
  std::uint64_t label_bytes =
      tape_bytes(file0_size(catalog, options.label, sealing) + 4096, record_size) +
      tape_bytes(catalog_bytes(catalog) + (64 << 10), record_size);
  check_sizes_fit(catalog, report.scan, options, label_bytes, sealing, age_header_length);
  std::uint64_t archive_size =
      options.archive_size ? options.archive_size
                           : default_archive_size(report.scan.dirty_bytes + pending_bytes(catalog));

  std::set<Id> given_up;            // files not to try again in this run
  std::set<std::string> exhausted;  // tapes with nothing (more) to take in this run
  for (int sessions = 0;; ++sessions) {
    if (sessions == kMaxSessions) throw Error("internal error: backup does not finish");
    std::optional<catalog::TapeRow> target = usable_tape(catalog, library, exhausted);
    bool fresh = false;
    tape::Drive* drive = nullptr;
    if (!target) {
      if (!has_work(catalog, 0, given_up)) break;
      std::string serial = new_tape_serial(catalog, library, options.serial_prefix, progress);
      drive = &library.load(serial);
      target = label_tape(catalog, *drive, serial, options.label, keys);
      fresh = true;
    }
    std::vector<Candidate> candidates = candidates_for(catalog, target->id, given_up);
    if (candidates.empty()) {
      exhausted.insert(target->serial);
      continue;
    }
    if (!drive) drive = &library.load(target->serial);
    SessionResult session =
        run_session(catalog, *drive, *target, run_id, sealing, age_header_length, options,
                    archive_size, label_bytes, std::move(candidates), progress);
    const auto& hashed = session.hashed;
    const auto& outcome = session.outcome;
    report.hash.files += hashed.report.files;
    report.hash.bytes += hashed.report.bytes;
    report.hash.new_versions += hashed.report.new_versions;
    report.hash.vanished += hashed.report.vanished;
    report.hash.unreadable += hashed.report.unreadable;
    report.hash.unstable += hashed.report.unstable;
    report.not_copied += outcome.not_copied;
    report.hash.vanished += outcome.vanished.size();
    report.archives += outcome.archives.size();
    for (const auto& archive : outcome.archives) {
      report.copies += archive.copies.size();
      report.bytes += archive.plain_bytes;
    }
    if (!outcome.archives.empty() &&
        (report.tapes.empty() || report.tapes.back() != target->serial))
      report.tapes.push_back(target->serial);
    given_up.insert(hashed.given_up.begin(), hashed.given_up.end());
    given_up.insert(outcome.changed.begin(), outcome.changed.end());
    // The session committed what it wrote; now its errors count.
    if (hashed.error) std::rethrow_exception(hashed.error);

    if (hashed.tape_filled && !outcome.tape_full)
      catalog.set_tape_state(target->id, catalog::TapeState::kFull);
    if (outcome.archives.empty()) {
      if ((hashed.tape_filled || outcome.tape_full) && fresh) {
        // Labelling yet another tape would fare no better.
        throw Error(
            (hashed.first_unfitted.empty() ? std::string("the next file") : hashed.first_unfitted) +
            " does not fit on an empty tape " + target->serial + " (" +
            format_size(target->capacity) + ")");
      }
      if (!hashed.tape_filled && !outcome.tape_full) exhausted.insert(target->serial);
    }
  }
  catalog.finish_run(run_id);
  catalog.for_each_pending(0, [&](const catalog::PendingVersion&) { ++report.below_goal; });
  return report;
}

}  // namespace mixtape::backup
