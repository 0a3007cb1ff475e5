// mixtape mount SOURCE MOUNTPOINT [-o ...]: the same as mount.mixtape, which
// it runs (the front ends stay separate programs).
#include <unistd.h>

#include <filesystem>

#include "cli/commands.h"
#include "engine/common/common.h"

namespace mixtape::cli {
namespace {

std::string find_mount_helper() {
  std::error_code error;
  auto self = std::filesystem::read_symlink("/proc/self/exe", error).parent_path();
  std::vector<std::filesystem::path> candidates = {
      self / "mount.mixtape",
      self.parent_path() / "mount-helper" / "mount.mixtape",  // the build tree
      self.parent_path() / "sbin" / "mount.mixtape",          // installed beside bin/
      "/usr/local/sbin/mount.mixtape",
      "/usr/sbin/mount.mixtape",
      "/sbin/mount.mixtape"};
  for (const auto& c : candidates)
    if (::access(c.c_str(), X_OK) == 0) return c.string();
  throw Error("mount.mixtape not found next to mixtape or in /sbin; install mixtape");
}

}  // namespace

void add_mount_command(CLI::App& app) {
  auto* command = app.add_subcommand("mount", "Mount a catalog read-only (as mount.mixtape)");
  command->allow_extras();
  command->prefix_command();
  command->callback([command] {
    std::string helper = find_mount_helper();
    std::vector<std::string> argv = {helper};
    for (const auto& extra : command->remaining()) argv.push_back(extra);
    std::vector<char*> raw;
    for (auto& a : argv) raw.push_back(a.data());
    raw.push_back(nullptr);
    ::execv(helper.c_str(), raw.data());
    throw_errno("cannot run " + helper);
  });
}

}  // namespace mixtape::cli
