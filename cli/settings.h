// Naming the drive once: settings from the command line, else the
// environment (MIXTAPE_CATALOG, MIXTAPE_LIBRARY, MIXTAPE_DEVICE,
// MIXTAPE_CHANGER, MIXTAPE_IDENTITY), else the config file
// $XDG_CONFIG_HOME/mixtape/config (~/.config/mixtape/config) of plain
// `key = value` lines, else the built-in default. docs/CLI.md, "Settings".
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mixtape::cli {

// A value and where it came from ("environment MIXTAPE_LIBRARY",
// "/root/.config/mixtape/config line 3", "default").
struct Setting {
  std::string value;
  std::string source;
};

class Settings {
 public:
  // The keys a config file may set, in the order `mixtape config` shows them.
  static const std::vector<std::string>& keys();
  // The environment variable of a key ("" for none: capacity, copies).
  static std::string environment_variable(std::string_view key);
  // $XDG_CONFIG_HOME/mixtape/config, else ~/.config/mixtape/config.
  static std::string file_path();

  // Reads the environment and the config file (if it exists). A line that
  // is not `key = value`, `# comment` or blank, and an unknown key, are
  // errors naming the file and line.
  static Settings load();

  // The key's value from the environment, else the file; none if neither.
  std::optional<Setting> get(std::string_view key) const;
  // The drive (device, library, changer) from the first of environment and
  // file that names any of them: they go together, so that a library in
  // the file never adds to a device in the environment.
  struct Drive {
    std::optional<Setting> device, library, changer;
  };
  Drive drive() const;

 private:
  struct Line {
    std::string key;
    std::string value;
    int number = 0;
  };
  std::string file_;
  std::vector<Line> lines_;
};

}  // namespace mixtape::cli
