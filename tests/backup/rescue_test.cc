// A tape found in 2040: file 0 alone brings the tape back. Labelled by the
// built mixtape (which puts mixtape-static and the sources of everything
// linked into it in file 0), written, then file 0 is unpacked with GNU tar
// into an empty directory, and the program found there recovers the
// catalog and restores the files in a chroot holding nothing else (only
// /dev/null bound in), with the tape image and the key copied in.
#include <gtest/gtest.h>

#include <filesystem>

#include "tests/support/test_support.h"

namespace mixtape::test_support {
namespace {

namespace fs = std::filesystem;

constexpr char kMixtape[] = MIXTAPE_BINARY_DIR "/cli/mixtape";

class RescueTest : public ::testing::Test {
 protected:
  // The built mixtape, with its default file 0 (no stand-in program).
  CommandResult mixtape(const std::string& args) {
    return run_shell("cd " + shell_quote(dir_.path()) +
                     " && env -u MIXTAPE_ARCHAEOLOGY_BINARY HOME=" + shell_quote(dir_ / "home") +
                     " MIXTAPE_CATALOG=" + shell_quote(dir_ / "catalog.db") + " " + kMixtape + " " +
                     args);
  }
  std::string sh_ok(const std::string& command) {
    CommandResult r = run_shell("cd " + shell_quote(dir_.path()) + " && " + command);
    EXPECT_EQ(r.status, 0) << command << "\n" << r.err;
    return r.out;
  }

  TempDir dir_;
};

TEST_F(RescueTest, FileZeroAloneRestoresTheTapeInAnEmptyChroot) {
  write_file(dir_ / "src/photos/a.raw", random_text(400000, 1));
  write_file(dir_ / "src/photos/b.txt", "the second file\n");
  write_file(dir_ / "src/deep/er/c.bin", random_text(3000, 2));
  ASSERT_EQ(mixtape("init").status, 0);
  CommandResult r = mixtape("label --serial R00001 --library lib --new-library --capacity 1G");
  ASSERT_EQ(r.status, 0) << r.err;
  r = mixtape("backup src --library lib --copies 1");
  ASSERT_EQ(r.status, 0) << r.err;

  // File 0, as `dd` would read it from the tape: GNU tar unpacks it without
  // a word on stderr.
  sh_ok("mkdir root && " + std::string(kMixtape) +
        " tape cat --device lib/R00001.tap --file 0 > file0.tar");
  CommandResult untar =
      run_shell("cd " + shell_quote(dir_.path()) + " && tar -xf file0.tar -C root");
  ASSERT_EQ(untar.status, 0) << untar.err;
  EXPECT_EQ(untar.err, "");
  const std::uint64_t file0_bytes = fs::file_size(dir_ / "file0.tar");
  RecordProperty("file0_bytes", std::to_string(file0_bytes));
  std::printf("file 0: %llu bytes\n", static_cast<unsigned long long>(file0_bytes));

  // The program is the static one, and the sources of all it links are beside it.
  std::string program;
  for (const auto& e : fs::directory_iterator(dir_ / "root/bin")) program = e.path().filename();
  ASSERT_TRUE(program.starts_with("mixtape-" MIXTAPE_VERSION "-")) << program;
  EXPECT_EQ(sh_ok("readelf -l root/bin/" + program + " | grep -c INTERP || true"), "0\n");
  const std::string sources = read_file(dir_ / "root/source/SOURCES.txt");
  for (const char* library : {"SQLite", "libsodium", "OpenSSL libcrypto", "libarchive", "zstd",
                              "C library", "C++ runtime"})
    EXPECT_NE(sources.find(library), std::string::npos) << library;
  for (const char* package :
       {"sqlite3_", "libsodium_", "openssl_", "libarchive_", "glibc_", "gcc-12_"}) {
    bool found = false;
    for (const auto& e : fs::directory_iterator(dir_ / "root/source"))
      found = found ||
              (e.path().filename().string().starts_with(package) && e.path().extension() == ".dsc");
    EXPECT_TRUE(found) << package << " .dsc in source/";
  }

  // Nothing else in the chroot but what a stranger copies in.
  sh_ok(
      "mkdir root/dev root/work root/tmp && : > root/dev/null && cp lib/R00001.tap root/work/ "
      "&& cp home/.config/mixtape/identity.txt root/work/");
  const std::string bin = "/bin/" + program;
  const std::string in_chroot =
      "unshare -m sh -c 'mount --bind /dev/null root/dev/null && "
      "chroot root " +
      bin +
      " recover --device /work/R00001.tap --catalog /work/catalog.db "
      "-i /work/identity.txt && "
      "chroot root " +
      bin +
      " ls --catalog /work/catalog.db -R / && "
      "chroot root " +
      bin +
      " restore --catalog /work/catalog.db --device /work/R00001.tap "
      "-i /work/identity.txt --to /work/out " +
      dir_.path() + "/src'";
  CommandResult drill =
      run_shell("cd " + shell_quote(dir_.path()) + " && env -i TMPDIR=/tmp " + in_chroot);
  ASSERT_EQ(drill.status, 0) << drill.out << drill.err;
  EXPECT_NE(drill.out.find("a.raw"), std::string::npos) << drill.out;
  EXPECT_EQ(sh_ok("diff -r src root/work/out" + dir_.path() + "/src && echo same"), "same\n");
}

}  // namespace
}  // namespace mixtape::test_support
