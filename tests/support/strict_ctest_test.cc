// scripts/test-ctest.sh, the ctest step of scripts/test.sh and
// scripts/test-sanitize.sh, fails a run in which a test was skipped. When a
// suite's SetUpTestSuite fails, GoogleTest skips its tests and ctest counts
// them as passing: a run that tested nothing of that suite would be green.
// SetupProbe is such a suite, whose shared setup fails on demand
// (MIXTAPE_FORCE_SETUP_FAILURE); StrictCtest runs ctest on it, through the
// script, as scripts/test.sh does, from the ctest file
// gtest_discover_tests made for this binary.
#include <gtest/gtest.h>

#include <cstdlib>

#include "tests/support/test_support.h"

namespace mixtape::test_support {
namespace {

// Runs as any test in the suite (its setup then succeeds); StrictCtest
// forces its setup to fail.
class SetupProbe : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const char* forced = std::getenv("MIXTAPE_FORCE_SETUP_FAILURE");
    ASSERT_FALSE(forced && *forced) << "a failure of the suite's shared setup, forced";
    made_ = true;
  }
  static inline bool made_ = false;
};

TEST_F(SetupProbe, RunsOnlyAfterItsSharedSetup) {
  EXPECT_TRUE(made_);
}

class StrictCtest : public ::testing::Test {
 protected:
  StrictCtest() {
    write_file(dir_ / "CTestTestfile.cmake",
               "include(\"" MIXTAPE_BINARY_DIR
               "/tests/support/strict_ctest_test[1]_tests.cmake\")\n");
  }
  // scripts/test.sh's ctest step, on the probe alone.
  CommandResult ctest(const std::string& environment) {
    return run_shell(environment +
                     " bash " MIXTAPE_SOURCE_DIR
                     "/scripts/test-ctest.sh --output-on-failure --timeout 300 "
                     "--test-dir " +
                     shell_quote(dir_.path()) + " -R '^SetupProbe\\.'");
  }

  TempDir dir_;
};

TEST_F(StrictCtest, AFailedSharedSetupFailsTheRun) {
  CommandResult forced = ctest("MIXTAPE_FORCE_SETUP_FAILURE=1");
  EXPECT_NE(forced.status, 0) << forced.out << forced.err;
  // ctest alone calls the run a success: the test was only skipped.
  EXPECT_NE(forced.out.find("SetupProbe.RunsOnlyAfterItsSharedSetup ...***Skipped"),
            std::string::npos)
      << forced.out;
  EXPECT_NE(forced.out.find("100% tests passed, 0 tests failed out of 1"), std::string::npos)
      << forced.out;
  EXPECT_NE(forced.err.find("test-ctest: 1 test(s) did not run"), std::string::npos) << forced.err;
  EXPECT_NE(forced.err.find("  SetupProbe.RunsOnlyAfterItsSharedSetup (notrun)\n"),
            std::string::npos)
      << forced.err;
}

TEST_F(StrictCtest, ARunWhereEveryTestRanPasses) {
  CommandResult passed = ctest("MIXTAPE_FORCE_SETUP_FAILURE=");
  EXPECT_EQ(passed.status, 0) << passed.out << passed.err;
  EXPECT_NE(passed.out.find("100% tests passed, 0 tests failed out of 1"), std::string::npos)
      << passed.out;
  EXPECT_EQ(passed.err.find("did not run"), std::string::npos) << passed.err;
}

TEST_F(StrictCtest, ARunThatMatchesNoTestFails) {
  CommandResult none = run_shell("bash " MIXTAPE_SOURCE_DIR "/scripts/test-ctest.sh --test-dir " +
                                 shell_quote(dir_.path()) + " -R '^NoSuchTest$'");
  EXPECT_NE(none.status, 0) << none.out << none.err;
  EXPECT_NE(none.err.find("No tests were found"), std::string::npos) << none.err;
}

}  // namespace
}  // namespace mixtape::test_support
