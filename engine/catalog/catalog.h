// engine/catalog: the SQLite catalog of everything mixtape knows: the scan
// state of every source path, every file version, directories, tapes,
// archives, copies, copy goals, backup runs and verification results.
// docs/CATALOG.md is the schema reference; this comment is the design.
//
// Design
//
// * One SQLite database in WAL mode, one connection per thread: each thread
//   constructs its own Catalog on the same file (SQLite connections are not
//   shared here). Writers wait for each other (busy timeout, 30 s); readers
//   (the mount) never wait for writers. synchronous=FULL: every commit is on
//   disk when commit() returns, so a copy the catalog lists is never lost to
//   a power cut after the writer was told it is committed.
//
// * The schema is created and upgraded by numbered migrations; PRAGMA
//   user_version counts the applied steps. A catalog written by a newer
//   mixtape is refused with a message naming both versions.
//
// * Rows are never deleted (write-once history), so every id is stable
//   forever; the mount uses dirs.id, files.id and versions.id as inode
//   numbers. Ids of different tables are separate spaces; 0 means "none".
//
// * Paths are byte strings: absolute, normalised ("/a/b", never "/a//b/",
//   "." or ".."), no NUL, otherwise any bytes (invalid UTF-8, newlines).
//   Directories are rows of `dirs` (with their full path, for keyed path
//   lookups); every other path (regular file or symlink) is a row of `files`
//   under its directory, and owns its versions.
//
// * A version is a distinct (content, metadata) of a file, on disk from its
//   first_seen_run on. While the file stays as hashed the version is open
//   (last_seen_run NULL, 0 in rows): an unchanged scan writes nothing. The
//   scan closes it (last_seen_run = the last run that saw it) when it finds
//   the file changed or gone; the same content recorded again reopens it.
//   Directories are open and closed the same way. Snapshot r shows, under
//   run r's roots, the version whose range contains r, unless the file was
//   absent from a run in between (recorded as a gap). Every version ever
//   recorded needs its copy goal: old versions are data too.
//
// * Planning is keyed: each version carries its copy goal (longest matching
//   prefix of copy_goals, kept up to date when goals change) and its count of
//   distinct non-retired tapes holding a copy (kept by triggers), and a
//   partial index holds exactly the versions below goal.
//
// * Every lookup that the writer, restore and the mount make is a keyed
//   query on an index (tests/catalog/scale_test.cc checks the query plans).
//   Prepared statements are cached per Catalog. Results that can be huge
//   (dirty files, pending versions, a tape's copies) are streamed to a
//   callback, which may itself call into the same Catalog; a callback that
//   writes should run inside a transaction() held around the whole loop, so
//   the reading statement and the writes share one snapshot and lock.
//
// * copy_into() copies the catalog, or what changed since an earlier copy,
//   into an on-tape index database (format 2's catalog_* tables; docs/
//   FORMAT.md). Every write to dirs, versions and gaps stamps the row with
//   the catalog's change epoch, and files, archives, copies and
//   verifications are never updated, so "what changed" is a range query on
//   an index, not a comparison. merge_from_index() reads such an index as hostile input (read-only,
//   defensive SQLite settings, every value type- and range-checked, paths
//   validated) and merges it by natural keys, remapping ids.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/catalog/values.h"
#include "engine/common/common.h"
#include "engine/crypto/crypto.h"
#include "engine/sqlite/sqlite.h"

namespace mixtape::catalog {

// ------------------------------------------------------------------ views

// Which tree a listing shows: the mount's latest/, snapshots/<time>/ and
// tapes/<serial>/.
struct View {
  enum class Kind { kLatest, kSnapshot, kTape };
  Kind kind = Kind::kLatest;
  Id run_id = 0;                // kSnapshot
  Id tape_id = 0;               // kTape
  bool backed_up_only = false;  // kLatest: newest version with a committed copy

