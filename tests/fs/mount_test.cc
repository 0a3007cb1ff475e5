// Real mounts: a tree backed up to an image library, mounted with the built
// mount.mixtape, read with cp, ls, find, stat and getfattr.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <thread>

#include "backup/backup_test_util.h"

namespace mixtape::fs {
namespace {

using namespace mixtape::test_support;

constexpr char kMountHelper[] = MIXTAPE_BINARY_DIR "/mount-helper/mount.mixtape";
constexpr char kMixtape[] = MIXTAPE_BINARY_DIR "/cli/mixtape";

// Stats fields are flat numbers; this finds one by name.
std::uint64_t stat_field(const std::string& json, const std::string& name) {
  auto key = json.find("\"" + name + "\": ");
  if (key == std::string::npos) throw Error("no field " + name + " in " + json);
  return std::stoull(json.substr(key + name.size() + 4));
}

class MountTest : public ::testing::Test {
 protected:
  void SetUp() override {
    source_ = dir_.file("photos");
    env_ = "MIXTAPE_CATALOG=" + shell_quote(catalog()) + " HOME=" + shell_quote(dir_.file("home"));
    write_file(source_ + "/2019/a.raw", backup::testing::random_text(300000, 1));
    write_file(source_ + "/2019/b.raw", backup::testing::random_text(70000, 2));
    write_file(source_ + "/2019/deep/er/c.txt", "deep\n");
    write_file(source_ + "/odd name with spaces & 'quotes'.txt", "odd\n");
    write_file(source_ + "/notes.txt", "first\n");
    std::filesystem::create_directories(source_ + "/empty");
    std::filesystem::create_symlink("2019/a.raw", source_ + "/link.raw");
    ::chmod((source_ + "/2019/b.raw").c_str(), 0600);
    run("init --copies 2 --identity-out " + shell_quote(identity()));
    backup();
    write_file(source_ + "/notes.txt", "second version\n");
    backup();
  }

  void TearDown() override {
    if (mounted_) unmount();
  }

  std::string catalog() const { return dir_.file("catalog.db"); }
  std::string identity() const { return dir_.file("identity.txt"); }
  std::string tapes() const { return dir_.file("tapes"); }
  std::string mnt() const { return dir_.file("mnt"); }
  std::string latest() const { return mnt() + "/latest" + source_; }

  std::string run(const std::string& args) {
    auto r = run_shell(env_ + " " + kMixtape + " " + args);
    EXPECT_EQ(r.status, 0) << args << ": " << r.err;
    return r.out;
  }
  void backup() {
    run("backup " + shell_quote(source_) + " --library " + shell_quote(tapes()) +
        " --new-library --capacity 64M");
  }

  void mount(const std::string& extra = "") {
    std::filesystem::create_directories(mnt());
    std::string options =
        "library=" + tapes() + ",identity=" + identity() + ",cache=" + dir_.file("cache") + extra;
    auto r = run_shell(std::string(kMountHelper) + " " + shell_quote(catalog()) + " " +
                       shell_quote(mnt()) + " -o " + shell_quote(options));
    ASSERT_EQ(r.status, 0) << r.err;
    mounted_ = true;
  }
  void unmount() {
    auto r = run_shell("fusermount3 -u " + shell_quote(mnt()));
    EXPECT_EQ(r.status, 0) << r.err;
    mounted_ = false;
  }
  std::string stats() { return read_file(mnt() + "/.mixtape/stats"); }

