// Helpers of the foreign-tape tests: trees of files, real GNU tar output
// made into .tap images (tar_tap.py), and the built binaries run with a
// home, cache and catalog of the test's own.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "tests/support/test_support.h"

namespace mixtape::foreign::testing {

using namespace mixtape::test_support;

inline constexpr char kMixtape[] = MIXTAPE_BINARY_DIR "/cli/mixtape";
inline constexpr char kMountHelper[] = MIXTAPE_BINARY_DIR "/mount-helper/mount.mixtape";
inline constexpr char kTarTap[] = MIXTAPE_SOURCE_DIR "/tests/foreign/tar_tap.py";

class ForeignFixture {
 public:
  std::string file(const std::string& name) const { return dir_.file(name); }
  std::string catalog() const { return dir_ / "catalog.db"; }
  std::string cache() const { return dir_ / "home/.cache/mixtape/stage"; }

  // A tree with what tar dialects differ on: a name longer than ustar's 100
  // bytes, a symlink, a hard link, an empty file, files across records.
  void make_tree(const std::string& root, std::uint32_t seed) {
    write_file(root + "/a/big.bin", random_text(300000, seed));
    write_file(root + "/a/small.txt", "hello " + std::to_string(seed) + "\n");
    write_file(root + "/" + std::string(120, 'n') + "/" + std::string(90, 'm') + ".dat",
               random_text(70000, seed + 1));
    write_file(root + "/empty", "");
    write_file(root + "/b/c/d/deep.txt", random_text(20000, seed + 2));
    sh("ln -s small.txt " + shell_quote(root + "/a/link") + " && ln " +
       shell_quote(root + "/a/small.txt") + " " + shell_quote(root + "/a/hard.txt"));
  }

  // GNU tar's output: `tar ARGS -cf OUT -C ROOT .`
  std::string tar(const std::string& out, const std::string& args, const std::string& root) {
    sh("tar " + args + " -cf " + shell_quote(file(out)) + " -C " + shell_quote(root) + " .");
    return file(out);
  }

  // A .tap image of tape files: "RECORD_SIZE:PATH" each.
  std::string tap(const std::string& name, const std::vector<std::string>& files) {
    std::string command = std::string("python3 ") + kTarTap + " " + shell_quote(file(name));
    for (const auto& f : files) command += " " + shell_quote(f);
    sh(command);
    return file(name);
  }

  CommandResult mixtape(const std::string& args) {
    return run_shell("cd " + shell_quote(dir_.path()) + " && HOME=" + shell_quote(dir_ / "home") +
                     " XDG_CACHE_HOME= XDG_DATA_HOME= XDG_CONFIG_HOME= MIXTAPE_CATALOG=" +
                     shell_quote(catalog()) + " " + kMixtape + " " + args);
  }

  void sh(const std::string& command) {
    CommandResult r = run_shell(command);
    ASSERT_EQ(r.status, 0) << command << "\n" << r.err;
  }

  // Whether two trees hold the same names, contents, symlinks and modes.
  static std::string diff(const std::string& a, const std::string& b) {
    CommandResult r =
        run_shell("diff -r --no-dereference " + shell_quote(a) + " " + shell_quote(b));
    return r.status == 0 ? "" : r.out + r.err;
  }

 private:
  TempDir dir_;
};

}  // namespace mixtape::foreign::testing
