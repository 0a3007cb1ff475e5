// engine/restore: reading files back from tape: the recall queue, the stage
// cache, safe extraction, `mixtape restore` and `mixtape verify`.
//
// Design
//
// * Finding bytes is arithmetic (docs/FORMAT.md section 8). A copy names its
//   archive (first block B0, age header length H) and the member's header
//   offset in the plaintext tar; format::locate() turns that into a block
//   and an age chunk. Reading one member therefore costs: locate to B0 and
//   read H + 16 bytes (the payload key, cached per archive), then reach the
//   member's chunk and decrypt from there, never what lies before it. So
//   one file is at most two locates; a later file of the same archive needs
//   none, or one.
//
// * The drive only moves forward when it can. A TapeCursor (private) knows
//   the block under the head; a target a little ahead is reached by reading
//   and dropping records (across filemarks, so the small index between two
//   archives is read rather than located over), one far ahead or behind by a
//   locate. Which is cheaper is the drive's to say (Drive::timing()): with
//   the LTO-6 model a locate costs 10 s + distance / 25 GB/s while
//   streaming runs at 160 MB/s, so reading up to about 1.6 GB ahead is
//   cheaper. Deciding hop by hop is optimal: the stops (the age header at
//   B0, the member's chunk) must all be read, and after each one the head
//   is at the same place however it got there, so each hop's cheaper way
//   adds up to the cheapest trip. RecallOptions::forward_read_limit
//   overrides the drive's break-even (tests, benchmarks).
//   Within one archive the decryptor keeps running over small gaps instead of
//   being restarted (decrypt_skip_limit).
//
// * The recall queue turns requests into passes. A request names a file
//   version; the queue knows its copies and, when a drive is free, picks the
//   tape to serve: the one already in that drive if it holds any pending
//   request, else the library tape holding the most pending requests (tapes
//   outside the library only when nothing else can serve). A pass reads the
//   tape's requests in (archive block, header offset) order; requests that
//   arrive meanwhile join the pass if they lie ahead of the head, otherwise
//   they wait for the next pass. One worker thread per drive; workers never
//   share a tape. A copy that fails (unreadable, hash mismatch, wrong tape)
//   is struck off and the request goes back to the queue for its next copy;
//   only when no copy is left does it fail, with every copy's error.
//
// * Nothing unverified looks finished. Bytes reach a RecallSink as they are
//   decrypted and hashed; commit() comes only after the BLAKE2b-256 of the
//   whole member matched the catalog. The stage cache releases the last byte
//   of a file to readers only then, and writes objects under a temporary
//   name renamed into place after the hash matched (and fdatasync); restore
//   writes a hidden temporary file renamed over the final name only then.
//
// * Extraction never leaves its directory. Destination resolves every name
//   component by component with openat(O_NOFOLLOW | O_DIRECTORY), refuses
//   names that are absolute or contain "..", and never follows a symlink it
//   finds (even one planted before the restore); files are created with
//   O_EXCL and renamed with RENAME_NOREPLACE unless overwriting was asked.
//
// * Verification is one sequential pass per tape: the same member reader
//   walks every copy of every archive in tape order, so the drive streams;
//   --quick reads only the indexes and the trailing index.
//
// Threads: RecallQueue runs one worker per drive, joined in its destructor;
// StageCache and RecallQueue are safe to call from any thread (the FUSE
// mount calls them from its request threads). restore() and verify() run
// on the caller's thread plus the queue's workers.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "engine/catalog/catalog.h"
#include "engine/common/common.h"
#include "engine/crypto/crypto.h"
#include "engine/tape/tape.h"

