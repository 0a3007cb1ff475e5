// The operator's tool, through the built binary: retiring a tape end to end
// (retire, back up, restore without it, byte for byte), where tapes are,
// check, verify --oldest asking for each tape, snapshots, diff, find, a dry
// run, --exclude-from, relative paths, and a mistyped command.
#include <regex>

#include "tests/cli/operator_util.h"
#include "tests/restore/test_util.h"

namespace mixtape::cli::testing {
namespace {

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// The files under `root`, relative, with their bytes (symlinks as "-> target").
std::map<std::string, std::string> tree(const std::string& root) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    const std::string rel = e.path().lexically_relative(root).string();
    if (e.is_symlink())
      out[rel] = "-> " + fs::read_symlink(e.path()).string();
    else if (e.is_regular_file())
      out[rel] = read_file(e.path().string());
  }
  return out;
}

TEST(Retire, RetireBackUpAndRestoreWithoutTheRetiredTapeByteForByte) {
  Operator op;
  op.init_and_back_up(2);  // L00001 and L00002 hold a copy of everything
  ASSERT_TRUE(fs::exists(op.image("L00002")));

  CommandResult r = op.mixtape("retire L00002 --reason lost");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("retired tape L00002 (lost)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("4 versions ("), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("the next backup copies the 4 still on disk"), std::string::npos) << r.out;

  // What fell below goal, in status and check; the tape is marked.
  r = op.mixtape("status");
  EXPECT_NE(r.out.find("below copy goal: 4 versions"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tape L00002: retired (lost, "), std::string::npos) << r.out;
  r = op.mixtape("check");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("below-goal: 4 versions"), std::string::npos) << r.out;
  r = op.mixtape("ls --replicas data/notes.txt");
  EXPECT_NE(r.out.find("replica L00002:2:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(retired)"), std::string::npos) << r.out;
  EXPECT_EQ(op.mixtape("retire L00002 --reason bad").status, 1) << "retired twice";
  r = op.mixtape("retire L00002 --reason misplaced");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("--reason"), std::string::npos) << r.err;

  // The next backup copies them to another tape, never to the retired one.
  const std::string before = read_file(op.image("L00002"));
  r = op.mixtape("backup data --library tapes");
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("to L00003"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("L00002"), std::string::npos) << r.out;
  EXPECT_TRUE(read_file(op.image("L00002")) == before) << "a retired tape was written";
  r = op.mixtape("status");
  EXPECT_NE(r.out.find("below copy goal: 0 versions"), std::string::npos) << r.out;
  EXPECT_EQ(op.mixtape("check").status, 0);

  // The tape is gone for good: restore from the others alone.
  fs::create_directories(op.path("elsewhere"));
  auto move = [](const std::string& from, const std::string& to) {
    for (const char* suffix : {"", ".idx", ".meta"})
      if (fs::exists(from + suffix)) fs::rename(from + suffix, to + suffix);
  };
  move(op.image("L00002"), op.path("elsewhere/L00002.tap"));
  ASSERT_FALSE(fs::exists(op.image("L00002")));
  r = op.mixtape("restore data --to restored --library tapes");
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_EQ(tree(op.path("restored") + op.data()), tree(op.data()));
  // A retired tape that turns up can still be read.
  move(op.path("elsewhere/L00002.tap"), op.image("L00002"));
  r = op.mixtape("verify --serial L00002 --library tapes");
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("verified 1 tapes"), std::string::npos) << r.out;
  // ... while a verify of all leaves it out.
  r = op.mixtape("verify --library tapes");
  EXPECT_NE(r.out.find("verified 2 tapes"), std::string::npos) << r.out;
}

TEST(TapeLocation, RecordedShownAndFilteredBy) {
  Operator op;
  op.init_and_back_up(2);
  CommandResult r = op.mixtape("tape location L00001 'offsite: bank box 12'");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "tape L00001: offsite: bank box 12\n");
  ASSERT_EQ(op.mixtape("tape location L00002 'shelf 2'").status, 0);
  r = op.mixtape("tapes");
  EXPECT_TRUE(std::regex_search(r.out, std::regex("L00001 .* offsite: bank box 12\n"))) << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("L00002 .* shelf 2\n"))) << r.out;
  r = op.mixtape("tapes --location 'offsite*'");
  EXPECT_NE(r.out.find("L00001"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("L00002"), std::string::npos) << r.out;
  r = op.mixtape("tapes --location 'offsite*' --json");
  EXPECT_EQ(json_eval(r.out, "[t['serial'] + '|' + t['location'] for t in j['tapes']]"),
            "['L00001|offsite: bank box 12']");
  r = op.mixtape("status");
  EXPECT_NE(r.out.find("; at offsite: bank box 12\n"), std::string::npos) << r.out;
  // Cleared; a tape the catalog does not know is refused.
  ASSERT_EQ(op.mixtape("tape location L00001 ''").status, 0);
  EXPECT_EQ(op.mixtape("tapes --location 'offsite*'").out.find("L00001"), std::string::npos);
  r = op.mixtape("tapes --location ''");  // the tapes whose place is not said
  EXPECT_NE(r.out.find("L00001"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("L00002"), std::string::npos) << r.out;
  r = op.mixtape("tape location L00009 attic");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("tape L00009 is not in the catalog"), std::string::npos) << r.err;
}

