// A damaged catalog database: bytes flipped in the middle, cut to half its
// size, its header destroyed, or a write-ahead log from another catalog
// beside it. Invariants: every command refuses it with one line on stderr
// naming the file (no crash, no partial or empty answer, nothing written to
// it), and `mixtape recover` from the tapes brings back a catalog that
// lists exactly what the original did.
#include <gtest/gtest.h>

#include <filesystem>

#include "tests/faults/catalog_damage.h"

namespace mixtape::faults::testing {
namespace {

namespace fs = std::filesystem;

class CatalogDamageTest : public ::testing::TestWithParam<Damage> {
 protected:
  void SetUp() override {
    f_.make_tree(8);
    f_.init(2);
    f_.backup();
    original_ = listing(f_);
    // No free pages: the page in the middle is one the catalog uses.
    CommandResult r = run_shell("sqlite3 " + shell_quote(f_.catalog()) + " VACUUM");
    ASSERT_EQ(r.status, 0) << r.err;
    ASSERT_EQ(listing(f_), original_);
    GetParam().apply(f_.catalog(), f_.root());
  }

  // Every command a user might run on the catalog.
  std::vector<std::string> commands() {
    const std::string lib = " --library " + shell_quote(f_.library());
    return {"status",
            "ls",
            "ls -R --versions --replicas",
            "tapes",
            "scan " + shell_quote(f_.src()),
            "backup " + shell_quote(f_.src()) + lib,
            "restore " + shell_quote(f_.src()) + " --to " + shell_quote(f_.file("out")) + lib,
            "verify" + lib,
            "verify --quick" + lib,
            "recover" + lib};
  }

  Fixture f_;
  std::string original_;
};

INSTANTIATE_TEST_SUITE_P(Damages, CatalogDamageTest, ::testing::ValuesIn(damages()),
                         [](const auto& info) { return std::string(info.param.name); });

// Invariant: every command refuses the damaged catalog with one line that
// names the file and says what is wrong, prints nothing on stdout, exits 1
// (not a crash), and leaves the file as it found it.
TEST_P(CatalogDamageTest, EveryCommandRefusesItWithOneLineNamingTheFile) {
  const std::string damaged = read_file(f_.catalog());
  for (const auto& command : commands()) {
    SCOPED_TRACE(command);
    CommandResult r = f_.mixtape(command);
    EXPECT_EQ(r.status, 1) << r.out << r.err;
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(count_lines(r.err), 1u) << r.err;
    EXPECT_NE(r.err.find(f_.catalog()), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(GetParam().says), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("mixtape recover"), std::string::npos) << r.err;
    EXPECT_TRUE(read_file(f_.catalog()) == damaged) << "the damaged file was written to";
  }
  EXPECT_FALSE(fs::exists(f_.file("out") + f_.src()));
}

// Invariant: moved aside, the damaged catalog is replaced by one recovered
// from the tapes alone, listing every file, version and replica as the
// original did.
TEST_P(CatalogDamageTest, RecoverFromTheTapesBringsBackTheSameCatalog) {
  for (const char* suffix : {"", "-wal", "-shm"}) {
    if (fs::exists(f_.catalog() + suffix))
      fs::rename(f_.catalog() + suffix, f_.file("damaged.db") + suffix);
  }
  CommandResult r = f_.mixtape("recover --library " + shell_quote(f_.library()));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(listing(f_), original_);
}

}  // namespace
}  // namespace mixtape::faults::testing
