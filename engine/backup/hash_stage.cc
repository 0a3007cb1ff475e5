#include "engine/backup/hash_stage.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

namespace mixtape::backup {
namespace {

// Files hashed ahead of the one being packed: at most this many lanes'
// worth per hashing thread (its lanes full, and as many waiting).
constexpr std::size_t kLookaheadLanes = 2;
// Bytes hashed ahead: about two archives; but a group of files per thread
// (below) while they are under kLookaheadBytes per thread, and never more
// than that.
constexpr std::uint64_t kLookaheadBytes = 1ULL << 30;

std::uint64_t round_up(std::uint64_t n) {
  return (n + format::kTarBlockSize - 1) / format::kTarBlockSize * format::kTarBlockSize;
}

}  // namespace

// Hashing threads, each a FileHasher whose lanes it keeps full from a shared
// queue. A thread takes its share of the queue per step, so files spread
// over the threads rather than filling the first thread's lanes. Results
// are futures, so the caller consumes them in its order.
class HashPool {
 public:
  HashPool(unsigned threads, std::size_t group, const std::atomic<bool>& cancel)
      : threads_(threads), group_(group) {
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
  std::size_t group() const { return group_; }

  std::future<HashResult> submit(const std::string& path) {
    return std::move(submit_all({path}).front());
  }
  // The paths as one group: a thread that wakes finds them all queued.
  std::vector<std::future<HashResult>> submit_all(const std::vector<std::string>& paths) {
    std::vector<std::future<HashResult>> futures;
    {
      std::lock_guard lock(mutex_);
      for (const auto& path : paths) {
        Task task{path, {}};
        futures.push_back(task.promise.get_future());
        tasks_.push_back(std::move(task));
      }
    }
    ready_.notify_all();
    return futures;
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
        // This thread's share of the files queued or being hashed, at
        // least a group: a thread that wakes first must not take in more
        // (lanes advance together, so they would all end late together
        // while the other thread idles), nor split a group.
        const std::size_t share =
            std::max(group_, (tasks_.size() + in_lanes_ + threads_ - 1) / threads_);
        const std::size_t mine = FileHasher::kLanes - hasher.free_lanes();
        while (!tasks_.empty() && mine + taken.size() < share &&
               hasher.free_lanes() > taken.size()) {
          taken.push_back(std::move(tasks_.front()));
          tasks_.pop_front();
        }
        in_lanes_ += taken.size();
      }
      std::size_t ended = 0;
      for (Task& task : taken) {
        if (auto at_once = hasher.add(task.path, next_tag)) {
          task.promise.set_value(std::move(*at_once));
          ++ended;
          continue;
        }
        hashing.emplace(next_tag++, std::move(task.promise));
      }
      for (auto& finished : hasher.step()) {
        auto it = hashing.find(finished.tag);
        it->second.set_value(std::move(finished.result));
        hashing.erase(it);
        ++ended;
      }
      if (ended > 0) {
        std::lock_guard lock(mutex_);
        in_lanes_ -= ended;
      }
    }
  }

  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Task> tasks_;
  std::size_t in_lanes_ = 0;  // files the threads took and have not finished
  bool stopping_ = false;
  const unsigned threads_;
  const std::size_t group_;
  std::vector<std::jthread> workers_;  // last: joined before the rest goes
};

HashStage::HashStage(const catalog::Writer& writer, std::vector<Id> tape_ids, Id run_id,
                     std::uint64_t archive_size, const Room& room, const std::atomic<bool>& cancel,
                     Progress& progress)
    : catalog_(writer.another_connection()),
      tape_ids_(std::move(tape_ids)),
      run_id_(run_id),
      archive_size_(archive_size),
      room_(room),
      cancel_(cancel),
      progress_(progress) {}

