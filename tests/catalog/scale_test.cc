// The 10-million-version claim, proved without 10 million rows: a catalog of
// 200,000 versions in 2,000 directories is built, and every query the
// writer, restore and the mount make is checked to be keyed (EXPLAIN QUERY
// PLAN: a SEARCH on an index, never a SCAN of a table that grows with the
// data), both with the planner's default guesses and after ANALYZE.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>

#include "engine/catalog/catalog.h"
#include "engine/catalog/queries.h"
#include "tests/catalog/test_util.h"

namespace mixtape::catalog {
namespace {

using testing::file_version;
using testing::TempDir;
using testing::test_config;

struct KeyQuery {
  const char* name;
  const char* sql;
  // "alias" (a small table) or "alias USING ... INDEX name" (a partial index
  // that holds only the rows wanted).
  std::vector<std::string> scans_allowed;
  bool sort_allowed = false;               // a temp b-tree over a bounded set
  std::vector<std::string> required = {};  // plan lines that must appear
};

// The triggers' recount, which EXPLAIN of the UPDATE does not show.
constexpr char kTriggerRecount[] =
    "SELECT count(DISTINCT a.tape_id) FROM copies c CROSS JOIN archives a CROSS JOIN tapes t "
    "WHERE c.version_id = ?1 AND a.id = c.archive_id AND t.id = a.tape_id AND t.state <> 'retired'";

std::vector<KeyQuery> key_queries() {
  using namespace sql;
  return {
      {"GetConfig", kGetConfig, {}},
      {"SetConfig", kSetConfig, {}},
      {"LastRunStart", kLastRunStart, {}},
      {"InsertRun", kInsertRun, {}},
      {"InsertRunRoot", kInsertRunRoot, {}},
      {"FinishRun", kFinishRun, {}},
      {"RunById", kRunById, {}},
      {"RunRoots", kRunRoots, {}},
      {"RunAt", kRunAt, {}},
      {"RootsBetween", kRootsBetween, {}},
      {"DirIdByPath", kDirIdByPath, {}},
      {"DirById", kDirById, {}},
      {"DirByPath", kDirByPath, {}},
      {"InsertDir", kInsertDir, {}},
      {"FileIdByName", kFileIdByName, {}},
      {"InsertFile", kInsertFile, {}},
      {"FileById", kFileById, {}},
      {"FilePath", kFilePath, {}},
      {"DirParent", kDirParent, {}},
      {"TouchDir", kTouchDir, {}},
      {"ScanEntries", kScanEntries, {}},
      {"UpsertScanState", kUpsertScanState, {}},
      {"MarkDirty", kMarkDirty, {}},
      {"ClearDirty", kClearDirty, {}},
      {"CloseLatest", kCloseLatest, {}},
      {"CloseVersionsBelow", kCloseVersionsBelow, {}},
      {"CloseDirsBelow", kCloseDirsBelow, {}},
      {"PreviousRun", kPreviousRun, {}},
      {"DeleteScanState", kDeleteScanState, {}},
      {"DeleteScanStatesBelow", kDeleteScanStatesBelow, {}},
      {"DirtyFiles",
       kDirtyFiles,
       {"s USING INDEX scan_state_dirty"},
       true},  // the dirty set, via its partial index
      {"DirtyCount", kDirtyCount, {"scan_state USING INDEX scan_state_dirty"}},
      {"LatestVersion", kLatestVersion, {}},
      {"VersionById", kVersionById, {}},
      {"VersionsOf", kVersionsOf, {}},
      {"InsertVersion", kInsertVersion, {}},
      {"SetVersionRuns", kSetVersionRuns, {}},
      {"InsertGap", kInsertGap, {}},
      {"GoalFor", kGoalFor, {"copy_goals"}, true},  // a handful of user-set prefixes
      {"GoalOf", kGoalOf, {}},
      {"UpsertGoal", kUpsertGoal, {}},
      {"FilesBelow", kFilesBelow, {}},
      {"SetFileGoal", kSetFileGoal, {}},
      {"CountCopy", kCountCopy, {}},
      {"Pending",  // the below-goal set, via its partial index
       kPending,
       {"v USING INDEX versions_below_goal"},
       true,
       {"SEARCH a USING INTEGER PRIMARY KEY (rowid=?)"}},
      {"InsertTape", kInsertTape, {}},
      {"UpdateTape", kUpdateTape, {}},
      {"SetTapeState", kSetTapeState, {}},
      {"TapeById", kTapeById, {}},
      {"TapeBySerial", kTapeBySerial, {}},
      {"InsertArchive", kInsertArchive, {}},
      {"ArchiveById", kArchiveById, {}},
      {"ArchiveByFile", kArchiveByFile, {}},
      {"ArchivesOfTape", kArchivesOfTape, {}},
      {"InsertCopy", kInsertCopy, {}},
      {"CopyExists", kCopyExists, {}},
      {"CopyPlace", kCopyPlace, {}, false, {"SEARCH o USING INTEGER PRIMARY KEY (rowid=?)"}},
      {"InsertTapeDir", kInsertTapeDir, {}},
      {"CopiesOf", kCopiesOf, {}},
      {"CopiesOnTape", kCopiesOnTape, {}},
      {"TriggerRecount", kTriggerRecount, {}, true},  // DISTINCT over one version's copies
      {"DirsLatest", kDirsLatest, {}},
      {"DirLatest", kDirLatest, {}},
      {"DirsSnapshot", kDirsSnapshot, {}},
      {"DirSnapshot", kDirSnapshot, {}},
      {"DirsTape", kDirsTape, {}},
      {"DirTape", kDirTape, {}},
      {"FilesLatest", kFilesLatest, {}},
      {"FileLatest", kFileLatest, {}},
      {"FilesSnapshot", kFilesSnapshot, {}},
      {"FileSnapshot", kFileSnapshot, {}},
      {"FilesTape", kFilesTape, {}, false, {"SEARCH a USING INTEGER PRIMARY KEY (rowid=?)"}},
      {"FileTape", kFileTape, {}, false, {"SEARCH a USING INTEGER PRIMARY KEY (rowid=?)"}},
      {"BelowGoalTotals", kBelowGoalTotals, {"versions USING INDEX versions_below_goal"}},
      {"TapeArchiveTotals", kTapeArchiveTotals, {}},
      {"InsertVerification", kInsertVerification, {}},
      {"LastVerification", kLastVerification, {}},
      {"VerificationsOfArchive", kVerificationsOfArchive, {}, true},
      {"VerificationExists", kVerificationExists, {}},
      // Schema 3: the operator's notes, diff and find.
      {"SetRunTotals", kSetRunTotals, {}},
      {"SetTapeLocation", kSetTapeLocation, {}},
      {"RetireTape", kRetireTape, {}},
      {"VersionInSnapshot", kVersionInSnapshot, {}},
      {"VersionsBeginning",
       kVersionsBeginning,
       {},
       false,
       {"SEARCH versions USING INDEX versions_by_first_run (first_seen_run>? AND "
        "first_seen_run<?)"}},
      {"VersionsEnding",
       kVersionsEnding,
       {},
       false,
       {"SEARCH versions USING INDEX versions_by_last_run (last_seen_run>? AND last_seen_run<?)"}},
      {"GapsBeginning", kGapsBeginning, {}},
      {"GapsEnding", kGapsEnding, {}},
      {"FilesNamedBetween",
       kFilesNamedBetween,
       {},
       false,
       {"SEARCH files USING COVERING INDEX files_by_name (name>? AND name<?)"}},
      {"FilesNamedFrom", kFilesNamedFrom, {}},
  };
}

// The plan's lines that break the rules, empty if none.
std::string plan_problems(sqlite::Database& db, const KeyQuery& q) {
  auto s = db.prepare(std::string("EXPLAIN QUERY PLAN ") + q.sql);
  std::string problems;
  std::string plan;
  while (s.step()) {
    const std::string line = s.column_text(3);
    plan += "  " + line + "\n";
    bool bad = line.find("AUTOMATIC") != std::string::npos;
    // change_epoch is a table of one row, read by every stamping write.
    if (line.starts_with("SCAN ") && line != "SCAN CONSTANT ROW" && line != "SCAN change_epoch") {
      const std::string what = line.substr(5);
      bad |= std::none_of(q.scans_allowed.begin(), q.scans_allowed.end(),
                          [&](const std::string& allowed) {
                            return what == allowed || what.starts_with(allowed + " ");
                          });
    }
    if (line.find("TEMP B-TREE") != std::string::npos && !q.sort_allowed) bad = true;
    if (bad) problems += line + "; ";
  }
  for (const auto& line : q.required) {
    if (plan.find("  " + line + "\n") == std::string::npos) problems += "missing " + line + "; ";
  }
  return problems.empty() ? "" : problems + "\nplan:\n" + plan;
}

TEST(Scale, KeyQueriesStayKeyedAt200kVersions) {
  TempDir tmp;
  Catalog c = Catalog::create(tmp.file("c.db"), test_config());
  constexpr int kDirs = 2000;
  constexpr int kFilesPerDir = 50;
  Id r1 = c.begin_run(RunKind::kBackup, {"/data"});
  Id r2 = c.begin_run(RunKind::kBackup, {"/data"});
  std::vector<Id> archives;
  {
    auto tx = c.transaction();
    for (int t = 0; t < 2; ++t) {
      TapeRow tape;
      tape.serial = "L0000" + std::to_string(t);
      tape.capacity = 1ull << 40;
      tape.record_size = 512 * 1024;
      Id tape_id = c.add_tape(tape);
      for (int a = 0; a < 20; ++a) {
        ArchiveRow row;
        row.tape_id = tape_id;
        row.index_file = 2 * a + 1;
        row.archive_file = 2 * a + 2;
        archives.push_back(c.add_archive(row));
      }
    }
    ScanState seen;
    for (int d = 0; d < kDirs; ++d) {
      char dir_path[32];
      std::snprintf(dir_path, sizeof dir_path, "/data/d%04d", d);
      Id dir = c.ensure_dir(dir_path);
      c.touch_dir(dir, Attributes{0755, 0, 0, "", "", 0}, r1);
      for (int f = 0; f < kFilesPerDir; ++f) {
        std::string name = "file" + std::to_string(f) + ".raw";
        Id file = c.ensure_file(dir, name);
        c.set_scan_state(file, seen);
        Id old = c.record_version(file, file_version(name + dir_path), r1).id;
        c.record_version(file, file_version(name + dir_path + "2"), r2);
        CopyRow copy;
        copy.archive_id = archives[static_cast<std::size_t>(d) % archives.size()];
        copy.version_id = old;
        copy.header_offset = static_cast<std::uint64_t>(f) * 4096;
        copy.data_offset = copy.header_offset + 512;
        c.add_copy(copy);
      }
    }
    tx.commit();
  }
  auto status = c.status();
  ASSERT_EQ(status.versions, static_cast<std::uint64_t>(kDirs * kFilesPerDir * 2));
  ASSERT_EQ(status.copies, static_cast<std::uint64_t>(kDirs * kFilesPerDir));

  for (bool analyzed : {false, true}) {
    if (analyzed) c.database().exec("ANALYZE");
    for (const auto& q : key_queries()) {
      EXPECT_EQ(plan_problems(c.database(), q), "")
          << q.name << (analyzed ? " (after ANALYZE)" : " (no statistics)");
    }
  }

  // And they answer right at this size: a page of a directory, lookups,
  // replicas, paths. (How fast: bench/catalog.)
  Id dir = c.dir_by_path("/data/d1234")->id;
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(c.list_dir(dir, View::latest(), "", 64).size(), 50u);
    auto e = c.lookup(dir, "file7.raw", View::latest());
    ASSERT_TRUE(e);
    ASSERT_EQ(c.versions_of(e->file_id).size(), 2u);
    ASSERT_EQ(c.copies_of(c.versions_of(e->file_id)[0].id).size(), 1u);
    ASSERT_TRUE(c.resolve("/data/d0042/file3.raw", View::snapshot(r1)));
  }
}

}  // namespace
}  // namespace mixtape::catalog
