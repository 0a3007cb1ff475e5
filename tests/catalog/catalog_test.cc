// Catalog basics: creation and migrations, paths, runs, scan state,
// versions and copy goals.
#include "engine/catalog/catalog.h"

#include <gtest/gtest.h>

#include <fstream>

#include "engine/catalog/internal.h"
#include "tests/catalog/test_util.h"
#include "tests/support/test_support.h"

namespace mixtape::catalog {
namespace {

using testing::file_version;
using testing::make_file;
using testing::NewCatalogTest;
using testing::TempDir;
using testing::test_config;

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// ---------------------------------------------------------------- create, open

TEST(CatalogOpen, CreateThenReopenKeepsIdentityAndConfig) {
  TempDir dir;
  const std::string path = dir.file("catalog.db");
  std::string id;
  {
    Catalog c = Catalog::create(path, test_config());
    id = c.catalog_id();
    EXPECT_EQ(id.size(), 32u);
    EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos);
    EXPECT_EQ(c.default_copy_goal(), 2);
  }
  Catalog c = Catalog::open(path);
  EXPECT_EQ(c.catalog_id(), id);
  CatalogConfig config = c.config();
  EXPECT_EQ(config.encryption, Encryption::kRecipients);
  EXPECT_EQ(config.recipients, test_config().recipients);
  EXPECT_EQ(config.record_size, 512u * 1024);
  EXPECT_EQ(config.default_copies, 2);
  EXPECT_EQ(c.get_config("schema_version"), std::to_string(Catalog::schema_version()));

  Catalog ro = Catalog::open_read_only(path);
  EXPECT_EQ(ro.catalog_id(), id);
  EXPECT_THROW_MESSAGE(ro.ensure_dir("/x"), sqlite::SqliteError,
                       "attempt to write a readonly database");
}

TEST(CatalogOpen, TwoCatalogsGetDifferentIds) {
  TempDir dir;
  EXPECT_NE(Catalog::create(dir.file("a.db"), test_config()).catalog_id(),
            Catalog::create(dir.file("b.db"), test_config()).catalog_id());
}

TEST(CatalogOpen, CreateRefusesAnExistingFile) {
  TempDir dir;
  Catalog::create(dir.file("c.db"), test_config());
  EXPECT_NE(
      error_of([&] { Catalog::create(dir.file("c.db"), test_config()); }).find("already exists"),
      std::string::npos);
}

TEST(CatalogOpen, CreateRefusesBadSettingsAndLeavesNoFile) {
  TempDir dir;
  CatalogConfig c = test_config();
  c.default_copies = 0;
  EXPECT_THROW(Catalog::create(dir.file("c.db"), c), CatalogError);
  c = test_config();
  c.recipients.clear();
  EXPECT_THROW(Catalog::create(dir.file("c.db"), c), CatalogError);
  c = test_config();
  c.record_size = 1000;
  EXPECT_THROW(Catalog::create(dir.file("c.db"), c), CatalogError);
  // Larger than every drive and HBA takes (docs/TAPE.md, "Record size").
  c.record_size = (1 << 20) + 512;
  EXPECT_NE(error_of([&] { Catalog::create(dir.file("c.db"), c); }).find("from 512 to 1048576"),
            std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir.file("c.db")));
  c.record_size = 1 << 20;
  EXPECT_EQ(Catalog::create(dir.file("c.db"), c).config().record_size, 1u << 20);
}

TEST(CatalogOpen, MissingCatalogGivesAClearError) {
  TempDir dir;
  EXPECT_NE(error_of([&] { Catalog::open(dir.file("none.db")); }).find("no catalog at"),
            std::string::npos);
  EXPECT_THROW(Catalog::open_read_only(dir.file("none.db")), CatalogError);
}

