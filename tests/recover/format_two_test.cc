// Format 2 from a reader's side: a tape's indexes rebuild the catalog when
// its trailing index is gone (by mixtape recover, and by hand with
// README.txt's sqlite3 program), the indexes hold only what changed, and
// tapes written in format 1 stay readable (tests/testdata/format1).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <random>

#include "tests/restore/test_util.h"

namespace mixtape::restore::testing {
namespace {

namespace fs = std::filesystem;

// The files of a tape image, split with the split_tap.py that README.txt
// (in the tape's own file 0) gives, then each index decrypted with age.
class TapeOnDisk {
 public:
  TapeOnDisk(Fixture& f, const std::string& image, const std::string& dir) : f_(f), dir_(dir) {
    fs::create_directories(dir_);
    sh(std::string(kMixtape) + " tape cat --device " + shell_quote(image) + " --file 0 > " +
       q("file0.tar"));
    sh("mkdir -p " + q("label") + " && tar -xf " + q("file0.tar") + " -C " + q("label"));
    sh("cd " + q("label") +
       " && sed -n '/^---8<--- split_tap.py/,/^---8<--- end/p' README.txt | "
       "sed '1d;$d' > split_tap.py && python3 split_tap.py " +
       shell_quote(image) + " " + q("files"));
    sh("cd " + q("label") +
       " && sed -n '/^---8<--- rebuild_catalog.sh/,/^---8<--- end/p' "
       "README.txt | sed '1d;$d' > rebuild_catalog.sh");
    for (int n = 0; fs::exists(dir_ + "/files/file" + std::to_string(n)); ++n) files_ = n + 1;
  }

  int files() const { return files_; }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  // Tape file n decrypted (an index) into `name`.
  std::string decrypt(int n, const std::string& name) {
    sh("age -d -i " + shell_quote(f_.identity()) + " -o " + q(name) + " " +
       q("files/file" + std::to_string(n)));
    return path(name);
  }

  std::string sh(const std::string& command) {
    CommandResult r = test_support::run_shell(command);
    EXPECT_EQ(r.status, 0) << command << "\n" << r.err;
    return r.out;
  }
  std::string sqlite(const std::string& db, const std::string& query) {
    return sh("sqlite3 " + shell_quote(db) + " " + shell_quote(query));
  }

 private:
  std::string q(const std::string& name) const { return shell_quote(path(name)); }

