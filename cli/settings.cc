#include "cli/settings.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>

#include "engine/common/common.h"

namespace mixtape::cli {
namespace {

std::string trim(std::string_view s) {
  const auto begin = s.find_first_not_of(" \t\r");
  if (begin == std::string_view::npos) return "";
  const auto end = s.find_last_not_of(" \t\r");
  return std::string(s.substr(begin, end - begin + 1));
}

// "~/x" is $HOME/x, as a shell would have it.
std::string expand_home(const std::string& value) {
  if (value != "~" && !value.starts_with("~/")) return value;
  const char* home = std::getenv("HOME");
  if (!home || !*home) return value;
  return std::string(home) + value.substr(1);
}

}  // namespace

const std::vector<std::string>& Settings::keys() {
  static const std::vector<std::string> kKeys = {"catalog",  "library",  "device", "changer",
                                                 "identity", "capacity", "copies"};
  return kKeys;
}

std::string Settings::environment_variable(std::string_view key) {
  if (key == "capacity" || key == "copies") return "";
  std::string name = "MIXTAPE_";
  for (char c : key) name += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return name;
}

std::string Settings::file_path() {
  return user_path_or_root(UserDir::kConfig, "mixtape/config");
}

Settings Settings::load() {
  Settings settings;
  settings.file_ = file_path();
  std::ifstream in(settings.file_);
  if (!in) return settings;  // no file: nothing set there
  int number = 0;
  for (std::string text; std::getline(in, text);) {
    ++number;
    const std::string line = trim(text);
    if (line.empty() || line[0] == '#') continue;
    const auto eq = line.find('=');
    const std::string where = settings.file_ + " line " + std::to_string(number);
    if (eq == std::string::npos)
      throw Error(where + ": expected `key = value`, not '" + line + "'");
    Line entry{trim(std::string_view(line).substr(0, eq)),
               trim(std::string_view(line).substr(eq + 1)), number};
    const auto& known = keys();
    if (std::find(known.begin(), known.end(), entry.key) == known.end())
      throw Error(where + ": unknown setting '" + entry.key +
                  "' (known: catalog, library, device, changer, identity, capacity, copies)");
    if (entry.value.empty()) throw Error(where + ": " + entry.key + " has no value");
    // The last line for a key wins, as in most such files.
    std::erase_if(settings.lines_, [&](const Line& l) { return l.key == entry.key; });
    settings.lines_.push_back(std::move(entry));
  }
  if (in.bad()) throw Error("cannot read " + settings.file_);
  return settings;
}

std::optional<Setting> Settings::get(std::string_view key) const {
  if (const std::string variable = environment_variable(key); !variable.empty()) {
    if (const char* value = std::getenv(variable.c_str()); value && *value)
      return Setting{value, "environment " + variable};
  }
  for (const auto& line : lines_)
    if (line.key == key)
      return Setting{expand_home(line.value), file_ + " line " + std::to_string(line.number)};
  return std::nullopt;
}

Settings::Drive Settings::drive() const {
  Drive from_environment;
  bool any = false;
  auto environment = [&](const char* key, std::optional<Setting>& out) {
    const std::string variable = environment_variable(key);
    if (const char* value = std::getenv(variable.c_str()); value && *value) {
      out = Setting{value, "environment " + variable};
      any = true;
    }
  };
  environment("device", from_environment.device);
  environment("library", from_environment.library);
  environment("changer", from_environment.changer);
  if (any) return from_environment;
  Drive from_file;
  for (const auto& line : lines_) {
    Setting setting{expand_home(line.value), file_ + " line " + std::to_string(line.number)};
    if (line.key == "device") from_file.device = setting;
    if (line.key == "library") from_file.library = setting;
    if (line.key == "changer") from_file.changer = setting;
  }
  return from_file;
}

}  // namespace mixtape::cli
