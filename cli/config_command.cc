// mixtape config: the settings in effect and where each came from, written
// as a config file would hold them (so the output can start one).
#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "cli/context.h"
#include "cli/settings.h"
#include "engine/tape/tape.h"

namespace mixtape::cli {
namespace {

void show(const std::string& key, const std::optional<Setting>& setting) {
  if (!setting) {
    std::printf("# %s: not set\n", key.c_str());
    return;
  }
  const std::string line = key + " = " + printable(setting->value);
  std::printf("%-48s # %s\n", line.c_str(), setting->source.c_str());
}

void config() {
  const std::string path = Settings::file_path();
  const bool exists = std::filesystem::exists(path);
  std::printf("# config file: %s%s\n", path.c_str(), exists ? "" : " (there is none)");
  const Settings settings = Settings::load();
  auto catalog = settings.get("catalog");
  show("catalog", catalog ? catalog : Setting{default_catalog_path(), "default"});
  const Settings::Drive drive = settings.drive();
  show("library", drive.library);
  show("device", drive.device);
  show("changer", drive.changer);
  auto identity = settings.get("identity");
  if (!identity && std::filesystem::exists(default_identity_path()))
    identity = Setting{default_identity_path(), "default"};
  show("identity", identity);
  auto capacity = settings.get("capacity");
  show("capacity",
       capacity ? capacity
                : Setting{std::to_string(tape::kLto6NativeBytes), "default (LTO-6, 2.5 TB)"});
  auto copies = settings.get("copies");
  show("copies", copies ? copies : Setting{"2", "default"});
}

}  // namespace

void add_config_command(CLI::App& app) {
  auto* command = app.add_subcommand(
      "config", "The settings in effect (catalog, drive, identity, ...) and where each came from");
  command->callback([] { config(); });
}

}  // namespace mixtape::cli
