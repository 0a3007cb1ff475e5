// The mount's namespace, from a catalog built through the catalog API.
#include "fs/tree.h"

#include <gtest/gtest.h>

#include "catalog/test_util.h"

namespace mixtape::fs {
namespace {

using namespace mixtape::catalog;
using catalog::testing::add_tape_with_archive;
using catalog::testing::file_version;
using catalog::testing::make_file;
using catalog::testing::TempDir;

class TreeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = Catalog::create(dir_.file("cat.db"), catalog::testing::test_config());
    run1_ = c.begin_run(RunKind::kBackup, {"/photos"});
    Id raw = make_file(c, "/photos/2019/img.raw");
    touch_dirs(c, run1_);
    v1_ = c.record_version(raw, file_version("first", 1'600'000'000'000'000'000), run1_).id;
    c.finish_run(run1_);
    run2_ = c.begin_run(RunKind::kBackup, {"/photos"});
    touch_dirs(c, run2_);
    v2_ = c.record_version(raw, file_version("second!", 1'700'000'000'000'000'000), run2_).id;
    Id notes = make_file(c, "/photos/notes.txt");
    c.record_version(notes, file_version("n"), run2_);
    c.finish_run(run2_);
    auto tape = add_tape_with_archive(c, "L00001");
    CopyRow copy;
    copy.archive_id = tape.archive;
    copy.version_id = v2_;
    copy.header_offset = 0;
    copy.data_offset = 1024;
    c.add_copy(copy);
    tape_ = tape.tape;
    tree_ = std::make_unique<Tree>(dir_.file("cat.db"));
  }

  // What a scan does for the directories it walks.
  static void touch_dirs(Catalog& c, Id run) {
    Attributes attrs;
    attrs.mode = S_IFDIR | 0755;
    for (const char* dir : {"/photos", "/photos/2019"}) c.touch_dir(c.ensure_dir(dir), attrs, run);
  }

  Ino walk(const std::string& path) {
    Ino ino = 1;
    std::size_t start = 1;
    while (start < path.size()) {
      auto end = path.find('/', start);
      if (end == std::string::npos) end = path.size();
      auto entry = tree_->lookup(ino, path.substr(start, end - start));
      if (!entry) return 0;
      ino = entry->attr.ino;
      start = end + 1;
    }
    return ino;
  }

  std::vector<std::string> names(Ino dir) {
    std::vector<std::string> out;
    tree_->list(dir, 0, [&](const DirEntry& e, std::uint64_t) {
      out.push_back(e.name);
      return true;
    });
    return out;
  }

  TempDir dir_;
  Id run1_ = 0, run2_ = 0, v1_ = 0, v2_ = 0, tape_ = 0;
  std::unique_ptr<Tree> tree_;
};

TEST_F(TreeTest, RootShowsTheViews) {
  EXPECT_EQ(names(1), (std::vector<std::string>{".mixtape", "latest", "snapshots", "tapes"}));
  EXPECT_EQ(names(walk("/.mixtape")), (std::vector<std::string>{"recall", "stats", "status"}));
}

TEST_F(TreeTest, LatestShowsTheNewestVersionWithItsMetadata) {
  Ino ino = walk("/latest/photos/2019/img.raw");
  ASSERT_NE(ino, 0u);
  Attr attr = tree_->getattr(ino);
  EXPECT_TRUE(S_ISREG(attr.mode));
  EXPECT_EQ(attr.size, 7u);
  EXPECT_EQ(attr.uid, 1000u);
  EXPECT_EQ(attr.mtime_ns, 1'700'000'000'000'000'000);
  EXPECT_EQ(names(walk("/latest/photos")), (std::vector<std::string>{"2019", "notes.txt"}));
  EXPECT_EQ(walk("/latest/photos/missing"), 0u);
}

TEST_F(TreeTest, InodesAreStableAcrossTrees) {
  Ino before = walk("/latest/photos/2019/img.raw");
  tree_ = std::make_unique<Tree>(dir_.file("cat.db"));
  EXPECT_EQ(walk("/latest/photos/2019/img.raw"), before);
  EXPECT_EQ(decode(before).kind, NodeKind::kFile);
}

