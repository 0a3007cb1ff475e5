// The progress line of the real binary: on a terminal (a pty) it shows the
// whole run's bytes of total, percent and time left, counting on across
// tapes; in a pipe only the summary; --quiet and --progress force either
// way. Where the test needs the run to last (so that a rate can be
// measured), it holds the run at a point the program announces (a tape
// image it waits for, a tape it asks for) and lets go once the line has
// been redrawn: no sleeps, no timing.
#include <sys/file.h>

#include <regex>

#include "tests/cli/operator_util.h"

namespace mixtape::cli::testing {
namespace {

const std::regex kEta(R"(ETA \d+:\d\d:\d\d)");

// The percentages the lines of a stage showed, in order.
std::vector<int> percents(const std::string& output, const std::string& stage) {
  std::vector<int> out;
  std::regex line("\r\033\\[K" + stage + "  [^\r\n]*?  (\\d+)%");
  for (auto it = std::sregex_iterator(output.begin(), output.end(), line);
       it != std::sregex_iterator(); ++it)
    out.push_back(std::stoi((*it)[1]));
  return out;
}

bool has_progress(const std::string& output) {
  return output.find('%') != std::string::npos || output.find("ETA") != std::string::npos ||
         output.find('\r') != std::string::npos;
}

class Progress : public ::testing::Test {
 protected:
  std::map<std::string, std::string> environment() const {
    auto env = passed_through();
    env["HOME"] = op_.home();
    env["PATH"] = "/usr/bin:/bin";
    return env;
  }
  PtyResult on_terminal(const std::vector<std::string>& args,
                        const std::function<bool(const std::string&)>& on_output = {}) {
    std::vector<std::string> argv{kMixtape};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_in_pty(argv, environment(), op_.home(), on_output);
  }

  Operator op_;
};

TEST_F(Progress, ABackupOverTwoTapesShowsTheWholeRunOnATerminal) {
  ASSERT_EQ(op_.mixtape("init --copies 2").status, 0);
  // The second tape is there, held by this test: the backup writes the
  // first, then waits for it, saying so.
  fs::create_directories(op_.library());
  ASSERT_EQ(op_.mixtape("tape mkimage --device tapes/L00002.tap --capacity 64M").status, 0);
  UniqueFd held(::open(op_.image("L00002").c_str(), O_RDWR | O_CLOEXEC));
  ASSERT_TRUE(held.valid());
  ASSERT_EQ(::flock(held.get(), LOCK_EX), 0);
  PtyResult p = on_terminal(
      {"backup", "data", "--library", "tapes", "--capacity", "64M", "--drive-wait", "600"},
      [&](const std::string& out) {
        // Held there, the line is redrawn each second with a rate
        // measured on L00001: then let it go on.
        const auto waiting = out.find("waiting up to 600 s");
        if (waiting == std::string::npos) return false;
        const std::string after = out.substr(waiting);
        if (!std::regex_search(after, kEta)) return false;
        held.reset();
        return true;
      });
  ASSERT_EQ(p.status, 0) << p.output;
  EXPECT_TRUE(
      std::regex_search(p.output, std::regex(R"(backup  [0-9.]+ \S+ of [0-9.]+ \S+  \d+%)")))
      << p.output;
  EXPECT_TRUE(std::regex_search(p.output, kEta)) << p.output;
  EXPECT_NE(p.output.find("  L00001  "), std::string::npos) << p.output;
  EXPECT_NE(p.output.find("  L00002"), std::string::npos) << p.output;
  // One stage: the share done never goes back, from the first tape to the
  // second.
  const std::vector<int> seen = percents(p.output, "backup");
  ASSERT_GE(seen.size(), 2u) << p.output;
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end())) << ::testing::PrintToString(seen);
  // The second tape's first line (drawn when the tape changes) carries on
  // from about half: one copy of everything was on the first.
  const auto second_tape = p.output.rfind("\r\033[Kbackup", p.output.find("  L00002"));
  ASSERT_NE(second_tape, std::string::npos) << p.output;
  const std::vector<int> second = percents(p.output.substr(second_tape), "backup");
  ASSERT_FALSE(second.empty()) << p.output;
  EXPECT_GE(second.front(), 40) << p.output;
  EXPECT_NE(p.output.find("backed up 8 file copies"), std::string::npos) << p.output;
}