TEST(CatalogOpen, RefusesFilesThatAreNotCatalogs) {
  TempDir dir;
  std::ofstream(dir.file("text")) << "this is not a database at all, just some text......";
  EXPECT_NE(error_of([&] { Catalog::open(dir.file("text")); }).find("not a mixtape catalog"),
            std::string::npos);
  {
    sqlite::Database other(dir.file("other.db"), sqlite::OpenMode::kReadWriteCreate);
    other.exec("CREATE TABLE t (x)");
  }
  EXPECT_NE(error_of([&] { Catalog::open(dir.file("other.db")); }).find("not a mixtape catalog"),
            std::string::npos);
  std::ofstream(dir.file("empty"));
  EXPECT_THROW(Catalog::open(dir.file("empty")), CatalogError);
}

TEST(CatalogOpen, NewerSchemaIsRefusedWithTheVersions) {
  TempDir dir;
  const std::string path = dir.file("c.db");
  Catalog::create(path, test_config());
  const int newer = Catalog::schema_version() + 1;
  {
    sqlite::Database db(path, sqlite::OpenMode::kReadWrite);
    db.exec("PRAGMA user_version = " + std::to_string(newer));
  }
  const std::string expected = "catalog " + path + " has schema version " + std::to_string(newer) +
                               ", newer than this mixtape (" +
                               std::to_string(Catalog::schema_version()) + "); upgrade mixtape";
  EXPECT_EQ(error_of([&] { Catalog::open(path); }), expected);
  EXPECT_EQ(error_of([&] { Catalog::open_read_only(path); }), expected);
}

TEST(CatalogOpen, ReopeningIsIdempotent) {
  TempDir dir;
  const std::string path = dir.file("c.db");
  Catalog::create(path, test_config());
  for (int i = 0; i < 3; ++i) {
    Catalog c = Catalog::open(path);
    sqlite::Database& db = c.database();
    EXPECT_EQ(internal::user_version(db), Catalog::schema_version());
    auto s = db.prepare("SELECT count(*) FROM dirs");
    s.step();
    EXPECT_EQ(s.column_int(0), 1);  // just "/", not inserted again
  }
}

TEST(Migrations, OlderDatabaseIsUpgradedStepByStep) {
  TempDir dir;
  const std::string path = dir.file("m.db");
  const internal::Migration v1[] = {{"one", "CREATE TABLE a (x);"}};
  const internal::Migration v2[] = {
      {"one", "CREATE TABLE a (x);"},
      {"two", "ALTER TABLE a ADD COLUMN y; INSERT INTO a VALUES (1, 2);"}};
  sqlite::Database db(path, sqlite::OpenMode::kReadWriteCreate);
  internal::migrate(db, v1, path);
  EXPECT_EQ(internal::user_version(db), 1);
  internal::migrate(db, v2, path);
  EXPECT_EQ(internal::user_version(db), 2);
  internal::migrate(db, v2, path);  // nothing left to apply
  auto s = db.prepare("SELECT count(*), sum(y) FROM a");
  ASSERT_TRUE(s.step());
  EXPECT_EQ(s.column_int(0), 1);
  EXPECT_EQ(s.column_int(1), 2);
  s.reset();
  EXPECT_THROW(internal::migrate(db, v1, path), CatalogError);  // v2 is newer than v1 knows
}

TEST(Migrations, AFailingStepLeavesTheDatabaseAsItWas) {
  TempDir dir;
  const std::string path = dir.file("m.db");
  const internal::Migration steps[] = {{"one", "CREATE TABLE a (x);"},
                                       {"broken", "CREATE TABLE b (y); SELECT * FROM nowhere;"}};
  sqlite::Database db(path, sqlite::OpenMode::kReadWriteCreate);
  EXPECT_NE(error_of([&] { internal::migrate(db, steps, path); }).find("migration 2 (broken)"),
            std::string::npos);
  EXPECT_EQ(internal::user_version(db), 0);
  auto s = db.prepare("SELECT count(*) FROM sqlite_schema");
  s.step();
  EXPECT_EQ(s.column_int(0), 0);
}

// ---------------------------------------------------------------- paths

