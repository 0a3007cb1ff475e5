// copy_into / add_changes_into: the catalog copied into an on-tape index
// (docs/FORMAT.md section 5, "The catalog in an index").
//
// The on-tape tables are format 2's, defined here with comments for a reader
// who has only `sqlite3`: the catalog's columns minus what a reader rebuilds
// (the versions' copy counts and goals, UNIQUE constraints and secondary
// indexes, the local change stamps). The small tables (settings, runs, tapes,
// goals) go whole into every index; the large ones whole into a full copy,
// and otherwise only their rows written since the mark of the previous index
// on the tape: dirs, versions and gaps by their change epoch, the
// never-updated files, archives, copies and verifications by id.
//
// A copy of the committed catalog is made by the index's connection with the
// catalog file attached read-only, one INSERT ... SELECT per table in one
// snapshot. The change epoch is raised first, in a transaction of its own:
// a writer stamps its rows inside its own transaction, so every row is
// either committed before the raise (and in this snapshot) or stamped with
// the new epoch (and new to the next index). What a write transaction open
// on this connection adds (the trailing index, written before its session
// commits) is read through this connection and added row by row.
#include <algorithm>
#include <limits>
#include <string_view>
#include <vector>

#include "engine/catalog/internal.h"

namespace mixtape::catalog {
namespace {

// How an index gets a table's rows when it holds only what changed.
enum class Changes {
  kWhole,  // small: the whole table, every time
  kEpoch,  // rows whose `changed` is at or after the mark's epoch
  kId,     // rows whose id is above the mark's (the table is never updated)
};

struct CopiedTable {
  const char* name;
  const char* columns;
  Changes changes;
  Id CopyMark::*id_mark;  // kId: the mark's field
  const char* definition;
  // A table made from another one of the catalog: that table, its columns
  // (in the order of `columns`) and which rows; none: `name` itself.
  const char* source = nullptr;
  const char* source_columns = nullptr;
  const char* source_rows = "";
  // Added after indexes were first written (schema 3): older indexes lack
  // it, and readers take that as no rows.
  bool optional = false;
};

constexpr CopiedTable kTables[] = {
    {"config", "key, value", Changes::kWhole, nullptr, R"sql(
CREATE TABLE catalog_config (  -- the catalog's settings: catalog_id, schema_version, encryption, recipients, record_size
  key   TEXT PRIMARY KEY NOT NULL,
  value TEXT NOT NULL
) WITHOUT ROWID)sql"},
    {"runs", "id, kind, started_at_ns, finished_at_ns", Changes::kWhole, nullptr, R"sql(
CREATE TABLE catalog_runs (  -- every scan or backup run; a backup run is a snapshot
  id             INTEGER PRIMARY KEY,
  kind           TEXT NOT NULL,     -- 'scan' or 'backup'
  started_at_ns  INTEGER NOT NULL,  -- Unix time in nanoseconds, increasing with id
  finished_at_ns INTEGER            -- NULL while running or if interrupted
))sql"},
    {"run_roots", "run_id, root", Changes::kWhole, nullptr, R"sql(
CREATE TABLE catalog_run_roots (  -- the source paths a run covered
  run_id INTEGER NOT NULL,  -- catalog_runs.id
  root   TEXT NOT NULL,     -- absolute path, bytes as on disk
  PRIMARY KEY (run_id, root)
) WITHOUT ROWID)sql"},
    {"copy_goals", "prefix, copies", Changes::kWhole, nullptr, R"sql(
CREATE TABLE catalog_copy_goals (  -- copies wanted per path prefix; '/' is the default
  prefix TEXT PRIMARY KEY NOT NULL,
  copies INTEGER NOT NULL
) WITHOUT ROWID)sql"},
    {"tapes",
     "id, serial, capacity, record_size, encrypted, state, bytes_used, append_file, append_block, "
     "labelled_at_ns, written_at_ns, foreign_id",
     Changes::kWhole, nullptr, R"sql(
CREATE TABLE catalog_tapes (  -- every labelled tape
  id             INTEGER PRIMARY KEY,
  serial         TEXT NOT NULL,     -- the label's serial (barcode)
  capacity       INTEGER NOT NULL,  -- bytes
  record_size    INTEGER NOT NULL,  -- bytes per tape record
  encrypted      INTEGER NOT NULL,  -- 1 if indexes and archives are age-encrypted
  state          TEXT NOT NULL,     -- 'labelled', 'open', 'full' or 'retired'
  bytes_used     INTEGER NOT NULL,
  append_file    INTEGER NOT NULL,  -- tape file where the next session writes (the trailing index)
  append_block   INTEGER,           -- its first logical block, if known
  labelled_at_ns INTEGER NOT NULL,
  written_at_ns  INTEGER,           -- NULL if never written
  foreign_id     TEXT               -- a tape mixtape did not write (imported): BLAKE2b-256 of its first records
))sql"},
    {"dirs",
     "id, parent, name, path, mode, uid, gid, uname, gname, mtime_ns, first_seen_run, "
     "last_seen_run",
     Changes::kEpoch, nullptr, R"sql(
CREATE TABLE catalog_dirs (  -- every directory ever seen; id 1 is "/"
  id             INTEGER PRIMARY KEY,
  parent         INTEGER,           -- catalog_dirs.id; NULL only for "/"
  name           TEXT NOT NULL,     -- last component; '' for "/"
  path           TEXT NOT NULL,     -- full absolute path
  mode           INTEGER NOT NULL,  -- st_mode including S_IFDIR
  uid            INTEGER NOT NULL,
  gid            INTEGER NOT NULL,
  uname          TEXT NOT NULL,
  gname          TEXT NOT NULL,
  mtime_ns       INTEGER NOT NULL,  -- nanoseconds since 1970-01-01 UTC
  first_seen_run INTEGER,           -- catalog_runs.id; NULL if only made as an ancestor
  last_seen_run  INTEGER            -- the last run that saw it; NULL while it is there
))sql"},
    {"files", "id, dir, name", Changes::kId, &CopyMark::files, R"sql(
CREATE TABLE catalog_files (  -- every non-directory path ever seen (regular file or symlink)
  id   INTEGER PRIMARY KEY,
  dir  INTEGER NOT NULL,  -- catalog_dirs.id
  name TEXT NOT NULL
))sql"},
    {"versions",
     "id, file_id, kind, size, hash, mtime_ns, mode, uid, gid, uname, gname, symlink_target, "
     "first_seen_run, last_seen_run",
     Changes::kEpoch, nullptr, R"sql(
CREATE TABLE catalog_versions (  -- every distinct content and metadata a file has had
  id             INTEGER PRIMARY KEY,
  file_id        INTEGER NOT NULL,  -- catalog_files.id
  kind           TEXT NOT NULL,     -- 'file' or 'symlink'
  size           INTEGER NOT NULL,
  hash           BLOB NOT NULL,     -- BLAKE2b-256, 32 bytes (of the target for a symlink)
  mtime_ns       INTEGER NOT NULL,
  mode           INTEGER NOT NULL,  -- st_mode including the file type bits
  uid            INTEGER NOT NULL,
  gid            INTEGER NOT NULL,
  uname          TEXT NOT NULL,
  gname          TEXT NOT NULL,
  symlink_target TEXT,              -- NULL unless kind = 'symlink'
  first_seen_run INTEGER NOT NULL,  -- catalog_runs.id: on disk from this run
  last_seen_run  INTEGER            -- to this one; NULL while still on disk
))sql"},
    {"gaps", "file_id, from_run, to_run", Changes::kEpoch, nullptr, R"sql(
CREATE TABLE catalog_gaps (  -- runs that covered a file's path but did not see it, inside a version's range
  file_id  INTEGER NOT NULL,
  from_run INTEGER NOT NULL,
  to_run   INTEGER NOT NULL,
  PRIMARY KEY (file_id, from_run)
) WITHOUT ROWID)sql"},
    {"archives",
     "id, tape_id, index_file, index_block, archive_file, first_block, encrypted, age_header_len, "
     "cipher_bytes, plain_bytes, members, written_at_ns, run_id, foreign_format, record_size",
     Changes::kId, &CopyMark::archives, R"sql(
CREATE TABLE catalog_archives (  -- every archive on tape: tape files index_file (SQLite) and archive_file (tar)
  id             INTEGER PRIMARY KEY,
  tape_id        INTEGER NOT NULL,  -- catalog_tapes.id
  index_file     INTEGER NOT NULL,
  index_block    INTEGER NOT NULL,  -- first logical block of the index
  archive_file   INTEGER NOT NULL,
  first_block    INTEGER NOT NULL,  -- first logical block of the archive (B0)
  encrypted      INTEGER NOT NULL,
  age_header_len INTEGER NOT NULL,  -- H: bytes of the age header; 0 if not encrypted
  cipher_bytes   INTEGER NOT NULL,
  plain_bytes    INTEGER NOT NULL,
  members        INTEGER NOT NULL,
  written_at_ns  INTEGER NOT NULL,
  run_id         INTEGER,           -- catalog_runs.id
  foreign_format TEXT,              -- NULL; on an imported tape: 'tar', 'tar.gz', ..., 'raw' (offsets in the uncompressed tar)
  record_size    INTEGER            -- NULL: the tape's; else this tape file's largest record
))sql"},
    {"copies", "id, archive_id, version_id, header_offset, data_offset", Changes::kId,
     &CopyMark::copies, R"sql(
CREATE TABLE catalog_copies (  -- a version stored in an archive; offsets are in the plaintext tar
  id            INTEGER PRIMARY KEY,
  archive_id    INTEGER NOT NULL,  -- catalog_archives.id
  version_id    INTEGER NOT NULL,  -- catalog_versions.id
  header_offset INTEGER NOT NULL,
  data_offset   INTEGER NOT NULL   -- block = B0 + (H + 16 + (data_offset / 65536) * 65552) / record_size
))sql"},
    {"verifications", "id, archive_id, version_id, checked_at_ns, result, detail, run_id",
     Changes::kId, &CopyMark::verifications, R"sql(
CREATE TABLE catalog_verifications (  -- results of re-reading archives
  id            INTEGER PRIMARY KEY,
  archive_id    INTEGER NOT NULL,
  version_id    INTEGER,           -- NULL: the archive as a whole
  checked_at_ns INTEGER NOT NULL,
  result        TEXT NOT NULL,     -- 'ok', 'mismatch', 'unreadable' or 'missing'
  detail        TEXT NOT NULL,
  run_id        INTEGER
))sql"},
    // Schema 3: in tables of their own (not columns of catalog_tapes and
    // catalog_runs), so that older indexes and README.txt's rebuild program,
    // which copies tables by position, are unaffected.
    {"tape_notes", "tape_id, location, retired_reason, retired_at_ns", Changes::kWhole, nullptr,
     R"sql(
CREATE TABLE catalog_tape_notes (  -- what the operator said of a tape (tapes without any have no row)
  tape_id        INTEGER PRIMARY KEY,  -- catalog_tapes.id
  location       TEXT NOT NULL,        -- where it is kept, e.g. 'offsite: bank box 12'; '' not said
  retired_reason TEXT,                 -- 'lost', 'destroyed', 'bad' or 'worn' once retired, else NULL
  retired_at_ns  INTEGER               -- when it was retired (Unix time in nanoseconds)
))sql",
     "tapes", "id, location, retired_reason, retired_at_ns",
     " WHERE location <> '' OR retired_reason IS NOT NULL", true},
    {"run_totals", "run_id, files, bytes", Changes::kWhole, nullptr, R"sql(
CREATE TABLE catalog_run_totals (  -- what a run found under its roots (runs that did not count have no row)
  run_id INTEGER PRIMARY KEY,  -- catalog_runs.id
  files  INTEGER NOT NULL,     -- regular files and symlinks
  bytes  INTEGER NOT NULL      -- their sizes
))sql",
     "runs", "id, files, bytes", " WHERE files IS NOT NULL", true},
};