void HashStage::run(std::vector<Candidate> candidates, BoundedQueue<ArchiveJob>& out,
                    HashStageResult& result) {
  try {
    HashPool pool(hash_threads(), hash_group(), cancel_);
    lookahead_ =
        Lookahead::for_stage(pool.threads(), pool.group(), archive_size_, page_cache_share());
    produce(candidates, pool, out, result);
  } catch (...) {
    result.error = std::current_exception();
  }
  try {
    // What was recorded is true (each version is the hash of what its
    // file held), so it is kept even when the stage failed.
    batch_.commit();
  } catch (...) {
    if (!result.error) result.error = std::current_exception();
  }
  out.close();
}

unsigned hash_threads() {
  return std::max(1u, std::min(4u, std::thread::hardware_concurrency()));
}

// Files go to the hashing threads a group at a time, and a thread takes a
// group whole: as many files as the kernel hashes in one pass (four lanes
// of AVX2, eight of AVX-512), since fewer cost as much CPU (two files side
// by side take as long as one alone, both about half the speed per byte of
// four; docs/PERFORMANCE.md). A file is hashed in a smaller group only when
// no more are admitted.
std::size_t hash_group() {
  using Kernel = crypto::Blake2b256Lanes::Kernel;
  const Kernel kernel = crypto::Blake2b256Lanes().kernel();  // as FileHasher's lanes run
  return kernel == Kernel::kAvx512 ? 8 : kernel == Kernel::kAvx2 ? 4 : 1;
}

Lookahead Lookahead::for_stage(unsigned threads, std::size_t group, std::uint64_t archive_size,
                               std::uint64_t cache_share) {
  Lookahead out;
  out.least_files = threads;
  out.group = group;
  out.group_files = group * threads;
  out.group_bytes = std::min(cache_share, kLookaheadBytes * threads);
  out.most_files = kLookaheadLanes * FileHasher::kLanes * threads;
  out.most_bytes = std::min({cache_share, kLookaheadBytes * threads, 2 * archive_size});
  return out;
}

bool Lookahead::admits(std::size_t files_ahead, std::uint64_t bytes_ahead) const {
  if (files_ahead >= most_files) return false;
  return files_ahead < least_files || bytes_ahead < most_bytes ||
         (files_ahead < group_files && bytes_ahead < group_bytes);
}

// The dirty files the look-ahead admits, submitted together; a group
// smaller than a thread's group waits for more while the file needed next
// is already being hashed.
void HashStage::top_up(const std::vector<Candidate>& candidates, std::size_t from, HashPool& pool,
                       std::map<std::size_t, std::future<HashResult>>& pending) {
  std::vector<std::size_t> group;
  std::vector<std::string> paths;
  // Candidates before `from` are packed (a held group waits at most until
  // its first file is needed, so none of them was left unsubmitted).
  std::size_t next = std::max(submitted_, from);
  std::uint64_t bytes = bytes_ahead_;
  for (; next < candidates.size(); ++next) {
    if (!lookahead_.admits(next - from, bytes)) break;
    const Candidate& candidate = candidates[next];
    if (candidate.version) continue;
    group.push_back(next);
    paths.push_back(candidate.path);
    bytes += candidate.size;
  }
  const bool needed_now = !group.empty() && group.front() == from;
  if (group.size() < lookahead_.group && next < candidates.size() && !needed_now) return;
  submitted_ = next;
  if (group.empty()) return;
  auto futures = pool.submit_all(paths);
  for (std::size_t k = 0; k < group.size(); ++k) pending.emplace(group[k], std::move(futures[k]));
  bytes_ahead_ = bytes;
}