  TempDir dir_;
  std::string source_;
  std::string env_;
  bool mounted_ = false;
};

TEST_F(MountTest, CopyOfLatestEqualsTheSource) {
  mount();
  std::string restored = dir_.file("restored");
  auto cp = run_shell("cp -a " + shell_quote(latest()) + " " + shell_quote(restored));
  ASSERT_EQ(cp.status, 0) << cp.err;
  auto diff = run_shell("diff -r " + shell_quote(source_) + " " + shell_quote(restored));
  EXPECT_EQ(diff.status, 0) << diff.out;
  // Metadata, not just bytes: mode and mtime of every file, and the symlink.
  for (auto& entry : std::filesystem::recursive_directory_iterator(source_)) {
    auto relative = entry.path().lexically_relative(source_);
    struct stat a {
    }, b{};
    ASSERT_EQ(::lstat(entry.path().c_str(), &a), 0);
    ASSERT_EQ(::lstat((restored / relative).c_str(), &b), 0) << relative;
    EXPECT_EQ(a.st_mode, b.st_mode) << relative;
    if (!S_ISDIR(a.st_mode)) {
      EXPECT_EQ(a.st_mtim.tv_sec, b.st_mtim.tv_sec) << relative;
      EXPECT_EQ(a.st_mtim.tv_nsec, b.st_mtim.tv_nsec) << relative;
    }
  }
  EXPECT_TRUE(std::filesystem::is_directory(restored + "/empty"));
  EXPECT_EQ(std::filesystem::read_symlink(restored + "/link.raw"), "2019/a.raw");
}

TEST_F(MountTest, VersionsAndReplicasAreHiddenButFound) {
  mount();
  auto ls = run_shell("ls -a " + shell_quote(latest()));
  EXPECT_EQ(ls.out.find(".versions"), std::string::npos) << ls.out;
  auto versions = run_shell("ls " + shell_quote(latest() + "/notes.txt.versions"));
  ASSERT_EQ(versions.status, 0) << versions.err;
  std::vector<std::string> names;
  std::istringstream lines(versions.out);
  for (std::string line; std::getline(lines, line);) names.push_back(line);
  ASSERT_EQ(names.size(), 2u) << versions.out;
  EXPECT_EQ(names[0].substr(0, 5), "0001_");
  EXPECT_EQ(names[0].substr(names[0].size() - 4), ".txt");
  EXPECT_EQ(read_file(latest() + "/notes.txt.versions/" + names[0]), "first\n");
  EXPECT_EQ(read_file(latest() + "/notes.txt.versions/" + names[1]), "second version\n");
  auto replicas = run_shell("ls " + shell_quote(latest() + "/notes.txt.replicas"));
  EXPECT_EQ(replicas.out, "L00001\nL00002\n");
}

TEST_F(MountTest, ExtendedAttributesComeFromTheCatalog) {
  mount();
  std::string file = latest() + "/2019/a.raw";
  auto r = run_shell("getfattr -d --absolute-names " + shell_quote(file));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("user.mixtape.hash=\"" + hash_hex(read_file(source_ + "/2019/a.raw"))),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("user.mixtape.state=\"offline\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("user.mixtape.versions=\"1\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("user.mixtape.replicas=\"L00001:"), std::string::npos) << r.out;
  // Metadata never touched tape.
  EXPECT_EQ(stat_field(stats(), "bytes_read"), 0u);
}

TEST_F(MountTest, FindCountsWhatTheCatalogLists) {
  mount();
  auto find = run_shell("find " + shell_quote(latest()) + " | wc -l");
  auto listed = run("ls -R " + shell_quote(source_));
  std::size_t lines = std::count(listed.begin(), listed.end(), '\n');
  // ls -R lists the entries below the root; find adds the root itself.
  EXPECT_EQ(std::stoul(find.out), lines + 1) << listed;
  EXPECT_EQ(stat_field(stats(), "bytes_read"), 0u);
}

TEST_F(MountTest, WritesAreRefused) {
  mount();
  for (const std::string& command :
       {"touch " + shell_quote(latest() + "/new"), "mkdir " + shell_quote(latest() + "/dir"),
        "rm " + shell_quote(latest() + "/notes.txt"),
        "chmod 777 " + shell_quote(latest() + "/notes.txt"),
        "sh -c 'echo x >> " + latest() + "/notes.txt'",
        "setfattr -n user.x -v 1 " + shell_quote(latest() + "/notes.txt")}) {
    auto r = run_shell(command);
    EXPECT_NE(r.status, 0) << command;
    EXPECT_NE(r.err.find("Read-only file system"), std::string::npos) << command << ": " << r.err;
  }
}

TEST_F(MountTest, ParallelReadersGetTheirOwnFiles) {
  for (int i = 0; i < 8; ++i)
    write_file(source_ + "/par/f" + std::to_string(i),
               backup::testing::random_text(200000, 10 + i));
  backup();
  mount();
  std::vector<std::thread> readers;
  std::vector<std::string> got(8);
  for (int i = 0; i < 8; ++i)
    readers.emplace_back([&, i] { got[i] = read_file(latest() + "/par/f" + std::to_string(i)); });
  for (auto& t : readers) t.join();
  for (int i = 0; i < 8; ++i)
    EXPECT_TRUE(got[i] == backup::testing::random_text(200000, 10 + i)) << i;
}

TEST_F(MountTest, TwoHundredFilesOfOneArchiveCostAtMostTwoLocates) {
  for (int i = 0; i < 200; ++i)
    write_file(source_ + "/many/f" + std::to_string(1000 + i), "small file " + std::to_string(i));
  backup();
  mount();
  std::string restored = dir_.file("many");
  auto cp = run_shell("cp -r " + shell_quote(latest() + "/many") + " " + shell_quote(restored));
  ASSERT_EQ(cp.status, 0) << cp.err;
  auto diff = run_shell("diff -r " + shell_quote(source_ + "/many") + " " + shell_quote(restored));
  EXPECT_EQ(diff.status, 0) << diff.out;
  EXPECT_LE(stat_field(stats(), "locates"), 2u) << stats();
}

// mount(8) runs /sbin/mount.<type>. The build's helper is put there in a
// mount namespace of the test's own, by a read-only overlay on /sbin whose
// upper layer holds a link to it (an installed helper is hidden under it):
// the real /sbin is never written, and the mount lives and ends in that
// namespace.
TEST_F(MountTest, MountTypeMixtapeAndUmount) {
  const bool installed = std::filesystem::exists("/sbin/mount.mixtape");
  const std::string sbin = std::filesystem::canonical("/sbin");  // /usr/sbin with a merged /usr
  const std::string layer = dir_.file("sbin-layer");
  std::filesystem::create_directories(layer);
  std::filesystem::create_symlink(kMountHelper, layer + "/mount.mixtape");
  std::filesystem::create_directories(mnt());
  const std::string options =
      "noauto,library=" + tapes() + ",identity=" + identity() + ",cache=" + dir_.file("cache");
  // The daemon is the process whose command line names the mount point;
  // /proc/PID/exe is the file it runs.
  const std::string script =
      "set -e\n"
      "mount -t overlay overlay -o lowerdir=" +
      shell_quote(layer + ":" + sbin) + " " + shell_quote(sbin) +
      "\n"
      "mount -t mixtape " +
      shell_quote(catalog()) + " " + shell_quote(mnt()) + " -o " + shell_quote(options) +
      "\n"
      "trap 'umount -l " +
      shell_quote(mnt()) +
      " 2>/dev/null || true' EXIT\n"
      "for p in /proc/[0-9]*; do\n"
      "  case \"$(tr '\\0' ' ' < $p/cmdline 2>/dev/null)\" in\n"
      "    *mount.mixtape*" +
      mnt() + "*) readlink $p/exe >> " + shell_quote(dir_.file("daemon")) +
      " ;;\n"
      "  esac\n"
      "done\n"
      "cat " +
      shell_quote(latest() + "/notes.txt") + " > " + shell_quote(dir_.file("notes")) +
      "\n"
      "umount " +
      shell_quote(mnt()) +
      "\n"
      "test ! -e " +
      shell_quote(latest()) + "\n";
  write_file(dir_.file("mount.sh"), script);
  auto r =
      run_shell("unshare --mount --propagation private sh " + shell_quote(dir_.file("mount.sh")));
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_EQ(read_file(dir_.file("notes")), "second version\n");
  EXPECT_EQ(read_file(dir_.file("daemon")),
            std::filesystem::canonical(kMountHelper).string() + "\n")
      << "the mount was not served by the build's mount.mixtape";
  EXPECT_EQ(std::filesystem::exists("/sbin/mount.mixtape"), installed) << "/sbin was written";
  EXPECT_FALSE(std::filesystem::exists(latest())) << "the mount is seen outside its namespace";
}

TEST_F(MountTest, RwIsRefusedWithAReason) {
  std::filesystem::create_directories(mnt());
  auto r = run_shell(std::string(kMountHelper) + " " + shell_quote(catalog()) + " " +
                     shell_quote(mnt()) + " -o rw");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("read-only"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace mixtape::fs
