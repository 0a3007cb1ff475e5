// copy_into: the catalog's tables copied into an on-tape index database.
//
// ATTACH is no use here: SQLite allows it inside a transaction, but writes to
// the attached file then commit only with the catalog's COMMIT, while the
// writer needs a complete index file before it commits (it writes the index
// to tape first). So rows are read through this connection (which sees its
// own uncommitted rows) and written through the index's own connection,
// value by value, keeping every value's type.
#include "engine/catalog/internal.h"

namespace mixtape::catalog {
namespace {

void replace_all(std::string& text, std::string_view from, std::string_view to) {
  for (std::size_t at = text.find(from); at != std::string::npos;
       at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
}

// The catalog's own CREATE TABLE text (with its comments, so `.schema` on the
// index explains every column), renamed to catalog_<table>, its references
// pointing at the other catalog_ tables.
std::string index_table_sql(sqlite::Database& db, const std::string& table) {
  auto s = db.prepare("SELECT sql FROM main.sqlite_schema WHERE type = 'table' AND name = ?1");
  s.bind(1, table);
  if (!s.step()) throw CatalogError("catalog has no table " + table);
  std::string text = s.column_text(0);
  const std::string head = "CREATE TABLE " + table + " (";
  if (!text.starts_with(head)) {
    throw CatalogError("catalog table " + table + " has an unexpected definition");
  }
  text.replace(0, head.size(), "CREATE TABLE catalog_" + table + " (");
  for (const char* other : internal::copied_tables()) {
    replace_all(text, "REFERENCES " + std::string(other) + "(",
                "REFERENCES catalog_" + std::string(other) + "(");
  }
  return text;
}

void copy_table(sqlite::Database& from, sqlite::Database& to, const std::string& table) {
  to.exec("DROP TABLE IF EXISTS catalog_" + table);
  to.exec(index_table_sql(from, table));
  auto select = from.prepare("SELECT * FROM main." + table);
  std::string insert = "INSERT INTO catalog_" + table + " VALUES (";
  for (int i = 0; i < select.column_count(); ++i) insert += i ? ", ?" : "?";
  auto out = to.prepare(insert + ")");
  while (select.step()) {
    for (int i = 0; i < select.column_count(); ++i) out.bind_value(i + 1, select, i);
    out.run();
    out.reset();
  }
}

}  // namespace

void Catalog::copy_into(sqlite::Database& index) {
  // One snapshot for all tables (or the caller's open transaction, with its
  // uncommitted rows); one transaction on the index.
  sqlite::ReadScope snapshot(*db_);
  sqlite::WriteScope out(index);
  for (const char* table : internal::copied_tables()) copy_table(*db_, index, table);
  out.commit();
}

void Catalog::copy_into(const std::string& index_db_path) {
  sqlite::Database index(index_db_path, sqlite::OpenMode::kReadWrite);
  // The index is a scratch file until it is on tape; the writer reads it back
  // whole, so neither a journal on disk nor fsyncs buy anything.
  index.exec("PRAGMA journal_mode = MEMORY; PRAGMA synchronous = OFF;");
  copy_into(index);
}

}  // namespace mixtape::catalog
