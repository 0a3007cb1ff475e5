// RecallQueue: requests for file versions become one forward pass per tape.
//
// Every pending request sits in the queue of each tape holding one of its
// remaining copies, keyed by (archive first block, header offset, arrival),
// which is tape order. A free drive's worker chooses a tape (its own loaded
// tape first, then the library tape with the highest priority and most
// requests), takes the first request at or after the head, reads it, and
// repeats; a request that arrives during the pass is found by the same
// lower_bound if it lies ahead. Taking a request removes it from every
// tape's queue; a failed copy puts it back into the queues of its other
// copies.
//
// With several drives, each works on a different tape: a tape in (or being
// read by) one drive is never chosen by another, so no tape is ever moved
// between drives. When a drive reads a tape whose requests are also queued
// on a tape another drive is reading (two copies of the same files), the
// one ahead goes on from the middle of what lies ahead of the other, which
// covers the first half: the two meet instead of racing for the same
// requests, each streaming half (split_point).
#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <tuple>

#include "engine/restore/internal.h"

namespace mixtape::restore {

namespace detail {

struct Ticket {
  mutable std::mutex mutex;
  mutable std::condition_variable changed;
  RecallStatus status;

  template <typename Fn>
  void update(Fn&& fn) {
    {
      std::lock_guard lock(mutex);
      fn(status);
    }
    changed.notify_all();
  }
};

}  // namespace detail

const char* to_string(RecallState state) {
  switch (state) {
    case RecallState::kOffline:
      return "offline";
    case RecallState::kStaging:
      return "staging";
    case RecallState::kStaged:
      return "staged";
    case RecallState::kFailed:
      return "failed";
  }
  return "?";
}

int RecallStatus::percent() const {
  if (state == RecallState::kStaged) return 100;
  if (bytes_total == 0) return 0;
  return static_cast<int>(std::min<std::uint64_t>(99, bytes_done * 100 / bytes_total));
}

namespace {

bool finished(const RecallStatus& s) {
  return s.state == RecallState::kStaged || s.state == RecallState::kFailed;
}

}  // namespace

RecallStatus RecallHandle::status() const {
  if (!ticket_) return {};
  std::lock_guard lock(ticket_->mutex);
  return ticket_->status;
}

RecallStatus RecallHandle::wait() const {
  if (!ticket_) return {};
  std::unique_lock lock(ticket_->mutex);
  ticket_->changed.wait(lock, [&] { return finished(ticket_->status); });
  return ticket_->status;
}

bool RecallHandle::wait_until(std::chrono::steady_clock::time_point deadline) const {
  if (!ticket_) return true;
  std::unique_lock lock(ticket_->mutex);
  return ticket_->changed.wait_until(lock, deadline, [&] { return finished(ticket_->status); });
}

namespace {

// (archive first block, header offset, arrival): tape order.
using Position = std::tuple<std::uint64_t, std::uint64_t, std::uint64_t>;

struct Request {
  std::uint64_t seq = 0;
  int priority = 0;
  catalog::VersionRow version;
  std::string path;
  std::vector<catalog::LocatedCopy> copies;  // copies not struck off yet
  std::vector<std::string> errors;           // of the copies struck off
  std::shared_ptr<RecallSink> sink;
  std::shared_ptr<detail::Ticket> ticket;
  std::string cache_key;  // hex of the content when staging into the cache
};
using RequestPtr = std::shared_ptr<Request>;

Position position_of(const Request& request, const catalog::LocatedCopy& copy) {
  return {copy.archive.first_block, copy.copy.header_offset, request.seq};
}

struct TapeQueue {
  std::map<Position, RequestPtr> requests;
  std::multiset<int> priorities;
  std::uint64_t arrivals = 0;  // requests ever queued here: passes re-plan when it moves
};

std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : "; ") + p;
  return out;
}

}  // namespace

class RecallQueue::Impl {
 public:
  Impl(const std::string& catalog_path, tape::Library& library, crypto::AgeDecryptKeys keys,
       StageCache* cache, RecallOptions options)
      : library_(library),
        keys_(std::move(keys)),
        cache_(cache),
        options_(options),
        catalog_(
            std::make_unique<catalog::Catalog>(catalog::Catalog::open_read_only(catalog_path))),
        catalog_id_(catalog_->catalog_id()) {
    const std::size_t drives = library_.drive_count();
    stats_.staged_by_drive.resize(drives);
    loaded_.resize(drives);
    busy_.resize(drives);
    serving_.resize(drives);
    label_checked_.resize(drives);
    refresh_listed();
    for (std::size_t d = 0; d < drives; ++d) loaded_[d] = library_.loaded_serial(d);
    for (std::size_t d = 0; d < drives; ++d) workers_.emplace_back([this, d] { worker(d); });
  }

