// Private to engine/backup: what the stages of the write pipeline share.
//
//   planner.cc        which tapes a session writes, and what it may write
//   hash_stage.cc     hashes and packs the next archive (own thread, pool)
//   write_session.cc  writes archives to the session's tapes and commits
//   fan_out.cc        one archive's bytes to every drive, a thread per drive
//   backup.cc         backup(): sessions until every version has its copies
//
//   hash stage (own thread + hash pool, own catalog connection)   write stage (caller's thread)
//   -----------------------------------------------------------   ----------------------------
//   for each candidate of this session, in path order:             for each ArchiveJob:
//     dirty file    -> read + hash (pool, ~two archives ahead),      index per tape -> age ->
//                      record the version                            records (each drive)
//     known version -> check the source is as it was hashed         archive: pax tar -> age ->
//     pack into an ArchiveJob (offsets known in advance)              fan-out -> records -> each
//                                                                     drive (files re-read from
//                                                                     the page cache, once)
//   ----------------------- BoundedQueue<ArchiveJob>, capacity 1 ----------------------->
//
// An index names every member's hash and precedes its archive, so archive
// k+1 is hashed while archive k is written; the queue gives back-pressure,
// not unbounded memory. docs/BACKUP.md has the whole design.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "engine/backup/backup.h"
#include "engine/backup/hasher.h"
#include "engine/backup/tape_file.h"
#include "engine/format/format.h"

namespace mixtape::backup {

using catalog::Id;

// The most one read(2) of the write stage takes. When it copied into a
// buffer of its own, 256 KiB reads cost 12% less CPU than 1 MiB ones (the
// encryptor copied each from L2); it now reads into the encryptor's batch
// (plain archives: this buffer) and the size was kept.
inline constexpr std::size_t kCopyBuffer = 256 << 10;

// ------------------------------------------------------------ what flows

// A file a session may write: dirty (to be hashed first), or a version
// hashed before that still needs copies.
struct Candidate {
  std::string path;
  Id file_id = 0;
  std::optional<catalog::VersionRow> version;  // nullopt: dirty, hash first
  std::uint64_t size = 0;                      // of a dirty one, when scanned
};

struct Member {
  std::string path;
  Id file_id = 0;
  catalog::VersionRow version;
  format::MemberInfo info;
  format::MemberOffsets offsets;
  catalog::FileIdentity identity;  // as the content named by version.hash
};

struct ArchiveJob {
  std::vector<Member> members;
  std::uint64_t plain_size = 0;  // finished tar
};

// A tape of a session and the drive it is written in.
struct Target {
  catalog::TapeRow tape;
  tape::Drive* drive = nullptr;
  std::size_t drive_index = 0;
  bool fresh = false;  // labelled in this run for this session
};

// The catalog's view of a member: its tar header as PaxWriter writes it.
format::MemberInfo member_info(const catalog::VersionRow& version, const std::string& path);

// ------------------------------------------------------------ sizes

// Bytes of tape a tape file of `bytes` bytes takes, record framing included.
std::uint64_t tape_bytes(std::uint64_t bytes, std::uint64_t record_size);

// The catalog's logical size (what a full copy of it into an index takes),
// which the file size is not: the WAL may hold many versions of the same
// pages.
std::uint64_t catalog_bytes(catalog::Writer& catalog);

// An eighth of the machine's memory: what the page cache is trusted to keep
// of the files read ahead (unbounded if unknown).
std::uint64_t page_cache_share();

// Plaintext bytes per archive when the user set none, for a run that has
// work_bytes to write.
std::uint64_t default_archive_size(std::uint64_t work_bytes);

// Where the tape stands when a session starts, for packing.
struct Room {
  std::uint64_t session = 0;      // bytes this session may use before the trailing index
  std::uint64_t empty_tape = 0;   // what a whole empty tape of this size offers
  std::uint64_t record_size = 0;  // R
  // An index's size before its member rows: the first of a session carries
  // a full catalog copy, or all that changed since the tape was last
  // written (counted as a full copy); later ones what the session changed.
  std::uint64_t first_index_base = 0;
  std::uint64_t index_base = 0;
  std::uint64_t age_header_length = 0;
  const Sealing* sealing = nullptr;

  // Tape bytes an archive of this plaintext size takes with its index.
  std::uint64_t footprint(std::uint64_t plain_size, std::uint64_t index_member_bytes,
                          bool first_of_session) const;
};

// label_bytes: what a fresh tape spends before its first archive (file 0
// and the trailing index written when it is labelled).
Room room_for(std::uint64_t capacity, std::uint64_t bytes_used, std::uint64_t record_size,
              std::uint64_t catalog_size, std::uint64_t label_bytes, const Sealing& sealing,
              std::uint64_t age_header_length);

// Index bytes one member adds: its member row, and its file's rows of the
// catalog changes, roughly.
std::uint64_t index_member_bytes(const std::string& path);

// Whether a member of this size fits on an empty tape at all.
bool fits_empty_tape(const Room& room, std::uint64_t size, const std::string& path);

// Errors that mean the drive itself is gone, rather than the tape in it.
bool drive_failure(tape::TapeErrorKind kind);

// ------------------------------------------------------------ the queue

// Hands items from one thread to another, at most `capacity` waiting.
template <typename T>
class BoundedQueue {
 public:
  explicit BoundedQueue(std::size_t capacity) : capacity_(capacity) {}

  // False if the consumer has gone away.
  bool push(T item) {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return items_.size() < capacity_ || cancelled_; });
    if (cancelled_) return false;
    items_.push_back(std::move(item));
    changed_.notify_all();
    return true;
  }
  // nullopt once the producer closed and everything was taken.
  std::optional<T> pop() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return !items_.empty() || closed_; });
    if (items_.empty()) return std::nullopt;
    T item = std::move(items_.front());
    items_.pop_front();
    changed_.notify_all();
    return item;
  }
  void close() {
    std::lock_guard lock(mutex_);
    closed_ = true;
    changed_.notify_all();
  }
  // The consumer stops: the producer's next push returns false.
  void cancel() {
    std::lock_guard lock(mutex_);
    cancelled_ = true;
    items_.clear();
    changed_.notify_all();
  }

 private:
  std::size_t capacity_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<T> items_;
  bool closed_ = false;
  bool cancelled_ = false;
};

}  // namespace mixtape::backup
