// Tape file 0 and the recovery recipes of README.txt, run with the real
// tools they name: GNU tar, b2sum, sqlite3, age and python3.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/utsname.h>

#include <algorithm>
#include <random>

#include "engine/format/format.h"
#include "tests/format/test_util.h"

namespace mixtape::format {
namespace {

using namespace testing;

const std::string kSource = MIXTAPE_SOURCE_DIR;

LabelInfo sample_label() {
  LabelInfo label;
  label.serial = "L00042";
  label.labelled = "2026-11-21T10:00:00Z";
  label.encryption = Encryption::kAgePassphrase;
  label.catalog_id = "0123abcd";
  return label;
}

std::string write_file0(const std::string& path, const ArchaeologyExtras& extras = {}) {
  UniqueFd fd = open_file(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  FdSink sink(fd.get(), path);
  write_archaeology(sink, sample_label(), extras);
  sink.close();
  return path;
}

std::string machine() {
  struct utsname name {};
  ::uname(&name);
  return name.machine;
}

std::vector<std::string> spec_names() {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(kSource + "/archaeology/specs")) {
    if (entry.path().extension() == ".txt") names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

class Archaeology : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(have_tool("tar")) << "tar not installed (scripts/install-deps.sh)";
  }
  TempDir dir_;
};

TEST_F(Archaeology, TarListsEveryPartInOrder) {
  std::string file0 = write_file0(dir_ / "file0.tar");
  auto listing = run_shell("tar -tf " + shell_quote(file0));
  ASSERT_EQ(listing.status, 0);
  std::string want = "MIXTAPE\nREADME.txt\nFORMAT.txt\n";
  for (const auto& name : spec_names()) want += "specs/" + name + "\n";
  want += "source/mixtape-" MIXTAPE_VERSION ".tar.gz\n";
  want += "bin/mixtape-" MIXTAPE_VERSION "-" + machine() + "\n";
  EXPECT_EQ(listing.out, want);
  EXPECT_GE(spec_names().size(), 9u);
}

TEST_F(Archaeology, ExtractedFilesAreTheSourcesAndHashesHold) {
  std::string file0 = write_file0(dir_ / "file0.tar");
  std::string out = dir_ / "out";
  std::filesystem::create_directory(out);
  // GNU tar takes the per-member hash (format 2's pax keyword) in silence.
  auto extracted = run_shell("tar -xf " + shell_quote(file0) + " -C " + shell_quote(out));
  ASSERT_EQ(extracted.status, 0) << extracted.err;
  EXPECT_EQ(extracted.err, "");
  EXPECT_EQ(read_file(out + "/MIXTAPE"), format_label(sample_label()));
  EXPECT_EQ(read_file(out + "/README.txt"), read_file(kSource + "/archaeology/README.txt"));
  // FORMAT.txt is docs/FORMAT.md itself.
  EXPECT_EQ(read_file(out + "/FORMAT.txt"), read_file(kSource + "/docs/FORMAT.md"));
  for (const auto& name : spec_names()) {
    EXPECT_EQ(read_file(out + "/specs/" + name), read_file(kSource + "/archaeology/specs/" + name));
  }
  // The binary is the running program.
  std::string bin = out + "/bin/mixtape-" MIXTAPE_VERSION "-" + machine();
  EXPECT_EQ(crypto::blake2b256_file_hex(bin), crypto::blake2b256_file_hex("/proc/self/exe"));
  EXPECT_NE(std::filesystem::status(bin).permissions() & std::filesystem::perms::owner_exec,
            std::filesystem::perms::none);

  // Every member's MIXTAPE.blake2b256 is what b2sum says of the extracted file.
  UniqueFd fd = open_file(file0, O_RDONLY);
  FdSource source(fd.get(), file0);
  TarReader reader(source, file0);
  while (auto member = reader.next()) {
    std::string b2 = run_shell("b2sum -l 256 < " + shell_quote(out + "/" + member->info.path)).out;
    EXPECT_EQ(b2.substr(0, 64), member->info.blake2b256) << member->info.path;
  }
}

TEST_F(Archaeology, SourceTarballIsAValidTarGzOfTheProject) {
  std::string file0 = write_file0(dir_ / "file0.tar");
  std::string out = dir_ / "out";
  std::filesystem::create_directory(out);
  ASSERT_EQ(
      run_shell("tar -xf " + shell_quote(file0) + " -C " + shell_quote(out) + " source").status, 0);
  std::string tarball = out + "/source/mixtape-" MIXTAPE_VERSION ".tar.gz";
  auto listing = run_shell("tar -tzf " + shell_quote(tarball));
  ASSERT_EQ(listing.status, 0);
  const std::string prefix = "mixtape-" MIXTAPE_VERSION "/";
  EXPECT_NE(listing.out.find(prefix + "CMakeLists.txt\n"), std::string::npos);
  EXPECT_NE(listing.out.find(prefix + "engine/format/format.h\n"), std::string::npos);
  EXPECT_NE(listing.out.find(prefix + "docs/FORMAT.md\n"), std::string::npos);
  EXPECT_EQ(listing.out.find("/.git/"), std::string::npos);
  EXPECT_EQ(listing.out.find(prefix + "build"), std::string::npos);
}

TEST_F(Archaeology, ReadLabelFromFile) {
  ArchaeologyExtras small;
  write_file(dir_ / "src.tar.gz", "x");
  write_file(dir_ / "bin", "y");
  small.source_tarball_path = dir_ / "src.tar.gz";
  small.binary_path = dir_ / "bin";
  std::string file0 = write_file0(dir_ / "file0.tar", small);
  UniqueFd fd = open_file(file0, O_RDONLY);
  FdSource source(fd.get(), file0);
  EXPECT_EQ(read_label(source), sample_label());
  // And the label reads with tar alone, as README.txt says.
  EXPECT_EQ(run_shell("tar -xOf " + shell_quote(file0) + " MIXTAPE").out,
            format_label(sample_label()));
}

// ------------------------------------------------------------ README.txt recipes

// Extracts a program from README.txt with the exact command README.txt gives.
std::string extract_program(const TempDir& dir, const std::string& name) {
  std::string readme = kSource + "/archaeology/README.txt";
  std::string out = dir / name;
  std::string command = "sed -n '/^---8<--- " + name + "/,/^---8<--- end/p' " +
                        shell_quote(readme) + " | sed '1d;$d' > " + shell_quote(out);
  EXPECT_EQ(run_shell(command).status, 0);
  EXPECT_GT(std::filesystem::file_size(out), 500u);
  return out;
}

class ReadmeRecipes : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(have_tool("python3")) << "python3 not installed (scripts/install-deps.sh)";
  }
  TempDir dir_;
};

