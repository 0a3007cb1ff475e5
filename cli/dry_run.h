// mixtape backup --dry-run: what a backup would write, from a scan into a
// copy of the catalog; the catalog itself and the tapes are not touched.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "cli/context.h"
#include "engine/backup/backup.h"

namespace mixtape::cli {

struct DryRun {
  std::string catalog;
  std::vector<std::string> roots;  // absolute
  backup::WalkOptions walk;
  std::optional<int> copies;
  std::string serial_prefix;
  std::string temp_dir;
  DriveFlags drive;  // may name nothing: then every usable tape counts
  ProgressFlags progress;
};

// Prints the files that would be written (size, copies, path) and a summary:
// how many copies and bytes, and to which tapes. Files found new or changed
// are counted as written at their copy goal: hashing (not done here) may
// find some of them already on tape.
void dry_run_backup(const DryRun& run);

}  // namespace mixtape::cli
