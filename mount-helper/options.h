// mount.mixtape's command line: the calling convention of mount(8) helpers,
// `mount.mixtape SOURCE DIR [-sfnv] [-o options]`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mixtape::mount {

enum class RecallPolicy { kOpen, kRead, kNever };

struct Options {
  std::string source;      // a catalog database, or a tape (device or .tap image); absolute
  std::string mountpoint;  // absolute
  bool sloppy = false;     // -s: ignore options we do not know
  bool fake = false;       // -f: do everything but the mount (mount(8)'s meaning)
  bool verbose = false;    // -v
  bool help = false;       // --help: print the usage and exit
  bool version = false;    // -V, --version: print the version and exit
  bool foreground = false;
  bool debug = false;
  bool allow_other = false;
  std::string identity;
  std::string passphrase_file;
  std::string device;
  std::string library;
  std::string changer;
  std::string cache;
  std::uint64_t cache_size = 0;  // 0: the default
  std::optional<double> wait_seconds;
  // A drive with nothing to read for this long is unloaded (an image
  // closed), so that a backup can use the tape.
  double idle_seconds = 60;
  RecallPolicy recall = RecallPolicy::kOpen;
  std::vector<std::string> ignored;  // options accepted and ignored (noauto, user, ...)
};

// Throws mixtape::Error with one clear line for anything it refuses (rw, an
// unknown option without -s, a malformed value, missing SOURCE or DIR).
// mount(8) always puts "rw" or "ro" first in the options it passes a helper,
// "rw" when the user said nothing; with called_by_mount that leading "rw" is
// taken as mount's default rather than a request (the mount is read-only).
Options parse_options(const std::vector<std::string>& argv, bool called_by_mount = false);

}  // namespace mixtape::mount
