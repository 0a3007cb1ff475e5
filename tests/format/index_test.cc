// IndexWriter / IndexReader: round trips, and one test per kind of hostile
// or damaged index.
#include <gtest/gtest.h>

#include "engine/format/format.h"
#include "tests/format/test_util.h"

namespace mixtape::format {
namespace {

using testing::hash_hex;
using testing::TempDir;

IndexHeader archive_header() {
  IndexHeader h;
  h.kind = IndexKind::kArchive;
  h.serial = "L00042";
  h.record_size = 524288;
  h.generation = 3;
  h.index_file = 5;
  h.archive_file = 6;
  h.catalog_id = "0123456789abcdef";
  h.created = "2026-11-21T10:00:00Z";
  h.encrypted = true;
  return h;
}

// Members laid out by PaxLayout, as the write pipeline does.
std::vector<IndexedMember> members_and_layout(std::uint64_t* tar_size) {
  std::vector<IndexedMember> out;
  PaxLayout layout;
  auto add = [&](MemberInfo info) {
    MemberOffsets offsets = layout.add(info);
    out.push_back({std::move(info), offsets});
  };
  MemberInfo f;
  f.path = "photos/2026/IMG_0001.CR3";
  f.size = 25000000;
  f.mode = 0644;
  f.uid = 1000;
  f.gid = 1000;
  f.uname = "alice";
  f.gname = "alice";
  f.mtime_ns = 1700000000123456789;
  f.blake2b256 = hash_hex("photo");
  add(f);
  f.path = "bad\xff name\nwith newline";
  f.size = 0;
  f.blake2b256 = hash_hex("");
  f.mtime_ns = -5;
  add(f);
  MemberInfo link;
  link.path = "photos/latest";
  link.type = MemberType::kSymlink;
  link.linkpath = "2026/IMG_0001.CR3";
  link.mode = 0777;
  add(link);
  MemberInfo dir;
  dir.path = "empty";
  dir.type = MemberType::kDirectory;
  dir.mode = 0755;
  add(dir);
  *tar_size = layout.finished_size();
  return out;
}

ArchiveRecord archive_for(std::uint64_t tar_size, std::uint64_t members) {
  constexpr std::uint64_t kHeader = 230;
  return {6, 1234, kHeader, age_encrypted_size(kHeader, tar_size), tar_size, members};
}

std::string write_index(const TempDir& dir, const std::string& name = "index.db") {
  std::string path = dir / name;
  std::uint64_t tar_size = 0;
  auto members = members_and_layout(&tar_size);
  IndexWriter writer(path, archive_header());
  for (const auto& m : members) writer.add_member(m);
  writer.set_archive(archive_for(tar_size, members.size()));
  writer.finish();
  return path;
}

// Applies SQL to a finished index, as an attacker with a hex editor would.
void tamper(const std::string& path, std::string_view sql) {
  sqlite::Database db(path, sqlite::OpenMode::kReadWrite);
  db.exec(sql);
}

std::string open_error(const std::string& path) {
  try {
    IndexReader reader(path);
    auto cursor = reader.members();
    while (cursor.next()) {
    }
  } catch (const FormatError& e) {
    return e.what();
  } catch (const Error& e) {
    return std::string("(not a FormatError) ") + e.what();
  }
  return "";
}

#define EXPECT_INDEX_ERROR(path, text)                                    \
  do {                                                                    \
    std::string error = open_error(path);                                 \
    EXPECT_NE(error.find(text), std::string::npos)                        \
        << "error: '" << error << "', want: " << (text);                  \
    EXPECT_NE(error.find("index " + (path)), std::string::npos) << error; \
  } while (0)

TEST(Index, RoundTrips) {
  TempDir dir;
  std::string path = write_index(dir);
  std::uint64_t tar_size = 0;
  auto members = members_and_layout(&tar_size);

  IndexReader reader(path);
  EXPECT_EQ(reader.header(), archive_header());
  ASSERT_TRUE(reader.archive());
  EXPECT_EQ(*reader.archive(), archive_for(tar_size, members.size()));
  auto cursor = reader.members();
  for (const auto& want : members) {
    auto got = cursor.next();
    ASSERT_TRUE(got);
    EXPECT_EQ(*got, want);
  }
  EXPECT_FALSE(cursor.next());
  EXPECT_EQ(reader.find("photos/latest")->info.linkpath, "2026/IMG_0001.CR3");
  EXPECT_EQ(reader.find("bad\xff name\nwith newline")->info.mtime_ns, -5);
  EXPECT_FALSE(reader.find("missing"));
  ArchiveGeometry g = reader.geometry();
  EXPECT_EQ(g.first_block, 1234u);
  EXPECT_EQ(g.age_header_length, 230u);
  EXPECT_TRUE(g.encrypted);
  EXPECT_EQ(locate(g, members[0].offsets.data_offset).block, 1234u);
}

TEST(Index, TrailingIndexHasNoArchive) {
  TempDir dir;
  IndexHeader h = archive_header();
  h.kind = IndexKind::kTrailing;
  h.archive_file = 0;
  {
    IndexWriter writer(dir / "trailing.db", h);
    EXPECT_THROW(writer.set_archive({}), FormatError);
    writer.finish();
  }
  IndexReader reader(dir / "trailing.db");
  EXPECT_EQ(reader.header(), h);
  EXPECT_FALSE(reader.archive());
  EXPECT_FALSE(reader.members().next());
  EXPECT_THROW(reader.geometry(), FormatError);
}

TEST(Index, FileIsCompactWithNoSideFiles) {
  TempDir dir;
  std::string path = write_index(dir);
  EXPECT_FALSE(std::filesystem::exists(path + "-journal"));
  EXPECT_FALSE(std::filesystem::exists(path + "-wal"));
  sqlite::Database db(path, sqlite::OpenMode::kReadOnly);
  auto pragma = [&](std::string_view name) {
    auto s = db.prepare("PRAGMA " + std::string(name));
    s.step();
    return s.column_text(0);
  };
  EXPECT_EQ(pragma("journal_mode"), "delete");
  EXPECT_EQ(pragma("page_size"), "4096");
  EXPECT_EQ(pragma("freelist_count"), "0");
  EXPECT_EQ(pragma("application_id"), std::to_string(kIndexApplicationId));
  EXPECT_EQ(pragma("user_version"), "2");
  EXPECT_EQ(pragma("integrity_check"), "ok");
}

TEST(Index, CatalogTablesCanBeCopiedIn) {
  TempDir dir;
  std::string catalog = dir / "catalog.db";
  {
    sqlite::Database db(catalog, sqlite::OpenMode::kReadWriteCreate);
    db.exec("CREATE TABLE tapes (serial TEXT); INSERT INTO tapes VALUES ('L00042');");
  }
  std::string path = dir / "index.db";
  IndexHeader h = archive_header();
  h.kind = IndexKind::kTrailing;
  IndexWriter writer(path, h);
  sqlite::Database& db = writer.database();
  db.prepare("ATTACH ? AS catalog").bind(1, catalog).run();
  db.exec("CREATE TABLE catalog_tapes AS SELECT * FROM catalog.tapes; DETACH catalog;");
  writer.finish();

  IndexReader reader(path);
  auto rows = reader.database().prepare("SELECT serial FROM catalog_tapes");
  ASSERT_TRUE(rows.step());
  EXPECT_EQ(rows.column_text(0), "L00042");
}

TEST(Index, WriterRefusesMisuse) {
  TempDir dir;
  std::string path = write_index(dir);
  EXPECT_THROW(IndexWriter(path, archive_header()), FormatError);  // exists
  IndexWriter writer(dir / "other.db", archive_header());
  EXPECT_THROW(writer.finish(), FormatError);  // no archive row
  IndexedMember bad;
  bad.info.path = "/absolute";
  EXPECT_THROW(writer.add_member(bad), FormatError);
}

// ------------------------------------------------------------ hostile

TEST(IndexHostile, WrongVersion) {
  TempDir dir;
  std::string path = write_index(dir);
  tamper(path, "UPDATE format SET value = '3' WHERE key = 'version'");
  EXPECT_INDEX_ERROR(path, "format version '3' is not supported");
}

TEST(IndexHostile, UnknownCatalogCopy) {
  TempDir dir;
  std::string path = write_index(dir);
  tamper(path, "UPDATE format SET value = 'some' WHERE key = 'catalog'");
  EXPECT_INDEX_ERROR(path, "unknown catalog copy 'some'");
}

TEST(IndexHostile, ChangesThatContinueNoEarlierIndex) {
  TempDir dir;
  std::string path = write_index(dir);
  tamper(path,
         "UPDATE format SET value = 'changes' WHERE key = 'catalog'; "
         "INSERT INTO format VALUES ('catalog_base', '9')");
  EXPECT_INDEX_ERROR(path, "catalog_base 9 is not an earlier index");
}

// A format-1 index has no `catalog` key: every one holds the whole catalog.
TEST(Index, AFormatOneIndexReadsAsAFullCopy) {
  TempDir dir;
  std::string path = write_index(dir);
  tamper(path,
         "UPDATE format SET value = '1' WHERE key = 'version'; "
         "DELETE FROM format WHERE key = 'catalog'");
  IndexReader reader(path);
  EXPECT_EQ(reader.header().version, 1);
  EXPECT_EQ(reader.header().catalog, CatalogCopy::kFull);
}

TEST(IndexHostile, MissingVersion) {
  TempDir dir;
  std::string path = write_index(dir);
  tamper(path, "DELETE FROM format WHERE key = 'version'");
  EXPECT_INDEX_ERROR(path, "no 'version'");
}

TEST(IndexHostile, NotSqliteAtAll) {
  TempDir dir;
  std::string path = dir / "garbage.db";
  testing::write_file(path, std::string(8192, 'g'));
  EXPECT_INDEX_ERROR(path, "index " + path);
}

TEST(IndexHostile, ForeignDatabase) {
  TempDir dir;
  std::string path = dir / "foreign.db";
  {
    sqlite::Database db(path, sqlite::OpenMode::kReadWriteCreate);
    db.exec("CREATE TABLE t (x)");
  }
  EXPECT_INDEX_ERROR(path, "not a mixtape index");
}

TEST(IndexHostile, BadHashText) {
  TempDir dir;
  std::string path = write_index(dir);
  tamper(path, "UPDATE member SET blake2b256 = 'zz' || substr(blake2b256, 3) WHERE id = 1");
  EXPECT_INDEX_ERROR(path, "blake2b256 is not 64 lower-case hex digits");
}

TEST(IndexHostile, NegativeSize) {
  TempDir dir;
  std::string path = write_index(dir);
  tamper(path, "UPDATE member SET size = -1 WHERE id = 1");
  EXPECT_INDEX_ERROR(path, "negative");
}

TEST(IndexHostile, TextWhereNumberBelongs) {
  TempDir dir;
  std::string path = write_index(dir);
  tamper(path, "UPDATE member SET size = 'lots' WHERE id = 1");
  EXPECT_INDEX_ERROR(path, "wrong type");
}

TEST(IndexHostile, OffsetBeyondArchive) {
  TempDir dir;
  std::string path = write_index(dir);
  tamper(path, "UPDATE member SET data_offset = 1099511627776 WHERE id = 1");
  EXPECT_INDEX_ERROR(path, "do not fit in the archive");
}

TEST(IndexHostile, SizeBeyondArchive) {
  TempDir dir;
  std::string path = write_index(dir);
  tamper(path, "UPDATE member SET size = 9223372036854775807 WHERE id = 1");
  EXPECT_INDEX_ERROR(path, "do not fit in the archive");
}

TEST(IndexHostile, UnalignedOffset) {
  TempDir dir;
  std::string path = write_index(dir);
  tamper(path, "UPDATE member SET header_offset = 3 WHERE id = 1");
  EXPECT_INDEX_ERROR(path, "do not fit");
}

TEST(IndexHostile, MembersOutOfOrder) {
  TempDir dir;
  std::string path = write_index(dir);
  tamper(path, "UPDATE member SET id = 100 WHERE id = 1");
  EXPECT_INDEX_ERROR(path, "out of archive order");
}

TEST(IndexHostile, UnsafePath) {
  TempDir dir;
  std::string path = write_index(dir);
  tamper(path, "UPDATE member SET path = '../../etc/passwd' WHERE id = 1");
  EXPECT_INDEX_ERROR(path, "unsafe");
}

TEST(IndexHostile, UnknownType) {
  TempDir dir;
  std::string path = write_index(dir);
  tamper(path, "UPDATE member SET type = 'device' WHERE id = 1");
  EXPECT_INDEX_ERROR(path, "unknown type 'device'");
}

TEST(IndexHostile, BadMode) {
  TempDir dir;
  std::string path = write_index(dir);
  tamper(path, "UPDATE member SET mode = 65536 WHERE id = 1");
  EXPECT_INDEX_ERROR(path, "mode 65536 out of range");
}

TEST(IndexHostile, TriggerPresent) {
  TempDir dir;
  std::string path = write_index(dir);
  tamper(path, "CREATE TRIGGER evil AFTER INSERT ON format BEGIN DELETE FROM member; END");
  EXPECT_INDEX_ERROR(path, "unexpected trigger 'evil'");
}

TEST(IndexHostile, ViewPresent) {
  TempDir dir;
  std::string path = write_index(dir);
  tamper(path, "CREATE VIEW sneaky AS SELECT * FROM member");
  EXPECT_INDEX_ERROR(path, "unexpected view 'sneaky'");
}

TEST(IndexHostile, InconsistentArchiveSizes) {
  TempDir dir;
  std::string path = write_index(dir);
  tamper(path, "UPDATE archive SET ciphertext_size = ciphertext_size + 1");
  EXPECT_INDEX_ERROR(path, "archive sizes are inconsistent");
}

TEST(IndexHostile, MemberCountLies) {
  TempDir dir;
  std::string path = write_index(dir);
  tamper(path, "UPDATE archive SET member_count = 99");
  EXPECT_INDEX_ERROR(path, "counts 99 members");
}

TEST(IndexHostile, TwoArchiveRows) {
  TempDir dir;
  std::string path = write_index(dir);
  tamper(path, "INSERT INTO archive SELECT * FROM archive");
  EXPECT_INDEX_ERROR(path, "exactly one archive row");
}

TEST(IndexHostile, TrailingIndexWithMembers) {
  TempDir dir;
  std::string path = write_index(dir);
  tamper(path, "UPDATE format SET value = 'trailing' WHERE key = 'kind'");
  EXPECT_INDEX_ERROR(path, "must not describe an archive");
}

TEST(IndexHostile, BadRecordSize) {
  TempDir dir;
  std::string path = write_index(dir);
  tamper(path, "UPDATE format SET value = '12x' WHERE key = 'record_size'");
  EXPECT_INDEX_ERROR(path, "not a number");
}

}  // namespace
}  // namespace mixtape::format
