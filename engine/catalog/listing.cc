// The mount's views: directory listings and lookups in latest/, snapshots/
// and tapes/. Directories and files come from two keyed range queries
// (dirs by (parent, name), files by (dir, name)) merged by name.
#include <algorithm>
#include <limits>
#include <set>

#include "engine/catalog/internal.h"
#include "engine/catalog/queries.h"

namespace mixtape::catalog {
namespace {

using internal::is_under;
using internal::join_path;

// Where a path stands in a snapshot: at or below one of the run's roots
// (shown as the run saw it), above some (a directory leading to them), or
// elsewhere (not in the snapshot).
enum class Scope { kInside, kAncestor, kOutside };

Scope snapshot_scope(std::string_view path, const std::vector<std::string>& roots) {
  bool ancestor = false;
  for (const auto& root : roots) {
    if (is_under(path, root)) return Scope::kInside;
    if (is_under(root, path)) ancestor = true;
  }
  return ancestor ? Scope::kAncestor : Scope::kOutside;
}

// The queries of a view: (dirs page, dir by name, files page, file by name)
// and the value of their ?3.
struct ViewQueries {
  const char* dirs;
  const char* dir;
  const char* files;
  const char* file;
  std::int64_t key;
};

ViewQueries queries_for(const View& view) {
  switch (view.kind) {
    case View::Kind::kSnapshot:
      return {sql::kDirsSnapshot, sql::kDirSnapshot, sql::kFilesSnapshot, sql::kFileSnapshot,
              view.run_id};
    case View::Kind::kTape:
      return {sql::kDirsTape, sql::kDirTape, sql::kFilesTape, sql::kFileTape, view.tape_id};
    case View::Kind::kLatest:
      break;
  }
  return {sql::kDirsLatest, sql::kDirLatest, sql::kFilesLatest, sql::kFileLatest,
          view.backed_up_only ? 1 : 0};
}

Entry dir_entry(DirRow d) {
  Entry e;
  e.name = d.name;
  e.is_dir = true;
  e.dir = std::move(d);
  return e;
}

Entry file_entry(const sqlite::Statement& s) {
  Entry e;
  e.file_id = s.column_int(0);
  e.name = s.column_text(1);
  e.version = internal::read_version(s, 2);
  return e;
}

// The last run that saw it, with "still there" the latest of all.
Id seen_until(const VersionRow& v) {
  return v.last_seen_run ? v.last_seen_run : std::numeric_limits<Id>::max();
}
Id seen_until(const DirRow& d) {
  if (!d.first_seen_run) return 0;  // made only as an ancestor
  return d.last_seen_run ? d.last_seen_run : std::numeric_limits<Id>::max();
}

// A name that was a directory once and a file another time: show the one
// seen more recently (a directory on a tie).
Entry newer(Entry dir, Entry file) {
  return seen_until(file.version) > seen_until(dir.dir) ? std::move(file) : std::move(dir);
}

constexpr char kBeginRead[] = "BEGIN";
constexpr char kEndRead[] = "COMMIT";

// One read transaction around the queries of a listing or a lookup (unless
// the caller has one open): on their own, each query would begin and end
// its own, taking and dropping the database's and the WAL's locks, a sixth
// of the mount's CPU in `find`. It also makes the directory and file sides
// one snapshot. The statements are prepared once per connection.
class ReadSnapshot {
 public:
  explicit ReadSnapshot(StatementCache& stmts)
      : stmts_(stmts), owned_(!stmts.db().in_transaction()) {
    if (owned_) stmts_.get(kBeginRead)->run();
  }
  ReadSnapshot(const ReadSnapshot&) = delete;
  ReadSnapshot& operator=(const ReadSnapshot&) = delete;
  ~ReadSnapshot() {
    if (!owned_) return;
    try {
      stmts_.get(kEndRead)->run();
    } catch (const std::exception&) {
      // Ending a read transaction writes nothing and cannot fail short of
      // misuse; a destructor must not throw.
    }
  }

