// Tapes written by a hostile party, read by restore, verify and recover.
// The party knows the victim's recipient and uses its own tools: the age
// CLI, python3 (tar surgery in hostile_tar.py, SQL through python's
// sqlite3) and the project's own image writer. Archives keep their length,
// so the victim's catalog and indexes still point into them: what reaches
// mixtape's tar and SQLite layers is a lie. Invariants: nothing is written
// outside the target directory, nothing hangs, every lie is detected and
// reported with the file, tape and block, and everything else restores.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <sstream>

#include "engine/recover/recover.h"
#include "engine/restore/restore.h"
#include "tests/faults/hostile_tape.h"

namespace mixtape::faults::testing {
namespace {

namespace fs = std::filesystem;

// A run of mixtape that must end in time: timeout(1) kills it after
// kHangSeconds, far more than any run here takes even under the
// sanitizers, and the test fails on status 124. Only a hang (a bomb that
// went off) reaches it; how fast the runs are is not asserted.
constexpr int kHangSeconds = 300;

CommandResult run_within_limit(Fixture& f, const std::string& args) {
  return run_shell("cd " + shell_quote(f.root()) + " && HOME=" + shell_quote(f.file("home")) +
                   " MIXTAPE_CATALOG=" + shell_quote(f.catalog()) + " timeout " +
                   std::to_string(kHangSeconds) + " " + backup::testing::kMixtape + " " + args);
}

class HostileTapeTest : public ::testing::Test {
 protected:
  void SetUp() override { original_ = tape_.make(); }

  std::string src(const std::string& name) const { return tape_.src(name); }
  std::vector<std::string> lying() const { return tape_.lying(); }

  CommandResult within_limit(const std::string& args) { return run_within_limit(f_, args); }

  // The restore of everything into jail/out, and the checks that hold
  // whatever the tape said: only the lying members failed, each named with
  // its tape and block; the rest is whole; nothing landed outside out/.
  void restore_and_check() {
    const std::string jail = f_.file("jail"), out = jail + "/out";
    fs::create_directories(out);
    CommandResult r = within_limit("restore " + shell_quote(f_.src()) + " --to " +
                                   shell_quote(out) + " --library " + shell_quote(f_.library()));
    ASSERT_NE(r.status, 124) << "the restore hung";
    EXPECT_EQ(r.status, 1) << r.err;
    for (const auto& path : lying()) {
      auto at = r.err.find("mixtape: not restored: " + path + ": ");
      ASSERT_NE(at, std::string::npos) << path << " was not reported:\n" << r.err;
      std::string line = r.err.substr(at, r.err.find('\n', at) - at);
      EXPECT_NE(line.find("tape L00001"), std::string::npos) << line;
      EXPECT_NE(line.find("block"), std::string::npos) << line;
      EXPECT_FALSE(fs::exists(out + path)) << path;
    }
    EXPECT_EQ(count_lines(r.err), lying().size() + 1) << r.err;
    for (int i = 0; i < 6; ++i) {
      const std::string p = src("plain/p" + std::to_string(i) + ".txt");
      EXPECT_TRUE(read_file(out + p) == read_file(p)) << p;
    }
    // The symlink is the catalog's, never the tape's.
    EXPECT_EQ(fs::read_symlink(out + src("s1")).string(),
              std::string(std::string_view(kOutside).size(), 'a'));
    EXPECT_TRUE(leftovers(out).empty());
    std::vector<std::string> in_jail;
    for (const auto& e : fs::directory_iterator(jail)) in_jail.push_back(e.path().string());
    EXPECT_EQ(in_jail, std::vector<std::string>{out});
    EXPECT_FALSE(fs::exists("/tmp/mixtape-hostile-outside"));
    for (const auto& e : fs::recursive_directory_iterator(f_.root())) {
      const std::string name = e.path().filename();
      if (name == "evil" || name == "dotdot.txt" || name == "absolute.txt") {
        EXPECT_TRUE(e.path().string().starts_with(f_.src())) << e.path() << " escaped";
      }
    }
  }

