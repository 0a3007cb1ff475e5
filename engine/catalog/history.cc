// Catalog: the namespace, scan state, versions and copy goals.
#include "engine/catalog/catalog.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <exception>
#include <tuple>

#include "engine/catalog/internal.h"
#include "engine/catalog/queries.h"

namespace mixtape::catalog {

using internal::bind_attributes;
using internal::check_name;
using internal::check_path;
using internal::subtree_bounds;

// ---------------------------------------------------------------- namespace

Id Catalog::ensure_dir(std::string_view path) {
  check_path(path, "directory");
  if (auto id = internal::dir_id_by_path(*stmts_, path)) return *id;
  sqlite::WriteScope scope(*db_);
  Id id = internal::ensure_dir(*stmts_, path, 0);
  scope.commit();
  return id;
}

Id Catalog::ensure_file(Id dir_id, std::string_view name) {
  check_name(name, "file");
  return internal::ensure_file(*stmts_, dir_id, name, 0);
}

std::optional<DirRow> Catalog::dir(Id dir_id) {
  return internal::first_row(*stmts_, sql::kDirById, internal::read_dir, dir_id);
}

std::optional<DirRow> Catalog::dir_by_path(std::string_view path) {
  return internal::first_row(*stmts_, sql::kDirByPath, internal::read_dir, path);
}

std::optional<FileRow> Catalog::file(Id file_id) {
  auto s = stmts_->get(sql::kFileById);
  s->bind(1, file_id);
  if (!s->step()) return std::nullopt;
  return FileRow{s->column_int(0), s->column_int(1), s->column_text(2)};
}

std::optional<Id> Catalog::file_by_path(std::string_view path) {
  if (!internal::is_valid_path(path) || path == "/") return std::nullopt;
  auto [parent, name] = internal::split_path(path);
  auto dir_id = internal::dir_id_by_path(*stmts_, parent);
  if (!dir_id) return std::nullopt;
  auto s = stmts_->get(sql::kFileIdByName);
  s->bind(1, *dir_id).bind(2, name);
  if (!s->step()) return std::nullopt;
  return s->column_int(0);
}

std::string Catalog::file_path(Id file_id) {
  auto s = stmts_->get(sql::kFilePath);
  s->bind(1, file_id);
  if (!s->step()) throw CatalogError("no file with id " + std::to_string(file_id));
  return internal::join_path(s->column_text(0), s->column_text(1));
}

// ---------------------------------------------------------------- scan

void Catalog::touch_dir(Id dir_id, const Attributes& attrs, Id run_id) {
  Attributes a = attrs;
  if ((a.mode & S_IFMT) == 0) a.mode |= S_IFDIR;
  if ((a.mode & S_IFMT) != S_IFDIR)
    throw CatalogError("directory metadata with a non-directory mode");
  auto s = stmts_->get(sql::kTouchDir);
  s->bind(1, dir_id).bind(8, run_id);
  bind_attributes(*s, 2, a).run();
}

std::vector<ScanEntry> Catalog::scan_entries(Id dir_id) {
  std::vector<ScanEntry> entries;
  auto s = stmts_->get(sql::kScanEntries);
  s->bind(1, dir_id);
  while (s->step()) {
    ScanEntry e{s->column_int(0), s->column_text(1), std::nullopt};
    if (s->column_int(2)) {
      ScanState st;
      st.identity.size = static_cast<std::uint64_t>(s->column_int(3));
      st.identity.mtime_ns = s->column_int(4);
      st.identity.ctime_ns = s->column_int(5);
      st.identity.dev = static_cast<std::uint64_t>(s->column_int(6));
      st.identity.ino = static_cast<std::uint64_t>(s->column_int(7));
      st.readable = s->column_int(8) != 0;
      st.dirty = s->column_int(9) != 0;
      e.state = st;
    }
    entries.push_back(std::move(e));
  }
  return entries;
}

void Catalog::set_scan_state(Id file_id, const ScanState& state) {
  auto s = stmts_->get(sql::kUpsertScanState);
  s->bind(1, file_id)
      .bind(2, state.identity.size)
      .bind(3, state.identity.mtime_ns)
      .bind(4, state.identity.ctime_ns)
      .bind(5, state.identity.dev)
      .bind(6, state.identity.ino)
      .bind(7, state.readable ? 1 : 0)
      .bind(8, state.dirty ? 1 : 0);
  s->run();
}

void Catalog::close_latest_version(Id file_id, Id last_seen_run) {
  auto s = stmts_->get(sql::kCloseLatest);
  s->bind(1, file_id).bind(2, last_seen_run);
  s->run();
}

void Catalog::mark_dirty(Id file_id, Id last_seen_run) {
  sqlite::WriteScope scope(*db_, sqlite::WriteScope::Nesting::kJoin);
  {
    auto s = stmts_->get(sql::kMarkDirty);
    s->bind(1, file_id);
    s->run();
  }
  close_latest_version(file_id, last_seen_run);
  scope.commit();
}

void Catalog::clear_dirty(Id file_id) {
  auto s = stmts_->get(sql::kClearDirty);
  s->bind(1, file_id);
  s->run();
}

void Catalog::mark_absent(Id file_id, Id last_seen_run) {
  sqlite::WriteScope scope(*db_, sqlite::WriteScope::Nesting::kJoin);
  {
    auto s = stmts_->get(sql::kDeleteScanState);
    s->bind(1, file_id);
    s->run();
  }
  close_latest_version(file_id, last_seen_run);
  scope.commit();
}

void Catalog::mark_dir_absent(Id dir_id, Id last_seen_run) {
  auto d = dir(dir_id);
  if (!d) return;
  auto [low, high] = subtree_bounds(d->path);
  sqlite::WriteScope scope(*db_, sqlite::WriteScope::Nesting::kJoin);
  for (const char* query :
       {sql::kDeleteScanStatesBelow, sql::kCloseVersionsBelow, sql::kCloseDirsBelow}) {
    auto s = stmts_->get(query);
    s->bind(1, d->path).bind(2, low).bind(3, high);
    if (query != sql::kDeleteScanStatesBelow) s->bind(4, last_seen_run);
    s->run();
  }
  scope.commit();
}

void Catalog::for_each_dirty(const std::function<void(const FileRef&)>& fn) {
  // A statement of its own, not a cached one: fn may call back into this
  // Catalog. ORDER BY sorts every row before the first is returned, so
  // writes made by fn do not disturb the iteration.
  auto s = db_->prepare(sql::kDirtyFiles);
  while (s.step()) {
    fn(FileRef{s.column_int(0), internal::join_path(s.column_text(1), s.column_text(2)),
               static_cast<std::uint64_t>(s.column_int(3))});
  }
}

std::uint64_t Catalog::dirty_count() {
  auto s = stmts_->get(sql::kDirtyCount);
  s->step();
  return static_cast<std::uint64_t>(s->column_int(0));
}

// ---------------------------------------------------------------- versions

RecordedVersion Catalog::record_version(Id file_id, const VersionRow& version, Id run_id) {
  VersionRow v = internal::normalised_version(version);
  v.file_id = file_id;
  v.first_seen_run = run_id;
  v.last_seen_run = 0;  // open: on disk as hashed
  // Usually one write: inside a caller's transaction it just joins it.
  sqlite::WriteScope scope(*db_, sqlite::WriteScope::Nesting::kJoin);
  auto latest = latest_version(file_id);
  if (latest && internal::same_content(*latest, v)) {
    if (latest->last_seen_run != 0) {
      // It comes back unchanged. A run in between that covered the path did
      // not see it (it had been deleted): the snapshots of those runs must
      // not show it, though the version goes on.
      bool covered = false;
      if (run_id > latest->last_seen_run) {
        std::string path;
        auto s = stmts_->get(sql::kRootsBetween);
        s->bind(1, latest->last_seen_run).bind(2, run_id);
        while (s->step() && !covered) {
          if (path.empty()) path = file_path(file_id);
          covered = internal::is_under(path, s->column_text(0));
        }
      }
      sqlite::WriteScope both(*db_);  // the gap and the reopening, or neither
      if (covered) {
        auto s = stmts_->get(sql::kInsertGap);
        s->bind(1, file_id).bind(2, latest->last_seen_run + 1).bind(3, run_id - 1);
        s->run();
      }
      {
        auto s = stmts_->get(sql::kSetVersionRuns);
        s->bind(1, latest->id).bind(2, latest->first_seen_run).bind_null(3);
        s->run();
      }
      both.commit();
    }
    scope.commit();
    return {latest->id, false};
  }
  // The scan closes a changed file's version; one it did not see change
  // (hashed without a scan) ends with the run before this one.
  if (latest && latest->last_seen_run == 0) close_latest_version(file_id, previous_run(run_id));
  const Id id = internal::insert_version(*stmts_, v, file_path(file_id), 0);
  scope.commit();
  return {id, true};
}

std::optional<VersionRow> Catalog::version(Id version_id) {
  return internal::first_row(*stmts_, sql::kVersionById, internal::read_version, version_id);
}

std::optional<VersionRow> Catalog::latest_version(Id file_id) {
  return internal::first_row(*stmts_, sql::kLatestVersion, internal::read_version, file_id);
}

std::vector<VersionRow> Catalog::versions_of(Id file_id) {
  std::vector<VersionRow> rows;
  auto s = stmts_->get(sql::kVersionsOf);
  s->bind(1, file_id);
  while (s->step()) rows.push_back(internal::read_version(*s, 0));
  return rows;
}

// ---------------------------------------------------------------- copy goals

void Catalog::set_copy_goal(std::string_view prefix, int copies) {
  check_path(prefix, "copy goal prefix");
  if (copies < 1) throw CatalogError("a copy goal must be at least 1");
  sqlite::WriteScope scope(*db_);
  {
    auto s = stmts_->get(sql::kUpsertGoal);
    s->bind(1, prefix).bind(2, copies);
    s->run();
  }
  internal::refresh_goals_below(*stmts_, prefix);
  scope.commit();
}

void Catalog::remove_copy_goal(std::string_view prefix) {
  check_path(prefix, "copy goal prefix");
  if (prefix == "/") throw CatalogError("the default copy goal (\"/\") cannot be removed");
  sqlite::WriteScope scope(*db_);
  {
    auto s = stmts_->get(sql::kDeleteGoal);
    s->bind(1, prefix);
    s->run();
  }
  internal::refresh_goals_below(*stmts_, prefix);
  scope.commit();
}

std::vector<CopyGoal> Catalog::copy_goals() {
  std::vector<CopyGoal> goals;
  auto s = stmts_->get(sql::kAllGoals);
  while (s->step()) goals.push_back({s->column_text(0), static_cast<int>(s->column_int(1))});
  return goals;
}

int Catalog::default_copy_goal() {
  auto s = stmts_->get(sql::kGoalOf);
  s->bind(1, "/");
  return s->step() ? static_cast<int>(s->column_int(0)) : 1;
}

int Catalog::goal_for(std::string_view path) {
  return internal::goal_for(*stmts_, path);
}

}  // namespace mixtape::catalog
