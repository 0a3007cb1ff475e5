// Tapes, archives, copies, planning, status and verification.
#include <gtest/gtest.h>

#include "engine/catalog/catalog.h"
#include "tests/catalog/test_util.h"
#include "tests/support/test_support.h"

namespace mixtape::catalog {
namespace {

using namespace testing;

class Tapes : public NewCatalogTest {};

TEST_F(Tapes, AddFindUpdate) {
  TapeRow t;
  t.serial = "L00042";
  t.capacity = 2500ull << 30;
  t.record_size = 512 * 1024;
  Id id = c.add_tape(t);
  auto row = c.tape_by_serial("L00042");
  ASSERT_TRUE(row);
  EXPECT_EQ(row->id, id);
  EXPECT_EQ(row->state, TapeState::kLabelled);
  EXPECT_EQ(row->append_file, 1);
  EXPECT_FALSE(row->append_block);
  EXPECT_GT(row->labelled_at_ns, 0);
  EXPECT_EQ(row->written_at_ns, 0);

  row->state = TapeState::kOpen;
  row->bytes_used = 12345;
  row->append_file = 5;
  row->append_block = 777;
  row->written_at_ns = 99;
  c.update_tape(*row);
  auto again = c.tape(id);
  EXPECT_EQ(again->state, TapeState::kOpen);
  EXPECT_EQ(again->bytes_used, 12345u);
  EXPECT_EQ(again->append_file, 5);
  EXPECT_EQ(again->append_block, 777u);
  EXPECT_EQ(again->written_at_ns, 99);

  EXPECT_THROW(c.add_tape(t), CatalogError);  // serial taken
  t.serial = "bad/serial";
  EXPECT_THROW(c.add_tape(t), CatalogError);
  t.serial = "A00001";
  c.add_tape(t);
  auto all = c.tapes();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].serial, "A00001");
}

class Copies : public NewCatalogTest {};

TEST_F(Copies, ReplicasAndCountsAcrossTapes) {
  Id run = c.begin_run(RunKind::kBackup, {"/d"});
  Id v = c.record_version(make_file(c, "/d/f"), file_version("f"), run).id;
  auto t2 = add_tape_with_archive(c, "L00002", 2, run);
  auto t1 = add_tape_with_archive(c, "L00001", 4, run);
  auto t1b = add_tape_with_archive(c, "L00001", 6, run);  // a second archive on L00001
  add_copy(c, t2.archive, v, 1024);
  EXPECT_EQ(c.version(v)->copies, 1);
  add_copy(c, t1.archive, v, 2048);
  EXPECT_EQ(c.version(v)->copies, 2);
  add_copy(c, t1b.archive, v, 0);  // same tape again: still two tapes
  EXPECT_EQ(c.version(v)->copies, 2);
  EXPECT_THROW_MESSAGE(
      add_copy(c, t1.archive, v), sqlite::SqliteError,
      "UNIQUE constraint failed: copies.archive_id, copies.version_id");  // once per archive

  auto replicas = c.copies_of(v);
  ASSERT_EQ(replicas.size(), 3u);
  EXPECT_EQ(replicas[0].tape.serial, "L00001");
  EXPECT_EQ(replicas[0].archive.archive_file, 4);
  EXPECT_EQ(replicas[0].copy.header_offset, 2048u);
  EXPECT_EQ(replicas[0].copy.data_offset, 2560u);
  EXPECT_EQ(replicas[0].archive.first_block, 200u);
  EXPECT_EQ(replicas[0].archive.age_header_len, 200u);
  EXPECT_EQ(replicas[0].tape.record_size, 512u * 1024);
  EXPECT_EQ(replicas[1].archive.archive_file, 6);
  EXPECT_EQ(replicas[2].tape.serial, "L00002");

  // A retired tape's copies no longer count; un-retiring restores them.
  c.set_tape_state(t2.tape, TapeState::kRetired);
  EXPECT_EQ(c.version(v)->copies, 1);
  c.set_tape_state(t2.tape, TapeState::kFull);
  EXPECT_EQ(c.version(v)->copies, 2);

  auto archives = c.archives_of_tape(t1.tape);
  ASSERT_EQ(archives.size(), 2u);
  EXPECT_EQ(archives[0].archive_file, 4);
  EXPECT_EQ(c.archive_by_file(t1.tape, 6)->id, t1b.archive);
  EXPECT_FALSE(c.archive_by_file(t1.tape, 8));
  EXPECT_THROW(add_copy(c, t1.archive, 9999), CatalogError);
}

TEST_F(Copies, OnATapeInTapeOrder) {
  Id run = c.begin_run(RunKind::kBackup, {"/d"});
  Id va = c.record_version(make_file(c, "/d/a"), file_version("a"), run).id;
  Id vb = c.record_version(make_file(c, "/d/b"), file_version("b"), run).id;
  Id vc = c.record_version(make_file(c, "/d/c"), file_version("c"), run).id;
  auto first = add_tape_with_archive(c, "L00001", 2);
  auto second = add_tape_with_archive(c, "L00001", 4);
  add_copy(c, second.archive, va, 0);
  add_copy(c, first.archive, vb, 8192);
  add_copy(c, first.archive, vc, 0);
  std::vector<std::string> order;
  c.for_each_copy_on_tape(first.tape, [&](const CopyWithVersion& copy) {
    order.push_back(copy.path + "@" + std::to_string(copy.archive_file));
  });
  EXPECT_EQ(order, (std::vector<std::string>{"/d/c@2", "/d/b@2", "/d/a@4"}));
}

