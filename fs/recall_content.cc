#include "fs/recall_content.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <sstream>
#include <thread>

namespace mixtape::fs {
namespace {

class CachedFile final : public OpenContent {
 public:
  CachedFile(RecallContent& owner, restore::StageCache::Reader reader, catalog::VersionRow version,
             std::optional<catalog::Id> tape_id, bool recall_on_read,
             std::optional<std::chrono::seconds> wait, bool tapes_can_arrive, std::string path,
             bool read_once)
      : owner_(owner),
        reader_(std::make_shared<restore::StageCache::Reader>(std::move(reader))),
        version_(std::move(version)),
        tape_id_(tape_id),
        recall_on_read_(recall_on_read),
        wait_(wait),
        tapes_can_arrive_(tapes_can_arrive),
        path_(std::move(path)),
        read_once_(read_once) {}

  bool read_once() const override { return read_once_; }

  std::size_t read(std::uint64_t offset, MutableByteSpan out) override {
    auto reader = ready_reader(offset, out.size());
    if (!reader) return 0;
    std::size_t n = reader->read(offset, out);
    if (n > 0) returned_ = true;
    return n;
  }

  std::optional<FileRange> read_range(std::uint64_t offset, std::size_t size) override {
    FileRange range;
    range.offset = offset;
    auto reader = ready_reader(offset, size);
    if (!reader) return range;
    auto extent = reader->extent(offset, size);
    range.fd = std::move(extent.fd);
    range.length = extent.length;
    if (range.length > 0) returned_ = true;
    return range;
  }

 private:
  // The reader once bytes [offset, offset + size) are ready in it; null
  // past the end.
  std::shared_ptr<restore::StageCache::Reader> ready_reader(std::uint64_t offset,
                                                            std::size_t size) {
    // The kernel sends several reads of one open file at once (read-ahead),
    // on different threads: each works on its own reference to the reader.
    std::shared_ptr<restore::StageCache::Reader> reader = current_reader();
    if (offset >= reader->size() || size == 0) return nullptr;
    if (recall_on_read_.exchange(false)) owner_.request(version_, 1, tape_id_);
    auto deadline = wait_ ? std::chrono::steady_clock::now() + *wait_
                          : std::chrono::steady_clock::time_point::max();
    bool retried = false;
    for (;;) {
      if (const auto status = wait(*reader, offset, size, deadline);
          status == restore::WaitStatus::kReady) {
        return reader;
      } else if (status == restore::WaitStatus::kTimedOut) {
        throw FsError(ENOMEDIUM, path_ + ": its tape was not inserted in time");
      }
      // Bytes already handed out came from the copy that failed: never mix
      // them with another copy's (the open fails; a new open reads the next).
      if (returned_) throw FsError(EIO, path_ + ": " + reader->error());
      // A recall that failed because no tape holding the file can be loaded
      // waits for the operator (.mixtape/status says which tape) until the
      // deadline, then ENOMEDIUM. Any other failure is EIO, after one retry
      // in case the tape arrived just as the recall gave up.
      if (owner_.missing_tapes(version_).empty()) {
        if (retried) throw FsError(EIO, path_ + ": " + reader->error());
        retried = true;
      }
      while (!owner_.missing_tapes(version_).empty()) {
        if (!tapes_can_arrive_)
          throw FsError(ENOMEDIUM, path_ + ": none of its tapes is in this mount's drive");
        if (std::chrono::steady_clock::now() >= deadline)
          throw FsError(ENOMEDIUM, path_ + ": its tape was not inserted in time");
        owner_.pause(path_, std::chrono::milliseconds(200));
      }
      // Reader before request, as at open: a recall that fails at once
      // then leaves its failure in the entry this reader pins.
      reader = reopen(reader);
      owner_.request(version_, 1, tape_id_);
    }
  }

  // reader.wait_for in slices, so that a wait with no deadline still ends
  // when the mount does or the read is interrupted.
  restore::WaitStatus wait(restore::StageCache::Reader& reader, std::uint64_t offset,
                           std::size_t size, std::chrono::steady_clock::time_point deadline) {
    constexpr auto kSlice = std::chrono::milliseconds(200);
    for (;;) {
      const auto now = std::chrono::steady_clock::now();
      const auto until = deadline - now > kSlice ? now + kSlice : deadline;
      const restore::WaitStatus status = reader.wait_for(offset, size, until);
      if (status != restore::WaitStatus::kTimedOut || until == deadline) return status;
      owner_.check_cancelled(path_);
    }
  }

