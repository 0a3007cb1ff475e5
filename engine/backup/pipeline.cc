// The write pipeline.
//
//   hash stage (own thread + hash pool, own catalog connection)   write stage (caller's thread)
//   -----------------------------------------------------------   ----------------------------
//   for each candidate of this session, in path order:             for each ArchiveJob:
//     dirty file    -> read + hash (pool, a few files ahead),        index per tape -> age ->
//                      record the version                            records (each drive)
//     known version -> check the source is as it was hashed         archive: pax tar -> age ->
//     pack into an ArchiveJob (offsets known in advance)              fan-out -> records -> each
//                                                                     drive (files re-read from
//                                                                     the page cache, once)
//   ----------------------- BoundedQueue<ArchiveJob>, capacity 1 ----------------------->
//
// An index names every member's hash and precedes its archive, so archive
// k+1 is hashed while archive k is written; the queue gives back-pressure,
// not unbounded memory. The hash stage hashes several files at once on a
// small pool, so hashing (the slowest step per byte) can use every core the
// write stage leaves idle.
//
// A session writes to one tape per drive it uses (one drive: one tape).
// Each drive runs on a DriveWorker thread fed through a bounded queue, so
// the drives write at once and the slowest one sets the pace. An archive is
// read, tarred and encrypted once and the same bytes go to every tape (age
// needs a file key per file, not per cartridge); indexes differ per tape
// (serial, file numbers, first block) and are built and sealed per tape.
// A drive whose write fails is dropped from the session; the others go on.
//
// After the last archive of a session each tape's trailing index is written
// inside the catalog transaction that adds that tape's archives and copies,
// and only once the tape holds it is that transaction committed. A crash
// before then leaves the catalog as it was; the tape's append point is
// unchanged, so the next session overwrites whatever this one left.
//
// backup() runs sessions until every version has its copies: a session takes
// as many tapes as drives are left and copies are wanted, and writes to them
// whatever needs a copy on each (never a second copy of a version on one
// tape); a tape that fills is marked full. Files that cannot be read or keep
// changing are given up for the rest of the run (and left dirty for the next
// one), so a run always ends.
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
#include <functional>
#include <future>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <utility>

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
// The most one read(2) of the write stage takes. When it copied into a
// buffer of its own, 256 KiB reads cost 12% less CPU than 1 MiB ones (the
// encryptor copied each from L2); it now reads into the encryptor's batch
// (plain archives: this buffer) and the size was kept.
constexpr std::size_t kCopyBuffer = 256 << 10;
// SIMH images spend 8 bytes of length words per record (and a filemark 4);
// tape capacity is counted in image bytes, so planning counts them too.
constexpr std::uint64_t kRecordOverhead = 9;
// Files hashed ahead of the one being packed: this many lanes' worth per
// hashing thread (its lanes full, and as many waiting), and at most
// kLookaheadBytes per thread once each thread has a file. Lanes advance
// together, so files sharing a thread arrive later than one alone would:
// four 256 MiB files per thread arrive together after 0.8 s, where one
// alone took 0.48 s, but use a third of the CPU (docs/PERFORMANCE.md).
constexpr std::size_t kLookaheadLanes = 2;
constexpr std::uint64_t kLookaheadBytes = 1ULL << 30;
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

// An eighth of the machine's memory: what the page cache is trusted to keep
// of the files read ahead (unbounded if unknown).
std::uint64_t page_cache_share() {
  struct sysinfo info {};
  if (::sysinfo(&info) != 0) return std::numeric_limits<std::uint64_t>::max();
  return static_cast<std::uint64_t>(info.totalram) * info.mem_unit / 8;
}