namespace mixtape::restore {

// Errors a restore reports per file: they name the file, the tape and the
// block, and carry no secret.
class RestoreError : public Error {
 public:
  using Error::Error;
};

// ------------------------------------------------------------ keys

// The key files a front end was given for reading tapes.
struct KeyFiles {
  std::vector<std::string> identities;  // age identity files (age-keygen format)
  std::string passphrase_file;
  // Used when neither of the above is given, if it exists: the identity
  // `mixtape init` generated.
  std::string default_identity;
};

// Loads the keys. A key file its group or others may read is used, with a
// warning: warn() gets one line naming the file and the fix. An identity
// file that is itself age-encrypted (a passphrase-protected identity) is
// refused at once, before any scrypt work a hostile header could ask for.
crypto::AgeDecryptKeys load_keys(const KeyFiles& files,
                                 const std::function<void(const std::string&)>& warn);

// Why `keys` cannot read the tapes of a catalog with `config`, as far as
// can be told without a tape; empty when they can. An encrypted catalog
// needs a key; a catalog encrypting to recipients needs an identity of one
// of them; a passphrase catalog needs a passphrase (whether it is the right
// one, only a tape can say). A key problem is not tape damage: callers say
// so and record nothing about tapes.
std::string key_problem(const catalog::CatalogConfig& config, const crypto::AgeDecryptKeys& keys);

// ------------------------------------------------------------ sinks

// Where the bytes of one recalled file version go: the stage cache, or a
// file being restored. Calls come from a recall worker thread, in this
// order per attempt: begin (once the member's tar header on tape matched
// the catalog), write..., then commit (the hash matched) or abort (this
// copy failed, possibly before begin; another copy may begin again from
// byte 0). fail
// is called once if no copy is left. An exception thrown by the sink itself
// (a full disk) fails the request at once: other copies would not help.
class RecallSink {
 public:
  virtual ~RecallSink() = default;
  virtual void begin(const catalog::VersionRow& version) = 0;
  virtual void write(ByteSpan data) = 0;
  virtual void commit() = 0;
  virtual void abort() noexcept = 0;
  virtual void fail(const std::string& /*error*/) noexcept {}
};

// ------------------------------------------------------------ stage cache

struct StageCacheOptions {
  std::string directory;                 // created if missing
  std::uint64_t capacity = 64ULL << 30;  // bytes of staged files kept
  // How long to wait for another process that holds the cache (a mount
  // still ending), and who to tell that it waits; 0: refuse at once.
  std::chrono::milliseconds lock_wait{0};
  std::function<void(const std::string&)> on_wait;
  // Test seams: how staged bytes are written (default ::pwrite), and made
  // durable before a staged file is renamed into place (default ::fdatasync).
  std::function<long(int fd, const void* data, std::size_t size, std::int64_t offset)> pwrite;
  std::function<int(int fd)> sync;
};

enum class WaitStatus { kReady, kFailed, kTimedOut };

// Files recalled from tape, content-addressed by BLAKE2b-256, under
// directory/objects/<2 hex>/<64 hex>; bounded by capacity, least recently
// used first out, kept across restarts (directory/lock keeps a second
// process out). A file being staged lives in directory/tmp/ until its hash
// matched and it was synced to disk; leftovers there are removed at
// startup.
class StageCache {
 public:
  explicit StageCache(StageCacheOptions options);
  ~StageCache();
  StageCache(const StageCache&) = delete;
  StageCache& operator=(const StageCache&) = delete;

  // Whether the content is completely staged (and verified).
  bool contains(const catalog::Hash& hash);
  // Waits until every verified file is durable under objects/ (a thread of
  // the cache syncs and renames them in the background; the destructor
  // waits for it too).
  void flush();
  // A sink staging content `hash` of `size` bytes. Space is made at begin()
  // by evicting unpinned files; a file larger than the cache, or a disk
  // that fills up, is a clear error and leaves nothing behind.
  std::unique_ptr<RecallSink> stage(const catalog::Hash& hash, std::uint64_t size);

