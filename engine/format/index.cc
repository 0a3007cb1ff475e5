// Index files: docs/FORMAT.md "Indexes". The schema is written for a reader
// who has only `sqlite3`: the comments inside CREATE TABLE are kept by
// SQLite and shown by `.schema`.
#include <charconv>
#include <filesystem>

#include "engine/format/format.h"
#include "engine/format/tar_header.h"

namespace mixtape::format {
namespace {

constexpr std::string_view kSchema = R"sql(
CREATE TABLE format (  -- what this file is; see FORMAT.txt in tape file 0
  key   TEXT PRIMARY KEY,  -- version: format version (2); kind: 'archive' or 'trailing';
                           -- serial: tape serial; record_size: bytes per tape record;
                           -- generation: counts the indexes written to this tape;
                           -- index_file / archive_file: tape file numbers (first file is 0);
                           -- catalog_id: the catalog this tape belongs to;
                           -- created: UTC time written; encryption: 'age' or 'none';
                           -- hash: 'blake2b-256' (b2sum -l 256);
                           -- catalog: what the catalog_* tables hold: 'full' (the whole
                           -- catalog), 'changes' (rows changed since the index at tape
                           -- file catalog_base, plus the small tables whole: apply in
                           -- tape order with INSERT OR REPLACE, see FORMAT.txt) or
                           -- 'tapes' (only settings, runs, tapes and goals)
  value TEXT NOT NULL
);
CREATE TABLE archive (  -- the archive (tape file) that follows this index; none in a trailing index
  tape_file         INTEGER NOT NULL,  -- its tape file number (mt fsf this many from the start)
  first_block       INTEGER NOT NULL,  -- logical block of its first record (mt seek), B0
  age_header_length INTEGER NOT NULL,  -- H: bytes of age header up to its MAC line; 0 if plain
  ciphertext_size   INTEGER NOT NULL,  -- bytes of the tape file (age file, or tar if plain)
  plaintext_size    INTEGER NOT NULL,  -- bytes of the tar inside
  member_count      INTEGER NOT NULL   -- rows in member
);
CREATE TABLE member (  -- one row per tar member, in archive order
  id            INTEGER PRIMARY KEY,  -- archive order
  path          TEXT NOT NULL,     -- member name: source path without its leading '/'
  type          TEXT NOT NULL,     -- 'file', 'directory' or 'symlink'
  size          INTEGER NOT NULL,  -- bytes of data (files; 0 otherwise)
  mode          INTEGER NOT NULL,  -- permission bits (decimal here; 420 = 0644)
  uid           INTEGER NOT NULL,
  gid           INTEGER NOT NULL,
  uname         TEXT NOT NULL,
  gname         TEXT NOT NULL,
  mtime_ns      INTEGER NOT NULL,  -- modification time, nanoseconds since 1970-01-01 UTC
  blake2b256    TEXT,              -- files: BLAKE2b-256 of the data, as b2sum -l 256 prints it
  header_offset INTEGER NOT NULL,  -- byte offset of its first tar header in the plaintext tar
  data_offset   INTEGER NOT NULL,  -- byte offset of its data in the plaintext tar; the tape
                                   -- block holding it: chunk i = data_offset / 65536,
                                   -- c = H + 16 + i * 65552 (plain: c = data_offset),
                                   -- block = first_block + c / record_size
  linkpath      TEXT               -- symlinks: the target
);
)sql";

// Bounds on what is read from an index, checked before a value is copied:
// the file is hostile input. A path or link target may be as long as the
// catalog allows one; format values are short words and numbers.
constexpr std::size_t kMaxPathBytes = 64 * 1024;
constexpr std::size_t kMaxOwnerBytes = 256;
constexpr std::size_t kMaxTypeBytes = 16;  // "directory" is the longest
constexpr std::size_t kHashHexBytes = 64;  // BLAKE2b-256 in hex
constexpr std::size_t kMaxFormatKeyBytes = 64;
constexpr std::size_t kMaxFormatValueBytes = 4096;
constexpr std::size_t kMaxFormatRows = 1000;
// age refuses headers over 1 MiB (engine/crypto), so an index claiming a
// bigger H describes no archive mixtape could have written or can read.
constexpr std::uint64_t kMaxAgeHeaderBytes = 1 << 20;

std::string_view kind_name(IndexKind kind) {
  return kind == IndexKind::kArchive ? "archive" : "trailing";
}

std::string_view catalog_copy_name(CatalogCopy copy) {
  switch (copy) {
    case CatalogCopy::kFull:
      return "full";
    case CatalogCopy::kChanges:
      return "changes";
    case CatalogCopy::kTapes:
      return "tapes";
  }
  return "?";
}

std::optional<std::uint64_t> parse_decimal(std::string_view text) {
  std::uint64_t value = 0;
  if (text.empty() || text.size() > 19) return std::nullopt;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  if (value > static_cast<std::uint64_t>(INT64_MAX)) return std::nullopt;
  return value;
}

MemberType parse_type(std::string_view text) {
  if (text == "file") return MemberType::kFile;
  if (text == "directory") return MemberType::kDirectory;
  if (text == "symlink") return MemberType::kSymlink;
  return MemberType::kOther;
}

constexpr std::string_view kMemberColumns =
    "path, type, size, mode, uid, gid, uname, gname, mtime_ns, blake2b256, header_offset, "
    "data_offset, linkpath, "
    // SQLite is dynamically typed: a hostile file can put text where a
    // number belongs, and column_int() would silently read 0.
    "typeof(path) = 'text' AND typeof(type) = 'text' AND typeof(size) = 'integer' AND "
    "typeof(mode) = 'integer' AND typeof(uid) = 'integer' AND typeof(gid) = 'integer' AND "
    "typeof(uname) = 'text' AND typeof(gname) = 'text' AND typeof(mtime_ns) = 'integer' AND "
    "typeof(blake2b256) IN ('text', 'null') AND typeof(header_offset) = 'integer' AND "
    "typeof(data_offset) = 'integer' AND typeof(linkpath) IN ('text', 'null')";

}  // namespace