// Where a table's rows come from in the catalog, and which.
std::string source_of(const CopiedTable& table) {
  return table.source ? table.source : table.name;
}
const char* source_columns_of(const CopiedTable& table) {
  return table.source_columns ? table.source_columns : table.columns;
}

// The WHERE clause selecting the rows of `table` that an index holding
// `since` lacks ("" when it needs them all).
std::string changed_rows(const CopiedTable& table, const std::optional<CopyMark>& since) {
  if (!since || table.changes == Changes::kWhole) return table.source_rows;
  if (table.changes == Changes::kEpoch) return " WHERE changed >= " + std::to_string(since->epoch);
  return " WHERE id > " + std::to_string((*since).*table.id_mark);
}

// The catalog file attached to the index's connection while a copy runs.
class AttachedCatalog {
 public:
  AttachedCatalog(sqlite::Database& index, const std::string& catalog_path) : index_(index) {
    auto attach = index_.prepare("ATTACH DATABASE ?1 AS copied_catalog");
    attach.bind(1, sqlite::file_uri(catalog_path, "mode=ro"));
    attach.run();
  }
  ~AttachedCatalog() {
    try {
      index_.exec("DETACH DATABASE copied_catalog");
    } catch (const Error&) {
      // Closing the index connection detaches it anyway.
    }
  }
  AttachedCatalog(const AttachedCatalog&) = delete;
  AttachedCatalog& operator=(const AttachedCatalog&) = delete;

