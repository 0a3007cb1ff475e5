// engine/catalog internals: shared by the module's files and its tests only.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "engine/catalog/catalog.h"
#include "engine/sqlite/sqlite.h"

namespace mixtape::catalog {

// Prepared statements of one connection, keyed by their SQL text (string
// literals with static storage, so the keys stay valid). A lease resets the
// statement when it goes out of scope, so no statement keeps a read snapshot
// open between calls. Leasing a statement that is already leased is a bug (a
// nested use would reset the outer one) and throws.
struct CachedStatement {
  sqlite::Statement stmt;
  bool leased = false;
};

class StatementCache {
 public:
  explicit StatementCache(sqlite::Database& db) : db_(db) {}
  StatementCache(const StatementCache&) = delete;
  StatementCache& operator=(const StatementCache&) = delete;

  class Lease {
   public:
    Lease(Lease&& other) noexcept : entry_(std::exchange(other.entry_, nullptr)) {}
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Lease& operator=(Lease&&) = delete;
    ~Lease();
    sqlite::Statement& operator*() { return entry_->stmt; }
    sqlite::Statement* operator->() { return &entry_->stmt; }

   private:
    friend class StatementCache;
    explicit Lease(CachedStatement* entry) : entry_(entry) {}
    CachedStatement* entry_;
  };

  Lease get(std::string_view sql);
  sqlite::Database& db() { return db_; }

