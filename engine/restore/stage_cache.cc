// StageCache: recalled files, content-addressed, LRU-bounded, crash-safe.
//
//   directory/lock              flock'ed while a cache object is alive
//   directory/tmp/<hex>.<n>     a file being staged (removed at startup)
//   directory/objects/ab/<hex>  a staged file whose hash matched
//
// An entry in memory follows each content that is staged, being staged, or
// awaited by a reader: kWaiting (opened by a reader, or between two
// attempts), kStaging (bytes landing in the temporary file), kStaged,
// kFailed. Readers read the same file descriptor the stager writes, so
// bytes are readable the moment they land; the last byte only once the
// stager committed (the hash matched: `verified`). Making the object
// durable (fdatasync, rename into objects/: kStaged) is the persister
// thread's, in the background: neither a reader nor the recall waits for
// the disk, which writes more slowly than a recall stages here. Writeback
// starts as bytes land (sync_file_range), so a sync has little left to
// wait for. If an attempt is aborted after some
// of its bytes were handed to readers, the entry's generation moves on and
// those readers fail: they may hold bytes of a bad copy.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bitset>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "engine/restore/restore.h"

namespace mixtape::restore {
namespace {

// Writeback is started every this many bytes of a file being staged.
constexpr std::uint64_t kWritebackStep = 8 << 20;

bool is_hex_name(std::string_view name) {
  return name.size() == 64 && name.find_first_not_of("0123456789abcdef") == std::string::npos;
}

std::int64_t mtime_ns(const struct stat& st) {
  return static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

void make_dir(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) throw_errno("cannot create " + path);
}

}  // namespace

class StageCache::Impl {
 public:
  enum class State { kWaiting, kStaging, kStaged, kFailed };
  struct Entry {
    State state = State::kWaiting;
    std::uint64_t size = 0;
    std::uint64_t landed = 0;
    bool verified = false;         // all bytes landed and the hash matched
    std::shared_ptr<UniqueFd> fd;  // the temporary file, later the object
    std::string temp_path;
    std::string error;
    std::uint64_t generation = 0;
    bool released = false;  // bytes of the current attempt went to a reader
    int pins = 0;
    std::uint64_t last_use = 0;
    std::uint64_t reserved = 0;  // bytes counted in used_
  };

  // A verified file to be made durable and renamed into place.
  struct Verified {
    std::string hex;
    std::string temp;
    std::shared_ptr<UniqueFd> fd;
  };

  explicit Impl(StageCacheOptions options) : options_(std::move(options)) {
    if (options_.directory.empty()) throw RestoreError("stage cache: no directory given");
    if (!options_.pwrite) {
      options_.pwrite = [](int fd, const void* data, std::size_t size, std::int64_t offset) {
        return static_cast<long>(::pwrite(fd, data, size, offset));
      };
    }
    if (!options_.sync) options_.sync = [](int fd) { return ::fdatasync(fd); };
    std::error_code error;
    std::filesystem::create_directories(options_.directory, error);
    if (error)
      throw RestoreError("cannot create stage cache " + options_.directory + ": " +
                         error.message());
    make_dir(objects_dir());
    make_dir(temp_dir());
    lock_ = open_file(options_.directory + "/lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    take_lock();
    std::filesystem::remove_all(temp_dir(), error);  // never complete: no hash matched
    make_dir(temp_dir());
    load_objects();
  }

  // The cache is one process's. Another may still hold it for a moment (a
  // daemon finishing after its unmount returned): waited for up to
  // lock_wait, then refused naming that process.
  void take_lock() {
    const auto deadline = std::chrono::steady_clock::now() + options_.lock_wait;
    bool told = false;
    while (::flock(lock_.get(), LOCK_EX | LOCK_NB) != 0) {
      std::string holder = flock_holder(lock_.get());
      const std::string busy = "stage cache " + options_.directory + " is in use by " +
                               (holder.empty() ? "another mixtape process" : holder);
      if (std::chrono::steady_clock::now() >= deadline) throw RestoreError(busy);
      if (!told && options_.on_wait)
        options_.on_wait(
            busy + "; waiting up to " +
            std::to_string(
                std::chrono::duration_cast<std::chrono::seconds>(options_.lock_wait).count()) +
            " s for it");
      told = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  ~Impl() { stop(); }

  // ---- the persister

  void start() {
    persister_ = std::thread([this] { persist_loop(); });
  }

  // Persists what is queued, then ends the thread; later commits persist
  // on their own thread.
  void stop() {
    {
      std::lock_guard lock(mutex_);
      if (stopped_) return;
      stopped_ = true;
    }
    persist_changed_.notify_all();
    if (persister_.joinable()) persister_.join();
  }

  void schedule(Verified file) {
    {
      std::lock_guard lock(mutex_);
      if (!stopped_) {
        to_persist_.push_back(std::move(file));
        persist_changed_.notify_all();
        return;
      }
    }
    persist(file);
  }

  void flush() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return to_persist_.empty() && persisting_ == 0; });
  }

