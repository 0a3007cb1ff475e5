// fs/recall_content: file contents for the mount, from the engine's recall
// queue and stage cache, and the text of .mixtape/status and stats.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <unordered_set>

#include "engine/restore/restore.h"
#include "fs/fuse_fs.h"

namespace mixtape::fs {

enum class RecallPolicy { kOpen, kRead, kNever };

struct RecallContentOptions {
  RecallPolicy policy = RecallPolicy::kOpen;
  // How long a read waits for its bytes; then ENOMEDIUM (nobody inserted
  // the tape). None: wait as long as it takes.
  std::optional<std::chrono::seconds> wait;
  // Whether a tape that is not there now can still come (a library or a
  // drive was named). If not, a read of a file none of whose tapes is
  // there fails at once with ENOMEDIUM, whatever `wait` says.
  bool tapes_can_arrive = true;
  // Directory read-ahead: how many following files of the same directory
  // are queued behind an opened file, and how many bytes at most; only
  // those further along the same tape (the drive streams on to them).
  std::size_t read_ahead = 256;
  std::uint64_t read_ahead_bytes = std::uint64_t{2} << 30;
};

class RecallContent final : public ContentSource, public ControlFiles {
 public:
  RecallContent(Tree& tree, tape::Library& library, restore::StageCache& cache,
                restore::RecallQueue& queue, RecallContentOptions options);

  std::unique_ptr<OpenContent> open(const Content& content) override;
  std::string state(const catalog::VersionRow& version) override;
  void recall(const std::vector<Content>& contents) override;

  std::string status(bool show_paths) override;
  std::string stats_json() override;
  void cancel_waits() override;

  // Waits a moment (for a tape to arrive, for bytes to be staged): returns
  // early, throwing FsError(EINTR) naming `path`, once the mount is ending
  // or the read was interrupted.
  void pause(const std::string& path, std::chrono::milliseconds moment);
  // The same check without waiting.
  void check_cancelled(const std::string& path);

  // The serials holding the version when none of them can be loaded now
  // ("L00001 L00007"); empty when one can.
  std::string missing_tapes(const catalog::VersionRow& version);
  restore::StageCache::Reader reopen(const catalog::VersionRow& version) {
    return cache_.open(version.hash, version.size);
  }

  // Queues the version (once; later calls return the same handle), from
  // the copy on tape_id if given.
  restore::RecallHandle request(const catalog::VersionRow& version, int priority,
                                std::optional<catalog::Id> tape_id = std::nullopt);

 private:
  void read_ahead(const Content& content);
  bool read_ahead_foreign(const Content& content);
  // Whether the version's last recall read a tape and failed (a damaged
  // copy): read-ahead passes it over; an open of the file itself retries.
  bool failed_on_tape(catalog::Id version_id);
  // Whether the version was requested and its recall has not failed.
  bool queued(catalog::Id version_id);
  // Serials the library can load now, re-read at most once a second.
  std::vector<std::string> present_serials();

  Tree& tree_;
  tape::Library& library_;
  restore::StageCache& cache_;
  restore::RecallQueue& queue_;
  RecallContentOptions options_;
  std::mutex mutex_;
  std::map<catalog::Id, restore::RecallHandle> handles_;
  static constexpr std::size_t kPruneHandlesAt = 1 << 16;
  std::size_t prune_handles_at_ = kPruneHandlesAt;
  std::vector<std::string> present_;
  std::chrono::steady_clock::time_point present_read_{};
  // Versions opened in this mount: a version's first open is read once
  // (OpenContent::read_once: `cp -r`, whether read-ahead staged the file
  // before or not); from its second on, through the page cache.
  static constexpr std::size_t kMostRememberedOpens = 1 << 20;  // about 40 MB at most
  std::unordered_set<catalog::Id> opened_;
  std::uint64_t opens_ = 0;
  std::uint64_t cache_hits_ = 0;
  std::mutex cancel_mutex_;
  std::condition_variable cancel_changed_;
  bool cancelled_ = false;
};

}  // namespace mixtape::fs
