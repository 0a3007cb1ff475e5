// Schema 3: what changed between runs (diff), files by name (find), and
// the operator's notes (locations, retirements, run totals) on tape and
// back.
#include "tests/catalog/test_util.h"

namespace mixtape::catalog {
namespace {

using namespace testing;

// "added /d/x" for each change, in order.
std::vector<std::string> described(const std::vector<Catalog::SnapshotChange>& changes) {
  std::vector<std::string> out;
  for (const auto& c : changes)
    out.push_back(std::string(!c.before ? "added " : !c.after ? "removed " : "changed ") + c.path);
  return out;
}

using Lines = std::vector<std::string>;

TEST(CatalogHistory, ChangesBetweenRunsAreByContentAndSeeGaps) {
  TempDir tmp;
  Catalog c = Catalog::create(tmp.file("c.db"), test_config());
  const Id keep = make_file(c, "/d/keep");
  const Id edit = make_file(c, "/d/edit");
  const Id gone = make_file(c, "/d/gone");
  const Id touch = make_file(c, "/d/touch");
  const Id away = make_file(c, "/d/away");  // absent from r2, back unchanged in r3
  const Id r1 = c.begin_run(RunKind::kBackup, {"/d"});
  for (Id f : {keep, edit, gone, touch, away}) c.record_version(f, file_version("one"), r1);
  const Id r2 = c.begin_run(RunKind::kBackup, {"/d"});
  c.record_version(edit, file_version("two"), r2);
  c.record_version(touch, file_version("one", 5000), r2);  // mtime only
  c.mark_absent(gone, r1);
  c.mark_absent(away, r1);
  const Id added = make_file(c, "/d/sub/added");
  c.record_version(added, file_version("new"), r2);
  const Id r3 = c.begin_run(RunKind::kBackup, {"/d"});
  c.record_version(away, file_version("one"), r3);  // the same content: a gap at r2
  c.record_version(edit, file_version("three"), r3);

  EXPECT_EQ(described(c.changes_between(r1, r2)),
            (Lines{"removed /d/away", "changed /d/edit", "removed /d/gone", "added /d/sub/added"}));
  EXPECT_EQ(described(c.changes_between(r2, r3)), (Lines{"added /d/away", "changed /d/edit"}));
  EXPECT_EQ(described(c.changes_between(r1, r3)),
            (Lines{"changed /d/edit", "removed /d/gone", "added /d/sub/added"}));
  // Backwards: the same files, the other way round.
  EXPECT_EQ(described(c.changes_between(r3, r1)),
            (Lines{"changed /d/edit", "added /d/gone", "removed /d/sub/added"}));
  EXPECT_TRUE(c.changes_between(r2, r2).empty());
  const auto change = c.changes_between(r1, r2).at(1);
  EXPECT_EQ(change.before->hash, testing::hash_of("one"));
  EXPECT_EQ(change.after->hash, testing::hash_of("two"));
  EXPECT_EQ(c.version_in_snapshot(away, r2), std::nullopt);
  EXPECT_EQ(c.version_in_snapshot(away, r3)->hash, testing::hash_of("one"));
  EXPECT_THROW(c.changes_between(r1, 99), CatalogError);
}

TEST(CatalogHistory, RunsOfDifferentRootsDifferByWhatOnlyOneCovered) {
  TempDir tmp;
  Catalog c = Catalog::create(tmp.file("c.db"), test_config());
  const Attributes dir{0755, 0, 0, "", "", 0};
  const Id r1 = c.begin_run(RunKind::kBackup, {"/a"});
  c.touch_dir(c.ensure_dir("/a"), dir, r1);
  c.touch_dir(c.ensure_dir("/a/x"), dir, r1);
  c.record_version(make_file(c, "/a/x/1"), file_version("1"), r1);
  c.record_version(make_file(c, "/a/2"), file_version("2"), r1);
  const Id r2 = c.begin_run(RunKind::kBackup, {"/a/x", "/b"});
  c.touch_dir(c.ensure_dir("/b"), dir, r2);
  c.record_version(make_file(c, "/b/3"), file_version("3"), r2);
  // /a/x/1 is in both; /a/2 only in r1's scope; /b/3 only in r2's.
  EXPECT_EQ(described(c.changes_between(r1, r2)), (Lines{"removed /a/2", "added /b/3"}));
}

TEST(CatalogHistory, FilesByNameUseTheLiteralBeginningOfThePattern) {
  TempDir tmp;
  Catalog c = Catalog::create(tmp.file("c.db"), test_config());
  for (const char* path : {"/p/IMG_0001.raw", "/p/IMG_0002.jpg", "/q/IMG_0001.raw", "/p/notes.txt",
                           "/p/\xff\xff"
                           "z",
                           "/p/.hidden.raw", "/p/IMG_1.raw"})
    make_file(c, path);
  auto paths = [&](const char* pattern) {
    Lines out;
    for (const auto& [id, path] : c.files_named(pattern)) out.push_back(path);
    return out;
  };
  EXPECT_EQ(paths("IMG_*.raw"), (Lines{"/p/IMG_0001.raw", "/p/IMG_1.raw", "/q/IMG_0001.raw"}));
  EXPECT_EQ(paths("IMG_000?.*"), (Lines{"/p/IMG_0001.raw", "/p/IMG_0002.jpg", "/q/IMG_0001.raw"}));
  EXPECT_EQ(paths("*.raw"),
            (Lines{"/p/.hidden.raw", "/p/IMG_0001.raw", "/p/IMG_1.raw", "/q/IMG_0001.raw"}));
  EXPECT_EQ(paths("\xff*"), (Lines{"/p/\xff\xff"
                                   "z"}));
  EXPECT_EQ(paths("notes.txt"), (Lines{"/p/notes.txt"}));
  EXPECT_TRUE(paths("nothing*").empty());
  EXPECT_THROW(c.files_named("p/notes.txt"), CatalogError);
  EXPECT_THROW(c.files_named(""), CatalogError);
}

TEST(CatalogHistory, NotesAndRunTotalsGoToTapeAndBack) {
  TempDir tmp;
  Catalog source = Catalog::create(tmp.file("source.db"), test_config());
  const Id run = source.begin_run(RunKind::kBackup, {"/d"});
  const Id f = make_file(source, "/d/f");
  const Id v = source.record_version(f, file_version("f"), run).id;
  source.finish_run(run);
  source.set_run_totals(run, 12, 3456);
  auto one = add_tape_with_archive(source, "L00001", 2, run);
  auto two = add_tape_with_archive(source, "L00002", 2, run);
  for (Id archive : {one.archive, two.archive}) {
    CopyRow copy;
    copy.archive_id = archive;
    copy.version_id = v;
    copy.header_offset = 0;
    copy.data_offset = 512;
    source.add_copy(copy);
  }
  EXPECT_EQ(source.version(v)->copies, 2);
  source.set_tape_location(one.tape, "offsite: bank box 12");
  source.retire_tape(two.tape, "lost");
  EXPECT_EQ(source.version(v)->copies, 1) << "a retired tape's copy no longer counts";
  EXPECT_EQ(source.below_goal(), (std::pair<std::uint64_t, std::uint64_t>{1, 1}));
  EXPECT_THROW(source.retire_tape(two.tape, "worn"), CatalogError);
  EXPECT_THROW(source.retire_tape(one.tape, "misplaced"), CatalogError);
  EXPECT_THROW(source.set_tape_location(one.tape, "two\nlines"), CatalogError);

  const std::string index = tmp.file("index.db");
  {
    sqlite::Database db(index, sqlite::OpenMode::kReadWriteCreate);
    db.exec("CREATE TABLE format (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
    source.copy_into(db);
  }
  // Into an empty catalog: all of it.
  Catalog fresh = Catalog::create(tmp.file("fresh.db"), test_config());
  fresh.merge_from_index(index);
  EXPECT_EQ(fresh.tape_by_serial("L00001")->location, "offsite: bank box 12");
  const TapeRow retired = *fresh.tape_by_serial("L00002");
  EXPECT_EQ(retired.state, TapeState::kRetired);
  EXPECT_EQ(retired.retired_reason, "lost");
  EXPECT_EQ(retired.retired_at_ns, source.tape(two.tape)->retired_at_ns);
  EXPECT_EQ(fresh.runs().at(0).files, 12u);
  EXPECT_EQ(fresh.runs().at(0).bytes, 3456u);
  EXPECT_EQ(fresh.version(fresh.versions_of(*fresh.file_by_path("/d/f")).at(0).id)->copies, 1);

  // Into a catalog that has said otherwise since: its own word stays.
  fresh.set_tape_location(fresh.tape_by_serial("L00001")->id, "shelf 2");
  fresh.merge_from_index(index);
  EXPECT_EQ(fresh.tape_by_serial("L00001")->location, "shelf 2");

  // An index written before schema 3 (no such tables) merges as before.
  {
    sqlite::Database db(index, sqlite::OpenMode::kReadWrite);
    db.exec("DROP TABLE catalog_tape_notes; DROP TABLE catalog_run_totals");
  }
  Catalog older = Catalog::create(tmp.file("older.db"), test_config());
  older.merge_from_index(index);
  EXPECT_EQ(older.tape_by_serial("L00001")->location, "");
  EXPECT_EQ(older.tape_by_serial("L00002")->state, TapeState::kRetired);
  EXPECT_EQ(older.tape_by_serial("L00002")->retired_reason, "");
  EXPECT_EQ(older.runs().at(0).files, std::nullopt);
  CatalogChain chain(tmp.file("chain.db"));
  chain.add(index, true);
  older.merge_from_index(chain.finish());
}

}  // namespace
}  // namespace mixtape::catalog