  // A reader of one content, pinned (never evicted) while it lives. It may
  // be opened before or while the content is staged.
  class Reader {
   public:
    Reader(Reader&&) noexcept;
    Reader& operator=(Reader&&) noexcept;
    ~Reader();
    // Waits until bytes [offset, offset + length) (clipped to the size) are
    // readable. The last byte of the file is readable only once the whole
    // file's hash matched (its sink's commit began; the file need not be
    // on disk yet). kFailed if the staging failed, or if bytes this reader
    // may already have read came from a copy that then failed its hash
    // check or could not be made durable (reopen to read the good copy);
    // error() says why.
    WaitStatus wait_for(std::uint64_t offset, std::uint64_t length,
                        std::chrono::steady_clock::time_point deadline);
    // Reads bytes that wait_for reported ready; returns the count.
    std::size_t read(std::uint64_t offset, MutableByteSpan out);
    // Where read() would take them from: the open file (kept open while
    // `fd` lives) and how many of the bytes from offset it holds now (0:
    // none). The mount replies from it by splice, without copying.
    struct Extent {
      std::shared_ptr<const UniqueFd> fd;
      std::size_t length = 0;
    };
    Extent extent(std::uint64_t offset, std::size_t length);
    std::string error() const;
    std::uint64_t size() const { return size_; }

   private:
    friend class StageCache;
    struct State;
    Reader(std::shared_ptr<State> state, std::uint64_t size);
    std::shared_ptr<State> state_;
    std::uint64_t size_ = 0;
  };
  Reader open(const catalog::Hash& hash, std::uint64_t size);

  // wait_for without keeping a reader (the brief's API for the mount).
  WaitStatus wait_for(const catalog::Hash& hash, std::uint64_t size, std::uint64_t offset,
                      std::uint64_t length, std::chrono::steady_clock::time_point deadline);

  struct Stats {
    std::uint64_t used_bytes = 0;  // staged and being staged
    std::uint64_t capacity = 0;
    std::uint64_t files = 0;       // durable, in objects/
    std::uint64_t persisting = 0;  // verified, being made durable (not in files yet)
    std::uint64_t staged = 0;      // files staged (verified) since start
    std::uint64_t evicted = 0;
    std::uint64_t failed = 0;
  };
  Stats stats() const;

 private:
  class Impl;
  class Sink;
  std::shared_ptr<Impl> impl_;
};

// ------------------------------------------------------------ recall queue

struct RecallOptions {
  // Read forward and drop records rather than locate when the target is at
  // most this many bytes ahead; 0 always locates. None: wherever the drive's
  // timing model says reading is no slower (LTO-6: up to ~1.6 GB ahead).
  std::optional<std::uint64_t> forward_read_limit;
  // Within an archive, decrypt and drop up to this much plaintext rather
  // than restarting the decryptor at a later chunk.
  std::uint64_t decrypt_skip_limit = 8ULL << 20;
  // Read each tape's label when it is loaded: a tape with the right serial
  // from another catalog is refused instead of misread.
  bool check_labels = true;
  // Ask the library to load tapes it does not list (an operator with a
  // manual drive). Off for image libraries, which would make blank tapes.
  bool load_unlisted_tapes = false;
  // Read the member of an empty file from tape too, to check that the tape
  // holds an empty file there (restore); otherwise an empty file needs no
  // tape (the mount: instant).
  bool check_empty_files = false;
  unsigned decrypt_threads = 2;
  // A drive with nothing to read for this long is unloaded (Library::unload:
  // an image is closed, a single device released), so that a backup can
  // use the tape; the next recall loads it again. None: tapes stay loaded.
  std::optional<std::chrono::milliseconds> release_idle_after;
};

enum class RecallState {
  kOffline,  // queued; its tape is not being read yet
  kStaging,  // bytes are being read
  kStaged,   // complete, hash matched
  kFailed,   // no copy could be read; see error
};
const char* to_string(RecallState state);

struct RecallStatus {
  RecallState state = RecallState::kOffline;
  std::uint64_t bytes_done = 0;
  std::uint64_t bytes_total = 0;
  std::string tape;   // the tape being (or last) read
  std::string cause;  // kFailed: every copy's error, "; "-separated
  std::string error;  // kFailed: "path: " and the cause, for one line
  int percent() const;
};

namespace detail {
struct Ticket;
}

// What request() returns: the request's progress, shared with the queue.
class RecallHandle {
 public:
  RecallHandle() = default;
  explicit RecallHandle(std::shared_ptr<detail::Ticket> ticket) : ticket_(std::move(ticket)) {}
  bool valid() const { return ticket_ != nullptr; }
  RecallStatus status() const;
  // Blocks until staged or failed.
  RecallStatus wait() const;
  // False if the deadline passed first.
  bool wait_until(std::chrono::steady_clock::time_point deadline) const;