 private:
  StatementCache& stmts_;
  bool owned_;
};

}  // namespace

std::vector<Entry> Catalog::list_dir(Id dir_id, const View& view, std::string_view after,
                                     std::size_t limit) {
  if (limit == 0) return {};
  ReadSnapshot snapshot(*stmts_);
  if (view.kind == View::Kind::kSnapshot) {
    auto d = dir(dir_id);
    auto r = run(view.run_id);
    if (!d || !r) return {};
    Scope scope = snapshot_scope(d->path, r->roots);
    if (scope == Scope::kOutside) return {};
    if (scope == Scope::kAncestor) {
      // Only the components leading to the run's roots (a handful).
      std::set<std::string> names;
      for (const auto& root : r->roots) {
        if (!is_under(root, d->path) || root == d->path) continue;
        std::string_view rest =
            std::string_view(root).substr(d->path == "/" ? 1 : d->path.size() + 1);
        names.emplace(rest.substr(0, rest.find('/')));
      }
      std::vector<Entry> entries;
      for (auto it = names.upper_bound(std::string(after)); it != names.end(); ++it) {
        if (entries.size() == limit) break;
        if (auto e = lookup(dir_id, *it, view)) entries.push_back(std::move(*e));
      }
      return entries;
    }
  }

  const ViewQueries q = queries_for(view);
  const auto page = static_cast<std::int64_t>(limit);
  std::vector<Entry> dirs;
  {
    auto s = stmts_->get(q.dirs);
    s->bind(1, dir_id).bind(2, after).bind(3, q.key).bind(4, page);
    while (s->step()) dirs.push_back(dir_entry(internal::read_dir(*s, 0)));
  }
  std::vector<Entry> files;
  {
    auto s = stmts_->get(q.files);
    s->bind(1, dir_id).bind(2, after).bind(3, q.key).bind(4, page);
    while (s->step()) files.push_back(file_entry(*s));
  }
  // Most directories hold only files or only directories: no merge then.
  if (dirs.empty()) return files;
  if (files.empty()) return dirs;
  // A side that filled its page may have more rows after its last name, so
  // the merge may only run up to the smaller of the full sides' last names.
  std::optional<std::string> bound;
  if (dirs.size() == limit) bound = dirs.back().name;
  if (files.size() == limit && (!bound || files.back().name < *bound)) bound = files.back().name;

  std::vector<Entry> out;
  out.reserve(std::min(limit, dirs.size() + files.size()));
  std::size_t i = 0;
  std::size_t j = 0;
  while (out.size() < limit && (i < dirs.size() || j < files.size())) {
    const bool take_dir = j == files.size() || (i < dirs.size() && dirs[i].name <= files[j].name);
    const std::string& name = take_dir ? dirs[i].name : files[j].name;
    if (bound && name > *bound) break;
    if (take_dir && j < files.size() && dirs[i].name == files[j].name) {
      out.push_back(newer(std::move(dirs[i++]), std::move(files[j++])));
    } else if (take_dir) {
      out.push_back(std::move(dirs[i++]));
    } else {
      out.push_back(std::move(files[j++]));
    }
  }
  return out;
}

std::optional<Entry> Catalog::lookup(Id dir_id, std::string_view name, const View& view) {
  if (!internal::is_valid_name(name)) return std::nullopt;
  ReadSnapshot snapshot(*stmts_);
  const ViewQueries q = queries_for(view);
  const char* dir_query = q.dir;
  bool files_visible = true;
  if (view.kind == View::Kind::kSnapshot) {
    auto d = dir(dir_id);
    auto r = run(view.run_id);
    if (!d || !r) return std::nullopt;
    switch (snapshot_scope(join_path(d->path, name), r->roots)) {
      case Scope::kOutside:
        return std::nullopt;
      case Scope::kAncestor:
        // A directory leading to a root is shown whether or not it was scanned.
        dir_query = sql::kDirLatest;
        files_visible = false;
        break;
      case Scope::kInside:
        break;
    }
  }
  std::optional<Entry> dir_found;
  {
    auto s = stmts_->get(dir_query);
    s->bind(1, dir_id).bind(2, name);
    if (dir_query != sql::kDirLatest) s->bind(3, q.key);
    if (s->step()) dir_found = dir_entry(internal::read_dir(*s, 0));
  }
  std::optional<Entry> file_found;
  if (files_visible) {
    auto s = stmts_->get(q.file);
    s->bind(1, dir_id).bind(2, name).bind(3, q.key);
    if (s->step()) file_found = file_entry(*s);
  }
  if (dir_found && file_found) return newer(std::move(*dir_found), std::move(*file_found));
  return dir_found ? std::move(dir_found) : std::move(file_found);
}

std::vector<DirRow> Catalog::subdirs(Id dir_id, std::string_view after, std::size_t limit) {
  std::vector<DirRow> out;
  if (limit == 0) return out;
  auto s = stmts_->get(sql::kDirsLatest);
  s->bind(1, dir_id)
      .bind(2, after)
      .bind(3, std::int64_t{0})
      .bind(4, static_cast<std::int64_t>(limit));
  while (s->step()) out.push_back(internal::read_dir(*s, 0));
  return out;
}

std::optional<Entry> Catalog::resolve(std::string_view path, const View& view) {
  if (!internal::is_valid_path(path)) return std::nullopt;
  if (path == "/") {
    auto root = dir(kRootDirId);
    if (!root) return std::nullopt;
    return dir_entry(std::move(*root));
  }
  auto [parent, name] = internal::split_path(path);
  auto parent_id = internal::dir_id_by_path(*stmts_, parent);
  if (!parent_id) return std::nullopt;
  return lookup(*parent_id, name, view);
}

void Catalog::walk(std::string_view path, const View& view,
                   const std::function<void(const std::string& path, const Entry&)>& fn) {
  auto top = resolve(path, view);
  if (!top) return;
  if (!top->is_dir) {
    fn(std::string(path), *top);
    return;
  }
  // Depth first with an explicit stack (trees can be deep), each level
  // reading its directory a page at a time.
  struct Level {
    Id dir;
    std::string path;
    std::string after;
    std::vector<Entry> page;
    std::size_t next = 0;
  };
  std::vector<Level> stack;
  stack.push_back({top->dir.id, std::string(path), "", {}, 0});
  while (!stack.empty()) {
    Level& level = stack.back();
    if (level.next == level.page.size()) {
      level.page = list_dir(level.dir, view, level.after, 1024);
      level.next = 0;
      if (level.page.empty()) {
        stack.pop_back();
        continue;
      }
      level.after = level.page.back().name;
    }
    Entry entry = std::move(level.page[level.next++]);
    std::string child = join_path(level.path, entry.name);
    fn(child, entry);
    if (entry.is_dir) stack.push_back({entry.dir.id, std::move(child), "", {}, 0});
  }
}

}  // namespace mixtape::catalog