// ------------------------------------------------------------ IndexWriter

IndexWriter::IndexWriter(std::string path, const IndexHeader& header, const std::string& seed)
    : path_(std::move(path)), kind_(header.kind), record_size_(header.record_size), db_([&] {
        if (std::filesystem::exists(path_)) {
          throw FormatError("index " + path_ + ": file already exists");
        }
        if (!seed.empty()) {
          if (header.catalog != CatalogCopy::kFull) {
            throw FormatError("index " + path_ + ": only a full copy starts from " + seed);
          }
          std::filesystem::copy_file(seed, path_);
        }
        return sqlite::Database(path_, sqlite::OpenMode::kReadWriteCreate);
      }()) {
  if (header.kind == IndexKind::kArchive && header.archive_file != header.index_file + 1) {
    throw FormatError("index " + path_ + ": the archive must be the tape file after its index");
  }
  if (header.catalog == CatalogCopy::kChanges && header.catalog_base >= header.index_file) {
    throw FormatError("index " + path_ + ": changes must continue an earlier index");
  }
  if (seed.empty()) {
    // Settings that make a plain, stock-readable file: rollback journal (no
    // -wal to lose), 4 KiB pages, our application id for `file(1)`.
    db_.exec("PRAGMA page_size = 4096; PRAGMA journal_mode = DELETE; PRAGMA application_id = " +
             std::to_string(kIndexApplicationId) +
             "; PRAGMA user_version = " + std::to_string(kFormatVersion) + ";");
  } else {
    check_seed(seed);
  }
  sqlite::Transaction transaction(db_);
  if (seed.empty()) {
    db_.exec(kSchema);
  } else {
    db_.exec("DELETE FROM format");
  }
  auto insert = db_.prepare("INSERT INTO format (key, value) VALUES (?, ?)");
  auto put = [&](std::string_view key, std::string_view value) {
    insert.reset();
    insert.bind(1, key).bind(2, value).run();
  };
  put("version", std::to_string(kFormatVersion));
  put("kind", kind_name(header.kind));
  put("serial", header.serial);
  put("record_size", std::to_string(header.record_size));
  put("generation", std::to_string(header.generation));
  put("index_file", std::to_string(header.index_file));
  if (header.kind == IndexKind::kArchive) {
    put("archive_file", std::to_string(header.archive_file));
  }
  put("catalog_id", header.catalog_id);
  put("created", header.created);
  put("encryption", header.encrypted ? "age" : "none");
  put("hash", kHashName);
  put("catalog", catalog_copy_name(header.catalog));
  if (header.catalog == CatalogCopy::kChanges) {
    put("catalog_base", std::to_string(header.catalog_base));
  }
  transaction.commit();
}

