// A tape written by a hostile party, for the hostile-tape tests and the
// mount tests: a tree whose members are later made to lie, backed up by the
// victim's own mixtape (so indexes and catalog are genuine), and the tools
// that party would use on it: the age CLI, python3 (hostile_tar.py for the
// archive, sqlite3 for an index) and an image writer. Edits keep every tape
// file in the middle of the tape at its length, so blocks stay where the
// catalog says.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/faults/faults_test_util.h"

namespace mixtape::faults::testing {

inline constexpr char kHostileTar[] = MIXTAPE_SOURCE_DIR "/tests/faults/hostile_tar.py";
// Where the symlink trick tries to write: out of any restore directory.
inline constexpr char kOutside[] =
    "../../../../../../../../../../../../tmp/mixtape-hostile-outside";

class HostileTape {
 public:
  explicit HostileTape(Fixture& f) : f_(f) {}

  // The tree, backed up to L00001 in one archive: tape files label, index,
  // archive, trailing index. Returns the catalog's full listing.
  std::string make() {
    namespace fs = std::filesystem;
    for (int i = 0; i < 6; ++i)
      write_file(src("plain/p" + std::to_string(i) + ".txt"), random_text(20000 + i * 777, i));
    write_file(src("zz/dotdot.txt"), "climbs out\n");
    write_file(src("ab/absolute.txt"), "rooted\n");
    fs::create_symlink(std::string(std::string_view(kOutside).size(), 'a'), src("s1"));
    write_file(src("s2/evil"), "through the symlink\n");
    write_file(src("lie/ustar-size.txt"), "ustar size lies\n");
    write_file(src("lie/pax-size.txt"), "pax size lies\n");
    write_file(src("lie/hash.txt"), "the hash record lies\n");
    write_file(src("lie/data.txt"), "the data was changed under its hash\n");
    f_.init(1);
    f_.backup("64M");
    recipient_ = run_shell("age-keygen -y " + shell_quote(f_.identity())).out;
    while (!recipient_.empty() && recipient_.back() == '\n') recipient_.pop_back();
    EXPECT_TRUE(recipient_.starts_with("age1")) << recipient_;
    record_size_ = f_.replicas(src("zz/dotdot.txt")).at(0).tape.record_size;
    return listing(f_);
  }

  std::string src(const std::string& name) const { return f_.src() + "/" + name; }
  // Member names are paths without the leading '/'.
  std::string member(const std::string& name) const { return src(name).substr(1); }

  // Tape file `n` of L00001 decrypted with the age CLI, changed by `change`
  // (given the plaintext's path), encrypted again to the victim's recipient
  // and put back: the image is rebuilt with every other file as it was.
  template <typename Change>
  void rewrite_tape_file(std::size_t n, Change change) {
    namespace fs = std::filesystem;
    auto files = image_files(f_.image("L00001"));
    ASSERT_LT(n, files.size());
    const std::string cipher = f_.file("file.age"), plain = f_.file("file.plain"),
                      again = f_.file("file.again");
    write_file(cipher, files[n]);
    CommandResult r = run_shell("age -d -i " + shell_quote(f_.identity()) + " -o " +
                                shell_quote(plain) + " " + shell_quote(cipher));
    ASSERT_EQ(r.status, 0) << r.err;
    change(plain);
    r = run_shell("age -r " + recipient_ + " -o " + shell_quote(again) + " " + shell_quote(plain));
    ASSERT_EQ(r.status, 0) << r.err;
    std::string rewritten = read_file(again);
    if (n + 1 < files.size()) {
      ASSERT_EQ(rewritten.size(), files[n].size()) << "a file in the middle keeps its length";
    }
    files[n] = rewritten;
    write_image(f_.image("L00001"), files, record_size_);
    for (const char* name : {"file.age", "file.plain", "file.again"}) fs::remove(f_.file(name));
  }
  std::size_t last_file() { return image_files(f_.image("L00001")).size() - 1; }

  void tamper_archive(const std::vector<std::string>& edits) {
    rewrite_tape_file(2, [&](const std::string& tar) {
      std::string command = "python3 " + shell_quote(kHostileTar) + " " + shell_quote(tar);
      for (const auto& e : edits) command += " " + shell_quote(e);
      CommandResult r = run_shell(command);
      ASSERT_EQ(r.status, 0) << r.err;
    });
  }

  // Every lie hostile_tar.py knows, each on its own member.
  void tamper_every_way() {
    tamper_archive({
        "rename:" + member("zz/dotdot.txt") + ":" + member("../dotdot.txt"),
        "rename:" + member("ab/absolute.txt") + ":/" + member("ab/absolute.txt").substr(1),
        "linkpath:" + member("s1") + ":" + kOutside,
        "rename:" + member("s2/evil") + ":" + member("s1/evil"),
        "ustar-size:" + member("lie/ustar-size.txt") + ":" + std::to_string((1ULL << 33) - 1),
        "pax-size:" + member("lie/pax-size.txt"),
        "hash:" + member("lie/hash.txt") + ":" + std::string(64, 'e'),
        "data:" + member("lie/data.txt"),
    });
  }
  // A size lie told consistently: the archive's member and the trailing
  // index's catalog both say ustar-size.txt holds 8 GiB (the archive holds
  // a few hundred KB). A catalog recovered from this tape believes it.
  static constexpr std::uint64_t kClaimedSize = (1ULL << 33) - 1;
  void lie_about_a_size_everywhere() {
    tamper_archive(
        {"ustar-size:" + member("lie/ustar-size.txt") + ":" + std::to_string(kClaimedSize)});
    rewrite_tape_file(last_file(), [](const std::string& db) {
      run_sql(db, "db.execute('UPDATE catalog_versions SET size = " + std::to_string(kClaimedSize) +
                      " WHERE file_id = (SELECT id FROM catalog_files WHERE name = "
                      "\"ustar-size.txt\")')");
    });
  }

  // The files whose members lie (the symlink s1 too, but restore and the
  // mount take symlink targets from the catalog, never from the tape).
  std::vector<std::string> lying() const {
    return {src("zz/dotdot.txt"),      src("ab/absolute.txt"),  src("s2/evil"),
            src("lie/ustar-size.txt"), src("lie/pax-size.txt"), src("lie/hash.txt"),
            src("lie/data.txt")};
  }
  std::vector<std::string> honest() const {
    std::vector<std::string> out;
    for (int i = 0; i < 6; ++i) out.push_back(src("plain/p" + std::to_string(i) + ".txt"));
    return out;
  }

  // Runs python3 with `db` open (sqlite3) on an index's plaintext.
  static void run_sql(const std::string& db, const std::string& code) {
    CommandResult r =
        run_shell("python3 -c " +
                  shell_quote("import sqlite3, sys\ndb = sqlite3.connect(sys.argv[1])\n" + code +
                              "\ndb.commit()\ndb.close()\n") +
                  " " + shell_quote(db));
    ASSERT_EQ(r.status, 0) << r.err;
  }

 private:
  Fixture& f_;
  std::string recipient_;
  std::uint64_t record_size_ = 0;
};

}  // namespace mixtape::faults::testing