TEST_F(TreeTest, HiddenVersionsAndReplicasDirectories) {
  // readdir does not list them, lookup finds them.
  auto listed = names(walk("/latest/photos/2019"));
  EXPECT_EQ(listed, (std::vector<std::string>{"img.raw"}));
  Ino versions = walk("/latest/photos/2019/img.raw.versions");
  ASSERT_NE(versions, 0u);
  auto v = names(versions);
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0], "0001_2020-09-13T122640Z.raw");
  EXPECT_EQ(v[1], "0002_2023-11-14T221320Z.raw");
  EXPECT_EQ(tree_->getattr(walk("/latest/photos/2019/img.raw.versions/" + v[0])).size, 5u);
  EXPECT_EQ(names(walk("/latest/photos/2019/img.raw.replicas")),
            (std::vector<std::string>{"L00001"}));
  Content c = tree_->content(walk("/latest/photos/2019/img.raw.replicas/L00001"));
  EXPECT_EQ(c.version.id, v2_);
  ASSERT_TRUE(c.tape_id);
  EXPECT_EQ(*c.tape_id, tape_);
}

TEST_F(TreeTest, SnapshotsShowEachRunsTree) {
  auto runs = names(walk("/snapshots"));
  ASSERT_EQ(runs.size(), 3u);  // two runs and "latest"
  Ino first = walk("/snapshots/" + runs[0] + "/photos/2019/img.raw");
  ASSERT_NE(first, 0u);
  EXPECT_EQ(tree_->getattr(first).size, 5u);
  EXPECT_EQ(walk("/snapshots/" + runs[0] + "/photos/notes.txt"), 0u);
  EXPECT_EQ(tree_->readlink(walk("/snapshots/latest")), runs[1]);
}

TEST_F(TreeTest, TapesShowWhatEachTapeHolds) {
  EXPECT_EQ(names(walk("/tapes")), (std::vector<std::string>{"L00001"}));
  Ino on_tape = walk("/tapes/L00001/photos/2019/img.raw");
  ASSERT_NE(on_tape, 0u);
  EXPECT_EQ(walk("/tapes/L00001/photos/notes.txt"), 0u);  // no copy on that tape
  Content c = tree_->content(on_tape);
  ASSERT_TRUE(c.tape_id);
  EXPECT_EQ(*c.tape_id, tape_);
  EXPECT_EQ(c.path, "/photos/2019/img.raw");
}

TEST_F(TreeTest, ExtendedAttributes) {
  auto x = tree_->xattrs(walk("/latest/photos/2019/img.raw"), "offline");
  EXPECT_EQ(x["user.mixtape.hash"], to_hex(crypto::blake2b256(as_bytes("second!"))));
  EXPECT_EQ(x["user.mixtape.versions"], "2");
  EXPECT_EQ(x["user.mixtape.replicas"].rfind("L00001:", 0), 0u);
  EXPECT_EQ(x["user.mixtape.state"], "offline");
  EXPECT_TRUE(tree_->xattrs(walk("/latest/photos"), "").empty());
}

TEST_F(TreeTest, ListingResumesAfterEachEntrysCookie) {
  Ino photos = walk("/latest/photos");
  std::vector<std::string> all = names(photos);
  ASSERT_GE(all.size(), 2u);
  std::vector<std::uint64_t> cookies;
  tree_->list(photos, 0, [&](const DirEntry&, std::uint64_t next) {
    cookies.push_back(next);
    return true;
  });
  ASSERT_EQ(cookies.size(), all.size());
  // Resuming after entry i, in a fresh call (no state kept), lists the rest.
  for (std::size_t i = 0; i < cookies.size(); ++i) {
    EXPECT_NE(cookies[i], 0u);
    std::vector<std::string> rest;
    tree_->list(photos, cookies[i], [&](const DirEntry& e, std::uint64_t) {
      rest.push_back(e.name);
      return true;
    });
    EXPECT_EQ(rest, std::vector<std::string>(all.begin() + static_cast<long>(i) + 1, all.end()))
        << "after " << all[i];
  }
  // A cookie of another directory ("2019" is not in 2019/) is refused, not
  // misread.
  ASSERT_EQ(all[0], "2019");
  EXPECT_THROW(tree_->list(walk("/latest/photos/2019"), cookies[0],
                           [](const DirEntry&, std::uint64_t) { return true; }),
               FsError);
}

TEST_F(TreeTest, DirectoriesAreNotContent) {
  EXPECT_THROW(tree_->content(walk("/latest/photos")), FsError);
  EXPECT_THROW(tree_->getattr(encode({NodeKind::kDir, 0, 999999})), FsError);
}

}  // namespace
}  // namespace mixtape::fs