void HashStage::produce(const std::vector<Candidate>& candidates, HashPool& pool,
                        BoundedQueue<ArchiveJob>& out, HashStageResult& result) {
  std::map<std::size_t, std::future<HashResult>> pending;
  ArchiveJob job;
  format::PaxLayout layout;
  std::uint64_t used = 0;  // tape bytes of the archives (with indexes) already emitted
  std::uint64_t job_index_bytes = 0;
  bool first = true;  // the session's first archive: its index may be a full catalog copy
  auto emit = [&]() -> bool {
    if (job.members.empty()) return true;
    job.plain_size = layout.finished_size();
    used += room_.footprint(job.plain_size, job_index_bytes, first);
    first = false;
    // The versions of the job must be committed before the writer copies
    // the catalog into the job's index.
    batch_.commit();
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
    std::uint64_t member_size = format::pax_header_size(member->info) + round_up(member->info.size);
    std::uint64_t member_index = index_member_bytes(member->path);
    if (room_.footprint(member_size + format::kTarEndOfArchiveSize, member_index, true) >
        room_.empty_tape) {
      // It grew since the planner checked it: no tape can take it, the
      // rest of the run goes on.
      std::string line = member->path + " (" + format_size(member->info.size) +
                         ") is larger than a whole tape; it cannot be backed up";
      progress_.warning(line);
      result.too_large.push_back(std::move(line));
      result.given_up.insert(member->file_id);
      continue;
    }
    if (!job.members.empty() && layout.position() + member_size > archive_size_) {
      if (!emit()) return;
    }
    if (used + room_.footprint(layout.position() + member_size + format::kTarEndOfArchiveSize,
                               job_index_bytes + member_index, first) >
        room_.session) {
      // Not on this tape; smaller files after it may still fit (first fit
      // in path order). The tape counts as full once the session ends.
      if (!result.tape_filled) {
        result.first_unfitted = member->path;
        result.first_unfitted_id = member->file_id;
      }
      result.tape_filled = true;
      continue;
    }
    member->offsets = layout.add(member->info);
    job_index_bytes += member_index;
    job.members.push_back(std::move(*member));
  }
  emit();
}

void HashStage::write_transaction() {
  batch_.begin();
}

// Read a directory at a time (candidates come in path order, so each
// directory is read about once).
std::optional<catalog::ScanState> HashStage::scan_state(Id file_id) {
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

std::optional<Member> HashStage::prepare(const Candidate& candidate,
                                         std::optional<std::future<HashResult>> hashing,
                                         HashPool& pool, HashStageResult& result) {
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
        catalog_.mark_absent(candidate.file_id, run_id_);
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
    const catalog::FileIdentity now = identity_of(st);
    if (state && state->identity == now) {
      member.version = *candidate.version;
      member.identity = now;
      member.info = member_info(member.version, member.path);
      return member;
    }
    hashing = pool.submit(candidate.path);
  }
  if (batch_.open() && hashing->wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
    // Never hold the catalog while waiting for a file: the writer's
    // checkpoints and indexes need it meanwhile.
    batch_.commit();
  }
  HashResult hashed = hashing->get();
  if (hashed.failure == HashFailure::kUnreadable || hashed.failure == HashFailure::kUnstable)
    result.given_up.insert(candidate.file_id);
  write_transaction();
  auto recorded = record_hashed(catalog_, candidate.file_id, candidate.path, hashed, run_id_,
                                result.report, progress_);
  if (!recorded) return std::nullopt;
  // A session writes every member to each of its tapes: a version that
  // needs fewer copies than that, or has one on a tape of the session,
  // waits for a later session.
  auto version = catalog_.version(recorded->id);
  const int tapes = static_cast<int>(tape_ids_.size());
  if (!version || version->goal - version->copies < tapes || on_session_tape(recorded->id))
    return std::nullopt;
  member.version = *version;
  member.identity = hashed.file->identity;
  member.info = member_info(member.version, member.path);
  return member;
}

bool HashStage::on_session_tape(Id version_id) {
  for (const auto& copy : catalog_.copies_of(version_id))
    if (std::find(tape_ids_.begin(), tape_ids_.end(), copy.tape.id) != tape_ids_.end()) return true;
  return false;
}

}  // namespace mixtape::backup
