// copy_into: the catalog's tables copied into an on-tape index database.
//
// Inside the catalog connection's transaction (the trailing index), its
// uncommitted rows must come along, and attaching the index to it is no use:
// writes to the attached file would commit only with the catalog's COMMIT,
// while the writer needs a complete index file before it commits (it writes
// the index to tape first). So rows are read through this connection and
// written through the index's own, value by value, keeping every value's
// type. With nothing uncommitted (the index before an archive), the index's
// connection attaches the catalog file read-only and copies each table in
// one INSERT ... SELECT, several times faster: the file holds all there is.
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

// catalog_<table> in the index, new and empty.
void create_index_table(sqlite::Database& from, sqlite::Database& to, const std::string& table) {
  to.exec("DROP TABLE IF EXISTS catalog_" + table);
  to.exec(index_table_sql(from, table));
}

void copy_table(sqlite::Database& from, sqlite::Database& to, const std::string& table) {
  create_index_table(from, to, table);
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

}  // namespace

void Catalog::copy_into(sqlite::Database& index) {
  if (!db_->in_transaction() && !index.in_transaction()) {
    AttachedCatalog attached(index, path_);
    // One transaction on the index, which holds one snapshot of the
    // attached catalog for all tables.
    sqlite::WriteScope out(index);
    for (const char* table : internal::copied_tables()) {
      const std::string name = table;
      create_index_table(*db_, index, name);
      index.exec("INSERT INTO catalog_" + name + " SELECT * FROM copied_catalog." + name);
    }
    out.commit();
    return;
  }
  // One snapshot for all tables (the caller's open transaction, with its
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
