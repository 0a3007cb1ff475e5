// Command lines the mount_options fuzzer (fuzz/, docs/FUZZING.md) found
// mishandled, one test each, so they stay fixed; and one its invariants
// pointed at while it was being written.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "engine/common/common.h"
#include "mount-helper/options.h"
#include "tests/support/test_support.h"

namespace mixtape::mount {
namespace {

std::vector<std::string> argv(std::vector<std::string> args) {
  args.insert(args.begin(), "mount.mixtape");
  return args;
}

// A fuzzer input kept in tests/testdata/fuzz-regressions/mount_options,
// decoded as fuzz/mount_options_fuzzer.cc decodes it: a byte saying whether
// mount(8) called, then arguments separated by NUL bytes.
struct FuzzInput {
  bool called_by_mount = false;
  std::vector<std::string> argv;
};

FuzzInput fuzz_input(const std::string& name) {
  const std::string path =
      std::string(MIXTAPE_TESTDATA) + "/fuzz-regressions/mount_options/" + name;
  std::ifstream in(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.empty()) throw Error("missing fuzz regression input " + path);
  FuzzInput input;
  input.called_by_mount = bytes[0] & 1;
  input.argv = {"mount.mixtape", ""};
  for (char c : std::string_view(bytes).substr(1)) {
    if (c == '\0') {
      input.argv.emplace_back();
    } else {
      input.argv.back() += c;
    }
  }
  return input;
}

constexpr char kUsage[] = "usage: mount.mixtape SOURCE DIR";

// The error parse_options gives for a kept input ("" if it accepts it).
std::string error_for(const std::string& name) {
  FuzzInput input = fuzz_input(name);
  try {
    parse_options(input.argv, input.called_by_mount);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Found by the fuzzer: an empty DIR reached std::filesystem::absolute, whose
// filesystem_error is not a mixtape::Error, so mount.mixtape died in
// std::terminate instead of printing its usage line.
TEST(MountOptionsRegression, EmptySourceOrDirIsAUsageError) {
  EXPECT_NE(error_for("empty-mount-point").find("usage:"), std::string::npos);
  EXPECT_THROW_MESSAGE(parse_options(argv({"cat.db", ""})), Error, kUsage);
  EXPECT_THROW_MESSAGE(parse_options(argv({"", "/mnt/x"})), Error, kUsage);
  EXPECT_THROW_MESSAGE(parse_options(argv({"", ""}), /*called_by_mount=*/true), Error, kUsage);
}

// Found writing the fuzzer's invariant (a wait converts to whole seconds),
// not by a run: strtod reads "nan", "inf" and 1e400, which wait= accepted;
// the helper then converted them to whole seconds, which is undefined
// behaviour for values no integer holds.
TEST(MountOptionsRegression, WaitMustBeAFiniteSensibleNumberOfSeconds) {
  for (const char* wait : {"wait=nan", "wait=NAN", "wait=inf", "wait=infinity", "wait=1e400",
                           "wait=1e300", "wait=-0.5"}) {
    EXPECT_THROW_MESSAGE(
        parse_options(argv({"cat.db", "/mnt/x", "-o", wait})), Error,
        "wait= takes seconds (at most a year), not '" + std::string(wait + 5) + "'");
  }
  Options o = parse_options(argv({"cat.db", "/mnt/x", "-o", "wait=86400"}));
  ASSERT_TRUE(o.wait_seconds);
  EXPECT_DOUBLE_EQ(*o.wait_seconds, 86400);
}

// Found by the fuzzer ("identity=...,cach\ne=..."): option values were echoed raw, so a newline in
// one made the helper's one-line error two lines (the second one forged).
TEST(MountOptionsRegression, RefusalsAreOneLineWhateverTheValue) {
  const std::string kept = error_for("newline-in-option");
  EXPECT_NE(kept.find("unknown option 'cach\\x0ae'"), std::string::npos) << kept;
  const std::vector<std::string> hostile = {"recall=open\nmount.mixtape: mounted", "bogus\r\nkey=1",
                                            "wait=5\n", "cache_size=1\nG"};
  for (const std::string& option : hostile) {
    try {
      parse_options(argv({"cat.db", "/mnt/x", "-o", option}));
      ADD_FAILURE() << "accepted " << option;
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).find_first_of("\r\n"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("\\x0a"), std::string::npos) << e.what();
    }
  }
}

// Found by the fuzzer (DIR "///"): std::filesystem keeps a root written
// with several slashes, and only one trailing slash was dropped, so the
// mount point came out as "//".
TEST(MountOptionsRegression, MountPointOfSlashesIsTheRoot) {
  FuzzInput kept = fuzz_input("root-of-slashes");
  EXPECT_EQ(parse_options(kept.argv, kept.called_by_mount).mountpoint, "/");
  EXPECT_EQ(parse_options(argv({"cat.db", "///"})).mountpoint, "/");
  EXPECT_EQ(parse_options(argv({"cat.db", "//"})).mountpoint, "/");
  EXPECT_EQ(parse_options(argv({"cat.db", "/mnt/x///"})).mountpoint, "/mnt/x");
}

}  // namespace
}  // namespace mixtape::mount