TEST_F(ReadmeRecipes, SplitTapSplitsAnImage) {
  std::string script = extract_program(dir_, "split_tap.py");
  // An image of three tape files: two records (one odd-sized), an empty
  // file, and one record; as mixtape's image drive writes them.
  std::vector<std::vector<std::string>> files = {
      {std::string(524288, 'a'), std::string(1001, 'b')}, {}, {std::string(7, 'c')}};
  std::string image;
  auto word = [&](std::uint32_t v) {
    for (int i = 0; i < 4; ++i) image.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  };
  for (const auto& records : files) {
    for (const auto& r : records) {
      word(static_cast<std::uint32_t>(r.size()));
      image += r;
      if (r.size() % 2) image.push_back('\0');
      word(static_cast<std::uint32_t>(r.size()));
    }
    word(0);
  }
  write_file(dir_ / "tape.tap", image);
  ASSERT_EQ(run_shell("python3 " + shell_quote(script) + " " + shell_quote(dir_ / "tape.tap") +
                      " " + shell_quote(dir_ / "files"))
                .status,
            0);
  for (std::size_t k = 0; k < files.size(); ++k) {
    std::string want;
    for (const auto& r : files[k]) want += r;
    EXPECT_EQ(read_file(dir_ / ("files/file" + std::to_string(k))), want) << k;
  }
}

