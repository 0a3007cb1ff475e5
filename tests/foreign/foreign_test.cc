// engine/foreign: tapes of GNU tar's real output, indexed in one pass,
// restored and verified through the recall queue, imported into a catalog;
// every tar dialect and compression, records that vary, sparse files,
// multi-volume parts, a file that is no tar, and hostile or damaged tars.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "engine/foreign/foreign.h"
#include "engine/restore/restore.h"
#include "engine/tape/libraries.h"
#include "tests/foreign/foreign_util.h"

namespace mixtape::foreign::testing {
namespace {

namespace fs = std::filesystem;

std::unique_ptr<tape::Drive> open_read_only(const std::string& image) {
  tape::OpenDriveOptions options;
  options.read_only = true;
  return tape::open_drive(image, options);
}

tape::ImageLibraryOptions read_only_library() {
  tape::ImageLibraryOptions options;
  options.read_only = true;
  return options;
}

class ForeignTest : public ::testing::Test {
 protected:
  // Indexes the image into a new catalog.
  IndexReport index(const std::string& image) {
    catalog_path_ = f_.file("index-" + std::to_string(++indexes_) + ".db");
    catalog::CatalogConfig config;
    config.encryption = catalog::Encryption::kNone;
    auto catalog = catalog::Catalog::create(catalog_path_, config);
    auto drive = open_read_only(image);
    return index_tape(catalog, *drive);
  }

  catalog::Catalog open() { return catalog::Catalog::open_read_only(catalog_path_); }

  // Restores paths of the indexed image into a new directory; returns it.
  std::string restore(const std::string& image, const std::vector<std::string>& paths,
                      restore::RestoreReport* out = nullptr, tape::DriveStats* stats = nullptr) {
    const std::string to = f_.file("out-" + std::to_string(++restores_));
    tape::SingleDriveLibrary library(open_read_only(image), serial_reader());
    restore::RestoreOptions options;
    options.paths = paths;
    options.destination = to;
    SilentProgress progress;
    auto report = restore::restore(catalog_path_, library, {}, options, progress);
    EXPECT_TRUE(report.failures.empty())
        << report.failures.front().path << ": " << report.failures.front().error;
    if (out) *out = report;
    if (stats) *stats = library.stats();
    return to;
  }

