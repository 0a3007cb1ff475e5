// The archaeology drill: a tape written by `mixtape backup`, read back with
// nothing of mixtape's: a SIMH reader written for this test
// (simh_split.py), `age -d`, `sqlite3`, GNU `tar` and `b2sum`, following
// the recipes of archaeology/README.txt (which is file 0 of the tape).
#include "tests/backup/backup_test_util.h"

namespace mixtape::backup::testing {
namespace {

constexpr char kSplit[] = MIXTAPE_SOURCE_DIR "/tests/backup/simh_split.py";

class Drill : public MixtapeCliTest {
 protected:
  void SetUp() override {
    for (const char* tool : {"python3", "age", "sqlite3", "tar", "b2sum"})
      ASSERT_TRUE(have_tool(tool)) << tool << " not installed (scripts/install-deps.sh)";
  }

  CommandResult sh(const std::string& command) {
    return run_shell("cd " + shell_quote(dir_.path()) + " && " + command);
  }
  std::string sh_ok(const std::string& command) {
    CommandResult r = sh(command);
    EXPECT_EQ(r.status, 0) << command << "\n" << r.err;
    return r.out;
  }
};

TEST_F(Drill, EveryFileComesBackWithStockToolsAlone) {
  const std::string src = dir_.file("src");
  std::map<std::string, std::string> contents;  // member name -> bytes
  for (int i = 0; i < 9; ++i) {
    std::string name =
        "photos/roll " + std::to_string(i / 3) + "/IMG_" + std::to_string(i) + ".raw";
    contents[name] = random_text(37000 * i + 11, 100 + i);
  }
  contents["docs/empty"] = "";
  contents["docs/big.bin"] = random_text(700000, 7);  // several age chunks
  for (const auto& [name, data] : contents) write_file(src + "/" + name, data);
  ASSERT_EQ(::symlink("../docs/big.bin", (src + "/photos/latest").c_str()), 0);

  ASSERT_EQ(mixtape({"init", "--copies", "1"}).status, 0);
  CommandResult backed = mixtape({"backup", src, "--library", dir_.file("tapes"), "--new-library",
                                  "--capacity", "64M", "--archive-size", "512K"});
  ASSERT_EQ(backed.status, 0) << backed.err;
  const std::string key = env_.home + "/.config/mixtape/identity.txt";
  ASSERT_TRUE(std::filesystem::exists(key));

  // 1. List the tape's files with the reader written for this test.
  std::string count = sh_ok("python3 " + std::string(kSplit) + " tapes/L00001.tap files");
  const int files = std::stoi(count);
  ASSERT_GE(files, 6);  // file 0, index/archive pairs, trailing index
  ASSERT_EQ(files % 2, 0) << "a tape ends in a trailing index at an odd file number";

  // README.txt's own splitter (section 8), taken out of file 0 as README
  // says, must cut the image the same way.
  sh_ok("mkdir label && tar -xf files/0 -C label");
  EXPECT_EQ(sh_ok("head -1 label/MIXTAPE"), "mixtape tape format 2\n");
  EXPECT_NE(sh_ok("cat label/MIXTAPE").find("serial: L00001"), std::string::npos);
  sh_ok(
      "cd label && sed -n '/^---8<--- split_tap.py/,/^---8<--- end/p' README.txt | "
      "sed '1d;$d' > split_tap.py && python3 split_tap.py ../tapes/L00001.tap ../readme-files");
  for (int f = 0; f < files; ++f)
    EXPECT_EQ(
        sh("cmp files/" + std::to_string(f) + " readme-files/file" + std::to_string(f)).status, 0)
        << "README's split_tap.py disagrees on tape file " << f;

  // 2. The trailing index (README section 3): the last file, decrypted.
  const std::string last = "files/" + std::to_string(files - 1);
  EXPECT_EQ(sh_ok("head -c 21 " + last), "age-encryption.org/v1");
  sh_ok("age -d -i " + shell_quote(key) + " -o trailing.db " + last);
  EXPECT_EQ(sh_ok("sqlite3 trailing.db \"SELECT value FROM format WHERE key = 'kind'\""),
            "trailing\n");
  EXPECT_NE(sh_ok("sqlite3 trailing.db .tables").find("catalog_copies"), std::string::npos);
  // It knows every file's copy (README section 4: catalog_* tables).
  EXPECT_EQ(sh_ok("sqlite3 trailing.db 'SELECT count(*) FROM catalog_copies'"),
            std::to_string(contents.size() + 1) + "\n");
  EXPECT_EQ(sh_ok("sqlite3 trailing.db \"SELECT count(*) FROM catalog_archives\""),
            std::to_string(files / 2 - 1) + "\n");

  // 3. Every archive through its index (sections 4-6).
  std::map<std::string, std::string> seen;  // member -> blake2b256 from its index
  for (int archive = 2; archive < files - 1; archive += 2) {
    SCOPED_TRACE("archive file " + std::to_string(archive));
    std::string index = "index" + std::to_string(archive - 1) + ".db";
    std::string restore = "restore" + std::to_string(archive);
    sh_ok("age -d -i " + shell_quote(key) + " -o " + index + " files/" +
          std::to_string(archive - 1));
    EXPECT_EQ(sh_ok("sqlite3 " + index + " 'SELECT tape_file FROM archive'"),
              std::to_string(archive) + "\n");
    EXPECT_EQ(sh_ok("sqlite3 " + index + " \"SELECT value FROM format WHERE key = 'kind'\""),
              "archive\n");
    // Section 5, with the tape file on disk in place of dd from the drive.
    // GNU tar extracts a decrypted archive without a word on stderr (the
    // hash's pax keyword is one it knows to take in silence).
    sh_ok("mkdir " + restore + " && age -d -i " + shell_quote(key) + " files/" +
          std::to_string(archive) + " | tar -xf - -C " + restore + " 2> tar-errors" +
          std::to_string(archive));
    EXPECT_EQ(read_file(dir_ / ("tar-errors" + std::to_string(archive))), "");
    // Section 6, verbatim.
    sh_ok("sqlite3 " + index +
          " \"SELECT blake2b256 || '  ' || path FROM member WHERE type = "
          "'file'\" > sums" +
          std::to_string(archive) + ".b2");
    std::string checked =
        sh_ok("cd " + restore + " && b2sum -l 256 -c ../sums" + std::to_string(archive) + ".b2");
    EXPECT_EQ(checked.find("FAILED"), std::string::npos) << checked;
    // Each member: index hash == b2sum of the extracted file == hash of the
    // source, and the bytes are the source's.
    std::string rows = sh_ok("sqlite3 -separator '|' " + index +
                             " \"SELECT path, type, blake2b256 FROM member ORDER BY id\"");
    std::istringstream lines(rows);
    for (std::string line; std::getline(lines, line);) {
      auto bar1 = line.find('|'), bar2 = line.rfind('|');
      std::string path = line.substr(0, bar1), type = line.substr(bar1 + 1, bar2 - bar1 - 1),
                  hash = line.substr(bar2 + 1);
      std::string extracted = dir_.file(restore + "/" + path);
      if (type == "symlink") {
        EXPECT_EQ(std::filesystem::read_symlink(extracted).string(), "../docs/big.bin");
        seen[path] = "symlink";
        continue;
      }
      // Member names are the source paths without the leading '/'.
      std::string full = "/" + path;
      ASSERT_EQ(full.rfind(src + "/", 0), 0u) << path;
      std::string name = full.substr(src.size() + 1);
      ASSERT_TRUE(contents.count(name)) << path;
      std::string b2sum = sh_ok("b2sum -l 256 " + shell_quote(extracted));
      EXPECT_EQ(b2sum.substr(0, 64), hash) << path;
      EXPECT_EQ(hash, hash_hex(contents[name])) << path;
      EXPECT_EQ(read_file(extracted), contents[name]) << path;
      seen[path] = hash;
    }
  }
  EXPECT_EQ(seen.size(), contents.size() + 1) << "every file and the symlink, once";

  // 4. One file straight from its chunk (section 7, the .tap variant of
  // section 8), with age_range.py from README.txt, which needs python3's
  // cryptography (scripts/install-deps.sh installs it).
  ASSERT_EQ(sh("python3 -c 'import cryptography'").status, 0)
      << "python3-cryptography not installed (scripts/install-deps.sh)";
  std::string big = src.substr(1) + "/docs/big.bin";
  std::string index;
  for (int archive = 2; archive < files - 1 && index.empty(); archive += 2) {
    std::string candidate = "index" + std::to_string(archive - 1) + ".db";
    if (!sh_ok("sqlite3 " + candidate + " \"SELECT 1 FROM member WHERE path = '" + big + "'\"")
             .empty())
      index = candidate;
  }
  ASSERT_FALSE(index.empty());
  std::string recipe =
      "sed -n '/^---8<--- age_range.py/,/^---8<--- end/p' label/README.txt | sed '1d;$d' > "
      "age_range.py && "
      "A=$(sqlite3 " +
      index +
      " 'SELECT tape_file FROM archive') && "
      "H=$(sqlite3 " +
      index +
      " 'SELECT age_header_length FROM archive') && "
      "o=$(sqlite3 " +
      index + " \"SELECT data_offset FROM member WHERE path = '" + big +
      "'\") && "
      "size=$(sqlite3 " +
      index + " \"SELECT size FROM member WHERE path = '" + big +
      "'\") && "
      "i=$((o / 65536)) && c=$((H + 16 + i * 65552)) && "
      "tail -c +$((c + 1)) files/$A | python3 age_range.py " +
      shell_quote(key) + " files/$A $i $((o % 65536)) $size > one-file && b2sum -l 256 one-file";
  EXPECT_EQ(sh_ok(recipe).substr(0, 64), hash_hex(contents["docs/big.bin"]));
}

}  // namespace
}  // namespace mixtape::backup::testing