  // Every file ever backed up, in its newest version (deleted files too).
  static View latest(bool backed_up_only = false) { return {Kind::kLatest, 0, 0, backed_up_only}; }
  // The tree run `run_id` saw under its roots (their ancestors lead there).
  static View snapshot(Id run_id) { return {Kind::kSnapshot, run_id, 0, false}; }
  // What a tape holds: files with a copy on it (newest such version), and
  // the directories leading to them.
  static View tape(Id tape_id) { return {Kind::kTape, 0, tape_id, false}; }
};

// A directory entry in a view. When a name was a directory once and a file
// another time, the one seen in the later run is shown.
struct Entry {
  std::string name;
  bool is_dir = false;
  DirRow dir;          // when is_dir
  Id file_id = 0;      // when !is_dir
  VersionRow version;  // when !is_dir: the version this view shows
};

// What an on-tape index holds of the catalog, so the next index on the same
// tape can carry only what changed: rows of dirs, versions and gaps written
// at `epoch` or later, and rows of files, archives, copies and verifications
// with ids above these, are new to it.
struct CopyMark {
  std::int64_t epoch = 0;
  Id files = 0;
  Id archives = 0;
  Id copies = 0;
  Id verifications = 0;
  // A mark past everything: an index "since" it gets only the small tables
  // (settings, runs, tapes, goals), as a new tape's first trailing index.
  static CopyMark nothing_new();
  bool operator==(const CopyMark&) const = default;
};

// The catalog's last full copy on tape, kept beside the catalog: the file
// and what it holds.
struct LastTapeCopy {
  std::string path;
  CopyMark holds;
};

// The last archive index on a tape: its tape file and what it holds.
struct IndexMark {
  std::int64_t index_file = 0;
  CopyMark holds;
  bool operator==(const IndexMark&) const = default;
};

struct MergeOptions {
  // Merge an index from another catalog (a different catalog_id) anyway.
  bool force = false;
};

// Rows added by a merge (matched rows are not counted).
struct MergeStats {
  std::uint64_t runs = 0, tapes = 0, dirs = 0, files = 0, versions = 0;
  std::uint64_t archives = 0, copies = 0, verifications = 0;
  bool adopted_catalog_id = false;  // the catalog was empty and took the index's id
};

class StatementCache;

// The catalog as it stood at one of a tape's indexes, rebuilt from that tape
// alone (docs/FORMAT.md, "The catalog in an index"): the full copy of an
// index, then the changes of each later one in tape order, into a scratch
// database of format 2's catalog_* tables for merge_from_index(). Indexes
// are untrusted: each is attached read-only with SQLite's defensive
// settings and only its catalog_* rows are copied, by the columns this
// format defines; the merge checks every value.
class CatalogChain {
 public:
  explicit CatalogChain(std::string path);  // a new scratch database at path
  ~CatalogChain();
  CatalogChain(const CatalogChain&) = delete;
  CatalogChain& operator=(const CatalogChain&) = delete;
  // full: a full copy (format 1, or format 2's `full`), which starts the
  // chain anew; otherwise changes (or `tapes`) on top of what is there.
  void add(const std::string& index_path, bool full);
  // Closes the database; returns its path, for merge_from_index().
  const std::string& finish();

 private:
  std::string path_;
  std::unique_ptr<sqlite::Database> db_;
};

// What check_integrity did: the full check, or only the cheap ones because
// a stamp showed the file unchanged since a full check passed.
enum class IntegrityCheck { kFull, kStamped };

// Where check_integrity remembers catalogs it found intact:
// $XDG_CACHE_HOME/mixtape/checked, else ~/.cache/mixtape/checked; empty
// without a home (then every check is a full one).
std::string integrity_stamp_dir();
// A catalog's stamp in stamp_dir, named by the BLAKE2b of its canonical
// path; empty when the path does not resolve.
std::string integrity_stamp_path(const std::string& stamp_dir, const std::string& catalog_path);
// The identity of a catalog file as its stamp records it (one line: device,
// inode, size, mtime, ctime, the write-ahead log's, the header's change
// counter); empty when the file cannot be read.
std::string catalog_identity(const std::string& catalog_path);

// What the mount and the recall queue may do with a catalog: read it. They
// hold this, not a Catalog, so the writer's methods (scan, plan, commit,
// settings) are out of their reach by type, not only by a read-only
// connection (restic's narrow Lister and Loader are the model). Catalog
// implements it; Catalog::open_read_only gives one to hold as a Reader.
class Reader {
 public:
  virtual ~Reader() = default;
  virtual std::string catalog_id() = 0;
  virtual CatalogConfig config() = 0;
  virtual std::optional<RunRow> run(Id run_id) = 0;
  virtual std::vector<RunRow> runs() = 0;
  virtual std::optional<DirRow> dir(Id dir_id) = 0;
  virtual std::optional<FileRow> file(Id file_id) = 0;
  virtual std::string file_path(Id file_id) = 0;
  virtual std::optional<VersionRow> version(Id version_id) = 0;
  virtual std::vector<VersionRow> versions_of(Id file_id) = 0;
  virtual std::optional<TapeRow> tape(Id tape_id) = 0;
  virtual std::optional<TapeRow> tape_by_serial(std::string_view serial) = 0;
  virtual std::vector<TapeRow> tapes() = 0;
  virtual std::vector<ArchiveRow> archives_of_tape(Id tape_id) = 0;
  virtual std::vector<LocatedCopy> copies_of(Id version_id) = 0;
  virtual void for_each_copy_on_tape(Id tape_id,
                                     const std::function<void(const CopyWithVersion&)>& fn) = 0;
  virtual void for_each_copy_in_archive(Id archive_id,
                                        const std::function<bool(const CopyWithVersion&)>& fn) = 0;
  virtual std::vector<Entry> list_dir(Id dir_id, const View& view, std::string_view after = {},
                                      std::size_t limit = 1024) = 0;
  virtual std::optional<Entry> lookup(Id dir_id, std::string_view name, const View& view) = 0;
  virtual std::optional<Entry> resolve(std::string_view path,
                                       const View& view = View::latest()) = 0;
  virtual void walk(std::string_view path, const View& view,
                    const std::function<void(const std::string& path, const Entry&)>& fn) = 0;