std::uint64_t default_archive_size(std::uint64_t work_bytes) {
  // The write stage re-reads each file from the page cache, which must hold
  // the archive being written and the ones hashed ahead of it.
  std::uint64_t largest = std::min(kMaxArchiveSize, page_cache_share());
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
// Hashing threads, each a FileHasher whose lanes it keeps full from a shared
// queue. A thread takes its share of the queue per step, so files spread
// over the threads rather than filling the first thread's lanes.
class HashPool {
 public:
  HashPool(unsigned threads, const std::atomic<bool>& cancel) : threads_(threads) {
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

  unsigned threads() const { return threads_; }

  std::future<HashResult> submit(const std::string& path) {
    Task task{path, {}};
    auto future = task.promise.get_future();
    {
      std::lock_guard lock(mutex_);
      tasks_.push_back(std::move(task));
    }
    ready_.notify_one();
    return future;
  }

 private:
  struct Task {
    std::string path;
    std::promise<HashResult> promise;
  };

  void work(const std::atomic<bool>& cancel) {
    FileHasher hasher(&cancel);
    std::map<std::uint64_t, std::promise<HashResult>> hashing;  // by tag
    std::uint64_t next_tag = 0;
    for (;;) {
      std::vector<Task> taken;
      {
        std::unique_lock lock(mutex_);
        ready_.wait(lock, [&] { return stopping_ || !tasks_.empty() || !hashing.empty(); });
        if (stopping_) return;
        // This thread's share of the queue, at least one file.
        const std::size_t share = std::max<std::size_t>(1, tasks_.size() / threads_);
        while (!tasks_.empty() && taken.size() < std::min(share, hasher.free_lanes())) {
          taken.push_back(std::move(tasks_.front()));
          tasks_.pop_front();
        }
      }
      for (Task& task : taken) {
        if (auto at_once = hasher.add(task.path, next_tag)) {
          task.promise.set_value(std::move(*at_once));
          continue;
        }
        hashing.emplace(next_tag++, std::move(task.promise));
      }
      for (auto& finished : hasher.step()) {
        auto it = hashing.find(finished.tag);
        it->second.set_value(std::move(finished.result));
        hashing.erase(it);
      }
    }
  }

  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Task> tasks_;
  bool stopping_ = false;
  const unsigned threads_;
  std::vector<std::jthread> workers_;  // last: joined before the rest goes
};

// ------------------------------------------------------------ hash stage

struct Candidate {
  std::string path;
  Id file_id = 0;
  std::optional<catalog::VersionRow> version;  // nullopt: dirty, hash first
  std::uint64_t size = 0;                      // of a dirty one, when scanned
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

// Prepares the archives of one session: for every tape of the session, the
// same members (versions that need a copy on each of them and have none on
// any), packed to fit the tape with the least room.
class HashStage {
 public:
  HashStage(const catalog::Catalog& writer, std::vector<Id> tape_ids, Id run_id,
            std::uint64_t archive_size, const Room& room, const std::atomic<bool>& cancel,
            Progress& progress)
      : catalog_(writer.another_connection()),
        tape_ids_(std::move(tape_ids)),
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
  // Pre-submits hashing of the dirty candidates after `from`: enough files
  // to keep every thread's lanes full, but once each thread has one, no more
  // bytes than kLookaheadBytes per thread.
  void top_up(const std::vector<Candidate>& candidates, std::size_t from, HashPool& pool,
              std::map<std::size_t, std::future<HashResult>>& pending) {
    const std::size_t most_files = kLookaheadLanes * FileHasher::kLanes * pool.threads();
    const std::uint64_t most_bytes = std::min(kLookaheadBytes * pool.threads(), page_cache_share());
    for (; submitted_ < candidates.size(); ++submitted_) {
      const std::size_t ahead = submitted_ - from;
      if (ahead >= most_files) break;
      if (ahead >= pool.threads() && bytes_ahead_ >= most_bytes) break;
      const Candidate& candidate = candidates[submitted_];
      if (candidate.version) continue;
      pending.emplace(submitted_, pool.submit(candidate.path));
      bytes_ahead_ += candidate.size;
    }
  }

  void produce(const std::vector<Candidate>& candidates, HashPool& pool,
               BoundedQueue<ArchiveJob>& out, HashStageResult& result) {
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
      top_up(candidates, i, pool, pending);
      std::optional<std::future<HashResult>> hashing;
      if (auto it = pending.find(i); it != pending.end()) {
        hashing = std::move(it->second);
        pending.erase(it);
        bytes_ahead_ -= candidates[i].size;
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
    result.report.bytes_read += hashed.bytes_read;
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
    // A session writes every member to each of its tapes: a version that
    // needs fewer copies than that, or has one on a tape of the session,
    // waits for a later session.
    auto version = catalog_.version(recorded.id);
    const int tapes = static_cast<int>(tape_ids_.size());
    if (!version || version->goal - version->copies < tapes || on_session_tape(recorded.id))
      return std::nullopt;
    member.version = *version;
    member.identity = file.identity;
    member.info = member_info(member.version, member.path);
    return member;
  }

  bool on_session_tape(Id version_id) {
    for (const auto& replica : catalog_.copies_of(version_id))
      if (std::find(tape_ids_.begin(), tape_ids_.end(), replica.tape.id) != tape_ids_.end())
        return true;
    return false;
  }

  catalog::Catalog catalog_;
  std::vector<Id> tape_ids_;
  Id run_id_;
  std::uint64_t archive_size_;
  Room room_;
  const std::atomic<bool>& cancel_;
  Progress& progress_;
  std::optional<sqlite::Transaction> transaction_;
  std::size_t submitted_ = 0;
  std::uint64_t bytes_ahead_ = 0;  // scanned sizes of the files submitted and not yet taken
  Id cached_dir_ = 0;
  std::map<Id, catalog::ScanState> cached_states_;
};

// ------------------------------------------------------------ drive workers

// Runs one drive's commands on a thread of its own, in order, so that the
// drives of a session write at once while the write stage produces the next
// bytes. submit() blocks while more than byte_limit bytes of commands wait:
// a slow drive holds the producer back (and with it the other drives)
// instead of filling memory. A command that throws TapeError fails the
// worker: later commands are skipped and the error is kept for the session.
// Anything else (a bug, the disk holding index files) is rethrown by wait().
class DriveWorker {
 public:
  explicit DriveWorker(std::size_t byte_limit) : byte_limit_(byte_limit) {}
  ~DriveWorker() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
      tasks_.clear();
    }
    changed_.notify_all();
  }
  DriveWorker(const DriveWorker&) = delete;
  DriveWorker& operator=(const DriveWorker&) = delete;

  void submit(std::function<void()> task, std::size_t bytes = 0) {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] {
      return failed_ || queued_bytes_ == 0 || queued_bytes_ + bytes <= byte_limit_;
    });
    if (failed_) return;
    queued_bytes_ += bytes;
    tasks_.push_back({std::move(task), bytes});
    changed_.notify_all();
  }

  // Returns once every command submitted so far has run or been skipped.
  void wait() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return tasks_.empty() && !running_; });
    if (fatal_) std::rethrow_exception(std::exchange(fatal_, nullptr));
  }

  bool failed() const {
    std::lock_guard lock(mutex_);
    return failed_;
  }
  std::optional<tape::TapeError> error() const {
    std::lock_guard lock(mutex_);
    return error_;
  }

 private:
  struct Task {
    std::function<void()> run;
    std::size_t bytes = 0;
  };

  void work() {
    for (;;) {
      Task task;
      bool skip = false;
      {
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [&] { return stopping_ || !tasks_.empty(); });
        if (stopping_) return;
        task = std::move(tasks_.front());
        tasks_.pop_front();
        skip = failed_;
        running_ = true;
      }
      if (!skip) {
        try {
          task.run();
        } catch (const tape::TapeError& e) {
          std::lock_guard lock(mutex_);
          failed_ = true;
          error_ = e;
        } catch (...) {
          std::lock_guard lock(mutex_);
          failed_ = true;
          fatal_ = std::current_exception();
        }
      }
      const std::size_t bytes = task.bytes;
      task = Task{};  // frees its data outside the lock
      {
        std::lock_guard lock(mutex_);
        running_ = false;
        queued_bytes_ -= bytes;
      }
      changed_.notify_all();
    }
  }

  std::size_t byte_limit_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Task> tasks_;
  std::size_t queued_bytes_ = 0;
  bool running_ = false;
  bool stopping_ = false;
  bool failed_ = false;
  std::optional<tape::TapeError> error_;
  std::exception_ptr fatal_;
  std::jthread thread_{[this] { work(); }};  // last: started once the rest exists
};

