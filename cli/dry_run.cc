#include "cli/dry_run.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

namespace mixtape::cli {
namespace {

struct Planned {
  std::string path;
  std::uint64_t size = 0;
  int copies = 0;
  bool hashed = true;  // false: new or changed, not hashed yet
};

std::string count(std::uint64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

// The catalog as it is now, in a scratch file the scan may change.
std::string copy_catalog(const std::string& from, const std::string& to) {
  auto source = open_checked(from);
  auto vacuum = source.database().prepare("VACUUM INTO ?1");
  vacuum.bind(1, to);
  vacuum.run();
  return to;
}

}  // namespace

void dry_run_backup(const DryRun& run) {
  ScratchFile scratch(temp_directory(run.temp_dir), "dry-run");
  copy_catalog(run.catalog, scratch.path());
  auto catalog = catalog::Catalog::open(scratch.path());
  if (run.copies) {
    if (*run.copies < 1) throw Error("--copies must be at least 1");
    for (const auto& root : run.roots) catalog.set_copy_goal(root, *run.copies);
  }
  backup::WalkOptions walk = run.walk;
  for (const char* suffix : {"", "-journal", "-wal", "-shm"})
    walk.skip_paths.push_back(scratch.path() + suffix);
  {
    auto progress = make_progress(run.progress);
    const auto run_id = catalog.begin_run(catalog::RunKind::kBackup, run.roots);
    backup::scan(catalog, run.roots, walk, run_id, *progress);
  }

  std::vector<Planned> planned;
  catalog.for_each_dirty([&](const catalog::FileRef& ref) {
    planned.push_back({ref.path, ref.size, catalog.goal_for(ref.path), false});
  });
  catalog.for_each_pending(0, [&](const catalog::PendingVersion& p) {
    planned.push_back({p.path, p.version.size, p.version.goal - p.version.copies, true});
  });
  std::sort(planned.begin(), planned.end(),
            [](const Planned& a, const Planned& b) { return a.path < b.path; });
  std::uint64_t files = 0, bytes = 0, copies = 0, copy_bytes = 0, unhashed = 0;
  int most = 0;
  for (const auto& p : planned) {
    if (p.copies <= 0) continue;
    std::printf("%14llu  x%d  %s%s\n", static_cast<unsigned long long>(p.size), p.copies,
                p.path.c_str(), p.hashed ? "" : "  (new or changed)");
    ++files;
    bytes += p.size;
    copies += static_cast<std::uint64_t>(p.copies);
    copy_bytes += p.size * static_cast<std::uint64_t>(p.copies);
    unhashed += p.hashed ? 0 : 1;
    most = std::max(most, p.copies);
  }

  // The tapes the run would write to: those that take more (in the
  // library, when one is named), in the writer's order, then new ones.
  std::optional<std::vector<std::string>> present;
  if (!run.drive.device.empty() || !run.drive.library.empty() || !run.drive.changer.empty()) {
    if (!run.drive.library.empty() && !std::filesystem::exists(run.drive.library)) {
      present.emplace();  // a library still to be made: no tape in it yet
    } else {
      OpenedLibrary opened(run.drive, TapeAccess::kRead);
      present = opened.library().serials();
    }
  }
  const std::uint64_t capacity =
      run.drive.capacity.empty() ? tape::kLto6NativeBytes : parse_size(run.drive.capacity);
  std::vector<std::string> tapes;
  std::uint64_t room = 0;
  for (const auto& t : catalog.tapes()) {
    if (t.state == catalog::TapeState::kFull || t.state == catalog::TapeState::kRetired) continue;
    if (present && std::find(present->begin(), present->end(), t.serial) == present->end())
      continue;
    if (copy_bytes == 0) break;
    if (tapes.size() >= static_cast<std::size_t>(most) && room >= copy_bytes) break;
    const std::uint64_t free = t.capacity > t.bytes_used ? t.capacity - t.bytes_used : 0;
    tapes.push_back(t.serial + " (" + catalog::to_string(t.state) + ", " + format_size(free) +
                    " free)");
    room += free;
  }
  std::uint64_t new_tapes = 0;
  if (copy_bytes > 0) {
    while (tapes.size() + new_tapes < static_cast<std::size_t>(most) || room < copy_bytes) {
      ++new_tapes;
      room += capacity;
    }
  }
  std::printf("would write %s (%s) as %s (%s)\n", count(files, "file", "files").c_str(),
              format_size(bytes).c_str(), count(copies, "copy", "copies").c_str(),
              format_size(copy_bytes).c_str());
  if (copy_bytes > 0) {
    std::string to;
    for (const auto& t : tapes) to += (to.empty() ? "" : ", ") + t;
    if (new_tapes > 0)
      to += (to.empty() ? "" : ", and ") + count(new_tapes, "new tape", "new tapes") + " of " +
            format_size(capacity);
    std::printf("to tapes: %s\n", to.c_str());
  }
  if (unhashed > 0)
    std::printf(
        "%s new or changed: hashing (which a dry run does not do) may find content already on "
        "tape, which a backup does not write again\n",
        count(unhashed, "file is", "files are").c_str());
  std::printf("nothing was written (--dry-run)\n");
}

}  // namespace mixtape::cli
