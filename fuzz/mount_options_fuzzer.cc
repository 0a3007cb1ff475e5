// mount.mixtape's command line (mount-helper/options.cc): what mount(8),
// fstab and users pass it. The input is an argument vector: arguments
// separated by NUL bytes (the first byte chooses whether mount(8) called
// the helper, which changes how a leading "rw" is read).
//
// Checked besides crashes: a refusal is a mixtape::Error of one line (the
// helper prints it as is, and a value with a newline must not forge a second
// line); an accepted command line has an absolute, normalised mount point,
// a source, and values the helper can use as they are (a wait that converts
// to whole seconds).
#include <cmath>
#include <string>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "mount-helper/options.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace mixtape;
  if (size == 0) return 0;
  const bool called_by_mount = data[0] & 1;
  std::vector<std::string> argv = {"mount.mixtape"};
  std::string current;
  for (std::size_t i = 1; i < size; ++i) {
    if (data[i] == 0) {
      argv.push_back(std::move(current));
      current.clear();
    } else {
      current += static_cast<char>(data[i]);
    }
  }
  argv.push_back(std::move(current));

  mount::Options options;
  try {
    options = mount::parse_options(argv, called_by_mount);
  } catch (const Error& e) {
    FUZZ_CHECK(std::string_view(e.what()).find_first_of("\n\r") == std::string_view::npos);
    return 0;
  }
  // --help and --version end the command line's meaning: nothing is mounted.
  if (options.help || options.version) return 0;
  FUZZ_CHECK(!options.source.empty());
  FUZZ_CHECK(!options.mountpoint.empty() && options.mountpoint.front() == '/');
  FUZZ_CHECK(options.mountpoint == "/" || options.mountpoint.back() != '/');
  if (options.wait_seconds) {
    FUZZ_CHECK(std::isfinite(*options.wait_seconds) && *options.wait_seconds >= 0 &&
               *options.wait_seconds < 1e18);
  }
  return 0;
}