 private:
  sqlite::Database& index_;
};

Id max_id(sqlite::Database& db, const std::string& table) {
  return db.single_int("SELECT coalesce(max(id), 0) FROM " + table);
}

}  // namespace

CopyMark CopyMark::nothing_new() {
  constexpr Id kAll = std::numeric_limits<Id>::max();
  return {std::numeric_limits<std::int64_t>::max(), kAll, kAll, kAll, kAll};
}

CopyMark Catalog::copy_into(sqlite::Database& index, const std::optional<CopyMark>& since) {
  return fill_copy(index, since, false);
}

CopyMark Catalog::refresh_copy(sqlite::Database& index, const CopyMark& held) {
  return fill_copy(index, held, true);
}

CopyMark Catalog::fill_copy(sqlite::Database& index, const std::optional<CopyMark>& since,
                            bool in_place) {
  if (db_->in_transaction()) {
    throw CatalogError(
        "internal error: copying the catalog into an index reads the committed catalog, but a "
        "transaction is open on this connection");
  }
  CopyMark mark;
  {
    sqlite::WriteScope scope(*db_);
    db_->exec("UPDATE change_epoch SET epoch = epoch + 1");
    mark.epoch = db_->single_int("SELECT epoch FROM change_epoch");
    scope.commit();
  }
  AttachedCatalog attached(index, path_);
  // One transaction on the index, which holds one snapshot of the attached
  // catalog for all tables and the mark.
  sqlite::WriteScope out(index);
  for (const CopiedTable& table : kTables) {
    const std::string name = std::string("catalog_") + table.name;
    std::string insert = "INSERT INTO ";
    if (!in_place) {
      index.exec("DROP TABLE IF EXISTS " + name);
      index.exec(table.definition);
    } else if (table.changes == Changes::kWhole) {
      index.exec("DELETE FROM " + name);
    } else {
      insert = "INSERT OR REPLACE INTO ";
    }
    index.exec(insert + name + " (" + table.columns + ") SELECT " + source_columns_of(table) +
               " FROM copied_catalog." + source_of(table) + changed_rows(table, since));
    if (table.id_mark) {
      mark.*table.id_mark = max_id(index, "copied_catalog." + std::string(table.name));
    }
  }
  out.commit();
  return mark;
}