 protected:
  Reader() = default;
  Reader(const Reader&) = default;
  Reader& operator=(const Reader&) = default;
};

class Catalog;

// What the writer (engine/backup: scan, hash, plan, label, write a session
// and commit it) may do with a catalog: read it as a Reader, and record what
// it scanned, hashed and wrote. Out of its reach: merging indexes, retiring
// and locating tapes, verification results, history, status and settings
// (restic's narrow Saver beside its Loader is the model). Catalog implements
// it; engine/backup's functions take a Writer&, and the hash stage opens
// another connection of its own from it.
class Writer : public Reader {
 public:
  // ---- the connection (Catalog's comments say more)
  virtual const std::string& path() const = 0;
  virtual sqlite::Transaction transaction() = 0;
  virtual std::uint64_t logical_size() = 0;
  virtual Catalog another_connection() const = 0;

  // ---- runs
  virtual Id begin_run(RunKind kind, const std::vector<std::string>& roots) = 0;
  virtual void finish_run(Id run_id) = 0;
  virtual Id previous_run(Id run_id) = 0;
  virtual void set_run_totals(Id run_id, std::uint64_t files, std::uint64_t bytes) = 0;

  // ---- scan and hash
  virtual Id ensure_dir(std::string_view path) = 0;
  virtual Id ensure_file(Id dir_id, std::string_view name) = 0;
  virtual std::vector<DirRow> subdirs(Id dir_id, std::string_view after = {},
                                      std::size_t limit = 1024) = 0;
  virtual void touch_dir(Id dir_id, const Attributes& attrs, Id run_id) = 0;
  virtual std::vector<ScanEntry> scan_entries(Id dir_id) = 0;
  virtual void set_scan_state(Id file_id, const ScanState& state) = 0;
  virtual void close_latest_version(Id file_id, Id last_seen_run) = 0;
  virtual void mark_dirty(Id file_id, Id last_seen_run) = 0;
  virtual void mark_absent(Id file_id, Id last_seen_run) = 0;
  virtual void mark_dir_absent(Id dir_id, Id last_seen_run) = 0;
  virtual void for_each_dirty(const std::function<void(const FileRef&)>& fn) = 0;
  virtual RecordedVersion record_version(Id file_id, const VersionRow& version, Id run_id) = 0;

  // ---- plan
  virtual void set_copy_goal(std::string_view prefix, int copies) = 0;
  virtual std::vector<CopyGoal> copy_goals() = 0;
  virtual void for_each_pending(Id tape_id, const std::function<void(const PendingVersion&)>& fn,
                                bool only_present = true) = 0;

