// The drill: a tape of two GNU tar archives (-b 20 and -b 256)
// mounts with no catalog and no key, `cp -r` of everything is byte-identical
// with at most one locate per tar file, and a later mount reads no tape to
// show it. An imported tape shows in a catalog mount's tapes/<serial>/.
#include <gtest/gtest.h>
#include <sys/mount.h>

#include <filesystem>

#include "tests/foreign/foreign_util.h"

namespace mixtape::foreign::testing {
namespace {

namespace fs = std::filesystem;

class Mounted {
 public:
  Mounted(const std::string& source, const std::string& mountpoint, const std::string& options)
      : mountpoint_(mountpoint) {
    fs::create_directories(mountpoint);
    result_ = run_shell(std::string(kMountHelper) + " " + shell_quote(source) + " " +
                        shell_quote(mountpoint) + " -o " + options);
  }
  ~Mounted() {
    if (result_.status == 0) ::umount2(mountpoint_.c_str(), MNT_DETACH);
  }
  const CommandResult& result() const { return result_; }

 private:
  std::string mountpoint_;
  CommandResult result_;
};

TEST(ForeignMountTest, TwoGnuTarsMountWithNoCatalogAndCopyInTapeOrder) {
  ForeignFixture f;
  f.make_tree(f.file("one"), 21);
  f.make_tree(f.file("two"), 22);
  const std::string image =
      f.tap("found.tap", {"10240:" + f.tar("one.tar", "--format=gnu -b 20", f.file("one")),
                          "131072:" + f.tar("two.tar", "--format=gnu -b 256", f.file("two"))});
  ::chmod(image.c_str(), 0444);  // a read-only medium: nothing is written beside it
  const std::string options = "cache=" + f.file("cache");
  {
    Mounted m(image, f.file("mnt"), options);
    ASSERT_EQ(m.result().status, 0) << m.result().err;
    EXPECT_NE(m.result().err.find("one pass over the tape"), std::string::npos) << m.result().err;
    EXPECT_TRUE(fs::is_directory(f.file("mnt/file1")));
    EXPECT_TRUE(fs::is_directory(f.file("mnt/file2")));
    f.sh("cp -r " + shell_quote(f.file("mnt/file1")) + " " + shell_quote(f.file("mnt/file2")) +
         " " + shell_quote(f.file("")));
    EXPECT_EQ(ForeignFixture::diff(f.file("one"), f.file("file1")), "");
    EXPECT_EQ(ForeignFixture::diff(f.file("two"), f.file("file2")), "");
    auto stats = read_stats_text(read_file(f.file("mnt/.mixtape/stats")));
    EXPECT_LE(stats["locates"], 2.0);
    EXPECT_GE(stats["recalls_staged"], 8.0);
    std::string xattr = run_shell("getfattr --only-values -n user.mixtape.hash " +
                                  shell_quote(f.file("mnt/file1/a/big.bin")))
                            .out;
    EXPECT_EQ(xattr, hash_hex(read_file(f.file("one/a/big.bin"))));
  }
  for (const auto& e : fs::directory_iterator(fs::path(image).parent_path()))
    EXPECT_FALSE(e.path().filename().string().starts_with("found.tap."))
        << e.path() << " was written beside the image";
  // Again: the index is in the cache folder; the mount reads only the first
  // records, to know the tape.
  {
    Mounted m(image, f.file("mnt"), options);
    ASSERT_EQ(m.result().status, 0) << m.result().err;
    EXPECT_EQ(m.result().err.find("one pass over the tape"), std::string::npos) << m.result().err;
    auto stats = read_stats_text(read_file(f.file("mnt/.mixtape/stats")));
    EXPECT_LE(stats["records_read"], 40.0);
    EXPECT_EQ(read_file(f.file("mnt/file2/a/small.txt")), read_file(f.file("two/a/small.txt")));
  }
}

TEST(ForeignMountTest, AnImportedTapeIsInTheCatalogMount) {
  ForeignFixture f;
  f.make_tree(f.file("one"), 23);
  fs::create_directories(f.file("lib"));
  f.tap("lib/OLD7.tap", {"10240:" + f.tar("one.tar", "-J", f.file("one"))});
  ASSERT_EQ(f.mixtape("init --no-encryption").status, 0);
  CommandResult r = f.mixtape("import --library lib");
  ASSERT_EQ(r.status, 0) << r.err;
  Mounted m(f.catalog(), f.file("mnt"), "library=" + f.file("lib") + ",cache=" + f.file("cache"));
  ASSERT_EQ(m.result().status, 0) << m.result().err;
  const std::string on_tape = f.file("mnt/tapes/OLD7/imported/OLD7/file1/a/big.bin");
  EXPECT_EQ(read_file(on_tape), read_file(f.file("one/a/big.bin")));
  EXPECT_EQ(read_file(f.file("mnt/latest/imported/OLD7/file1/b/c/d/deep.txt")),
            read_file(f.file("one/b/c/d/deep.txt")));
}

}  // namespace
}  // namespace mixtape::foreign::testing