CopyMark Catalog::add_changes_into(sqlite::Database& index, const CopyMark& since) {
  // One snapshot for all tables (the caller's open transaction, with its
  // uncommitted rows); one transaction on the index.
  sqlite::ReadScope snapshot(*db_);
  sqlite::WriteScope out(index);
  CopyMark holds = since;
  for (const CopiedTable& table : kTables) {
    const std::string name = std::string("catalog_") + table.name;
    if (table.changes == Changes::kWhole) index.exec("DELETE FROM " + name);
    auto select = db_->prepare(std::string("SELECT ") + source_columns_of(table) + " FROM main." +
                               source_of(table) + changed_rows(table, since));
    std::string insert = "INSERT OR REPLACE INTO " + name + " (" + table.columns + ") VALUES (";
    for (int i = 0; i < select.column_count(); ++i) insert += i ? ", ?" : "?";
    auto out_row = index.prepare(insert + ")");
    while (select.step()) {
      for (int i = 0; i < select.column_count(); ++i) out_row.bind_value(i + 1, select, i);
      out_row.run();
      out_row.reset();
    }
    if (table.id_mark) holds.*table.id_mark = std::max(since.*table.id_mark, max_id(index, name));
  }
  out.commit();
  return holds;
}

std::optional<IndexMark> Catalog::index_mark(Id tape_id) {
  auto s = db_->prepare(
      "SELECT index_file, epoch, files, archives, copies, verifications FROM index_marks "
      "WHERE tape_id = ?1");
  s.bind(1, tape_id);
  if (!s.step()) return std::nullopt;
  return IndexMark{s.column_int(0), internal::copy_mark_at(s, 1)};
}

