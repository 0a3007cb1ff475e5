// Catalog: opening, config, runs, namespace, scan state, versions, goals.
#include "engine/catalog/catalog.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <exception>
#include <tuple>

#include "engine/catalog/internal.h"
#include "engine/catalog/queries.h"

namespace mixtape::catalog {

using internal::check_name;
using internal::check_path;
using internal::damaged;
using internal::quote;
using internal::sqlite_reason;

namespace {

sqlite::Statement& bind_id(sqlite::Statement& s, int index, Id id) {
  return id ? s.bind(index, id) : s.bind_null(index);
}

// Bounds for "below P" (see queries.h): P/ and P0 in byte order.
std::pair<std::string, std::string> subtree_bounds(std::string_view prefix) {
  if (prefix == "/") return {"/", "0"};
  return {std::string(prefix) + "/", std::string(prefix) + "0"};
}

const char* encryption_name(Encryption e) {
  switch (e) {
    case Encryption::kNone:
      return "none";
    case Encryption::kRecipients:
      return "recipients";
    case Encryption::kPassphrase:
      return "passphrase";
  }
  return "?";
}

bool file_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// Settings of every read-write connection. FULL: a commit is durable when it
// returns (the writer commits copies only once the tape holds them, and must
// not lose them to a power cut afterwards); the cost is one fsync per commit,
// and scans batch thousands of rows per commit.
void prepare_read_write(sqlite::Database& db) {
  db.exec(
      "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; "
      "PRAGMA cache_size = -65536;");
}

// Throws unless the file is a mixtape catalog (or, when `allow_blank`, a new
// empty database).
void check_is_catalog(sqlite::Database& db, const std::string& path, bool allow_blank) {
  std::int64_t application_id = 0;
  try {
    auto s = db.prepare("PRAGMA application_id");
    if (s.step()) application_id = s.column_int(0);
  } catch (const sqlite::SqliteError& e) {
    if (e.code() == SQLITE_CORRUPT) throw CatalogError(damaged(path, sqlite_reason(e)));
    if (e.code() == SQLITE_NOTADB) {
      throw CatalogError(path + " is not a SQLite database: not a mixtape catalog, or one whose " +
                         "header is destroyed; if it was the catalog, move it aside and rebuild " +
                         "it from tape with `mixtape recover`");
    }
    throw CatalogError("cannot read catalog " + path + ": " + sqlite_reason(e));
  }
  if (application_id == internal::kApplicationId) return;
  if (allow_blank && application_id == 0 && internal::user_version(db) == 0) return;
  throw CatalogError(path + " is not a mixtape catalog");
}

}  // namespace

// ---------------------------------------------------------------- shared steps

namespace internal {

std::optional<Id> dir_id_by_path(StatementCache& stmts, std::string_view path) {
  auto s = stmts.get(sql::kDirIdByPath);
  s->bind(1, path);
  if (!s->step()) return std::nullopt;
  return s->column_int(0);
}

namespace {

// Whether no row has this id yet (`query` selects by id), so a row may take
// the id it had in the index it is merged from.
bool id_free(StatementCache& stmts, const char* query, Id id) {
  auto s = stmts.get(query);
  s->bind(1, id);
  return !s->step();
}

}  // namespace

Id ensure_dir(StatementCache& stmts, std::string_view path, Id preferred_id) {
  if (auto id = dir_id_by_path(stmts, path)) return *id;
  // Walk up to the nearest existing ancestor, then create downwards: a loop,
  // not recursion, since a path may have thousands of components.
  std::vector<std::string_view> missing{path};
  Id parent = kRootDirId;
  for (std::string_view p = path;;) {
    std::string_view up = split_path(p).first;
    if (auto id = dir_id_by_path(stmts, up)) {
      parent = *id;
      break;
    }
    missing.push_back(up);
    p = up;
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    Id id = 0;
    if (it == missing.rend() - 1 && preferred_id &&
        id_free(stmts, sql::kIdTakenDir, preferred_id)) {
      id = preferred_id;
    }
    auto s = stmts.get(sql::kInsertDir);
    bind_id(*s, 1, id).bind(2, parent).bind(3, split_path(*it).second).bind(4, *it);
    s->run();
    parent = stmts.db().last_insert_rowid();
  }
  return parent;
}

Id ensure_file(StatementCache& stmts, Id dir_id, std::string_view name, Id preferred_id) {
  {
    auto s = stmts.get(sql::kFileIdByName);
    s->bind(1, dir_id).bind(2, name);
    if (s->step()) return s->column_int(0);
  }
  Id id = preferred_id && id_free(stmts, sql::kIdTakenFile, preferred_id) ? preferred_id : 0;
  auto s = stmts.get(sql::kInsertFile);
  bind_id(*s, 1, id).bind(2, dir_id).bind(3, name);
  s->run();
  return stmts.db().last_insert_rowid();
}

int goal_for(StatementCache& stmts, std::string_view path) {
  auto s = stmts.get(sql::kGoalFor);
  s->bind(1, path);
  // The "/" goal always exists (created with the catalog, never removed).
  return s->step() ? static_cast<int>(s->column_int(0)) : 1;
}

void refresh_goals_below(StatementCache& stmts, std::string_view prefix) {
  // Each file's goal by its full path: a keyed walk of the prefix's subtree
  // (goals change rarely; a set-based UPDATE ... FROM let the planner scan
  // all versions once statistics existed).
  auto [low, high] = subtree_bounds(prefix);
  auto files = stmts.get(sql::kFilesBelow);
  files->bind(1, prefix).bind(2, low).bind(3, high);
  if (prefix == "/") {
    files->bind_null(4).bind_null(5);
  } else {
    auto [parent, name] = split_path(prefix);
    files->bind(4, parent).bind(5, name);
  }
  while (files->step()) {
    const int goal = goal_for(stmts, join_path(files->column_text(1), files->column_text(2)));
    auto s = stmts.get(sql::kSetFileGoal);
    s->bind(1, files->column_int(0)).bind(2, goal);
    s->run();
  }
}

Id insert_version(StatementCache& stmts, const VersionRow& v, std::string_view path, Id id) {
  if (id && !id_free(stmts, sql::kIdTakenVersion, id)) id = 0;
  const int goal = goal_for(stmts, path);
  auto s = stmts.get(sql::kInsertVersion);
  bind_id(*s, 1, id)
      .bind(2, v.file_id)
      .bind(3, to_string(v.kind))
      .bind(4, v.size)
      .bind_blob(5, v.hash)
      .bind(6, v.attrs.mtime_ns)
      .bind(7, v.attrs.mode)
      .bind(8, v.attrs.uid)
      .bind(9, v.attrs.gid)
      .bind(10, v.attrs.uname)
      .bind(11, v.attrs.gname);
  if (v.kind == VersionKind::kSymlink) {
    s->bind(12, v.symlink_target);
  } else {
    s->bind_null(12);
  }
  s->bind(13, v.first_seen_run);
  bind_id(*s, 14, v.last_seen_run).bind(15, goal);
  s->run();
  return stmts.db().last_insert_rowid();
}

Id insert_copy(StatementCache& stmts, const CopyRow& copy, Id id) {
  Id tape_id = 0;
  Id dir_id = 0;
  bool counts = false;  // a first copy on a tape that is not retired
  {
    auto s = stmts.get(sql::kCopyPlace);
    s->bind(1, copy.archive_id).bind(2, copy.version_id);
    if (!s->step()) {
      throw CatalogError("copy of version " + std::to_string(copy.version_id) + " in archive " +
                         std::to_string(copy.archive_id) + ": no such archive or version");
    }
    tape_id = s->column_int(0);
    dir_id = s->column_int(1);
    counts = s->column_int(2) != 0 && s->column_int(3) == 0;
  }
  Id copy_id = 0;
  {
    auto s = stmts.get(sql::kInsertCopy);
    bind_id(*s, 1, id)
        .bind(2, copy.archive_id)
        .bind(3, copy.version_id)
        .bind(4, copy.header_offset)
        .bind(5, copy.data_offset);
    s->run();
    copy_id = stmts.db().last_insert_rowid();
  }
  if (counts) {
    auto s = stmts.get(sql::kCountCopy);
    s->bind(1, copy.version_id);
    s->run();
  }
  // tapes/<serial>/ lists only directories leading to something on the
  // tape. If this directory is already listed, so are its ancestors.
  while (dir_id) {
    {
      auto s = stmts.get(sql::kInsertTapeDir);
      s->bind(1, tape_id).bind(2, dir_id);
      s->run();
    }
    if (stmts.db().changes() == 0) break;
    auto s = stmts.get(sql::kDirParent);
    s->bind(1, dir_id);
    dir_id = s->step() && !s->is_null(0) ? s->column_int(0) : 0;
  }
  return copy_id;
}

}  // namespace internal

// ---------------------------------------------------------------- opening

Catalog::Catalog(std::string path, std::unique_ptr<sqlite::Database> db, bool read_only)
    : path_(std::move(path)),
      db_(std::move(db)),
      stmts_(std::make_unique<StatementCache>(*db_)),
      read_only_(read_only) {}

Catalog::Catalog(Catalog&&) noexcept = default;
Catalog& Catalog::operator=(Catalog&&) noexcept = default;

Catalog::~Catalog() {
  if (!db_) return;
  stmts_.reset();
  if (read_only_ || db_->in_transaction()) return;
  try {
    // SQLite's advice for long-lived connections: refresh the planner's
    // statistics where they are stale, bounded so it stays cheap at 10M rows.
    // Never wait for a writer here: a busy catalog just skips it.
    db_->exec("PRAGMA busy_timeout = 0; PRAGMA analysis_limit = 400; PRAGMA optimize;");
  } catch (const Error&) {
    // Statistics are an optimisation; a busy database can skip them.
  }
  // Once the connection is closed (the log checkpointed), the file's
  // identity is final. A run that failed leaves the check to the next one.
  if (stamp_dir_.empty() || std::uncaught_exceptions() > 0) return;
  db_.reset();
  internal::refresh_integrity_stamp(path_, stamp_dir_);
}

int Catalog::schema_version() {
  return static_cast<int>(internal::migrations().size());
}

int Catalog::file_schema_version(const std::string& path) {
  if (!file_exists(path)) return 0;
  try {
    sqlite::Database db(path, sqlite::OpenMode::kReadOnly);
    return internal::user_version(db);
  } catch (const Error&) {
    return 0;
  }
}

Catalog Catalog::create(const std::string& path, const CatalogConfig& config) {
  if (file_exists(path)) throw CatalogError("catalog " + path + " already exists");
  if (config.default_copies < 1) throw CatalogError("the default copy goal must be at least 1");
  if (config.record_size == 0 || config.record_size % 512 != 0) {
    throw CatalogError("record size " + std::to_string(config.record_size) +
                       " is not a positive multiple of 512");
  }
  if (config.encryption == Encryption::kRecipients && config.recipients.empty()) {
    throw CatalogError("encryption to recipients needs at least one recipient");
  }
  for (const auto& r : config.recipients) {
    if (r.empty() || r.find_first_of("\n\r") != std::string::npos) {
      throw CatalogError("invalid recipient " + quote(r));
    }
  }
  try {
    auto db = std::make_unique<sqlite::Database>(path, sqlite::OpenMode::kReadWriteCreate);
    check_is_catalog(*db, path, /*allow_blank=*/true);
    prepare_read_write(*db);
    internal::migrate(*db, internal::migrations(), path);
    Catalog catalog(path, std::move(db), false);
    sqlite::WriteScope scope(*catalog.db_);
    catalog.set_config("catalog_id", internal::random_catalog_id());
    catalog.set_config("encryption", encryption_name(config.encryption));
    std::string recipients;
    for (const auto& r : config.recipients) recipients += r + "\n";
    catalog.set_config("recipients", recipients);
    catalog.set_config("record_size", std::to_string(config.record_size));
    catalog.set_config("created_at_ns", std::to_string(internal::now_ns()));
    {
      auto s = catalog.stmts_->get(sql::kUpsertGoal);
      s->bind(1, "/").bind(2, config.default_copies);
      s->run();
    }
    scope.commit();
    return catalog;
  } catch (...) {
    // Leave nothing half-made behind: a later create must not find it.
    for (const char* suffix : {"", "-wal", "-shm", "-journal"}) ::unlink((path + suffix).c_str());
    throw;
  }
}

Catalog Catalog::open(const std::string& path, const std::string& stamp_dir) {
  if (!file_exists(path)) {
    throw CatalogError("no catalog at " + path + " (create one with mixtape init)");
  }
  {
    // Checked through a read-only connection: closing it never checkpoints
    // a write-ahead log into a file that is then refused.
    sqlite::Database probe(path, sqlite::OpenMode::kReadOnly);
    check_is_catalog(probe, path, /*allow_blank=*/false);
    internal::check_integrity(probe, path, stamp_dir);
  }
  auto db = std::make_unique<sqlite::Database>(path, sqlite::OpenMode::kReadWrite);
  check_is_catalog(*db, path, /*allow_blank=*/false);
  prepare_read_write(*db);
  internal::migrate(*db, internal::migrations(), path);
  Catalog catalog(path, std::move(db), false);
  catalog.stamp_dir_ = stamp_dir;
  return catalog;
}

Catalog Catalog::open_read_only(const std::string& path) {
  if (!file_exists(path)) throw CatalogError("no catalog at " + path);
  auto db = std::make_unique<sqlite::Database>(path, sqlite::OpenMode::kReadOnly);
  check_is_catalog(*db, path, /*allow_blank=*/false);
  const int version = internal::user_version(*db);
  if (version > schema_version()) {
    throw CatalogError("catalog " + path + " has schema version " + std::to_string(version) +
                       ", newer than this mixtape (" + std::to_string(schema_version()) +
                       "); upgrade mixtape");
  }
  if (version < schema_version()) {
    throw CatalogError("catalog " + path + " has schema version " + std::to_string(version) +
                       ", older than this mixtape (" + std::to_string(schema_version()) +
                       "); open it read-write once (e.g. mixtape status) to upgrade it");
  }
  return Catalog(path, std::move(db), true);
}

Catalog Catalog::another_connection() const {
  if (read_only_) return open_read_only(path_);
  auto db = std::make_unique<sqlite::Database>(path_, sqlite::OpenMode::kReadWrite);
  prepare_read_write(*db);
  return Catalog(path_, std::move(db), false);
}

IntegrityCheck Catalog::check_integrity(const std::string& stamp_dir) {
  return internal::check_integrity(*db_, path_, stamp_dir);
}

// ---------------------------------------------------------------- config

std::optional<std::string> Catalog::get_config(std::string_view key) {
  auto s = stmts_->get(sql::kGetConfig);
  s->bind(1, key);
  if (!s->step()) return std::nullopt;
  return s->column_text(0);
}

void Catalog::set_config(std::string_view key, std::string_view value) {
  auto s = stmts_->get(sql::kSetConfig);
  s->bind(1, key).bind(2, value);
  s->run();
}

std::string Catalog::catalog_id() {
  auto id = get_config("catalog_id");
  if (!id) throw CatalogError("catalog " + path_ + " has no catalog_id");
  return *id;
}

CatalogConfig Catalog::config() {
  CatalogConfig c;
  std::string encryption = get_config("encryption").value_or("none");
  c.encryption = encryption == "recipients"   ? Encryption::kRecipients
                 : encryption == "passphrase" ? Encryption::kPassphrase
                                              : Encryption::kNone;
  std::string recipients = get_config("recipients").value_or("");
  for (std::size_t start = 0; start < recipients.size();) {
    std::size_t end = recipients.find('\n', start);
    if (end == std::string::npos) end = recipients.size();
    if (end > start) c.recipients.push_back(recipients.substr(start, end - start));
    start = end + 1;
  }
  try {
    c.record_size = std::stoull(get_config("record_size").value_or("524288"));
  } catch (const std::exception&) {
    throw CatalogError("catalog " + path_ + ": invalid record_size setting");
  }
  c.default_copies = default_copy_goal();
  return c;
}

// ---------------------------------------------------------------- runs

Id Catalog::begin_run(RunKind kind, const std::vector<std::string>& roots) {
  if (roots.empty()) throw CatalogError("a run needs at least one root");
  for (const auto& root : roots) check_path(root, "run root");
  sqlite::WriteScope scope(*db_);
  // Start times increase strictly with ids, so "the run at time t" and run
  // order never disagree, even for runs begun within one clock tick.
  std::int64_t started = internal::now_ns();
  {
    auto s = stmts_->get(sql::kLastRunStart);
    if (s->step() && !s->is_null(0)) started = std::max(started, s->column_int(0) + 1);
  }
  {
    auto s = stmts_->get(sql::kInsertRun);
    s->bind_null(1).bind(2, to_string(kind)).bind(3, started).bind_null(4);
    s->run();
  }
  const Id id = db_->last_insert_rowid();
  for (const auto& root : roots) {
    auto s = stmts_->get(sql::kInsertRunRoot);
    s->bind(1, id).bind(2, root);
    s->run();
  }
  scope.commit();
  return id;
}

void Catalog::finish_run(Id run_id) {
  auto s = stmts_->get(sql::kFinishRun);
  s->bind(1, run_id).bind(2, internal::now_ns());
  s->run();
}

void Catalog::set_run_totals(Id run_id, std::uint64_t files, std::uint64_t bytes) {
  auto s = stmts_->get(sql::kSetRunTotals);
  s->bind(1, run_id).bind(2, files).bind(3, bytes);
  s->run();
}

std::optional<RunRow> Catalog::run(Id run_id) {
  RunRow r;
  {
    auto s = stmts_->get(sql::kRunById);
    s->bind(1, run_id);
    if (!s->step()) return std::nullopt;
    r.id = s->column_int(0);
    r.kind = internal::parse_run_kind(s->column_text(1)).value_or(RunKind::kBackup);
    r.started_at_ns = s->column_int(2);
    r.finished_at_ns = s->is_null(3) ? 0 : s->column_int(3);
    if (!s->is_null(4)) r.files = static_cast<std::uint64_t>(s->column_int(4));
    if (!s->is_null(5)) r.bytes = static_cast<std::uint64_t>(s->column_int(5));
  }
  auto s = stmts_->get(sql::kRunRoots);
  s->bind(1, run_id);
  while (s->step()) r.roots.push_back(s->column_text(0));
  return r;
}

std::vector<RunRow> Catalog::runs() {
  std::vector<Id> ids;
  {
    auto s = stmts_->get(sql::kAllRuns);
    while (s->step()) ids.push_back(s->column_int(0));
  }
  std::vector<RunRow> rows;
  for (Id id : ids) {
    if (auto r = run(id)) rows.push_back(std::move(*r));
  }
  return rows;
}

std::optional<RunRow> Catalog::run_at(std::int64_t time_ns) {
  Id id = 0;
  {
    auto s = stmts_->get(sql::kRunAt);
    s->bind(1, time_ns);
    if (!s->step()) return std::nullopt;
    id = s->column_int(0);
  }
  return run(id);
}

Id Catalog::previous_run(Id run_id) {
  auto s = stmts_->get(sql::kPreviousRun);
  s->bind(1, run_id);
  return s->step() && !s->is_null(0) ? s->column_int(0) : 0;
}

// ---------------------------------------------------------------- namespace

Id Catalog::ensure_dir(std::string_view path) {
  check_path(path, "directory");
  if (auto id = internal::dir_id_by_path(*stmts_, path)) return *id;
  sqlite::WriteScope scope(*db_);
  Id id = internal::ensure_dir(*stmts_, path, 0);
  scope.commit();
  return id;
}

Id Catalog::ensure_file(Id dir_id, std::string_view name) {
  check_name(name, "file");
  return internal::ensure_file(*stmts_, dir_id, name, 0);
}

std::optional<DirRow> Catalog::dir(Id dir_id) {
  auto s = stmts_->get(sql::kDirById);
  s->bind(1, dir_id);
  if (!s->step()) return std::nullopt;
  return internal::read_dir(*s, 0);
}

std::optional<DirRow> Catalog::dir_by_path(std::string_view path) {
  auto s = stmts_->get(sql::kDirByPath);
  s->bind(1, path);
  if (!s->step()) return std::nullopt;
  return internal::read_dir(*s, 0);
}

std::optional<FileRow> Catalog::file(Id file_id) {
  auto s = stmts_->get(sql::kFileById);
  s->bind(1, file_id);
  if (!s->step()) return std::nullopt;
  return FileRow{s->column_int(0), s->column_int(1), s->column_text(2)};
}

std::optional<Id> Catalog::file_by_path(std::string_view path) {
  if (!internal::is_valid_path(path) || path == "/") return std::nullopt;
  auto [parent, name] = internal::split_path(path);
  auto dir_id = internal::dir_id_by_path(*stmts_, parent);
  if (!dir_id) return std::nullopt;
  auto s = stmts_->get(sql::kFileIdByName);
  s->bind(1, *dir_id).bind(2, name);
  if (!s->step()) return std::nullopt;
  return s->column_int(0);
}

std::string Catalog::file_path(Id file_id) {
  auto s = stmts_->get(sql::kFilePath);
  s->bind(1, file_id);
  if (!s->step()) throw CatalogError("no file with id " + std::to_string(file_id));
  return internal::join_path(s->column_text(0), s->column_text(1));
}

// ---------------------------------------------------------------- scan

void Catalog::touch_dir(Id dir_id, const Attributes& attrs, Id run_id) {
  Attributes a = attrs;
  if ((a.mode & S_IFMT) == 0) a.mode |= S_IFDIR;
  if ((a.mode & S_IFMT) != S_IFDIR)
    throw CatalogError("directory metadata with a non-directory mode");
  auto s = stmts_->get(sql::kTouchDir);
  s->bind(1, dir_id)
      .bind(2, a.mode)
      .bind(3, a.uid)
      .bind(4, a.gid)
      .bind(5, a.uname)
      .bind(6, a.gname)
      .bind(7, a.mtime_ns)
      .bind(8, run_id);
  s->run();
}

std::vector<ScanEntry> Catalog::scan_entries(Id dir_id) {
  std::vector<ScanEntry> entries;
  auto s = stmts_->get(sql::kScanEntries);
  s->bind(1, dir_id);
  while (s->step()) {
    ScanEntry e{s->column_int(0), s->column_text(1), std::nullopt};
    if (s->column_int(2)) {
      ScanState st;
      st.size = static_cast<std::uint64_t>(s->column_int(3));
      st.mtime_ns = s->column_int(4);
      st.ctime_ns = s->column_int(5);
      st.dev = static_cast<std::uint64_t>(s->column_int(6));
      st.ino = static_cast<std::uint64_t>(s->column_int(7));
      st.readable = s->column_int(8) != 0;
      st.dirty = s->column_int(9) != 0;
      e.state = st;
    }
    entries.push_back(std::move(e));
  }
  return entries;
}

void Catalog::set_scan_state(Id file_id, const ScanState& state) {
  auto s = stmts_->get(sql::kUpsertScanState);
  s->bind(1, file_id)
      .bind(2, state.size)
      .bind(3, state.mtime_ns)
      .bind(4, state.ctime_ns)
      .bind(5, state.dev)
      .bind(6, state.ino)
      .bind(7, state.readable ? 1 : 0)
      .bind(8, state.dirty ? 1 : 0);
  s->run();
}

void Catalog::close_latest_version(Id file_id, Id last_seen_run) {
  auto s = stmts_->get(sql::kCloseLatest);
  s->bind(1, file_id).bind(2, last_seen_run);
  s->run();
}

void Catalog::mark_dirty(Id file_id, Id last_seen_run) {
  sqlite::WriteScope scope(*db_, sqlite::WriteScope::Nesting::kJoin);
  {
    auto s = stmts_->get(sql::kMarkDirty);
    s->bind(1, file_id);
    s->run();
  }
  close_latest_version(file_id, last_seen_run);
  scope.commit();
}

void Catalog::clear_dirty(Id file_id) {
  auto s = stmts_->get(sql::kClearDirty);
  s->bind(1, file_id);
  s->run();
}

void Catalog::mark_absent(Id file_id, Id last_seen_run) {
  sqlite::WriteScope scope(*db_, sqlite::WriteScope::Nesting::kJoin);
  {
    auto s = stmts_->get(sql::kDeleteScanState);
    s->bind(1, file_id);
    s->run();
  }
  close_latest_version(file_id, last_seen_run);
  scope.commit();
}

void Catalog::mark_dir_absent(Id dir_id, Id last_seen_run) {
  auto d = dir(dir_id);
  if (!d) return;
  auto [low, high] = subtree_bounds(d->path);
  sqlite::WriteScope scope(*db_, sqlite::WriteScope::Nesting::kJoin);
  for (const char* query :
       {sql::kDeleteScanStatesBelow, sql::kCloseVersionsBelow, sql::kCloseDirsBelow}) {
    auto s = stmts_->get(query);
    s->bind(1, d->path).bind(2, low).bind(3, high);
    if (query != sql::kDeleteScanStatesBelow) s->bind(4, last_seen_run);
    s->run();
  }
  scope.commit();
}

void Catalog::for_each_dirty(const std::function<void(const FileRef&)>& fn) {
  // A statement of its own, not a cached one: fn may call back into this
  // Catalog. ORDER BY sorts every row before the first is returned, so
  // writes made by fn do not disturb the iteration.
  auto s = db_->prepare(sql::kDirtyFiles);
  while (s.step()) {
    fn(FileRef{s.column_int(0), internal::join_path(s.column_text(1), s.column_text(2)),
               static_cast<std::uint64_t>(s.column_int(3))});
  }
}

std::uint64_t Catalog::dirty_count() {
  auto s = stmts_->get(sql::kDirtyCount);
  s->step();
  return static_cast<std::uint64_t>(s->column_int(0));
}

// ---------------------------------------------------------------- versions

RecordedVersion Catalog::record_version(Id file_id, const VersionRow& version, Id run_id) {
  VersionRow v = internal::normalised_version(version);
  v.file_id = file_id;
  v.first_seen_run = run_id;
  v.last_seen_run = 0;  // open: on disk as hashed
  // Usually one write: inside a caller's transaction it just joins it.
  sqlite::WriteScope scope(*db_, sqlite::WriteScope::Nesting::kJoin);
  auto latest = latest_version(file_id);
  if (latest && internal::same_content(*latest, v)) {
    if (latest->last_seen_run != 0) {
      // It comes back unchanged. A run in between that covered the path did
      // not see it (it had been deleted): the snapshots of those runs must
      // not show it, though the version goes on.
      bool covered = false;
      if (run_id > latest->last_seen_run) {
        std::string path;
        auto s = stmts_->get(sql::kRootsBetween);
        s->bind(1, latest->last_seen_run).bind(2, run_id);
        while (s->step() && !covered) {
          if (path.empty()) path = file_path(file_id);
          covered = internal::is_under(path, s->column_text(0));
        }
      }
      sqlite::WriteScope both(*db_);  // the gap and the reopening, or neither
      if (covered) {
        auto s = stmts_->get(sql::kInsertGap);
        s->bind(1, file_id).bind(2, latest->last_seen_run + 1).bind(3, run_id - 1);
        s->run();
      }
      {
        auto s = stmts_->get(sql::kSetVersionRuns);
        s->bind(1, latest->id).bind(2, latest->first_seen_run).bind_null(3);
        s->run();
      }
      both.commit();
    }
    scope.commit();
    return {latest->id, false};
  }
  // The scan closes a changed file's version; one it did not see change
  // (hashed without a scan) ends with the run before this one.
  if (latest && latest->last_seen_run == 0) close_latest_version(file_id, previous_run(run_id));
  const Id id = internal::insert_version(*stmts_, v, file_path(file_id), 0);
  scope.commit();
  return {id, true};
}

std::optional<VersionRow> Catalog::version(Id version_id) {
  auto s = stmts_->get(sql::kVersionById);
  s->bind(1, version_id);
  if (!s->step()) return std::nullopt;
  return internal::read_version(*s, 0);
}

std::optional<VersionRow> Catalog::latest_version(Id file_id) {
  auto s = stmts_->get(sql::kLatestVersion);
  s->bind(1, file_id);
  if (!s->step()) return std::nullopt;
  return internal::read_version(*s, 0);
}

std::vector<VersionRow> Catalog::versions_of(Id file_id) {
  std::vector<VersionRow> rows;
  auto s = stmts_->get(sql::kVersionsOf);
  s->bind(1, file_id);
  while (s->step()) rows.push_back(internal::read_version(*s, 0));
  return rows;
}

// ---------------------------------------------------------------- copy goals

void Catalog::set_copy_goal(std::string_view prefix, int copies) {
  check_path(prefix, "copy goal prefix");
  if (copies < 1) throw CatalogError("a copy goal must be at least 1");
  sqlite::WriteScope scope(*db_);
  {
    auto s = stmts_->get(sql::kUpsertGoal);
    s->bind(1, prefix).bind(2, copies);
    s->run();
  }
  internal::refresh_goals_below(*stmts_, prefix);
  scope.commit();
}

void Catalog::remove_copy_goal(std::string_view prefix) {
  check_path(prefix, "copy goal prefix");
  if (prefix == "/") throw CatalogError("the default copy goal (\"/\") cannot be removed");
  sqlite::WriteScope scope(*db_);
  {
    auto s = stmts_->get(sql::kDeleteGoal);
    s->bind(1, prefix);
    s->run();
  }
  internal::refresh_goals_below(*stmts_, prefix);
  scope.commit();
}

std::vector<CopyGoal> Catalog::copy_goals() {
  std::vector<CopyGoal> goals;
  auto s = stmts_->get(sql::kAllGoals);
  while (s->step()) goals.push_back({s->column_text(0), static_cast<int>(s->column_int(1))});
  return goals;
}

int Catalog::default_copy_goal() {
  auto s = stmts_->get(sql::kGoalOf);
  s->bind(1, "/");
  return s->step() ? static_cast<int>(s->column_int(0)) : 1;
}

int Catalog::goal_for(std::string_view path) {
  return internal::goal_for(*stmts_, path);
}

// ---------------------------------------------------------------- planning

void Catalog::for_each_pending(Id tape_id, const std::function<void(const PendingVersion&)>& fn,
                               bool only_present) {
  auto s = db_->prepare(sql::kPending);
  s.bind(1, tape_id).bind(2, only_present ? 1 : 0);
  while (s.step()) {
    PendingVersion p;
    p.version = internal::read_version(s, 0);
    p.path = internal::join_path(s.column_text(internal::kVersionColumns),
                                 s.column_text(internal::kVersionColumns + 1));
    fn(p);
  }
}

// ---------------------------------------------------------------- tapes

Id Catalog::add_tape(const TapeRow& tape) {
  if (!internal::is_valid_serial(tape.serial)) {
    throw CatalogError("invalid tape serial " + quote(tape.serial) +
                       " (1 to 32 letters, digits, '-', '_' or '.')");
  }
  if (tape.record_size == 0) throw CatalogError("tape " + tape.serial + ": record size 0");
  if (tape_by_serial(tape.serial)) {
    throw CatalogError("tape " + tape.serial + " is already in the catalog");
  }
  auto s = stmts_->get(sql::kInsertTape);
  s->bind_null(1)
      .bind(2, tape.serial)
      .bind(3, tape.capacity)
      .bind(4, tape.record_size)
      .bind(5, tape.encrypted ? 1 : 0)
      .bind(6, to_string(tape.state))
      .bind(7, tape.bytes_used)
      .bind(8, tape.append_file)
      .bind(9, tape.append_block)
      .bind(10, tape.labelled_at_ns ? tape.labelled_at_ns : internal::now_ns());
  bind_id(*s, 11, tape.written_at_ns);
  s->run();
  return db_->last_insert_rowid();
}

void Catalog::update_tape(const TapeRow& tape) {
  auto s = stmts_->get(sql::kUpdateTape);
  s->bind(1, tape.id)
      .bind(2, tape.capacity)
      .bind(3, to_string(tape.state))
      .bind(4, tape.bytes_used)
      .bind(5, tape.append_file)
      .bind(6, tape.append_block);
  bind_id(*s, 7, tape.written_at_ns);
  s->run();
  if (db_->changes() == 0) throw CatalogError("no tape with id " + std::to_string(tape.id));
}

void Catalog::set_tape_state(Id tape_id, TapeState state) {
  auto s = stmts_->get(sql::kSetTapeState);
  s->bind(1, tape_id).bind(2, to_string(state));
  s->run();
}

void Catalog::set_tape_location(Id tape_id, std::string_view location) {
  if (location.size() > 1024 || location.find('\0') != std::string_view::npos ||
      location.find('\n') != std::string_view::npos)
    throw CatalogError("a tape's location is one line of at most 1024 bytes");
  auto s = stmts_->get(sql::kSetTapeLocation);
  s->bind(1, tape_id).bind(2, location);
  s->run();
  if (db_->changes() == 0) throw CatalogError("no tape with id " + std::to_string(tape_id));
}

bool is_retire_reason(std::string_view reason) {
  return reason == "lost" || reason == "destroyed" || reason == "bad" || reason == "worn";
}

void Catalog::retire_tape(Id tape_id, std::string_view reason) {
  if (!is_retire_reason(reason))
    throw CatalogError("a tape is retired as lost, destroyed, bad or worn, not " + quote(reason));
  sqlite::WriteScope scope(*db_);
  auto t = tape(tape_id);
  if (!t) throw CatalogError("no tape with id " + std::to_string(tape_id));
  if (t->state == TapeState::kRetired)
    throw CatalogError("tape " + t->serial + " is already retired (" + t->retired_reason + ")");
  auto s = stmts_->get(sql::kRetireTape);
  s->bind(1, tape_id).bind(2, reason).bind(3, internal::now_ns());
  s->run();  // the tapes_retired trigger recounts the copies of its versions
  scope.commit();
}

std::optional<TapeRow> Catalog::tape(Id tape_id) {
  auto s = stmts_->get(sql::kTapeById);
  s->bind(1, tape_id);
  if (!s->step()) return std::nullopt;
  return internal::read_tape(*s, 0);
}

std::optional<TapeRow> Catalog::tape_by_serial(std::string_view serial) {
  auto s = stmts_->get(sql::kTapeBySerial);
  s->bind(1, serial);
  if (!s->step()) return std::nullopt;
  return internal::read_tape(*s, 0);
}

std::vector<TapeRow> Catalog::tapes() {
  std::vector<TapeRow> rows;
  auto s = stmts_->get(sql::kAllTapes);
  while (s->step()) rows.push_back(internal::read_tape(*s, 0));
  return rows;
}

// ---------------------------------------------------------------- archives, copies

Id Catalog::add_archive(const ArchiveRow& a) {
  auto s = stmts_->get(sql::kInsertArchive);
  s->bind_null(1)
      .bind(2, a.tape_id)
      .bind(3, a.index_file)
      .bind(4, a.index_block)
      .bind(5, a.archive_file)
      .bind(6, a.first_block)
      .bind(7, a.encrypted ? 1 : 0)
      .bind(8, a.age_header_len)
      .bind(9, a.cipher_bytes)
      .bind(10, a.plain_bytes)
      .bind(11, a.members)
      .bind(12, a.written_at_ns ? a.written_at_ns : internal::now_ns());
  bind_id(*s, 13, a.run_id);
  s->run();
  return db_->last_insert_rowid();
}

std::optional<ArchiveRow> Catalog::archive(Id archive_id) {
  auto s = stmts_->get(sql::kArchiveById);
  s->bind(1, archive_id);
  if (!s->step()) return std::nullopt;
  return internal::read_archive(*s, 0);
}

std::optional<ArchiveRow> Catalog::archive_by_file(Id tape_id, std::int64_t archive_file) {
  auto s = stmts_->get(sql::kArchiveByFile);
  s->bind(1, tape_id).bind(2, archive_file);
  if (!s->step()) return std::nullopt;
  return internal::read_archive(*s, 0);
}

std::vector<ArchiveRow> Catalog::archives_of_tape(Id tape_id) {
  std::vector<ArchiveRow> rows;
  auto s = stmts_->get(sql::kArchivesOfTape);
  s->bind(1, tape_id);
  while (s->step()) rows.push_back(internal::read_archive(*s, 0));
  return rows;
}

Id Catalog::add_copy(const CopyRow& copy) {
  sqlite::WriteScope scope(*db_);
  const Id id = internal::insert_copy(*stmts_, copy, 0);
  scope.commit();
  return id;
}

std::vector<Replica> Catalog::copies_of(Id version_id) {
  using internal::kArchiveColumns;
  using internal::kCopyColumns;
  std::vector<Replica> rows;
  auto s = stmts_->get(sql::kCopiesOf);
  s->bind(1, version_id);
  while (s->step()) {
    rows.push_back({internal::read_copy(*s, 0), internal::read_archive(*s, kCopyColumns),
                    internal::read_tape(*s, kCopyColumns + kArchiveColumns)});
  }
  // Sorted here, not by SQL: a version has a few copies, and an ORDER BY on
  // tapes let the planner prefer scanning the serial index.
  std::sort(rows.begin(), rows.end(), [](const Replica& a, const Replica& b) {
    return std::tie(a.tape.serial, a.archive.archive_file) <
           std::tie(b.tape.serial, b.archive.archive_file);
  });
  return rows;
}

void Catalog::for_each_copy_on_tape(Id tape_id, const std::function<void(const TapeCopy&)>& fn) {
  using internal::kCopyColumns;
  using internal::kVersionColumns;
  auto s = db_->prepare(sql::kCopiesOnTape);
  s.bind(1, tape_id);
  while (s.step()) {
    TapeCopy c;
    c.copy = internal::read_copy(s, 0);
    c.archive_file = s.column_int(kCopyColumns);
    c.version = internal::read_version(s, kCopyColumns + 1);
    c.path = internal::join_path(s.column_text(kCopyColumns + 1 + kVersionColumns),
                                 s.column_text(kCopyColumns + 2 + kVersionColumns));
    fn(c);
  }
}

// ---------------------------------------------------------------- status, verification

CatalogStatus Catalog::status() {
  sqlite::ReadScope snapshot(*db_);
  CatalogStatus st;
  auto count = [&](const char* query) {
    auto s = stmts_->get(query);
    s->step();
    return static_cast<std::uint64_t>(s->column_int(0));
  };
  st.dirs = count(sql::kCountDirs);
  st.files = count(sql::kCountFiles);
  st.copies = count(sql::kCountCopies);
  st.dirty_files = count(sql::kDirtyCount);
  {
    auto s = stmts_->get(sql::kVersionTotals);
    s->step();
    st.versions = static_cast<std::uint64_t>(s->column_int(0));
    st.version_bytes = static_cast<std::uint64_t>(s->column_int(1));
  }
  {
    auto s = stmts_->get(sql::kBelowGoalTotals);
    s->step();
    st.below_goal_versions = static_cast<std::uint64_t>(s->column_int(0));
    st.below_goal_bytes = static_cast<std::uint64_t>(s->column_int(1));
  }
  for (auto& t : tapes()) {
    TapeUsage u{t};
    auto s = stmts_->get(sql::kTapeArchiveTotals);
    s->bind(1, t.id);
    s->step();
    u.archives = static_cast<std::uint64_t>(s->column_int(0));
    u.members = static_cast<std::uint64_t>(s->column_int(1));
    u.plain_bytes = static_cast<std::uint64_t>(s->column_int(2));
    st.tapes.push_back(std::move(u));
  }
  return st;
}

std::pair<std::uint64_t, std::uint64_t> Catalog::below_goal() {
  auto s = stmts_->get(sql::kBelowGoalTotals);
  s->step();
  return {static_cast<std::uint64_t>(s->column_int(0)),
          static_cast<std::uint64_t>(s->column_int(1))};
}

Id Catalog::record_verification(const VerificationRow& row) {
  auto s = stmts_->get(sql::kInsertVerification);
  s->bind_null(1).bind(2, row.archive_id);
  bind_id(*s, 3, row.version_id)
      .bind(4, row.checked_at_ns ? row.checked_at_ns : internal::now_ns())
      .bind(5, to_string(row.result))
      .bind(6, row.detail);
  bind_id(*s, 7, row.run_id);
  s->run();
  return db_->last_insert_rowid();
}

namespace {

VerificationRow read_verification(const sqlite::Statement& s) {
  VerificationRow v;
  v.id = s.column_int(0);
  v.archive_id = s.column_int(1);
  v.version_id = s.is_null(2) ? 0 : s.column_int(2);
  v.checked_at_ns = s.column_int(3);
  v.result = internal::parse_verify_result(s.column_text(4)).value_or(VerifyResult::kMismatch);
  v.detail = s.column_text(5);
  v.run_id = s.is_null(6) ? 0 : s.column_int(6);
  return v;
}

}  // namespace

std::optional<VerificationRow> Catalog::last_verification(Id archive_id, Id version_id) {
  auto s = stmts_->get(sql::kLastVerification);
  s->bind(1, archive_id);
  bind_id(*s, 2, version_id);
  if (!s->step()) return std::nullopt;
  return read_verification(*s);
}

std::vector<VerificationRow> Catalog::verifications_of_archive(Id archive_id) {
  std::vector<VerificationRow> rows;
  auto s = stmts_->get(sql::kVerificationsOfArchive);
  s->bind(1, archive_id);
  while (s->step()) rows.push_back(read_verification(*s));
  return rows;
}

}  // namespace mixtape::catalog
