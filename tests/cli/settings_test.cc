// Naming the drive once: the config file, the environment and flags, in
// that order of strength, used by real commands, and `mixtape config`
// saying where each value came from.
#include <regex>

#include "tests/cli/operator_util.h"

namespace mixtape::cli::testing {
namespace {

class Settings : public ::testing::Test {
 protected:
  void config(const std::string& text) { write_file(op_.home() + "/.config/mixtape/config", text); }
  std::string config_path() const { return op_.home() + "/.config/mixtape/config"; }

  Operator op_;
};

TEST_F(Settings, TheConfigFileNamesTheDriveAndTheCapacityOnce) {
  config("# the tapes\nlibrary = ~/tapes\ncapacity = 64M\ncopies = 1\n");
  CommandResult r = op_.mixtape("init");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("(1 copy of every file)"), std::string::npos) << r.err;
  // No drive flag: the file's library, with new tapes of its capacity.
  r = op_.mixtape("backup data --new-library");
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("to L00001"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(op_.image("L00001")));
  r = op_.mixtape("tapes --json");
  EXPECT_EQ(json_eval(r.out, "j['tapes'][0]['capacity']"), std::to_string(64 << 20));
  // Every reading command too.
  r = op_.mixtape("restore data/notes.txt --to r");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(read_file(op_.path("r") + op_.data() + "/notes.txt"), "first draft\n");
  EXPECT_EQ(op_.mixtape("verify").status, 0);
  r = op_.mixtape("tape info");
  EXPECT_EQ(r.status, 1) << "a library names no single tape";
  EXPECT_NE(r.err.find("name the tape with --device"), std::string::npos) << r.err;
}

TEST_F(Settings, FlagsBeatTheEnvironmentWhichBeatsTheFile) {
  op_.init_and_back_up(1);  // into ~/tapes
  fs::rename(op_.library(), op_.path("from-file"));
  fs::create_directories(op_.path("empty"));
  config("library = " + op_.path("from-file") + "\n");
  // The file alone.
  CommandResult r = op_.mixtape("verify");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("verified 1 tapes"), std::string::npos) << r.out;
  // The environment over the file: an empty library verifies nothing.
  const std::string env = op_.env("MIXTAPE_LIBRARY", op_.path("empty"));
  r = op_.mixtape("verify", env);
  EXPECT_NE(r.out.find("verified 0 tapes"), std::string::npos) << r.out << r.err;
  // A flag over both.
  r = op_.mixtape("verify --library from-file", env);
  EXPECT_NE(r.out.find("verified 1 tapes"), std::string::npos) << r.out << r.err;
  // A device in the environment replaces the file's library as a whole
  // (the drive's settings go together).
  r = op_.mixtape("verify", op_.env("MIXTAPE_DEVICE", op_.path("from-file/L00001.tap")));
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("verified 1 tapes"), std::string::npos) << r.out;

  r = op_.mixtape("config", env);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(std::regex_search(
      r.out, std::regex("\nlibrary = " + op_.path("empty") + " +# environment MIXTAPE_LIBRARY\n")))
      << r.out;
  r = op_.mixtape("config");
  EXPECT_TRUE(std::regex_search(r.out, std::regex("\nlibrary = " + op_.path("from-file") + " +# " +
                                                  config_path() + " line 1\n")))
      << r.out;
  EXPECT_TRUE(
      std::regex_search(r.out, std::regex("\ncatalog = " + op_.catalog() + " +# default\n")))
      << r.out;
  EXPECT_NE(r.out.find("# device: not set\n"), std::string::npos) << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("\ncopies = 2 +# default\n"))) << r.out;
}

TEST_F(Settings, TheCatalogAndTheIdentityToo) {
  const std::string catalog = op_.path("elsewhere/c.db");
  config("catalog = " + catalog + "\n");
  ASSERT_EQ(op_.mixtape("init --identity-out key.txt").status, 0);
  EXPECT_TRUE(fs::exists(catalog));
  ASSERT_EQ(op_.mixtape("backup data --library tapes --new-library --capacity 64M").status, 0);
  // The default identity is not there: restore needs the one named.
  CommandResult r = op_.mixtape("restore data/notes.txt --to r --library tapes");
  EXPECT_EQ(r.status, 1);
  r = op_.mixtape("restore data/notes.txt --to r --library tapes",
                  op_.env("MIXTAPE_IDENTITY", op_.path("key.txt")));
  EXPECT_EQ(r.status, 0) << r.err;
  config("catalog = " + catalog + "\nidentity = ~/key.txt\n");
  r = op_.mixtape("restore data/notes.txt --to r2 --library tapes");
  EXPECT_EQ(r.status, 0) << r.err;
  // The environment's catalog over the file's.
  r = op_.mixtape("status", op_.env("MIXTAPE_CATALOG", op_.path("nothing.db")));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("no catalog at " + op_.path("nothing.db")), std::string::npos) << r.err;
}

TEST_F(Settings, AMistakeInTheFileNamesItsLine) {
  config("library = /srv/tapes\n\ndrive = /dev/nst0\n");
  CommandResult r = op_.mixtape("config");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find(config_path() + " line 3: unknown setting 'drive'"), std::string::npos)
      << r.err;
  config("library /srv/tapes\n");
  r = op_.mixtape("status");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find(config_path() + " line 1: expected `key = value`"), std::string::npos)
      << r.err;
}

}  // namespace
}  // namespace mixtape::cli::testing
