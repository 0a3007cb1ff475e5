// ChunkPool: chunks of one batch shared between helper threads and the caller
// through one atomic counter (a chunk is ~50 us of work, so contention is nil).
#include "engine/crypto/internal.h"

namespace mixtape::crypto::internal {

ChunkPool::ChunkPool(unsigned threads) : helpers_wanted_(threads > 1 ? threads - 1 : 0) {}

ChunkPool::~ChunkPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  work_ready_.notify_all();
  // Helpers finish the job in hand first; jthread joins them.
}

void ChunkPool::start(std::size_t count, std::function<void(std::size_t, unsigned)> job) {
  if (busy_) finish();
  // Helpers cost a thread start each; batches of one chunk never need them.
  if (count > 1 && helpers_.size() < helpers_wanted_) {
    while (helpers_.size() < helpers_wanted_) {
      auto slot = static_cast<unsigned>(helpers_.size() + 1);
      helpers_.emplace_back([this, slot] { helper_loop(slot); });
    }
  }
  {
    std::lock_guard lock(mutex_);
    job_ = std::move(job);
    count_ = count;
    next_.store(0, std::memory_order_relaxed);
    error_ = nullptr;
    ++generation_;
  }
  busy_ = true;
  if (count > 1) work_ready_.notify_all();
}

void ChunkPool::finish() {
  if (!busy_) return;
  run_jobs(0);
  std::exception_ptr error;
  {
    std::unique_lock lock(mutex_);
    work_done_.wait(lock, [this] { return running_ == 0; });
    error = error_;
    error_ = nullptr;
    job_ = nullptr;
  }
  busy_ = false;
  if (error) std::rethrow_exception(error);
}

void ChunkPool::run_jobs(unsigned slot) {
  for (std::size_t i; (i = next_.fetch_add(1, std::memory_order_relaxed)) < count_;) {
    try {
      job_(i, slot);
    } catch (...) {
      std::lock_guard lock(mutex_);
      if (!error_) error_ = std::current_exception();
    }
  }
}

void ChunkPool::helper_loop(unsigned slot) {
  std::uint64_t seen = 0;
  std::unique_lock lock(mutex_);
  for (;;) {
    work_ready_.wait(lock, [&] { return stopping_ || generation_ != seen; });
    if (stopping_) return;
    seen = generation_;
    // Counted under the lock, so finish() cannot return while this helper
    // still looks at the job or the counter.
    ++running_;
    lock.unlock();
    run_jobs(slot);
    lock.lock();
    if (--running_ == 0) work_done_.notify_all();
  }
}

}  // namespace mixtape::crypto::internal
