// engine/sqlite: a thin RAII layer over the SQLite C API, shared by the
// catalog and the on-tape index databases.
//
// A Database owns one connection (SQLite connections are not shared between
// threads here: each thread opens its own). A Statement owns one prepared
// statement; bind() by 1-based index, step() until it returns false. Every
// failure throws SqliteError naming the database file and the SQL.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "engine/common/common.h"

namespace mixtape::sqlite {

class SqliteError : public Error {
 public:
  SqliteError(const std::string& what, int code) : Error(what), code_(code) {}
  // The primary SQLite result code (SQLITE_BUSY, SQLITE_CORRUPT, SQLITE_FULL...).
  int code() const { return code_; }

 private:
  int code_;
};

enum class OpenMode {
  kReadWriteCreate,
  kReadWrite,
  kReadOnly,
  // For files that came from tape or another untrusted place: read-only,
  // defensive, no triggers/views with side effects, bounded resources.
  kUntrusted,
  // A new scratch file of ours that reads untrusted files: created, with the
  // same defensive settings, and room for one such file to be attached
  // (with untrusted_uri(), read-only and immutable).
  kUntrustedScratch,
};

class Statement;

// The "file:" URI of a path (for ATTACH; sqlite3_open_v2 gets one too), with
// an optional query such as "mode=ro".
std::string file_uri(const std::string& path, std::string_view query = {});
// The URI to ATTACH an untrusted file to a kUntrustedScratch connection.
std::string untrusted_uri(const std::string& path);

class Database {
 public:
  Database(const std::string& path, OpenMode mode);
  Database(Database&&) noexcept = default;
  Database& operator=(Database&&) noexcept = default;
  ~Database();

  // Runs one or more statements without results.
  void exec(std::string_view sql);
  Statement prepare(std::string_view sql);
  // The first column of the first row of a query ("PRAGMA page_count",
  // "SELECT count(*) ..."), or `none` when it returns no row.
  std::int64_t single_int(std::string_view sql, std::int64_t none = 0);
  std::int64_t last_insert_rowid() const;
  int changes() const;
  // True while a transaction (BEGIN or SAVEPOINT) is open on this connection.
  bool in_transaction() const;
  const std::string& path() const { return path_; }
  sqlite3* handle() const { return db_.get(); }

  // Throws SqliteError for result code rc, with context.
  [[noreturn]] void fail(int rc, std::string_view context) const;

 private:
  struct Closer {
    void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
  };
  std::string path_;
  std::unique_ptr<sqlite3, Closer> db_;
};

class Statement {
 public:
  Statement(Database& db, std::string_view sql);

  Statement& bind(int index, std::int64_t value);
  Statement& bind(int index, std::uint64_t value) {
    return bind(index, static_cast<std::int64_t>(value));
  }
  Statement& bind(int index, int value) { return bind(index, static_cast<std::int64_t>(value)); }
  Statement& bind(int index, unsigned value) {
    return bind(index, static_cast<std::int64_t>(value));
  }
  Statement& bind(int index, double value);
  // Text is bound as bytes: names that are not valid UTF-8 survive unchanged.
  Statement& bind(int index, std::string_view value);
  Statement& bind(int index, const char* value) { return bind(index, std::string_view(value)); }
  Statement& bind(int index, const std::string& value) {
    return bind(index, std::string_view(value));
  }
  Statement& bind_blob(int index, ByteSpan value);
  Statement& bind_null(int index);
  // Binds the current value of `column` of another statement's row, keeping
  // its type exactly (copies rows between databases without interpreting them).
  Statement& bind_value(int index, const Statement& source, int column);
  template <typename T>
  Statement& bind(int index, const std::optional<T>& value) {
    return value ? bind(index, *value) : bind_null(index);
  }

  // Advances; true while a row is available, false when done.
  bool step();
  // Runs a statement that returns no rows.
  void run() {
    while (step()) {
    }
  }
  // Resets for re-execution; bindings are kept until rebound.
  void reset();
  void clear_bindings();

  int column_count() const;
  std::string column_name(int column) const;
  // SQLITE_INTEGER, SQLITE_FLOAT, SQLITE_TEXT, SQLITE_BLOB or SQLITE_NULL: the
  // storage class of the value, for callers that must not trust a schema.
  int column_type(int column) const;
  // Size in bytes of a text or blob value.
  std::size_t column_bytes(int column) const;
  bool is_null(int column) const;
  std::int64_t column_int(int column) const;
  double column_double(int column) const;
  std::string column_text(int column) const;
  Bytes column_blob(int column) const;
  std::optional<std::int64_t> column_optional_int(int column) const;
  std::optional<std::string> column_optional_text(int column) const;

 private:
  struct Finalizer {
    void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
  };
  Database* db_;
  std::unique_ptr<sqlite3_stmt, Finalizer> stmt_;
};

// BEGIN IMMEDIATE on construction; ROLLBACK on destruction unless committed.
class Transaction {
 public:
  explicit Transaction(Database& db);
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  // The moved-from one is done: only the new one commits or rolls back.
  Transaction(Transaction&& other) noexcept : db_(other.db_), done_(other.done_) {
    other.done_ = true;
  }
  ~Transaction();
  void commit();

 private:
  Database& db_;
  bool done_ = false;
};

// A unit of writes that is atomic whether or not the caller already opened a
// transaction: BEGIN IMMEDIATE when none is open (so the write lock is taken
// up front and a busy database waits instead of failing at the first write),
// a SAVEPOINT nested inside the caller's transaction otherwise. Undone on
// destruction unless committed.
class WriteScope {
 public:
  enum class Nesting {
    kSavepoint,  // inside a transaction: a savepoint, undone alone on failure
    kJoin,       // inside a transaction: just part of it (for a single write,
                 // where a savepoint would cost more than the write)
  };
  explicit WriteScope(Database& db, Nesting nesting = Nesting::kSavepoint);
  WriteScope(const WriteScope&) = delete;
  WriteScope& operator=(const WriteScope&) = delete;
  ~WriteScope();
  void commit();

 private:
  Database& db_;
  bool nested_;
  bool joined_;
  bool done_ = false;
};

// Makes several reads see one snapshot: BEGIN (deferred) when no transaction
// is open, nothing when one is (the caller's transaction is the snapshot, and
// its uncommitted rows are visible). Ends on destruction.
class ReadScope {
 public:
  explicit ReadScope(Database& db);
  ReadScope(const ReadScope&) = delete;
  ReadScope& operator=(const ReadScope&) = delete;
  ~ReadScope();

 private:
  Database& db_;
  bool owned_;
};

}  // namespace mixtape::sqlite