  // ---- commit: tapes, archives, copies and the indexes written with them
  virtual Id add_tape(const TapeRow& tape) = 0;
  virtual void update_tape(const TapeRow& tape) = 0;
  virtual void set_tape_state(Id tape_id, TapeState state) = 0;
  virtual Id add_archive(const ArchiveRow& archive) = 0;
  virtual Id add_copy(const CopyRow& copy) = 0;
  virtual CopyMark copy_into(sqlite::Database& index,
                             const std::optional<CopyMark>& since = std::nullopt) = 0;
  virtual CopyMark add_changes_into(sqlite::Database& index, const CopyMark& since) = 0;
  virtual CopyMark refresh_copy(sqlite::Database& index, const CopyMark& held) = 0;
  virtual std::optional<LastTapeCopy> last_tape_copy() = 0;
  virtual void keep_tape_copy(const std::string& index_path, const CopyMark& holds) = 0;
  virtual void drop_stale_tape_copies() = 0;
  virtual std::optional<IndexMark> index_mark(Id tape_id) = 0;
  virtual void set_index_mark(Id tape_id, const std::optional<IndexMark>& mark) = 0;

 protected:
  Writer() = default;
  Writer(const Writer&) = default;
  Writer& operator=(const Writer&) = default;
};

class Catalog final : public Writer {
 public:
  // Creates a new catalog file; refuses an existing path.
  static Catalog create(const std::string& path, const CatalogConfig& config);
  // Opens an existing catalog read-write, upgrading an older schema. The
  // file's structure is checked first (check_integrity with stamp_dir): a
  // writer never builds on a damaged catalog. With a stamp_dir, closing a
  // catalog that was written stamps it (checked at open, written only
  // through SQLite since), so the next reader need not check it.
  static Catalog open(const std::string& path, const std::string& stamp_dir = {});
  // Opens read-only (the mount). An older schema is refused (it needs one
  // read-write open to upgrade), as is a newer one. The structure is not
  // checked here (the mount opens one connection per thread): a reader
  // that wants the check calls check_integrity once.
  static Catalog open_read_only(const std::string& path);
  // Another connection to this catalog, for a thread of its own, in the
  // same mode. Nothing is checked (this connection's open did that) and
  // closing it stamps nothing (closing this one will).
  Catalog another_connection() const override;

  // Checks the database's structure (SQLite's quick_check: every page of
  // every table and index, about 1 ms per MB). A catalog that is damaged
  // (bytes flipped, truncated, a write-ahead log from another database) is
  // refused with a CatalogError naming the file and saying what to do.
  // SQLite keeps no checksums, so damage that leaves the structure intact
  // (a changed byte inside a row) is not found here.
  // With a stamp_dir (integrity_stamp_dir()), a passed check is stamped
  // there and skipped while the file's identity still matches its stamp;
  // the cheap checks (header, size against the header's page count) always
  // run. A stamp that cannot be read or written only means a full check.
  IntegrityCheck check_integrity(const std::string& stamp_dir = {});

  Catalog(Catalog&&) noexcept;
  Catalog& operator=(Catalog&&) noexcept;
  ~Catalog();

  const std::string& path() const override { return path_; }
  // The schema version this binary writes (the number of migrations).
  static int schema_version();
  // The schema version of the catalog file at path, as written (0 if it
  // cannot be read as one).
  static int file_schema_version(const std::string& path);

  // BEGIN IMMEDIATE ... commit(); rolled back if destroyed uncommitted.
  // Group many writes in one (a scan, a merge): each commit is an fsync.
  // Methods below that make several writes are atomic on their own.
  sqlite::Transaction transaction() override { return sqlite::Transaction(*db_); }
  // The catalog's logical size: its pages times the page size (what a full
  // copy of it takes, about), which the file size is not.
  std::uint64_t logical_size() override;
  // The connection, for diagnostics and tests (EXPLAIN QUERY PLAN).
  sqlite::Database& database() { return *db_; }

  // ---- config
  std::string catalog_id() override;  // 32 lower-case hex digits, random at creation
  CatalogConfig config() override;
  std::optional<std::string> get_config(std::string_view key);
  void set_config(std::string_view key, std::string_view value);

  // ---- runs
  Id begin_run(RunKind kind, const std::vector<std::string>& roots) override;
  void finish_run(Id run_id) override;
  std::optional<RunRow> run(Id run_id) override;
  std::vector<RunRow> runs() override;  // oldest first
  // The newest run started at or before time_ns (restore --at).
  std::optional<RunRow> run_at(std::int64_t time_ns);
  // The run before run_id (0: none).
  Id previous_run(Id run_id) override;
  // What run_id found under its roots (RunRow::files, bytes).
  void set_run_totals(Id run_id, std::uint64_t files, std::uint64_t bytes) override;