TEST(Paths, ValidationRules) {
  using internal::is_valid_path;
  EXPECT_TRUE(is_valid_path("/"));
  EXPECT_TRUE(is_valid_path("/a/b.c"));
  EXPECT_TRUE(is_valid_path("/a/...x/..y"));
  EXPECT_FALSE(is_valid_path(""));
  EXPECT_FALSE(is_valid_path("a/b"));
  EXPECT_FALSE(is_valid_path("/a/"));
  EXPECT_FALSE(is_valid_path("//a"));
  EXPECT_FALSE(is_valid_path("/a//b"));
  EXPECT_FALSE(is_valid_path("/a/./b"));
  EXPECT_FALSE(is_valid_path("/a/../b"));
  EXPECT_FALSE(is_valid_path(std::string("/a\0b", 4)));
  EXPECT_TRUE(internal::is_under("/a/b", "/a"));
  EXPECT_TRUE(internal::is_under("/a", "/a"));
  EXPECT_TRUE(internal::is_under("/a", "/"));
  EXPECT_FALSE(internal::is_under("/ab", "/a"));
  EXPECT_FALSE(internal::is_under("/a", "/a/b"));
}

TEST(Paths, OddBytesRoundTrip) {
  TempDir dir;
  Catalog c = Catalog::create(dir.file("c.db"), test_config());
  Id run = c.begin_run(RunKind::kBackup, {"/"});
  const std::string long_name(250, 'x');
  std::string long_dir;
  while (long_dir.size() < 3800) long_dir += "/" + long_name;
  const std::vector<std::string> paths = {
      "/home/me/new\nline",
      std::string("/home/\xff\xfe latin1 \xe9t\xe9/bad\x80utf8"),
      long_dir + "/" + std::string(200, 'y'),
      "/home/me/tab\there/quote\"and'apostrophe",
  };
  ASSERT_GT(paths[2].size(), 4000u);
  for (const auto& p : paths) {
    Id file = make_file(c, p);
    EXPECT_EQ(c.file_path(file), p);
    EXPECT_EQ(c.file_by_path(p), file);
    auto v = c.record_version(file, file_version(p), run);
    EXPECT_TRUE(v.created);
    auto entry = c.resolve(p);
    ASSERT_TRUE(entry) << p;
    EXPECT_FALSE(entry->is_dir);
    EXPECT_EQ(entry->version.id, v.id);
    std::string parent = p.substr(0, p.rfind('/'));
    auto d = c.dir_by_path(parent);
    ASSERT_TRUE(d);
    EXPECT_EQ(d->path, parent);
  }
}

TEST(Paths, InvalidPathsAndNamesAreRefused) {
  TempDir dir;
  Catalog c = Catalog::create(dir.file("c.db"), test_config());
  EXPECT_THROW(c.ensure_dir("relative/path"), CatalogError);
  EXPECT_THROW(c.ensure_dir("/a/../b"), CatalogError);
  EXPECT_THROW(c.ensure_file(kRootDirId, "a/b"), CatalogError);
  EXPECT_THROW(c.ensure_file(kRootDirId, ".."), CatalogError);
  EXPECT_THROW(c.ensure_file(kRootDirId, ""), CatalogError);
  EXPECT_THROW(c.begin_run(RunKind::kScan, {"/ok", "not/ok"}), CatalogError);
  EXPECT_FALSE(c.resolve("/a//b"));
}

TEST(Namespace, EnsureDirMakesAncestorsOnce) {
  TempDir dir;
  Catalog c = Catalog::create(dir.file("c.db"), test_config());
  Id deep = c.ensure_dir("/a/b/c");
  EXPECT_EQ(c.ensure_dir("/a/b/c"), deep);
  auto b = c.dir_by_path("/a/b");
  ASSERT_TRUE(b);
  EXPECT_EQ(c.dir(deep)->parent, b->id);
  EXPECT_EQ(c.dir(b->parent)->path, "/a");
  EXPECT_EQ(c.dir(c.dir(b->parent)->parent)->id, kRootDirId);
  EXPECT_EQ(c.dir(kRootDirId)->path, "/");
  EXPECT_EQ(c.dir(deep)->first_seen_run, 0);
}