 private:
  std::shared_ptr<detail::Ticket> ticket_;
};

struct RecallRequest {
  catalog::Id version_id = 0;
  int priority = 0;  // higher is served first when choosing the next tape
  // Where the bytes go; null: the queue's stage cache (requests for the same
  // content are then merged into one recall).
  std::shared_ptr<RecallSink> sink;
  // Read only the copy on this tape (the mount's tapes/<serial>/ and
  // name.replicas/<serial>); none: any copy.
  std::optional<catalog::Id> tape_id;
  // What the caller has resolved already (the mount's tree, a restore's
  // plan), so that the queue does not read it again: the version's row and
  // its catalog path. Empty: the queue reads them.
  std::optional<catalog::VersionRow> version;
  std::string path;
};

struct RecallQueueStats {
  std::uint64_t requests = 0;
  std::uint64_t staged = 0;
  std::uint64_t failed = 0;
  std::uint64_t copy_failures = 0;  // copies struck off (then retried elsewhere)
  std::uint64_t passes = 0;         // tape passes started
  std::uint64_t tape_loads = 0;
  std::uint64_t releases = 0;                  // idle drives unloaded
  std::vector<std::uint64_t> staged_by_drive;  // requests each drive served
};

class RecallQueue {
 public:
  // The queue opens its own read-only connection to the catalog at
  // catalog_path. `cache` may be null if every request brings its sink.
  RecallQueue(const std::string& catalog_path, tape::Library& library, crypto::AgeDecryptKeys keys,
              StageCache* cache, RecallOptions options = {});
  // Stops the workers (after the read in progress) and joins them; requests
  // still queued fail with "recall queue stopped".
  ~RecallQueue();
  RecallQueue(const RecallQueue&) = delete;
  RecallQueue& operator=(const RecallQueue&) = delete;

  // Recalls a version into the stage cache.
  RecallHandle request(catalog::Id version_id, int priority = 0);
  RecallHandle request(const RecallRequest& request);
  // Blocks until nothing is queued or being read.
  void wait_idle();
  RecallQueueStats stats() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// ------------------------------------------------------------ extraction

struct DestinationOptions {
  bool overwrite = false;      // replace existing files and symlinks
  bool restore_owner = false;  // chown to the recorded uid/gid (root only)
};

// A directory that restored files go into and never out of. Names are member
// names: relative paths of bytes. A name that is absolute, contains "..",
// or whose way leads through a symlink or a non-directory is refused with a
// RestoreError and nothing is written.
class Destination {
 public:
  // Opens (making it if missing) the directory.
  Destination(const std::string& directory, DestinationOptions options);
  ~Destination();
  Destination(const Destination&) = delete;
  Destination& operator=(const Destination&) = delete;

  const std::string& directory() const { return directory_; }

  // Creates the directory and any missing parents.
  void make_directory(std::string_view name);
  // Sets mode, owner (if restore_owner) and mtime of a directory.
  void set_directory_attributes(std::string_view name, const catalog::Attributes& attrs);
  void make_symlink(std::string_view name, std::string_view target,
                    const catalog::Attributes& attrs);
  // Whether the name exists (without following a final symlink).
  bool exists(std::string_view name);

  // A regular file being written under a temporary name in its directory;
  // commit() sets its attributes and renames it into place. Destroyed
  // without commit(), it is removed.
  class PendingFile {
    struct Key {  // only Destination makes PendingFiles
      explicit Key() = default;
    };

   public:
    PendingFile(Key, const Destination& owner, UniqueFd parent, std::string name, std::string temp,
                UniqueFd file, catalog::Attributes attrs);
    ~PendingFile();
    PendingFile(const PendingFile&) = delete;
    PendingFile& operator=(const PendingFile&) = delete;
    void write(ByteSpan data);
    void commit();

   private:
    friend class Destination;
    const Destination& owner_;
    UniqueFd parent_;
    std::string name_;
    std::string temp_;
    UniqueFd file_;
    catalog::Attributes attrs_;
    bool committed_ = false;
  };
  std::unique_ptr<PendingFile> begin_file(std::string_view name, const catalog::Attributes& attrs);

