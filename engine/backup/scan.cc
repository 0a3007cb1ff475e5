// scan(): walk the roots, compare each path with its stored scan state, and
// mark only what changed dirty. Unchanged files and directories cost one
// fstatat and no write: their versions stay open (catalog.h).
#include <cerrno>
#include <map>
#include <optional>
#include <set>

#include "engine/backup/attributes.h"
#include "engine/backup/backup.h"
#include "engine/backup/hasher.h"
#include "engine/backup/walker.h"

namespace mixtape::backup {
namespace {

// Commits the scan every so many catalog writes, so a huge scan neither
// holds one enormous transaction nor pays an fsync per file.
constexpr std::uint64_t kWritesPerCommit = 20000;

class ScanVisitor final : public WalkVisitor {
 public:
  ScanVisitor(catalog::Writer& catalog, catalog::Id run_id, Progress& progress, ScanReport& report)
      : catalog_(catalog),
        run_id_(run_id),
        previous_run_(catalog.previous_run(run_id)),
        progress_(progress),
        report_(report) {
    batch_.begin();
  }

  void finish() { batch_.commit(); }

  void directory(const std::string& path, const struct stat& st) override {
    ++report_.dirs;
    if (!stack_.empty()) stack_.back().seen_dirs.insert(name_of(path));
    DirState state;
    state.id = catalog_.ensure_dir(path);
    state.path = path;
    catalog_.touch_dir(state.id, attributes_of(st, names_), run_id_);
    for (auto& entry : catalog_.scan_entries(state.id))
      state.known.emplace(entry.name, std::move(entry));
    stack_.push_back(std::move(state));
    wrote();
  }

  void entry(const std::string& path, const struct stat& st) override {
    if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) {
      ++report_.skipped;
      progress_.warning("skipped special file " + path);
      return;
    }
    ++report_.files;
    report_.bytes += static_cast<std::uint64_t>(st.st_size);
    progress_.advance(0, 1, path);
    if (stack_.empty()) {
      // A root that is a single file.
      auto dir = parent_of(path);
      DirState state;
      state.id = catalog_.ensure_dir(dir);
      state.path = dir;
      for (auto& e : catalog_.scan_entries(state.id)) state.known.emplace(e.name, std::move(e));
      stack_.push_back(std::move(state));
      // No directory_done for this pseudo-directory: its other files are
      // not part of the scan.
      record(name_of(path), st);
      stack_.pop_back();
      return;
    }
    record(name_of(path), st);
  }

  void directory_done(const std::string& path) override {
    DirState& state = stack_.back();
    for (const auto& [name, entry] : state.known) {
      if (state.listing_incomplete) break;
      if (state.seen_files.count(name) || !entry.state) continue;
      ++report_.vanished;
      catalog_.mark_absent(entry.file_id, previous_run_);
      wrote();
    }
    if (!state.listing_incomplete) mark_vanished_subdirs(state);
    (void)path;
    stack_.pop_back();
  }

  void problem(const std::string& path, const std::string& what, int error) override {
    ++report_.problems;
    progress_.warning(path + ": " + what);
    // An entry that is there but cannot be read right now (permissions, I/O)
    // is not a deletion: counting it as seen keeps its scan state and
    // versions as they were, instead of recording it as gone and hashing it
    // all again once it is readable. Only ENOENT means it is really gone.
    if (error == ENOENT || stack_.empty()) return;
    if (path == stack_.back().path) {
      // The listing itself failed: what it did not return is not gone.
      stack_.back().listing_incomplete = true;
      return;
    }
    if (parent_of(path) != stack_.back().path) return;
    stack_.back().seen_files.insert(name_of(path));
    stack_.back().seen_dirs.insert(name_of(path));
  }

 private:
  struct DirState {
    catalog::Id id = 0;
    std::string path;
    std::map<std::string, catalog::ScanEntry> known;
    std::set<std::string> seen_files;
    std::set<std::string> seen_dirs;
    bool listing_incomplete = false;
  };

  static std::string name_of(const std::string& path) { return path.substr(path.rfind('/') + 1); }
  static std::string parent_of(const std::string& path) {
    auto slash = path.rfind('/');
    return slash == 0 ? "/" : path.substr(0, slash);
  }

  // Updates the scan state of one file.
  void record(const std::string& name, const struct stat& st) {
    DirState& dir = stack_.back();
    dir.seen_files.insert(name);
    catalog::ScanState now{identity_of(st)};
    auto known = dir.known.find(name);
    if (known != dir.known.end() && known->second.state) {
      const catalog::ScanState& before = *known->second.state;
      if (before.identity == now.identity && before.readable) {
        if (before.dirty) count_dirty(name, st);  // left dirty by an earlier run
        return;                                   // unchanged: its version stays open
      }
      ++report_.changed;
      changed(known->second.file_id, name, st, now);
      return;
    }
    ++report_.new_files;
    // A path known from before (gone for a while, or recovered from tape):
    // whatever its latest version says ended with the last run.
    changed(known != dir.known.end() ? known->second.file_id : catalog_.ensure_file(dir.id, name),
            name, st, now);
  }

  void changed(catalog::Id file_id, const std::string& name, const struct stat& st,
               catalog::ScanState now) {
    count_dirty(name, st);
    now.dirty = true;
    catalog_.set_scan_state(file_id, now);
    catalog_.close_latest_version(file_id, previous_run_);
    wrote();
  }

  void count_dirty(const std::string& name, const struct stat& st) {
    if (!S_ISREG(st.st_mode)) return;
    std::uint64_t size = static_cast<std::uint64_t>(st.st_size);
    report_.dirty_bytes += size;
    if (size > report_.largest_dirty_size || report_.largest_dirty_path.empty()) {
      report_.largest_dirty_size = size;
      report_.largest_dirty_path = join_path(stack_.back().path, name);
    }
  }

  void mark_vanished_subdirs(const DirState& state) {
    std::string after;
    for (;;) {
      // Directories only: listing the files too (and their versions) was a
      // quarter of an unchanged rescan.
      auto dirs = catalog_.subdirs(state.id, after, 1024);
      if (dirs.empty()) break;
      for (const auto& d : dirs) {
        const bool open = d.first_seen_run != 0 && d.last_seen_run == 0;
        if (open && !state.seen_dirs.count(d.name)) {
          catalog_.mark_dir_absent(d.id, previous_run_);
          wrote();
        }
      }
      if (dirs.size() < 1024) break;  // the last page
      after = dirs.back().name;
    }
  }

  void wrote() { batch_.wrote(); }

  catalog::Writer& catalog_;
  catalog::Id run_id_;
  catalog::Id previous_run_;  // the last run that can have seen what this one finds gone
  Progress& progress_;
  ScanReport& report_;
  OwnerNames names_;
  std::vector<DirState> stack_;
  catalog::WriteBatch batch_{catalog_, kWritesPerCommit};
};

}  // namespace

ScanReport scan(catalog::Writer& catalog, const std::vector<std::string>& roots,
                const WalkOptions& options, catalog::Id run_id, Progress& progress) {
  ScanReport report;
  progress.phase("scan", 0, 0);
  Walker walker(options);
  for (const auto& root : roots) {
    ScanVisitor visitor(catalog, run_id, progress, report);
    walker.walk(root, visitor);
    visitor.finish();
  }
  return report;
}

}  // namespace mixtape::backup