// ---------------------------------------------------------------- runs

class Runs : public NewCatalogTest {};

TEST_F(Runs, BeginFinishAndFindByTime) {
  Id r1 = c.begin_run(RunKind::kScan, {"/b", "/a"});
  Id r2 = c.begin_run(RunKind::kBackup, {"/a"});
  c.finish_run(r1);
  auto runs = c.runs();
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].id, r1);
  EXPECT_EQ(runs[0].kind, RunKind::kScan);
  EXPECT_EQ(runs[0].roots, (std::vector<std::string>{"/a", "/b"}));
  EXPECT_GT(runs[0].finished_at_ns, 0);
  EXPECT_EQ(runs[1].finished_at_ns, 0);
  EXPECT_LT(runs[0].started_at_ns, runs[1].started_at_ns);
  EXPECT_EQ(c.run_at(runs[1].started_at_ns)->id, r2);
  EXPECT_EQ(c.run_at(runs[1].started_at_ns - 1)->id, r1);
  EXPECT_FALSE(c.run_at(runs[0].started_at_ns - 1));
  EXPECT_FALSE(c.run(999));
}

// ---------------------------------------------------------------- versions

class Versions : public NewCatalogTest {};

TEST_F(Versions, SameContentGoesOnChangedContentAdds) {
  Id file = make_file(c, "/data/a.raw");
  Id r1 = c.begin_run(RunKind::kBackup, {"/data"});
  auto v1 = c.record_version(file, file_version("one"), r1);
  EXPECT_TRUE(v1.created);
  Id r2 = c.begin_run(RunKind::kBackup, {"/data"});
  auto again = c.record_version(file, file_version("one"), r2);
  EXPECT_FALSE(again.created);
  EXPECT_EQ(again.id, v1.id);
  EXPECT_EQ(c.version(v1.id)->first_seen_run, r1);
  EXPECT_EQ(c.version(v1.id)->last_seen_run, 0);  // open: still on disk

  Id r3 = c.begin_run(RunKind::kBackup, {"/data"});
  auto v2 = c.record_version(file, file_version("two"), r3);
  EXPECT_TRUE(v2.created);
  // Same bytes, other metadata: a version of its own.
  Id r4 = c.begin_run(RunKind::kBackup, {"/data"});
  auto v3 = c.record_version(file, file_version("two", 2000), r4);
  EXPECT_TRUE(v3.created);
  // Back to the first content: new version (the old one is not the latest).
  Id r5 = c.begin_run(RunKind::kBackup, {"/data"});
  auto v4 = c.record_version(file, file_version("one"), r5);
  EXPECT_TRUE(v4.created);

  auto all = c.versions_of(file);
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[0].id, v1.id);
  EXPECT_EQ(all[1].id, v2.id);
  EXPECT_EQ(all[2].id, v3.id);
  EXPECT_EQ(all[3].id, v4.id);
  EXPECT_EQ(all[0].hash, testing::hash_of("one"));
  EXPECT_EQ(all[0].attrs.mode, 0100644u);  // file type bits added
  EXPECT_EQ(all[0].goal, 2);
  EXPECT_EQ(all[0].copies, 0);
  EXPECT_EQ(c.latest_version(file)->id, v4.id);
  // Each ended with the run before the next was recorded; the newest is open.
  EXPECT_EQ(all[0].last_seen_run, r2);
  EXPECT_EQ(all[1].last_seen_run, r3);
  EXPECT_EQ(all[2].last_seen_run, r4);
  EXPECT_EQ(all[3].last_seen_run, 0);
}

