#include "mount-helper/options.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <set>

#include "engine/common/common.h"

namespace mixtape::mount {
namespace {

// What mount(8) and fstab pass that means nothing to a read-only FUSE mount.
const std::set<std::string>& ignored_options() {
  static const std::set<std::string> kIgnored = {
      "ro",     "noauto",   "auto",     "user",    "nouser", "users",  "_netdev",
      "nofail", "defaults", "exec",     "noexec",  "suid",   "nosuid", "dev",
      "nodev",  "async",    "relatime", "noatime", "atime"};
  return kIgnored;
}

// A value as it may appear in the helper's one-line error: control bytes
// (a newline in an fstab value would forge a second line) as \xNN.
std::string printable(std::string_view value) {
  return "'" + mixtape::printable(value) + "'";
}

// Whole seconds are what the helper waits for; a year is far beyond any
// operator's patience, and the bound keeps the conversion defined (strtod
// also reads "nan", "inf" and 1e400).
constexpr double kMaxWaitSeconds = 366.0 * 24 * 3600;

double parse_seconds(const std::string& key, const std::string& text) {
  char* end = nullptr;
  double value = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !std::isfinite(value) || value < 0 || value > kMaxWaitSeconds)
    throw Error(key + "= takes seconds (at most a year), not " + printable(text));
  return value;
}

std::uint64_t parse_cache_size(const std::string& text) {
  try {
    return parse_size(text);
  } catch (const Error&) {
    throw Error("cache_size= takes a size such as 512M or 2G, not " + printable(text));
  }
}

void apply_option(Options& options, const std::string& option) {
  auto eq = option.find('=');
  std::string key = option.substr(0, eq);
  std::string value = eq == std::string::npos ? "" : option.substr(eq + 1);
  auto needs_value = [&] {
    if (eq == std::string::npos || value.empty()) throw Error("option " + key + " needs a value");
  };
  if (key == "rw") throw Error("mixtape mounts are read-only; remove 'rw'");
  if (ignored_options().count(key) || key.rfind("x-", 0) == 0) {
    options.ignored.push_back(option);
  } else if (key == "foreground") {
    options.foreground = true;
  } else if (key == "debug") {
    options.debug = options.foreground = true;
  } else if (key == "allow_other") {
    options.allow_other = true;
  } else if (key == "identity") {
    needs_value();
    options.identity = value;
  } else if (key == "passphrase_file") {
    needs_value();
    options.passphrase_file = value;
  } else if (key == "device") {
    needs_value();
    options.device = value;
  } else if (key == "library") {
    needs_value();
    options.library = value;
  } else if (key == "changer") {
    needs_value();
    options.changer = value;
  } else if (key == "cache") {
    needs_value();
    options.cache = value;
  } else if (key == "cache_size") {
    needs_value();
    options.cache_size = parse_cache_size(value);
  } else if (key == "wait") {
    needs_value();
    options.wait_seconds = parse_seconds(key, value);
  } else if (key == "idle") {
    needs_value();
    options.idle_seconds = parse_seconds(key, value);
  } else if (key == "recall") {
    needs_value();
    if (value == "open")
      options.recall = RecallPolicy::kOpen;
    else if (value == "read")
      options.recall = RecallPolicy::kRead;
    else if (value == "never")
      options.recall = RecallPolicy::kNever;
    else
      throw Error("recall= takes open, read or never, not " + printable(value));
  } else if (!options.sloppy) {
    throw Error("unknown option " + printable(key) + " (mount -s ignores unknown options)");
  } else {
    options.ignored.push_back(option);
  }
}

}  // namespace

Options parse_options(const std::vector<std::string>& argv, bool called_by_mount) {
  Options options;
  std::vector<std::string> positional;
  std::vector<std::string> option_lists;
  for (std::size_t i = 1; i < argv.size(); ++i) {
    const std::string& arg = argv[i];
    if (arg == "--help") {
      options.help = true;
      return options;
    } else if (arg == "--version") {
      options.version = true;
      return options;
    } else if (arg == "-o") {
      if (++i == argv.size()) throw Error("-o needs a list of options");
      option_lists.push_back(argv[i]);
    } else if (arg.rfind("-o", 0) == 0 && arg.size() > 2) {
      option_lists.push_back(arg.substr(2));
    } else if (arg.size() > 1 && arg[0] == '-' && arg != "--") {
      for (char flag : arg.substr(1)) {
        switch (flag) {
          case 's':
            options.sloppy = true;
            break;
          case 'f':
            options.fake = true;
            break;
          case 'n':
            break;  // no mtab: there is none to write
          case 'v':
            options.verbose = true;
            break;
          case 'V':
            options.version = true;
            return options;
          default:
            throw Error("unknown flag " + printable(std::string("-") + flag));
        }
      }
    } else {
      positional.push_back(arg);
    }
  }
  // Flags may follow -o lists (mount(8) puts -o last), so options are applied
  // once all flags, -s included, are known.
  if (called_by_mount && !option_lists.empty()) {
    std::string& first = option_lists.front();
    if (first == "rw" || first.rfind("rw,", 0) == 0) first.erase(0, first.size() > 2 ? 3 : 2);
  }
  for (const auto& list : option_lists) {
    std::size_t start = 0;
    while (start <= list.size()) {
      std::size_t comma = list.find(',', start);
      if (comma == std::string::npos) comma = list.size();
      if (comma > start) apply_option(options, list.substr(start, comma - start));
      start = comma + 1;
    }
  }
  if (positional.size() != 2 || positional[0].empty() || positional[1].empty())
    throw Error("usage: mount.mixtape SOURCE DIR [-sfnv] [-o options]");
  try {
    // Absolute, as the daemon leaves the working directory and opens the
    // catalog again from every thread: a relative "catalog.db" mounted,
    // then failed every read with EIO.
    options.source = std::filesystem::absolute(positional[0]).lexically_normal().string();
    options.mountpoint = std::filesystem::absolute(positional[1]).lexically_normal().string();
  } catch (const std::filesystem::filesystem_error& e) {
    // A relative DIR needs the working directory, which may be gone.
    throw Error("cannot resolve the mount point " + printable(positional[1]) + ": " +
                e.code().message());
  }
  // lexically_normal keeps a root written "//" or "///" as it is.
  while (options.mountpoint.size() > 1 && options.mountpoint.back() == '/')
    options.mountpoint.pop_back();
  return options;
}

}  // namespace mixtape::mount