  std::shared_ptr<restore::StageCache::Reader> current_reader() {
    std::lock_guard lock(mutex_);
    return reader_;
  }
  // A new reader after `failed` failed, unless a concurrent read already
  // made one.
  std::shared_ptr<restore::StageCache::Reader> reopen(
      const std::shared_ptr<restore::StageCache::Reader>& failed) {
    std::lock_guard lock(mutex_);
    if (reader_ == failed)
      reader_ = std::make_shared<restore::StageCache::Reader>(owner_.reopen(version_));
    return reader_;
  }

  RecallContent& owner_;
  std::mutex mutex_;
  std::shared_ptr<restore::StageCache::Reader> reader_;
  catalog::VersionRow version_;
  std::optional<catalog::Id> tape_id_;
  std::atomic<bool> recall_on_read_;
  std::atomic<bool> returned_ = false;  // bytes were given to the reader
  std::optional<std::chrono::seconds> wait_;
  bool tapes_can_arrive_;
  std::string path_;
  bool read_once_;
};

}  // namespace

RecallContent::RecallContent(Tree& tree, tape::Library& library, restore::StageCache& cache,
                             restore::RecallQueue& queue, RecallContentOptions options)
    : tree_(tree), library_(library), cache_(cache), queue_(queue), options_(options) {}

restore::RecallHandle RecallContent::request(const catalog::VersionRow& version, int priority,
                                             std::optional<catalog::Id> tape_id) {
  std::lock_guard lock(mutex_);
  auto it = handles_.find(version.id);
  if (it != handles_.end()) {
    auto state = it->second.status().state;
    if (state != restore::RecallState::kFailed) return it->second;
  }
  restore::RecallRequest request;
  request.version_id = version.id;
  request.priority = priority;
  request.tape_id = tape_id;
  request.version = version;  // the tree read it; the queue reads only its copies
  auto handle = queue_.request(request);
  if (handles_.size() >= prune_handles_at_) {
    // A mount up for a year recalls millions of files: forget those staged
    // (the cache answers for them), keep what is waiting or failed.
    std::erase_if(handles_, [](const auto& entry) {
      return entry.second.status().state == restore::RecallState::kStaged;
    });
    prune_handles_at_ = std::max(kPruneHandlesAt, 2 * handles_.size());
  }
  handles_[version.id] = handle;
  return handle;
}

std::unique_ptr<OpenContent> RecallContent::open(const Content& content) {
  bool staged = cache_.contains(content.version.hash);
  bool first_open;
  {
    std::lock_guard lock(mutex_);
    ++opens_;
    if (staged) ++cache_hits_;
    // Bounded for a mount that stays up for a year: forgetting only reads
    // a file's next open past the page cache once more.
    if (opened_.size() >= kMostRememberedOpens) opened_.clear();
    first_open = opened_.insert(content.version.id).second;
  }
  // The reader first: it pins the cache entry. A recall that fails at once
  // (no tape in the library) and is gone before a reader pinned the entry
  // would leave the reader waiting, until its deadline, for a recall nobody
  // makes, instead of finding the failure and waiting for the tape.
  auto reader = cache_.open(content.version.hash, content.version.size);
  bool recall_on_read = false;
  if (!staged) {
    switch (options_.policy) {
      case RecallPolicy::kNever:
        throw FsError(EIO, content.path + " is not staged and recall=never");
      case RecallPolicy::kRead:
        recall_on_read = true;
        break;
      case RecallPolicy::kOpen:
        if (content.tape_id || !read_ahead_foreign(content)) {
          request(content.version, 1, content.tape_id);
          read_ahead(content);
        } else {
          request(content.version, 1, content.tape_id);
        }
        break;
    }
  }
  return std::make_unique<CachedFile>(*this, std::move(reader), content.version, content.tape_id,
                                      recall_on_read, options_.wait, options_.tapes_can_arrive,
                                      content.path, first_open);
}

// Members of a foreign archive queued when one of them is opened.
constexpr std::uint64_t kForeignReadAhead = 16384;

// A tar of a tape mixtape did not write is in its own order, not the
// names' (`tar -c` follows readdir): when one of its files is opened, the
// whole archive is queued, in tape order and before the file itself (so
// the pass starts at the archive's first member, not in its middle), and
// `cp -r` of a tar file is one pass over it whatever order cp opens its
// files in. False for a file of a mixtape archive.
bool RecallContent::read_ahead_foreign(const Content& content) {
  auto& catalog = tree_.catalog();
  auto copies = catalog.copies_of(content.version.id);
  if (copies.empty() || !copies.front().archive.is_foreign()) return false;
  if (options_.read_ahead == 0) return true;
  std::uint64_t bytes = 0, count = 0;
  catalog.for_each_copy_in_archive(
      copies.front().archive.id, [&](const catalog::CopyWithVersion& c) {
        if (c.version.kind != catalog::VersionKind::kFile || c.version.size == 0) return true;
        if (cache_.contains(c.version.hash) || failed_on_tape(c.version.id)) return true;
        bytes += c.version.size;
        if (bytes > options_.read_ahead_bytes || ++count > kForeignReadAhead) return false;
        request(c.version, 0);
        return true;
      });
  return true;
}

// The files after this one in its directory that lie further along the
// same tape as its first copy (in its archive or a later one) are queued at
// a lower priority: `cp -r dir` then finds the next file staged, or being
// staged, when it opens it, and the drive streams on instead of waiting
// for each open (a directory of large files is one archive per file).
void RecallContent::read_ahead(const Content& content) {
  if (options_.read_ahead == 0) return;
  auto& catalog = tree_.catalog();
  auto file = catalog.file(content.version.file_id);
  if (!file) return;
  auto copies = catalog.copies_of(content.version.id);
  if (copies.empty()) return;
  const catalog::LocatedCopy& first = copies.front();
  auto ahead = [&](const catalog::LocatedCopy& r) {
    return r.tape.id == first.tape.id && r.archive.first_block >= first.archive.first_block;
  };
  auto entries =
      catalog.list_dir(file->dir, catalog::View::latest(), file->name, options_.read_ahead);
  std::uint64_t bytes = 0;
  for (const auto& entry : entries) {
    if (entry.is_dir || entry.version.kind != catalog::VersionKind::kFile) continue;
    if (cache_.contains(entry.version.hash) || failed_on_tape(entry.version.id)) continue;
    // Queued by an earlier open's read-ahead (cp opens the files in this
    // order): counted, and not looked up again (a catalog query each, 256
    // per open, was most of the daemon's CPU for small files).
    if (queued(entry.version.id)) {
      bytes += entry.version.size;
      if (bytes > options_.read_ahead_bytes) break;
      continue;
    }
    auto copies = catalog.copies_of(entry.version.id);
    if (std::none_of(copies.begin(), copies.end(), ahead)) continue;
    bytes += entry.version.size;
    if (bytes > options_.read_ahead_bytes) break;
    request(entry.version, 0);
  }
}

bool RecallContent::queued(catalog::Id version_id) {
  std::lock_guard lock(mutex_);
  auto it = handles_.find(version_id);
  return it != handles_.end() && it->second.status().state != restore::RecallState::kFailed;
}

bool RecallContent::failed_on_tape(catalog::Id version_id) {
  std::lock_guard lock(mutex_);
  auto it = handles_.find(version_id);
  if (it == handles_.end()) return false;
  auto status = it->second.status();
  // A recall that never reached a tape (none was in the library) is worth
  // queueing again once one is; one that read a tape would read the same
  // bad copy again.
  return status.state == restore::RecallState::kFailed && !status.tape.empty();
}

std::vector<std::string> RecallContent::present_serials() {
  std::lock_guard lock(mutex_);
  auto now = std::chrono::steady_clock::now();
  // Readers waiting for a tape poll this: the listing must be fresh enough
  // that a tape put in a second before is found well within any wait.
  // Re-read at most once a second, whoever asks: a changer's listing
  // (mtx status) is not free.
  if (now - present_read_ >= std::chrono::seconds(1)) {
    present_ = library_.serials();
    present_read_ = now;
  }
  return present_;
}

std::string RecallContent::state(const catalog::VersionRow& version) {
  if (cache_.contains(version.hash)) return "staged";
  bool failed = false;
  {
    std::lock_guard lock(mutex_);
    auto it = handles_.find(version.id);
    if (it != handles_.end()) {
      auto status = it->second.status();
      switch (status.state) {
        case restore::RecallState::kStaging:
          return "staging " + std::to_string(status.percent()) + "%";
        case restore::RecallState::kStaged:
          return "staged";
        case restore::RecallState::kFailed:
          failed = true;
          break;
        case restore::RecallState::kOffline:
          break;
      }
    }
  }
  // Offline (or failed for want of a tape): say which tape to insert.
  std::string missing = missing_tapes(version);
  if (!missing.empty()) return "offline (insert tape " + missing + ")";
  return failed ? "failed" : "offline";
}

std::string RecallContent::missing_tapes(const catalog::VersionRow& version) {
  auto present = present_serials();
  std::string missing;
  for (const auto& r : tree_.catalog().copies_of(version.id)) {
    if (std::find(present.begin(), present.end(), r.tape.serial) != present.end()) return {};
    missing += (missing.empty() ? "" : " ") + r.tape.serial;
  }
  return missing;
}

void RecallContent::cancel_waits() {
  {
    std::lock_guard lock(cancel_mutex_);
    cancelled_ = true;
  }
  cancel_changed_.notify_all();
}

void RecallContent::check_cancelled(const std::string& path) {
  bool cancelled;
  {
    std::lock_guard lock(cancel_mutex_);
    cancelled = cancelled_;
  }
  if (cancelled) throw FsError(EINTR, path + ": the mount is ending");
  if (request_interrupted()) throw FsError(EINTR, path + ": the read was interrupted");
}

void RecallContent::pause(const std::string& path, std::chrono::milliseconds moment) {
  {
    std::unique_lock lock(cancel_mutex_);
    cancel_changed_.wait_for(lock, moment, [&] { return cancelled_; });
  }
  check_cancelled(path);
}

void RecallContent::recall(const std::vector<Content>& contents) {
  for (const auto& c : contents)
    if (!cache_.contains(c.version.hash)) request(c.version, 0);
}

std::string RecallContent::status(bool show_paths) {
  std::ostringstream out;
  for (std::size_t i = 0; i < library_.drive_count(); ++i) {
    auto serial = library_.loaded_serial(i);
    out << "drive " << i << ": " << (serial ? "tape " + *serial : std::string("empty")) << "\n";
  }
  auto q = queue_.stats();
  out << "recalls: " << q.requests << " requested, " << q.staged << " staged, " << q.failed
      << " failed, " << q.passes << " tape passes\n";
  std::vector<catalog::Id> offline;
  std::size_t waiting = 0;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [id, handle] : handles_) {
      auto s = handle.status();
      if (s.state == restore::RecallState::kOffline || s.state == restore::RecallState::kFailed)
        offline.push_back(id);
      if (s.state == restore::RecallState::kOffline || s.state == restore::RecallState::kStaging)
        ++waiting;
    }
  }
  // Files waiting for a tape nobody has inserted say which one.
  for (catalog::Id id : offline) {
    auto version = tree_.catalog().version(id);
    if (!version) continue;
    std::string path =
        show_paths ? tree_.catalog().file_path(version->file_id) : std::string("(a file)");
    std::string missing = missing_tapes(*version);
    if (!missing.empty()) {
      out << "waiting: " << path << ": insert tape " << missing << "\n";
      continue;
    }
    std::lock_guard lock(mutex_);
    auto s = handles_[id].status();
    if (s.state == restore::RecallState::kFailed)
      out << "failed: " << path << (show_paths ? ": " + s.cause : std::string()) << "\n";
  }
  out << "queue: " << waiting << " files waiting\n";
  auto c = cache_.stats();
  out << "cache: " << format_size(c.used_bytes) << " of " << format_size(c.capacity) << ", "
      << c.files << " files\n";
  return out.str();
}

std::string RecallContent::stats_json() {
  std::string drive = library_.stats().to_json();
  auto q = queue_.stats();
  auto c = cache_.stats();
  std::uint64_t opens, hits;
  {
    std::lock_guard lock(mutex_);
    opens = opens_;
    hits = cache_hits_;
  }
  // The drive counters stay at the top level, as --stats-json writes them.
  std::ostringstream extra;
  extra << ", \"recalls\": " << q.requests << ", \"recalls_staged\": " << q.staged
        << ", \"recalls_failed\": " << q.failed << ", \"copy_failures\": " << q.copy_failures
        << ", \"tape_passes\": " << q.passes << ", \"opens\": " << opens
        << ", \"cache_hits\": " << hits << ", \"cache_bytes\": " << c.used_bytes
        << ", \"cache_files\": " << c.files << ", \"cache_persisting\": " << c.persisting << "}";
  auto brace = drive.rfind('}');
  return drive.substr(0, brace) + extra.str() + "\n";
}

}  // namespace mixtape::fs