// Errors that mean the drive itself is gone, rather than the tape in it.
bool drive_failure(tape::TapeErrorKind kind) {
  return kind == tape::TapeErrorKind::kDeviceError || kind == tape::TapeErrorKind::kNotLoaded ||
         kind == tape::TapeErrorKind::kTimeout;
}

// ------------------------------------------------------------ write stage

// A tape of a session and the drive it is written in.
struct Target {
  catalog::TapeRow tape;
  tape::Drive* drive = nullptr;
  std::size_t drive_index = 0;
  bool fresh = false;  // labelled in this run for this session
};

struct WrittenArchive {
  catalog::ArchiveRow row;
  std::vector<catalog::CopyRow> copies;
  std::uint64_t plain_bytes = 0;
  std::uint64_t index_bytes = 0;  // on tape
};

// What became of one tape of a session.
struct LaneOutcome {
  Target target;
  std::vector<WrittenArchive> archives;  // on tape; committed once commit() returns
  bool full = false;                     // takes no more archives (full, or a media error)
  bool positioned = false;               // reached its append point: something may be written
  std::int64_t file = 0;                 // tape file number of the next index
  std::uint64_t trailing_block = 0;      // where its trailing index goes
  // The write error that dropped it from the session (not the physical end,
  // which only makes it full).
  std::optional<tape::TapeError> failure;
  bool committed = false;
};

// Bytes a drive worker may have waiting: a few records of the largest size,
// a bounded share of memory per drive.
constexpr std::size_t kDriveQueueBytes = 32 << 20;
// The archive stream is handed to the drives in pieces of this size.
constexpr std::size_t kFanOutChunk = 1 << 20;

// One tape being written during a session, with its drive's worker.
struct Lane {
  explicit Lane(const Target& t)
      : out{t, {}, false, false, t.tape.append_file, 0, std::nullopt, false},
        drive(*t.drive),
        record_size(static_cast<std::size_t>(t.tape.record_size)),
        worker(std::max(kDriveQueueBytes, 2 * record_size)) {}

  const std::string& serial() const { return out.target.tape.serial; }

  LaneOutcome out;
  tape::Drive& drive;
  std::size_t record_size;
  bool writing = true;         // takes the next archive
  std::uint64_t position = 0;  // block under the head after the last command
  // The archive in progress.
  std::uint64_t index_block = 0;
  std::uint64_t first_block = 0;
  std::unique_ptr<ScratchFile> index_path;
  WrittenFile index;
  std::unique_ptr<tape::RecordWriter> records;
  std::uint64_t archive_bytes = 0;
  bool archive_early_warning = false;
  DriveWorker worker;  // last: stopped before the rest goes
};

// The archive's bytes, encrypted once, handed to every drive that writes
// it. Throws NoDriveLeft when every drive has failed, so the archive is
// not read and encrypted for nobody.
class FanOut final : public ByteSink {
 public:
  struct NoDriveLeft {};

  // Chunks come from `pool`, which outlives the archive so later archives
  // reuse them: fresh memory for every chunk would cost a page fault per
  // 4 KiB written.
  FanOut(std::vector<Lane*> lanes, BufferPool& pool) : lanes_(std::move(lanes)), pool_(pool) {}

