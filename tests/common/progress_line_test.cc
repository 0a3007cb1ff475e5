// ProgressLine, the front ends' progress line, driven with a clock of the
// test's own: what a line says at each moment of a run, and what reaches
// the terminal.
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <regex>
#include <string>

#include "engine/common/common.h"

namespace mixtape {
namespace {

using Clock = ProgressLine::Clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr std::uint64_t kMiB = 1 << 20;

// A line drawn into a pipe, at times the test sets.
class LineTest : public ::testing::Test {
 protected:
  LineTest() {
    int fds[2];
    if (::pipe2(fds, O_NONBLOCK) != 0) throw_errno("pipe");
    read_end_.reset(fds[0]);
    write_end_.reset(fds[1]);
    ProgressLine::Options options;
    options.fd = write_end_.get();
    options.width = 120;
    options.redraw_thread = false;
    options.now = [this] { return now_; };
    line_.emplace(options);
  }

  // Everything drawn so far.
  std::string drawn() {
    char buf[65536];
    ssize_t n;
    while ((n = ::read(read_end_.get(), buf, sizeof buf)) > 0) output_.append(buf, n);
    return output_;
  }

  // "ETA h:mm:ss" as seconds; -1 for the placeholder or none.
  static long eta_of(const std::string& line) {
    std::smatch m;
    if (!std::regex_search(line, m, std::regex(R"(ETA (\d+):(\d\d):(\d\d))"))) return -1;
    return std::stol(m[1]) * 3600 + std::stol(m[2]) * 60 + std::stol(m[3]);
  }