void Catalog::set_index_mark(Id tape_id, const std::optional<IndexMark>& mark) {
  if (!mark) {
    auto s = db_->prepare("DELETE FROM index_marks WHERE tape_id = ?1");
    s.bind(1, tape_id);
    s.run();
    return;
  }
  auto s = db_->prepare(
      "INSERT OR REPLACE INTO index_marks (tape_id, index_file, epoch, files, archives, copies, "
      "verifications) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
  s.bind(1, tape_id).bind(2, mark->index_file);
  internal::bind_copy_mark(s, 3, mark->holds);
  s.run();
}

namespace internal {

CopyMark copy_mark_at(const sqlite::Statement& s, int column) {
  return CopyMark{s.column_int(column), s.column_int(column + 1), s.column_int(column + 2),
                  s.column_int(column + 3), s.column_int(column + 4)};
}

void bind_copy_mark(sqlite::Statement& s, int parameter, const CopyMark& mark) {
  s.bind(parameter, mark.epoch)
      .bind(parameter + 1, mark.files)
      .bind(parameter + 2, mark.archives)
      .bind(parameter + 3, mark.copies)
      .bind(parameter + 4, mark.verifications);
}

bool holds_copy_tables(sqlite::Database& file) {
  auto s = file.prepare("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1");
  for (const CopiedTable& table : kTables) {
    s.reset();
    s.bind(1, std::string("catalog_") + table.name);
    std::string_view definition = table.definition;
    while (definition.starts_with('\n')) definition.remove_prefix(1);
    if (!s.step() || s.column_text(0) != definition) return false;
  }
  return true;
}

}  // namespace internal

// ------------------------------------------------------------ CatalogChain

namespace {

std::vector<std::string> split_columns(std::string_view list) {
  std::vector<std::string> out;
  while (!list.empty()) {
    std::size_t comma = list.find(',');
    std::string_view column = list.substr(0, comma);
    while (column.starts_with(' ')) column.remove_prefix(1);
    out.emplace_back(column);
    list = comma == std::string_view::npos ? "" : list.substr(comma + 1);
  }
  return out;
}

}  // namespace

CatalogChain::CatalogChain(std::string path) : path_(std::move(path)) {
  db_ = std::make_unique<sqlite::Database>(path_, sqlite::OpenMode::kUntrustedScratch);
  db_->exec("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;");
  sqlite::WriteScope scope(*db_);
  for (const CopiedTable& table : kTables) db_->exec(table.definition);
  scope.commit();
}

CatalogChain::~CatalogChain() = default;

void CatalogChain::add(const std::string& index_path, bool full) {
  if (!db_) throw CatalogError("internal error: catalog chain " + path_ + " already closed");
  {
    auto attach = db_->prepare("ATTACH DATABASE ?1 AS idx");
    attach.bind(1, sqlite::untrusted_uri(index_path));
    attach.run();
  }
  try {
    sqlite::WriteScope scope(*db_);
    for (const CopiedTable& table : kTables) {
      const std::string name = std::string("catalog_") + table.name;
      std::vector<std::string> theirs;
      {
        auto info = db_->prepare("SELECT name FROM pragma_table_info(?1, 'idx')");
        info.bind(1, name);
        while (info.step()) theirs.push_back(info.column_text(0));
      }
      if (theirs.empty()) {
        if (table.optional) {
          // An older index: none of these rows (a full copy has none at all).
          if (full) db_->exec("DELETE FROM main." + name);
          continue;
        }
        throw CatalogError("index " + index_path + " has no table " + name +
                           ": not a mixtape index");
      }
      // The columns both layouts have, by this format's names (a format-1
      // index has some more).
      std::string columns;
      for (const auto& column : split_columns(table.columns)) {
        if (std::find(theirs.begin(), theirs.end(), column) == theirs.end()) continue;
        columns += (columns.empty() ? "" : ", ") + column;
      }
      if (full || table.changes == Changes::kWhole) db_->exec("DELETE FROM main." + name);
      db_->exec("INSERT OR REPLACE INTO main." + name + " (" + columns + ") SELECT " + columns +
                " FROM idx." + name);
    }
    scope.commit();
  } catch (const sqlite::SqliteError& e) {
    db_->exec("DETACH DATABASE idx");
    throw CatalogError("index " + index_path + ": cannot read its catalog: " + e.what());
  } catch (...) {
    db_->exec("DETACH DATABASE idx");
    throw;
  }
  db_->exec("DETACH DATABASE idx");
}

const std::string& CatalogChain::finish() {
  db_.reset();
  return path_;
}

}  // namespace mixtape::catalog
