#include "engine/sqlite/sqlite.h"

namespace mixtape::sqlite {

// Only the characters URIs give meaning to need escaping. An absolute path
// gets an empty authority ("file://" + path), so a path starting with "//"
// is not read as "file://host/...".
std::string file_uri(const std::string& path, std::string_view query) {
  std::string uri = path.starts_with('/') ? "file://" : "file:";
  for (char c : path) {
    if (c == '%' || c == '?' || c == '#') {
      static constexpr char kDigits[] = "0123456789ABCDEF";
      uri += '%';
      uri += kDigits[static_cast<unsigned char>(c) >> 4];
      uri += kDigits[static_cast<unsigned char>(c) & 0xf];
    } else {
      uri += c;
    }
  }
  if (!query.empty()) uri.append("?").append(query);
  return uri;
}

std::string untrusted_uri(const std::string& path) {
  return file_uri(path, "mode=ro&immutable=1");
}

namespace {

void harden_untrusted(sqlite3* db, int attachable = 0) {
  // The defensive settings SQLite documents for databases from untrusted
  // sources (https://sqlite.org/security.html).
  sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
  sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, nullptr);
  sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, nullptr);
  sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_VIEW, 0, nullptr);
  sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, nullptr);
  sqlite3_limit(db, SQLITE_LIMIT_ATTACHED, attachable);
  // Every value is read whole into memory, so this bounds what one hostile
  // value costs. The largest an index holds legitimately is a path or a
  // verification detail (64 KiB; engine/catalog/merge.cc).
  sqlite3_limit(db, SQLITE_LIMIT_LENGTH, 1 << 20);
  // These bound the parsing of the file's own schema (CHECK constraints,
  // defaults, generated columns) as much as the SQL mixtape sends.
  sqlite3_limit(db, SQLITE_LIMIT_SQL_LENGTH, 100000);
  sqlite3_limit(db, SQLITE_LIMIT_COLUMN, 100);
  sqlite3_limit(db, SQLITE_LIMIT_EXPR_DEPTH, 100);
  sqlite3_limit(db, SQLITE_LIMIT_COMPOUND_SELECT, 3);
  sqlite3_limit(db, SQLITE_LIMIT_FUNCTION_ARG, 8);
  sqlite3_limit(db, SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 50);
  sqlite3_limit(db, SQLITE_LIMIT_TRIGGER_DEPTH, 1);
}

}  // namespace

Database::Database(const std::string& path, OpenMode mode) : path_(path) {
  int flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI;
  std::string query;
  switch (mode) {
    case OpenMode::kReadWriteCreate:
      flags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
      break;
    case OpenMode::kReadWrite:
      flags |= SQLITE_OPEN_READWRITE;
      break;
    case OpenMode::kReadOnly:
      flags |= SQLITE_OPEN_READONLY;
      break;
    case OpenMode::kUntrusted:
      flags |= SQLITE_OPEN_READONLY;
      query = "immutable=1";  // no locks, no journal or -wal files created
      break;
    case OpenMode::kUntrustedScratch:
      flags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
      break;
  }
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(file_uri(path, query).c_str(), &raw, flags, nullptr);
  db_.reset(raw);
  if (rc != SQLITE_OK) {
    std::string message = raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc);
    throw SqliteError("cannot open database " + path + ": " + message, rc & 0xff);
  }
  sqlite3_extended_result_codes(raw, 0);
  sqlite3_busy_timeout(raw, 30000);
  if (mode == OpenMode::kUntrusted) {
    harden_untrusted(raw);
    exec("PRAGMA cell_size_check=ON; PRAGMA mmap_size=0; PRAGMA query_only=ON;");
  }
  if (mode == OpenMode::kUntrustedScratch) {
    harden_untrusted(raw, 1);
    exec("PRAGMA cell_size_check=ON; PRAGMA mmap_size=0;");
  }
}

Database::~Database() = default;

void Database::fail(int rc, std::string_view context) const {
  std::string message = db_ ? sqlite3_errmsg(db_.get()) : sqlite3_errstr(rc);
  throw SqliteError(path_ + ": " + std::string(context) + ": " + message, rc & 0xff);
}

void Database::exec(std::string_view sql) {
  std::string text(sql);
  char* error = nullptr;
  int rc = sqlite3_exec(db_.get(), text.c_str(), nullptr, nullptr, &error);
  if (rc != SQLITE_OK) {
    std::string message = error ? error : sqlite3_errstr(rc);
    sqlite3_free(error);
    std::string head = text.substr(0, 60);
    throw SqliteError(path_ + ": " + message + " (in: " + head + ")", rc & 0xff);
  }
}

Statement Database::prepare(std::string_view sql) {
  return Statement(*this, sql);
}

std::int64_t Database::single_int(std::string_view sql, std::int64_t none) {
  Statement s(*this, sql);
  return s.step() ? s.column_int(0) : none;
}

std::int64_t Database::last_insert_rowid() const {
  return sqlite3_last_insert_rowid(db_.get());
}

int Database::changes() const {
  return sqlite3_changes(db_.get());
}

bool Database::in_transaction() const {
  return sqlite3_get_autocommit(db_.get()) == 0;
}

Statement::Statement(Database& db, std::string_view sql) : db_(&db) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v3(db.handle(), sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
  stmt_.reset(raw);
  if (rc != SQLITE_OK) db.fail(rc, "cannot prepare '" + std::string(sql.substr(0, 80)) + "'");
}

Statement& Statement::bind(int index, std::int64_t value) {
  int rc = sqlite3_bind_int64(stmt_.get(), index, value);
  if (rc != SQLITE_OK) db_->fail(rc, "bind");
  return *this;
}

