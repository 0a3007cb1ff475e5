// The mount's views: latest/, snapshots/<run>/, tapes/<serial>/.
#include <gtest/gtest.h>

#include <cstdio>
#include <set>

#include "engine/catalog/catalog.h"
#include "tests/catalog/test_util.h"

namespace mixtape::catalog {
namespace {

using namespace testing;

std::vector<std::string> names(const std::vector<Entry>& entries) {
  std::vector<std::string> out;
  for (const auto& e : entries) out.push_back(e.name);
  return out;
}

std::vector<std::string> all_names(Catalog& c, Id dir, const View& view, std::size_t page) {
  std::vector<std::string> out;
  std::string after;
  for (;;) {
    auto entries = c.list_dir(dir, view, after, page);
    if (entries.empty()) return out;
    EXPECT_LE(entries.size(), page);
    for (const auto& e : entries) out.push_back(e.name);
    after = entries.back().name;
    // A short page is the end (the mount answers the next readdir without
    // a query); reading on must find nothing.
    if (entries.size() < page) {
      EXPECT_TRUE(c.list_dir(dir, view, after, page).empty()) << "after " << after;
      return out;
    }
  }
}

class Views : public NewCatalogTest {};

TEST_F(Views, LatestListsDirsAndFilesByNameInPages) {
  Id run = c.begin_run(RunKind::kBackup, {"/big"});
  Id big = c.ensure_dir("/big");
  std::set<std::string> expected;
  {
    auto tx = c.transaction();
    for (int i = 0; i < 2500; ++i) {
      std::string name = "f" + std::to_string(i * 7919 % 2500);
      c.record_version(c.ensure_file(big, name), file_version(name), run);
      expected.insert(name);
    }
    for (int i = 0; i < 40; ++i) {
      std::string name = "d" + std::to_string(i);
      c.ensure_dir("/big/" + name);
      expected.insert(name);
    }
    c.ensure_file(big, "never-hashed");  // no version: not in latest/
    tx.commit();
  }
  const std::vector<std::string> want(expected.begin(), expected.end());
  EXPECT_EQ(all_names(c, big, View::latest(), 100), want);
  EXPECT_EQ(all_names(c, big, View::latest(), 7), want);
  EXPECT_EQ(all_names(c, big, View::latest(), 5000), want);
  auto first = c.list_dir(big, View::latest(), "", 3);
  ASSERT_EQ(first.size(), 3u);
  EXPECT_TRUE(first[0].is_dir);
  EXPECT_EQ(first[0].name, "d0");
  auto file = c.lookup(big, "f17", View::latest());
  ASSERT_TRUE(file);
  EXPECT_FALSE(file->is_dir);
  EXPECT_EQ(file->version.hash, testing::hash_of("f17"));
  EXPECT_EQ(file->version.file_id, file->file_id);
  EXPECT_FALSE(c.lookup(big, "never-hashed", View::latest()));
  EXPECT_FALSE(c.lookup(big, "nothing", View::latest()));
  EXPECT_TRUE(c.lookup(big, "d3", View::latest())->is_dir);
}

TEST_F(Views, OnlyTheLastPageIsShortWhenDirsAndFilesInterleave) {
  Id r1 = c.begin_run(RunKind::kBackup, {"/mix"});
  Id mix = c.ensure_dir("/mix");
  std::vector<std::string> want;
  {
    auto tx = c.transaction();
    // Runs of directories and files of different lengths, so a page of one
    // side fills while the other lags behind, and one name that is both.
    for (int i = 0; i < 300; ++i) {
      char name[16];
      std::snprintf(name, sizeof name, "n%03d", i);
      if (i % 7 < 3)
        c.ensure_dir(std::string("/mix/") + name);
      else
        c.record_version(c.ensure_file(mix, name), file_version(name), r1);
      want.push_back(name);
    }
    c.record_version(c.ensure_file(mix, "n000"), file_version("both"), r1);
    tx.commit();
  }
  for (std::size_t page : {1u, 2u, 3u, 5u, 7u, 64u, 299u, 300u, 301u, 1024u})
    EXPECT_EQ(all_names(c, mix, View::latest(), page), want) << "page " << page;
}

TEST_F(Views, LatestShowsTheNewestVersionAndDeletedFiles) {
  Id r1 = c.begin_run(RunKind::kBackup, {"/d"});
  Id f = make_file(c, "/d/f");
  Id gone = make_file(c, "/d/gone");
  Id v1 = c.record_version(f, file_version("1"), r1).id;
  c.record_version(gone, file_version("g"), r1);
  Id r2 = c.begin_run(RunKind::kBackup, {"/d"});
  Id v2 = c.record_version(f, file_version("2"), r2).id;
  EXPECT_EQ(c.resolve("/d/f")->version.id, v2);
  EXPECT_TRUE(c.resolve("/d/gone"));  // deleted source files keep their versions
  // Backed-up-only: the newest version that has a copy.
  auto tape = add_tape_with_archive(c, "L00001");
  add_copy(c, tape.archive, v1);
  EXPECT_EQ(c.resolve("/d/f", View::latest(true))->version.id, v1);
  EXPECT_FALSE(c.resolve("/d/gone", View::latest(true)));
  EXPECT_TRUE(c.resolve("/", View::latest())->is_dir);
}

TEST_F(Views, ANameThatWasBothDirAndFileShowsTheNewer) {
  Id r1 = c.begin_run(RunKind::kBackup, {"/d"});
  Id d = c.ensure_dir("/d");
  c.record_version(c.ensure_file(d, "x"), file_version("x"), r1);
  c.record_version(c.ensure_file(d, "y"), file_version("y"), r1);
  Id r2 = c.begin_run(RunKind::kBackup, {"/d"});
  c.touch_dir(c.ensure_dir("/d/x"), Attributes{0755, 0, 0, "", "", 0}, r2);  // x became a dir
  auto entries = c.list_dir(d, View::latest());
  ASSERT_EQ(names(entries), (std::vector<std::string>{"x", "y"}));
  EXPECT_TRUE(entries[0].is_dir);
  EXPECT_TRUE(c.lookup(d, "x", View::latest())->is_dir);
  // Page boundaries do not duplicate or drop the name.
  EXPECT_EQ(all_names(c, d, View::latest(), 1), (std::vector<std::string>{"x", "y"}));
  // In the first snapshot it was a file.
  EXPECT_FALSE(c.lookup(d, "x", View::snapshot(r1))->is_dir);
}

TEST_F(Views, SnapshotsShowEachRunsTreeUnderItsRoots) {
  const Attributes dir_attrs{0755, 0, 0, "", "", 0};
  Id r1 = c.begin_run(RunKind::kBackup, {"/home/me/photos"});
  c.touch_dir(c.ensure_dir("/home/me/photos"), dir_attrs, r1);
  c.touch_dir(c.ensure_dir("/home/me/photos/2023"), dir_attrs, r1);
  Id a = make_file(c, "/home/me/photos/2023/a.raw");
  Id b = make_file(c, "/home/me/photos/b.raw");
  Id va1 = c.record_version(a, file_version("a1"), r1).id;
  c.record_version(b, file_version("b1"), r1);

  Id r2 = c.begin_run(RunKind::kBackup, {"/home/me/photos", "/srv/video"});
  c.touch_dir(c.ensure_dir("/home/me/photos"), dir_attrs, r2);
  c.touch_dir(c.ensure_dir("/home/me/photos/2023"), dir_attrs, r2);
  c.touch_dir(c.ensure_dir("/srv/video"), dir_attrs, r2);
  c.mark_absent(b, c.previous_run(r2));                     // the scan found b deleted
  Id va2 = c.record_version(a, file_version("a2"), r2).id;  // and a changed
  c.record_version(make_file(c, "/srv/video/v.mov"), file_version("v"), r2);

  Id home = c.dir_by_path("/home")->id;
  Id photos = c.dir_by_path("/home/me/photos")->id;
  EXPECT_EQ(names(c.list_dir(kRootDirId, View::snapshot(r1))), (std::vector<std::string>{"home"}));
  EXPECT_EQ(names(c.list_dir(kRootDirId, View::snapshot(r2))),
            (std::vector<std::string>{"home", "srv"}));
  EXPECT_EQ(names(c.list_dir(home, View::snapshot(r1))), (std::vector<std::string>{"me"}));
  EXPECT_EQ(names(c.list_dir(photos, View::snapshot(r1))),
            (std::vector<std::string>{"2023", "b.raw"}));
  EXPECT_EQ(names(c.list_dir(photos, View::snapshot(r2))), (std::vector<std::string>{"2023"}));
  EXPECT_EQ(c.resolve("/home/me/photos/2023/a.raw", View::snapshot(r1))->version.id, va1);
  EXPECT_EQ(c.resolve("/home/me/photos/2023/a.raw", View::snapshot(r2))->version.id, va2);
  EXPECT_FALSE(c.resolve("/srv/video/v.mov", View::snapshot(r1)));
  EXPECT_TRUE(c.resolve("/srv/video/v.mov", View::snapshot(r2)));
  EXPECT_TRUE(c.resolve("/home/me/photos/b.raw", View::latest()));
  // A root that is a file; b came back unchanged, so r2 (which covered it)
  // keeps not showing it.
  Id r3 = c.begin_run(RunKind::kBackup, {"/home/me/photos/b.raw"});
  c.record_version(b, file_version("b1"), r3);
  EXPECT_FALSE(c.resolve("/home/me/photos/b.raw", View::snapshot(r2)));
  EXPECT_EQ(names(c.list_dir(photos, View::snapshot(r3))), (std::vector<std::string>{"b.raw"}));
}

TEST_F(Views, TapesShowWhatTheyHold) {
  Id run = c.begin_run(RunKind::kBackup, {"/"});
  Id on_1 = c.record_version(make_file(c, "/a/b/one"), file_version("1"), run).id;
  Id on_2 = c.record_version(make_file(c, "/a/c/two"), file_version("2"), run).id;
  Id on_both = c.record_version(make_file(c, "/a/both"), file_version("3"), run).id;
  auto t1 = add_tape_with_archive(c, "L00001");
  auto t2 = add_tape_with_archive(c, "L00002");
  add_copy(c, t1.archive, on_1, 0);
  add_copy(c, t1.archive, on_both, 4096);
  add_copy(c, t2.archive, on_2, 0);
  add_copy(c, t2.archive, on_both, 4096);
  Id a = c.dir_by_path("/a")->id;
  EXPECT_EQ(names(c.list_dir(a, View::tape(t1.tape))), (std::vector<std::string>{"b", "both"}));
  EXPECT_EQ(names(c.list_dir(a, View::tape(t2.tape))), (std::vector<std::string>{"both", "c"}));
  EXPECT_EQ(names(c.list_dir(kRootDirId, View::tape(t1.tape))), (std::vector<std::string>{"a"}));
  EXPECT_TRUE(c.resolve("/a/b/one", View::tape(t1.tape)));
  EXPECT_FALSE(c.resolve("/a/b/one", View::tape(t2.tape)));
  EXPECT_FALSE(c.resolve("/a/c", View::tape(t1.tape)));
}

TEST_F(Views, SubdirsListsDirectoryRowsOnlyInPages) {
  Id r1 = c.begin_run(RunKind::kBackup, {"/s"});
  Id s = c.ensure_dir("/s");
  std::vector<std::string> want;
  for (int i = 0; i < 30; ++i) {
    std::string name = "d" + std::to_string(100 + i);
    c.ensure_dir("/s/" + name);  // never seen (last_seen_run 0) counts too
    want.push_back(name);
    c.record_version(c.ensure_file(s, "f" + std::to_string(i)), file_version("x"), r1);
  }
  c.ensure_dir("/s/d100/deeper");  // not a child of /s
  c.touch_dir(c.ensure_dir("/s/d105"), Attributes{0755, 0, 0, "", "", 0}, r1);

  std::vector<std::string> got;
  std::string after;
  for (;;) {
    auto page = c.subdirs(s, after, 7);
    ASSERT_LE(page.size(), 7u);
    for (const auto& d : page) {
      EXPECT_EQ(d.parent, s);
      got.push_back(d.name);
    }
    if (page.size() < 7) break;
    after = page.back().name;
  }
  EXPECT_EQ(got, want);
  auto all = c.subdirs(s);
  ASSERT_EQ(all.size(), 30u);
  EXPECT_EQ(all[5].name, "d105");
  EXPECT_EQ(all[5].first_seen_run, r1);
  EXPECT_EQ(all[5].last_seen_run, 0);  // open: still there
  EXPECT_EQ(all[0].first_seen_run, 0);
  EXPECT_EQ(all[0].last_seen_run, 0);
  EXPECT_TRUE(c.subdirs(c.dir_by_path("/s/d101")->id).empty());
  EXPECT_TRUE(c.subdirs(s, "d129").empty());
}

TEST_F(Views, WalkVisitsEverythingDepthFirst) {
  Id run = c.begin_run(RunKind::kBackup, {"/r"});
  for (const char* p : {"/r/b/x", "/r/a", "/r/b/c/y", "/other/z"}) {
    c.record_version(make_file(c, p), file_version(p), run);
  }
  std::vector<std::string> seen;
  c.walk("/r", View::latest(),
         [&](const std::string& path, const Entry&) { seen.push_back(path); });
  EXPECT_EQ(seen, (std::vector<std::string>{"/r/a", "/r/b", "/r/b/c", "/r/b/c/y", "/r/b/x"}));
  seen.clear();
  c.walk("/r/a", View::latest(),
         [&](const std::string& path, const Entry&) { seen.push_back(path); });
  EXPECT_EQ(seen, (std::vector<std::string>{"/r/a"}));
}

// A listing or lookup reads in one transaction of its own, or in the
// caller's: it must neither leave one open nor end the caller's.
TEST_F(Views, ListingsUseTheCallersTransactionOrEndTheirOwn) {
  Id run = c.begin_run(RunKind::kBackup, {"/r"});
  c.record_version(make_file(c, "/r/a"), file_version("a"), run);
  const Id r = c.dir_by_path("/r")->id;
  EXPECT_EQ(names(c.list_dir(r, View::latest())), (std::vector<std::string>{"a"}));
  ASSERT_TRUE(c.lookup(r, "a", View::latest()));
  {
    // BEGIN IMMEDIATE throws if a listing left its transaction open.
    auto tx = c.transaction();
    c.record_version(make_file(c, "/r/b"), file_version("b"), run);
    EXPECT_EQ(names(c.list_dir(r, View::latest())), (std::vector<std::string>{"a", "b"}));
    EXPECT_TRUE(c.lookup(r, "b", View::latest()));
    // Not committed: if a listing had ended the caller's transaction, b
    // would have been committed with it.
  }
  EXPECT_EQ(names(c.list_dir(r, View::latest())), (std::vector<std::string>{"a"}));
  EXPECT_FALSE(c.lookup(r, "b", View::latest()));
  auto tx = c.transaction();
  tx.commit();
}

}  // namespace
}  // namespace mixtape::catalog