  // ---- namespace
  Id ensure_dir(std::string_view path) override;  // makes missing ancestors
  Id ensure_file(Id dir_id, std::string_view name) override;
  std::optional<DirRow> dir(Id dir_id) override;
  std::optional<DirRow> dir_by_path(std::string_view path);
  std::optional<FileRow> file(Id file_id) override;
  std::optional<Id> file_by_path(std::string_view path);
  std::string file_path(Id file_id) override;

  // ---- scan
  // A directory seen by run_id with these attributes: writes only when they
  // changed or the directory was not open (never seen, or gone and back).
  void touch_dir(Id dir_id, const Attributes& attrs, Id run_id) override;
  // Every file of the directory with its scan state, by name (one query, to
  // compare with a readdir listing).
  std::vector<ScanEntry> scan_entries(Id dir_id) override;
  void set_scan_state(Id file_id, const ScanState& state) override;  // insert or replace
  // The file's latest version, if open, was last seen in last_seen_run (the
  // file changed or went away after it).
  void close_latest_version(Id file_id, Id last_seen_run) override;
  // The file changed since its latest version: dirty, and that version closed.
  void mark_dirty(Id file_id, Id last_seen_run) override;
  void clear_dirty(Id file_id);
  // The path is gone from disk: its scan state is dropped and its latest
  // version closed (its versions stay).
  void mark_absent(Id file_id, Id last_seen_run) override;
  // A directory is gone: every file below it is marked absent, and it and
  // every directory below it closed.
  void mark_dir_absent(Id dir_id, Id last_seen_run) override;
  // Dirty files in path order (directory path, then name).
  void for_each_dirty(const std::function<void(const FileRef&)>& fn) override;
  std::uint64_t dirty_count();

  // ---- versions
  // Records what run_id hashed, as an open version. Identical (kind, size,
  // hash, attributes, target) to the file's latest version: that version
  // goes on (reopened, with a gap if a run in between covered the path
  // without seeing it). Otherwise a new version is added.
  RecordedVersion record_version(Id file_id, const VersionRow& version, Id run_id) override;
  std::optional<VersionRow> version(Id version_id) override;
  std::optional<VersionRow> latest_version(Id file_id);
  std::vector<VersionRow> versions_of(Id file_id) override;  // oldest first

  // ---- copy goals
  // Sets the goal of a path prefix (a directory or a file; "/" is the
  // default) and updates the versions below it.
  void set_copy_goal(std::string_view prefix, int copies) override;
  // Removes a prefix's goal ("/" cannot be removed).
  void remove_copy_goal(std::string_view prefix);
  std::vector<CopyGoal> copy_goals() override;  // by prefix
  int default_copy_goal();
  int goal_for(std::string_view path);  // longest matching prefix

  // ---- planning
  // Versions below their copy goal without a copy on tape_id (0: any tape),
  // in path order (directory path, name, version). With only_present, just
  // those that are still on disk as hashed: open versions of files whose
  // scan state is readable and not dirty. (Older versions stay below goal in
  // status() until written.)
  void for_each_pending(Id tape_id, const std::function<void(const PendingVersion&)>& fn,
                        bool only_present = true) override;

  // ---- tapes
  Id add_tape(const TapeRow& tape) override;  // id ignored; serial must be new
  // Writes the mutable fields: capacity, state, bytes_used, append_file,
  // append_block, written_at_ns.
  void update_tape(const TapeRow& tape) override;
  void set_tape_state(Id tape_id, TapeState state) override;
  // Where a tape is kept (free text, e.g. "offsite: bank box 12"; "" for
  // not said).
  void set_tape_location(Id tape_id, std::string_view location);
  // Retires a tape (reason: is_retire_reason): it is never written again
  // and its copies stop counting toward copy goals (each version's copies
  // is recounted), while they stay in the catalog and can still be read.
  // Refuses a tape already retired.
  void retire_tape(Id tape_id, std::string_view reason);
  std::optional<TapeRow> tape(Id tape_id) override;
  std::optional<TapeRow> tape_by_serial(std::string_view serial) override;
  std::optional<TapeRow> tape_by_foreign_id(std::string_view foreign_id);
  std::vector<TapeRow> tapes() override;  // by serial