// A seed is a full trailing index this format wrote: the same settings and
// tables, no archive and no members; what it holds of the catalog is the
// catalog module's to bring up to date.
void IndexWriter::check_seed(const std::string& seed) {
  std::string why;
  if (db_.single_int("PRAGMA application_id") != kIndexApplicationId) {
    why = "not a mixtape index";
  } else if (db_.single_int("PRAGMA user_version") != kFormatVersion ||
             db_.single_int("PRAGMA page_size") != 4096) {
    why = "written in another format";
  } else {
    auto s = db_.prepare("SELECT value FROM format WHERE key = 'kind'");
    if (!s.step() || s.column_text(0) != kind_name(IndexKind::kTrailing) ||
        db_.single_int("SELECT count(*) FROM archive", -1) != 0 ||
        db_.single_int("SELECT count(*) FROM member", -1) != 0) {
      why = "not a trailing index";
    }
  }
  if (!why.empty())
    throw FormatError("index " + path_ + ": cannot start from " + seed + ": " + why);
}

void IndexWriter::add_member(const IndexedMember& member) {
  if (finished_) throw FormatError("index " + path_ + ": add_member after finish");
  if (kind_ != IndexKind::kArchive) {
    throw FormatError("index " + path_ + ": a trailing index has no members");
  }
  const MemberInfo& info = member.info;
  if (!safe_relative_path(info.path) || *safe_relative_path(info.path) != info.path) {
    throw FormatError("index " + path_ + ": member path '" + tar::printable(info.path) +
                      "' is not a normalised relative path");
  }
  if (info.type == MemberType::kFile ? !tar::is_hash_hex(info.blake2b256)
                                     : (info.size != 0 || !info.blake2b256.empty())) {
    throw FormatError("index " + path_ + ": member '" + tar::printable(info.path) +
                      "' needs a BLAKE2b-256 (files) or no data and hash (others)");
  }
  if (info.type != MemberType::kFile && info.type != MemberType::kSymlink &&
      info.type != MemberType::kDirectory) {
    throw FormatError("index " + path_ + ": member '" + tar::printable(info.path) + "' is a " +
                      std::string(member_type_name(info.type)) +
                      "; indexes hold files, symlinks and directories");
  }
  if (!pending_) pending_.emplace(db_);
  if (!insert_member_) {
    insert_member_.emplace(
        db_.prepare("INSERT INTO member (path, type, size, mode, uid, gid, uname, gname, mtime_ns, "
                    "blake2b256, header_offset, data_offset, linkpath) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
  }
  auto& insert = *insert_member_;
  insert.reset();
  insert.bind(1, info.path)
      .bind(2, member_type_name(info.type))
      .bind(3, info.size)
      .bind(4, info.mode)
      .bind(5, info.uid)
      .bind(6, info.gid)
      .bind(7, info.uname)
      .bind(8, info.gname)
      .bind(9, info.mtime_ns);
  if (info.type == MemberType::kFile) {
    insert.bind(10, info.blake2b256);
  } else {
    insert.bind_null(10);
  }
  insert.bind(11, member.offsets.header_offset).bind(12, member.offsets.data_offset);
  if (info.type == MemberType::kSymlink) {
    insert.bind(13, info.linkpath);
  } else {
    insert.bind_null(13);
  }
  insert.run();
  ++members_;
}

void IndexWriter::set_archive(const ArchiveRecord& archive) {
  if (finished_) throw FormatError("index " + path_ + ": set_archive after finish");
  if (kind_ != IndexKind::kArchive) {
    throw FormatError("index " + path_ + ": a trailing index describes no archive");
  }
  commit_pending();
  db_.exec("DELETE FROM archive");
  db_.prepare(
         "INSERT INTO archive (tape_file, first_block, age_header_length, ciphertext_size, "
         "plaintext_size, member_count) VALUES (?, ?, ?, ?, ?, ?)")
      .bind(1, archive.tape_file)
      .bind(2, archive.first_block)
      .bind(3, archive.age_header_length)
      .bind(4, archive.ciphertext_size)
      .bind(5, archive.plaintext_size)
      .bind(6, archive.member_count)
      .run();
  archive_set_ = true;
}

sqlite::Database& IndexWriter::database() {
  commit_pending();
  return db_;
}

void IndexWriter::commit_pending() {
  if (!pending_) return;
  pending_->commit();
  pending_.reset();
}

void IndexWriter::finish() {
  if (finished_) throw FormatError("index " + path_ + ": finish called twice");
  if (kind_ == IndexKind::kArchive && !archive_set_) {
    throw FormatError("index " + path_ + ": archive row never set");
  }
  commit_pending();
  insert_member_.reset();
  // Compact: tables filled once, in key order, have no free pages (a full
  // catalog copy: VACUUM would rewrite 150 MB for nothing); anything dropped
  // or rewritten on the way leaves some, and then VACUUM makes the file
  // anew. A copy brought up to date from a seed keeps up to 1% free (rows
  // replaced in place leave few, and later updates reuse them): rewriting
  // the whole copy for less would cost what the seed saves. With the
  // rollback journal the file is complete on disk either way; no side file
  // remains.
  const std::int64_t free_pages = db_.single_int("PRAGMA freelist_count");
  if (free_pages > 0 && free_pages * 100 > db_.single_int("PRAGMA page_count")) db_.exec("VACUUM");
  finished_ = true;
}

std::uint64_t IndexWriter::finish_at(std::uint64_t index_block, const Sealing& sealing,
                                     std::uint64_t header_length) {
  if (kind_ != IndexKind::kArchive) {
    throw FormatError("index " + path_ + ": a trailing index describes no archive");
  }
  finish();
  // Writing the block can change the file's size (rarely: a varint growing
  // a page), hence the loop; it settles at once in practice.
  std::uint64_t first_block = 0;
  for (int attempt = 0; attempt < 4; ++attempt) {
    const std::uint64_t sealed =
        sealing.sealed_size(header_length, std::filesystem::file_size(path_));
    const std::uint64_t settled = index_block + record_count(sealed, record_size_) + 1;
    if (settled == first_block) return first_block;
    first_block = settled;
    db_.prepare("UPDATE archive SET first_block = ?").bind(1, first_block).run();
  }
  throw FormatError("index " + path_ + ": its size does not settle");
}

// ------------------------------------------------------------ IndexReader

IndexReader::IndexReader(std::string path)
    : path_(std::move(path)), db_([&] {
        try {
          return sqlite::Database(path_, sqlite::OpenMode::kUntrusted);
        } catch (const sqlite::SqliteError& e) {
          throw FormatError("index " + path_ + ": cannot open: " + e.what());
        }
      }()) {
  try {
    check_schema();
    read_header();
    read_archive();
  } catch (const sqlite::SqliteError& e) {
    fail(std::string("not a readable mixtape index: ") + e.what());
  }
}

void IndexReader::fail(const std::string& message) const {
  throw FormatError("index " + path_ + ": " + message);
}

void IndexReader::check_schema() {
  // Untrusted mode disables triggers and views already; an index never has
  // them, so their presence means the file was tampered with.
  auto objects = db_.prepare(
      "SELECT type, name, sql LIKE 'CREATE VIRTUAL%' FROM sqlite_schema "
      "WHERE type IN ('trigger', 'view') OR sql LIKE 'CREATE VIRTUAL%' LIMIT 1");
  if (objects.step()) {
    std::string what = objects.column_int(2) ? "virtual table" : objects.column_text(0);
    fail("unexpected " + what + " '" + tar::printable(objects.column_text(1)) +
         "' (an index has none; refusing a possibly tampered file)");
  }
  auto table = db_.prepare("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?");
  for (std::string_view name : {"format", "archive", "member"}) {
    table.reset();
    table.bind(1, name);
    table.step();
    if (table.column_int(0) != 1) fail("not a mixtape index: no '" + std::string(name) + "' table");
  }
}

void IndexReader::read_header() {
  std::vector<std::pair<std::string, std::string>> values;
  auto rows = db_.prepare("SELECT key, value FROM format");
  while (rows.step()) {
    if (values.size() >= kMaxFormatRows) fail("format table is implausibly large");
    if (rows.column_bytes(0) > kMaxFormatKeyBytes || rows.column_bytes(1) > kMaxFormatValueBytes) {
      fail("format table has an implausibly long key or value");
    }
    values.emplace_back(rows.column_text(0), rows.column_text(1));
  }
  auto get = [&](std::string_view key) -> std::optional<std::string> {
    for (const auto& [k, v] : values) {
      if (k == key) return v;
    }
    return std::nullopt;
  };
  auto require = [&](std::string_view key) {
    auto value = get(key);
    if (!value) fail("format table has no '" + std::string(key) + "'");
    return *value;
  };
  auto number = [&](std::string_view key) {
    std::string text = require(key);
    auto value = parse_decimal(text);
    if (!value) {
      fail("format " + std::string(key) + " '" + tar::printable(text) + "' is not a number");
    }
    return *value;
  };

  std::string version = require("version");
  auto number_version = parse_decimal(version);
  if (!number_version || *number_version < kOldestFormatVersion ||
      *number_version > kFormatVersion) {
    fail("format version '" + tar::printable(version) + "' is not supported (this mixtape reads " +
         "versions " + std::to_string(kOldestFormatVersion) + " to " +
         std::to_string(kFormatVersion) + ")");
  }
  header_.version = static_cast<int>(*number_version);
  std::string kind = require("kind");
  if (kind == "archive") {
    header_.kind = IndexKind::kArchive;
  } else if (kind == "trailing") {
    header_.kind = IndexKind::kTrailing;
  } else {
    fail("unknown index kind '" + tar::printable(kind) + "'");
  }
  header_.serial = require("serial");
  header_.record_size = number("record_size");
  if (header_.record_size == 0 || header_.record_size > kMaxRecordSize ||
      header_.record_size % kTarBlockSize != 0) {
    fail("record size " + std::to_string(header_.record_size) + " is out of range");
  }
  header_.generation = number("generation");
  header_.index_file = number("index_file");
  if (header_.kind == IndexKind::kArchive) {
    header_.archive_file = number("archive_file");
    if (header_.archive_file != header_.index_file + 1) {
      fail("archive file " + std::to_string(header_.archive_file) + " does not follow index file " +
           std::to_string(header_.index_file));
    }
  }
  header_.catalog_id = require("catalog_id");
  header_.created = require("created");
  std::string encryption = require("encryption");
  if (encryption != "age" && encryption != "none") {
    fail("unknown encryption '" + tar::printable(encryption) + "'");
  }
  header_.encrypted = encryption == "age";
  if (require("hash") != kHashName) fail("unknown hash '" + tar::printable(require("hash")) + "'");
  // Every format-1 index holds the whole catalog.
  std::string catalog = header_.version == 1 ? "full" : require("catalog");
  if (catalog == "full") {
    header_.catalog = CatalogCopy::kFull;
  } else if (catalog == "changes") {
    header_.catalog = CatalogCopy::kChanges;
    header_.catalog_base = number("catalog_base");
    if (header_.catalog_base >= header_.index_file) {
      fail("catalog_base " + std::to_string(header_.catalog_base) + " is not an earlier index");
    }
  } else if (catalog == "tapes") {
    header_.catalog = CatalogCopy::kTapes;
  } else {
    fail("unknown catalog copy '" + tar::printable(catalog) + "'");
  }
}

void IndexReader::read_archive() {
  auto rows = db_.prepare(
      "SELECT tape_file, first_block, age_header_length, ciphertext_size, plaintext_size, "
      "member_count, typeof(tape_file) = 'integer' AND typeof(first_block) = 'integer' AND "
      "typeof(age_header_length) = 'integer' AND typeof(ciphertext_size) = 'integer' AND "
      "typeof(plaintext_size) = 'integer' AND typeof(member_count) = 'integer' FROM archive "
      "LIMIT 2");
  std::vector<ArchiveRecord> found;
  while (rows.step()) {
    if (!rows.column_int(6)) fail("archive row has a non-integer value");
    std::int64_t values[6];
    for (int i = 0; i < 6; ++i) {
      values[i] = rows.column_int(i);
      if (values[i] < 0) fail("archive row has a negative value");
    }
    found.push_back({static_cast<std::uint64_t>(values[0]), static_cast<std::uint64_t>(values[1]),
                     static_cast<std::uint64_t>(values[2]), static_cast<std::uint64_t>(values[3]),
                     static_cast<std::uint64_t>(values[4]), static_cast<std::uint64_t>(values[5])});
  }
  auto count = db_.prepare("SELECT count(*) FROM member");
  count.step();
  auto members = static_cast<std::uint64_t>(count.column_int(0));

  if (header_.kind == IndexKind::kTrailing) {
    if (!found.empty() || members != 0) fail("a trailing index must not describe an archive");
    return;
  }
  if (found.size() != 1) fail("an archive index needs exactly one archive row");
  const ArchiveRecord& a = found.front();
  if (a.tape_file != header_.archive_file) {
    fail("archive row names tape file " + std::to_string(a.tape_file) + " but format says " +
         std::to_string(header_.archive_file));
  }
  if (a.plaintext_size < kTarEndOfArchiveSize || a.plaintext_size % kTarBlockSize != 0 ||
      a.plaintext_size > static_cast<std::uint64_t>(INT64_MAX) / 2) {
    fail("archive plaintext size " + std::to_string(a.plaintext_size) + " is not a tar size");
  }
  if (a.age_header_length > kMaxAgeHeaderBytes) {
    fail("archive age header length " + std::to_string(a.age_header_length) + " is implausible");
  }
  std::uint64_t expected = header_.encrypted
                               ? age_encrypted_size(a.age_header_length, a.plaintext_size)
                               : a.plaintext_size;
  if ((header_.encrypted && a.age_header_length == 0) ||
      (!header_.encrypted && a.age_header_length != 0) || a.ciphertext_size != expected) {
    fail("archive sizes are inconsistent (ciphertext " + std::to_string(a.ciphertext_size) +
         ", plaintext " + std::to_string(a.plaintext_size) + ", age header " +
         std::to_string(a.age_header_length) + ")");
  }
  if (a.member_count != members) {
    fail("archive row counts " + std::to_string(a.member_count) + " members but the table has " +
         std::to_string(members));
  }
  archive_ = a;
}

ArchiveGeometry IndexReader::geometry() const {
  if (!archive_) fail("a trailing index describes no archive");
  return {archive_->first_block, header_.record_size, header_.encrypted,
          archive_->age_header_length};
}

IndexReader::Cursor IndexReader::members() {
  return Cursor(*this,
                db_.prepare("SELECT " + std::string(kMemberColumns) + " FROM member ORDER BY id"));
}

std::optional<IndexedMember> IndexReader::find(std::string_view path) {
  auto statement = db_.prepare("SELECT " + std::string(kMemberColumns) +
                               " FROM member WHERE path = ? ORDER BY id LIMIT 1");
  statement.bind(1, path);
  if (!statement.step()) return std::nullopt;
  return validated(statement);
}

std::optional<IndexedMember> IndexReader::Cursor::next() {
  if (!statement_.step()) return std::nullopt;
  IndexedMember member = reader_.validated(statement_);
  if (!first_ && member.offsets.header_offset <= last_header_offset_) {
    reader_.fail("member '" + tar::printable(member.info.path) + "' is out of archive order");
  }
  first_ = false;
  last_header_offset_ = member.offsets.header_offset;
  return member;
}

IndexedMember IndexReader::validated(sqlite::Statement& row) const {
  IndexedMember m;
  if (row.column_bytes(0) > kMaxPathBytes) {
    fail("a member path of " + std::to_string(row.column_bytes(0)) + " bytes is too long");
  }
  m.info.path = row.column_text(0);
  auto bad = [&](const std::string& why) {
    fail("member '" + tar::printable(m.info.path) + "': " + why);
  };
  if (!row.column_int(13)) bad("a column has the wrong type");
  if (row.column_bytes(6) > kMaxOwnerBytes || row.column_bytes(7) > kMaxOwnerBytes) {
    bad("owner name too long");
  }
  if (row.column_bytes(1) > kMaxTypeBytes || row.column_bytes(9) > kHashHexBytes ||
      row.column_bytes(12) > kMaxPathBytes) {
    bad("type, hash or link target too long");
  }
  auto safe = safe_relative_path(m.info.path);
  if (!safe || *safe != m.info.path) bad("unsafe or unnormalised path");
  std::string type = row.column_text(1);
  m.info.type = parse_type(type);
  if (m.info.type == MemberType::kOther) bad("unknown type '" + tar::printable(type) + "'");
  std::int64_t size = row.column_int(2);
  std::int64_t mode = row.column_int(3);
  std::int64_t uid = row.column_int(4);
  std::int64_t gid = row.column_int(5);
  std::int64_t header_offset = row.column_int(10);
  std::int64_t data_offset = row.column_int(11);
  if (size < 0 || uid < 0 || gid < 0 || header_offset < 0 || data_offset < 0) {
    bad("negative size, owner or offset");
  }
  if (mode < 0 || mode > 07777) bad("mode " + std::to_string(mode) + " out of range");
  if (m.info.type != MemberType::kFile && size != 0) bad("only files have a size");
  m.info.size = static_cast<std::uint64_t>(size);
  m.info.mode = static_cast<std::uint32_t>(mode);
  m.info.uid = static_cast<std::uint64_t>(uid);
  m.info.gid = static_cast<std::uint64_t>(gid);
  m.info.uname = row.column_text(6);
  m.info.gname = row.column_text(7);
  m.info.mtime_ns = row.column_int(8);
  m.offsets.header_offset = static_cast<std::uint64_t>(header_offset);
  m.offsets.data_offset = static_cast<std::uint64_t>(data_offset);

  auto hash = row.column_optional_text(9);
  if (m.info.type == MemberType::kFile) {
    if (!hash || !tar::is_hash_hex(*hash)) {
      bad("blake2b256 is not 64 lower-case hex digits");
    }
    m.info.blake2b256 = *hash;
  } else if (hash) {
    bad("only files have a blake2b256");
  }
  auto link = row.column_optional_text(12);
  if (m.info.type == MemberType::kSymlink) {
    if (!link || link->empty()) bad("symlink without a target");
    m.info.linkpath = *link;
  } else if (link) {
    bad("only symlinks have a linkpath");
  }

  // Offsets must land inside the archive, on tar block boundaries.
  if (archive_) {
    std::uint64_t end = archive_->plaintext_size - kTarEndOfArchiveSize;
    const auto& o = m.offsets;
    if (o.header_offset % kTarBlockSize != 0 || o.data_offset % kTarBlockSize != 0 ||
        o.header_offset >= o.data_offset || o.data_offset > end || m.info.size > end ||
        o.data_offset + m.info.size > end) {
      bad("offsets (header " + std::to_string(o.header_offset) + ", data " +
          std::to_string(o.data_offset) + ", size " + std::to_string(m.info.size) +
          ") do not fit in the archive of " + std::to_string(archive_->plaintext_size) + " bytes");
    }
  }
  return m;
}

}  // namespace mixtape::format