  // Extracts a whole tar stream (members as TarReader vets them: hostile
  // names are refused one by one, the rest is extracted). Returns the
  // members that failed with their errors; regular files are checked
  // against their MIXTAPE.blake2b256 when they carry one.
  std::vector<std::string> extract_tar(ByteSource& tar, const std::string& name);

 private:
  // Removes the temporaries of killed restores from a directory (once per
  // run and directory).
  void sweep_temporaries(int parent, const std::string& path);

  std::string directory_;
  DestinationOptions options_;
  UniqueFd root_;
  std::atomic<std::uint64_t> temp_counter_{0};  // temporary names, unique per process
  std::mutex swept_mutex_;
  std::set<std::string> swept_;  // directories swept of stale temporaries
};

// A sink writing a recalled version to a file of a Destination.
std::shared_ptr<RecallSink> file_sink(Destination& destination, std::string name,
                                      const catalog::Attributes& attrs);

// ------------------------------------------------------------ restore

struct RestoreOptions {
  std::vector<std::string> paths;  // absolute catalog paths; files or directories
  std::string destination;         // DIR: paths are recreated below it
  // Restore the snapshot of the newest backup run started at or before this
  // time (nanoseconds since the epoch); none: the newest backed-up version.
  std::optional<std::int64_t> at_ns;
  DestinationOptions destination_options;
  RecallOptions recall;
};

struct RestoreFailure {
  std::string path;
  std::string error;
};

struct RestoreReport {
  std::optional<catalog::RunRow> snapshot;  // the run --at chose
  std::uint64_t files = 0;                  // regular files restored
  std::uint64_t bytes = 0;
  std::uint64_t symlinks = 0;
  std::uint64_t directories = 0;
  std::vector<RestoreFailure> failures;
  RecallQueueStats recall;
};

// Restores the paths below options.destination in tape order, verifying
// every hash; a file that fails is reported and everything else restored.
RestoreReport restore(const std::string& catalog_path, tape::Library& library,
                      const crypto::AgeDecryptKeys& keys, const RestoreOptions& options,
                      Progress& progress);

// "2026-11-21T10:00:00Z" (also with fractional seconds, or a bare date
// meaning its midnight UTC) as nanoseconds since the epoch.
std::optional<std::int64_t> parse_time(std::string_view text);

// ------------------------------------------------------------ verify

struct VerifyOptions {
  // One tape; none: every tape in the library that is not retired.
  std::optional<std::string> serial;
  // These tapes, in this order (verify --oldest); overrides serial.
  std::vector<std::string> serials;
  // Asked for a tape of `serials` that is not in the library (a single
  // drive): returns true once it is (someone inserted it), false to skip
  // it. None: such a tape is skipped.
  std::function<bool(const std::string& serial)> await_tape;
  bool quick = false;  // indexes and trailing index only
  RecallOptions recall;
};

struct VerifyReport {
  std::uint64_t tapes = 0;
  std::uint64_t archives = 0;
  std::uint64_t files_ok = 0;
  std::uint64_t files_bad = 0;
  std::uint64_t indexes_ok = 0;            // --quick
  std::vector<std::string> problems;       // one line each
  std::vector<std::string> skipped_tapes;  // not in the library
  // Tapes the keys given could not open: nothing was recorded about them.
  std::vector<std::string> key_problems;
  bool ok() const { return problems.empty() && key_problems.empty(); }
};

// Re-reads tapes and checks every copy and index (quick: every index)
// against the catalog, recording the results (Catalog::record_verification):
// one row per archive, and one per copy that is not ok. Keys that cannot
// read the catalog's tapes (key_problem) throw RestoreError before any tape
// is touched; a tape whose first archive the passphrase does not open is a
// key problem, not damage: nothing is recorded about it.
VerifyReport verify(catalog::Catalog& catalog, tape::Library& library,
                    const crypto::AgeDecryptKeys& keys, const VerifyOptions& options,
                    Progress& progress);

}  // namespace mixtape::restore
