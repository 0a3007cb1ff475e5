// The integrity stamp: a full check that passed is stamped; while the file
// is unchanged the next check is skipped; any change (a touch, bytes
// appended, a write-ahead log, damage) brings the full check back; the
// cheap checks run whatever the stamp says.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <ctime>
#include <filesystem>

#include "tests/catalog/test_util.h"

namespace mixtape::catalog::testing {
namespace {

namespace fs = std::filesystem;
using test_support::read_file;
using test_support::write_file;

class IntegrityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = Catalog::create(path(), test_config());
    auto tx = c.transaction();
    // Enough rows for tables and indexes of many pages.
    for (int i = 0; i < 3000; ++i)
      make_file(c,
                "/dir" + std::to_string(i % 30) + "/file-with-a-longer-name-" + std::to_string(i));
    tx.commit();
  }

  std::string path() const { return dir_.file("catalog.db"); }
  std::string stamps() const { return dir_.file("cache/mixtape/checked"); }
  std::string stamp() const { return integrity_stamp_path(stamps(), path()); }
  IntegrityCheck check() { return Catalog::open_read_only(path()).check_integrity(stamps()); }
  // A stamp is written only for a state older than two ticks of the clock
  // file times come from (engine/catalog/integrity.cc: 20 ms, or 2 s where
  // times are whole seconds): waits until the catalog and its log are older
  // than that, with room to spare.
  void settle() const {
    ASSERT_TRUE(test_support::poll_until([&] { return older(path()) && older(path() + "-wal"); }))
        << "the catalog's times never settled";
  }
  static bool older(const std::string& file) {
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0) return true;  // no such file: nothing to wait for
    const auto ns = [](const struct timespec& t) {
      return static_cast<std::int64_t>(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
    };
    struct timespec now {};
    ::clock_gettime(CLOCK_REALTIME, &now);
    const bool whole_seconds = st.st_mtim.tv_nsec == 0 && st.st_ctim.tv_nsec == 0;
    const std::int64_t margin = whole_seconds ? 2'500'000'000 : 60'000'000;
    return ns(now) - std::max(ns(st.st_mtim), ns(st.st_ctim)) > margin;
  }

  TempDir dir_;
};

unsigned mode_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

TEST_F(IntegrityTest, AGoodCheckIsStampedAndTheNextOneSkipped) {
  settle();
  EXPECT_EQ(check(), IntegrityCheck::kFull);
  ASSERT_TRUE(fs::exists(stamp()));
  EXPECT_EQ(fs::path(stamp()).filename().string().size(), 64u) << "BLAKE2b-256 of the path";
  EXPECT_EQ(mode_of(stamp()), 0600u);
  EXPECT_EQ(mode_of(stamps()), 0700u);
  const std::string text = read_file(stamp());
  EXPECT_NE(text.find(fs::canonical(path()).string() + "\n"), std::string::npos) << text;
  EXPECT_NE(text.find(catalog_identity(path()) + "\n"), std::string::npos) << text;
  EXPECT_EQ(check(), IntegrityCheck::kStamped);
  EXPECT_EQ(check(), IntegrityCheck::kStamped);
  // The same file under another name is the same catalog.
  const std::string link = dir_.file("link.db");
  fs::create_symlink(path(), link);
  EXPECT_EQ(Catalog::open_read_only(link).check_integrity(stamps()), IntegrityCheck::kStamped);
}

// A skipped check really reads nothing: damage whose identity is forged
// into the stamp goes unseen. (Real damage changes mtime and ctime, which
// nobody can forge back without the stamp's help.)
TEST_F(IntegrityTest, AStampMatchingTheFileSkipsTheFullCheck) {
  settle();
  ASSERT_EQ(check(), IntegrityCheck::kFull);
  const std::string before = catalog_identity(path());
  const std::uint64_t size = fs::file_size(path());
  std::string data = read_file(path());
  for (std::size_t i = 0; i < 64; ++i) data[size / 4096 / 2 * 4096 + i] ^= 0x5a;
  write_file(path(), data);
  const std::string after = catalog_identity(path());
  ASSERT_NE(after, before);
  EXPECT_THROW(check(), CatalogError);
  std::string text = read_file(stamp());
  text.replace(text.find(before), before.size(), after);
  write_file(stamp(), text);
  EXPECT_EQ(check(), IntegrityCheck::kStamped);
}

TEST_F(IntegrityTest, AnyChangeBringsTheFullCheckBack) {
  settle();
  ASSERT_EQ(check(), IntegrityCheck::kFull);
  ASSERT_EQ(check(), IntegrityCheck::kStamped);

  // Touched: same bytes, new times.
  ASSERT_EQ(::utimensat(AT_FDCWD, path().c_str(), nullptr, 0), 0);
  settle();
  EXPECT_EQ(check(), IntegrityCheck::kFull);
  EXPECT_EQ(check(), IntegrityCheck::kStamped);

  // Bytes appended past the last page.
  {
    std::string data = read_file(path());
    write_file(path(), data + std::string(4096, '\0'));
  }
  settle();
  EXPECT_EQ(check(), IntegrityCheck::kFull);
  EXPECT_EQ(check(), IntegrityCheck::kStamped);

  // A write-ahead log left by a writer that is still open.
  auto writer = Catalog::open(path());
  writer.set_config("note", "in the log");
  ASSERT_GT(fs::file_size(path() + "-wal"), 0u);
  settle();
  EXPECT_EQ(check(), IntegrityCheck::kFull);
  EXPECT_EQ(check(), IntegrityCheck::kStamped);
  writer.set_config("note", "more in the log");
  EXPECT_EQ(check(), IntegrityCheck::kFull);
}