TEST(Check, OneLinePerProblemAndExitOneUnlessAllIsWell) {
  Operator op;
  op.init_and_back_up(2);
  CommandResult r = op.mixtape("check");
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_EQ(r.out, "") << "silent when all is well";
  r = op.mixtape("check --max-age 90d");
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(count(r.out, "\n"), 2u) << r.out;
  EXPECT_NE(r.out.find("never-verified: tape L00001 was never verified"), std::string::npos);
  EXPECT_NE(r.err.find("check found 2 problems"), std::string::npos) << r.err;

  ASSERT_EQ(op.mixtape("verify --library tapes").status, 0);
  EXPECT_EQ(op.mixtape("check --max-age 90d").status, 0);
  // Verified 100 days ago: overdue (the catalog's clock moved back, with sqlite3).
  ASSERT_EQ(run_shell("sqlite3 " + shell_quote(op.catalog()) +
                      " 'UPDATE verifications SET checked_at_ns = checked_at_ns - "
                      "100 * 86400 * 1000000000'")
                .status,
            0);
  r = op.mixtape("check --max-age 90d");
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(std::regex_search(
      r.out, std::regex("verify-overdue: tape L00001 was last verified \\S+, 100 days ago "
                        "\\(more than 90 days\\)\n")))
      << r.out;
  EXPECT_EQ(op.mixtape("check --max-age 101d").status, 0);

  // A damaged archive on L00002 (a byte of tape file 2, the first
  // archive): its verify fails, and check says so.
  {
    const auto blocks = restore::testing::parse_image(op.image("L00002"));
    const auto archive = restore::testing::tape_files(blocks).at(2);
    restore::testing::flip_byte(op.image("L00002"), blocks.at(archive + 1).data_offset + 100);
  }
  EXPECT_EQ(op.mixtape("verify --serial L00002 --library tapes").status, 1);
  r = op.mixtape("check --json");
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(json_eval(r.out, "j['ok']"), "False");
  EXPECT_EQ(json_eval(r.out, "[(p['kind'], p['tape']) for p in j['problems']]"),
            "[('verify-failed', 'L00002')]");
  EXPECT_EQ(op.mixtape("check --max-age 1y").status, 1) << "a malformed age is refused";
}