 private:
  sqlite::Database& db_;
  std::unordered_map<std::string_view, std::unique_ptr<CachedStatement>> entries_;
};

namespace internal {

// ------------------------------------------------------------------ paths

inline constexpr std::size_t kMaxPathBytes = 65536;
inline constexpr std::size_t kMaxNameBytes = 4096;

// An absolute, normalised path: "/" or "/a/b" (no empty, "." or ".."
// components, no trailing "/", no NUL).
bool is_valid_path(std::string_view path);
// One path component: not empty, ".", "..", no "/" or NUL.
bool is_valid_name(std::string_view name);
// Throws CatalogError naming `what` unless valid.
void check_path(std::string_view path, std::string_view what);
void check_name(std::string_view name, std::string_view what);
std::string join_path(std::string_view dir, std::string_view name);
// "/a/b" -> {"/a", "b"}; "/a" -> {"/", "a"}. Not for "/".
std::pair<std::string_view, std::string_view> split_path(std::string_view path);
// path == root, or path lies below root ("/" covers everything).
bool is_under(std::string_view path, std::string_view root);
// A tape serial: 1 to 32 of [A-Za-z0-9._-] (it names tapes/<serial>/ and
// <serial>.tap files).
bool is_valid_serial(std::string_view serial);
// Byte-quoted for error messages: printable ASCII kept, others as \xNN.
std::string quote(std::string_view bytes);
// Bounds for "below P" (see queries.h): P/ and P0 in byte order.
std::pair<std::string, std::string> subtree_bounds(std::string_view prefix);
// Binds an id, 0 as NULL.
sqlite::Statement& bind_id(sqlite::Statement& s, int index, Id id);

// ------------------------------------------------------------------ schema

inline constexpr std::int32_t kApplicationId = 0x4d585450;  // "MXTP"

struct Migration {
  const char* description;
  const char* sql;
};

// The catalog's migrations; step i brings user_version from i to i + 1.
std::span<const Migration> migrations();
int user_version(sqlite::Database& db);
// Applies the steps not yet applied, in one transaction. Refuses a database
// whose user_version exceeds steps.size(). `path` names it in messages.
void migrate(sqlite::Database& db, std::span<const Migration> steps, const std::string& path);
// The tables copied into on-tape indexes, in dependency order.
std::span<const char* const> copied_tables();

// ------------------------------------------------------------------ enums

// The names the catalog stores for its enums (to_string and parse_*).
inline constexpr EnumNames<RunKind, 2> kRunKinds{
    {{RunKind::kScan, "scan"}, {RunKind::kBackup, "backup"}}};
inline constexpr EnumNames<VersionKind, 2> kVersionKinds{
    {{VersionKind::kFile, "file"}, {VersionKind::kSymlink, "symlink"}}};
inline constexpr EnumNames<TapeState, 4> kTapeStates{{{TapeState::kLabelled, "labelled"},
                                                      {TapeState::kOpen, "open"},
                                                      {TapeState::kFull, "full"},
                                                      {TapeState::kRetired, "retired"}}};
inline constexpr EnumNames<VerifyResult, 4> kVerifyResults{
    {{VerifyResult::kOk, "ok"},
     {VerifyResult::kMismatch, "mismatch"},
     {VerifyResult::kUnreadable, "unreadable"},
     {VerifyResult::kMissing, "missing"}}};
inline constexpr EnumNames<Encryption, 3> kEncryptions{{{Encryption::kNone, "none"},
                                                        {Encryption::kRecipients, "recipients"},
                                                        {Encryption::kPassphrase, "passphrase"}}};
std::optional<RunKind> parse_run_kind(std::string_view text);
std::optional<VersionKind> parse_version_kind(std::string_view text);
std::optional<TapeState> parse_tape_state(std::string_view text);
std::optional<VerifyResult> parse_verify_result(std::string_view text);
std::string random_catalog_id();

// ------------------------------------------------------------------ rows

// Column lists of the row readers below, with their table aliases.
#define MIXTAPE_DIR_COLUMNS                                                              \
  "d.id, d.parent, d.name, d.path, d.mode, d.uid, d.gid, d.uname, d.gname, d.mtime_ns, " \
  "d.first_seen_run, d.last_seen_run"
inline constexpr int kDirColumns = 12;
#define MIXTAPE_VERSION_COLUMNS                                                          \
  "v.id, v.file_id, v.kind, v.size, v.hash, v.mtime_ns, v.mode, v.uid, v.gid, v.uname, " \
  "v.gname, v.symlink_target, v.first_seen_run, v.last_seen_run, v.copies, v.goal"
inline constexpr int kVersionColumns = 16;
#define MIXTAPE_TAPE_COLUMNS                                                         \
  "t.id, t.serial, t.capacity, t.record_size, t.encrypted, t.state, t.bytes_used, "  \
  "t.append_file, t.append_block, t.labelled_at_ns, t.written_at_ns, t.foreign_id, " \
  "t.location, t.retired_reason, t.retired_at_ns"
inline constexpr int kTapeColumns = 15;
#define MIXTAPE_ARCHIVE_COLUMNS                                                                \
  "a.id, a.tape_id, a.index_file, a.index_block, a.archive_file, a.first_block, a.encrypted, " \
  "a.age_header_len, a.cipher_bytes, a.plain_bytes, a.members, a.written_at_ns, a.run_id, "    \
  "a.foreign_format, a.record_size"
inline constexpr int kArchiveColumns = 15;
#define MIXTAPE_COPY_COLUMNS "c.id, c.archive_id, c.version_id, c.header_offset, c.data_offset"
inline constexpr int kCopyColumns = 5;

DirRow read_dir(const sqlite::Statement& s, int first);
VersionRow read_version(const sqlite::Statement& s, int first);
TapeRow read_tape(const sqlite::Statement& s, int first);
ArchiveRow read_archive(const sqlite::Statement& s, int first);
CopyRow read_copy(const sqlite::Statement& s, int first);
// A row of kCopiesOnTape and kCopiesInArchive: copy, archive file, version, path.
CopyWithVersion read_copy_with_version(const sqlite::Statement& s);
// Binds attributes as mode, uid, gid, uname, gname, mtime_ns from ?first on.
sqlite::Statement& bind_attributes(sqlite::Statement& s, int first, const Attributes& a);
// Binds a tape row's columns: all of kInsertTape's (id 0: a new id), or
// kUpdateTape's mutable ones.
sqlite::Statement& bind_tape_insert(sqlite::Statement& s, Id id, const TapeRow& t);
sqlite::Statement& bind_tape_update(sqlite::Statement& s, const TapeRow& t);

// The first row a cached query gives for its keys (bound as ?1, ?2, ...),
// read by `read` from column 0; none when there is no row.
template <typename Row, typename... Keys>
std::optional<Row> first_row(StatementCache& stmts, std::string_view query,
                             Row (*read)(const sqlite::Statement&, int), const Keys&... keys) {
  auto s = stmts.get(query);
  int index = 0;
  (s->bind(++index, keys), ...);
  if (!s->step()) return std::nullopt;
  return read(*s, 0);
}

// ------------------------------------------------------------------ shared steps

// Checks a version's fields and completes them (type bits of mode, the hash
// of a symlink). Throws CatalogError.
VersionRow normalised_version(const VersionRow& version);
bool same_content(const VersionRow& a, const VersionRow& b);
int goal_for(StatementCache& stmts, std::string_view path);
// Recomputes the goal of every version at or below prefix.
void refresh_goals_below(StatementCache& stmts, std::string_view prefix);
// Inserts a version row (goal from its path); returns its id. `id` 0 = new id.
Id insert_version(StatementCache& stmts, const VersionRow& v, std::string_view path, Id id);
// Adds a copy row and the tape_dirs rows that lead to it.
Id insert_copy(StatementCache& stmts, const CopyRow& copy, Id id);
// Inserts an archive row as it is (written_at_ns included); `id` 0 = new id.
Id insert_archive(StatementCache& stmts, const ArchiveRow& a, Id id);
std::optional<Id> dir_id_by_path(StatementCache& stmts, std::string_view path);
Id ensure_dir(StatementCache& stmts, std::string_view path, Id preferred_id);
Id ensure_file(StatementCache& stmts, Id dir_id, std::string_view name, Id preferred_id);

// ------------------------------------------------------------ integrity

// What to do about a damaged catalog, said once for every kind of damage.
std::string damaged(const std::string& path, const std::string& why);
// SQLite's message without the path and statement our wrapper puts in front.
std::string sqlite_reason(const sqlite::SqliteError& e);
// The cheap checks, then quick_check unless stamp_dir holds a stamp matching
// the file; a passed quick_check is stamped there (see integrity.cc).
IntegrityCheck check_integrity(sqlite::Database& db, const std::string& path,
                               const std::string& stamp_dir);
// After a writer closed: checks and stamps the file if its stamp is stale.
// Never throws (a damaged file is the next open's to refuse).
void refresh_integrity_stamp(const std::string& path, const std::string& stamp_dir) noexcept;

// ------------------------------------------------------------ index copies

// A CopyMark (epoch, files, archives, copies, verifications) in five
// columns from `column`, or bound to five parameters from `parameter`.
CopyMark copy_mark_at(const sqlite::Statement& s, int column);
void bind_copy_mark(sqlite::Statement& s, int parameter, const CopyMark& mark);

// Whether a file's catalog_* tables are exactly those copy_into() makes
// (the same definitions, none missing): a kept copy of an older layout is
// not brought up to date but made anew.
bool holds_copy_tables(sqlite::Database& file);

}  // namespace internal
}  // namespace mixtape::catalog
