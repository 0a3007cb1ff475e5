// Keys and what becomes of them: key files others can read are warned
// about (and still work); generated identities are private; and no secret
// (the identity's text, its Bech32 payload, its raw bytes in hex, the
// passphrase) appears in any output, error message, --stats-json file,
// catalog or tape.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "tests/faults/faults_test_util.h"

namespace mixtape::faults::testing {
namespace {

namespace fs = std::filesystem;

class SecretsTest : public ::testing::Test {
 protected:
  CommandResult run(const std::string& args) {
    CommandResult r = f_.mixtape(args);
    seen_ += r.out + r.err;  // not the command line: one test pastes a key there
    return r;
  }
  std::string restore_args(const std::string& to) const {
    return "restore " + shell_quote(f_.src()) + " --to " + shell_quote(f_.file(to)) +
           " --library " + shell_quote(f_.library());
  }

  Fixture f_;
  std::string seen_;  // every output of every command run
};

// Invariant: `mixtape keygen -o` and `mixtape init` write identities with
// mode 0600, whatever the umask.
TEST_F(SecretsTest, GeneratedIdentitiesArePrivateWhateverTheUmask) {
  CommandResult r = run_shell(
      "umask 000 && cd " + shell_quote(f_.root()) + " && HOME=" + shell_quote(f_.file("home")) +
      " " + backup::testing::kMixtape + " keygen -o " + shell_quote(f_.file("keygen.txt")));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(mode_of(f_.file("keygen.txt")), 0600u);
  r = run_shell(
      "umask 000 && cd " + shell_quote(f_.root()) + " && HOME=" + shell_quote(f_.file("home")) +
      " MIXTAPE_CATALOG=" + shell_quote(f_.catalog()) + " " + backup::testing::kMixtape + " init");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(mode_of(f_.identity()), 0600u);
}

// Invariant: an identity or passphrase file its group or others can read
// still works (every file comes back whole), and each use says so in one
// line naming the file and the fix; a private one draws no warning.
TEST_F(SecretsTest, KeyFilesOthersCanReadAreWarnedAboutAndStillWork) {
  f_.make_tree(4);
  f_.init(1);
  f_.backup();
  CommandResult r = run(restore_args("private"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err, "") << "a 0600 identity is not warned about";
  EXPECT_EQ(tree_differences(f_, "private"), "");

  ::chmod(f_.identity().c_str(), 0644);
  r = run(restore_args("world"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err, "mixtape: warning: identity file " + f_.identity() +
                       " can be read by anyone (mode 0644); make it private with `chmod 600 " +
                       f_.identity() + "`\n");
  EXPECT_EQ(tree_differences(f_, "world"), "");

  ::chmod(f_.identity().c_str(), 0640);
  r = run(restore_args("group") + " -i " + shell_quote(f_.identity()));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(count_lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find(f_.identity() + " can be read by its group (mode 0640)"), std::string::npos)
      << r.err;
  EXPECT_EQ(tree_differences(f_, "group"), "");

  ::chmod(f_.identity().c_str(), 0600);
  write_file(f_.file("passphrase"), std::string(kPassphrase) + "\n");
  ::chmod(f_.file("passphrase").c_str(), 0604);
  r = run("verify --quick --library " + shell_quote(f_.library()) + " -i " +
          shell_quote(f_.identity()) + " --passphrase-file " + shell_quote(f_.file("passphrase")));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(count_lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("passphrase file " + f_.file("passphrase") + " can be read by anyone"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.out.find("indexes ok, 0 problems\n"), std::string::npos) << r.out;
}

// Invariant: with a known identity and passphrase, nothing any command
// prints (on success or failure), no --stats-json file, no catalog and no
// tape holds the secret key, its Bech32 payload, its bytes in hex or the
// passphrase, not even 16 characters of them.
TEST_F(SecretsTest, NoSecretInAnyOutputCatalogOrTape) {
  f_.make_tree(6);
  f_.init(2);
  const Secrets secrets(f_.identity());
  ASSERT_EQ(secrets.text.size(), 74u);
  const std::string lib = " --library " + shell_quote(f_.library());
  const std::string stats = " --stats-json " + shell_quote(f_.file("stats.json"));
  std::string stats_files;
  auto with_stats = [&](const std::string& args) {
    CommandResult r = run(args + stats);
    stats_files += read_file(f_.file("stats.json"));
    return r;
  };
  EXPECT_EQ(
      with_stats("backup " + shell_quote(f_.src()) + lib + " --new-library --capacity 64M").status,
      0);
  for (const char* command : {"status", "tapes", "ls -R --versions --replicas"})
    EXPECT_EQ(run(command).status, 0) << command;
  EXPECT_EQ(with_stats(restore_args("out") + " -i " + shell_quote(f_.identity())).status, 0);
  EXPECT_EQ(tree_differences(f_, "out"), "");
  EXPECT_EQ(with_stats("verify" + lib).status, 0);
  EXPECT_EQ(with_stats("recover --catalog " + shell_quote(f_.file("recovered.db")) + lib).status,
            0);
  EXPECT_EQ(listing(f_, " --catalog " + shell_quote(f_.file("recovered.db"))), listing(f_));

  // Failures: a wrong identity, an identity file whose key is damaged one
  // character in, a key pasted whole where a path goes.
  ASSERT_EQ(run("keygen -o " + shell_quote(f_.file("other.txt"))).status, 0);
  EXPECT_EQ(run(restore_args("wrong") + " -i " + shell_quote(f_.file("other.txt"))).status, 1);
  std::string damaged = secrets.text;
  damaged[30] = damaged[30] == 'Q' ? 'P' : 'Q';
  write_file(f_.file("damaged.txt"), damaged + "\n");
  ::chmod(f_.file("damaged.txt").c_str(), 0600);
  EXPECT_EQ(run(restore_args("damaged") + " -i " + shell_quote(f_.file("damaged.txt"))).status, 1);
  EXPECT_EQ(run(restore_args("pasted") + " -i " + shell_quote(secrets.text)).status, 1);

  // A passphrase catalog: right and wrong passphrases.
  Fixture p;
  p.make_tree(3);
  write_file(p.file("passphrase"), std::string(kPassphrase) + "\n");
  ::chmod(p.file("passphrase").c_str(), 0600);
  write_file(p.file("wrong"), "not the passphrase at all\n");
  ::chmod(p.file("wrong").c_str(), 0600);
  const std::string pass = " --passphrase-file " + shell_quote(p.file("passphrase"));
  auto prun = [&](const std::string& args) {
    CommandResult r = p.mixtape(args);
    seen_ += r.out + r.err;
    return r;
  };
  EXPECT_EQ(prun("init --copies 1" + pass).status, 0);
  EXPECT_EQ(prun("backup " + shell_quote(p.src()) + " --library " + shell_quote(p.library()) +
                 " --new-library --capacity 64M" + pass)
                .status,
            0);
  EXPECT_EQ(prun("restore " + shell_quote(p.src()) + " --to " + shell_quote(p.file("out")) +
                 " --library " + shell_quote(p.library()) + pass)
                .status,
            0);
  EXPECT_EQ(tree_differences(p, "out"), "");
  CommandResult wrong = prun(
      "restore " + shell_quote(p.src()) + " --to " + shell_quote(p.file("out2")) + " --library " +
      shell_quote(p.library()) + " --passphrase-file " + shell_quote(p.file("wrong")));
  EXPECT_EQ(wrong.status, 1);
  EXPECT_NE(wrong.err.find("wrong --identity or --passphrase-file"), std::string::npos)
      << wrong.err;
  EXPECT_TRUE(regular_files_or_none(p.file("out2")).empty()) << "a wrong passphrase restored bytes";

  EXPECT_EQ(secrets.found_in(seen_), std::vector<std::string>{}) << seen_;
  EXPECT_EQ(secrets.found_in(stats_files), std::vector<std::string>{}) << stats_files;
  for (const auto& file : {f_.catalog(), f_.file("recovered.db"), p.catalog()})
    EXPECT_EQ(secrets.found_in(read_file(file)), std::vector<std::string>{}) << file;
  for (const auto& dir : {f_.library(), p.library()})
    for (const auto& tape : fs::directory_iterator(dir))
      EXPECT_EQ(secrets.found_in(read_file(tape.path())), std::vector<std::string>{})
          << tape.path();
}

}  // namespace
}  // namespace mixtape::faults::testing