Statement& Statement::bind(int index, double value) {
  int rc = sqlite3_bind_double(stmt_.get(), index, value);
  if (rc != SQLITE_OK) db_->fail(rc, "bind");
  return *this;
}

Statement& Statement::bind(int index, std::string_view value) {
  // A null data pointer would bind SQL NULL; an empty view means ''.
  const char* data = value.data() ? value.data() : "";
  int rc =
      sqlite3_bind_text64(stmt_.get(), index, data, value.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  if (rc != SQLITE_OK) db_->fail(rc, "bind");
  return *this;
}

Statement& Statement::bind_blob(int index, ByteSpan value) {
  // As for text: an empty span is a zero-length blob, not NULL.
  static constexpr std::uint8_t kEmpty = 0;
  const std::uint8_t* data = value.data() ? value.data() : &kEmpty;
  int rc = sqlite3_bind_blob64(stmt_.get(), index, data, value.size(), SQLITE_TRANSIENT);
  if (rc != SQLITE_OK) db_->fail(rc, "bind");
  return *this;
}

Statement& Statement::bind_value(int index, const Statement& source, int column) {
  int rc = sqlite3_bind_value(stmt_.get(), index, sqlite3_column_value(source.stmt_.get(), column));
  if (rc != SQLITE_OK) db_->fail(rc, "bind");
  return *this;
}

Statement& Statement::bind_null(int index) {
  int rc = sqlite3_bind_null(stmt_.get(), index);
  if (rc != SQLITE_OK) db_->fail(rc, "bind");
  return *this;
}

bool Statement::step() {
  int rc = sqlite3_step(stmt_.get());
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  const char* sql = sqlite3_sql(stmt_.get());
  db_->fail(rc, std::string("'") + std::string(sql ? sql : "").substr(0, 80) + "'");
}

void Statement::reset() {
  sqlite3_reset(stmt_.get());
}

void Statement::clear_bindings() {
  sqlite3_clear_bindings(stmt_.get());
}

int Statement::column_count() const {
  return sqlite3_column_count(stmt_.get());
}

std::string Statement::column_name(int column) const {
  const char* name = sqlite3_column_name(stmt_.get(), column);
  return name ? name : "";
}

int Statement::column_type(int column) const {
  return sqlite3_column_type(stmt_.get(), column);
}

std::size_t Statement::column_bytes(int column) const {
  return static_cast<std::size_t>(sqlite3_column_bytes(stmt_.get(), column));
}

bool Statement::is_null(int column) const {
  return sqlite3_column_type(stmt_.get(), column) == SQLITE_NULL;
}

std::int64_t Statement::column_int(int column) const {
  return sqlite3_column_int64(stmt_.get(), column);
}

double Statement::column_double(int column) const {
  return sqlite3_column_double(stmt_.get(), column);
}

std::string Statement::column_text(int column) const {
  const auto* text = sqlite3_column_text(stmt_.get(), column);
  int size = sqlite3_column_bytes(stmt_.get(), column);
  return text ? std::string(reinterpret_cast<const char*>(text), static_cast<std::size_t>(size))
              : std::string();
}

Bytes Statement::column_blob(int column) const {
  const auto* data = static_cast<const std::uint8_t*>(sqlite3_column_blob(stmt_.get(), column));
  int size = sqlite3_column_bytes(stmt_.get(), column);
  return data ? Bytes(data, data + size) : Bytes();
}

std::optional<std::int64_t> Statement::column_optional_int(int column) const {
  if (is_null(column)) return std::nullopt;
  return column_int(column);
}

std::optional<std::string> Statement::column_optional_text(int column) const {
  if (is_null(column)) return std::nullopt;
  return column_text(column);
}

Transaction::Transaction(Database& db) : db_(db) {
  db_.exec("BEGIN IMMEDIATE");
}

Transaction::~Transaction() {
  if (!done_) {
    try {
      db_.exec("ROLLBACK");
    } catch (const Error&) {
      // The transaction may already have been rolled back by SQLite itself
      // (e.g. after SQLITE_FULL); nothing more to undo.
    }
  }
}

void Transaction::commit() {
  db_.exec("COMMIT");
  done_ = true;
}

WriteScope::WriteScope(Database& db, Nesting nesting)
    : db_(db), nested_(db.in_transaction()), joined_(nested_ && nesting == Nesting::kJoin) {
  if (joined_) return;
  db_.exec(nested_ ? "SAVEPOINT mixtape_scope" : "BEGIN IMMEDIATE");
}

WriteScope::~WriteScope() {
  if (done_ || joined_) return;
  try {
    if (nested_) {
      // ROLLBACK TO keeps the savepoint open; RELEASE then removes it, leaving
      // the caller's transaction as it was before this scope.
      db_.exec("ROLLBACK TO mixtape_scope; RELEASE mixtape_scope");
    } else {
      db_.exec("ROLLBACK");
    }
  } catch (const Error&) {
    // SQLite may already have rolled the whole transaction back (SQLITE_FULL,
    // SQLITE_IOERR); there is nothing left to undo.
  }
}

void WriteScope::commit() {
  if (!joined_) db_.exec(nested_ ? "RELEASE mixtape_scope" : "COMMIT");
  done_ = true;
}

ReadScope::ReadScope(Database& db) : db_(db), owned_(!db.in_transaction()) {
  if (owned_) db_.exec("BEGIN");
}

ReadScope::~ReadScope() {
  if (!owned_) return;
  try {
    db_.exec("COMMIT");
  } catch (const Error&) {
    // A read transaction has nothing to lose; ending it cannot fail usefully.
  }
}

}  // namespace mixtape::sqlite
