// Options of the writer's commands that change what they do, through the
// built binary: `scan --no-hash` (metadata only: it opens no file),
// `backup --serial-prefix` (the serials of new tapes) and `backup
// --paranoid` (what is written is hashed again and must be what the scan
// hashed: it catches bytes that changed under unchanged metadata).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include "tests/backup/backup_test_util.h"

namespace mixtape::backup::testing {
namespace {

namespace fs = std::filesystem;
constexpr uid_t kNobody = 65534;

class OptionsCliTest : public ::testing::Test {
 protected:
  OptionsCliTest() {
    env_.catalog = dir_.file("catalog.db");
    env_.home = dir_.file("home");
  }
  CommandResult mixtape(const std::vector<std::string>& args) {
    return run_mixtape(env_, args, dir_.path());
  }
  catalog::Catalog open_catalog() { return catalog::Catalog::open_read_only(env_.catalog); }
  std::optional<catalog::VersionRow> latest(const std::string& path) {
    auto catalog = open_catalog();
    auto file = catalog.file_by_path(path);
    if (!file) return std::nullopt;
    return catalog.latest_version(*file);
  }
  std::size_t copies(const std::string& path) {
    auto catalog = open_catalog();
    auto version = catalog.latest_version(*catalog.file_by_path(path));
    return catalog.copies_of(version->id).size();
  }
  std::vector<std::string> images() {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(library_))
      if (e.path().extension() == ".tap") out.push_back(e.path().filename());
    std::sort(out.begin(), out.end());
    return out;
  }

  TempDir dir_;
  MixtapeEnv env_;
  std::string src_ = dir_.file("src");
  std::string library_ = dir_.file("tapes");
};

// scan --no-hash opens no file: as a user who may list the tree but read
// none of its files it scans them all, where a hashing scan is refused
// each one. The files are then in the catalog with no version, to be
// hashed later (a scan by root, or the backup).
TEST_F(OptionsCliTest, ScanNoHashOpensNoFile) {
  ASSERT_EQ(::chmod(dir_.path().c_str(), 0777), 0);
  const std::map<std::string, std::string> content = {{src_ + "/a", random_text(100000, 1)},
                                                      {src_ + "/sub/b", random_text(5000, 2)},
                                                      {src_ + "/sub/c", "c\n"}};
  for (const auto& [path, data] : content) {
    write_file(path, data);
    ASSERT_EQ(::chmod(path.c_str(), 0600), 0);  // root's alone
  }
  ASSERT_EQ(::chmod(src_.c_str(), 0755), 0);
  ASSERT_EQ(::chmod((src_ + "/sub").c_str(), 0755), 0);
  env_.uid = kNobody;
  ASSERT_EQ(mixtape({"init", "--no-encryption", "--copies", "1"}).status, 0);

  CommandResult r = mixtape({"scan", "--no-hash", src_});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_NE(r.out.find("scanned 2 directories, 3 files: 3 new, 0 changed"), std::string::npos)
      << r.out;
  EXPECT_EQ(r.out.find("hashed"), std::string::npos) << r.out;
  EXPECT_EQ(open_catalog().dirty_count(), 3u);
  for (const auto& [path, data] : content) {
    EXPECT_TRUE(open_catalog().file_by_path(path)) << path;
    EXPECT_FALSE(latest(path)) << path << " has a version without being read";
  }

  // The same user's hashing scan must open them, and may not.
  r = mixtape({"scan", src_});
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.err.find(src_ + "/a: Permission denied"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("3 files could not be hashed"), std::string::npos) << r.err;

  // Root's: every file hashed, nothing left dirty.
  env_.uid.reset();
  r = mixtape({"scan", src_});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("hashed 3 files"), std::string::npos) << r.out;
  EXPECT_EQ(open_catalog().dirty_count(), 0u);
  for (const auto& [path, data] : content) {
    ASSERT_TRUE(latest(path)) << path;
    EXPECT_EQ(to_hex(latest(path)->hash), hash_hex(data)) << path;
  }

