// Private to engine/backup: one archive's bytes to every drive of a session
// (pipeline.h). Each drive runs its commands on a thread of its own, so the
// drives write at once and the slowest sets the pace; the archive is read,
// tarred and encrypted once, and the same buffers go to every drive.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "engine/common/common.h"
#include "engine/tape/tape.h"

namespace mixtape::backup {

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
  ~DriveWorker();
  DriveWorker(const DriveWorker&) = delete;
  DriveWorker& operator=(const DriveWorker&) = delete;

  void submit(std::function<void()> task, std::size_t bytes = 0);
  // Returns once every command submitted so far has run or been skipped.
  void wait();
  bool failed() const;
  std::optional<tape::TapeError> error() const;

 private:
  struct Task {
    std::function<void()> run;
    std::size_t bytes = 0;
  };
  void work();

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

// One drive writing a session's tape: its worker and, while an archive is
// being written, the record writer of that tape file. Fields other than the
// worker are the worker thread's while commands are queued.
struct DriveStream {
  DriveStream(tape::Drive& d, std::size_t record);

  tape::Drive& drive;
  std::size_t record_size;
  std::uint64_t position = 0;  // block under the head after the last command
  std::unique_ptr<tape::RecordWriter> records;
  std::uint64_t archive_bytes = 0;  // of the last archive closed
  bool archive_early_warning = false;
  DriveWorker worker;  // last: stopped before the rest goes
};

// The archive's bytes, encrypted once, handed to every drive that writes
// it. Throws NoDriveLeft when every drive has failed, so the archive is
// not read and encrypted for nobody.
class FanOut final : public ByteSink {
 public:
  struct NoDriveLeft {};

  // Each stream's record writer is opened for the archive here. Chunks come
  // from `pool`, which outlives the archive so later archives reuse them:
  // fresh memory for every chunk would cost a page fault per 4 KiB written.
  FanOut(std::vector<DriveStream*> streams, BufferPool& pool);

  void write(ByteSpan data) override;
  // Sealed bytes the encryptor will not touch while `owner` is held: every
  // drive writes them from where they are.
  void write_shared(ByteSpan data, const std::shared_ptr<const void>& owner) override;
  // The last record and the filemark, on every drive.
  void close() override;

 private:
  void flush();
  void to_every_drive(ByteSpan data, const std::shared_ptr<const void>& owner);

  std::vector<DriveStream*> streams_;
  BufferPool& pool_;
  std::shared_ptr<BufferPool::Buffer> chunk_;
  std::size_t filled_ = 0;  // bytes of chunk_ written
};

}  // namespace mixtape::backup
