// Catalog: opening, config, runs.
#include "engine/catalog/catalog.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <exception>
#include <tuple>

#include "engine/catalog/internal.h"
#include "engine/catalog/queries.h"
#include "engine/tape/tape.h"

namespace mixtape::catalog {

using internal::check_path;
using internal::damaged;
using internal::quote;
using internal::sqlite_reason;

namespace {

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
  if (config.record_size == 0 || config.record_size % 512 != 0 ||
      config.record_size > tape::kMaxWriteRecordSize) {
    throw CatalogError("record size " + std::to_string(config.record_size) +
                       " is not a multiple of 512 from 512 to " +
                       std::to_string(tape::kMaxWriteRecordSize) +
                       " (larger records are not taken by every drive and HBA)");
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
    catalog.set_config("encryption", internal::kEncryptions.name(config.encryption));
    std::string recipients;
    for (const auto& r : config.recipients) recipients += r + "\n";
    catalog.set_config("recipients", recipients);
    catalog.set_config("record_size", std::to_string(config.record_size));
    catalog.set_config("created_at_ns", std::to_string(now_ns()));
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
  c.encryption = internal::kEncryptions.parse(encryption).value_or(Encryption::kNone);
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
  std::int64_t started = now_ns();
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
  s->bind(1, run_id).bind(2, now_ns());
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

std::uint64_t Catalog::logical_size() {
  auto pages = db_->prepare("PRAGMA page_count");
  auto page_size = db_->prepare("PRAGMA page_size");
  if (!pages.step() || !page_size.step()) return 0;
  return static_cast<std::uint64_t>(pages.column_int(0)) *
         static_cast<std::uint64_t>(page_size.column_int(0));
}

// ---------------------------------------------------------------- WriteBatch

void WriteBatch::begin() {
  if (!transaction_) transaction_.emplace(catalog_.transaction());
}

void WriteBatch::commit() {
  if (!transaction_) return;
  transaction_->commit();
  transaction_.reset();
}

void WriteBatch::wrote() {
  if (every_ == 0 || ++writes_ % every_ != 0) return;
  commit();
  begin();
}

}  // namespace mixtape::catalog