  void persist_loop() {
    std::unique_lock lock(mutex_);
    for (;;) {
      persist_changed_.wait(lock, [&] { return stopped_ || !to_persist_.empty(); });
      if (to_persist_.empty()) return;
      Verified file = std::move(to_persist_.front());
      to_persist_.pop_front();
      ++persisting_;
      lock.unlock();
      persist(file);
      lock.lock();
      --persisting_;
      changed_.notify_all();
    }
  }

  // Syncs the file and renames it into objects/ (kStaged). If that fails
  // it is dropped, and readers that have not read all of it fail with the
  // cause (its bytes were verified; it only cannot be kept).
  void persist(const Verified& file) {
    std::string error;
    const std::string object = object_path(file.hex);
    try {
      if (options_.sync(file.fd->get()) != 0) throw_errno("cannot sync " + file.temp);
      const auto subdir = static_cast<std::size_t>(std::stoul(file.hex.substr(0, 2), nullptr, 16));
      bool made;
      {
        std::lock_guard lock(mutex_);
        made = subdirs_made_.test(subdir);
      }
      if (!made) {  // one mkdir per subdirectory, not one per file
        make_dir(objects_dir() + "/" + file.hex.substr(0, 2));
        std::lock_guard lock(mutex_);
        subdirs_made_.set(subdir);
      }
      if (::rename(file.temp.c_str(), object.c_str()) != 0)
        throw_errno("cannot rename " + file.temp);
    } catch (const std::exception& e) {
      error = std::string("stage cache: ") + e.what();
    }
    std::lock_guard lock(mutex_);
    Entry& e = entry(file.hex);
    if (error.empty()) {
      e.state = State::kStaged;
      e.temp_path.clear();
      lru_.insert({e.last_use, file.hex});  // its place as of the commit
      if (e.pins == 0) e.fd.reset();
    } else {
      ::unlink(file.temp.c_str());
      e.fd.reset();
      e.temp_path.clear();
      used_ -= std::min(used_, e.reserved);
      e.reserved = 0;
      e.landed = 0;
      e.verified = false;
      e.released = false;
      e.state = State::kFailed;
      e.error = error;
      ++stats_.failed;
      if (e.pins == 0) entries_.erase(file.hex);
    }
    changed_.notify_all();
  }

  std::string objects_dir() const { return options_.directory + "/objects"; }
  std::string temp_dir() const { return options_.directory + "/tmp"; }
  std::string object_path(const std::string& hex) const {
    return objects_dir() + "/" + hex.substr(0, 2) + "/" + hex;
  }

  // ---- entries (mutex_ held)

  Entry& entry(const std::string& hex) { return entries_[hex]; }

  void touch(const std::string& hex, Entry& e) {
    if (e.state != State::kStaged) return;
    lru_.erase({e.last_use, hex});
    e.last_use = ++clock_;
    lru_.insert({e.last_use, hex});
    // The on-disk order survives restarts through the files' mtimes.
    ::utimensat(AT_FDCWD, object_path(hex).c_str(), nullptr, 0);
  }