TEST_F(Versions, SymlinksHashTheirTarget) {
  Id file = make_file(c, "/data/link");
  Id run = c.begin_run(RunKind::kBackup, {"/data"});
  VersionRow v;
  v.kind = VersionKind::kSymlink;
  v.symlink_target = "../target\nwith newline";
  v.attrs.mode = 0777;
  auto id = c.record_version(file, v, run).id;
  auto row = c.version(id);
  EXPECT_EQ(row->kind, VersionKind::kSymlink);
  EXPECT_EQ(row->symlink_target, v.symlink_target);
  EXPECT_EQ(row->size, v.symlink_target.size());
  EXPECT_EQ(row->hash, testing::hash_of(v.symlink_target));
  EXPECT_EQ(row->attrs.mode, 0120777u);
  EXPECT_FALSE(c.record_version(file, v, run).created);

  VersionRow bad = file_version("x");
  bad.attrs.mode = 0120644;  // a symlink mode on a regular file
  EXPECT_THROW(c.record_version(file, bad, run), CatalogError);
  VersionRow no_target;
  no_target.kind = VersionKind::kSymlink;
  EXPECT_THROW(c.record_version(file, no_target, run), CatalogError);
}

TEST_F(Versions, ReturningFileLeavesAGapForRunsThatMissedIt) {
  Id file = make_file(c, "/data/a");
  Id r1 = c.begin_run(RunKind::kBackup, {"/data"});
  Id v = c.record_version(file, file_version("a"), r1).id;
  Id r2 = c.begin_run(RunKind::kBackup, {"/other"});  // did not cover /data
  Id r3 = c.begin_run(RunKind::kBackup, {"/"});       // covered it, file was gone
  c.mark_absent(file, c.previous_run(r3));
  EXPECT_EQ(c.version(v)->last_seen_run, r2);
  Id r4 = c.begin_run(RunKind::kBackup, {"/data"});
  EXPECT_EQ(c.record_version(file, file_version("a"), r4).id, v);
  EXPECT_EQ(c.version(v)->last_seen_run, 0);  // back, and open again
  EXPECT_TRUE(c.resolve("/data/a", View::snapshot(r1)));
  EXPECT_FALSE(c.resolve("/data/a", View::snapshot(r2)));  // outside that run's roots
  EXPECT_FALSE(c.resolve("/data/a", View::snapshot(r3)));  // the gap
  EXPECT_TRUE(c.resolve("/data/a", View::snapshot(r4)));
}

// ---------------------------------------------------------------- scan state

ScanState state(std::uint64_t size, bool dirty) {
  ScanState s;
  s.identity.size = size;
  s.identity.mtime_ns = 5;
  s.identity.ctime_ns = 6;
  s.identity.dev = 0xffffffffffffffffull;  // survives the signed column
  s.identity.ino = 42;
  s.dirty = dirty;
  return s;
}