TEST_F(ReadmeRecipes, AgeRangeRestoresOneFileFromTheBlockFormula) {
  ASSERT_TRUE(have_tool("age") && have_tool("age-keygen")) << "age not installed";
  ASSERT_EQ(run_shell("python3 -c 'import cryptography' 2>/dev/null").status, 0)
      << "python3-cryptography not installed (scripts/install-deps.sh)";
  std::string script = extract_program(dir_, "age_range.py");
  ASSERT_EQ(run_shell("age-keygen -o " + shell_quote(dir_ / "key.txt") + " 2>/dev/null").status, 0);
  std::string recipient = run_shell("age-keygen -y " + shell_quote(dir_ / "key.txt")).out;
  recipient.erase(recipient.find_last_not_of('\n') + 1);

  // An archive of members of awkward sizes, written and encrypted as the
  // pipeline does (with the stock age here).
  std::mt19937 rng(11);
  std::vector<std::pair<MemberInfo, std::string>> members;
  MemorySink tar_sink;
  PaxWriter writer(tar_sink);
  std::vector<MemberOffsets> offsets;
  for (std::size_t size : {1000u, 200000u, 65536u, 0u, 131073u}) {
    std::string data(size, '\0');
    for (auto& c : data) c = static_cast<char>(rng());
    MemberInfo info;
    info.path = "file-" + std::to_string(size);
    info.size = size;
    info.blake2b256 = hash_hex(data);
    offsets.push_back(writer.begin_file(info));
    writer.write_data(as_bytes(data));
    writer.end_file();
    members.emplace_back(info, data);
  }
  writer.finish();
  write_file(dir_ / "archive.tar", tar_sink.bytes());
  ASSERT_EQ(run_shell("age -r " + recipient + " -o " + shell_quote(dir_ / "archive.age") + " " +
                      shell_quote(dir_ / "archive.tar"))
                .status,
            0);
  std::string ciphertext = read_file(dir_ / "archive.age");
  std::size_t mac = ciphertext.find("\n--- ") + 1;
  std::uint64_t header_length = ciphertext.find('\n', mac) + 1;
  EXPECT_EQ(ciphertext.size(), age_encrypted_size(header_length, tar_sink.bytes().size()));

  // A small record size, so members land in later records; the archive
  // starts at block 0 of this "tape".
  ArchiveGeometry geometry{0, 4096, true, header_length};
  std::string first_record = dir_ / "first-record";
  write_file(first_record, std::string_view(ciphertext).substr(0, geometry.record_size));
  for (std::size_t k = 0; k < members.size(); ++k) {
    const auto& [info, data] = members[k];
    TapePosition p = locate(geometry, offsets[k].data_offset);
    // What `mt seek b; dd | tail -c +(s+1)` delivers.
    std::string stream = dir_ / "stream";
    write_file(
        stream,
        std::string_view(ciphertext).substr(p.block * geometry.record_size + p.offset_in_block));
    auto result = run_shell("python3 " + shell_quote(script) + " " + shell_quote(dir_ / "key.txt") +
                            " " + shell_quote(first_record) + " " + std::to_string(p.chunk) + " " +
                            std::to_string(p.offset_in_chunk) + " " + std::to_string(info.size) +
                            " < " + shell_quote(stream));
    ASSERT_EQ(result.status, 0) << info.path;
    EXPECT_EQ(result.out, data) << info.path;
  }
}