  void write(ByteSpan data) override {
    while (!data.empty()) {
      if (!chunk_) {
        chunk_ = pool_.take(kFanOutChunk);
        filled_ = 0;
      }
      std::size_t n = std::min(data.size(), kFanOutChunk - filled_);
      std::memcpy(chunk_->data.get() + filled_, data.data(), n);
      filled_ += n;
      data = data.subspan(n);
      if (filled_ == kFanOutChunk) flush();
    }
  }

  // Sealed bytes the encryptor will not touch while `owner` is held: every
  // drive writes them from where they are.
  void write_shared(ByteSpan data, const std::shared_ptr<const void>& owner) override {
    flush();
    to_every_drive(data, owner);
  }

  // The last record and the filemark, on every drive.
  void close() override {
    flush();
    for (Lane* lane : lanes_) {
      lane->worker.submit([lane] {
        lane->records->close();
        lane->archive_bytes = lane->records->bytes_written();
        lane->archive_early_warning = lane->records->early_warning();
        lane->records.reset();
        lane->position = lane->drive.tell();
      });
    }
  }

 private:
  void flush() {
    if (!chunk_) return;
    std::shared_ptr<const BufferPool::Buffer> chunk = std::move(chunk_);
    if (filled_ > 0) to_every_drive({chunk->data.get(), filled_}, chunk);
  }

  void to_every_drive(ByteSpan data, const std::shared_ptr<const void>& owner) {
    bool any = false;
    for (Lane* lane : lanes_) {
      if (lane->worker.failed()) continue;
      any = true;
      lane->worker.submit([lane, data, owner] { lane->records->write_shared(data, owner); },
                          data.size());
    }
    if (!any) throw NoDriveLeft{};
  }

  std::vector<Lane*> lanes_;
  BufferPool& pool_;
  std::shared_ptr<BufferPool::Buffer> chunk_;
  std::size_t filled_ = 0;  // bytes of chunk_ written
};

// Writes a session's archives to its tapes, each in its own drive: every
// archive is read from the source files, tarred and encrypted once, and
// written by all drives at once (one read, N writes); each tape gets its
// own index before it, its own trailing index after the last one.
class WriteSession {
 public:
  WriteSession(catalog::Catalog& catalog, std::vector<Target> targets, Id run_id,
               const Sealing& sealing, std::uint64_t age_header_length,
               const BackupOptions& options, Progress& progress)
      : catalog_(catalog),
        targets_(std::move(targets)),
        run_id_(run_id),
        sealing_(sealing),
        age_header_length_(age_header_length),
        options_(options),
        progress_(progress) {}

  struct Outcome {
    std::vector<LaneOutcome> lanes;  // in the order of the targets
    std::uint64_t not_copied = 0;
    std::set<Id> changed;            // files that changed between hashing and writing
    std::set<Id> vanished;           // files deleted between hashing and writing
    std::uint64_t source_bytes = 0;  // read from source files
  };

  // Writes the jobs from each tape's append point on, until the queue ends
  // or no tape takes more. Nothing is committed: see commit().
  Outcome write(BoundedQueue<ArchiveJob>& jobs) {
    Outcome outcome;
    std::vector<std::unique_ptr<Lane>> lanes;
    std::string serials;
    for (const auto& target : targets_) {
      lanes.push_back(std::make_unique<Lane>(target));
      serials += (serials.empty() ? "" : "+") + target.tape.serial;
    }
    progress_.phase("write " + serials, 0, 0);
    for (auto& lane : lanes) {
      Lane* l = lane.get();
      l->worker.submit([l] { position_at_append_point(*l); });
    }
    for (auto& lane : lanes) {
      lane->worker.wait();
      if (lane->worker.failed()) drop(*lane, std::nullopt);
    }
    while (std::any_of(lanes.begin(), lanes.end(), [](const auto& l) { return l->writing; })) {
      auto job = jobs.pop();
      if (!job) break;
      write_archive(*job, lanes, outcome);
    }
    for (auto& lane : lanes) outcome.lanes.push_back(std::move(lane->out));
    outcome.source_bytes = source_bytes_;
    return outcome;
  }

  // Commits each tape of the session on its own: its archives and copies are
  // added, and its trailing index is written from inside that transaction,
  // which commits only once the tape holds it. If the tape ends (or reports a
  // media error) before the trailing index does, the last archive is given
  // up and the trailing index written where its index began, and so on: a
  // tape always ends in a trailing index, and dropped archives only leave
  // their files for the next tape. A tape that cannot take even that
  // (its drive is gone) keeps its catalog rows as they were.
  void commit(Outcome& outcome) {
    bool any = false;
    for (auto& lane : outcome.lanes) any = commit_lane(lane, outcome) || any;
    if (any) return;
    // What was learnt about the files is true whatever became of the tapes.
    auto transaction = catalog_.transaction();
    mark_files(outcome);
    transaction.commit();
  }

 private:
  static void position_at_append_point(Lane& lane) {
    const catalog::TapeRow& tape = lane.out.target.tape;
    if (tape.append_block) {
      lane.drive.locate(*tape.append_block);
    } else {
      lane.drive.rewind();
      lane.drive.space_filemarks_forward(static_cast<std::uint32_t>(tape.append_file));
    }
    lane.position = lane.drive.tell();
    lane.out.trailing_block = lane.position;
    lane.out.positioned = true;
  }