TEST(Scan, StatesDirtyListAndOpenVersions) {
  TempDir dir;
  Catalog c = Catalog::create(dir.file("c.db"), test_config());
  Id r1 = c.begin_run(RunKind::kBackup, {"/d"});
  Id d = c.ensure_dir("/d");
  c.touch_dir(d, Attributes{0755, 1, 2, "u", "g", 77}, r1);
  EXPECT_EQ(c.dir(d)->attrs.mode, 040755u);
  EXPECT_EQ(c.dir(d)->first_seen_run, r1);
  EXPECT_EQ(c.dir(d)->last_seen_run, 0);  // open: still there
  Id b = c.ensure_file(d, "b");
  Id a = c.ensure_file(d, "a");
  Id sub = c.ensure_file(c.ensure_dir("/d/sub"), "z");
  Id sibling = c.ensure_file(c.ensure_dir("/d-x"), "y");  // sorts between "/d" and "/d/sub"
  c.touch_dir(c.ensure_dir("/d/sub"), Attributes{0755, 1, 2, "u", "g", 77}, r1);
  c.set_scan_state(b, state(1, true));
  c.set_scan_state(a, state(2, true));
  c.set_scan_state(sub, state(3, true));
  c.set_scan_state(sibling, state(4, true));

  auto entries = c.scan_entries(d);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].name, "a");
  EXPECT_EQ(entries[0].state, state(2, true));
  EXPECT_EQ(c.dirty_count(), 4u);

  std::vector<std::string> dirty;
  c.for_each_dirty([&](const FileRef& f) { dirty.push_back(f.path); });
  EXPECT_EQ(dirty, (std::vector<std::string>{"/d/a", "/d/b", "/d-x/y", "/d/sub/z"}));

  // Hashing a: record and clear; the callback may write back.
  {
    auto tx = c.transaction();
    c.for_each_dirty([&](const FileRef& f) {
      if (f.file_id != a) return;
      c.record_version(a, file_version("aa"), r1);
      c.clear_dirty(a);
    });
    tx.commit();
  }
  EXPECT_EQ(c.dirty_count(), 3u);
  EXPECT_EQ(c.latest_version(a)->last_seen_run, 0);  // open

  // The next runs see a unchanged: nothing is written, its version stays open.
  Id r2 = c.begin_run(RunKind::kBackup, {"/d"});
  EXPECT_EQ(c.previous_run(r2), r1);
  EXPECT_EQ(c.previous_run(r1), 0);
  c.record_version(b, file_version("b"), r1);
  // b changed before r2: dirty, and its version ends with the run before.
  c.mark_dirty(b, c.previous_run(r2));
  EXPECT_EQ(c.latest_version(b)->last_seen_run, r1);
  Id r3 = c.begin_run(RunKind::kBackup, {"/d"});
  EXPECT_EQ(c.latest_version(a)->last_seen_run, 0);
  // Its new content reopens nothing: a new open version.
  auto second = c.record_version(b, file_version("b2"), r3);
  EXPECT_TRUE(second.created);
  EXPECT_EQ(c.latest_version(b)->last_seen_run, 0);
  EXPECT_EQ(c.versions_of(b).front().last_seen_run, r1);

  c.mark_absent(b, r3);
  EXPECT_FALSE(c.scan_entries(d)[1].state);
  EXPECT_EQ(c.latest_version(b)->last_seen_run, r3);
  c.mark_dir_absent(d, r3);
  EXPECT_FALSE(c.scan_entries(d)[0].state);
  EXPECT_EQ(c.latest_version(a)->last_seen_run, r3);
  EXPECT_EQ(c.dir(d)->last_seen_run, r3);
  EXPECT_EQ(c.dir_by_path("/d/sub")->last_seen_run, r3);
  EXPECT_EQ(c.dir_by_path("/d-x")->last_seen_run, 0);  // a sibling: untouched (never seen)
  EXPECT_EQ(c.dirty_count(), 1u);  // only /d-x/y is left: a sibling, not below /d
}

TEST(Scan, AnUnchangedDirectoryIsNotWritten) {
  TempDir dir;
  Catalog c = Catalog::create(dir.file("c.db"), test_config());
  Id r1 = c.begin_run(RunKind::kBackup, {"/d"});
  Id d = c.ensure_dir("/d");
  const Attributes attrs{0755, 1, 2, "u", "g", 77};
  c.touch_dir(d, attrs, r1);
  Id r2 = c.begin_run(RunKind::kBackup, {"/d"});
  c.touch_dir(d, attrs, r2);
  EXPECT_EQ(c.database().changes(), 0);
  EXPECT_EQ(c.dir(d)->first_seen_run, r1);
  EXPECT_EQ(c.dir(d)->last_seen_run, 0);
  c.touch_dir(d, Attributes{0700, 1, 2, "u", "g", 78}, r2);
  EXPECT_EQ(c.database().changes(), 1);
  EXPECT_EQ(c.dir(d)->attrs.mode, 040700u);
  // Gone and back: reopened.
  c.mark_dir_absent(d, r2);
  EXPECT_EQ(c.dir(d)->last_seen_run, r2);
  Id r3 = c.begin_run(RunKind::kBackup, {"/d"});
  c.touch_dir(d, Attributes{0700, 1, 2, "u", "g", 78}, r3);
  EXPECT_EQ(c.dir(d)->last_seen_run, 0);
}

// ---------------------------------------------------------------- copy goals