  Fixture& f_;
  std::string dir_;
  int files_ = 0;
};

// Garbles the data of every record of the last tape file (the framing stays:
// the tape still reads, the file does not decrypt).
void garble_last_file(const std::string& image) {
  auto blocks = parse_image(image);
  std::fstream f(image, std::ios::binary | std::ios::in | std::ios::out);
  std::mt19937 rng(7);
  for (auto b = tape_files(blocks).back(); b < blocks.size() && !blocks[b].filemark; ++b) {
    f.seekp(static_cast<std::streamoff>(blocks[b].data_offset));
    for (std::uint64_t i = 0; i < blocks[b].size; ++i) f.put(static_cast<char>(rng()));
  }
}

class FormatTwoTest : public ::testing::Test {
 protected:
  CommandResult mixtape(const std::string& args) { return f_.mixtape(args); }
  std::string listing() { return f_.listing(); }
  // Two backup runs to one tape, each several archives, the second after
  // files changed, went away and were added.
  void two_runs() {
    f_.make_tree();
    f_.init(1);
    f_.backup();
    write_file(f_.src() + "/d1/f1", "changed content\n");
    fs::remove(f_.src() + "/d2/f2");
    write_file(f_.src() + "/new/one.bin", random_text(700'000, 77));
    write_file(f_.src() + "/new/two.bin", random_text(900'000, 78));
    f_.backup("512K");
  }

  Fixture f_;
};

TEST_F(FormatTwoTest, WithItsTrailingIndexDestroyedATapeIsRecoveredFromItsIndexes) {
  two_runs();
  const std::string before = listing();
  const std::string image = f_.image("L00001");
  garble_last_file(image);
  f_.drop_catalog();
  CommandResult r = mixtape("recover --library " + shell_quote(f_.library()));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("trailing index is not usable"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("from a walk over"), std::string::npos) << r.out;
  EXPECT_EQ(listing(), before);
  // Everything restores from the recovered catalog.
  r = mixtape("restore " + shell_quote(f_.src()) + " --to " + shell_quote(f_.file("out")) +
              " --library " + shell_quote(f_.library()));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(read_file(f_.file("out") + f_.src() + "/new/two.bin"),
            read_file(f_.src() + "/new/two.bin"));
  EXPECT_EQ(read_file(f_.file("out") + f_.src() + "/d1/f1"), "changed content\n");
}

// README.txt section 10, run as written: the catalog at the last archive
// index, put together from the indexes with sqlite3 alone, is the catalog
// of the trailing index but for the copies its own session committed after
// it.
TEST_F(FormatTwoTest, ByHandWithReadmesSqliteProgramTheIndexesGiveTheCatalog) {
  two_runs();
  TapeOnDisk tape(f_, f_.image("L00001"), f_.file("drill"));
  const int last = tape.files() - 1;  // the trailing index
  ASSERT_GE(last, 7);
  const std::string trailing = tape.decrypt(last, "trailing.db");
  std::string indexes;
  for (int n = 1; n < last; n += 2)
    indexes += " " + shell_quote(tape.decrypt(n, "index" + std::to_string(n) + ".db"));
  EXPECT_EQ(tape.sqlite(tape.path("index1.db"), "SELECT value FROM format WHERE key = 'catalog'"),
            "full\n");
  EXPECT_EQ(
      tape.sqlite(tape.path("index3.db"), "SELECT value FROM format WHERE key = 'catalog_base'"),
      "1\n");
  const std::string rebuilt = tape.path("rebuilt.db");
  tape.sh("sh " + shell_quote(tape.path("label/rebuild_catalog.sh")) + " " + shell_quote(rebuilt) +
          indexes);

  auto rows = [&](const std::string& query) {
    return tape.sqlite(rebuilt, "ATTACH '" + trailing + "' AS t; " + query);
  };
  // Every directory, file, version and gap as the trailing index has them.
  for (const char* table : {"dirs", "files", "versions", "gaps", "copy_goals", "run_roots"}) {
    SCOPED_TRACE(table);
    const std::string name = std::string("catalog_") + table;
    EXPECT_EQ(rows("SELECT count(*) FROM (SELECT * FROM main." + name + " EXCEPT SELECT * FROM t." +
                   name + ")"),
              "0\n");
    EXPECT_EQ(rows("SELECT count(*) FROM (SELECT * FROM t." + name + " EXCEPT SELECT * FROM main." +
                   name + ")"),
              "0\n");
  }
  // The copies: all of the first run's, none of the second's (committed
  // once its last archive was on tape, after its index).
  const std::string second_run = "(SELECT max(id) FROM t.catalog_runs)";
  EXPECT_EQ(rows("SELECT count(*) FROM (SELECT * FROM main.catalog_copies EXCEPT SELECT * FROM "
                 "t.catalog_copies)"),
            "0\n");
  EXPECT_EQ(rows("SELECT count(*) FROM main.catalog_copies"),
            rows("SELECT count(*) FROM t.catalog_copies c JOIN t.catalog_archives a ON a.id = "
                 "c.archive_id WHERE a.run_id < " +
                 second_run));
  EXPECT_NE(rows("SELECT count(*) FROM main.catalog_copies"), "0\n");
  // And what the last index's own archive holds is its member table.
  EXPECT_NE(tape.sqlite(tape.path("index" + std::to_string(last - 2) + ".db"),
                        "SELECT count(*) FROM member"),
            "0\n");
}

// The catalog's last full copy on tape is kept beside it
// (<catalog>.tapecopy/<token>.db), and each full copy starts from it: a file
// copy and what changed, where a copy made from the catalog costs about a
// second per million files. What goes on tape is the whole catalog all
// the same.
TEST_F(FormatTwoTest, EachFullCopyStartsFromTheLastAndHoldsTheWholeCatalog) {
  two_runs();
  auto kept = [&] {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(f_.catalog() + ".tapecopy"))
      out.push_back(e.path());
    return out;
  };
  ASSERT_EQ(kept().size(), 1u);  // the first run's copy is gone
  TapeOnDisk tape(f_, f_.image("L00001"), f_.file("drill"));
  EXPECT_EQ(read_file(tape.decrypt(tape.files() - 1, "trailing.db")), read_file(kept()[0]));

  // A mark in the kept copy shows where the next one starts.
  tape.sqlite(kept()[0], "CREATE TABLE started_from_the_kept_copy (x)");
  ASSERT_EQ(mixtape("tape location L00001 'shelf 3'").status, 0);
  write_file(f_.src() + "/third/run.txt", "a third run\n");
  f_.backup();
  ASSERT_EQ(kept().size(), 1u);
  TapeOnDisk again(f_, f_.image("L00001"), f_.file("drill2"));
  const std::string trailing = again.decrypt(again.files() - 1, "trailing.db");
  EXPECT_EQ(again.sqlite(trailing, "SELECT count(*) FROM started_from_the_kept_copy"), "0\n");
  EXPECT_EQ(again.sqlite(trailing, "SELECT location FROM catalog_tape_notes"), "shelf 3\n");

  // A damaged kept copy is not used: the copy is made from the catalog.
  write_file(kept()[0], random_text(100'000, 9));
  write_file(f_.src() + "/fourth/run.txt", "and a fourth\n");
  f_.backup();
  ASSERT_EQ(kept().size(), 1u);
  TapeOnDisk last(f_, f_.image("L00001"), f_.file("drill3"));
  const std::string made = last.decrypt(last.files() - 1, "trailing.db");
  EXPECT_EQ(read_file(made), read_file(kept()[0]));
  EXPECT_EQ(last.sqlite(made, "PRAGMA integrity_check"), "ok\n");

  // Each is the whole catalog: the tape alone gives it back.
  const std::string before = listing();
  f_.drop_catalog();
  CommandResult r = mixtape("recover --library " + shell_quote(f_.library()));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err.find("not usable"), std::string::npos) << r.err;
  EXPECT_EQ(listing(), before);
  EXPECT_NE(before.find("/fourth/run.txt"), std::string::npos);
}

TEST_F(FormatTwoTest, AnIncrementalsIndexesHoldWhatChangedNotTheCatalog) {
  // 3000 small files: a catalog copy of a few hundred KB.
  for (int i = 0; i < 3000; ++i)
    write_file(f_.src() + "/many/d" + std::to_string(i % 30) + "/f" + std::to_string(i),
               std::to_string(i));
  f_.init(1);
  f_.backup("64M");
  write_file(f_.src() + "/later.txt", "one new file\n");
  f_.backup("64M");
  write_file(f_.src() + "/later2.txt", "and another\n");
  f_.backup("64M");
  TapeOnDisk tape(f_, f_.image("L00001"), f_.file("drill"));
  const int last = tape.files() - 1;
  ASSERT_EQ(last, 7);  // index, archive for each run; the trailing index
  const std::string second = tape.decrypt(3, "second.db");
  const std::string third = tape.decrypt(5, "third.db");
  const std::string trailing = tape.decrypt(7, "trailing.db");
  for (const std::string& index : {second, third}) {
    EXPECT_EQ(tape.sqlite(index, "SELECT value FROM format WHERE key = 'catalog'"), "changes\n");
    EXPECT_EQ(tape.sqlite(index, "SELECT count(*) FROM catalog_versions"), "1\n");
    EXPECT_EQ(tape.sqlite(index, "SELECT count(*) FROM catalog_files"), "1\n");
  }
  EXPECT_EQ(tape.sqlite(trailing, "SELECT count(*) FROM catalog_versions"), "3002\n");
  // The first run's copies were committed after its index was written: the
  // next index carries them. After that, each carries its predecessor's.
  EXPECT_EQ(tape.sqlite(second, "SELECT count(*) FROM catalog_copies"), "3000\n");
  EXPECT_EQ(tape.sqlite(third, "SELECT count(*) FROM catalog_copies"), "1\n");
  // (Every index also has a fixed part, a page or more per table: 22 pages
  // here, against the trailing index's 105.)
  EXPECT_LT(fs::file_size(third) * 4, fs::file_size(trailing));
}

TEST_F(FormatTwoTest, ABrokenChainRecoversWhatItReachesAndSaysWhere) {
  f_.make_tree();
  f_.init(1);
  f_.backup();
  const std::string image = f_.image("L00001");
  garble_last_file(image);  // the trailing index
  // ... and the second archive index.
  auto blocks = parse_image(image);
  flip_byte(image, blocks[tape_files(blocks)[3]].data_offset + 300);
  f_.drop_catalog();
  CommandResult r = mixtape("recover --library " + shell_quote(f_.library()));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("the index at tape file 3"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("holds the catalog's changes since tape file 3, which is missing or "
                       "unusable; the catalog is recovered as it was at tape file 1"),
            std::string::npos)
      << r.err;
  // The first archive's files are there and restore.
  auto catalog = catalog::Catalog::open_read_only(f_.catalog());
  auto first = catalog.archive_by_file(catalog.tape_by_serial("L00001")->id, 2);
  ASSERT_TRUE(first);
  std::size_t restored = 0;
  catalog.for_each_copy_on_tape(first->tape_id, [&](const catalog::CopyWithVersion& c) {
    if (c.archive_file == 2) ++restored;
  });
  EXPECT_GT(restored, 0u);
}

// ---------------------------------------------------------------- format 1

// tests/testdata/format1: a tape written by mixtape before format 2, with
// its catalog (schema 1), listing and hashes.
class FormatOneTest : public FormatTwoTest {
 protected:
  void SetUp() override {
    fs::create_directories(f_.library());
    for (const char* name : {"L00001.tap", "L00001.tap.meta"})
      fs::copy_file(data_ + name, f_.library() + "/" + name);
    fs::create_directories(fs::path(f_.identity()).parent_path());
    fs::copy_file(data_ + "identity.txt", f_.identity());
  }
  std::string expected_listing() { return read_file(data_ + "ls.txt"); }
  std::string listing() { return f_.listing("/tmp/f1/src"); }
  // b2sum lines of the files as they were after the second run, and of the
  // one deleted before it (the latest view holds it too).
  std::string expected_sums() {
    std::string sums = read_file(data_ + "b2sums.txt");
    const std::string img3 = "5a3093c56ffdcf54e72a06c2c82c803a477377726440ad82d85f5e2d886bad08";
    return sums.insert(sums.find(img3),
                       "b8d5bfc79ef0e79ef51d25aabc05a5a2ba76a48dfb70775b6f26604b55ac46b6  "
                       "./photos/2019/img2.raw\n");
  }
  std::string restored_sums(const std::string& dir) {
    return test_support::run_shell("cd " + shell_quote(dir + "/tmp/f1/src") +
                                   " && find . -type f -exec b2sum -l 256 {} \\; | sort -k2")
        .out;
  }
  void restore_all(const std::string& to) {
    CommandResult r = mixtape("restore /tmp/f1/src --to " + shell_quote(to) + " --library " +
                              shell_quote(f_.library()));
    ASSERT_EQ(r.status, 0) << r.err;
  }

  const std::string data_ = std::string(MIXTAPE_TESTDATA) + "/format1/";
};

TEST_F(FormatOneTest, RecoverRestoreAndVerifyReadAFormatOneTape) {
  for (const char* how : {"", " --walk-indexes"}) {
    SCOPED_TRACE(how);
    f_.drop_catalog();
    CommandResult r = mixtape("recover --library " + shell_quote(f_.library()) + how);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(listing(), expected_listing());
  }
  const std::string out = f_.file("out");
  restore_all(out);
  EXPECT_EQ(restored_sums(out), expected_sums());
  CommandResult v = mixtape("verify --library " + shell_quote(f_.library()));
  EXPECT_EQ(v.status, 0) << v.err << v.out;
  CommandResult info = mixtape("tape info --device " + shell_quote(f_.image("L00001")));
  EXPECT_NE(info.out.find("serial: L00001"), std::string::npos) << info.out;
}

// An existing user's catalog: opened by this version it is upgraded in
// place (open versions, change epochs), still lists and restores the same,
// and the next backup appends format-2 indexes and archives to the
// format-1 tape, which then recovers whole either way.
TEST_F(FormatOneTest, AnOldCatalogIsUpgradedAndItsTapeTakesFormatTwoAppends) {
  fs::copy_file(data_ + "catalog-schema1.db", f_.catalog());
  EXPECT_EQ(listing(), expected_listing());
  {
    auto catalog = catalog::Catalog::open_read_only(f_.catalog());
    auto entry = catalog.resolve("/tmp/f1/src/docs/readme.txt");
    ASSERT_TRUE(entry);
    auto versions = catalog.versions_of(entry->file_id);
    ASSERT_EQ(versions.size(), 2u);
    EXPECT_NE(versions[0].last_seen_run, 0);  // replaced by the second
    // Not open: the scan state of that machine said nothing about this one.
    EXPECT_EQ(catalog.status().versions, 7u);
  }
  const std::string out = f_.file("out");
  restore_all(out);
  EXPECT_EQ(restored_sums(out), expected_sums());

  // A new backup of other files, to the same (format-1) tape.
  write_file(f_.src() + "/appended.txt", "written in format 2\n");
  CommandResult b =
      mixtape("backup " + shell_quote(f_.src()) + " --library " + shell_quote(f_.library()));
  ASSERT_EQ(b.status, 0) << b.err;
  EXPECT_NE(b.out.find("to L00001"), std::string::npos) << b.out;
  const std::string after = listing();
  for (const char* how : {"", " --walk-indexes"}) {
    SCOPED_TRACE(how);
    f_.drop_catalog();
    CommandResult r = mixtape("recover --library " + shell_quote(f_.library()) + how);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(listing(), after);
  }
  CommandResult r =
      mixtape("restore " + shell_quote(f_.src()) + " --to " + shell_quote(f_.file("out2")) +
              " --library " + shell_quote(f_.library()));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(read_file(f_.file("out2") + f_.src() + "/appended.txt"), "written in format 2\n");
  CommandResult info = mixtape("tape info --device " + shell_quote(f_.image("L00001")));
  EXPECT_NE(info.out.find("file 11:"), std::string::npos) << info.out;  // appended after file 9
}

}  // namespace
}  // namespace mixtape::restore::testing