  // The lane takes no more archives; the one in progress (if any, starting
  // at `abandoned_from`) is given up and the trailing index goes where it
  // began. The physical end only makes the tape full; any other write error
  // drops the tape from the session, and a media error leaves it full too:
  // a cartridge that failed a write takes no more.
  void drop(Lane& lane, std::optional<std::uint64_t> abandoned_from) {
    lane.writing = false;
    if (abandoned_from) lane.out.trailing_block = *abandoned_from;
    std::optional<tape::TapeError> error = lane.worker.error();
    if (!error) return;
    if (error->kind() == tape::TapeErrorKind::kPhysicalEnd) {
      lane.out.full = true;
      progress_.warning(lane.serial() + ": " + error->what() +
                        "; the archive goes to the next tape");
      return;
    }
    lane.out.failure = error;
    if (error->kind() == tape::TapeErrorKind::kMediaError) {
      lane.out.full = true;
      progress_.warning(lane.serial() + ": " + error->what() +
                        "; the archive is abandoned and goes to the next tape, and " +
                        lane.serial() + " takes no more writes");
    } else {
      progress_.warning(lane.serial() + ": " + error->what() + "; its archive is abandoned");
    }
  }

  format::IndexHeader index_header(const Lane& lane) {
    const catalog::TapeRow& tape = lane.out.target.tape;
    format::IndexHeader header;
    header.kind = format::IndexKind::kArchive;
    header.serial = tape.serial;
    header.record_size = tape.record_size;
    header.generation = index_generation(lane.out.file);
    header.index_file = static_cast<std::uint64_t>(lane.out.file);
    header.archive_file = static_cast<std::uint64_t>(lane.out.file + 1);
    header.catalog_id = catalog_.catalog_id();
    header.created = format::format_utc(now_ns() / 1000000000);
    header.encrypted = sealing_.mode != Sealing::Mode::kNone;
    return header;
  }

  std::unique_ptr<crypto::AgeEncryptor> encryptor(ByteSink& out) {
    crypto::AgeEncryptOptions options;
    options.buffers = &age_buffers_;
    switch (sealing_.mode) {
      case Sealing::Mode::kNone:
        return nullptr;
      case Sealing::Mode::kRecipients:
        return std::make_unique<crypto::AgeEncryptor>(out, sealing_.recipients, options);
      case Sealing::Mode::kPassphrase:
        return std::make_unique<crypto::AgeEncryptor>(out, *sealing_.passphrase, options);
    }
    return nullptr;
  }

  // Each writing tape gets the job's index, then the archive. A tape whose
  // index reaches early warning does not start the archive (it is full).
  void write_archive(const ArchiveJob& job, std::vector<std::unique_ptr<Lane>>& lanes,
                     Outcome& outcome) {
    format::ArchiveRecord base;
    base.age_header_length = age_header_length_;
    base.plaintext_size = job.plain_size;
    base.ciphertext_size = sealed_size(sealing_, age_header_length_, job.plain_size);
    base.member_count = job.members.size();

    // The indexes differ per tape (serial, file numbers, first block); they
    // are built here, where the catalog connection is, and written by every
    // drive at once.
    std::vector<Lane*> indexed;
    for (auto& lane : lanes) {
      if (!lane->writing) continue;
      Lane* l = lane.get();
      l->index_block = l->position;
      format::ArchiveRecord record = base;
      record.tape_file = static_cast<std::uint64_t>(l->out.file + 1);
      l->index_path =
          std::make_unique<ScratchFile>(temp_directory(options_.temp_dir), "index-" + l->serial());
      build_index(l->index_path->path(), index_header(*l), job, record, l->index_block,
                  l->record_size);
      l->first_block = record.first_block;
      l->worker.submit([this, l] {
        l->index = write_file_to_tape(l->drive, l->record_size, sealing_, l->index_path->path());
        l->position = l->drive.tell();
      });
      indexed.push_back(l);
    }
    std::vector<Lane*> taking;
    for (Lane* l : indexed) {
      l->worker.wait();
      l->index_path.reset();
      if (l->worker.failed()) {
        drop(*l, l->index_block);
      } else if (l->index.early_warning) {
        // The tape is full: the trailing index goes where this index began.
        l->writing = false;
        l->out.full = true;
        l->out.trailing_block = l->index_block;
      } else if (l->position != l->first_block) {
        throw Error("internal error: archive on " + l->serial() + " starts at block " +
                    std::to_string(l->position) + ", index said " + std::to_string(l->first_block));
      } else {
        taking.push_back(l);
      }
    }
    if (taking.empty()) return;

    for (Lane* l : taking) {
      l->worker.submit(
          [l] { l->records = std::make_unique<tape::RecordWriter>(l->drive, l->record_size); });
    }
    FanOut fan(taking, chunks_);
    std::unique_ptr<crypto::AgeEncryptor> sealed = encryptor(fan);
    if (sealed && sealed->header_length() != age_header_length_)
      throw Error("internal error: age header length changed");
    ByteSink& sink = sealed ? static_cast<ByteSink&>(*sealed) : fan;
    std::vector<catalog::CopyRow> copies;
    std::uint64_t plain_bytes = 0;
    try {
      format::PaxWriter tar(sink);
      if (buffer_.empty()) buffer_.resize(kCopyBuffer);
      for (const auto& member : job.members) {
        Copied copied = write_member(tar, sealed.get(), member);
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
        copies.push_back(copy);
        plain_bytes += member.info.size;
      }
      tar.finish();
      sink.close();
    } catch (const FanOut::NoDriveLeft&) {
      // Every drive failed during the archive: dropped below.
    }
    for (Lane* l : taking) l->worker.wait();
    for (Lane* l : taking) {
      if (l->worker.failed()) {
        drop(*l, l->index_block);
        continue;
      }
      if (l->archive_bytes != base.ciphertext_size)
        throw Error("internal error: archive on " + l->serial() + " is " +
                    std::to_string(l->archive_bytes) + " bytes, index said " +
                    std::to_string(base.ciphertext_size));
      WrittenArchive written;
      written.index_bytes = l->index.bytes_on_tape;
      written.row.tape_id = l->out.target.tape.id;
      written.row.index_file = l->out.file;
      written.row.index_block = l->index_block;
      written.row.archive_file = l->out.file + 1;
      written.row.first_block = l->first_block;
      written.row.encrypted = sealing_.mode != Sealing::Mode::kNone;
      written.row.age_header_len = age_header_length_;
      written.row.plain_bytes = job.plain_size;
      written.row.members = job.members.size();
      written.row.run_id = run_id_;
      written.row.cipher_bytes = l->archive_bytes;
      written.row.written_at_ns = now_ns();
      written.copies = copies;
      written.plain_bytes = plain_bytes;
      l->out.archives.push_back(std::move(written));
      l->out.file += 2;
      l->out.trailing_block = l->position;
      if (l->archive_early_warning) {
        l->writing = false;
        l->out.full = true;
      }
    }
  }