  void unpin(const std::string& hex) {
    auto it = entries_.find(hex);
    if (it == entries_.end()) return;
    if (--it->second.pins > 0) return;
    if (it->second.state == State::kStaged) {
      // Nobody reads it: close it, or every file ever read would keep a
      // descriptor open for as long as the cache lives.
      it->second.fd.reset();
    } else if (it->second.state != State::kStaging) {
      entries_.erase(it);
    }
  }

  // (mutex_ held by `lock`.) Files verified but not yet durable cannot be
  // evicted: when they are what stands in the way, wait for the persister.
  void make_room(std::uint64_t size, std::unique_lock<std::mutex>& lock) {
    if (size > options_.capacity) {
      throw RestoreError("a file of " + format_size(size) + " does not fit the stage cache " +
                         options_.directory + " (" + format_size(options_.capacity) + ")");
    }
    evict_for(size);
    if (used_ + size > options_.capacity && (!to_persist_.empty() || persisting_ > 0)) {
      changed_.wait(lock, [&] { return to_persist_.empty() && persisting_ == 0; });
      evict_for(size);
    }
    if (used_ + size > options_.capacity) {
      throw RestoreError("stage cache " + options_.directory + " is full: " + format_size(used_) +
                         " of " + format_size(options_.capacity) +
                         " are in use by open or staging files; " + format_size(size) +
                         " more do not fit");
    }
  }

  // Evicts unpinned staged files, least recently used first, until `size`
  // more bytes fit or none is left to evict.
  void evict_for(std::uint64_t size) {
    for (auto it = lru_.begin(); used_ + size > options_.capacity && it != lru_.end();) {
      auto e = entries_.find(it->second);
      if (e == entries_.end() || e->second.pins > 0) {
        ++it;
        continue;
      }
      std::filesystem::remove(object_path(it->second));
      used_ -= std::min(used_, e->second.reserved);
      ++stats_.evicted;
      entries_.erase(e);
      it = lru_.erase(it);
    }
  }

  void load_objects() {
    struct Found {
      std::int64_t mtime;
      std::string hex;
      std::uint64_t size;
    };
    std::vector<Found> found;
    std::error_code error;
    for (const auto& sub : std::filesystem::directory_iterator(objects_dir(), error)) {
      for (const auto& file : std::filesystem::directory_iterator(sub.path(), error)) {
        std::string hex = file.path().filename().string();
        struct stat st {};
        if (!is_hex_name(hex) || ::lstat(file.path().c_str(), &st) != 0 || !S_ISREG(st.st_mode))
          continue;
        found.push_back({mtime_ns(st), hex, static_cast<std::uint64_t>(st.st_size)});
      }
    }
    std::sort(found.begin(), found.end(),
              [](const Found& a, const Found& b) { return a.mtime < b.mtime; });
    for (const auto& f : found) {
      Entry& e = entries_[f.hex];
      e.state = State::kStaged;
      e.size = f.size;
      e.reserved = f.size;
      e.last_use = ++clock_;
      lru_.insert({e.last_use, f.hex});
      used_ += f.size;
    }
    evict_for(0);
  }

  StageCacheOptions options_;
  UniqueFd lock_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::string, Entry> entries_;
  std::set<std::pair<std::uint64_t, std::string>> lru_;  // staged, by last use
  std::uint64_t used_ = 0;
  std::uint64_t clock_ = 0;
  std::uint64_t temp_counter_ = 0;
  Stats stats_;
  // The persister's (mutex_): verified files to make durable, in order.
  std::deque<Verified> to_persist_;
  int persisting_ = 0;
  std::bitset<256> subdirs_made_;  // objects/ab/ known to exist
  bool stopped_ = false;
  std::condition_variable persist_changed_;
  std::thread persister_;  // last: started once the rest is built
};

// ------------------------------------------------------------ staging

class StageCache::Sink final : public RecallSink {
 public:
  Sink(std::shared_ptr<Impl> cache, std::string hex, std::uint64_t size)
      : cache_(std::move(cache)), hex_(std::move(hex)), size_(size) {
    std::lock_guard lock(cache_->mutex_);
    Impl::Entry& e = cache_->entry(hex_);
    ++e.pins;
    if (e.state == Impl::State::kFailed) {  // a new recall: readers wait again
      e.state = Impl::State::kWaiting;
      e.error.clear();
    }
    if (e.state != Impl::State::kStaged) e.size = size_;
  }