  ~Impl() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    for (auto& w : workers_) w.join();
    std::lock_guard lock(mutex_);
    std::vector<RequestPtr> left = all_pending();
    for (const auto& r : left) {
      take(r);
      r->errors.push_back("the recall queue stopped");
      fail(r);
    }
  }

  RecallHandle request(const RecallRequest& request) {
    auto r = std::make_shared<Request>();
    {
      // What the caller resolved already is not read again.
      std::lock_guard lock(catalog_mutex_);
      auto version = request.version ? request.version : catalog_->version(request.version_id);
      if (!version || version->id != request.version_id)
        throw RestoreError("no version " + std::to_string(request.version_id) + " in the catalog");
      r->version = *version;
      r->path = request.path.empty() ? catalog_->file_path(version->file_id) : request.path;
      r->copies = catalog_->copies_of(request.version_id);
    }
    {
      std::lock_guard lock(mutex_);
      for (const auto& c : r->copies)
        if (c.tape.is_foreign()) foreign_ids_[c.tape.serial] = c.tape.foreign_id;
    }
    if (request.tape_id) {
      std::erase_if(r->copies,
                    [&](const catalog::LocatedCopy& c) { return c.tape.id != *request.tape_id; });
    }
    std::stable_partition(r->copies.begin(), r->copies.end(), [](const catalog::LocatedCopy& c) {
      return c.tape.state != catalog::TapeState::kRetired;
    });
    r->priority = request.priority;
    r->ticket = std::make_shared<detail::Ticket>();
    r->ticket->status.bytes_total = r->version.size;
    if (r->version.kind != catalog::VersionKind::kFile) {
      throw RestoreError(r->path + " is a symlink: its target is in the catalog, not recalled");
    }
    if (request.sink) {
      r->sink = request.sink;
    } else {
      if (!cache_) throw RestoreError("recall of " + r->path + ": no stage cache and no sink");
      r->cache_key = to_hex(r->version.hash);
      std::lock_guard lock(mutex_);
      if (auto it = cache_tickets_.find(r->cache_key); it != cache_tickets_.end()) {
        if (auto ticket = it->second.lock()) return RecallHandle(ticket);
      }
      if (cache_->contains(r->version.hash)) {
        r->ticket->status.state = RecallState::kStaged;
        r->ticket->status.bytes_done = r->version.size;
        return RecallHandle(r->ticket);
      }
      r->sink = cache_->stage(r->version.hash, r->version.size);
      cache_tickets_[r->cache_key] = r->ticket;
    }
    RecallHandle handle(r->ticket);
    std::lock_guard lock(mutex_);
    ++stats_.requests;
    ++queued_;
    if (r->version.size == 0 && (!options_.check_empty_files || r->copies.empty())) {
      serve_empty(r);  // nothing to read: no tape needed
    } else if (r->copies.empty()) {
      r->errors.push_back("no copy on tape (back it up first)");
      fail(r);
    } else {
      r->seq = next_seq_++;
      enqueue(r);
      changed_.notify_all();
    }
    return handle;
  }

  void wait_idle() {
    std::unique_lock lock(mutex_);
    idle_.wait(lock, [&] { return queued_ == 0 || stopping_; });
  }

  RecallQueueStats stats() const {
    std::lock_guard lock(mutex_);
    return stats_;
  }

 private:
  // ---- queues (mutex_ held)

  void enqueue(const RequestPtr& r) {
    for (const auto& c : r->copies) {
      TapeQueue& q = tapes_[c.tape.serial];
      q.requests.emplace(position_of(*r, c), r);
      q.priorities.insert(r->priority);
      ++q.arrivals;
    }
  }

  void take(const RequestPtr& r) {
    for (const auto& c : r->copies) {
      auto t = tapes_.find(c.tape.serial);
      if (t == tapes_.end()) continue;
      if (t->second.requests.erase(position_of(*r, c)) > 0) {
        auto p = t->second.priorities.find(r->priority);
        if (p != t->second.priorities.end()) t->second.priorities.erase(p);
      }
      if (t->second.requests.empty()) tapes_.erase(t);
    }
  }

  std::vector<RequestPtr> all_pending() {
    std::set<RequestPtr> seen;
    std::vector<RequestPtr> out;
    for (auto& [serial, q] : tapes_)
      for (auto& [pos, r] : q.requests)
        if (seen.insert(r).second) out.push_back(r);
    return out;
  }

  // The copy on `serial` failed: try the next copy, or give up.
  void strike(const RequestPtr& r, const std::string& serial, const std::string& error) {
    r->errors.push_back(error);
    ++stats_.copy_failures;
    std::erase_if(r->copies,
                  [&](const catalog::LocatedCopy& c) { return c.tape.serial == serial; });
    if (r->copies.empty()) {
      fail(r);
      return;
    }
    r->ticket->update([](RecallStatus& s) {
      s.state = RecallState::kOffline;
      s.bytes_done = 0;
    });
    enqueue(r);
    changed_.notify_all();
  }

  void fail(const RequestPtr& r) {
    const std::string cause = join(r->errors);
    const std::string error = r->path + ": " + cause;
    // The ticket first: a reader woken by the sink's failure that asks for
    // the file again must find this request failed, not still pending (it
    // would wait on a recall that is over).
    r->ticket->update([&](RecallStatus& s) {
      s.state = RecallState::kFailed;
      s.cause = cause;
      s.error = error;
    });
    r->sink->fail(error);
    done(r);
    ++stats_.failed;
  }

  void succeed(const RequestPtr& r) {
    r->ticket->update([&](RecallStatus& s) {
      s.state = RecallState::kStaged;
      s.bytes_done = r->version.size;
    });
    done(r);
    ++stats_.staged;
  }

  void done(const RequestPtr& r) {
    if (!r->cache_key.empty()) {
      auto it = cache_tickets_.find(r->cache_key);
      if (it != cache_tickets_.end() && it->second.lock() == r->ticket) cache_tickets_.erase(it);
    }
    if (queued_ > 0 && --queued_ == 0) idle_.notify_all();
  }

  void serve_empty(const RequestPtr& r) {
    try {
      if (r->version.hash != crypto::blake2b256({}))
        throw RestoreError("the catalog records an empty file with a non-empty hash");
      r->sink->begin(r->version);
      r->sink->commit();
      succeed(r);
    } catch (const std::exception& e) {
      r->sink->abort();
      r->errors.push_back(e.what());
      fail(r);
    }
  }

  // ---- choosing a tape (mutex_ held)

  bool in_other_drive(std::size_t drive, const std::string& serial) const {
    for (std::size_t j = 0; j < loaded_.size(); ++j)
      if (j != drive && (loaded_[j] == serial || busy_[j] == serial)) return true;
    return false;
  }

  void refresh_listed() {
    std::lock_guard lock(library_mutex_);
    auto serials = library_.serials();
    listed_ = std::set<std::string>(serials.begin(), serials.end());
  }

  std::optional<std::string> choose_tape(std::size_t drive) {
    if (tapes_.empty()) return std::nullopt;
    if (loaded_[drive] && tapes_.count(*loaded_[drive])) return loaded_[drive];
    for (int attempt = 0; attempt < 2; ++attempt) {
      std::optional<std::string> best;
      std::tuple<int, std::size_t> best_score{};
      bool unlisted = false;
      for (const auto& [serial, q] : tapes_) {
        if (in_other_drive(drive, serial)) continue;
        if (!listed_.count(serial) && !options_.load_unlisted_tapes) {
          unlisted = true;
          continue;
        }
        std::tuple<int, std::size_t> score{*q.priorities.rbegin(), q.requests.size()};
        if (!best || score > best_score) {
          best = serial;
          best_score = score;
        }
      }
      if (best || !unlisted) return best;
      if (attempt == 0) {
        refresh_listed();  // an operator may have added tapes
        continue;
      }
      // Copies on tapes that cannot be loaded are struck off, so their
      // requests move on to other copies or fail with a clear reason.
      std::vector<std::pair<std::string, RequestPtr>> out;
      for (const auto& [serial, q] : tapes_) {
        if (in_other_drive(drive, serial) || listed_.count(serial)) continue;
        for (const auto& [pos, r] : q.requests) out.emplace_back(serial, r);
      }
      for (const auto& [serial, r] : out) {
        take(r);
        strike(r, serial, "tape " + serial + " is not in the library (insert it and retry)");
      }
    }
    return std::nullopt;
  }

  // ---- workers

  void worker(std::size_t drive) {
    for (;;) {
      std::string serial;
      {
        std::unique_lock lock(mutex_);
        auto idle_since = std::chrono::steady_clock::now();
        for (;;) {
          if (stopping_) return;
          if (auto s = choose_tape(drive)) {
            serial = *s;
            break;
          }
          if (!options_.release_idle_after || !loaded_[drive]) {
            changed_.wait(lock);
            idle_since = std::chrono::steady_clock::now();
          } else if (changed_.wait_until(lock, idle_since + *options_.release_idle_after) ==
                     std::cv_status::timeout) {
            release(drive, lock);
          }
        }
        busy_[drive] = serial;
      }
      try {
        load(drive, serial);
        run_pass(drive, serial);
      } catch (const std::exception& e) {
        // The tape cannot be used at all: strike it from every request.
        std::lock_guard lock(mutex_);
        std::vector<RequestPtr> on_tape;
        if (auto t = tapes_.find(serial); t != tapes_.end())
          for (const auto& [pos, r] : t->second.requests) on_tape.push_back(r);
        for (const auto& r : on_tape) {
          take(r);
          strike(r, serial, "tape " + serial + ": " + e.what());
        }
      }
      std::lock_guard lock(mutex_);
      busy_[drive].reset();
      serving_[drive].reset();
      changed_.notify_all();
    }
  }

  // Unloads the idle drive's tape (mutex_ held on entry and exit, not
  // while the library works: an unload may rewind a real tape). The tape
  // counts as busy meanwhile, so no other drive chooses it.
  void release(std::size_t drive, std::unique_lock<std::mutex>& lock) {
    const std::optional<std::string> serial = loaded_[drive];
    if (!serial) return;
    busy_[drive] = serial;
    lock.unlock();
    std::optional<std::string> after;
    {
      std::lock_guard library_lock(library_mutex_);
      try {
        library_.unload(drive);
      } catch (const std::exception&) {
        // The drive stays as it is; the next load sorts it out.
      }
      label_checked_[drive].clear();
      after = library_.loaded_serial(drive);
    }
    lock.lock();
    busy_[drive].reset();
    loaded_[drive] = after;
    ++stats_.releases;
    changed_.notify_all();
  }

  void load(std::size_t drive, const std::string& serial) {
    std::exception_ptr error;
    bool in_drive = false;
    bool loaded_now = false;
    // Read before library_mutex_ is taken: that one is always taken after
    // mutex_, never the other way round (choose_tape holds mutex_ while it
    // lists the library).
    std::string foreign_id;
    {
      std::lock_guard lock(mutex_);
      if (auto f = foreign_ids_.find(serial); f != foreign_ids_.end()) foreign_id = f->second;
    }
    {
      std::lock_guard lock(library_mutex_);
      try {
        in_drive = library_.loaded_serial(drive) == serial;
        if (!in_drive) {
          library_.load(serial, drive);
          in_drive = loaded_now = true;
        }
        if (options_.check_labels && label_checked_[drive] != serial) {
          label_checked_[drive].clear();
          // A tape mixtape did not write has no label: its first records
          // must be the ones indexed.
          if (!foreign_id.empty()) {
            detail::check_foreign_tape(library_.drive(drive), serial, foreign_id);
          } else {
            detail::check_label(library_.drive(drive), serial, catalog_id_);
          }
        }
        label_checked_[drive] = serial;
      } catch (...) {
        error = std::current_exception();
      }
    }
    std::lock_guard lock(mutex_);
    if (loaded_now) ++stats_.tape_loads;
    if (in_drive) {
      loaded_[drive] = serial;
    } else if (error) {
      loaded_[drive].reset();
    }
    if (error) std::rethrow_exception(error);
  }

  static bool on_tape(const Request& r, const std::string& serial) {
    return std::any_of(r.copies.begin(), r.copies.end(),
                       [&](const catalog::LocatedCopy& c) { return c.tape.serial == serial; });
  }

  // Where drive `drive`, reading `serial` and about to take the request at
  // `next`, should carry on so that it and the other drives share the work
  // (mutex_ held). Another drive reading a tape that holds the same
  // requests covers them from its own head on, in this tape's order (true
  // of copies written in one pass, a fair guess otherwise). If this drive
  // is ahead of it and has more than half of what lies ahead of the other
  // left to do, it moves on to the middle of that, leaving the first half
  // to the other drive. nullopt: carry on at `next`.
  std::optional<Position> split_point(std::size_t drive, const std::string& serial,
                                      const std::map<Position, RequestPtr>& q,
                                      const Position& next) {
    std::optional<Position> split;
    for (std::size_t j = 0; j < busy_.size(); ++j) {
      if (j == drive || !busy_[j] || *busy_[j] == serial || !serving_[j]) continue;
      const Request& theirs = *serving_[j];
      auto here =
          std::find_if(theirs.copies.begin(), theirs.copies.end(),
                       [&](const catalog::LocatedCopy& c) { return c.tape.serial == serial; });
      if (here == theirs.copies.end()) continue;
      const Position other = position_of(theirs, *here);
      if (next < other) continue;   // behind it: everything up to it is this drive's
      std::vector<Position> ahead;  // of the other drive, and readable by it
      for (auto a = q.lower_bound(other); a != q.end(); ++a)
        if (on_tape(*a->second, *busy_[j])) ahead.push_back(a->first);
      const auto mine = static_cast<std::size_t>(
          ahead.end() - std::lower_bound(ahead.begin(), ahead.end(), next));
      if (mine > ahead.size() - mine + 1) {
        const Position middle = ahead[ahead.size() / 2];
        if (!split || *split < middle) split = middle;
      }
    }
    return split;
  }

  void run_pass(std::size_t drive, const std::string& serial) {
    detail::TapeCursor cursor(library_.drive(drive), options_.forward_read_limit);
    detail::MemberReader reader(cursor, key_cache_, keys_, options_);
    detail::ForeignReader foreign(cursor, options_);
    // After the readers: finishes what they handed over before the pass ends.
    detail::MemberPipeline pipeline;
    std::optional<Position> head;
    std::optional<Position> split;
    std::optional<std::uint64_t> planned;  // arrivals when the split was last planned
    {
      std::lock_guard lock(mutex_);
      ++stats_.passes;
    }
    for (;;) {
      RequestPtr r;
      catalog::LocatedCopy copy;
      {
        std::lock_guard lock(mutex_);
        if (stopping_) return;
        auto t = tapes_.find(serial);
        if (t == tapes_.end()) return;
        auto& q = t->second.requests;
        auto it = head ? q.lower_bound(*head) : q.begin();
        if (it == q.end()) return;  // only requests behind the head: next pass
        // Planned at the start and again when requests arrive: what lies
        // ahead changes only then (the other drives only take).
        if (planned != t->second.arrivals) {
          planned = t->second.arrivals;
          split = split_point(drive, serial, q, it->first);
        }
        // Requests the other drive will read are passed over; those only
        // this tape holds are not.
        if (split) {
          std::set<std::string> others;
          for (std::size_t j = 0; j < busy_.size(); ++j)
            if (j != drive && busy_[j]) others.insert(*busy_[j]);
          while (it != q.end() && it->first < *split &&
                 std::any_of(others.begin(), others.end(),
                             [&](const std::string& o) { return on_tape(*it->second, o); }))
            ++it;
          if (it == q.end()) return;
        }
        r = it->second;
        copy =
            *std::find_if(r->copies.begin(), r->copies.end(),
                          [&](const catalog::LocatedCopy& c) { return c.tape.serial == serial; });
        head = Position{copy.archive.first_block, copy.copy.header_offset, 0};
        take(r);
        serving_[drive] = r;
        r->ticket->update([&](RecallStatus& s) {
          s.state = RecallState::kStaging;
          s.tape = serial;
          s.bytes_done = 0;
        });
      }
      if (copy.archive.is_foreign()) {
        serve_foreign(drive, foreign, r, copy);
      } else {
        serve(drive, reader, pipeline, r, copy);
      }
    }
  }

  // A member of a tape mixtape did not write: read, hashed and written on
  // this thread (engine/foreign).
  void serve_foreign(std::size_t drive, detail::ForeignReader& reader, const RequestPtr& r,
                     const catalog::LocatedCopy& copy) {
    RecallSink& sink = *r->sink;
    try {
      reader.read(copy, r->version, sink, [r](std::uint64_t n) {
        r->ticket->update([&](RecallStatus& s) { s.bytes_done += n; });
      });
      try {
        sink.commit();
      } catch (...) {
        throw detail::SinkFailure(std::current_exception());
      }
    } catch (...) {
      sink.abort();
      finish(drive, r, copy.tape.serial, std::current_exception());
      return;
    }
    finish(drive, r, copy.tape.serial, nullptr);
  }

  // Reads the request's member on this thread; its hashing and writing
  // go on in the pipeline while the next member is read, and finish() is
  // called there.
  void serve(std::size_t drive, detail::MemberReader& reader, detail::MemberPipeline& pipeline,
             const RequestPtr& r, const catalog::LocatedCopy& copy) {
    RecallSink& sink = *r->sink;
    try {
      reader.read_into(
          pipeline, copy, r->version, r->path, sink,
          [this, drive, r, serial = copy.tape.serial](std::exception_ptr error) {
            finish(drive, r, serial, error);
          },
          [r](std::uint64_t n) { r->ticket->update([&](RecallStatus& s) { s.bytes_done += n; }); });
    } catch (...) {
      // Before the sink began: nothing of it is in the pipeline.
      sink.abort();
      finish(drive, r, copy.tape.serial, std::current_exception());
    }
  }

  // The outcome of a member read (error null: committed).
  void finish(std::size_t drive, const RequestPtr& r, const std::string& serial,
              std::exception_ptr error) {
    std::lock_guard lock(mutex_);
    if (!error) {
      succeed(r);
      ++stats_.staged_by_drive[drive];
      return;
    }
    try {
      std::rethrow_exception(error);
    } catch (const detail::SinkFailure& failure) {
      r->errors.push_back(sink_message(failure));
      r->copies.clear();
      fail(r);
    } catch (const std::exception& e) {
      strike(r, serial, e.what());
    } catch (...) {
      strike(r, serial, "unknown error");
    }
  }

  static std::string sink_message(const detail::SinkFailure& failure) {
    try {
      failure.rethrow();
    } catch (const std::exception& e) {
      return e.what();
    } catch (...) {
    }
    return "unknown error";
  }

  tape::Library& library_;
  crypto::AgeDecryptKeys keys_;
  StageCache* cache_;
  RecallOptions options_;
  detail::KeyCache key_cache_;

  std::mutex catalog_mutex_;                  // request() only
  std::unique_ptr<catalog::Reader> catalog_;  // read only: the queue never writes
  std::string catalog_id_;

  std::mutex library_mutex_;  // taken after mutex_ when both are held
  mutable std::mutex mutex_;
  std::condition_variable changed_;  // work to do or a drive freed
  std::condition_variable idle_;
  std::map<std::string, TapeQueue> tapes_;
  std::map<std::string, std::weak_ptr<detail::Ticket>> cache_tickets_;
  std::map<std::string, std::string> foreign_ids_;  // serial -> fingerprint of foreign tapes
  std::set<std::string> listed_;
  std::vector<std::optional<std::string>> loaded_;  // tape in each drive
  std::vector<std::optional<std::string>> busy_;    // tape of each running pass
  std::vector<RequestPtr> serving_;                 // each drive's last request taken
  std::vector<std::string> label_checked_;          // worker-owned
  std::uint64_t queued_ = 0;                        // requests not finished
  std::uint64_t next_seq_ = 0;
  bool stopping_ = false;
  RecallQueueStats stats_;
  std::vector<std::thread> workers_;
};

RecallQueue::RecallQueue(const std::string& catalog_path, tape::Library& library,
                         crypto::AgeDecryptKeys keys, StageCache* cache, RecallOptions options)
    : impl_(std::make_unique<Impl>(catalog_path, library, std::move(keys), cache, options)) {}

RecallQueue::~RecallQueue() = default;

RecallHandle RecallQueue::request(catalog::Id version_id, int priority) {
  RecallRequest request;
  request.version_id = version_id;
  request.priority = priority;
  return impl_->request(request);
}

RecallHandle RecallQueue::request(const RecallRequest& request) {
  return impl_->request(request);
}

void RecallQueue::wait_idle() {
  impl_->wait_idle();
}

RecallQueueStats RecallQueue::stats() const {
  return impl_->stats();
}

}  // namespace mixtape::restore