  Fixture f_;
  HostileTape tape_{f_};
  std::string original_;
};

// Invariant: members whose tar headers lie (a ".." name, an absolute name,
// a file through a symlink whose target leaves the tree, sizes beyond the
// archive in the ustar and in the pax header, a hash record that is not the
// data's, data changed under its hash) each fail alone with a clear report;
// the other files restore; nothing is written outside the directory.
TEST_F(HostileTapeTest, RestoreOfATamperedArchiveRefusesEachLieAndNothingEscapes) {
  tape_.tamper_every_way();
  restore_and_check();
  EXPECT_EQ(listing(f_), original_) << "reading never changes the catalog";
}

// Invariant: verify reads every member and reports each lie by file, the
// symlink's target too (restore takes targets from the catalog, so only
// verify reads that member).
TEST_F(HostileTapeTest, VerifyReportsEveryLie) {
  tape_.tamper_every_way();
  CommandResult r = within_limit("verify --library " + shell_quote(f_.library()));
  ASSERT_NE(r.status, 124) << "verify hung";
  EXPECT_EQ(r.status, 1);
  auto lies = lying();
  lies.push_back(src("s1"));
  for (const auto& path : lies) EXPECT_NE(r.err.find(path + ": "), std::string::npos) << path;
  EXPECT_NE(r.err.find("holds another symlink target"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("6 files ok, " + std::to_string(lies.size()) + " bad"), std::string::npos)
      << r.out;
}

// Invariant: a catalog recovered from the tampered tape (its indexes are
// genuine) leads to the same refusals: the lies are in the archive, and
// they are found when it is read, whoever made the catalog.
TEST_F(HostileTapeTest, RecoverThenRestoreFromATamperedTape) {
  tape_.tamper_every_way();
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(f_.catalog() + suffix);
  CommandResult r = within_limit("recover --device " + shell_quote(f_.image("L00001")));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(listing(f_), original_);
  restore_and_check();
}

// Invariant: a size lie the recovered catalog shares with the tape (8 GiB
// claimed for a member of a small archive) is refused from the member's
// header, before the restore writes or claims anything for it; the rest
// restores.
TEST_F(HostileTapeTest, ASizeLieTheCatalogSharesIsRefusedBeforeAnythingIsWritten) {
  tape_.lie_about_a_size_everywhere();
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(f_.catalog() + suffix);
  CommandResult r = within_limit("recover --device " + shell_quote(f_.image("L00001")));
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string liar = src("lie/ustar-size.txt");
  EXPECT_NE(listing(f_).find(std::to_string(HostileTape::kClaimedSize) + " "), std::string::npos);
  r = within_limit("restore " + shell_quote(f_.src()) + " --to " + shell_quote(f_.file("out")) +
                   " --library " + shell_quote(f_.library()));
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_EQ(count_lines(r.err), 2u) << r.err;
  EXPECT_NE(r.err.find("not restored: " + liar + ": the member's " +
                       std::to_string(HostileTape::kClaimedSize) +
                       " bytes run past the end of its archive"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(f_.file("out") + liar));
  EXPECT_TRUE(leftovers(f_.file("out")).empty());
  for (const auto& path : tape_.honest())
    EXPECT_TRUE(read_file(f_.file("out") + path) == read_file(path)) << path;
}

// ------------------------------------------------------------ hostile SQL

struct HostileSql {
  const char* name;
  const char* python;  // runs with `db` open on the decrypted trailing index
  const char* says;    // in the warning (the trailing index is refused; '|'
                       // between alternatives), or nullptr: the index is
                       // used and its odd values kept
};

std::vector<HostileSql> hostile_sql() {
  return {
      {"Trigger",
       "db.executescript('CREATE TRIGGER hostile AFTER INSERT ON catalog_files BEGIN "
       "DELETE FROM catalog_versions; END;')",
       "unexpected trigger 'hostile'"},
      {"ViewShadowingATableWithARecursiveBomb",
       "db.executescript('ALTER TABLE catalog_versions RENAME TO hidden; "
       "CREATE VIEW catalog_versions AS WITH RECURSIVE bomb(n) AS (SELECT 1 UNION ALL "
       "SELECT n + 1 FROM bomb) SELECT hidden.* FROM hidden, bomb;')",
       "unexpected view 'catalog_versions'"},
      {"GeneratedColumnOf100Megabytes",
       "cols = [r[1] for r in db.execute('PRAGMA table_info(catalog_versions)')]\n"
       "defs = ', '.join('hash BLOB GENERATED ALWAYS AS (zeroblob(100000000)) VIRTUAL' "
       "if c == 'hash' else c for c in cols)\n"
       "keep = ', '.join(c for c in cols if c != 'hash')\n"
       "db.executescript('CREATE TABLE t2(%s); INSERT INTO t2(%s) SELECT %s FROM "
       "catalog_versions; DROP TABLE catalog_versions; ALTER TABLE t2 RENAME TO "
       "catalog_versions;' % (defs, keep, keep))",
       "catalog_versions"},
      {"HashBlobOf100Kilobytes",
       "db.execute('PRAGMA ignore_check_constraints = ON')\n"
       "db.execute('UPDATE catalog_versions SET hash = zeroblob(100000) "
       "WHERE id = (SELECT min(id) FROM catalog_versions)')",
       "not a 32-byte hash"},
      {"PathOf200Kilobytes",
       "db.execute('PRAGMA ignore_check_constraints = ON')\n"
       "db.execute(\"UPDATE catalog_dirs SET path = '/' || hex(zeroblob(100000)) "
       "WHERE id = (SELECT max(id) FROM catalog_dirs)\")",
       "too long"},
      {"BlobOf8MegabytesOverTheReadLimit",
       "db.execute('PRAGMA ignore_check_constraints = ON')\n"
       "db.execute('UPDATE catalog_versions SET hash = zeroblob(8000000) "
       "WHERE id = (SELECT max(id) FROM catalog_versions)')",
       // Which refuses it depends on SQLite's length limit for untrusted
       // files (engine/sqlite): the read itself, or the column check.
       "string or blob too big|not a 32-byte hash"},
      {"WrongStorageClass",
       "db.execute('PRAGMA ignore_check_constraints = ON')\n"
       "db.execute(\"UPDATE catalog_versions SET size = 'many' "
       "WHERE id = (SELECT min(id) FROM catalog_versions)\")",
       "not an integer"},
      {"SqlInAValue",
       "db.execute(\"UPDATE catalog_files SET name = 'x''); DROP TABLE files; --' "
       "WHERE id = (SELECT min(id) FROM catalog_files)\")",
       nullptr},
  };
}

class HostileIndexTest : public HostileTapeTest,
                         public ::testing::WithParamInterface<HostileSql> {};

INSTANTIATE_TEST_SUITE_P(Sql, HostileIndexTest, ::testing::ValuesIn(hostile_sql()),
                         [](const auto& info) { return std::string(info.param.name); });

// Invariant: a trailing index carrying hostile SQL (triggers, a view with
// a recursive bomb shadowing a table, a generated column of 100 MB, blobs
// and texts far over their bounds, values of the wrong type) is refused with a warning that
// says why, nothing of it runs, and the catalog comes from the tape's other
// indexes instead, equal to the original; SQL in a value is only a value.
TEST_P(HostileIndexTest, RecoverRefusesTheIndexOrKeepsItsValuesAsValues) {
  tape_.rewrite_tape_file(tape_.last_file(), [&](const std::string& db) {
    HostileTape::run_sql(db, GetParam().python);
  });
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(f_.catalog() + suffix);
  CommandResult r = within_limit("recover --device " + shell_quote(f_.image("L00001")));
  ASSERT_NE(r.status, 124) << "recover hung on " << GetParam().name;
  ASSERT_EQ(r.status, 0) << r.err;
  CommandResult check = run_shell("sqlite3 " + shell_quote(f_.catalog()) +
                                  " 'PRAGMA integrity_check; SELECT count(*) FROM files;'");
  EXPECT_EQ(check.out.substr(0, 3), "ok\n") << check.out << check.err;
  if (GetParam().says) {
    EXPECT_NE(r.err.find("the trailing index is not usable ("), std::string::npos) << r.err;
    bool said = false;
    std::istringstream alternatives(GetParam().says);
    for (std::string says; std::getline(alternatives, says, '|');)
      said = said || r.err.find(says) != std::string::npos;
    EXPECT_TRUE(said) << "expected " << GetParam().says << " in:\n" << r.err;
    EXPECT_NE(r.out.find("from a walk over"), std::string::npos) << r.out;
    EXPECT_EQ(listing(f_), original_);
  } else {
    EXPECT_NE(r.out.find("from its trailing index"), std::string::npos) << r.out;
    const std::string now = listing(f_);
    EXPECT_NE(now.find("/x'); DROP TABLE files; --"), std::string::npos) << now;
    EXPECT_EQ(count_lines(now), count_lines(original_));
  }
}

// Invariant: when every index on the tape is hostile, recover refuses with
// one clear error and leaves no catalog behind.
TEST_F(HostileTapeTest, ATapeWhoseIndexesAreAllHostileIsRefusedAndNoCatalogIsMade) {
  auto poison = [](const std::string& db) {
    HostileTape::run_sql(
        db,
        "db.executescript('CREATE TRIGGER hostile BEFORE DELETE ON member BEGIN SELECT 1; END;')");
  };
  tape_.rewrite_tape_file(1, poison);  // the archive's index
  tape_.rewrite_tape_file(tape_.last_file(), poison);
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(f_.catalog() + suffix);
  CommandResult r = within_limit("recover --device " + shell_quote(f_.image("L00001")));
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.err.find("no readable index on tape L00001"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(f_.catalog()));
}

// ------------------------------------------------------------ scrypt

// An age header whose scrypt stanza asks for work factor `log_n`, then a
// nonce and junk: what a hostile party puts where a passphrase-encrypted
// file is expected. No scrypt is run to make it.
std::string scrypt_bomb(int log_n) {
  return "age-encryption.org/v1\n-> scrypt AAAAAAAAAAAAAAAAAAAAAA " + std::to_string(log_n) +
         "\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n--- "
         "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n" +
         std::string(16 + 4096, 'j');
}

class ScryptBombTest : public ::testing::Test {
 protected:
  void SetUp() override {
    f_.make_tree(4);
    write_file(f_.file("passphrase"), "correct horse battery staple\n");
    ::chmod(f_.file("passphrase").c_str(), 0600);
    CommandResult r =
        f_.mixtape("init --copies 1 --passphrase-file " + shell_quote(f_.file("passphrase")));
    ASSERT_EQ(r.status, 0) << r.err;
    r = f_.mixtape("backup " + shell_quote(f_.src()) + " --library " + shell_quote(f_.library()) +
                   " --new-library --capacity 64M --archive-size 64M" + passphrase());
    ASSERT_EQ(r.status, 0) << r.err;
  }
  // The scrypt stanza of tape file `n` asks for work factor 40 instead of
  // 18: same length, so the tape's blocks stay where they are.
  void raise_work_factor(std::size_t n) {
    auto files = image_files(f_.image("L00001"));
    auto at = files[n].find("-> scrypt ");
    ASSERT_NE(at, std::string::npos);
    auto space = files[n].find(' ', at + 10);
    ASSERT_EQ(files[n].substr(space + 1, 3), "18\n");
    files[n].replace(space + 1, 2, "40");
    write_image(f_.image("L00001"), files,
                f_.replicas(f_.src() + "/big.bin").at(0).tape.record_size);
  }
  std::string passphrase() const {
    return " --passphrase-file " + shell_quote(f_.file("passphrase"));
  }

  Fixture f_;
};

// Invariant: an age file asking for scrypt work factor 40 is refused from
// its header, before scrypt runs (which would need 128 TiB at 40, 1 GiB at
// 23: the test would not end), as WorkFactorTooHigh with the work factor
// named.
TEST_F(ScryptBombTest, AWorkFactorOf40IsRefusedAtOnce) {
  crypto::AgeDecryptKeys keys;
  keys.passphrase = crypto::Passphrase("correct horse battery staple");
  for (int log_n : {23, 40, 64}) {
    const std::string bomb = scrypt_bomb(log_n);
    MemorySource source(as_bytes(bomb));
    try {
      format::read_index_from_tape(source, keys, f_.file("index-" + std::to_string(log_n) + ".db"));
      ADD_FAILURE() << "work factor " << log_n << " was accepted";
    } catch (const crypto::AgeError& e) {
      EXPECT_EQ(e.kind(), crypto::AgeErrorKind::WorkFactorTooHigh) << e.what();
      EXPECT_NE(std::string(e.what()).find("work factor " + std::to_string(log_n)),
                std::string::npos)
          << e.what();
    }
  }
}

// Invariant: on a tape, a trailing index (and then every index) or an
// archive asking for work factor 40 is refused by recover and restore with
// one clear line naming the work factor, never run.
TEST_F(ScryptBombTest, OnATapeRecoverAndRestoreRefuseItClearly) {
  const std::string before = listing(f_);
  raise_work_factor(2);  // the archive
  CommandResult r = run_within_limit(f_, "restore " + shell_quote(f_.src()) + " --to " +
                                             shell_quote(f_.file("out")) + " --library " +
                                             shell_quote(f_.library()) + passphrase());
  ASSERT_NE(r.status, 124) << "restore ran scrypt at work factor 40";
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("work factor 40 is above the maximum"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("big.bin"), std::string::npos) << r.err;

  raise_work_factor(image_files(f_.image("L00001")).size() - 1);  // the trailing index
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(f_.catalog() + suffix);
  r = run_within_limit(f_, "recover --device " + shell_quote(f_.image("L00001")) + passphrase());
  ASSERT_NE(r.status, 124) << "recover ran scrypt at work factor 40";
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_EQ(count_lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("work factor 40 is above the maximum 22"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("wrong --identity"), std::string::npos) << "not a wrong key:\n" << r.err;
  EXPECT_FALSE(fs::exists(f_.catalog()));
}

// Invariant: an identity file that is itself an age file (a passphrase-
// protected identity, here asking for work factor 40) is refused from its
// first bytes, before any scrypt, with one line saying what it is.
TEST_F(ScryptBombTest, AnEncryptedIdentityFileIsRefusedAtOnce) {
  const std::string identity = f_.file("identity.age");
  write_file(identity, scrypt_bomb(40));
  ::chmod(identity.c_str(), 0600);
  restore::KeyFiles files;
  files.identities = {identity};
  try {
    restore::load_keys(files, {});
    ADD_FAILURE() << "an encrypted identity file was accepted";
  } catch (const crypto::AgeError& e) {
    EXPECT_NE(std::string(e.what()).find("is itself encrypted with age"), std::string::npos)
        << e.what();
    EXPECT_EQ(e.kind(), crypto::AgeErrorKind::KeyMalformed) << e.what();
  }

  CommandResult r = run_within_limit(
      f_, "restore " + shell_quote(f_.src()) + " --to " + shell_quote(f_.file("out")) +
              " --library " + shell_quote(f_.library()) + " -i " + shell_quote(identity));
  ASSERT_NE(r.status, 124) << "restore ran scrypt on the identity file";
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(count_lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find(identity + " is itself encrypted with age"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace mixtape::faults::testing