TEST_F(Progress, InAPipeOnlyTheSummaryAndTheFlagsForceEitherWay) {
  ASSERT_EQ(op_.mixtape("init --copies 2").status, 0);
  CommandResult r = op_.mixtape("backup data --library tapes --new-library --capacity 64M");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_FALSE(has_progress(r.err)) << r.err;
  EXPECT_NE(r.out.find("backed up 8 file copies"), std::string::npos) << r.out;
  r = op_.mixtape("restore data --to r --library tapes");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_FALSE(has_progress(r.err)) << r.err;
  r = op_.mixtape("verify --library tapes");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_FALSE(has_progress(r.err)) << r.err;
  // --progress draws into the pipe; --quiet keeps a terminal clean.
  r = op_.mixtape("verify --library tapes --progress");
  EXPECT_TRUE(std::regex_search(r.err, std::regex(R"(\r\x1b\[Kverify  \S+ \S+ of \S+ \S+  \d+%)")))
      << r.err;
  PtyResult p = on_terminal({"verify", "--library", "tapes", "--quiet"});
  EXPECT_EQ(p.status, 0) << p.output;
  EXPECT_FALSE(has_progress(p.output.substr(0, p.output.find("verified")))) << p.output;
  EXPECT_NE(p.output.find("verified 2 tapes"), std::string::npos) << p.output;
  r = op_.mixtape("verify --library tapes --quiet --progress");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("--quiet or --progress, not both"), std::string::npos) << r.err;
}

TEST_F(Progress, AVerifyOfSeveralTapesCountsOnWhileItAsksForTheNext) {
  op_.init_and_back_up(2);
  fs::create_directories(op_.path("away"));
  fs::rename(op_.image("L00002"), op_.path("away/L00002.tap"));
  PtyResult p =
      on_terminal({"verify", "--oldest", "2", "--library", "tapes", "--insert-wait", "600"},
                  [&](const std::string& out) {
                    const auto asked = out.find("insert tape L00002");
                    if (asked == std::string::npos) return false;
                    if (!std::regex_search(out.substr(asked), kEta)) return false;
                    fs::rename(op_.path("away/L00002.tap"), op_.image("L00002"));
                    return true;
                  });
  ASSERT_EQ(p.status, 0) << p.output;
  EXPECT_NE(p.output.find("verified 2 tapes"), std::string::npos) << p.output;
  const std::vector<int> seen = percents(p.output, "verify");
  ASSERT_GE(seen.size(), 2u) << p.output;
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end())) << ::testing::PrintToString(seen);
  // Half the bytes were L00001's: the line of L00002 starts near half.
  const auto second_tape = p.output.rfind("\r\033[Kverify", p.output.find("  L00002"));
  ASSERT_NE(second_tape, std::string::npos) << p.output;
  const std::vector<int> second = percents(p.output.substr(second_tape), "verify");
  ASSERT_FALSE(second.empty()) << p.output;
  EXPECT_GE(second.front(), 40) << p.output;
  EXPECT_NE(p.output.find("  L00001  "), std::string::npos) << p.output;
  EXPECT_NE(p.output.find("  L00002"), std::string::npos) << p.output;
}

TEST_F(Progress, RestoreAndRecoverShowTheirLineOnATerminal) {
  op_.init_and_back_up(1);
  PtyResult p = on_terminal({"restore", "data", "--to", "r", "--library", "tapes"});
  ASSERT_EQ(p.status, 0) << p.output;
  EXPECT_TRUE(std::regex_search(
      p.output, std::regex(R"(restore  \S+ \S+ of \S+ \S+  \d+%  \S+ files.*ETA )")))
      << p.output;
  // A lost catalog from the library: the trailing index's bytes of its size.
  fs::rename(op_.catalog(), op_.path("lost.db"));
  p = on_terminal({"recover", "--library", "tapes"});
  ASSERT_EQ(p.status, 0) << p.output;
  EXPECT_TRUE(std::regex_search(p.output, std::regex(R"(recover  \S+ \S+ of \S+ \S+  \d+%.*ETA )")))
      << p.output;
  EXPECT_NE(p.output.find("recovered tape L00001 from its trailing index"), std::string::npos)
      << p.output;
  // The line is taken away before the summary is printed.
  EXPECT_NE(p.output.find("\r\033[Krecovered tape"), std::string::npos) << p.output;
}

}  // namespace
}  // namespace mixtape::cli::testing