TEST_F(ReadmeRecipes, ChecksumListFromIndexVerifiesWithB2sum) {
  ASSERT_TRUE(have_tool("sqlite3") && have_tool("b2sum") && have_tool("tar"))
      << "sqlite3, b2sum or tar not installed";
  // An archive and its index, extracted and checked as README.txt section
  // 6 says.
  MemorySink tar_sink;
  PaxWriter writer(tar_sink);
  IndexHeader header;
  header.index_file = 1;
  header.archive_file = 2;
  header.serial = "L00001";
  header.created = "2026-11-21T10:00:00Z";
  header.catalog_id = "ab";
  header.encrypted = false;
  std::string index_path = dir_ / "index.db";
  IndexWriter index(index_path, header);
  for (std::string name : {"a.txt", "dir/b with space.bin", "c"}) {
    MemberInfo info;
    info.path = name;
    info.size = name.size() * 100;
    info.mtime_ns = 1700000000000000000;
    std::string data(info.size, name[0]);
    info.blake2b256 = hash_hex(data);
    MemberOffsets offsets = writer.begin_file(info);
    writer.write_data(as_bytes(data));
    writer.end_file();
    index.add_member({info, offsets});
  }
  writer.finish();
  index.set_archive({2, 0, 0, tar_sink.bytes().size(), tar_sink.bytes().size(), 3});
  index.finish();
  write_file(dir_ / "archive.tar", tar_sink.bytes());
  std::filesystem::create_directory(dir_ / "restore");
  ASSERT_EQ(run_shell("tar -xf " + shell_quote(dir_ / "archive.tar") + " -C " +
                      shell_quote(dir_ / "restore"))
                .status,
            0);
  ASSERT_EQ(run_shell("sqlite3 " + shell_quote(index_path) +
                      " \"SELECT blake2b256 || '  ' || path FROM member WHERE type = 'file'\" > " +
                      shell_quote(dir_ / "sums.b2"))
                .status,
            0);
  auto check = run_shell("cd " + shell_quote(dir_ / "restore") + " && b2sum -l 256 -c ../sums.b2");
  EXPECT_EQ(check.status, 0) << check.out;
  EXPECT_EQ(std::count(check.out.begin(), check.out.end(), '\n'), 3) << check.out;
}

// ------------------------------------------------------------ sqlite3

TEST(IndexWithSqlite3, SchemaExplainsItself) {
  ASSERT_TRUE(have_tool("sqlite3")) << "sqlite3 not installed (scripts/install-deps.sh)";
  TempDir dir;
  IndexHeader header;
  header.kind = IndexKind::kTrailing;
  header.serial = "L00042";
  header.created = "2026-11-21T10:00:00Z";
  header.catalog_id = "ab";
  std::string path = dir / "trailing.db";
  IndexWriter writer(path, header);
  writer.finish();
  auto schema = run_shell("sqlite3 " + shell_quote(path) + " .schema");
  ASSERT_EQ(schema.status, 0);
  EXPECT_NE(schema.out.find("CREATE TABLE format (  -- what this file is"), std::string::npos)
      << schema.out;
  EXPECT_NE(schema.out.find("CREATE TABLE member ("), std::string::npos);
  EXPECT_NE(schema.out.find("-- byte offset of its data in the plaintext tar"), std::string::npos);
  auto format = run_shell("sqlite3 " + shell_quote(path) +
                          " \"SELECT value FROM format WHERE key = "
                          "'kind'\"");
  EXPECT_EQ(format.out, "trailing\n");
  auto integrity = run_shell("sqlite3 " + shell_quote(path) + " 'PRAGMA integrity_check'");
  EXPECT_EQ(integrity.out, "ok\n");
}

// ------------------------------------------------------------ age

TEST(AgeCli, EncryptedSizeMatchesTheFormula) {
  ASSERT_TRUE(have_tool("age") && have_tool("age-keygen")) << "age not installed";
  TempDir dir;
  ASSERT_EQ(run_shell("age-keygen -o " + shell_quote(dir / "key.txt") + " 2>/dev/null").status, 0);
  std::string recipient = run_shell("age-keygen -y " + shell_quote(dir / "key.txt")).out;
  recipient.erase(recipient.find_last_not_of('\n') + 1);
  for (std::size_t size : {0u, 1u, 65535u, 65536u, 65537u, 1000000u}) {
    write_file(dir / "plain", std::string(size, 'p'));
    ASSERT_EQ(run_shell("age -r " + recipient + " -o " + shell_quote(dir / "enc") + " " +
                        shell_quote(dir / "plain"))
                  .status,
              0);
    std::string enc = read_file(dir / "enc");
    std::uint64_t h = enc.find('\n', enc.find("\n--- ") + 1) + 1;
    EXPECT_EQ(h, 168u);  // one X25519 recipient, as FORMAT.md says
    EXPECT_EQ(enc.size(), age_encrypted_size(h, size)) << size;
  }
}

}  // namespace
}  // namespace mixtape::format