  // Writes the index, then fixes its archive's first block: that depends on
  // the index's own size, so it is settled by rewriting until stable.
  void build_index(const std::string& path, const format::IndexHeader& header,
                   const ArchiveJob& job, format::ArchiveRecord& record, std::uint64_t index_block,
                   std::size_t record_size) {
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
      std::uint64_t first_block = index_block + format::record_count(sealed, record_size) + 1;
      if (first_block == record.first_block) return;
      record.first_block = first_block;
      sqlite::Database db(path, sqlite::OpenMode::kReadWrite);
      db.exec("PRAGMA journal_mode = MEMORY; PRAGMA synchronous = OFF");
      db.prepare("UPDATE archive SET first_block = ?").bind(1, first_block).run();
    }
    throw Error("internal error: index size does not settle");
  }

  // True if the tape's session was committed.
  bool commit_lane(LaneOutcome& lane, const Outcome& outcome) {
    if (!lane.positioned) return false;  // nothing was written: the tape is as it was
    const std::string& serial = lane.target.tape.serial;
    std::uint64_t position = lane.trailing_block;
    for (;;) {
      try {
        commit_at(lane, outcome, position);
        lane.committed = true;
        return true;
      } catch (const tape::TapeError& e) {
        const bool medium = e.kind() == tape::TapeErrorKind::kPhysicalEnd ||
                            e.kind() == tape::TapeErrorKind::kMediaError;
        if (medium && !lane.archives.empty()) {
          progress_.warning(serial + ": cannot write the trailing index (" + e.what() +
                            "); the last archive goes to the next tape");
          position = lane.archives.back().row.index_block;
          lane.archives.pop_back();
          lane.full = true;
          lane.file -= 2;
          continue;
        }
        if (!lane.failure) lane.failure = e;
        lane.archives.clear();
        std::string what = serial + ": cannot write the trailing index (" + e.what() +
                           "); nothing of this session is recorded for it";
        if (medium) {
          // The old trailing index was overwritten by this session: the
          // tape no longer ends in one, so nothing may append to it again.
          catalog_.set_tape_state(lane.target.tape.id, catalog::TapeState::kFull);
          what += ", and it takes no more writes; its archives are kept (mixtape verify --serial " +
                  serial + ")";
        }
        progress_.warning(what);
        return false;
      }
    }
  }

  void mark_files(const Outcome& outcome) {
    // Hashed anew by the next run (the scan would notice anyway).
    for (Id file_id : outcome.changed) catalog_.mark_dirty(file_id);
    for (Id file_id : outcome.vanished) catalog_.mark_absent(file_id);
  }

  void commit_at(const LaneOutcome& lane, const Outcome& outcome, std::uint64_t trailing_block) {
    tape::Drive& drive = *lane.target.drive;
    drive.locate(trailing_block);
    auto transaction = catalog_.transaction();
    std::uint64_t bytes_used = lane.target.tape.bytes_used;
    for (const auto& archive : lane.archives) {
      Id archive_id = catalog_.add_archive(archive.row);
      for (auto copy : archive.copies) {
        copy.archive_id = archive_id;
        catalog_.add_copy(copy);
      }
      bytes_used += archive.row.cipher_bytes + archive.index_bytes;
    }
    mark_files(outcome);
    catalog::TapeRow tape = lane.target.tape;
    tape.append_file = lane.file;
    tape.append_block = trailing_block;
    tape.bytes_used = bytes_used;
    tape.written_at_ns = now_ns();
    tape.state = lane.full ? catalog::TapeState::kFull : catalog::TapeState::kOpen;
    catalog_.update_tape(tape);
    write_trailing_index(catalog_, drive, tape, sealing_, temp_directory(options_.temp_dir));
    transaction.commit();
  }

  enum class Copied { kYes, kChanged, kVanished };

  // Streams one member. If the file no longer matches what was hashed, or is
  // gone, the member is filled to its declared size and no copy is recorded:
  // the tar stays well-formed whatever happens to the source. With an
  // encryptor (`direct`), the file is read straight into its batch, sparing
  // a copy of every byte (the sink behind `tar` is that encryptor).
  Copied write_member(format::PaxWriter& tar, crypto::AgeEncryptor* direct, const Member& member) {
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
      MutableByteSpan room = direct ? direct->buffer() : MutableByteSpan(buffer_);
      std::size_t want =
          static_cast<std::size_t>(std::min<std::uint64_t>({remaining, room.size(), kCopyBuffer}));
      ssize_t n = good ? ::read(raw, room.data(), want) : 0;
      if (n < 0 && errno == EINTR) continue;
      if (n > 0) source_bytes_ += static_cast<std::uint64_t>(n);
      if (n <= 0) {
        // Shrunk or unreadable: keep the tar well-formed, drop the copy.
        good = false;
        std::memset(room.data(), 0, want);
        n = static_cast<ssize_t>(want);
      }
      ByteSpan chunk(room.data(), static_cast<std::size_t>(n));
      if (options_.paranoid && good) rehash.update(chunk);
      if (direct) {
        tar.data_written_directly(chunk.size());
        direct->commit(chunk.size());
      } else {
        tar.write_data(chunk);
      }
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
      progress_.warning(member.path + " changed between hashing and writing; not copied");
      return Copied::kChanged;
    }
    return Copied::kYes;
  }

  catalog::Catalog& catalog_;
  std::vector<Target> targets_;
  Id run_id_;
  const Sealing& sealing_;
  std::uint64_t age_header_length_;
  const BackupOptions& options_;
  Progress& progress_;
  std::uint64_t source_bytes_ = 0;
  Bytes buffer_;
  // The fan-out's chunks and the encryptors' batches, reused from archive
  // to archive (queued drive commands may hold some).
  BufferPool chunks_;
  BufferPool age_buffers_;
};