std::vector<std::string> pending_paths(Catalog& c, Id tape, bool only_present = true) {
  std::vector<std::string> out;
  c.for_each_pending(
      tape,
      [&](const PendingVersion& p) {
        out.push_back(p.path + "#" + std::to_string(p.version.copies) + "/" +
                      std::to_string(p.version.goal));
      },
      only_present);
  return out;
}

class Planning : public NewCatalogTest {};

TEST_F(Planning, PendingVersionsExcludeTapeAndMetGoals) {
  Id run = c.begin_run(RunKind::kBackup, {"/d"});
  ScanState present;
  auto add = [&](const char* path) {
    Id file = make_file(c, path);
    c.set_scan_state(file, present);
    return c.record_version(file, file_version(path), run).id;
  };
  Id none = add("/d/none");
  Id one = add("/d/one");
  Id two = add("/d/two");
  Id single = add("/d/single/x");
  c.set_copy_goal("/d/single", 1);
  auto t1 = add_tape_with_archive(c, "L00001");
  auto t2 = add_tape_with_archive(c, "L00002");
  auto t3 = add_tape_with_archive(c, "L00003");
  add_copy(c, t1.archive, one);
  add_copy(c, t1.archive, two);
  add_copy(c, t2.archive, two);
  (void)none;
  (void)single;

  EXPECT_EQ(pending_paths(c, t1.tape),
            (std::vector<std::string>{"/d/none#0/2", "/d/single/x#0/1"}));
  EXPECT_EQ(pending_paths(c, t3.tape),
            (std::vector<std::string>{"/d/none#0/2", "/d/one#1/2", "/d/single/x#0/1"}));
  EXPECT_EQ(pending_paths(c, 0), pending_paths(c, t3.tape));
  auto status = c.status();
  EXPECT_EQ(status.versions, 4u);
  EXPECT_EQ(status.below_goal_versions, 3u);
  EXPECT_EQ(status.copies, 3u);
  EXPECT_EQ(status.tapes.size(), 3u);
  EXPECT_EQ(status.tapes[0].archives, 1u);
}

TEST_F(Planning, OnlyPresentSkipsWhatIsNoLongerOnDiskAsHashed) {
  Id r1 = c.begin_run(RunKind::kBackup, {"/d"});
  ScanState seen;
  Id changed = make_file(c, "/d/changed");
  Id dirty = make_file(c, "/d/dirty");
  Id gone = make_file(c, "/d/gone");
  Id unreadable = make_file(c, "/d/unreadable");
  Id fine = make_file(c, "/d/fine");
  for (Id f : {changed, dirty, gone, unreadable, fine}) {
    c.set_scan_state(f, seen);
    c.record_version(f, file_version(std::to_string(f)), r1);
  }
  Id r2 = c.begin_run(RunKind::kBackup, {"/d"});
  c.mark_dirty(changed, r1);
  c.set_scan_state(changed, seen);
  c.record_version(changed, file_version("new content"), r2);
  c.mark_dirty(dirty, r1);
  c.mark_absent(gone, r1);
  ScanState cannot_read = seen;
  cannot_read.readable = false;
  c.set_scan_state(unreadable, cannot_read);

  EXPECT_EQ(pending_paths(c, 0), (std::vector<std::string>{"/d/changed#0/2", "/d/fine#0/2"}));
  EXPECT_EQ(pending_paths(c, 0, false).size(), 6u);  // every version ever recorded
}

class Verification : public NewCatalogTest {};

TEST_F(Verification, RecordsAndReportsTheNewest) {
  Id run = c.begin_run(RunKind::kBackup, {"/d"});
  Id v = c.record_version(make_file(c, "/d/f"), file_version("f"), run).id;
  auto t = add_tape_with_archive(c, "L00001");
  add_copy(c, t.archive, v);
  EXPECT_FALSE(c.last_verification(t.archive));
  c.record_verification({0, t.archive, 0, 100, VerifyResult::kOk, "", run});
  c.record_verification({0, t.archive, 0, 200, VerifyResult::kUnreadable, "block 7", run});
  c.record_verification({0, t.archive, v, 150, VerifyResult::kMismatch, "hash differs", 0});
  auto last = c.last_verification(t.archive);
  ASSERT_TRUE(last);
  EXPECT_EQ(last->result, VerifyResult::kUnreadable);
  EXPECT_EQ(last->detail, "block 7");
  auto copy = c.last_verification(t.archive, v);
  ASSERT_TRUE(copy);
  EXPECT_EQ(copy->result, VerifyResult::kMismatch);
  auto all = c.verifications_of_archive(t.archive);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].checked_at_ns, 200);
  EXPECT_EQ(all[2].checked_at_ns, 100);
}

}  // namespace
}  // namespace mixtape::catalog
