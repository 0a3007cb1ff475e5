// Destination: restored files go below their directory and nowhere else,
// whatever names the tape holds and whatever was planted in the directory.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstring>
#include <filesystem>

#include "engine/restore/restore.h"
#include "tests/restore/test_util.h"

namespace mixtape::restore::testing {
namespace {

namespace fs = std::filesystem;

catalog::Attributes file_attrs(std::uint32_t mode = 0644,
                               std::int64_t mtime_ns = 1'600'000'000'123'456'789) {
  catalog::Attributes a;
  a.mode = mode;
  a.mtime_ns = mtime_ns;
  return a;
}

void write_file(Destination& d, const std::string& name, const std::string& content) {
  auto file = d.begin_file(name, file_attrs());
  file->write(as_bytes(content));
  file->commit();
}

// A ustar header block for a hand-made, possibly hostile, tar.
std::string tar_header(const std::string& name, char type, std::size_t size,
                       const std::string& link = "") {
  std::string h(512, '\0');
  name.copy(h.data(), std::min<std::size_t>(name.size(), 100));
  std::snprintf(h.data() + 100, 8, "%07o", 0644);
  std::snprintf(h.data() + 108, 8, "%07o", 0);
  std::snprintf(h.data() + 116, 8, "%07o", 0);
  std::snprintf(h.data() + 124, 12, "%011zo", size);
  std::snprintf(h.data() + 136, 12, "%011o", 1600000000);
  h[156] = type;
  link.copy(h.data() + 157, std::min<std::size_t>(link.size(), 100));
  std::memcpy(h.data() + 257, "ustar", 6);
  std::memcpy(h.data() + 263, "00", 2);
  std::memset(h.data() + 148, ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  std::snprintf(h.data() + 148, 8, "%06o", sum);
  h[155] = ' ';
  return h;
}

std::string tar_file(const std::string& name, const std::string& data) {
  std::string out = tar_header(name, '0', data.size()) + data;
  out.resize((out.size() + 511) / 512 * 512, '\0');
  return out;
}

class ExtractTest : public ::testing::Test {
 protected:
  std::string dir() const { return tmp_ / "dest"; }
  std::string outside() const { return tmp_ / "elsewhere"; }
  void SetUp() override { fs::create_directories(outside()); }
  TempDir tmp_;
};

TEST_F(ExtractTest, RefusesNamesThatLeaveTheDirectory) {
  Destination d(dir(), {});
  const std::vector<std::string> names{"../evil", "/etc/evil",         "a/../../evil",
                                       "..",      "a/b/../../../evil", std::string("a\0b", 3)};
  for (const std::string& name : names) {
    EXPECT_THROW(d.begin_file(name, file_attrs()), RestoreError) << name;
    EXPECT_THROW(d.make_directory(name), RestoreError) << name;
    EXPECT_THROW(d.make_symlink(name, "/etc/passwd", file_attrs()), RestoreError) << name;
  }
  EXPECT_FALSE(fs::exists(tmp_ / "evil"));
  EXPECT_FALSE(fs::exists("/etc/evil"));
  EXPECT_TRUE(fs::is_empty(dir()));
}

TEST_F(ExtractTest, NeverFollowsASymlinkPlantedOnTheWay) {
  Destination d(dir(), {true, false});  // even when overwriting
  fs::create_directory_symlink(outside(), dir() + "/x");
  EXPECT_THROW(write_file(d, "x/y", "data"), RestoreError);
  EXPECT_THROW(d.make_directory("x/sub"), RestoreError);
  EXPECT_THROW(d.make_symlink("x/link", "target", file_attrs()), RestoreError);
  EXPECT_THROW(d.exists("x/y"), RestoreError);
  EXPECT_TRUE(fs::is_empty(outside()));
  try {
    write_file(d, "x/y", "data");
  } catch (const RestoreError& e) {
    EXPECT_NE(std::string(e.what()).find("symbolic link; refusing to follow it"), std::string::npos)
        << e.what();
  }
}

TEST_F(ExtractTest, ASymlinkAtTheFinalNameIsReplacedNotFollowed) {
  test_support::write_file(outside() + "/victim", "keep");
  fs::create_directories(dir());
  fs::create_symlink(outside() + "/victim", dir() + "/f");
  Destination keep(dir(), {});
  EXPECT_THROW(write_file(keep, "f", "new"), RestoreError);  // exists
  Destination overwrite(dir(), {true, false});
  write_file(overwrite, "f", "new");
  EXPECT_FALSE(fs::is_symlink(dir() + "/f"));
  EXPECT_EQ(read_file(dir() + "/f"), "new");
  EXPECT_EQ(read_file(outside() + "/victim"), "keep");
}

TEST_F(ExtractTest, NeverOverwritesUnlessAskedAndLeavesNoTemporaryFiles) {
  Destination d(dir(), {});
  write_file(d, "a/f", "first");
  EXPECT_THROW(write_file(d, "a/f", "second"), RestoreError);
  EXPECT_EQ(read_file(dir() + "/a/f"), "first");
  {
    auto pending = d.begin_file("a/g", file_attrs());
    pending->write(as_bytes(std::string("half")));
  }  // destroyed without commit
  EXPECT_FALSE(fs::exists(dir() + "/a/g"));
  for (const auto& e : fs::directory_iterator(dir() + "/a"))
    EXPECT_EQ(e.path().filename(), "f") << "left behind: " << e.path();
}

TEST_F(ExtractTest, SetsModeTimesAndSymlinks) {
  Destination d(dir(), {});
  auto file = d.begin_file("p/q", file_attrs(0640, 1'600'000'000'123'456'789));
  file->write(as_bytes(std::string("x")));
  file->commit();
  d.make_symlink("p/l", "q", file_attrs(0777, 1'500'000'000'000'000'000));
  d.set_directory_attributes("p", file_attrs(0750, 1'400'000'000'000'000'000));
  struct stat st {};
  ASSERT_EQ(::stat((dir() + "/p/q").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(st.st_mtim.tv_sec, 1'600'000'000);
  EXPECT_EQ(st.st_mtim.tv_nsec, 123'456'789);
  ASSERT_EQ(::lstat((dir() + "/p/l").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_EQ(st.st_mtim.tv_sec, 1'500'000'000);
  ASSERT_EQ(::stat((dir() + "/p").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  EXPECT_EQ(st.st_mtim.tv_sec, 1'400'000'000);
}

TEST_F(ExtractTest, HostileTarMembersAreRefusedOneByOne) {
  std::string tar = tar_file("../evil", "bad") + tar_file("/abs-evil", "bad") +
                    tar_header("x", '2', 0, outside()) + tar_file("x/y", "through the link") +
                    tar_file("ok/file", "good") + std::string(1024, '\0');
  MemorySource source(as_bytes(tar));
  Destination d(dir(), {});
  auto failures = d.extract_tar(source, "hostile.tar");
  EXPECT_EQ(failures.size(), 3u);
  for (const auto& f : failures) SCOPED_TRACE(f);
  EXPECT_EQ(read_file(dir() + "/ok/file"), "good");
  EXPECT_TRUE(fs::is_symlink(dir() + "/x"));
  EXPECT_TRUE(fs::is_empty(outside()));
  EXPECT_FALSE(fs::exists(tmp_ / "evil"));
  EXPECT_FALSE(fs::exists("/abs-evil"));
}

}  // namespace
}  // namespace mixtape::restore::testing