  ForeignFixture f_;
  std::string catalog_path_;
  int indexes_ = 0, restores_ = 0;
};

TEST_F(ForeignTest, TwoGnuTarsOfTwoRecordSizesAreIndexedAndRestoreByteForByte) {
  f_.make_tree(f_.file("one"), 1);
  f_.make_tree(f_.file("two"), 2);
  const std::string image =
      f_.tap("t.tap", {"10240:" + f_.tar("one.tar", "--format=gnu -b 20", f_.file("one")),
                       "131072:" + f_.tar("two.tar", "--format=gnu -b 256", f_.file("two"))});
  IndexReport report = index(image);
  EXPECT_EQ(report.tape_files, 2u);
  EXPECT_EQ(report.tars, 2u);
  EXPECT_TRUE(report.warnings.empty()) << report.warnings.front();
  EXPECT_EQ(report.serial, serial_for(report.fingerprint));
  {
    auto catalog = open();
    auto tape = catalog.tape_by_serial(report.serial);
    ASSERT_TRUE(tape);
    EXPECT_EQ(tape->foreign_id, report.fingerprint);
    EXPECT_EQ(tape->state, catalog::TapeState::kFull);
    auto archives = catalog.archives_of_tape(tape->id);
    ASSERT_EQ(archives.size(), 2u);
    EXPECT_EQ(archives[0].foreign_format, "tar");
    EXPECT_EQ(archives[0].record_size, 10240u);
    EXPECT_EQ(archives[1].foreign_format, "tar");
    EXPECT_EQ(archives[1].record_size, 131072u);
    EXPECT_EQ(archives[1].archive_file, 1);
    // Every member hashed as it went by; the long name kept whole.
    const std::string long_name =
        "/file2/" + std::string(120, 'n') + "/" + std::string(90, 'm') + ".dat";
    auto entry = catalog.resolve(long_name);
    ASSERT_TRUE(entry) << long_name;
    EXPECT_EQ(to_hex(entry->version.hash),
              hash_hex(read_file(f_.file("two/" + long_name.substr(7)))));
    auto link = catalog.resolve("/file1/a/link");
    ASSERT_TRUE(link);
    EXPECT_EQ(link->version.symlink_target, "small.txt");
    auto hard = catalog.resolve("/file1/a/hard.txt");
    ASSERT_TRUE(hard);
    EXPECT_EQ(to_hex(hard->version.hash), hash_hex(read_file(f_.file("one/a/small.txt"))));
  }
  tape::DriveStats stats;
  const std::string out = restore(image, {"/file1", "/file2"}, nullptr, &stats);
  EXPECT_EQ(ForeignFixture::diff(f_.file("one"), out + "/file1"), "");
  EXPECT_EQ(ForeignFixture::diff(f_.file("two"), out + "/file2"), "");
  // In tape order: at most one locate per tar file.
  EXPECT_LE(stats.locates, 2u);
}

TEST_F(ForeignTest, EveryTarDialectAndCompressionRestores) {
  f_.make_tree(f_.file("tree"), 3);
  // v7 has no room for long names, symlinks to directories or owners by name.
  f_.sh("mkdir -p " + shell_quote(f_.file("v7/d")) + " && head -c 50000 /dev/urandom > " +
        shell_quote(f_.file("v7/d/x.bin")) + " && echo v7 > " + shell_quote(f_.file("v7/y")));
  const std::vector<std::pair<std::string, std::string>> kinds = {
      {"--format=pax", "tar"},
      {"--format=gnu -z", "tar.gz"},
      {"--format=gnu -j", "tar.bz2"},
      {"--format=pax -J", "tar.xz"},
      {"--format=gnu --zstd", "tar.zst"},
      {"--format=oldgnu -b 1", "tar"},
  };
  std::vector<std::string> files;
  int n = 0;
  for (const auto& [args, format] : kinds) {
    // tar -b 1: records of one 512-byte block.
    const std::string record = args.find("-b 1") != std::string::npos ? "512:" : "10240:";
    files.push_back(record + f_.tar("k" + std::to_string(n++) + ".tar", args, f_.file("tree")));
  }
  files.push_back("10240:" + f_.tar("v7.tar", "--format=v7", f_.file("v7")));
  // ustar keeps names of up to 100 bytes, or 255 split at a '/'.
  files.push_back("10240:" + f_.tar("ustar.tar", "--format=ustar", f_.file("v7")));
  const std::string image = f_.tap("kinds.tap", files);
  IndexReport report = index(image);
  EXPECT_EQ(report.tars, kinds.size() + 2);
  auto catalog = open();
  auto archives = catalog.archives_of_tape(catalog.tape_by_serial(report.serial)->id);
  ASSERT_EQ(archives.size(), kinds.size() + 2);
  for (std::size_t i = 0; i < kinds.size(); ++i)
    EXPECT_EQ(archives[i].foreign_format, kinds[i].second) << kinds[i].first;
  std::vector<std::string> paths;
  for (std::size_t i = 1; i <= archives.size(); ++i) paths.push_back("/file" + std::to_string(i));
  const std::string out = restore(image, paths);
  for (std::size_t i = 0; i < kinds.size(); ++i)
    EXPECT_EQ(ForeignFixture::diff(f_.file("tree"), out + "/file" + std::to_string(i + 1)), "")
        << kinds[i].first;
  for (std::size_t i = kinds.size() + 1; i <= kinds.size() + 2; ++i)
    EXPECT_EQ(ForeignFixture::diff(f_.file("v7"), out + "/file" + std::to_string(i)), "");
}

TEST_F(ForeignTest, RecordsThatVaryAreReadFromTheStartOfTheirFile) {
  f_.make_tree(f_.file("tree"), 4);
  const std::string tar = f_.tar("t.tar", "--format=gnu", f_.file("tree"));
  const std::string image = f_.tap("vary.tap", {"10240,4096,512:" + tar});
  index(image);
  auto catalog = open();
  auto archives = catalog.archives_of_tape(catalog.tapes().front().id);
  ASSERT_EQ(archives.size(), 1u);
  EXPECT_EQ(archives[0].foreign_format, "tar-stream");
  EXPECT_EQ(archives[0].record_size, 10240u);  // the largest: what a read needs room for
  EXPECT_EQ(ForeignFixture::diff(f_.file("tree"), restore(image, {"/file1"}) + "/file1"), "");
}

TEST_F(ForeignTest, AFileThatIsNoTarIsOnePlainFile) {
  f_.make_tree(f_.file("tree"), 5);
  const std::string data = random_text(777777, 6);
  write_file(f_.file("data.bin"), data);
  const std::string image =
      f_.tap("bin.tap", {"10240:" + f_.tar("t.tar", "", f_.file("tree")),
                         "65536:" + f_.file("data.bin"), "-", "10240:" + f_.file("t.tar")});
  IndexReport report = index(image);
  EXPECT_EQ(report.tape_files, 3u);  // the empty file between is no file
  auto catalog = open();
  auto entry = catalog.resolve("/file2.bin");
  ASSERT_TRUE(entry);
  EXPECT_EQ(entry->version.size, data.size());
  // The third file on tape is the fourth tape file (the empty one counts).
  EXPECT_TRUE(catalog.resolve("/file4/a/big.bin"));
  const std::string out = restore(image, {"/file2.bin", "/file4"});
  EXPECT_EQ(read_file(out + "/file2.bin"), data);
  EXPECT_EQ(ForeignFixture::diff(f_.file("tree"), out + "/file4"), "");
}

TEST_F(ForeignTest, SparseFilesRestoreWithTheirHoles) {
  f_.sh("mkdir -p " + shell_quote(f_.file("sparse")) + " && truncate -s 20M " +
        shell_quote(f_.file("sparse/holes")) + " && echo middle | dd of=" +
        shell_quote(f_.file("sparse/holes")) + " bs=1 seek=10000000 conv=notrunc 2>/dev/null");
  const std::string image =
      f_.tap("sparse.tap", {"10240:" + f_.tar("gnu.tar", "--format=gnu -S", f_.file("sparse")),
                            "10240:" + f_.tar("pax.tar", "--format=pax -S", f_.file("sparse"))});
  index(image);
  const std::string out = restore(image, {"/file1", "/file2"});
  EXPECT_EQ(read_file(out + "/file1/holes"), read_file(f_.file("sparse/holes")));
  EXPECT_EQ(read_file(out + "/file2/holes"), read_file(f_.file("sparse/holes")));
}

TEST_F(ForeignTest, MultiVolumePartsAreShownAsSuch) {
  const std::string whole = random_text(300 * 1024, 7);
  write_file(f_.file("mv/whole.bin"), whole);
  // Three volumes of 120 KiB; GNU tar cuts whole.bin across them.
  f_.sh("cd " + shell_quote(f_.file("mv")) + " && tar --format=gnu -c -M -L 120 -f " +
        shell_quote(f_.file("v1.tar")) + " -f " + shell_quote(f_.file("v2.tar")) + " -f " +
        shell_quote(f_.file("v3.tar")) + " whole.bin");
  const std::string image = f_.tap(
      "mv.tap",
      {"10240:" + f_.file("v1.tar"), "10240:" + f_.file("v2.tar"), "10240:" + f_.file("v3.tar")});
  IndexReport report = index(image);
  auto catalog = open();
  auto first = catalog.resolve("/file1/whole.bin.part-at-0");
  ASSERT_TRUE(first) << (report.warnings.empty() ? "" : report.warnings.front());
  std::vector<std::string> parts = {"/file1/whole.bin.part-at-0"};
  std::uint64_t at = first->version.size;
  for (int volume = 2; volume <= 3; ++volume) {
    std::string path =
        "/file" + std::to_string(volume) + "/whole.bin.part-at-" + std::to_string(at);
    auto part = catalog.resolve(path);
    ASSERT_TRUE(part) << path;
    at += part->version.size;
    parts.push_back(path);
  }
  EXPECT_EQ(at, whole.size());
  const std::string out = restore(image, parts);
  std::string joined;
  for (const auto& p : parts) joined += read_file(out + p);
  EXPECT_EQ(joined, whole);
}

TEST_F(ForeignTest, HostileNamesStayInsideAndDamageKeepsTheRest) {
  // Names a hostile tar holds, made with Python's tarfile (GNU tar refuses
  // to write them), then a tar cut off in its middle, then a good one.
  f_.sh(
      "cd " + shell_quote(f_.file("")) +
      " && python3 - <<'EOF'\n"
      "import io, tarfile\n"
      "def add(t, name, data=b'x'):\n"
      "    info = tarfile.TarInfo(name); info.size = len(data); t.addfile(info, io.BytesIO(data))\n"
      "with tarfile.open('hostile.tar', 'w', format=tarfile.GNU_FORMAT) as t:\n"
      "    for n in ['../../escape.txt', 'a/../../up.txt', '/etc/abs.txt', './dot/./x.txt', "
      "'ok.txt']:\n"
      "        add(t, n, n.encode())\n"
      "    s = tarfile.TarInfo('evil-link'); s.type = tarfile.SYMTYPE; s.linkname = '/etc/passwd'; "
      "t.addfile(s)\n"
      "with tarfile.open('cut.tar', 'w', format=tarfile.GNU_FORMAT) as t:\n"
      "    add(t, 'first.txt', b'first'); add(t, 'second.bin', bytes(100000))\n"
      "data = open('cut.tar', 'rb').read()\n"
      "open('cut.tar', 'wb').write(data[:60000])\n"
      "EOF\n");
  f_.make_tree(f_.file("good"), 8);
  const std::string image =
      f_.tap("hostile.tap", {"10240:" + f_.file("hostile.tar"), "10240:" + f_.file("cut.tar"),
                             "10240:" + f_.tar("good.tar", "", f_.file("good"))});
  IndexReport report = index(image);
  auto catalog = open();
  EXPECT_TRUE(catalog.resolve("/file1/ok.txt"));
  EXPECT_TRUE(catalog.resolve("/file1/etc/abs.txt"));  // made relative
  EXPECT_TRUE(catalog.resolve("/file1/dot/x.txt"));
  EXPECT_FALSE(catalog.resolve("/escape.txt"));
  EXPECT_FALSE(catalog.resolve("/up.txt"));
  std::string warnings;
  for (const auto& w : report.warnings) warnings += w + "\n";
  EXPECT_NE(warnings.find("'../../escape.txt' left out"), std::string::npos) << warnings;
  EXPECT_NE(warnings.find("'a/../../up.txt' left out"), std::string::npos) << warnings;
  // The cut tar keeps its first member and shows the head of the second.
  EXPECT_TRUE(catalog.resolve("/file2/first.txt"));
  EXPECT_TRUE(catalog.resolve("/file2/second.bin.part-at-0"));
  EXPECT_TRUE(catalog.resolve("/file3/a/big.bin"));
  // Restored, nothing lands outside the destination (the symlink is made
  // as a symlink, never followed).
  const std::string out = restore(image, {"/file1", "/file2", "/file3"});
  EXPECT_EQ(read_file(out + "/file1/etc/abs.txt"), "/etc/abs.txt");
  EXPECT_EQ(fs::read_symlink(out + "/file1/evil-link"), "/etc/passwd");
  EXPECT_FALSE(fs::exists(f_.file("escape.txt")));
  EXPECT_FALSE(fs::exists(f_.file("up.txt")));
  EXPECT_EQ(read_file(out + "/file2/first.txt"), "first");
  EXPECT_EQ(ForeignFixture::diff(f_.file("good"), out + "/file3"), "");
}

TEST_F(ForeignTest, ImportedTapeIsBesideTheBackupsAndVerifies) {
  f_.make_tree(f_.file("tree"), 9);
  const std::string image = f_.tap("imp.tap", {"10240:" + f_.tar("t.tar", "-z", f_.file("tree"))});
  IndexReport report = index(image);
  const std::string main_path = f_.file("main.db");
  catalog::CatalogConfig config;
  config.encryption = catalog::Encryption::kNone;
  {
    auto main = catalog::Catalog::create(main_path, config);
    ImportReport imported = import_into(main, catalog_path_, "OLD001");
    EXPECT_FALSE(imported.already);
    EXPECT_EQ(imported.prefix, "/imported/OLD001");
    auto big = main.resolve("/imported/OLD001/file1/a/big.bin");
    ASSERT_TRUE(big);
    EXPECT_EQ(to_hex(big->version.hash), hash_hex(read_file(f_.file("tree/a/big.bin"))));
    EXPECT_EQ(main.goal_for("/imported/OLD001/file1/a/big.bin"), 1);
    EXPECT_EQ(main.status().below_goal_versions, 0u);
    auto tape = main.tape_by_serial("OLD001");
    ASSERT_TRUE(tape);
    EXPECT_EQ(tape->foreign_id, report.fingerprint);
    // Again, under any serial: it is the same tape, nothing changes.
    EXPECT_TRUE(import_into(main, catalog_path_, "OTHER").already);
  }
  // Restored and verified through a library where the tape has its name.
  fs::create_directories(f_.file("lib"));
  fs::copy_file(image, f_.file("lib/OLD001.tap"));
  tape::ImageLibrary library(f_.file("lib"), 1, {}, {}, read_only_library());
  restore::RestoreOptions options;
  options.paths = {"/imported/OLD001/file1"};
  options.destination = f_.file("restored");
  SilentProgress progress;
  auto restored = restore::restore(main_path, library, {}, options, progress);
  EXPECT_TRUE(restored.failures.empty());
  EXPECT_EQ(ForeignFixture::diff(f_.file("tree"), f_.file("restored/imported/OLD001/file1")), "");
  auto main = catalog::Catalog::open(main_path);
  restore::VerifyOptions verify_options;
  auto verified = restore::verify(main, library, {}, verify_options, progress);
  EXPECT_TRUE(verified.ok()) << (verified.problems.empty() ? "" : verified.problems.front());
  EXPECT_GT(verified.files_ok, 4u);
}

TEST_F(ForeignTest, VerifyFindsAChangedByte) {
  f_.make_tree(f_.file("tree"), 10);
  const std::string tar = f_.tar("t.tar", "--format=gnu", f_.file("tree"));
  const std::string image = f_.tap("v.tap", {"10240:" + tar});
  index(image);
  // The same tape with one byte of big.bin changed: same first records
  // (the fingerprint), other data.
  std::string bytes = read_file(tar);
  const std::string big = read_file(f_.file("tree/a/big.bin"));
  const std::size_t at = bytes.find(big.substr(100000, 64));
  ASSERT_NE(at, std::string::npos);
  bytes[at] = static_cast<char>(bytes[at] ^ 1);
  write_file(f_.file("changed.tar"), bytes);
  fs::create_directories(f_.file("lib"));
  auto catalog = catalog::Catalog::open(catalog_path_);
  const std::string serial = catalog.tapes().front().serial;
  f_.tap("lib/" + serial + ".tap", {"10240:" + f_.file("changed.tar")});
  tape::ImageLibrary library(f_.file("lib"), 1, {}, {}, read_only_library());
  SilentProgress progress;
  auto report = restore::verify(catalog, library, {}, {}, progress);
  EXPECT_FALSE(report.ok());
  EXPECT_EQ(report.files_bad, 1u);
  ASSERT_FALSE(report.problems.empty());
  EXPECT_NE(report.problems.front().find("/file1/a/big.bin"), std::string::npos)
      << report.problems.front();
  EXPECT_NE(report.problems.front().find("hash mismatch"), std::string::npos)
      << report.problems.front();
}

}  // namespace
}  // namespace mixtape::foreign::testing
