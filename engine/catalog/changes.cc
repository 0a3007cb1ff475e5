// What changed between two runs, and files by name: mixtape diff and mixtape
// find, from the catalog alone, keyed at any size.
//
// A file's version in a snapshot changes only where one of its versions (or
// gaps) begins or ends, so the files that differ between runs A < B are
// among those with a version beginning in (A, B] or ending in [A, B), or a
// gap doing so: four range queries on indexes by run (schema 3). Each such
// file's version in either snapshot is then one keyed lookup. When the two
// runs covered different roots, the files under the roots only one of them
// covered differ too; those are walked in that run's snapshot.
#include <fnmatch.h>

#include <algorithm>
#include <set>

#include "engine/catalog/internal.h"
#include "engine/catalog/queries.h"

namespace mixtape::catalog {
namespace {

using internal::is_under;

bool in_scope(std::string_view path, const std::vector<std::string>& roots) {
  return std::any_of(roots.begin(), roots.end(),
                     [&](const std::string& root) { return is_under(path, root); });
}

// A diff shows changed bytes (or kind, or target), not changed attributes.
bool same_data(const VersionRow& a, const VersionRow& b) {
  return a.kind == b.kind && a.size == b.size && a.hash == b.hash &&
         a.symlink_target == b.symlink_target;
}

// The names at or after `prefix` that begin with it end before this (the
// prefix with its last byte raised; none when every byte is 0xff).
std::optional<std::string> prefix_end(std::string prefix) {
  while (!prefix.empty() && static_cast<unsigned char>(prefix.back()) == 0xff) prefix.pop_back();
  if (prefix.empty()) return std::nullopt;
  prefix.back() = static_cast<char>(static_cast<unsigned char>(prefix.back()) + 1);
  return prefix;
}

}  // namespace

std::optional<VersionRow> Catalog::version_in_snapshot(Id file_id, Id run_id) {
  auto r = run(run_id);
  if (!r || !in_scope(file_path(file_id), r->roots)) return std::nullopt;
  return internal::first_row(*stmts_, sql::kVersionInSnapshot, internal::read_version, file_id,
                             run_id);
}

std::vector<Catalog::SnapshotChange> Catalog::changes_between(Id from_run, Id to_run) {
  sqlite::ReadScope snapshot(*db_);
  auto from = run(from_run);
  auto to = run(to_run);
  if (!from) throw CatalogError("no run with id " + std::to_string(from_run));
  if (!to) throw CatalogError("no run with id " + std::to_string(to_run));
  std::set<Id> candidates;
  if (from_run != to_run) {
    const Id low = std::min(from_run, to_run), high = std::max(from_run, to_run);
    for (const char* query :
         {sql::kVersionsBeginning, sql::kVersionsEnding, sql::kGapsBeginning, sql::kGapsEnding}) {
      auto s = stmts_->get(query);
      s->bind(1, low).bind(2, high);
      while (s->step()) candidates.insert(s->column_int(0));
    }
  }
  // Roots only one of the runs covered: their files are in one snapshot.
  auto add_uncovered = [&](const RunRow& run, const RunRow& other) {
    for (const auto& root : run.roots) {
      if (in_scope(root, other.roots)) continue;  // wholly covered by the other run
      walk(root, View::snapshot(run.id), [&](const std::string& path, const Entry& entry) {
        if (!entry.is_dir && !in_scope(path, other.roots)) candidates.insert(entry.file_id);
      });
    }
  };
  if (from->roots != to->roots) {
    add_uncovered(*from, *to);
    add_uncovered(*to, *from);
  }
  auto version_in = [&](Id file_id, const std::string& path,
                        const RunRow& run) -> std::optional<VersionRow> {
    if (!in_scope(path, run.roots)) return std::nullopt;
    auto s = stmts_->get(sql::kVersionInSnapshot);
    s->bind(1, file_id).bind(2, run.id);
    if (!s->step()) return std::nullopt;
    return internal::read_version(*s, 0);
  };
  std::vector<SnapshotChange> changes;
  for (Id file_id : candidates) {
    SnapshotChange change;
    change.file_id = file_id;
    change.path = file_path(file_id);
    change.before = version_in(file_id, change.path, *from);
    change.after = version_in(file_id, change.path, *to);
    if (!change.before && !change.after) continue;
    if (change.before && change.after && same_data(*change.before, *change.after)) continue;
    changes.push_back(std::move(change));
  }
  std::sort(changes.begin(), changes.end(),
            [](const SnapshotChange& a, const SnapshotChange& b) { return a.path < b.path; });
  return changes;
}

std::vector<std::pair<Id, std::string>> Catalog::files_named(std::string_view pattern) {
  const std::string glob(pattern);
  if (glob.empty() || glob.find('/') != std::string::npos)
    throw CatalogError("a name pattern is not empty and has no '/': " + internal::quote(pattern));
  // The literal beginning: a range of the index; the rest is fnmatch's.
  const std::string prefix = glob.substr(0, glob.find_first_of("*?[\\"));
  const std::optional<std::string> end = prefix_end(prefix);
  sqlite::ReadScope snapshot(*db_);
  auto s = stmts_->get(end ? sql::kFilesNamedBetween : sql::kFilesNamedFrom);
  s->bind(1, prefix);
  if (end) s->bind(2, *end);
  std::vector<Id> ids;
  while (s->step())
    if (::fnmatch(glob.c_str(), s->column_text(1).c_str(), 0) == 0) ids.push_back(s->column_int(0));
  std::vector<std::pair<Id, std::string>> out;
  out.reserve(ids.size());
  for (Id id : ids) out.emplace_back(id, file_path(id));
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.second < b.second; });
  return out;
}

}  // namespace mixtape::catalog