class CopyGoals : public NewCatalogTest {};

TEST_F(CopyGoals, LongestPrefixWinsAndVersionsFollow) {
  Id run = c.begin_run(RunKind::kBackup, {"/"});
  auto record = [&](const char* path) {
    return c.record_version(make_file(c, path), file_version(path), run).id;
  };
  Id deep = record("/a/b/c.raw");
  Id in_a = record("/a/x");
  Id sibling = record("/a-b/x");
  Id prefix_alike = record("/ab/x");
  Id file_goal = record("/a/only-me");

  c.set_copy_goal("/a", 3);
  c.set_copy_goal("/a/b", 1);
  c.set_copy_goal("/a/only-me", 4);
  EXPECT_EQ(c.goal_for("/a/b/c.raw"), 1);
  EXPECT_EQ(c.goal_for("/a/x"), 3);
  EXPECT_EQ(c.goal_for("/a"), 3);
  EXPECT_EQ(c.goal_for("/a-b/x"), 2);
  EXPECT_EQ(c.goal_for("/ab/x"), 2);
  EXPECT_EQ(c.goal_for("/elsewhere"), 2);
  EXPECT_EQ(c.version(deep)->goal, 1);
  EXPECT_EQ(c.version(in_a)->goal, 3);
  EXPECT_EQ(c.version(sibling)->goal, 2);
  EXPECT_EQ(c.version(prefix_alike)->goal, 2);
  EXPECT_EQ(c.version(file_goal)->goal, 4);

  c.remove_copy_goal("/a");
  EXPECT_EQ(c.version(in_a)->goal, 2);
  EXPECT_EQ(c.version(deep)->goal, 1);  // its own prefix still applies
  c.set_copy_goal("/", 5);
  EXPECT_EQ(c.default_copy_goal(), 5);
  EXPECT_EQ(c.version(sibling)->goal, 5);
  EXPECT_EQ(c.version(deep)->goal, 1);
  EXPECT_EQ(c.version(file_goal)->goal, 4);
  EXPECT_THROW(c.remove_copy_goal("/"), CatalogError);
  EXPECT_THROW(c.set_copy_goal("/a", 0), CatalogError);
  auto goals = c.copy_goals();
  ASSERT_EQ(goals.size(), 3u);
  EXPECT_EQ(goals[0].prefix, "/");
  EXPECT_EQ(goals[1].prefix, "/a/b");
}

// ---------------------------------------------------------------- transactions, connections

TEST(Transactions, UncommittedWritesAreRolledBack) {
  TempDir dir;
  Catalog c = Catalog::create(dir.file("c.db"), test_config());
  {
    auto tx = c.transaction();
    c.ensure_dir("/gone/too");  // nested scope inside the transaction
  }
  EXPECT_FALSE(c.dir_by_path("/gone"));
  {
    auto tx = c.transaction();
    c.ensure_dir("/kept");
    tx.commit();
  }
  EXPECT_TRUE(c.dir_by_path("/kept"));
}

TEST(Transactions, OtherConnectionsSeeOnlyCommittedRows) {
  TempDir dir;
  const std::string path = dir.file("c.db");
  Catalog writer = Catalog::create(path, test_config());
  Catalog reader = Catalog::open_read_only(path);
  auto tx = writer.transaction();
  writer.ensure_dir("/pending");
  EXPECT_TRUE(writer.dir_by_path("/pending"));
  EXPECT_FALSE(reader.dir_by_path("/pending"));
  tx.commit();
  EXPECT_TRUE(reader.dir_by_path("/pending"));
}

TEST(Transactions, CatalogsCanBeMoved) {
  TempDir dir;
  Catalog a = Catalog::create(dir.file("c.db"), test_config());
  Id d = a.ensure_dir("/x");
  Catalog b = std::move(a);
  EXPECT_EQ(b.ensure_dir("/x"), d);  // cached statements still point at the connection
  EXPECT_EQ(b.dir(d)->path, "/x");
}

}  // namespace
}  // namespace mixtape::catalog
