// Real mounts that recall: from a chosen tape, past a damaged copy, from a
// tape mounted without its catalog, and unmounting while a recall runs.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <sys/xattr.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "fs/mount_util.h"
#include "restore/test_util.h"

namespace mixtape::fs {
namespace {

using restore::testing::Fixture;
using namespace mixtape::test_support;

constexpr char kMountHelper[] = MIXTAPE_BINARY_DIR "/mount-helper/mount.mixtape";

int sh(const std::string& command) {
  int rc = std::system(command.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

class MountRecallTest : public ::testing::Test {
 protected:
  ~MountRecallTest() override {
    if (mounted_) sh("fusermount3 -u " + shell_quote(mnt()) + " 2>/dev/null");
  }

  std::string mnt() const { return f_.file("mnt"); }
  std::string latest() const { return mnt() + "/latest" + f_.src(); }

  void mount(const std::string& source, const std::string& options) {
    std::filesystem::create_directories(mnt());
    std::string command = std::string(kMountHelper) + " " + shell_quote(source) + " " +
                          shell_quote(mnt()) + " -o " +
                          shell_quote("identity=" + f_.identity() + ",cache=" + f_.file("cache") +
                                      (options.empty() ? "" : "," + options)) +
                          " 2> " + shell_quote(f_.file("mount.err"));
    ASSERT_EQ(sh(command), 0) << read_file(f_.file("mount.err"));
    mounted_ = true;
  }
  // big.bin backed up in `copies` copies, the first damaged in its middle,
  // and the catalog mounted.
  void mount_with_first_copy_of_big_damaged(std::size_t copies) {
    f_.make_tree(8);
    f_.init(static_cast<int>(copies));
    f_.backup();
    auto replicas = f_.replicas(f_.src() + "/big.bin");
    ASSERT_EQ(replicas.size(), copies);
    f_.flip(replicas[0], replicas[0].copy.data_offset + 1'500'000);
    mount(f_.catalog(), "library=" + f_.library());
  }

  Fixture f_;
  bool mounted_ = false;
};

TEST_F(MountRecallTest, ReadingUnderTapesRecallsFromThatTape) {
  f_.make_tree(8);
  f_.init(2);
  f_.backup();
  mount(f_.catalog(), "library=" + f_.library());
  std::string path = mnt() + "/tapes/L00002" + f_.src() + "/big.bin";
  EXPECT_TRUE(read_file(path) == random_text(3'000'000, 1));
  std::string status = read_file(mnt() + "/.mixtape/status");
  EXPECT_NE(status.find("drive 0: tape L00002"), std::string::npos) << status;
  // The same through name.replicas/L00001 reads the other tape.
  std::string replica = latest() + "/d1/f1.replicas/L00001";
  EXPECT_TRUE(read_file(replica) == random_text(1024 + 7919 % 150000, 101));
  status = read_file(mnt() + "/.mixtape/status");
  EXPECT_NE(status.find("drive 0: tape L00001"), std::string::npos) << status;
}

// .mixtape/recall is the one writable file, so the mount cannot be a
// read-only mount (the kernel would refuse the open): everything else
// answers EROFS itself.
TEST_F(MountRecallTest, PathsWrittenToRecallAreStagedAndNothingElseIsWritable) {
  f_.make_tree(4);
  f_.init(1);
  f_.backup();
  mount(f_.catalog(), "library=" + f_.library());
  {
    std::ofstream recall(mnt() + "/.mixtape/recall", std::ios::trunc);  // O_TRUNC, as `>` does
    recall << f_.src() + "/big.bin\n" << f_.src() + "/d1/f1\n";
    ASSERT_TRUE(recall.good());
  }  // closed: queued
  std::string stats;
  EXPECT_TRUE(test_support::poll_until([&] {
    stats = read_file(mnt() + "/.mixtape/stats");
    return stats.find("\"recalls_staged\": 2") != std::string::npos;
  })) << stats;
  EXPECT_NE(stats.find("\"opens\": 0"), std::string::npos) << "staged without a read: " << stats;
  EXPECT_TRUE(read_file(latest() + "/big.bin") == random_text(3'000'000, 1));

  EXPECT_NE(sh("touch " + shell_quote(latest() + "/new") + " 2>/dev/null"), 0);
  EXPECT_NE(sh("mkdir " + shell_quote(latest() + "/dir") + " 2>/dev/null"), 0);
  EXPECT_NE(sh("truncate -s 0 " + shell_quote(latest() + "/big.bin") + " 2>/dev/null"), 0);
  EXPECT_NE(sh("echo x >> " + shell_quote(latest() + "/big.bin") + " 2>/dev/null"), 0);
  std::error_code error;
  std::filesystem::remove(latest() + "/big.bin", error);
  EXPECT_EQ(error, std::errc::read_only_file_system);
}

TEST_F(MountRecallTest, ADamagedOnlyCopyIsEioForThatFileAlone) {
  ASSERT_NO_FATAL_FAILURE(mount_with_first_copy_of_big_damaged(1));
  EXPECT_NE(sh("cat " + shell_quote(latest() + "/big.bin") + " > /dev/null 2> " +
               shell_quote(f_.file("cat.err"))),
            0);
  EXPECT_NE(read_file(f_.file("cat.err")).find("Input/output error"), std::string::npos);
  EXPECT_TRUE(read_file(latest() + "/d0/f0") == random_text(1024, 100));
  std::string status = read_file(mnt() + "/.mixtape/status");
  EXPECT_NE(status.find("big.bin"), std::string::npos) << status;
}

TEST_F(MountRecallTest, ADamagedCopyIsReadFromTheOtherTape) {
  ASSERT_NO_FATAL_FAILURE(mount_with_first_copy_of_big_damaged(2));
  // A reader that already saw bytes of the damaged copy gets EIO rather than
  // a mix of two copies; the file itself comes back from the other tape, so
  // reading it again (or a first read after the recall) gives all of it.
  int first =
      sh("cat " + shell_quote(latest() + "/big.bin") + " > " + shell_quote(f_.file("first")));
  if (first == 0) {
    EXPECT_TRUE(read_file(f_.file("first")) == random_text(3'000'000, 1));
  }
  EXPECT_TRUE(read_file(latest() + "/big.bin") == random_text(3'000'000, 1));
  std::string stats = read_file(mnt() + "/.mixtape/stats");
  EXPECT_NE(stats.find("\"copy_failures\": 1"), std::string::npos) << stats;
  // big.bin was recalled once (its directory's other files, read ahead,
  // are recalls of their own), and every recall was staged.
  EXPECT_NE(stats.find("\"recalls_failed\": 0"), std::string::npos) << stats;
  const auto number = [&](const std::string& key) {
    const auto at = stats.find("\"" + key + "\": ");
    return at == std::string::npos ? -1 : std::stol(stats.substr(at + key.size() + 4));
  };
  EXPECT_EQ(number("recalls_staged"), number("recalls")) << stats;
  EXPECT_EQ(number("recalls"), 3) << "big.bin, and empty.txt and private.txt read ahead: " << stats;
}

TEST_F(MountRecallTest, AFoundTapeMountsWithoutItsCatalog) {
  f_.make_tree(12);
  f_.init(1);
  f_.backup();
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(f_.catalog() + suffix);
  mount(f_.image("L00001"), "");
  std::string restored = f_.file("restored");
  ASSERT_EQ(sh("cp -a " + shell_quote(latest()) + " " + shell_quote(restored)), 0);
  EXPECT_EQ(sh("diff -r " + shell_quote(f_.src()) + " " + shell_quote(restored)), 0);
  EXPECT_TRUE(std::filesystem::exists(mnt() + "/tapes/L00001"));
}

// A tape written before format 2 (tests/testdata/format1), found in a
// drawer: it mounts, and cp brings back every file's last version.
TEST_F(MountRecallTest, AFoundFormatOneTapeMountsAndCopiesOut) {
  const std::string data = std::string(MIXTAPE_TESTDATA) + "/format1/";
  std::filesystem::create_directories(std::filesystem::path(f_.identity()).parent_path());
  std::filesystem::copy_file(data + "identity.txt", f_.identity());
  std::filesystem::copy_file(data + "L00001.tap", f_.file("L00001.tap"));
  std::filesystem::copy_file(data + "L00001.tap.meta", f_.file("L00001.tap.meta"));
  mount(f_.file("L00001.tap"), "");
  const std::string src = mnt() + "/latest/tmp/f1/src";
  const std::string restored = f_.file("restored");
  ASSERT_EQ(sh("cp -a " + shell_quote(src) + " " + shell_quote(restored)), 0);
  EXPECT_EQ(sh("cd " + shell_quote(restored) + " && b2sum -l 256 -c --quiet " +
               shell_quote(data + "b2sums.txt")),
            0);
  EXPECT_EQ(sh("getfattr -n user.mixtape.hash --only-values " +
               shell_quote(src + "/photos/2019/img1.raw") + " | grep -q c28f99da"),
            0);
  // The deleted file's version is there too, and its older content.
  EXPECT_TRUE(std::filesystem::exists(src + "/photos/2019/img2.raw"));
  EXPECT_EQ(read_file(src + "/docs/readme.txt.versions/0001_2026-12-07T173222Z.txt").size(), 17u);
}

TEST_F(MountRecallTest, ATapeNobodyInsertsIsEnomediumAfterTheWait) {
  f_.make_tree(4);
  f_.init(1);
  f_.backup();
  std::filesystem::rename(f_.library(), f_.file("drawer"));  // the tape leaves the library
  std::filesystem::create_directories(f_.library());
  mount(f_.catalog(), "library=" + f_.library() + ",wait=1");
  std::string file = latest() + "/big.bin";
  EXPECT_EQ(sh("getfattr -n user.mixtape.state --only-values " + shell_quote(file) + " > " +
               shell_quote(f_.file("state"))),
            0);
  EXPECT_EQ(read_file(f_.file("state")), "offline (insert tape L00001)");
  EXPECT_NE(sh("cat " + shell_quote(file) + " > /dev/null 2> " + shell_quote(f_.file("cat.err"))),
            0);
  EXPECT_NE(read_file(f_.file("cat.err")).find("No medium found"), std::string::npos)
      << read_file(f_.file("cat.err"));
  std::string status = read_file(mnt() + "/.mixtape/status");
  EXPECT_NE(status.find("insert tape L00001"), std::string::npos) << status;
}

// The unmount comes while the recall of a large file is under way: the
// daemon is held still (SIGSTOP) as soon as the file says it is staging,
// the mount is detached, and the daemon let go must then exit.
TEST_F(MountRecallTest, UnmountDuringARecallLeavesNoProcessBehind) {
  f_.make_tree(4);
  restore::testing::write_file(f_.src() + "/huge.bin", random_text(96'000'000, 7));
  f_.init(1);
  auto backed =
      f_.mixtape("backup " + shell_quote(f_.src()) + " --library " + shell_quote(f_.library()) +
                 " --new-library --capacity 256M --archive-size 128M");
  ASSERT_EQ(backed.status, 0) << backed.err;
  mount(f_.catalog(), "library=" + f_.library());
  const pid_t daemon = testing::daemon_pid(mnt());
  ASSERT_GT(daemon, 0);
  const std::string huge = latest() + "/huge.bin";
  std::thread reader([&] { sh("cat " + shell_quote(huge) + " > /dev/null 2>&1"); });
  std::string state;
  test_support::poll_until(
      [&] {
        char value[256];
        ssize_t n = ::getxattr(huge.c_str(), "user.mixtape.state", value, sizeof value);
        state = n > 0 ? std::string(value, static_cast<std::size_t>(n)) : "";
        return state.starts_with("staging") || state == "staged";
      },
      std::chrono::seconds(300), std::chrono::milliseconds(0));
  ::kill(daemon, SIGSTOP);
  // Lazy: the reader may hold the file open; the daemon must still exit.
  EXPECT_EQ(sh("fusermount3 -u -z " + shell_quote(mnt())), 0);
  mounted_ = false;
  ::kill(daemon, SIGCONT);
  reader.join();
  EXPECT_TRUE(state.starts_with("staging"))
      << "the unmount did not come during the recall of huge.bin (state: " << state
      << "); it must be bigger for this machine";
  EXPECT_TRUE(test_support::poll_until([&] { return testing::daemon_pid(mnt()) == 0; },
                                       std::chrono::seconds(300), std::chrono::milliseconds(20)))
      << "mount.mixtape still running after unmount";
}

// The pages of a file through the mount that are in the kernel's page cache
// (mincore of a shared mapping, which faults nothing in); -1 if it cannot
// be mapped.
long resident_pages(const std::string& path, std::size_t size) {
  UniqueFd fd = open_file(path, O_RDONLY | O_CLOEXEC);
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd.get(), 0);
  if (map == MAP_FAILED) return -1;
  const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> in((size + page - 1) / page);
  long resident = -1;
  if (::mincore(map, size, in.data()) == 0)
    resident = std::count_if(in.begin(), in.end(), [](unsigned char c) { return c & 1; });
  ::munmap(map, size);
  return resident;
}

// A file's first open in a mount is most likely its only one (cp, a copy
// out): its bytes go straight into the reader's buffer (direct_io), not
// into the mount's page cache, where they would be copied once more for
// nobody; so for a file recalled for that open and for one read-ahead
// staged before. Such a file can still be mapped shared (the mount accepts
// the kernel's FUSE_DIRECT_IO_ALLOW_MMAP). From its second open on, a file
// is served through the page cache, and kept there between opens.
TEST_F(MountRecallTest, AFilesFirstOpenIsReadPastThePageCacheAndStillMaps) {
  f_.make_tree(8);
  f_.init(1);
  f_.backup();
  mount(f_.catalog(), "library=" + f_.library());

  // Mapped shared while it is being recalled: the bytes are the file's.
  const std::string small = latest() + "/d1/f1";
  const std::string small_bytes = random_text(1024 + 7919 % 150000, 101);
  {
    UniqueFd fd = open_file(small, O_RDONLY | O_CLOEXEC);
    void* map = ::mmap(nullptr, small_bytes.size(), PROT_READ, MAP_SHARED, fd.get(), 0);
    ASSERT_NE(map, MAP_FAILED) << "mmap of a file being recalled: " << std::strerror(errno);
    EXPECT_TRUE(std::string(static_cast<const char*>(map), small_bytes.size()) == small_bytes);
    ::munmap(map, small_bytes.size());
  }

  // Staged by the read-ahead of d1/f1's open, then opened and read: not
  // cached either.
  const std::string ahead = latest() + "/d1/f5";
  const std::string ahead_bytes = random_text(1024 + 5 * 7919 % 150000, 105);
  ASSERT_TRUE(test_support::poll_until(
      [&] {
        char value[64];
        const ssize_t n = ::getxattr(ahead.c_str(), "user.mixtape.state", value, sizeof value);
        return n > 0 && std::string(value, static_cast<std::size_t>(n)) == "staged";
      },
      std::chrono::seconds(300)));
  std::string data;
  ASSERT_EQ(testing::read_whole(ahead, data), 0);
  EXPECT_TRUE(data == ahead_bytes);
  EXPECT_EQ(resident_pages(ahead, ahead_bytes.size()), 0) << "the read filled the page cache";

  // Read whole by read(2) while recalled: nothing of it is left in the page
  // cache of the mount (the second open maps it: no fault, no read).
  const std::string big = latest() + "/big.bin";
  const std::size_t big_size = 3'000'000;
  ASSERT_EQ(testing::read_whole(big, data), 0);
  EXPECT_TRUE(data == random_text(big_size, 1));
  EXPECT_EQ(resident_pages(big, big_size), 0) << "the read filled the mount's page cache";

  // Opened again, it is read through the page cache (and mincore sees it).
  ASSERT_EQ(testing::read_whole(big, data), 0);
  EXPECT_TRUE(data == random_text(big_size, 1));
  EXPECT_GT(resident_pages(big, big_size), 0) << "a staged file was not cached";
}

}  // namespace
}  // namespace mixtape::fs
