#include "engine/backup/planner.h"

#include <algorithm>

namespace mixtape::backup {
namespace {

// The copy goal of a path, from the catalog's goals read once: the longest
// prefix that is the path or one of its directories ("/" matches all).
int goal_of(const std::vector<catalog::CopyGoal>& goals, std::string_view path) {
  int goal = 1;
  std::size_t longest = 0;
  for (const auto& g : goals) {
    const std::string& p = g.prefix;
    bool matches = p == "/" || path == p ||
                   (path.size() > p.size() && path.starts_with(p) && path[p.size()] == '/');
    if (matches && p.size() >= longest) {
      longest = p.size();
      goal = g.copies;
    }
  }
  return goal;
}

// Tapes that can take more: not full or retired, loadable, and not already
// found to have nothing (more) to take in this run; at most `count`.
std::vector<catalog::TapeRow> usable_tapes(catalog::Writer& catalog, tape::Library& library,
                                           const std::set<std::string>& exhausted,
                                           std::size_t count) {
  std::vector<catalog::TapeRow> out;
  auto in_library = library.serials();
  for (const auto& tape : catalog.tapes()) {
    if (out.size() == count) break;
    if (tape.state == catalog::TapeState::kFull || tape.state == catalog::TapeState::kRetired)
      continue;
    if (exhausted.count(tape.serial)) continue;
    if (std::find(in_library.begin(), in_library.end(), tape.serial) == in_library.end()) continue;
    out.push_back(tape);
  }
  return out;
}

}  // namespace

WorkLeft work_left(catalog::Writer& catalog, const std::set<Id>& given_up) {
  WorkLeft left;
  const auto goals = catalog.copy_goals();
  auto add = [&](int copies, std::uint64_t size) {
    left.copies = std::max(left.copies, copies);
    if (copies <= 0) return;
    left.bytes += size * static_cast<std::uint64_t>(copies);
    left.items += static_cast<std::uint64_t>(copies);
  };
  catalog.for_each_dirty([&](const catalog::FileRef& ref) {
    if (!given_up.count(ref.file_id)) add(goal_of(goals, ref.path), ref.size);
  });
  catalog.for_each_pending(0, [&](const catalog::PendingVersion& pending) {
    if (!given_up.count(pending.version.file_id))
      add(pending.version.goal - pending.version.copies, pending.version.size);
  });
  return left;
}

std::vector<Candidate> candidates_for(catalog::Writer& catalog, const std::vector<Id>& tape_ids,
                                      const std::set<Id>& given_up) {
  std::vector<Candidate> out;
  const int tapes = static_cast<int>(tape_ids.size());
  catalog.for_each_dirty([&](const catalog::FileRef& ref) {
    if (!given_up.count(ref.file_id))
      out.push_back({ref.path, ref.file_id, std::nullopt, ref.size});
  });
  catalog.for_each_pending(tape_ids.front(), [&](const catalog::PendingVersion& pending) {
    if (given_up.count(pending.version.file_id)) return;
    if (pending.version.goal - pending.version.copies < tapes) return;
    out.push_back({pending.path, pending.version.file_id, pending.version, 0});
  });
  if (tapes > 1) {
    // Versions with a copy somewhere may have it on another tape of the
    // session (a query each, but only for those).
    std::erase_if(out, [&](const Candidate& c) {
      if (!c.version || c.version->copies == 0) return false;
      for (const auto& copy : catalog.copies_of(c.version->id))
        if (std::find(tape_ids.begin(), tape_ids.end(), copy.tape.id) != tape_ids.end())
          return true;
      return false;
    });
  }
  // The catalog's order, (directory path, name): a directory's files stay
  // together in archives (what restores and directory read-ahead want), and
  // the hash stage reads each directory's scan states once.
  auto key = [](const std::string& path) {
    std::size_t slash = path.rfind('/');
    return std::pair<std::string_view, std::string_view>(
        std::string_view(path).substr(0, slash == 0 ? 1 : slash),
        std::string_view(path).substr(slash + 1));
  };
  std::stable_sort(out.begin(), out.end(), [&](const Candidate& a, const Candidate& b) {
    return key(a.path) < key(b.path);
  });
  return out;
}

std::uint64_t pending_bytes(catalog::Writer& catalog) {
  std::uint64_t total = 0;
  catalog.for_each_pending(0, [&](const catalog::PendingVersion& p) { total += p.version.size; });
  return total;
}

std::vector<TooLarge> files_larger_than_a_tape(catalog::Writer& catalog,
                                               const BackupOptions& options,
                                               std::uint64_t label_bytes, const Sealing& sealing,
                                               std::uint64_t age_header_length) {
  std::uint64_t capacity = options.label.capacity ? options.label.capacity : tape::kLto6NativeBytes;
  for (const auto& tape : catalog.tapes())
    if (tape.state != catalog::TapeState::kRetired) capacity = std::max(capacity, tape.capacity);
  // The catalog grows while the run records versions: counted twice over.
  Room room = room_for(capacity, 0, catalog.config().record_size, 2 * catalog_bytes(catalog),
                       label_bytes, sealing, age_header_length);
  if (room.empty_tape == 0)
    throw Error("tapes of " + format_size(capacity) + " are too small: file 0 alone (the label, " +
                "with this program and its source) takes " + format_size(label_bytes) +
                ", and the catalog's copies need room too");
  std::vector<TooLarge> out;
  auto check = [&](Id file_id, const std::string& path, std::uint64_t size) {
    if (fits_empty_tape(room, size, path)) return;
    out.push_back({file_id, path + " (" + format_size(size) + ") is larger than a tape (" +
                                format_size(capacity) +
                                "); it cannot be backed up: exclude it with --exclude or use "
                                "larger tapes"});
  };
  catalog.for_each_dirty(
      [&](const catalog::FileRef& ref) { check(ref.file_id, ref.path, ref.size); });
  catalog.for_each_pending(0, [&](const catalog::PendingVersion& pending) {
    check(pending.version.file_id, pending.path, pending.version.size);
  });
  return out;
}

std::vector<std::size_t> SessionPlanner::live_drives() const {
  std::vector<std::size_t> out;
  for (std::size_t d = 0; d < library_.drive_count(); ++d)
    if (!dead_.count(d)) out.push_back(d);
  return out;
}

void SessionPlanner::drop_drive(std::size_t index, const std::string& why, BackupReport& report) {
  if (!dead_.insert(index).second) return;
  std::string line =
      "drive " + std::to_string(index) + " (" + library_.drive(index).name() + "): " + why;
  progress_.warning(line + "; the drive is dropped from this run");
  report.failed_drives.push_back(line);
}

std::vector<Target> SessionPlanner::choose(std::size_t count,
                                           const std::set<std::string>& exhausted,
                                           BackupReport& report) {
  std::vector<Target> targets;
  for (auto& tape : usable_tapes(catalog_, library_, exhausted, count))
    targets.push_back({std::move(tape), nullptr, 0, false});
  std::vector<std::size_t> free = live_drives();
  auto take_drive = [&](std::size_t d) { free.erase(std::find(free.begin(), free.end(), d)); };
  std::vector<bool> placed(targets.size(), false);
  for (std::size_t i = 0; i < targets.size(); ++i) {
    for (std::size_t d : free) {
      if (library_.loaded_serial(d) == targets[i].tape.serial) {
        targets[i].drive_index = d;
        placed[i] = true;
        take_drive(d);
        break;
      }
    }
  }
  for (std::size_t i = 0; i < targets.size(); ++i) {
    if (placed[i]) continue;
    targets[i].drive_index = free.front();
    take_drive(free.front());
  }
  std::size_t at = 0;  // the drive being loaded or labelled
  try {
    for (auto& target : targets) {
      at = target.drive_index;
      target.drive = &library_.load(target.tape.serial, at);
    }
    while (targets.size() < count) {
      at = free.front();
      take_drive(at);
      std::string serial =
          new_tape_serial(catalog_, library_, options_.serial_prefix, progress_, at);
      tape::Drive& drive = library_.load(serial, at);
      catalog::TapeRow tape = label_tape(catalog_, drive, serial, options_.label, keys_);
      targets.push_back({std::move(tape), &drive, at, true});
    }
  } catch (const tape::TapeError& e) {
    if (!drive_failure(e.kind())) throw;
    drop_drive(at, e.what(), report);
    return {};
  }
  return targets;
}

}  // namespace mixtape::backup
