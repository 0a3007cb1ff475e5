#include "engine/backup/fan_out.h"

#include <algorithm>
#include <cstring>
#include <utility>

namespace mixtape::backup {
namespace {

// Bytes a drive worker may have waiting: a few records of the largest size,
// a bounded share of memory per drive.
constexpr std::size_t kDriveQueueBytes = 32 << 20;
// The archive stream is handed to the drives in pieces of this size.
constexpr std::size_t kFanOutChunk = 1 << 20;

}  // namespace

// ------------------------------------------------------------ DriveWorker

DriveWorker::~DriveWorker() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    tasks_.clear();
  }
  changed_.notify_all();
}

void DriveWorker::submit(std::function<void()> task, std::size_t bytes) {
  std::unique_lock lock(mutex_);
  changed_.wait(
      lock, [&] { return failed_ || queued_bytes_ == 0 || queued_bytes_ + bytes <= byte_limit_; });
  if (failed_) return;
  queued_bytes_ += bytes;
  tasks_.push_back({std::move(task), bytes});
  changed_.notify_all();
}

void DriveWorker::wait() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return tasks_.empty() && !running_; });
  if (fatal_) std::rethrow_exception(std::exchange(fatal_, nullptr));
}

bool DriveWorker::failed() const {
  std::lock_guard lock(mutex_);
  return failed_;
}

std::optional<tape::TapeError> DriveWorker::error() const {
  std::lock_guard lock(mutex_);
  return error_;
}

void DriveWorker::work() {
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

// ------------------------------------------------------------ FanOut

DriveStream::DriveStream(tape::Drive& d, std::size_t record)
    : drive(d), record_size(record), worker(std::max(kDriveQueueBytes, 2 * record)) {}

FanOut::FanOut(std::vector<DriveStream*> streams, BufferPool& pool)
    : streams_(std::move(streams)), pool_(pool) {
  for (DriveStream* s : streams_) {
    s->worker.submit(
        [s] { s->records = std::make_unique<tape::RecordWriter>(s->drive, s->record_size); });
  }
}

void FanOut::write(ByteSpan data) {
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

void FanOut::write_shared(ByteSpan data, const std::shared_ptr<const void>& owner) {
  flush();
  to_every_drive(data, owner);
}

void FanOut::close() {
  flush();
  for (DriveStream* s : streams_) {
    s->worker.submit([s] {
      s->records->close();
      s->archive_bytes = s->records->bytes_written();
      s->archive_early_warning = s->records->early_warning();
      s->records.reset();
      s->position = s->drive.tell();
    });
  }
}

void FanOut::flush() {
  if (!chunk_) return;
  std::shared_ptr<const BufferPool::Buffer> chunk = std::move(chunk_);
  if (filled_ > 0) to_every_drive({chunk->data.get(), filled_}, chunk);
}

void FanOut::to_every_drive(ByteSpan data, const std::shared_ptr<const void>& owner) {
  bool any = false;
  for (DriveStream* s : streams_) {
    if (s->worker.failed()) continue;
    any = true;
    s->worker.submit([s, data, owner] { s->records->write_shared(data, owner); }, data.size());
  }
  if (!any) throw NoDriveLeft{};
}

}  // namespace mixtape::backup