TEST(VerifyOldest, VerifiesTheTapesVerifiedLongestAgoAskingForEach) {
  Operator op;
  op.init_and_back_up(2);
  write_file(op.data() + "/more.txt", "more\n");
  ASSERT_EQ(op.mixtape("backup data --library tapes --copies 3").status, 0);  // L00003 too
  // L00001 verified now; L00002 and L00003 never: they are the oldest.
  ASSERT_EQ(op.mixtape("verify --serial L00001 --library tapes").status, 0);
  // L00003 is away. In a pipe nothing waits: it is named, and exit 1.
  fs::create_directories(op.path("away"));
  fs::rename(op.image("L00003"), op.path("away/L00003.tap"));
  CommandResult r = op.mixtape("verify --oldest 2 --library tapes");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("verifying the 2 tapes verified longest ago: L00002 L00003"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("tape L00003 is not in the library"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("verified 1 tapes"), std::string::npos) << r.out;

  // Now L00003 is the oldest. Asked for, it is put back while it waits.
  PtyResult p = run_in_pty(
      {kMixtape, "verify", "--oldest", "--library", "tapes", "--insert-wait", "600"},
      {{"HOME", op.home()}, {"PATH", "/usr/bin:/bin"}}, op.home(), [&](const std::string& out) {
        if (out.find("insert tape L00003 into the library") == std::string::npos) return false;
        fs::rename(op.path("away/L00003.tap"), op.image("L00003"));
        return true;
      });
  EXPECT_EQ(p.status, 0) << p.output;
  EXPECT_NE(p.output.find("verified 1 tapes, "), std::string::npos) << p.output;
  // Every tape verified once: the next oldest is L00001 again.
  r = op.mixtape("verify --oldest --library tapes --json");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(json_eval(r.out, "j['asked']"), "['L00001']");
  EXPECT_EQ(json_eval(r.out, "(j['tapes'], j['files_bad'], j['ok'])"), "(1, 0, True)");
}

TEST(VerifyOldest, ASingleDriveAsksForEachTapeInTurn) {
  Operator op;
  op.init_and_back_up(2);
  // The drive: a path whose tape (image) the test swaps, as a person would.
  fs::create_symlink(op.image("L00001"), op.path("drive.tap"));
  bool swapped = false;
  PtyResult p = run_in_pty({kMixtape, "verify", "--oldest", "2", "--device", "drive.tap"},
                           {{"HOME", op.home()}, {"PATH", "/usr/bin:/bin"}}, op.home(),
                           [&](const std::string& out) {
                             if (out.find("insert tape L00002 into drive.tap") == std::string::npos)
                               return false;
                             fs::remove(op.path("drive.tap"));
                             fs::create_symlink(op.image("L00002"), op.path("drive.tap"));
                             swapped = true;
                             return true;
                           });
  EXPECT_TRUE(swapped) << p.output;
  EXPECT_EQ(p.status, 0) << p.output;
  EXPECT_NE(p.output.find("verified 2 tapes, "), std::string::npos) << p.output;
  EXPECT_EQ(op.mixtape("check --max-age 1d").status, 0);
}

TEST(History, SnapshotsDiffAndFindFromTheCatalogAlone) {
  Operator op;
  op.init_and_back_up(1);
  write_file(op.data() + "/notes.txt", "second draft\n");
  write_file(op.data() + "/photos/c.raw", random_text(1000, 3));
  fs::remove(op.data() + "/photos/b.raw");
  ASSERT_EQ(op.mixtape("backup data --library tapes").status, 0);
  // No tape is needed from here on.
  fs::rename(op.library(), op.path("tapes-away"));

  CommandResult r = op.mixtape("snapshots");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("\n +1  \\S+Z  yes +4 +500021  " + op.data())))
      << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("\n +2  \\S+Z  yes +4 +201022  " + op.data())))
      << r.out;
  r = op.mixtape("snapshots --json");
  EXPECT_EQ(json_eval(r.out,
                      "[(s['id'], s['files'], s['bytes'], s['roots']) for s in "
                      "j['snapshots']]"),
            "[(1, 4, 500021, ['" + op.data() + "']), (2, 4, 201022, ['" + op.data() + "'])]");
  EXPECT_TRUE(std::regex_match(json_eval(r.out, "j['snapshots'][0]['started_at']"),
                               std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z)")));

  r = op.mixtape("diff 1 2");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out.substr(0, r.out.find("1 added")),
            "changed  " + op.data() + "/notes.txt  (12 -> 13 bytes)\n" + "removed  " + op.data() +
                "/photos/b.raw  (300000 bytes)\n" + "added    " + op.data() +
                "/photos/c.raw  (1000 bytes)\n");
  EXPECT_NE(r.out.find("1 added, 1 removed, 1 changed between run 1"), std::string::npos);
  // By time and by name: the same.
  const std::string first =
      json_eval(op.mixtape("snapshots --json").out, "j['snapshots'][0]['started_at']");
  EXPECT_EQ(op.mixtape("diff " + first + " latest").out, r.out);
  EXPECT_NE(op.mixtape("diff 2 1").out.find("removed  " + op.data() + "/photos/c.raw"),
            std::string::npos);
  EXPECT_EQ(op.mixtape("diff 7 1").status, 1);

  r = op.mixtape("find 'notes*'");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(count(r.out, "\n"), 2u) << r.out;  // two versions
  EXPECT_TRUE(std::regex_search(r.out, std::regex("Z +12  L00001 +" + op.data() + "/notes.txt\n")))
      << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("Z +13  L00001 +" + op.data() + "/notes.txt\n")))
      << r.out;
  r = op.mixtape("find '*.raw'");
  EXPECT_EQ(count(r.out, ".raw\n"), 3u) << r.out;  // b.raw too: it was backed up
  EXPECT_EQ(op.mixtape("find 'nothing*'").status, 1);
  EXPECT_EQ(op.mixtape("find 'a/b'").status, 1);
}

