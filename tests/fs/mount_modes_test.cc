// Mounts of the catalogs that are not `init`'s default, by the built
// mount.mixtape: plain tapes (`init --no-encryption`), mounted with no key
// at all, from their catalog and as a tape found alone; passphrase tapes
// (`init --passphrase-file`) found alone, mounted with passphrase_file= and
// refused without it. Every file reads back with its bytes. (A passphrase
// catalog mounted from its catalog: tests/faults/mount_fault_test.cc.)
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include "tests/fs/mount_util.h"
#include "tests/restore/test_util.h"

namespace mixtape::fs {
namespace {

using restore::testing::Fixture;
using namespace mixtape::test_support;
using testing::LiveMount;
using testing::read_whole;

class MountModesTest : public ::testing::Test {
 protected:
  // A tree backed up with `init_flags` (and `keys` for the writer).
  void back_up(const std::string& init_flags, const std::string& keys = "") {
    f_.make_tree(8);
    CommandResult r = f_.mixtape("init --copies 1 " + init_flags);
    ASSERT_EQ(r.status, 0) << r.err;
    ASSERT_FALSE(std::filesystem::exists(f_.identity()));
    r = f_.mixtape("backup " + shell_quote(f_.src()) + " --library " + shell_quote(f_.library()) +
                   " --new-library --capacity 64M" + keys);
    ASSERT_EQ(r.status, 0) << r.err << r.out;
  }
  std::string passphrase_file() {
    const std::string path = f_.file("passphrase");
    if (!std::filesystem::exists(path)) {
      write_file(path, "correct horse battery staple\n");
      ::chmod(path.c_str(), 0600);
    }
    return path;
  }
  // Every regular file of the source, read through the mount, is its bytes.
  void expect_every_file_reads_whole() {
    std::size_t files = 0;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(f_.src())) {
      if (!entry.is_regular_file() || entry.is_symlink()) continue;
      const std::string path = entry.path().string();
      std::string data;
      ASSERT_EQ(read_whole(mount_.path() + "/latest" + path, data), 0) << path;
      EXPECT_TRUE(data == read_file(path)) << path;
      ++files;
    }
    EXPECT_GE(files, 10u);
    EXPECT_EQ(std::filesystem::read_symlink(mount_.path() + "/latest" + f_.src() + "/link"),
              "big.bin");
  }
  std::string cache() const { return f_.file("cache"); }

  Fixture f_;
  LiveMount mount_{f_.file("mnt")};
};

TEST_F(MountModesTest, APlainCatalogMountsWithNoKey) {
  back_up("--no-encryption");
  CommandResult r = mount_.mount(f_.catalog(), "library=" + f_.library() + ",cache=" + cache(),
                                 "HOME=" + shell_quote(f_.file("home")));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err, "");
  expect_every_file_reads_whole();
}

TEST_F(MountModesTest, APlainTapeFoundAloneMountsWithNoKey) {
  back_up("--no-encryption");
  CommandResult r =
      mount_.mount(f_.image("L00001"), "cache=" + cache(), "HOME=" + shell_quote(f_.file("home")));
  ASSERT_EQ(r.status, 0) << r.err;
  expect_every_file_reads_whole();
}

TEST_F(MountModesTest, APassphraseTapeFoundAloneMountsWithItsPassphraseOnly) {
  const std::string keys = " --passphrase-file " + shell_quote(passphrase_file());
  back_up(keys, keys);
  // No key: its catalog (the trailing index) cannot even be read.
  CommandResult r = mount_.mount(f_.image("L00001"), "cache=" + f_.file("cache-none"),
                                 "HOME=" + shell_quote(f_.file("home")));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("passphrase"), std::string::npos) << r.err;
  ASSERT_FALSE(std::filesystem::exists(mount_.path() + "/latest"));

  r = mount_.mount(f_.image("L00001"), "cache=" + cache() + ",passphrase_file=" + passphrase_file(),
                   "HOME=" + shell_quote(f_.file("home")));
  ASSERT_EQ(r.status, 0) << r.err;
  expect_every_file_reads_whole();
}

}  // namespace
}  // namespace mixtape::fs