  // A change seen by metadata alone: the file is dirty, its version the old
  // one, until the backup hashes and writes the new bytes.
  const std::string old_hash = to_hex(latest(src_ + "/a")->hash);
  write_file(src_ + "/a", "a new version\n");
  r = mixtape({"scan", "--no-hash", src_});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("0 new, 1 changed"), std::string::npos) << r.out;
  EXPECT_EQ(open_catalog().dirty_count(), 1u);
  EXPECT_EQ(to_hex(latest(src_ + "/a")->hash), old_hash);
  r = mixtape({"backup", src_, "--library", library_, "--new-library", "--capacity", "64M"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(to_hex(latest(src_ + "/a")->hash), hash_hex("a new version\n"));
  EXPECT_EQ(copies(src_ + "/a"), 1u);
}

// New tapes take their serials from --serial-prefix; tapes already in the
// catalog keep theirs; a prefix that makes no valid serial is refused in
// one line, and nothing is written.
TEST_F(OptionsCliTest, SerialPrefixNamesNewTapes) {
  write_file(src_ + "/one", random_text(200000, 1));
  ASSERT_EQ(mixtape({"init", "--copies", "1"}).status, 0);
  CommandResult r = mixtape({"backup", src_, "--library", library_, "--new-library", "--capacity",
                             "64M", "--serial-prefix", "OFF"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(images(), std::vector<std::string>{"OFF00001.tap"});

  // A second copy of everything goes on a new tape: with the new prefix.
  write_file(src_ + "/two", random_text(300000, 2));
  r = mixtape({"backup", src_, "--library", library_, "--copies", "2", "--serial-prefix", "B-"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(images(), (std::vector<std::string>{"B-00001.tap", "OFF00001.tap"}));
  r = mixtape({"tapes"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("OFF00001"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("B-00001"), std::string::npos) << r.out;
  for (const char* name : {"one", "two"}) EXPECT_EQ(copies(src_ + "/" + name), 2u) << name;
  // Each label says its serial.
  for (const std::string serial : {"OFF00001", "B-00001"}) {
    const auto files = tape_files(library_ + "/" + serial + ".tap");
    ASSERT_FALSE(files.empty()) << serial;
    write_file(dir_.file("label.tar"), files[0]);
    const std::string label =
        run_shell("tar -xOf " + shell_quote(dir_.file("label.tar")) + " MIXTAPE").out;
    EXPECT_NE(label.find("serial: " + serial + "\n"), std::string::npos) << label;
  }
  r = mixtape({"verify", "--library", library_});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("verified 2 tapes"), std::string::npos) << r.out;

  write_file(src_ + "/three", "three\n");
  for (const char* prefix : {"../x", "a/b", "ABCDEFGHIJKLMNOPQRSTUVWXYZ1234567"}) {
    r = mixtape(
        {"backup", src_, "--library", library_, "--copies", "3", "--serial-prefix", prefix});
    EXPECT_EQ(r.status, 1) << prefix;
    EXPECT_NE(r.err.find("invalid tape serial '" + std::string(prefix) + "00001'"),
              std::string::npos)
        << r.err;
    EXPECT_EQ(images(), (std::vector<std::string>{"B-00001.tap", "OFF00001.tap"})) << prefix;
  }
  EXPECT_FALSE(fs::exists(dir_.file("x00001.tap")));
}

// A filesystem of the test's own (ext2 in an image, loop-mounted), so that
// bytes of a file can be changed under it: written into the image, with
// the file's size, times and inode as they were. No scan can see such a
// change (bit rot, a write below the filesystem); --paranoid does.
class LoopFilesystem {
 public:
  LoopFilesystem(const std::string& image, std::string mountpoint)
      : image_(image), mountpoint_(std::move(mountpoint)) {
    fs::create_directories(mountpoint_);
    CommandResult r = run_shell("truncate -s 32M " + shell_quote(image_) + " && mkfs.ext2 -q -F " +
                                shell_quote(image_) + " && mount -o loop,noatime " +
                                shell_quote(image_) + " " + shell_quote(mountpoint_));
    if (r.status != 0) throw Error("cannot make a loop-mounted ext2 filesystem: " + r.err);
  }
  LoopFilesystem(const LoopFilesystem&) = delete;
  LoopFilesystem& operator=(const LoopFilesystem&) = delete;
  ~LoopFilesystem() { run_shell("umount -l " + shell_quote(mountpoint_)); }

  // Flips one byte of `path` (on this filesystem) at `offset`, in the image
  // beneath it, and drops the filesystem's cached copy of the file.
  // (The file's blocks need not follow each other in the image: the bytes
  // at `offset` are found there by their content, which is random.)
  void flip_under(const std::string& path, std::size_t offset) {
    ::sync();
    const std::string data = read_file(path);
    const std::string disk = read_file(image_);
    const std::string here = data.substr(offset, 64);
    const std::size_t at = disk.find(here);
    if (here.size() < 64 || at == std::string::npos || disk.find(here, at + 1) != std::string::npos)
      throw Error("cannot find byte " + std::to_string(offset) + " of " + path + " in " + image_ +
                  " once");
    UniqueFd fd = open_file(image_, O_WRONLY);
    const char flipped = static_cast<char>(data[offset] ^ 0x5a);
    if (::pwrite(fd.get(), &flipped, 1, static_cast<off_t>(at)) != 1)
      throw_errno("cannot write " + image_);
    ::fsync(fd.get());
    UniqueFd file = open_file(path, O_RDONLY);
    ::posix_fadvise(file.get(), 0, 0, POSIX_FADV_DONTNEED);
  }

 private:
  std::string image_, mountpoint_;
};

TEST_F(OptionsCliTest, ParanoidCatchesBytesThatChangedUnderTheSameMetadata) {
  LoopFilesystem disk(dir_.file("disk.img"), src_);
  const std::string victim = src_ + "/victim", other = src_ + "/other";
  const std::string original = random_text(200000, 7);
  write_file(victim, original);
  write_file(other, random_text(100000, 8));
  ASSERT_EQ(mixtape({"init", "--copies", "1"}).status, 0);
  CommandResult r = mixtape({"scan", src_});
  ASSERT_EQ(r.status, 0) << r.err;

  struct stat before {
  }, after{};
  ASSERT_EQ(::stat(victim.c_str(), &before), 0);
  disk.flip_under(victim, 100000);
  ASSERT_EQ(::stat(victim.c_str(), &after), 0);
  ASSERT_TRUE(read_file(victim) != original) << "the change did not reach the file";
  ASSERT_EQ(after.st_size, before.st_size);
  ASSERT_EQ(after.st_ino, before.st_ino);
  ASSERT_EQ(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
  ASSERT_EQ(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
  ASSERT_EQ(after.st_ctim.tv_sec, before.st_ctim.tv_sec);
  ASSERT_EQ(after.st_ctim.tv_nsec, before.st_ctim.tv_nsec);

  r = mixtape(
      {"backup", src_, "--library", library_, "--new-library", "--capacity", "64M", "--paranoid"});
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.err.find(victim + " changed between hashing and writing; not copied"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(copies(victim), 0u) << "a copy of bytes that are not the version's";
  EXPECT_EQ(copies(other), 1u);
  r = mixtape({"verify", "--library", library_});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find(" 0 bad\n"), std::string::npos) << r.out;

  // The file was left for the next run, which hashes it again: a new
  // version, of the bytes it has now, and its copy.
  r = mixtape({"backup", src_, "--library", library_, "--paranoid"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(to_hex(latest(victim)->hash), hash_hex(read_file(victim)));
  EXPECT_EQ(copies(victim), 1u);
  EXPECT_EQ(open_catalog().versions_of(*open_catalog().file_by_path(victim)).size(), 2u);
  r = mixtape({"verify", "--library", library_});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("2 archives: 2 files ok, 0 bad\n"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace mixtape::backup::testing