TEST(DryRun, SaysWhatWouldBeWrittenAndChangesNothing) {
  Operator op;
  ASSERT_EQ(op.mixtape("init --copies 2").status, 0);
  write_file(op.path("excludes"), "# not these\n*.raw\n\n");
  const std::string catalog = read_file(op.catalog());
  CommandResult r = op.mixtape("backup data --dry-run --exclude-from excludes");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("   12  x2  " + op.data() + "/notes.txt  (new or changed)"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(r.out.find(".raw"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("would write 2 files (21 B) as 4 copies (42 B)"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("to tapes: 2 new tapes of"), std::string::npos) << r.out;
  EXPECT_TRUE(read_file(op.catalog()) == catalog) << "the catalog changed";
  EXPECT_FALSE(fs::exists(op.library()));

  ASSERT_EQ(op.mixtape("backup data --library tapes --new-library --capacity 64M").status, 0);
  write_file(op.data() + "/new.txt", "new\n");
  r = op.mixtape("backup data -n --library tapes");
  EXPECT_NE(r.out.find("would write 1 file (4 B) as 2 copies (8 B)"), std::string::npos) << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("to tapes: L00001 \\(open, [^)]+ free\\), "
                                                  "L00002 \\(open, [^)]+ free\\)\n")))
      << r.out;
  // And the excludes hold for the real backup.
  r = op.mixtape("backup data --library tapes --exclude-from excludes");
  EXPECT_NE(op.mixtape("ls data/new.txt").out.find("new.txt"), std::string::npos);
}

TEST(Paths, RelativePathsWorkTheSameInEveryCommand) {
  Operator op;
  op.init_and_back_up(1);
  // From inside data/: ls, restore and backup take the same relative paths.
  const std::string cwd = op.data();
  CommandResult r = op.mixtape("ls photos", "", cwd);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find(op.data() + "/photos/a.raw"), std::string::npos) << r.out;
  r = op.mixtape("ls --json photos/a.raw", "", cwd);
  EXPECT_EQ(json_eval(r.out, "(j['path'], j['entries'][0]['size'])"),
            "('" + op.data() + "/photos/a.raw', 200000)");
  r = op.mixtape("restore photos/a.raw --to ../r --library ../tapes", "", cwd);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(read_file(op.path("r") + op.data() + "/photos/a.raw") ==
              read_file(op.data() + "/photos/a.raw"));
  write_file(op.data() + "/photos/d.raw", "d");
  r = op.mixtape("backup photos --library ../tapes", "", cwd);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(op.mixtape("ls ./photos/../photos/d.raw", "", cwd).status, 0);
}

