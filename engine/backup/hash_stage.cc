#include "engine/backup/hash_stage.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

namespace mixtape::backup {
namespace {

// Files hashed ahead of the one being packed: this many lanes' worth per
// hashing thread (its lanes full, and as many waiting), and at most
// kLookaheadBytes per thread once each thread has a file. Lanes advance
// together, so files sharing a thread arrive later than one alone would:
// four 256 MiB files per thread arrive together after 0.8 s, where one
// alone took 0.48 s, but use a third of the CPU (docs/PERFORMANCE.md).
constexpr std::size_t kLookaheadLanes = 2;
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
    HashPool pool(std::max(1u, std::min(4u, std::thread::hardware_concurrency())), cancel_);
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

// Enough files to keep every thread's lanes full, but once each thread has
// one, no more bytes than kLookaheadBytes per thread.
void HashStage::top_up(const std::vector<Candidate>& candidates, std::size_t from, HashPool& pool,
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