  // ---- archives and copies
  Id add_archive(const ArchiveRow& archive) override;  // id ignored
  std::optional<ArchiveRow> archive(Id archive_id);
  std::optional<ArchiveRow> archive_by_file(Id tape_id, std::int64_t archive_file);
  std::vector<ArchiveRow> archives_of_tape(Id tape_id) override;  // by archive_file
  Id add_copy(const CopyRow& copy) override;                      // id ignored
  std::vector<LocatedCopy> copies_of(Id version_id) override;     // by tape serial
  // In tape order: archive_file, then data_offset.
  void for_each_copy_on_tape(Id tape_id,
                             const std::function<void(const CopyWithVersion&)>& fn) override;
  // The copies of one archive in tape order (data_offset), until fn
  // returns false.
  void for_each_copy_in_archive(Id archive_id,
                                const std::function<bool(const CopyWithVersion&)>& fn) override;

  // ---- the mount's views
  // Up to `limit` entries with names after `after` ("" = from the start), by
  // name (byte order). Fewer than limit means the end (the mount relies on
  // it to answer the readdir that confirms the end without a query).
  std::vector<Entry> list_dir(Id dir_id, const View& view, std::string_view after = {},
                              std::size_t limit = 1024) override;
  std::optional<Entry> lookup(Id dir_id, std::string_view name, const View& view) override;
  // The directory rows below dir_id (every one ever seen, whatever the
  // view), by name after `after`, up to limit: what a scan compares with
  // the disk, without reading the directory's files and their versions.
  // Fewer than limit means the end.
  std::vector<DirRow> subdirs(Id dir_id, std::string_view after = {},
                              std::size_t limit = 1024) override;
  std::optional<Entry> resolve(std::string_view path, const View& view = View::latest()) override;
  // Every entry below path (depth first, by name), with its full path.
  void walk(std::string_view path, const View& view,
            const std::function<void(const std::string& path, const Entry&)>& fn) override;

  // ---- history: what changed between runs, files by name
  // The version snapshot run_id shows of a file (none: not in it).
  std::optional<VersionRow> version_in_snapshot(Id file_id, Id run_id);
  // Every file whose version differs between the snapshots of two runs
  // (from_run before to_run), by path: added (no version in from_run),
  // removed (none in to_run), or another version. Only the files whose
  // versions begin or end between the runs are looked at (keyed by run),
  // and when the runs' roots differ, the files under the roots only one of
  // them covered.
  struct SnapshotChange {
    Id file_id = 0;
    std::string path;
    std::optional<VersionRow> before;  // in from_run
    std::optional<VersionRow> after;   // in to_run
  };
  std::vector<SnapshotChange> changes_between(Id from_run, Id to_run);
  // The files (every path ever seen that is not a directory) whose name
  // matches a shell pattern (fnmatch(3); "*" and "?" never match "/"), by
  // path. The pattern's literal beginning is a range on an index of names.
  std::vector<std::pair<Id, std::string>> files_named(std::string_view pattern);

  // ---- status and verification
  CatalogStatus status();
  // Versions below their copy goal, and their bytes (a partial index: cheap
  // at any size, unlike status()).
  std::pair<std::uint64_t, std::uint64_t> below_goal();
  Id record_verification(const VerificationRow& row);  // id ignored
  // The newest result for the archive as a whole, or for one copy in it.
  std::optional<VerificationRow> last_verification(Id archive_id, Id version_id = 0);
  std::vector<VerificationRow> verifications_of_archive(Id archive_id);  // newest first