  ~Sink() override {
    abort();
    std::lock_guard lock(cache_->mutex_);
    cache_->unpin(hex_);
  }

  void begin(const catalog::VersionRow&) override {
    std::unique_lock lock(cache_->mutex_);
    Impl::Entry& e = cache_->entry(hex_);
    if (e.state == Impl::State::kStaged || e.state == Impl::State::kStaging) {
      redundant_ = true;  // someone else staged (or stages) this content
      return;
    }
    redundant_ = false;
    cache_->make_room(size_, lock);
    cache_->used_ += size_;
    e.reserved = size_;
    // The file itself is created by the first write (file()): begin() runs
    // on the thread that reads the tape, and creating an inode is not free
    // (on ext4 without a journal, after many deletions, it was two thirds
    // of that thread's time for 1 MiB files); write() runs on another.
    e.state = Impl::State::kStaging;
    e.fd.reset();
    e.temp_path = cache_->temp_dir() + "/" + hex_ + "." + std::to_string(++cache_->temp_counter_);
    file_.reset();
    e.landed = 0;
    e.verified = false;
    e.released = false;
    active_ = true;
    flushed_ = 0;
    cache_->changed_.notify_all();
  }

  void write(ByteSpan data) override {
    if (redundant_ || !active_) return;
    const std::shared_ptr<UniqueFd> fd = file();
    std::uint64_t at = 0;
    {
      std::lock_guard lock(cache_->mutex_);
      Impl::Entry& e = cache_->entry(hex_);
      at = e.landed;
      if (at + data.size() > size_)
        throw RestoreError("stage cache: more bytes than the file's size for " + hex_);
    }
    std::size_t done = 0;
    while (done < data.size()) {
      long n = cache_->options_.pwrite(fd->get(), data.data() + done, data.size() - done,
                                       static_cast<std::int64_t>(at + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        int code = n < 0 ? errno : ENOSPC;
        if (code == ENOSPC || code == EDQUOT) {
          throw RestoreError("no space left on the disk of stage cache " +
                             cache_->options_.directory + " while staging " + hex_);
        }
        throw SystemError("cannot write to the stage cache " + cache_->options_.directory, code);
      }
      done += static_cast<std::size_t>(n);
    }
    {
      std::lock_guard lock(cache_->mutex_);
      cache_->entry(hex_).landed = at + done;
    }
    cache_->changed_.notify_all();
    // Start writing back what landed (without waiting), so that the sync at
    // commit finds little left to write.
    const std::uint64_t landed = at + done;
    if (landed - flushed_ >= kWritebackStep || landed == size_) {
      ::sync_file_range(fd->get(), static_cast<off64_t>(flushed_),
                        static_cast<off64_t>(landed - flushed_), SYNC_FILE_RANGE_WRITE);
      flushed_ = landed;
    }
  }

  void commit() override {
    if (redundant_ || !active_) return;
    file();  // an empty file was never written
    std::string temp;
    std::shared_ptr<UniqueFd> fd;
    {
      std::lock_guard lock(cache_->mutex_);
      Impl::Entry& e = cache_->entry(hex_);
      if (e.landed != size_)
        throw RestoreError("stage cache: " + hex_ + " committed after " + std::to_string(e.landed) +
                           " of " + std::to_string(size_) + " bytes");
      temp = e.temp_path;
      fd = e.fd;
      // The hash matched: readers may have the last byte now, from the
      // page cache, while the persister makes the object durable.
      e.verified = true;
      e.last_use = ++cache_->clock_;
      ++cache_->stats_.staged;
    }
    cache_->changed_.notify_all();
    active_ = false;
    cache_->schedule({hex_, std::move(temp), std::move(fd)});
  }

  void abort() noexcept override {
    if (!active_) return;
    active_ = false;
    std::lock_guard lock(cache_->mutex_);
    Impl::Entry& e = cache_->entry(hex_);
    if (e.state != Impl::State::kStaging) return;
    ::unlink(e.temp_path.c_str());
    e.temp_path.clear();
    e.fd.reset();
    cache_->used_ -= std::min(cache_->used_, e.reserved);
    e.reserved = 0;
    if (e.released) ++e.generation;  // readers may hold bytes of the bad copy
    e.released = false;
    e.landed = 0;
    e.verified = false;
    e.state = Impl::State::kWaiting;
    file_.reset();
    cache_->changed_.notify_all();
  }

  void fail(const std::string& error) noexcept override {
    abort();
    std::lock_guard lock(cache_->mutex_);
    Impl::Entry& e = cache_->entry(hex_);
    if (e.state == Impl::State::kStaged) return;
    e.state = Impl::State::kFailed;
    e.error = error;
    ++cache_->stats_.failed;
    cache_->changed_.notify_all();
  }

 private:
  // The temporary file of this attempt, created at the first call. The
  // space is claimed at once: a disk that cannot hold the file fails here,
  // clearly, before any of its bytes are written (abort() then removes it
  // and gives back its reservation).
  std::shared_ptr<UniqueFd> file() {
    if (file_) return file_;
    std::string temp;
    {
      std::lock_guard lock(cache_->mutex_);
      temp = cache_->entry(hex_).temp_path;
    }
    const int raw = ::open(temp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (raw < 0) throw_errno("cannot create " + temp + " in the stage cache");
    auto fd = std::make_shared<UniqueFd>(raw);
    if (size_ > 0) {
      const int rc = ::posix_fallocate(fd->get(), 0, static_cast<off_t>(size_));
      if (rc == ENOSPC) {
        ::unlink(temp.c_str());
        throw RestoreError("no space left on the disk of stage cache " +
                           cache_->options_.directory + " for " + format_size(size_));
      }
    }
    {
      std::lock_guard lock(cache_->mutex_);
      cache_->entry(hex_).fd = fd;
    }
    file_ = fd;
    return file_;
  }

  std::shared_ptr<Impl> cache_;
  std::string hex_;
  std::uint64_t size_;
  std::shared_ptr<UniqueFd> file_;  // this attempt's temporary file, once created
  std::uint64_t flushed_ = 0;       // bytes handed to writeback
  bool active_ = false;
  bool redundant_ = false;
};

// ------------------------------------------------------------ readers

struct StageCache::Reader::State {
  std::shared_ptr<StageCache::Impl> cache;
  std::string hex;
  std::uint64_t generation = 0;
  std::string error;
  ~State() {
    std::lock_guard lock(cache->mutex_);
    cache->unpin(hex);
  }
};

StageCache::Reader::Reader(std::shared_ptr<State> state, std::uint64_t size)
    : state_(std::move(state)), size_(size) {}
StageCache::Reader::Reader(Reader&&) noexcept = default;
StageCache::Reader& StageCache::Reader::operator=(Reader&&) noexcept = default;
StageCache::Reader::~Reader() = default;

WaitStatus StageCache::Reader::wait_for(std::uint64_t offset, std::uint64_t length,
                                        std::chrono::steady_clock::time_point deadline) {
  Impl& cache = *state_->cache;
  std::unique_lock lock(cache.mutex_);
  for (;;) {
    Impl::Entry& e = cache.entry(state_->hex);
    if (e.generation != state_->generation) {
      state_->error =
          "a copy failed its hash check after part of it had been read; reopen the file";
      return WaitStatus::kFailed;
    }
    if (e.state == Impl::State::kFailed) {
      state_->error = e.error;
      return WaitStatus::kFailed;
    }
    const std::uint64_t end = std::min(offset + length, e.size);
    const bool staged = e.state == Impl::State::kStaged || e.verified;
    // The last byte is the proof of a complete, verified file: held back
    // until the hash matched.
    const std::uint64_t released = staged ? e.size : std::min(e.landed, e.size ? e.size - 1 : 0);
    const bool needs_end = offset + length >= e.size;
    if (end <= released && (!needs_end || staged)) {
      if (e.state == Impl::State::kStaging && end > offset) e.released = true;
      return WaitStatus::kReady;
    }
    if (cache.changed_.wait_until(lock, deadline) == std::cv_status::timeout) {
      return WaitStatus::kTimedOut;
    }
  }
}

StageCache::Reader::Extent StageCache::Reader::extent(std::uint64_t offset, std::size_t length) {
  Impl& cache = *state_->cache;
  std::shared_ptr<UniqueFd> fd;
  std::uint64_t readable = 0;
  {
    std::lock_guard lock(cache.mutex_);
    Impl::Entry& e = cache.entry(state_->hex);
    if (e.generation != state_->generation || e.state == Impl::State::kFailed)
      throw RestoreError("stage cache: " + state_->hex + " is no longer readable");
    if (e.state == Impl::State::kStaged && !e.fd) {
      const std::string path = cache.object_path(state_->hex);
      e.fd = std::make_shared<UniqueFd>(open_file(path, O_RDONLY | O_CLOEXEC));
    }
    if (e.state == Impl::State::kStaging) e.released = true;
    fd = e.fd;
    readable = e.state == Impl::State::kStaged || e.verified
                   ? e.size
                   : std::min(e.landed, e.size ? e.size - 1 : 0);
  }
  if (!fd || offset >= readable) return {};
  return {std::move(fd),
          static_cast<std::size_t>(std::min<std::uint64_t>(length, readable - offset))};
}

std::size_t StageCache::Reader::read(std::uint64_t offset, MutableByteSpan out) {
  const Extent from = extent(offset, out.size());
  std::size_t done = 0;
  while (done < from.length) {
    ssize_t n = ::pread(from.fd->get(), out.data() + done, from.length - done,
                        static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno("cannot read the stage cache");
    if (n == 0) break;
    done += static_cast<std::size_t>(n);
  }
  return done;
}

std::string StageCache::Reader::error() const {
  return state_->error;
}

// ------------------------------------------------------------ StageCache

StageCache::StageCache(StageCacheOptions options)
    : impl_(std::make_shared<Impl>(std::move(options))) {
  impl_->start();
}

StageCache::~StageCache() {
  impl_->stop();
}

bool StageCache::contains(const catalog::Hash& hash) {
  std::lock_guard lock(impl_->mutex_);
  auto it = impl_->entries_.find(to_hex(hash));
  return it != impl_->entries_.end() &&
         (it->second.state == Impl::State::kStaged || it->second.verified);
}

void StageCache::flush() {
  impl_->flush();
}

std::unique_ptr<RecallSink> StageCache::stage(const catalog::Hash& hash, std::uint64_t size) {
  return std::make_unique<Sink>(impl_, to_hex(hash), size);
}

StageCache::Reader StageCache::open(const catalog::Hash& hash, std::uint64_t size) {
  std::string hex = to_hex(hash);
  std::lock_guard lock(impl_->mutex_);
  Impl::Entry& e = impl_->entry(hex);
  if (e.state != Impl::State::kStaged && e.state != Impl::State::kStaging) e.size = size;
  ++e.pins;
  impl_->touch(hex, e);
  auto state = std::make_shared<Reader::State>();
  state->cache = impl_;
  state->hex = hex;
  state->generation = e.generation;
  return Reader(std::move(state), e.size);
}

WaitStatus StageCache::wait_for(const catalog::Hash& hash, std::uint64_t size, std::uint64_t offset,
                                std::uint64_t length,
                                std::chrono::steady_clock::time_point deadline) {
  Reader reader = open(hash, size);
  return reader.wait_for(offset, length, deadline);
}

StageCache::Stats StageCache::stats() const {
  std::lock_guard lock(impl_->mutex_);
  Stats s = impl_->stats_;
  s.used_bytes = impl_->used_;
  s.capacity = impl_->options_.capacity;
  s.files = impl_->lru_.size();
  s.persisting = impl_->to_persist_.size() + impl_->persisting_;
  return s;
}

}  // namespace mixtape::restore
