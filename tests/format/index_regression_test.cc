// Bounds on reading an index from tape, added with the index_db fuzzer
// (fuzz/, docs/FUZZING.md): a hostile index must cost bounded memory per
// value, and must not describe an archive no age file can hold. One test
// per bound; each tampers with a real index as an attacker would.
#include <gtest/gtest.h>

#include "engine/format/format.h"
#include "engine/sqlite/sqlite.h"
#include "tests/format/test_util.h"

namespace mixtape::format {
namespace {

using testing::hash_hex;
using testing::TempDir;

constexpr std::uint64_t kAgeHeader = 200;

// A one-member archive index, as the write pipeline makes it.
std::string write_index(const TempDir& dir) {
  const std::string path = dir / "index.db";
  IndexHeader header;
  header.serial = "L00007";
  header.index_file = 1;
  header.archive_file = 2;
  header.catalog_id = "00112233445566778899aabbccddeeff";
  header.created = "2026-11-21T10:00:00Z";
  MemberInfo info;
  info.path = "a/file";
  info.size = 5;
  info.uname = "alice";
  info.gname = "alice";
  info.blake2b256 = hash_hex("hello");
  PaxLayout layout;
  MemberOffsets offsets = layout.add(info);
  IndexWriter writer(path, header);
  writer.add_member({info, offsets});
  const std::uint64_t tar = layout.finished_size();
  writer.set_archive({2, 100, kAgeHeader, age_encrypted_size(kAgeHeader, tar), tar, 1});
  writer.finish();
  return path;
}

void tamper(const std::string& path, const std::string& sql) {
  sqlite::Database db(path, sqlite::OpenMode::kReadWrite);
  db.exec(sql);
}

// The error reading the whole index gives, or "" when it reads cleanly.
std::string read_error(const std::string& path) {
  try {
    IndexReader reader(path);
    auto members = reader.members();
    while (members.next()) {
    }
  } catch (const FormatError& e) {
    return e.what();
  }
  return "";
}

TEST(IndexRegression, UntamperedIndexReads) {
  TempDir dir;
  EXPECT_EQ(read_error(write_index(dir)), "");
}

// A format value is a word or a number; a long one is refused before it is
// copied, and a value over the untrusted limit (1 MiB) never leaves SQLite.
TEST(IndexRegression, LongFormatValueIsRefused) {
  TempDir dir;
  const std::string path = write_index(dir);
  tamper(path, "UPDATE format SET value = printf('%.5000c', 'x') WHERE key = 'serial'");
  EXPECT_NE(read_error(path).find("implausibly long"), std::string::npos) << read_error(path);
}

TEST(IndexRegression, ValueOverTheUntrustedLengthLimitIsRefused) {
  TempDir dir;
  const std::string path = write_index(dir);
  tamper(path, "UPDATE format SET value = zeroblob(2 << 20) WHERE key = 'created'");
  EXPECT_NE(read_error(path).find("not a readable mixtape index"), std::string::npos)
      << read_error(path);
  sqlite::Database db(path, sqlite::OpenMode::kUntrusted);
  auto s = db.prepare("SELECT value FROM format WHERE key = 'created'");
  try {
    s.step();
    ADD_FAILURE() << "a 2 MiB value was read from an untrusted database";
  } catch (const sqlite::SqliteError& e) {
    EXPECT_EQ(e.code(), SQLITE_TOOBIG) << e.what();
  }
}

TEST(IndexRegression, LongMemberPathIsRefused) {
  TempDir dir;
  const std::string path = write_index(dir);
  tamper(path, "UPDATE member SET path = printf('%.70000c', 'p')");
  EXPECT_NE(read_error(path).find("70000 bytes is too long"), std::string::npos)
      << read_error(path);
}

TEST(IndexRegression, LongOwnerIsRefused) {
  TempDir dir;
  const std::string path = write_index(dir);
  tamper(path, "UPDATE member SET gname = printf('%.300c', 'g')");
  EXPECT_NE(read_error(path).find("owner name too long"), std::string::npos) << read_error(path);
}

TEST(IndexRegression, LongLinkTargetIsRefused) {
  TempDir dir;
  const std::string path = write_index(dir);
  tamper(path, "UPDATE member SET linkpath = printf('%.70000c', 'l')");
  EXPECT_NE(read_error(path).find("link target too long"), std::string::npos) << read_error(path);
}

// age refuses headers over 1 MiB, so an archive row claiming a larger H is
// refused even when its sizes add up.
TEST(IndexRegression, ImplausibleAgeHeaderLengthIsRefused) {
  TempDir dir;
  const std::string path = write_index(dir);
  const std::uint64_t h = 2 << 20;
  tamper(path, "UPDATE archive SET age_header_length = " + std::to_string(h) +
                   ", ciphertext_size = " + std::to_string(h) + " + ciphertext_size - " +
                   std::to_string(kAgeHeader));
  EXPECT_NE(read_error(path).find("age header length 2097152 is implausible"), std::string::npos)
      << read_error(path);
}

}  // namespace
}  // namespace mixtape::format
