// MemberPipeline: the hashing and writing of recalled members on threads of
// their own (engine/restore/internal.h). One BLAKE2b-256 stream cannot be
// hashed faster than one core does it, and writing a file costs a copy into
// the page cache: on the reading thread, after the tape read and the
// decryption, they left the second core idle. Now the reader, the hasher
// and the writer each run on their own, joined by two queues of chunks.
//
//   reader  room()/add(): a chunk's bytes -> to_hash_
//   hasher  updates the member's hash; at its end compares it -> to_write_
//   writer  sink.write(); at the member's end commit or abort, then done
//
// A chunk goes back to free_ once written. Everything about one member
// after begin() travels through the queues in order, so its sink sees
// write..., then commit or abort, on the writing thread alone.
#include <algorithm>
#include <atomic>

#include "engine/restore/internal.h"

namespace mixtape::restore::detail {

struct MemberPipeline::Member {
  RecallSink* sink = nullptr;
  catalog::Hash expected{};
  Done done;
  Progress on_bytes;
  crypto::Blake2b256 hasher;             // the hashing thread's
  std::exception_ptr hash_error;         // the hashing thread's: a mismatch at the end
  std::exception_ptr error;              // the writing thread's: what done() reports
  std::atomic<bool> sink_failed{false};  // set by the writer: the others may stop
};

struct MemberPipeline::Item {
  enum class Kind { kData, kEnd, kFail };
  Kind kind = Kind::kData;
  std::shared_ptr<Member> member;
  std::size_t chunk = 0;  // kData
  std::size_t size = 0;
  std::string where;         // kEnd
  std::exception_ptr error;  // kFail
};

MemberPipeline::MemberPipeline(std::size_t chunks, std::size_t chunk_size)
    : chunk_size_(chunk_size) {
  for (std::size_t i = 0; i < std::max<std::size_t>(chunks, 2); ++i) {
    chunks_.push_back(std::make_unique_for_overwrite<std::uint8_t[]>(chunk_size_));
    free_.push_back(i);
  }
  hasher_ = std::thread([this] { hash_loop(); });
  writer_ = std::thread([this] { write_loop(); });
}

MemberPipeline::~MemberPipeline() {
  if (current_) fail(std::make_exception_ptr(RestoreError("the recall stopped")));
  wait_idle();
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  hasher_.join();
  writer_.join();
}

void MemberPipeline::begin(RecallSink& sink, const catalog::Hash& expected, Done done,
                           Progress on_bytes) {
  auto member = std::make_shared<Member>();
  member->sink = &sink;
  member->expected = expected;
  member->done = std::move(done);
  member->on_bytes = std::move(on_bytes);
  current_ = std::move(member);
  std::lock_guard lock(mutex_);
  ++members_;
}

MutableByteSpan MemberPipeline::room() {
  if (!room_) {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return !free_.empty(); });
    room_ = free_.back();
    free_.pop_back();
  }
  return {chunks_[*room_].get(), chunk_size_};
}

void MemberPipeline::add(std::size_t n) {
  if (n == 0) return;
  Item item;
  item.member = current_;
  item.chunk = *room_;
  item.size = n;
  room_.reset();
  push(std::move(item));
}

void MemberPipeline::end(std::string where) {
  Item item;
  item.kind = Item::Kind::kEnd;
  item.member = std::move(current_);
  item.where = std::move(where);
  if (room_) release(*std::exchange(room_, std::nullopt));
  push(std::move(item));
}

void MemberPipeline::fail(std::exception_ptr error) {
  Item item;
  item.kind = Item::Kind::kFail;
  item.member = std::move(current_);
  item.error = std::move(error);
  if (room_) release(*std::exchange(room_, std::nullopt));
  push(std::move(item));
}

bool MemberPipeline::failed() const {
  return current_ && current_->sink_failed.load(std::memory_order_relaxed);
}

void MemberPipeline::wait_idle() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return members_ == 0; });
}

void MemberPipeline::push(Item item) {
  {
    std::lock_guard lock(mutex_);
    to_hash_.push_back(std::move(item));
  }
  changed_.notify_all();
}

void MemberPipeline::release(std::size_t chunk) {
  {
    std::lock_guard lock(mutex_);
    free_.push_back(chunk);
  }
  changed_.notify_all();
}

void MemberPipeline::hash_loop() {
  for (;;) {
    Item item;
    {
      std::unique_lock lock(mutex_);
      changed_.wait(lock, [&] { return stopping_ || !to_hash_.empty(); });
      if (to_hash_.empty()) return;
      item = std::move(to_hash_.front());
      to_hash_.pop_front();
    }
    Member& m = *item.member;
    if (item.kind == Item::Kind::kData && !m.sink_failed.load(std::memory_order_relaxed)) {
      m.hasher.update({chunks_[item.chunk].get(), item.size});
    } else if (item.kind == Item::Kind::kEnd) {
      const catalog::Hash digest = m.hasher.finish();
      if (digest != m.expected) {
        m.hash_error = std::make_exception_ptr(
            MemberError(MemberError::Kind::kMismatch,
                        hash_mismatch(m.expected, digest) + " (" + item.where + ")"));
      }
    }
    {
      std::lock_guard lock(mutex_);
      to_write_.push_back(std::move(item));
    }
    changed_.notify_all();
  }
}

void MemberPipeline::write_loop() {
  for (;;) {
    Item item;
    {
      std::unique_lock lock(mutex_);
      changed_.wait(lock, [&] { return (stopping_ && to_hash_.empty()) || !to_write_.empty(); });
      if (to_write_.empty()) return;
      item = std::move(to_write_.front());
      to_write_.pop_front();
    }
    Member& m = *item.member;
    auto sink_failed = [&] {
      m.error = std::make_exception_ptr(SinkFailure(std::current_exception()));
      m.sink_failed = true;
    };
    switch (item.kind) {
      case Item::Kind::kData:
        if (!m.error) {
          try {
            m.sink->write({chunks_[item.chunk].get(), item.size});
            if (m.on_bytes) m.on_bytes(item.size);
          } catch (...) {
            sink_failed();
          }
        }
        release(item.chunk);
        continue;
      case Item::Kind::kEnd:
        if (!m.error) m.error = m.hash_error;
        if (!m.error) {
          try {
            m.sink->commit();
          } catch (...) {
            sink_failed();
          }
        }
        break;
      case Item::Kind::kFail:
        // A sink that failed first is the cause; the reader only stopped.
        if (!m.error) m.error = item.error;
        break;
    }
    if (m.error) m.sink->abort();
    try {
      m.done(m.error);
    } catch (...) {
      // The queue's bookkeeping; nothing here could report it.
    }
    {
      std::lock_guard lock(mutex_);
      --members_;
    }
    changed_.notify_all();
  }
}

}  // namespace mixtape::restore::detail
