// mount.mixtape reading a found tape's catalog shows the progress line on
// its caller's terminal (a pty), and nothing of it in a pipe.
#include <regex>

#include "tests/cli/operator_util.h"

namespace mixtape::cli::testing {
namespace {

bool mounted(const std::string& path) {
  return read_file("/proc/mounts").find(" " + path + " ") != std::string::npos;
}

TEST(FoundTape, MountingOneShowsItsIndexPassOnATerminal) {
  Operator op;
  op.init_and_back_up(1);
  const std::string mnt = op.path("mnt");
  fs::create_directories(mnt);
  PtyResult p = run_in_pty(
      {kMountHelper, op.image("L00001"), mnt, "-o",
       "identity=" + op.home() + "/.config/mixtape/identity.txt,cache=" + op.path("cache")},
      {{"HOME", op.home()}, {"PATH", "/usr/bin:/bin"}}, op.home());
  ASSERT_EQ(p.status, 0) << p.output;
  ASSERT_TRUE(mounted(mnt)) << p.output;
  EXPECT_TRUE(std::regex_search(
      p.output, std::regex(R"(\r\x1b\[Krecover  \S+ \S+ of \S+ \S+  \d+%.*ETA .*L00001)")))
      << p.output;
  EXPECT_EQ(read_file(mnt + "/latest" + op.data() + "/notes.txt"), "first draft\n");
  EXPECT_EQ(run_shell("fusermount3 -u " + shell_quote(mnt)).status, 0);

  // In a pipe: no line.
  CommandResult r = run_shell(
      std::string(kMountHelper) + " " + shell_quote(op.image("L00001")) + " " + shell_quote(mnt) +
      " -o identity=" + shell_quote(op.home() + "/.config/mixtape/identity.txt") +
      ",cache=" + shell_quote(op.path("cache")));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(run_shell("fusermount3 -u " + shell_quote(mnt)).status, 0);
}

TEST(FoundTape, ATarTapesFirstPassShowsTheLineToo) {
  // A tape mixtape did not write: the one pass that indexes it says so, and
  // draws the same line (its total is not known before the pass: files
  // and the current file, no percent).
  Operator op;
  const std::string tar = op.path("photos.tar");
  const std::string image = op.path("found.tap");
  ASSERT_EQ(
      run_shell("tar -cf " + shell_quote(tar) + " -C " + shell_quote(op.data()) + " .").status, 0);
  ASSERT_EQ(run_shell(std::string("python3 ") + MIXTAPE_SOURCE_DIR "/tests/foreign/tar_tap.py " +
                      shell_quote(image) + " 10240:" + shell_quote(tar))
                .status,
            0);
  const std::string mnt = op.path("mnt");
  fs::create_directories(mnt);
  PtyResult p = run_in_pty({kMountHelper, image, mnt, "-o", "cache=" + op.path("cache")},
                           {{"HOME", op.home()}, {"PATH", "/usr/bin:/bin"}}, op.home());
  ASSERT_EQ(p.status, 0) << p.output;
  ASSERT_TRUE(mounted(mnt)) << p.output;
  EXPECT_NE(p.output.find("one pass over the tape"), std::string::npos) << p.output;
  EXPECT_TRUE(std::regex_search(p.output,
                                std::regex(R"(\r\x1b\[Kindex tar-[0-9a-f]+  \d+ files  /file1/)")))
      << p.output;
  EXPECT_EQ(read_file(mnt + "/file1/notes.txt"), "first draft\n");
  EXPECT_EQ(run_shell("fusermount3 -u " + shell_quote(mnt)).status, 0);
}

}  // namespace
}  // namespace mixtape::cli::testing