  // ---- on-tape indexes
  // Copies the committed catalog into an index database as format 2's
  // catalog_* tables (replacing earlier ones there): all of it, or with
  // `since` (the mark of the previous index on the same tape) only what
  // changed since, and the small tables whole. scan_state, tape_dirs and
  // what a reader rebuilds are left out (docs/FORMAT.md). No transaction may
  // be open on this connection. Returns the mark of what the index holds.
  CopyMark copy_into(sqlite::Database& index,
                     const std::optional<CopyMark>& since = std::nullopt) override;
  // Adds to an index that copy_into() filled what changed since its mark,
  // read through this connection: the rows of a write transaction open on
  // it come along (the trailing index, on tape before its session commits).
  // Returns the mark of what the index now holds.
  CopyMark add_changes_into(sqlite::Database& index, const CopyMark& since) override;
  // copy_into() for an index that already holds the catalog as of `held`
  // (one started from last_tape_copy()): brings it up to date in place,
  // the changed rows replaced and the small tables whole. Costs what
  // changed, not the catalog's size.
  CopyMark refresh_copy(sqlite::Database& index, const CopyMark& held) override;
  // The catalog's last full copy on tape, kept beside the catalog by
  // keep_tape_copy() (<catalog>.tapecopy/<token>.db), if it is there and
  // of this layout; removes older ones. No transaction may be open.
  std::optional<LastTapeCopy> last_tape_copy() override;
  // Inside the transaction that commits a full trailing index already on
  // tape: keeps its file (moved from index_path) as the last copy, holding
  // `holds`. If it cannot be kept (a full disk), the next copy is made
  // from the catalog: nothing else depends on it.
  void keep_tape_copy(const std::string& index_path, const CopyMark& holds) override;
  // Removes kept copies other than the one the committed catalog names.
  void drop_stale_tape_copies() override;
  // The last archive index on a tape and what it holds (local: a recovered
  // catalog has none, and the next index on the tape is a full copy).
  std::optional<IndexMark> index_mark(Id tape_id) override;
  void set_index_mark(Id tape_id, const std::optional<IndexMark>& mark) override;
  // Merges the catalog_* tables of an index (a file from tape: untrusted)
  // into this catalog, in one transaction. Refuses an index of another
  // catalog unless this one is empty (it then adopts the index's id and
  // settings, and keeps its row ids) or options.force. Format 1 and 2
  // indexes alike; one holding only changes needs the indexes before it
  // applied first (recover does that).
  MergeStats merge_from_index(const std::string& index_db_path, const MergeOptions& options = {});

 private:
  Catalog(std::string path, std::unique_ptr<sqlite::Database> db, bool read_only);
  CopyMark fill_copy(sqlite::Database& index, const std::optional<CopyMark>& since, bool in_place);

  std::string path_;
  std::unique_ptr<sqlite::Database> db_;
  std::unique_ptr<StatementCache> stmts_;
  bool read_only_ = false;
  std::string stamp_dir_;  // read-write: where closing stamps the checked file
};

// One writer at a time. Every command that changes a catalog (backup, scan,
// label, verify, recover) holds this lock for as long as it runs: an
// flock(2) on "<catalog>.lock" beside the catalog, which also records the
// holder's pid and command line. A second writer is refused at once with a
// CatalogError naming the process that holds it. The lock goes with the
// process: a killed writer leaves nothing to clean up. Readers (status, ls,
// restore, the mount) take no lock.
class WriterLock {
 public:
  // Takes the lock, creating the lock file if needed; throws CatalogError
  // ("the catalog X is in use by process N (mixtape backup ...)") if
  // another process holds it.
  explicit WriterLock(const std::string& catalog_path);
  WriterLock(WriterLock&&) noexcept = default;
  WriterLock& operator=(WriterLock&&) noexcept = default;
  WriterLock(const WriterLock&) = delete;
  WriterLock& operator=(const WriterLock&) = delete;
  ~WriterLock() = default;

  static std::string path_for(const std::string& catalog_path);

 private:
  UniqueFd fd_;
};

// Many writes in batches of transactions, for work that writes as it goes
// (a scan, hashing): begin() opens a transaction unless one is open,
// commit() ends it (a no-op without one), and every() commits once `writes`
// writes were counted by wrote(). Rolled back if destroyed open: commit
// before.
class WriteBatch {
 public:
  explicit WriteBatch(Writer& catalog, std::uint64_t every = 0)
      : catalog_(catalog), every_(every) {}
  void begin();
  void commit();
  bool open() const { return transaction_.has_value(); }
  // Counts a write made in the batch; commits and begins anew every `every`.
  void wrote();

 private:
  Writer& catalog_;
  std::uint64_t every_;
  std::uint64_t writes_ = 0;
  std::optional<sqlite::Transaction> transaction_;
};

const char* to_string(RunKind kind);
const char* to_string(VersionKind kind);
const char* to_string(TapeState state);
const char* to_string(VerifyResult result);

}  // namespace mixtape::catalog