TEST_F(IntegrityTest, DamageAfterAStampIsRefused) {
  settle();
  ASSERT_EQ(check(), IntegrityCheck::kFull);
  ASSERT_EQ(check(), IntegrityCheck::kStamped);
  std::string data = read_file(path());
  const std::size_t middle = data.size() / 4096 / 2 * 4096;
  for (std::size_t i = 0; i < 64; ++i) data[middle + i] ^= 0x5a;
  write_file(path(), data);
  try {
    check();
    FAIL() << "the damaged catalog was accepted";
  } catch (const CatalogError& e) {
    EXPECT_NE(std::string(e.what()).find("is damaged"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(path()), std::string::npos) << e.what();
  }
  // Refused every time, not stamped.
  EXPECT_THROW(check(), CatalogError);
}

// The cheap checks run whatever the stamp says: a file cut short is refused
// from its header's page count alone, even under a forged stamp.
TEST_F(IntegrityTest, ACatalogCutShortIsRefusedWithoutTheFullCheck) {
  settle();
  ASSERT_EQ(check(), IntegrityCheck::kFull);
  const std::string before = catalog_identity(path());
  // Opened before the cut, as a mount's connection is.
  auto reader = Catalog::open_read_only(path());
  fs::resize_file(path(), fs::file_size(path()) / 2);
  std::string text = read_file(stamp());
  text.replace(text.find(before), before.size(), catalog_identity(path()));
  write_file(stamp(), text);
  try {
    reader.check_integrity(stamps());
    FAIL() << "the truncated catalog was accepted";
  } catch (const CatalogError& e) {
    EXPECT_NE(std::string(e.what()).find("cut short"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("mixtape recover"), std::string::npos) << e.what();
  }
}

// A writer opened with a stamp folder stamps what it wrote when it closes,
// so the next reader skips the check.
TEST_F(IntegrityTest, AWriterStampsTheCatalogItWroteWhenItCloses) {
  {
    auto writer = Catalog::open(path(), stamps());
    writer.set_config("note", "written");
  }
  EXPECT_FALSE(fs::exists(path() + "-wal") && fs::file_size(path() + "-wal") > 0);
  ASSERT_TRUE(fs::exists(stamp()));
  EXPECT_EQ(check(), IntegrityCheck::kStamped);
  EXPECT_EQ(Catalog::open_read_only(path()).get_config("note"), "written");
}

// A second connection (the backup's hash stage has one) sees and writes the
// same catalog but leaves stamping to the connection that checked it: the
// stamp is written once, when that one closes, for the final state.
TEST_F(IntegrityTest, AnotherConnectionNeitherChecksNorStamps) {
  settle();
  {
    auto writer = Catalog::open(path(), stamps());
    ASSERT_TRUE(fs::exists(stamp()));
    const std::string opened = read_file(stamp());
    {
      auto other = writer.another_connection();
      other.set_config("note", "from the other connection");
    }
    EXPECT_EQ(read_file(stamp()), opened) << "the other connection stamped";
    EXPECT_EQ(writer.get_config("note"), "from the other connection");
  }
  EXPECT_EQ(check(), IntegrityCheck::kStamped);
}

// Stamps are rewritten in place: replacing the file would free its blocks,
// which on a disk with online discard stalls the writer for tens of ms.
TEST_F(IntegrityTest, AStampIsRewrittenInPlace) {
  settle();
  EXPECT_EQ(check(), IntegrityCheck::kFull);
  struct stat first {};
  ASSERT_EQ(::stat(stamp().c_str(), &first), 0);
  {
    auto writer = Catalog::open(path(), stamps());
    writer.set_config("note", "changed");
  }
  EXPECT_EQ(check(), IntegrityCheck::kStamped);
  struct stat second {};
  ASSERT_EQ(::stat(stamp().c_str(), &second), 0);
  EXPECT_EQ(second.st_ino, first.st_ino);
  EXPECT_EQ(mode_of(stamp()), 0600u);
  EXPECT_NE(read_file(stamp()).find(catalog_identity(path()) + "\n"), std::string::npos);
  EXPECT_EQ(std::distance(fs::directory_iterator(stamps()), fs::directory_iterator()), 1)
      << "no temporary files left beside it";
}

// The stamp is a cache: without a place to keep it, every check is full and
// none fails for it.
TEST_F(IntegrityTest, NoPlaceForStampsMeansAlwaysChecking) {
  settle();
  write_file(dir_.file("not-a-dir"), "x");
  const std::string nowhere = dir_.file("not-a-dir/mixtape/checked");
  auto c = Catalog::open_read_only(path());
  EXPECT_EQ(c.check_integrity(nowhere), IntegrityCheck::kFull);
  EXPECT_EQ(c.check_integrity(nowhere), IntegrityCheck::kFull);
  EXPECT_EQ(c.check_integrity(), IntegrityCheck::kFull);
  EXPECT_EQ(c.check_integrity(), IntegrityCheck::kFull);
}

TEST(IntegrityStampDir, FollowsTheCacheHome) {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  const std::string saved = xdg ? xdg : "";
  ::setenv("XDG_CACHE_HOME", "/somewhere/cache", 1);
  EXPECT_EQ(integrity_stamp_dir(), "/somewhere/cache/mixtape/checked");
  ::unsetenv("XDG_CACHE_HOME");
  const char* home = std::getenv("HOME");
  ASSERT_NE(home, nullptr);
  EXPECT_EQ(integrity_stamp_dir(), std::string(home) + "/.cache/mixtape/checked");
  if (xdg) ::setenv("XDG_CACHE_HOME", saved.c_str(), 1);
}

}  // namespace
}  // namespace mixtape::catalog::testing