// ------------------------------------------------------------ planning

// The copy goal of a path, from the catalog's goals read once: the longest
// prefix that is the path or one of its directories ("/" matches all).
int goal_of(const std::vector<catalog::CopyGoal>& goals, std::string_view path) {
  int goal = 1;
  std::size_t longest = 0;
  for (const auto& g : goals) {
    const std::string& p = g.prefix;
    bool matches = p == "/" || path == p ||
                   (path.size() > p.size() && path.starts_with(p) && path[p.size()] == '/');
    if (matches && p.size() >= longest) {
      longest = p.size();
      goal = g.copies;
    }
  }
  return goal;
}

// The most copies anything still needs in this run: the largest shortfall of
// a version below its goal, or the goal of a dirty file (not hashed yet, so
// its content may turn out to have copies already). 0: nothing to do.
int copies_wanted(catalog::Catalog& catalog, const std::set<Id>& given_up) {
  int wanted = 0;
  const auto goals = catalog.copy_goals();
  catalog.for_each_dirty([&](const catalog::FileRef& ref) {
    if (!given_up.count(ref.file_id)) wanted = std::max(wanted, goal_of(goals, ref.path));
  });
  catalog.for_each_pending(0, [&](const catalog::PendingVersion& pending) {
    if (!given_up.count(pending.version.file_id))
      wanted = std::max(wanted, pending.version.goal - pending.version.copies);
  });
  return wanted;
}

