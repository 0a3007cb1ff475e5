// The steps that Catalog and the merge share: making directories and files,
// inserting versions and copies, copy goals.
#include "engine/catalog/catalog.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <exception>
#include <tuple>

#include "engine/catalog/internal.h"
#include "engine/catalog/queries.h"

namespace mixtape::catalog {

using internal::bind_id;
using internal::subtree_bounds;

// ---------------------------------------------------------------- shared steps

namespace internal {

std::optional<Id> dir_id_by_path(StatementCache& stmts, std::string_view path) {
  auto s = stmts.get(sql::kDirIdByPath);
  s->bind(1, path);
  if (!s->step()) return std::nullopt;
  return s->column_int(0);
}

namespace {

// Whether no row has this id yet (`query` selects by id), so a row may take
// the id it had in the index it is merged from.
bool id_free(StatementCache& stmts, const char* query, Id id) {
  auto s = stmts.get(query);
  s->bind(1, id);
  return !s->step();
}

}  // namespace

Id ensure_dir(StatementCache& stmts, std::string_view path, Id preferred_id) {
  if (auto id = dir_id_by_path(stmts, path)) return *id;
  // Walk up to the nearest existing ancestor, then create downwards: a loop,
  // not recursion, since a path may have thousands of components.
  std::vector<std::string_view> missing{path};
  Id parent = kRootDirId;
  for (std::string_view p = path;;) {
    std::string_view up = split_path(p).first;
    if (auto id = dir_id_by_path(stmts, up)) {
      parent = *id;
      break;
    }
    missing.push_back(up);
    p = up;
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    Id id = 0;
    if (it == missing.rend() - 1 && preferred_id &&
        id_free(stmts, sql::kIdTakenDir, preferred_id)) {
      id = preferred_id;
    }
    auto s = stmts.get(sql::kInsertDir);
    bind_id(*s, 1, id).bind(2, parent).bind(3, split_path(*it).second).bind(4, *it);
    s->run();
    parent = stmts.db().last_insert_rowid();
  }
  return parent;
}

Id ensure_file(StatementCache& stmts, Id dir_id, std::string_view name, Id preferred_id) {
  {
    auto s = stmts.get(sql::kFileIdByName);
    s->bind(1, dir_id).bind(2, name);
    if (s->step()) return s->column_int(0);
  }
  Id id = preferred_id && id_free(stmts, sql::kIdTakenFile, preferred_id) ? preferred_id : 0;
  auto s = stmts.get(sql::kInsertFile);
  bind_id(*s, 1, id).bind(2, dir_id).bind(3, name);
  s->run();
  return stmts.db().last_insert_rowid();
}

int goal_for(StatementCache& stmts, std::string_view path) {
  auto s = stmts.get(sql::kGoalFor);
  s->bind(1, path);
  // The "/" goal always exists (created with the catalog, never removed).
  return s->step() ? static_cast<int>(s->column_int(0)) : 1;
}

void refresh_goals_below(StatementCache& stmts, std::string_view prefix) {
  // Each file's goal by its full path: a keyed walk of the prefix's subtree
  // (goals change rarely; a set-based UPDATE ... FROM let the planner scan
  // all versions once statistics existed).
  auto [low, high] = subtree_bounds(prefix);
  auto files = stmts.get(sql::kFilesBelow);
  files->bind(1, prefix).bind(2, low).bind(3, high);
  if (prefix == "/") {
    files->bind_null(4).bind_null(5);
  } else {
    auto [parent, name] = split_path(prefix);
    files->bind(4, parent).bind(5, name);
  }
  while (files->step()) {
    const int goal = goal_for(stmts, join_path(files->column_text(1), files->column_text(2)));
    auto s = stmts.get(sql::kSetFileGoal);
    s->bind(1, files->column_int(0)).bind(2, goal);
    s->run();
  }
}

Id insert_version(StatementCache& stmts, const VersionRow& v, std::string_view path, Id id) {
  if (id && !id_free(stmts, sql::kIdTakenVersion, id)) id = 0;
  const int goal = goal_for(stmts, path);
  auto s = stmts.get(sql::kInsertVersion);
  bind_id(*s, 1, id)
      .bind(2, v.file_id)
      .bind(3, to_string(v.kind))
      .bind(4, v.size)
      .bind_blob(5, v.hash)
      .bind(6, v.attrs.mtime_ns)
      .bind(7, v.attrs.mode)
      .bind(8, v.attrs.uid)
      .bind(9, v.attrs.gid)
      .bind(10, v.attrs.uname)
      .bind(11, v.attrs.gname);
  if (v.kind == VersionKind::kSymlink) {
    s->bind(12, v.symlink_target);
  } else {
    s->bind_null(12);
  }
  s->bind(13, v.first_seen_run);
  bind_id(*s, 14, v.last_seen_run).bind(15, goal);
  s->run();
  return stmts.db().last_insert_rowid();
}

Id insert_archive(StatementCache& stmts, const ArchiveRow& a, Id id) {
  auto s = stmts.get(sql::kInsertArchive);
  bind_id(*s, 1, id)
      .bind(2, a.tape_id)
      .bind(3, a.index_file)
      .bind(4, a.index_block)
      .bind(5, a.archive_file)
      .bind(6, a.first_block)
      .bind(7, a.encrypted ? 1 : 0)
      .bind(8, a.age_header_len)
      .bind(9, a.cipher_bytes)
      .bind(10, a.plain_bytes)
      .bind(11, a.members)
      .bind(12, a.written_at_ns);
  bind_id(*s, 13, a.run_id);
  if (a.is_foreign()) {
    s->bind(14, a.foreign_format).bind(15, a.record_size);
  } else {
    s->bind_null(14).bind_null(15);
  }
  s->run();
  return stmts.db().last_insert_rowid();
}

Id insert_copy(StatementCache& stmts, const CopyRow& copy, Id id) {
  Id tape_id = 0;
  Id dir_id = 0;
  bool counts = false;  // a first copy on a tape that is not retired
  {
    auto s = stmts.get(sql::kCopyPlace);
    s->bind(1, copy.archive_id).bind(2, copy.version_id);
    if (!s->step()) {
      throw CatalogError("copy of version " + std::to_string(copy.version_id) + " in archive " +
                         std::to_string(copy.archive_id) + ": no such archive or version");
    }
    tape_id = s->column_int(0);
    dir_id = s->column_int(1);
    counts = s->column_int(2) != 0 && s->column_int(3) == 0;
  }
  Id copy_id = 0;
  {
    auto s = stmts.get(sql::kInsertCopy);
    bind_id(*s, 1, id)
        .bind(2, copy.archive_id)
        .bind(3, copy.version_id)
        .bind(4, copy.header_offset)
        .bind(5, copy.data_offset);
    s->run();
    copy_id = stmts.db().last_insert_rowid();
  }
  if (counts) {
    auto s = stmts.get(sql::kCountCopy);
    s->bind(1, copy.version_id);
    s->run();
  }
  // tapes/<serial>/ lists only directories leading to something on the
  // tape. If this directory is already listed, so are its ancestors.
  while (dir_id) {
    {
      auto s = stmts.get(sql::kInsertTapeDir);
      s->bind(1, tape_id).bind(2, dir_id);
      s->run();
    }
    if (stmts.db().changes() == 0) break;
    auto s = stmts.get(sql::kDirParent);
    s->bind(1, dir_id);
    dir_id = s->step() && !s->is_null(0) ? s->column_int(0) : 0;
  }
  return copy_id;
}

}  // namespace internal

}  // namespace mixtape::catalog
