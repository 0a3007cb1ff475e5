// The catalog copied into on-tape indexes, and merged back from them.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "engine/catalog/catalog.h"
#include "engine/catalog/internal.h"
#include "tests/catalog/test_util.h"
#include "tests/support/test_support.h"

namespace mixtape::catalog {
namespace {

using namespace testing;

// A fresh index file as the format module makes it: its own tables first.
void make_index_file(const std::string& path) {
  sqlite::Database db(path, sqlite::OpenMode::kReadWriteCreate);
  db.exec("CREATE TABLE format (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
}

std::int64_t count(sqlite::Database& db, const std::string& table) {
  auto s = db.prepare("SELECT count(*) FROM " + table);
  s.step();
  return s.column_int(0);
}

// The catalog copied into an index file of its own (a fresh one, or with
// `since` only what changed); returns the mark of what it holds.
CopyMark copy_to(Catalog& c, const std::string& index,
                 const std::optional<CopyMark>& since = std::nullopt) {
  if (!std::filesystem::exists(index)) make_index_file(index);
  sqlite::Database db(index, sqlite::OpenMode::kReadWrite);
  return c.copy_into(db, since);
}

// A table's columns but `changed` (the local change stamp: two catalogs
// holding the same rows stamp them differently).
std::string columns_of(sqlite::Database& db, const std::string& table) {
  auto dot = table.find('.');
  std::string schema = dot == std::string::npos ? "main" : table.substr(0, dot);
  std::string name = dot == std::string::npos ? table : table.substr(dot + 1);
  auto s = db.prepare("SELECT name FROM pragma_table_info(?1, ?2)");
  s.bind(1, name).bind(2, schema);
  std::string out;
  while (s.step()) {
    if (s.column_text(0) == "changed") continue;
    out += (out.empty() ? "" : ", ") + s.column_text(0);
  }
  return out;
}

// Every row of a table, as text, in primary-key order.
std::string dump(sqlite::Database& db, const std::string& table) {
  auto s = db.prepare("SELECT " + columns_of(db, table) + " FROM " + table + " ORDER BY 1, 2");
  std::string out;
  while (s.step()) {
    for (int i = 0; i < s.column_count(); ++i) {
      out += s.is_null(i) ? "NULL" : to_hex(as_bytes(s.column_text(i)));
      out += '|';
    }
    out += '\n';
  }
  return out;
}

const char* const kMergedTables[] = {"runs",     "run_roots",  "dirs",          "files",
                                     "versions", "gaps",       "tapes",         "archives",
                                     "copies",   "copy_goals", "verifications", "tape_dirs"};

std::string dump_all(Catalog& c) {
  std::string out;
  for (const char* t : kMergedTables) out += std::string(t) + ":\n" + dump(c.database(), t);
  return out;
}

// Adds a run's worth of history under /<tag>: two files (one symlink), a
// version that changes, a tape with an archive holding copies, a goal and
// a verification.
void populate(Catalog& c, const std::string& tag, const std::string& serial) {
  const std::string root = "/" + tag;
  Id r1 = c.begin_run(RunKind::kBackup, {root});
  c.touch_dir(c.ensure_dir(root + "/sub"), Attributes{0750, 1, 2, "u", "g", 3}, r1);
  Id f = make_file(c, root + "/sub/file\nname");
  Id v1 = c.record_version(f, file_version(tag + "1"), r1).id;
  VersionRow link;
  link.kind = VersionKind::kSymlink;
  link.symlink_target = "sub/file";
  Id vl = c.record_version(make_file(c, root + "/link"), link, r1).id;
  c.finish_run(r1);
  Id r2 = c.begin_run(RunKind::kBackup, {root});
  Id v2 = c.record_version(f, file_version(tag + "2"), r2).id;
  auto t = add_tape_with_archive(c, serial, 2, r2);
  add_copy(c, t.archive, v1, 0);
  add_copy(c, t.archive, vl, 1024);
  add_copy(c, t.archive, v2, 4096);
  c.record_verification({0, t.archive, 0, 1234, VerifyResult::kOk, "fine", r2});
  c.set_copy_goal(root + "/sub", 3);
}

// Rows of table `a` missing from `b`, both of the same layout.
std::int64_t rows_missing(sqlite::Database& db, const std::string& a, const std::string& b) {
  return count(db, "(SELECT * FROM " + a + " EXCEPT SELECT * FROM " + b + ")");
}

const char* const kCopiedTables[] = {"config", "runs",     "run_roots", "copy_goals",
                                     "tapes",  "dirs",     "files",     "versions",
                                     "gaps",   "archives", "copies",    "verifications"};

// Every kind of change after populate(c, "photos", "L00001"): new rows,
// versions closed and reopened, a directory gone, tapes and runs updated,
// verifications.
void change_everything(Catalog& c) {
  populate(c, "video", "L00002");
  Id run = c.begin_run(RunKind::kBackup, {"/photos"});
  Id f = *c.file_by_path("/photos/sub/file\nname");
  c.mark_dirty(f, c.previous_run(run));
  c.mark_dir_absent(c.dir_by_path("/video/sub")->id, c.previous_run(run));
  c.set_tape_state(c.tape_by_serial("L00001")->id, TapeState::kFull);
  Id link = *c.file_by_path("/photos/link");
  c.mark_absent(link, c.previous_run(run));
  c.finish_run(run);
  Id back = c.begin_run(RunKind::kBackup, {"/photos"});
  VersionRow same_link;
  same_link.kind = VersionKind::kSymlink;
  same_link.symlink_target = "sub/file";
  c.record_version(link, same_link, back);  // back unchanged: a gap for `run`
}

void change_goals(Catalog& c) {
  c.set_copy_goal("/video", 5);
  c.remove_copy_goal("/photos/sub");
}

// Two index files' catalog_* tables hold the same rows, value for value
// (EXCEPT tells 5 from '5'), and none is empty.
void expect_same_copy(const std::string& expected, const std::string& actual) {
  sqlite::Database db(expected, sqlite::OpenMode::kReadWrite);
  auto attach = db.prepare("ATTACH DATABASE ?1 AS actual");
  attach.bind(1, actual);
  attach.run();
  for (const char* t : kCopiedTables) {
    const std::string table = std::string("catalog_") + t;
    SCOPED_TRACE(table);
    EXPECT_GT(count(db, "main." + table), 0);
    EXPECT_EQ(rows_missing(db, "main." + table, "actual." + table), 0);
    EXPECT_EQ(rows_missing(db, "actual." + table, "main." + table), 0);
  }
}

TEST(CopyInto, AddChangesBringsTheRowsOfAnOpenTransaction) {
  TempDir tmp;
  Catalog c = Catalog::create(tmp.file("c.db"), test_config());
  Id run = c.begin_run(RunKind::kBackup, {"/d"});
  Id v = c.record_version(make_file(c, "/d/f"), file_version("f"), run).id;
  const std::string index = tmp.file("index.db");
  CopyMark mark = copy_to(c, index);
  {
    sqlite::Database db(index, sqlite::OpenMode::kReadWrite);
    auto tx = c.transaction();
    EXPECT_THROW(c.copy_into(db), CatalogError);  // the committed catalog only
    auto t = add_tape_with_archive(c, "L00001", 2, run);
    add_copy(c, t.archive, v);
    c.add_changes_into(db, mark);
    c.add_changes_into(db, mark);  // replaces, never doubles
    // Not committed: the tape write "failed".
  }
  EXPECT_TRUE(c.copies_of(v).empty());

  sqlite::Database db(index, sqlite::OpenMode::kReadOnly);
  EXPECT_EQ(count(db, "catalog_copies"), 1);
  EXPECT_EQ(count(db, "catalog_archives"), 1);
  EXPECT_EQ(count(db, "catalog_tapes"), 1);
  EXPECT_EQ(count(db, "catalog_versions"), 1);
  EXPECT_EQ(count(db, "format"), 0);  // the index's own tables are untouched
  auto s = db.prepare("SELECT value FROM catalog_config WHERE key = 'catalog_id'");
  ASSERT_TRUE(s.step());
  EXPECT_EQ(s.column_text(0), c.catalog_id());
  EXPECT_THROW_MESSAGE(db.prepare("SELECT * FROM catalog_scan_state"), sqlite::SqliteError,
                       "no such table: catalog_scan_state");  // local only
  EXPECT_THROW_MESSAGE(db.prepare("SELECT * FROM catalog_tape_dirs"), sqlite::SqliteError,
                       "no such table: catalog_tape_dirs");  // derived
  EXPECT_THROW_MESSAGE(db.prepare("SELECT copies, goal FROM catalog_versions"), sqlite::SqliteError,
                       "no such column: copies");  // derived
  EXPECT_THROW_MESSAGE(db.prepare("SELECT changed FROM catalog_versions"), sqlite::SqliteError,
                       "no such column: changed");  // local
}

// The property format 2 keeps: a full copy, then each later copy of what
// changed since the one before, applied in order, give the catalog as it
// stands, row for row and value for value (EXCEPT tells 5 from '5').
TEST(CopyInto, ChangesAppliedInOrderGiveTheFullCopy) {
  TempDir tmp;
  Catalog c = Catalog::create(tmp.file("c.db"), test_config());
  populate(c, "photos", "L00001");
  CopyMark m1 = copy_to(c, tmp.file("1.db"));
  change_everything(c);
  CopyMark m2 = copy_to(c, tmp.file("2.db"), m1);
  change_goals(c);
  CopyMark m3 = copy_to(c, tmp.file("3.db"), m2);
  EXPECT_LT(m1.epoch, m2.epoch);
  EXPECT_LT(m2.epoch, m3.epoch);
  copy_to(c, tmp.file("full.db"));

  CatalogChain chain(tmp.file("chain.db"));
  chain.add(tmp.file("1.db"), true);
  chain.add(tmp.file("2.db"), false);
  chain.add(tmp.file("3.db"), false);
  const std::string rebuilt = chain.finish();

  expect_same_copy(tmp.file("full.db"), rebuilt);
  sqlite::Database db(tmp.file("full.db"), sqlite::OpenMode::kReadOnly);
  // The changes are what changed, not the catalog again.
  sqlite::Database third(tmp.file("3.db"), sqlite::OpenMode::kReadOnly);
  EXPECT_EQ(count(third, "catalog_versions"), 0);
  EXPECT_EQ(count(third, "catalog_files"), 0);
  EXPECT_EQ(count(third, "catalog_copy_goals"),
            count(db, "main.catalog_copy_goals"));  // small: whole
  sqlite::Database second(tmp.file("2.db"), sqlite::OpenMode::kReadOnly);
  EXPECT_LT(count(second, "catalog_versions"), count(db, "main.catalog_versions"));
  EXPECT_GT(count(second, "catalog_versions"), 0);
}

// The last full copy on tape, kept and brought up to date by what changed
// (committed, and in an open transaction) is the full copy, twice over.
TEST(CopyInto, AKeptCopyBroughtUpToDateIsTheFullCopy) {
  TempDir tmp;
  Catalog c = Catalog::create(tmp.file("c.db"), test_config());
  populate(c, "photos", "L00001");
  CopyMark held = copy_to(c, tmp.file("kept.db"));
  change_everything(c);
  std::filesystem::copy_file(tmp.file("kept.db"), tmp.file("second.db"));
  {
    sqlite::Database db(tmp.file("second.db"), sqlite::OpenMode::kReadWrite);
    EXPECT_TRUE(internal::holds_copy_tables(db));
    held = c.refresh_copy(db, held);
    auto tx = c.transaction();
    change_goals(c);
    held = c.add_changes_into(db, held);
    tx.commit();
  }
  copy_to(c, tmp.file("full2.db"));
  expect_same_copy(tmp.file("full2.db"), tmp.file("second.db"));

  populate(c, "audio", "L00003");
  c.set_tape_state(c.tape_by_serial("L00002")->id, TapeState::kFull);
  std::filesystem::copy_file(tmp.file("second.db"), tmp.file("third.db"));
  CopyMark third;
  {
    sqlite::Database db(tmp.file("third.db"), sqlite::OpenMode::kReadWrite);
    third = c.refresh_copy(db, held);
  }
  const CopyMark full = copy_to(c, tmp.file("full3.db"));
  expect_same_copy(tmp.file("full3.db"), tmp.file("third.db"));
  EXPECT_EQ(third.files, full.files);
  EXPECT_EQ(third.copies, full.copies);
  EXPECT_EQ(third.archives, full.archives);
  EXPECT_LT(third.epoch, full.epoch);
}

TEST(CopyInto, AFileOfAnotherLayoutIsNotBroughtUpToDate) {
  TempDir tmp;
  Catalog c = Catalog::create(tmp.file("c.db"), test_config());
  populate(c, "photos", "L00001");
  copy_to(c, tmp.file("kept.db"));
  sqlite::Database db(tmp.file("kept.db"), sqlite::OpenMode::kReadWrite);
  EXPECT_TRUE(internal::holds_copy_tables(db));
  db.exec("ALTER TABLE catalog_versions ADD COLUMN later INTEGER");
  EXPECT_FALSE(internal::holds_copy_tables(db));
  db.exec("DROP TABLE catalog_versions");
  EXPECT_FALSE(internal::holds_copy_tables(db));
}

std::vector<std::string> kept_copies(const TempDir& tmp) {
  std::vector<std::string> out;
  std::error_code none;
  for (const auto& e : std::filesystem::directory_iterator(tmp.file("c.db.tapecopy"), none))
    out.push_back(e.path());
  return out;
}

// Kept by the transaction that commits it only: a session killed before its
// commit leaves the catalog naming the copy before, which is still there,
// and an orphan that the next look removes.
TEST(LastTapeCopy, IsKeptByTheCommittingTransactionOnly) {
  TempDir tmp;
  Catalog c = Catalog::create(tmp.file("c.db"), test_config());
  populate(c, "photos", "L00001");
  EXPECT_FALSE(c.last_tape_copy());
  const CopyMark first = copy_to(c, tmp.file("t1.db"));
  EXPECT_THROW_MESSAGE(c.keep_tape_copy(tmp.file("t1.db"), first), CatalogError,
                       "belongs in the transaction");
  {
    auto tx = c.transaction();
    c.keep_tape_copy(tmp.file("t1.db"), first);
    tx.commit();
  }
  EXPECT_FALSE(std::filesystem::exists(tmp.file("t1.db")));  // moved, not copied
  auto last = c.last_tape_copy();
  ASSERT_TRUE(last);
  EXPECT_EQ(last->holds, first);
  EXPECT_EQ(kept_copies(tmp), std::vector<std::string>{last->path});
  struct stat st {};
  ASSERT_EQ(::stat(last->path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);  // what the catalog holds, for its owner only
  ASSERT_EQ(::stat(tmp.file("c.db.tapecopy").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);

  change_everything(c);
  const CopyMark second = copy_to(c, tmp.file("t2.db"));
  {
    auto tx = c.transaction();
    c.keep_tape_copy(tmp.file("t2.db"), second);
    // Not committed: the session was killed.
  }
  EXPECT_EQ(kept_copies(tmp).size(), 2u);
  auto after = c.last_tape_copy();
  ASSERT_TRUE(after);
  EXPECT_EQ(after->path, last->path);
  EXPECT_EQ(after->holds, first);
  EXPECT_EQ(kept_copies(tmp), std::vector<std::string>{last->path});

  // Damaged on disk: not used.
  test_support::write_file(last->path, "not a database at all");
  EXPECT_FALSE(c.last_tape_copy());
}

TEST(CopyInto, NothingNewHoldsOnlyTheSmallTables) {
  TempDir tmp;
  Catalog c = Catalog::create(tmp.file("c.db"), test_config());
  populate(c, "photos", "L00001");
  copy_to(c, tmp.file("i.db"), CopyMark::nothing_new());
  sqlite::Database db(tmp.file("i.db"), sqlite::OpenMode::kReadOnly);
  EXPECT_EQ(count(db, "catalog_tapes"), 1);
  EXPECT_EQ(count(db, "catalog_runs"), 2);
  EXPECT_EQ(count(db, "catalog_versions"), 0);
  EXPECT_EQ(count(db, "catalog_copies"), 0);
}

TEST(CopyInto, StockSqlite3ExplainsTheIndex) {
  TempDir tmp;
  Catalog c = Catalog::create(tmp.file("c.db"), test_config());
  populate(c, "photos", "L00001");
  const std::string index = tmp.file("index with space.db");
  copy_to(c, index);
  auto sqlite3 =
      test_support::run_shell("sqlite3 " + test_support::shell_quote(index) + " .schema");
  ASSERT_EQ(sqlite3.status, 0) << sqlite3.err;
  const std::string& schema = sqlite3.out;
  EXPECT_NE(schema.find("CREATE TABLE catalog_versions ("), std::string::npos) << schema;
  EXPECT_NE(schema.find("catalog_files.id"), std::string::npos);
  EXPECT_NE(schema.find("BLAKE2b-256"), std::string::npos);  // the column comments came along
  EXPECT_NE(schema.find("CREATE TABLE format"), std::string::npos);
  // What a reader rebuilds is left out.
  EXPECT_EQ(schema.find("CREATE INDEX"), std::string::npos);
  EXPECT_EQ(schema.find("UNIQUE"), std::string::npos);
}

TEST(Merge, IntoAnEmptyCatalogAdoptsItAndKeepsIds) {
  TempDir tmp;
  Catalog source = Catalog::create(tmp.file("source.db"), test_config());
  populate(source, "photos", "L00001");
  populate(source, "video", "L00002");
  const std::string index = tmp.file("index.db");
  copy_to(source, index);

  CatalogConfig other = test_config();
  other.recipients = {"age1someoneelse"};
  Catalog target = Catalog::create(tmp.file("target.db"), other);
  MergeStats stats = target.merge_from_index(index);
  EXPECT_TRUE(stats.adopted_catalog_id);
  EXPECT_EQ(stats.runs, 4u);
  EXPECT_EQ(stats.tapes, 2u);
  EXPECT_EQ(stats.versions, 6u);
  EXPECT_EQ(stats.copies, 6u);
  EXPECT_EQ(stats.verifications, 2u);
  EXPECT_EQ(target.catalog_id(), source.catalog_id());
  EXPECT_EQ(target.config().recipients, source.config().recipients);
  // Row for row the same, ids included (inode numbers survive recovery),
  // and the derived columns and tables are rebuilt.
  EXPECT_EQ(dump_all(target), dump_all(source));
}

TEST(Merge, TwiceChangesNothing) {
  TempDir tmp;
  Catalog source = Catalog::create(tmp.file("source.db"), test_config());
  populate(source, "photos", "L00001");
  const std::string index = tmp.file("index.db");
  copy_to(source, index);
  Catalog target = Catalog::create(tmp.file("target.db"), test_config());
  target.merge_from_index(index);
  const std::string before = dump_all(target);
  MergeStats again = target.merge_from_index(index);
  EXPECT_EQ(dump_all(target), before);
  EXPECT_EQ(again.runs + again.tapes + again.dirs + again.files + again.versions + again.archives +
                again.copies + again.verifications,
            0u);
  EXPECT_FALSE(again.adopted_catalog_id);
}

TEST(Merge, TwoTapesOfForkedHistoriesGiveTheUnion) {
  TempDir tmp;
  const std::string a_path = tmp.file("a.db");
  const std::string b_path = tmp.file("b.db");
  {
    Catalog a = Catalog::create(a_path, test_config());
    populate(a, "common", "L00001");
  }
  // The same catalog restored from an older copy on another machine.
  std::filesystem::copy_file(a_path, b_path);
  Catalog a = Catalog::open(a_path);
  Catalog b = Catalog::open(b_path);
  populate(a, "only-a", "L00002");
  populate(b, "only-b", "L00003");
  copy_to(a, tmp.file("a-index.db"));
  copy_to(b, tmp.file("b-index.db"));

  Catalog target = Catalog::create(tmp.file("target.db"), test_config());
  target.merge_from_index(tmp.file("b-index.db"));
  MergeStats second = target.merge_from_index(tmp.file("a-index.db"));
  EXPECT_FALSE(second.adopted_catalog_id);  // same catalog id: no adoption needed
  EXPECT_EQ(second.tapes, 1u);              // L00002; L00001 matched
  EXPECT_EQ(target.tapes().size(), 3u);
  for (const char* path : {"/common/sub/file\nname", "/only-a/link", "/only-b/sub/file\nname"}) {
    auto e = target.resolve(path);
    ASSERT_TRUE(e) << path;
    auto replicas = target.copies_of(e->version.id);
    EXPECT_EQ(replicas.size(), 1u) << path;
  }
  EXPECT_EQ(target.runs().size(), 6u);
  EXPECT_EQ(target.goal_for("/only-a/sub/x"), 3);
  EXPECT_EQ(target.goal_for("/only-b/sub/x"), 3);
  // Merging both again adds nothing.
  const std::string before = dump_all(target);
  target.merge_from_index(tmp.file("a-index.db"));
  target.merge_from_index(tmp.file("b-index.db"));
  EXPECT_EQ(dump_all(target), before);
}

TEST(Merge, ForeignCatalogIsRefusedUnlessForced) {
  TempDir tmp;
  Catalog source = Catalog::create(tmp.file("source.db"), test_config());
  populate(source, "theirs", "L00001");
  const std::string index = tmp.file("index.db");
  copy_to(source, index);

  Catalog target = Catalog::create(tmp.file("target.db"), test_config());
  populate(target, "ours", "L00009");
  const std::string ours = target.catalog_id();
  const std::string before = dump_all(target);
  try {
    target.merge_from_index(index);
    FAIL() << "merged a foreign index";
  } catch (const CatalogError& e) {
    EXPECT_NE(std::string(e.what()).find("belongs to catalog " + source.catalog_id()),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(dump_all(target), before);
  MergeOptions force;
  force.force = true;
  MergeStats stats = target.merge_from_index(index, force);
  EXPECT_EQ(stats.tapes, 1u);
  EXPECT_EQ(target.catalog_id(), ours);
  EXPECT_TRUE(target.resolve("/theirs/link"));
  EXPECT_TRUE(target.resolve("/ours/link"));
  EXPECT_EQ(target.tapes().size(), 2u);
}

// ---------------------------------------------------------------- hostile indexes

class HostileIndex : public ::testing::Test {
 protected:
  void SetUp() override {
    Catalog source = Catalog::create(tmp_.file("source.db"), test_config());
    populate(source, "photos", "L00001");
    copy_to(source, index_);
  }

  // Applies `sql` to the index, merges it into an empty catalog and returns
  // the error (the catalog must be left untouched).
  std::string merge_after(const std::string& sql) {
    {
      sqlite::Database db(index_, sqlite::OpenMode::kReadWrite);
      // The copied tables keep the catalog's CHECK constraints; an attacker
      // would not.
      db.exec("PRAGMA ignore_check_constraints = ON");
      db.exec(sql);
    }
    Catalog target = Catalog::create(tmp_.file("target.db"), test_config());
    const std::string id = target.catalog_id();
    std::string error = "(merged)";
    try {
      target.merge_from_index(index_);
    } catch (const CatalogError& e) {
      error = e.what();
      // All or nothing: a refused index leaves no trace.
      EXPECT_EQ(target.catalog_id(), id);
      EXPECT_TRUE(target.runs().empty());
      EXPECT_TRUE(target.tapes().empty());
    }
    return error;
  }

  TempDir tmp_;
  std::string index_ = tmp_.file("index.db");
};

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << (haystack)

TEST_F(HostileIndex, WrongColumnType) {
  EXPECT_CONTAINS(merge_after("UPDATE catalog_versions SET size = 'big' WHERE id = 2"),
                  "catalog_versions row 2, column size: not an integer");
}

TEST_F(HostileIndex, ShortHash) {
  EXPECT_CONTAINS(merge_after("UPDATE catalog_versions SET hash = x'00'"), "not a 32-byte hash");
}

TEST_F(HostileIndex, NegativeSize) {
  EXPECT_CONTAINS(merge_after("UPDATE catalog_versions SET size = -5"), "out of range");
}

TEST_F(HostileIndex, PathEscapingUpwards) {
  EXPECT_CONTAINS(merge_after("UPDATE catalog_dirs SET path = '/photos/../../etc' "
                              "WHERE path = '/photos'"),
                  "not an absolute normalised path");
}

TEST_F(HostileIndex, NameWithSlash) {
  EXPECT_CONTAINS(merge_after("UPDATE catalog_files SET name = '../../x' "
                              "WHERE id = (SELECT min(id) FROM catalog_files)"),
                  "is not a valid file name");
}

TEST_F(HostileIndex, DanglingReference) {
  EXPECT_CONTAINS(merge_after("UPDATE catalog_files SET dir = 9999"),
                  "refers to a row the index does not have");
}

TEST_F(HostileIndex, DuplicateIds) {
  EXPECT_CONTAINS(merge_after("CREATE TABLE t AS SELECT * FROM catalog_files; "
                              "DROP TABLE catalog_files; "
                              "CREATE TABLE catalog_files (id INTEGER, dir INTEGER, name TEXT); "
                              "INSERT INTO catalog_files SELECT * FROM t; "
                              "INSERT INTO catalog_files SELECT * FROM t;"),
                  "duplicate or unordered id");
}

TEST_F(HostileIndex, ViewInsteadOfTable) {
  EXPECT_CONTAINS(merge_after("ALTER TABLE catalog_tapes RENAME TO real_tapes; "
                              "CREATE VIEW catalog_tapes AS SELECT * FROM real_tapes;"),
                  "not a usable mixtape index (catalog_tapes)");
}

TEST_F(HostileIndex, MissingColumn) {
  EXPECT_CONTAINS(merge_after("ALTER TABLE catalog_copies DROP COLUMN data_offset"),
                  "not a usable mixtape index (catalog_copies)");
}

TEST_F(HostileIndex, HugeValue) {
  // 70 MB of text in one cell: over the untrusted connection's length limit.
  EXPECT_CONTAINS(
      merge_after("UPDATE catalog_dirs SET uname = replace(hex(zeroblob(35000000)), '0', 'x') "
                  "WHERE path = '/photos/sub'"),
      "cannot read catalog_dirs");
}

TEST_F(HostileIndex, TriggersNeverRun) {
  // Triggers on every table the merge reads, for every kind of write, each
  // leaving a mark in a table of its own when it runs.
  const std::string clean = tmp_.file("clean.db");
  std::filesystem::copy_file(index_, clean);
  {
    sqlite::Database db(index_, sqlite::OpenMode::kReadWrite);
    db.exec("CREATE TABLE fired (what TEXT)");
    for (const char* table : kCopiedTables) {
      for (const char* event : {"INSERT", "UPDATE", "DELETE"}) {
        const std::string name = std::string("catalog_") + table;
        db.exec("CREATE TRIGGER mark_" + std::string(table) + "_" + event + " AFTER " + event +
                " ON " + name + " BEGIN INSERT INTO fired VALUES ('" + name + " " + event +
                "'); END");
      }
    }
  }
  // They are live: a write through an ordinary connection (to a copy of
  // the index) runs them.
  const std::string written = tmp_.file("written.db");
  std::filesystem::copy_file(index_, written);
  {
    sqlite::Database db(written, sqlite::OpenMode::kReadWrite);
    db.exec("UPDATE catalog_config SET value = value; DELETE FROM catalog_verifications");
    EXPECT_GE(count(db, "fired"), 2) << "the triggers never run, so this test proves nothing";
  }
  // The merge runs none: the index is the same byte for byte, no mark,
  // and the catalog is what the same index without triggers makes.
  const std::string before = test_support::read_file(index_);
  Catalog target = Catalog::create(tmp_.file("target.db"), test_config());
  target.merge_from_index(index_);
  Catalog expected = Catalog::create(tmp_.file("expected.db"), test_config());
  expected.merge_from_index(clean);
  EXPECT_EQ(dump_all(target), dump_all(expected));
  EXPECT_TRUE(test_support::read_file(index_) == before) << "the merge changed the index";
  sqlite::Database db(index_, sqlite::OpenMode::kReadOnly);
  EXPECT_EQ(count(db, "fired"), 0);
}

TEST_F(HostileIndex, NewerSchema) {
  EXPECT_CONTAINS(
      merge_after("UPDATE catalog_config SET value = '999' WHERE key = 'schema_version'"),
      "newer than this mixtape");
}

TEST_F(HostileIndex, NoCatalogId) {
  EXPECT_CONTAINS(merge_after("DELETE FROM catalog_config WHERE key = 'catalog_id'"),
                  "not a mixtape index");
}

TEST_F(HostileIndex, NotADatabase) {
  std::ofstream(index_, std::ios::trunc) << std::string(8192, '\x42');
  Catalog target = Catalog::create(tmp_.file("target.db"), test_config());
  try {
    target.merge_from_index(index_);
    FAIL();
  } catch (const CatalogError& e) {
    EXPECT_CONTAINS(e.what(), "cannot be read as a database");
  }
}

}  // namespace
}  // namespace mixtape::catalog