  Clock::time_point now_ = Clock::time_point() + std::chrono::hours(1000);
  UniqueFd read_end_, write_end_;
  std::optional<ProgressLine> line_;
  std::string output_;
};

TEST_F(LineTest, ATinyFirstFileAfterALongLoadGivesNoAbsurdTimeLeft) {
  // 10 GiB to write; loading and labelling the tape takes two minutes
  // before the first byte; then a 1 KiB file, then 100 MiB a second.
  line_->phase("backup", 10240 * kMiB, 1001);
  line_->tape("L00001");
  now_ += seconds(120);
  line_->advance(1024, 1, "/photos/tiny.txt");
  EXPECT_EQ(eta_of(line_->line()), -1) << line_->line();  // nothing measured yet
  EXPECT_NE(line_->line().find("ETA -:--:--"), std::string::npos) << line_->line();
  for (int i = 1; i <= 10; ++i) {
    now_ += milliseconds(100);
    line_->advance(10 * kMiB, 0, "/photos/big.raw");
    const long eta = eta_of(line_->line());
    if (i < 3) continue;  // a quarter of a second: measured from here on
    // About (10 GiB - what is done) at 100 MiB/s: 102 s at the start.
    EXPECT_GE(eta, 90) << line_->line();
    EXPECT_LE(eta, 105) << line_->line();
  }
  const std::string line = line_->line();
  EXPECT_NE(line.find("backup"), std::string::npos);
  EXPECT_NE(line.find("100.0 MiB of 10.0 GiB"), std::string::npos) << line;
  EXPECT_NE(line.find("0%"), std::string::npos) << line;
  EXPECT_NE(line.find("100.0 MiB/s"), std::string::npos) << line;
  EXPECT_NE(line.find("L00001"), std::string::npos) << line;
  EXPECT_NE(line.find("/photos/big.raw"), std::string::npos) << line;
  EXPECT_NE(line.find("1/1,001 files"), std::string::npos) << line;
}

TEST_F(LineTest, CountersRunOnAcrossTapesAndTotalsCanBeRevised) {
  line_->phase("backup", 400 * kMiB, 4);
  line_->tape("L00001");
  line_->advance(100 * kMiB, 1, "/a");
  now_ += seconds(1);
  line_->advance(100 * kMiB, 1, "/b");
  EXPECT_NE(line_->line().find("50%"), std::string::npos) << line_->line();
  // The next tape: the run goes on, nothing restarts.
  line_->tape("L00002");
  line_->totals(300 * kMiB, 3);  // a file turned out to be on tape already
  now_ += seconds(1);
  line_->advance(50 * kMiB, 0, "/c");
  const std::string line = line_->line();
  EXPECT_NE(line.find("250.0 MiB of 300.0 MiB"), std::string::npos) << line;
  EXPECT_NE(line.find("83%"), std::string::npos) << line;
  EXPECT_NE(line.find("2/3 files"), std::string::npos) << line;
  EXPECT_NE(line.find("L00002"), std::string::npos) << line;
  EXPECT_EQ(eta_of(line), 1) << line;  // 50 MiB left at 75 MiB/s
}

TEST_F(LineTest, WithoutTotalsNoPercentAndNoTimeLeft) {
  line_->phase("scan", 0, 0);
  line_->advance(0, 1, "/photos/2019");
  now_ += seconds(2);
  line_->advance(0, 12344, "/photos/2020/x");
  const std::string line = line_->line();
  EXPECT_EQ(line.find('%'), std::string::npos) << line;
  EXPECT_EQ(line.find("ETA"), std::string::npos) << line;
  EXPECT_NE(line.find("12,345 files"), std::string::npos) << line;
}

TEST_F(LineTest, DrawnAtMostFiveTimesASecondAndClearedForWarnings) {
  line_->phase("restore", 100 * kMiB, 100);
  for (int i = 0; i < 100; ++i) {
    now_ += milliseconds(10);
    line_->advance(kMiB, 1, "/f" + std::to_string(i));
  }
  const std::string out = drawn();
  // One second of advances: the first draw and one every 200 ms after.
  std::size_t draws = 0;
  for (auto at = out.find("\r\033[Krestore"); at != std::string::npos;
       at = out.find("\r\033[Krestore", at + 1))
    ++draws;
  EXPECT_GE(draws, 4u);
  EXPECT_LE(draws, 6u);
  line_->warning("something to know");
  EXPECT_TRUE(drawn().ends_with("\r\033[Kmixtape: warning: something to know\n")) << output_;
}

TEST_F(LineTest, ALongFileNameIsCutFromTheFrontToTheWidth) {
  line_->phase("verify", 100, 1);
  line_->advance(1, 0, "/a/very/long/" + std::string(300, 'x') + "/name.raw");
  const std::string line = line_->line();
  EXPECT_EQ(line.size(), 119u) << line;
  EXPECT_TRUE(line.ends_with("/name.raw")) << line;
  EXPECT_NE(line.find("..."), std::string::npos) << line;
}

TEST(ProgressLineOff, WithoutDrawOnlyWarningsGoOut) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  UniqueFd read_end(fds[0]), write_end(fds[1]);
  {
    ProgressLine::Options options;
    options.fd = write_end.get();
    options.draw = false;
    options.program = "mount.mixtape";
    ProgressLine line(options);
    line.phase("recover", 100, 0);
    line.advance(50, 0, "trailing index");
    line.warning("careful");
  }
  write_end.reset();
  char buf[4096];
  ssize_t n = ::read(read_end.get(), buf, sizeof buf);
  EXPECT_EQ(std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0),
            "mount.mixtape: warning: careful\n");
}

TEST(ProgressLineFormat, DurationsAsHoursMinutesSeconds) {
  EXPECT_EQ(ProgressLine::format_duration(0), "0:00:00");
  EXPECT_EQ(ProgressLine::format_duration(19), "0:00:19");
  EXPECT_EQ(ProgressLine::format_duration(3600 * 12 + 3 * 60 + 44), "12:03:44");
  EXPECT_EQ(ProgressLine::format_duration(3600 * 100), "100:00:00");
}

}  // namespace
}  // namespace mixtape