TEST(Json, StatusLsRestoreAndVerifyFollowTheDocumentedSchema) {
  Operator op;
  // A name that is not UTF-8: \udcXX in JSON, its bytes back with
  // surrogateescape.
  write_file(op.data() + "/bad-\xff-name", "x");
  op.init_and_back_up(2);
  CommandResult r = op.mixtape("status --json");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(json_eval(r.out, "(j['files'], j['versions'], j['copies'], j['below_goal'])"),
            "(5, 5, 10, {'versions': 0, 'bytes': 0})");
  EXPECT_EQ(json_eval(r.out, "j['copy_goals']"), "[{'path': '/', 'copies': 2}]");
  EXPECT_EQ(json_eval(r.out,
                      "[(t['serial'], t['state'], t['capacity'], t['verify']['result']) "
                      "for t in j['tapes']]"),
            "[('L00001', 'open', 67108864, 'never'), ('L00002', 'open', 67108864, 'never')]");
  EXPECT_EQ(json_eval(r.out, "type(j['tapes'][0]['bytes_used']).__name__"), "int");

  r = op.mixtape("ls -R --json --versions --replicas data");
  EXPECT_EQ(json_eval(r.out,
                      "sorted(e['path'][len(j['path']) + 1:].encode('utf-8', "
                      "'surrogateescape').hex() for e in j['entries'] if e['type'] == "
                      "'file' and 'bad' in e['path'])"),
            "['" + to_hex(as_bytes("bad-\xff-name")) + "']");
  EXPECT_EQ(json_eval(r.out,
                      "[(e['type'], e.get('target')) for e in j['entries'] if "
                      "e['path'].endswith('/link')]"),
            "[('symlink', 'notes.txt')]");
  EXPECT_EQ(json_eval(r.out,
                      "sorted(x['tape'] for e in j['entries'] if "
                      "e['path'].endswith('a.raw') for x in e['replicas'])"),
            "['L00001', 'L00002']");
  EXPECT_EQ(json_eval(r.out,
                      "[(v['size'], v['copies'], v['goal'], len(v['hash'])) for e in "
                      "j['entries'] if e['path'].endswith('a.raw') for v in "
                      "e['versions']]"),
            "[(200000, 2, 2, 64)]");

  r = op.mixtape("restore data --to r --library tapes --json");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(json_eval(r.out,
                      "(j['files'], j['bytes'], j['symlinks'], j['failures'], "
                      "j['snapshot'])"),
            "(4, 500013, 1, [], None)");
  r = op.mixtape("restore data/notes.txt --to r --library tapes --json");
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(json_eval(r.out, "[f['path'] for f in j['failures']]"),
            "['" + op.data() + "/notes.txt']");
  r = op.mixtape("verify --library tapes --json");
  EXPECT_EQ(json_eval(r.out, "(j['tapes'], j['files_ok'], j['files_bad'], j['ok'], j['quick'])"),
            "(2, 10, 0, True, False)");
  r = op.mixtape("tapes --json");
  EXPECT_TRUE(std::regex_match(json_eval(r.out, "j['tapes'][0]['verify']['verified_at']"),
                               std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z)")));
}

TEST(Mistyped, ACommandThatDoesNotExistNamesTheNearest) {
  Operator op;
  CommandResult r = op.mixtape("bakup data");
  EXPECT_EQ(r.status, 109);
  EXPECT_EQ(r.err,
            "mixtape: 'bakup' is not a mixtape command; did you mean 'mixtape backup'? (see "
            "`mixtape --help`)\n");
  r = op.mixtape("tape locaton L00001 x");
  EXPECT_NE(r.err.find("did you mean 'mixtape tape location'?"), std::string::npos) << r.err;
  r = op.mixtape("snap");
  EXPECT_NE(r.err.find("did you mean 'mixtape snapshots'?"), std::string::npos) << r.err;
  r = op.mixtape("frobnicate");
  EXPECT_EQ(r.err, "mixtape: 'frobnicate' is not a mixtape command (see `mixtape --help`)\n");
}

TEST(MountHelper, HelpAndVersion) {
  CommandResult r = run_shell(std::string(kMountHelper) + " --help");
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out.rfind("usage: mount.mixtape SOURCE DIR", 0), 0u) << r.out;
  for (const char* option : {"identity=", "library=", "device=", "wait=", "recall="})
    EXPECT_NE(r.out.find(option), std::string::npos) << option;
  r = run_shell(std::string(kMountHelper) + " --version");
  EXPECT_EQ(r.out, std::string("mount.mixtape ") + MIXTAPE_VERSION + "\n");
  EXPECT_EQ(run_shell(std::string(kMountHelper) + " -V").out, r.out);
}

}  // namespace
}  // namespace mixtape::cli::testing
