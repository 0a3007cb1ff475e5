// Interoperability with the tools a stranger has: GNU tar extracts and lists
// what PaxWriter writes, b2sum agrees with MIXTAPE.blake2b256, and TarReader
// reads what GNU tar writes (pax and gnu formats, long names).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "engine/format/format.h"
#include "tests/format/test_util.h"

namespace mixtape::format {
namespace {

using namespace testing;

std::vector<Sample> samples() {
  std::vector<Sample> out;
  auto add = [&](std::string path, std::string data, std::int64_t mtime_ns) {
    MemberInfo info = file_info(std::move(path), data, mtime_ns);
    out.push_back({info, std::move(data)});
  };
  add("plain.txt", "hello\n", 1700000000123456789);
  add("dir with spaces/file name.txt", "spaces\n", 1700000001000000001);
  add("new\nline", "newline in name\n", 1700000002999999999);
  add("bad\xff\xfeutf8", "not UTF-8\n", 1700000003000000000);
  add(long_path(), "deep\n", 1700000004000000000);
  add("zero", "", 1700000005000000000);
  add("random.bin", random_text(200000, 3), 1700000006500000000);
  add("old", "before 1970\n", -1500000000);
  {
    Sample s{file_info("\xc3\xbcnic\xc3\xb6"
                       "de.txt",
                       "umlaut\n", 1700000007000000000),
             "umlaut\n"};
    s.info.uname = "j\xc3\xbcrgen";
    s.info.uid = 3000000;
    s.info.mode = 0755;
    out.push_back(s);
  }
  add_symlinks(out, 1700000008000000000);
  out.push_back(empty_dir());
  return out;
}

struct Archive {
  std::string path;
  std::vector<MemberOffsets> offsets;
};

Archive write_archive(const std::string& path, const std::vector<Sample>& members) {
  UniqueFd fd = open_file(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  FdSink sink(fd.get(), path);
  PaxWriter writer(sink);
  Archive archive{path, {}};
  for (const auto& m : members) {
    if (m.info.type == MemberType::kFile) {
      archive.offsets.push_back(writer.begin_file(m.info));
      writer.write_data(as_bytes(m.data));
      writer.end_file();
    } else if (m.info.type == MemberType::kSymlink) {
      archive.offsets.push_back(writer.add_symlink(m.info));
    } else {
      archive.offsets.push_back(writer.add_directory(m.info));
    }
  }
  writer.finish();
  sink.close();
  return archive;
}

std::int64_t mtime_ns_of(const struct stat& st) {
  return static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

class GnuTar : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(testing::have_tool("tar")) << "GNU tar not installed";
    ASSERT_NE(run_shell("tar --version").out.find("GNU tar"), std::string::npos)
        << "tar is not GNU tar";
  }
  TempDir dir_;
};

// tar --xattrs restores format 2's per-member hash as the file's user
// xattr: the hash stays with the restored file (getfattr shows it).
TEST_F(GnuTar, XattrsRestoreTheHashOnTheFile) {
  ASSERT_TRUE(testing::have_tool("getfattr")) << "getfattr not installed (attr)";
  auto members = samples();
  Archive archive = write_archive(dir_ / "x.tar", members);
  std::string out = dir_ / "xattrs";
  std::filesystem::create_directory(out);
  auto result = run_shell("tar --xattrs --xattrs-include='user.*' -xf " +
                          shell_quote(archive.path) + " -C " + shell_quote(out));
  ASSERT_EQ(result.status, 0) << result.err;
  // The samples' odd times and charsets draw tar's remarks; the hash's
  // keyword never does.
  EXPECT_EQ(result.err.find("blake2b256"), std::string::npos) << result.err;
  int checked = 0;
  for (const auto& m : members) {
    if (m.info.type != MemberType::kFile) continue;
    auto got = run_shell("getfattr --only-values -n user.mixtape.blake2b256 " +
                         shell_quote(out + "/" + m.info.path));
    ASSERT_EQ(got.status, 0) << m.info.path << ": " << got.err;
    EXPECT_EQ(got.out, m.info.blake2b256) << m.info.path;
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

TEST_F(GnuTar, ExtractsEveryMemberExactly) {
  auto members = samples();
  Archive archive = write_archive(dir_ / "a.tar", members);
  std::string out = dir_ / "out";
  std::filesystem::create_directory(out);
  // --numeric-owner: the archive's ids, not whatever the names map to here.
  auto result = run_shell("tar --numeric-owner -xpf " + shell_quote(archive.path) + " -C " +
                          shell_quote(out));
  ASSERT_EQ(result.status, 0);
  // The hash's pax keyword is taken in silence (the samples' odd times and
  // charsets draw tar's other remarks).
  EXPECT_EQ(result.err.find("blake2b256"), std::string::npos) << result.err;
  bool root = ::geteuid() == 0;
  for (const auto& m : members) {
    std::string path = out + "/" + m.info.path;
    struct stat st {};
    ASSERT_EQ(::lstat(path.c_str(), &st), 0) << m.info.path;
    switch (m.info.type) {
      case MemberType::kFile:
        ASSERT_TRUE(S_ISREG(st.st_mode));
        EXPECT_EQ(read_file(path), m.data) << m.info.path;
        EXPECT_EQ(mtime_ns_of(st), m.info.mtime_ns) << m.info.path;
        break;
      case MemberType::kSymlink: {
        ASSERT_TRUE(S_ISLNK(st.st_mode));
        EXPECT_EQ(std::filesystem::read_symlink(path).string(), m.info.linkpath);
        break;
      }
      default:
        ASSERT_TRUE(S_ISDIR(st.st_mode));
        EXPECT_TRUE(std::filesystem::is_empty(path));
        EXPECT_EQ(mtime_ns_of(st), m.info.mtime_ns) << m.info.path;
        break;
    }
    if (m.info.type != MemberType::kSymlink) {
      EXPECT_EQ(st.st_mode & 07777, m.info.mode) << m.info.path;
    }
    if (root) {
      EXPECT_EQ(st.st_uid, m.info.uid) << m.info.path;
      EXPECT_EQ(st.st_gid, m.info.gid) << m.info.path;
    }
  }
}

TEST_F(GnuTar, ListsMembersAtTheOffsetsWeReport) {
  auto members = samples();
  Archive archive = write_archive(dir_ / "a.tar", members);
  // -R prints the block number of each member's own ustar header, the
  // block just before its data (after the pax extended header).
  auto result = run_shell("tar -tvRf " + shell_quote(archive.path));
  ASSERT_EQ(result.status, 0);
  std::regex block_re("^block ([0-9]+): (.*)$");
  std::vector<std::string> lines;
  std::istringstream in(result.out);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), members.size() + 1);  // and "** Block of NULs **"
  for (std::size_t i = 0; i < members.size(); ++i) {
    std::smatch match;
    ASSERT_TRUE(std::regex_match(lines[i], match, block_re)) << lines[i];
    EXPECT_EQ(std::stoull(match[1]) * 512 + 512, archive.offsets[i].data_offset) << lines[i];
  }
  EXPECT_NE(lines.back().find("Block of NULs"), std::string::npos) << result.out;
  // Owner names and sizes as GNU tar sees them.
  EXPECT_NE(lines[0].find("alice/users"), std::string::npos) << lines[0];
  EXPECT_NE(lines[6].find(" 200000 "), std::string::npos) << lines[6];
  EXPECT_NE(lines[8].find("j\xc3\xbcrgen/users"), std::string::npos) << lines[8];
  EXPECT_NE(lines[9].find("link -> plain.txt"), std::string::npos) << lines[9];
  EXPECT_NE(lines[11].find("empty dir/"), std::string::npos) << lines[11];
}

TEST_F(GnuTar, DataIsWhereTheOffsetsSay) {
  auto members = samples();
  Archive archive = write_archive(dir_ / "a.tar", members);
  std::string bytes = read_file(archive.path);
  for (std::size_t i = 0; i < members.size(); ++i) {
    EXPECT_EQ(bytes.substr(archive.offsets[i].data_offset, members[i].data.size()),
              members[i].data);
  }
  // And each member extracted alone from a stream starting at its header
  // offset (what a restore does with `dd skip=`) is the right one.
  for (std::size_t i : {0u, 6u}) {
    std::string tail = dir_ / ("tail" + std::to_string(i));
    write_file(tail, std::string_view(bytes).substr(archive.offsets[i].header_offset));
    auto listing = run_shell("tar --occurrence=1 -xOf " + shell_quote(tail) + " " +
                             shell_quote(members[i].info.path));
    EXPECT_EQ(listing.out, members[i].data);
  }
}

TEST_F(GnuTar, HashRecordMatchesB2sum) {
  ASSERT_TRUE(testing::have_tool("b2sum")) << "b2sum not installed";
  auto members = samples();
  Archive archive = write_archive(dir_ / "a.tar", members);
  std::string out = dir_ / "out";
  std::filesystem::create_directory(out);
  ASSERT_EQ(run_shell("tar -xf " + shell_quote(archive.path) + " -C " + shell_quote(out)).status,
            0);
  // The hash as recorded in the archive, read back by our reader...
  UniqueFd fd = open_file(archive.path, O_RDONLY);
  FdSource source(fd.get(), archive.path);
  TarReader reader(source, archive.path);
  int files = 0;
  while (auto member = reader.next()) {
    if (member->info.type != MemberType::kFile) continue;
    // ...equals b2sum -l 256 of what GNU tar extracted.
    // (On stdin: b2sum escapes names with newlines in its output.)
    std::string b2 = run_shell("b2sum -l 256 < " + shell_quote(out + "/" + member->info.path)).out;
    EXPECT_EQ(b2.substr(0, 64), member->info.blake2b256) << member->info.path;
    ++files;
  }
  EXPECT_EQ(files, 9);
}

TEST_F(GnuTar, ListsHugeSizeFromHeaderAlone) {
  MemberInfo info = file_info("huge", "", 1700000000000000000);
  info.size = 9000000000;
  info.blake2b256 = std::string(64, 'a');
  std::string path = dir_ / "huge.tar";
  {
    UniqueFd fd = open_file(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    FdSink sink(fd.get(), path);
    PaxWriter writer(sink);
    writer.begin_file(info);  // the data never comes
  }
  // GNU tar prints the entry, then fails on the missing data.
  auto result = run_shell("tar -tvf " + shell_quote(path) + " 2>/dev/null");
  EXPECT_NE(result.out.find(" 9000000000 "), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("huge"), std::string::npos) << result.out;
}

// ------------------------------------------------------------ GNU tar -> TarReader

class GnuTarArchives : public GnuTar, public ::testing::WithParamInterface<const char*> {};

TEST_P(GnuTarArchives, ReadByTarReader) {
  std::string tree = dir_ / "tree";
  std::string long_dir = tree + "/" + std::string(120, 'd') + "/" + std::string(140, 'e');
  std::filesystem::create_directories(long_dir);
  std::filesystem::create_directories(tree + "/empty");
  std::map<std::string, std::string> files = {
      {"short.txt", "short\n"},
      {std::string(150, 'n') + ".txt", "long name\n"},
      {std::string(120, 'd') + "/" + std::string(140, 'e') + "/" + std::string(200, 'f'),
       random_text(3000, 5)},
      {"with space \xc3\xa9.txt", "accent\n"},
      {"zero", ""},
  };
  for (const auto& [name, data] : files) write_file(tree + "/" + name, data);
  std::string long_target = std::string(200, 't');
  std::filesystem::create_symlink(long_target, tree + "/symlink");

  std::string archive = dir_ / "gnu.tar";
  ASSERT_EQ(run_shell(std::string("tar --format=") + GetParam() + " -cf " + shell_quote(archive) +
                      " -C " + shell_quote(tree) + " .")
                .status,
            0);
  std::string bytes = read_file(archive);

  MemorySource source(as_bytes(bytes));
  TarReader reader(source, archive);
  std::set<std::string> seen;
  while (auto member = reader.next()) {
    const std::string& path = member->info.path;
    seen.insert(path);
    struct stat st {};
    ASSERT_EQ(::lstat((tree + "/" + path).c_str(), &st), 0) << path;
    std::int64_t want_ns = mtime_ns_of(st);
    if (std::string(GetParam()) == "gnu") want_ns -= want_ns % 1000000000;  // seconds only
    EXPECT_EQ(member->info.mtime_ns, want_ns) << path;
    EXPECT_EQ(member->info.mode, st.st_mode & 07777) << path;
    EXPECT_EQ(member->info.uid, st.st_uid);
    if (S_ISREG(st.st_mode)) {
      ASSERT_EQ(member->info.type, MemberType::kFile) << path;
      std::string data(member->info.size, '\0');
      std::size_t done = 0;
      while (done < data.size()) {
        done += reader.read_data(MutableByteSpan(
            reinterpret_cast<std::uint8_t*>(data.data()) + done, data.size() - done));
      }
      EXPECT_EQ(data, files.at(path));
      EXPECT_EQ(bytes.substr(member->offsets.data_offset, data.size()), data);
    } else if (S_ISLNK(st.st_mode)) {
      EXPECT_EQ(member->info.type, MemberType::kSymlink);
      EXPECT_EQ(member->info.linkpath, long_target);
    } else {
      EXPECT_EQ(member->info.type, MemberType::kDirectory) << path;
    }
  }
  for (const auto& [name, data] : files) EXPECT_TRUE(seen.count(name)) << name;
  EXPECT_TRUE(seen.count("empty"));
  EXPECT_TRUE(seen.count("symlink"));
}

INSTANTIATE_TEST_SUITE_P(Formats, GnuTarArchives, ::testing::Values("pax", "gnu"));

}  // namespace
}  // namespace mixtape::format