// What a session on these tapes may write: every dirty file (hashing tells
// whether it needs a copy), and the versions that need a copy on each of the
// tapes and have none on any.
std::vector<Candidate> candidates_for(catalog::Catalog& catalog, const std::vector<Id>& tape_ids,
                                      const std::set<Id>& given_up) {
  std::vector<Candidate> out;
  const int tapes = static_cast<int>(tape_ids.size());
  catalog.for_each_dirty([&](const catalog::FileRef& ref) {
    if (!given_up.count(ref.file_id))
      out.push_back({ref.path, ref.file_id, std::nullopt, ref.size});
  });
  catalog.for_each_pending(tape_ids.front(), [&](const catalog::PendingVersion& pending) {
    if (given_up.count(pending.version.file_id)) return;
    if (pending.version.goal - pending.version.copies < tapes) return;
    out.push_back({pending.path, pending.version.file_id, pending.version, 0});
  });
  if (tapes > 1) {
    // Versions with a copy somewhere may have it on another tape of the
    // session (a query each, but only for those).
    std::erase_if(out, [&](const Candidate& c) {
      if (!c.version || c.version->copies == 0) return false;
      for (const auto& replica : catalog.copies_of(c.version->id))
        if (std::find(tape_ids.begin(), tape_ids.end(), replica.tape.id) != tape_ids.end())
          return true;
      return false;
    });
  }
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

// Tapes that can take more: not full or retired, loadable, and not already
// found to have nothing (more) to take in this run; at most `count`.
std::vector<catalog::TapeRow> usable_tapes(catalog::Catalog& catalog, tape::Library& library,
                                           const std::set<std::string>& exhausted,
                                           std::size_t count) {
  std::vector<catalog::TapeRow> out;
  auto in_library = library.serials();
  for (const auto& tape : catalog.tapes()) {
    if (out.size() == count) break;
    if (tape.state == catalog::TapeState::kFull || tape.state == catalog::TapeState::kRetired)
      continue;
    if (exhausted.count(tape.serial)) continue;
    if (std::find(in_library.begin(), in_library.end(), tape.serial) == in_library.end()) continue;
    out.push_back(tape);
  }
  return out;
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
  // Per target: its room was the least, so it bounded the packing (if the
  // hash stage found the tape filled, these are the full ones).
  std::vector<bool> constraining;
};

// One session: the hash stage and the write stage (one drive per tape)
// joined by the queue, then each tape's trailing index and commit.
SessionResult run_session(catalog::Catalog& catalog, const std::vector<Target>& targets, Id run_id,
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

// Chooses and loads the tapes of the next session and the drives that write
// them.
class SessionPlanner {
 public:
  SessionPlanner(catalog::Catalog& catalog, tape::Library& library, const BackupOptions& options,
                 const WriterKeys& keys, Progress& progress)
      : catalog_(catalog), library_(library), options_(options), keys_(keys), progress_(progress) {}

  // Drives not dropped from the run.
  std::vector<std::size_t> live_drives() const {
    std::vector<std::size_t> out;
    for (std::size_t d = 0; d < library_.drive_count(); ++d)
      if (!dead_.count(d)) out.push_back(d);
    return out;
  }

  void drop_drive(std::size_t index, const std::string& why, BackupReport& report) {
    if (!dead_.insert(index).second) return;
    std::string line =
        "drive " + std::to_string(index) + " (" + library_.drive(index).name() + "): " + why;
    progress_.warning(line + "; the drive is dropped from this run");
    report.failed_drives.push_back(line);
  }

  // `count` tapes (the usable ones first, then new ones labelled here), each
  // loaded in its own live drive; a tape already in a live drive stays
  // there. Empty if a drive failed on the way (it is dropped: try again).
  std::vector<Target> choose(std::size_t count, const std::set<std::string>& exhausted,
                             BackupReport& report) {
    std::vector<Target> targets;
    for (auto& tape : usable_tapes(catalog_, library_, exhausted, count))
      targets.push_back({std::move(tape), nullptr, 0, false});
    std::vector<std::size_t> free = live_drives();
    auto take_drive = [&](std::size_t d) { free.erase(std::find(free.begin(), free.end(), d)); };
    std::vector<bool> placed(targets.size(), false);
    for (std::size_t i = 0; i < targets.size(); ++i) {
      for (std::size_t d : free) {
        if (library_.loaded_serial(d) == targets[i].tape.serial) {
          targets[i].drive_index = d;
          placed[i] = true;
          take_drive(d);
          break;
        }
      }
    }
    for (std::size_t i = 0; i < targets.size(); ++i) {
      if (placed[i]) continue;
      targets[i].drive_index = free.front();
      take_drive(free.front());
    }
    std::size_t at = 0;  // the drive being loaded or labelled
    try {
      for (auto& target : targets) {
        at = target.drive_index;
        target.drive = &library_.load(target.tape.serial, at);
      }
      while (targets.size() < count) {
        at = free.front();
        take_drive(at);
        std::string serial =
            new_tape_serial(catalog_, library_, options_.serial_prefix, progress_, at);
        tape::Drive& drive = library_.load(serial, at);
        catalog::TapeRow tape = label_tape(catalog_, drive, serial, options_.label, keys_);
        targets.push_back({std::move(tape), &drive, at, true});
      }
    } catch (const tape::TapeError& e) {
      if (!drive_failure(e.kind())) throw;
      drop_drive(at, e.what(), report);
      return {};
    }
    return targets;
  }

 private:
  catalog::Catalog& catalog_;
  tape::Library& library_;
  const BackupOptions& options_;
  const WriterKeys& keys_;
  Progress& progress_;
  std::set<std::size_t> dead_;
};

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

  SessionPlanner planner(catalog, library, options, keys, progress);
  std::set<Id> given_up;            // files not to try again in this run
  std::set<std::string> exhausted;  // tapes with nothing (more) to take in this run
  // Sessions write to at most this many tapes at once; lowered when a
  // session of that many found nothing that needs a copy on each of them.
  std::size_t width_limit = library.drive_count();
  for (int sessions = 0;; ++sessions) {
    if (sessions == kMaxSessions) throw Error("internal error: backup does not finish");
    const int wanted = copies_wanted(catalog, given_up);
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
    given_up.insert(hashed.given_up.begin(), hashed.given_up.end());
    given_up.insert(outcome.changed.begin(), outcome.changed.end());

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
        // Labelling yet another tape would fare no better.
        throw Error(
            (hashed.first_unfitted.empty() ? std::string("the next file") : hashed.first_unfitted) +
            " does not fit on an empty tape " + targets.front().tape.serial + " (" +
            format_size(targets.front().tape.capacity) + ")");
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
  catalog.for_each_pending(0, [&](const catalog::PendingVersion&) { ++report.below_goal; });
  return report;
}

}  // namespace mixtape::backup
