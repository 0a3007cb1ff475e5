// `mixtape ... --changer DEV --device D0,D1`: the command line's changer
// path, as an operator runs it, with `mtx` found on PATH. The mtx here is a
// script written by the test that speaks mtx's command line and status
// format and moves SIMH images between slots and drives: drive N's device is
// a symbolic link to the image of the cartridge it holds (to a blank image
// of its own when empty), so the built binary opens image drives that a
// robot loads. Backup, restore, verify and recover go through it; so do the
// robot's moves (one drive for two copies), devices given out of the
// changer's order, and a tape left in a drive whose device was not given.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include "engine/tape/image_drive.h"
#include "tests/backup/backup_test_util.h"

namespace mixtape::backup::testing {
namespace {

namespace fs = std::filesystem;

constexpr char kChanger[] = "/dev/sg7";
constexpr int kDrives = 2;
constexpr int kSlots = 5;  // the last is the import/export slot

// Replaces every `from` in `text` by `to`.
std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (std::size_t at = 0; (at = text.find(from, at)) != std::string::npos; at += to.size())
    text.replace(at, from.size(), to);
  return text;
}

// The script: state in files under STATE, one per element holding its
// volume tag (empty: the element is), the calls made appended to
// STATE/calls.
std::string mtx_script(const std::string& state) {
  std::string script = R"mtx(#!/bin/bash
set -u
S=STATE
echo "$*" >> "$S/calls"
if [ "${1:-}" != -f ] || [ "${2:-}" != DEVICE ]; then echo "mtx: cannot open ${2:-}" >&2; exit 1; fi
tag() { cat "$S/$1" 2>/dev/null; }
point() { ln -sfn "$2" "$S/drive$1.tap"; ln -sfn "$2.meta" "$S/drive$1.tap.meta"; }
case "${3:-}" in
status)
  echo "  Storage Changer DEVICE:DRIVES Drives, SLOTS Slots ( 1 Import/Export )"
  for ((d = 0; d < DRIVES; d++)); do
    t=$(tag drive$d)
    if [ -z "$t" ]; then echo "Data Transfer Element $d:Empty"
    else echo "Data Transfer Element $d:Full (Storage Element $(tag source$d) Loaded):VolumeTag = $t"; fi
  done
  for ((s = 1; s <= SLOTS; s++)); do
    t=$(tag slot$s); io=""; [ $s -eq SLOTS ] && io=" IMPORT/EXPORT"
    if [ -z "$t" ]; then echo "      Storage Element $s$io:Empty"
    else echo "      Storage Element $s$io:Full :VolumeTag=$t"; fi
  done ;;
load)
  s=$4 d=$5 t=$(tag slot$4)
  if [ -z "$t" ] || [ -n "$(tag drive$d)" ]; then echo "mtx: cannot load slot $s into drive $d" >&2; exit 1; fi
  : > "$S/slot$s"; echo "$t" > "$S/drive$d"; echo "$s" > "$S/source$d"
  point $d "$S/tapes/$t.tap"
  echo "Loading media from Storage Element $s into drive $d...done" ;;
unload)
  s=$4 d=$5 t=$(tag drive$5)
  if [ -z "$t" ] || [ -n "$(tag slot$s)" ]; then echo "mtx: cannot unload drive $d into slot $s" >&2; exit 1; fi
  echo "$t" > "$S/slot$s"; : > "$S/drive$d"
  point $d "$S/empty$d.tap"
  echo "Unloading drive $d into Storage Element $s...done" ;;
*) echo "mtx: unknown command ${3:-}" >&2; exit 1 ;;
esac
)mtx";
  script = replace_all(script, "STATE", test_support::shell_quote(state));
  script = replace_all(script, "DEVICE", kChanger);
  script = replace_all(script, "DRIVES", std::to_string(kDrives));
  return replace_all(script, "SLOTS", std::to_string(kSlots));
}

class ChangerCliTest : public ::testing::Test {
 protected:
  ChangerCliTest() {
    fs::create_directories(state() + "/tapes");
    fs::create_directories(dir_.file("bin"));
    write_file(dir_.file("bin/mtx"), mtx_script(state()));
    fs::permissions(dir_.file("bin/mtx"), fs::perms::owner_all);
    for (int d = 0; d < kDrives; ++d) {
      const std::string empty = state() + "/empty" + std::to_string(d) + ".tap";
      tape::ImageDrive::create(empty, {kCapacity, 0});
      fs::create_symlink(empty, drive(d));
      fs::create_symlink(empty + ".meta", drive(d) + ".meta");
      write_file(state() + "/drive" + std::to_string(d), "");
    }
    for (int s = 1; s <= kSlots; ++s) write_file(state() + "/slot" + std::to_string(s), "");
    for (int s = 1; s <= 3; ++s) {
      const std::string tag = "L0000" + std::to_string(s) + "L6";
      tape::ImageDrive::create(cartridge(tag), {kCapacity, 0});
      write_file(state() + "/slot" + std::to_string(s), tag + "\n");
    }
    write_file(src_ + "/big.bin", random_text(3'000'000, 1));
    for (int i = 0; i < 20; ++i)
      write_file(src_ + "/d" + std::to_string(i % 3) + "/f" + std::to_string(i),
                 random_text(1000 + i * 7919, 10 + i));
  }

  static constexpr std::uint64_t kCapacity = 64 << 20;
  std::string state() const { return dir_.file("changer"); }
  std::string drive(int d) const { return state() + "/drive" + std::to_string(d) + ".tap"; }
  std::string cartridge(const std::string& tag) const { return state() + "/tapes/" + tag + ".tap"; }
  std::string changer(const std::string& devices) const {
    return " --changer " + std::string(kChanger) + " --device " + devices;
  }
  std::string both() const { return changer(drive(0) + "," + drive(1)); }
  std::string calls() const { return read_file(state() + "/calls"); }

  // The built binary with the test's mtx first on PATH.
  CommandResult mixtape(const std::string& args) {
    return run_shell(
        "cd " + shell_quote(dir_.path()) + " && PATH=" + shell_quote(dir_.file("bin")) +
        ":\"$PATH\" HOME=" + shell_quote(dir_.file("home")) +
        " MIXTAPE_CATALOG=" + shell_quote(dir_.file("catalog.db")) + " " + kMixtape + " " + args);
  }
  std::string listing() {
    CommandResult r = mixtape("ls -R --versions --replicas");
    EXPECT_EQ(r.status, 0) << r.err;
    return r.out;
  }
  // Restores the source into `to` through the changer; what diff -r finds.
  std::string restore_differences(const std::string& to, const std::string& devices) {
    CommandResult r =
        mixtape("restore " + shell_quote(src_) + " --to " + shell_quote(dir_.file(to)) + devices);
    if (r.status != 0) return "restore failed: " + r.err;
    CommandResult d = run_shell("diff -r --no-dereference " + shell_quote(src_) + " " +
                                shell_quote(dir_.file(to) + src_));
    return d.status == 0 ? "" : d.out + d.err;
  }
  // The serial in a cartridge's label (file 0's MIXTAPE file).
  std::string label_of(const std::string& tag) {
    const auto files = tape_files(cartridge(tag));
    if (files.empty()) return "";
    write_file(dir_.file("label.tar"), files[0]);
    CommandResult r =
        run_shell("tar -xOf " + shell_quote(dir_.file("label.tar")) + " MIXTAPE | grep '^serial:'");
    return r.out;
  }
  void back_up(const std::string& devices) {
    CommandResult r = mixtape("init --copies 2");
    ASSERT_EQ(r.status, 0) << r.err;
    r = mixtape("backup " + shell_quote(src_) + devices);
    ASSERT_EQ(r.status, 0) << r.err << r.out;
  }

  TempDir dir_;
  std::string src_ = dir_.file("src");
};

TEST_F(ChangerCliTest, TwoDrivesBackUpRestoreVerifyAndRecover) {
  back_up(both());
  EXPECT_NE(calls().find("-f /dev/sg7 status"), std::string::npos) << calls();
  EXPECT_NE(calls().find("-f /dev/sg7 load 1 "), std::string::npos) << calls();
  EXPECT_NE(calls().find("-f /dev/sg7 load 2 "), std::string::npos) << calls();
  EXPECT_EQ(label_of("L00001L6"), "serial: L00001\n");
  EXPECT_EQ(label_of("L00002L6"), "serial: L00002\n");
  EXPECT_EQ(label_of("L00003L6"), "") << "a third tape was written";

  EXPECT_EQ(restore_differences("out", both()), "");
  CommandResult r = mixtape("verify" + both());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("verified 2 tapes"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" 0 bad\n"), std::string::npos) << r.out;

  const std::string before = listing();
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(dir_.file("catalog.db") + suffix);
  r = mixtape("recover" + both());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(listing(), before);
  EXPECT_EQ(restore_differences("recovered", both()), "");
}

// One drive for two copies: the robot unloads the first tape to its slot and
// loads the second into the same drive, during the backup and again for
// every tape verify reads.
TEST_F(ChangerCliTest, OneDriveTheRobotSwapsTheTapes) {
  const std::string one = changer(drive(0));
  back_up(one);
  EXPECT_NE(calls().find("-f /dev/sg7 unload 1 0"), std::string::npos) << calls();
  EXPECT_NE(calls().find("-f /dev/sg7 load 2 0"), std::string::npos) << calls();
  EXPECT_EQ(label_of("L00001L6"), "serial: L00001\n");
  EXPECT_EQ(label_of("L00002L6"), "serial: L00002\n");
  CommandResult r = mixtape("verify" + one);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("verified 2 tapes"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" 0 bad\n"), std::string::npos) << r.out;
  EXPECT_EQ(restore_differences("out", one), "");
}

// Devices listed in another order than the changer's drives: the label
// read after each load says so, and nothing is written on the wrong tape.
TEST_F(ChangerCliTest, DevicesOutOfTheChangersOrderAreRefused) {
  back_up(both());
  const std::string swapped = changer(drive(1) + "," + drive(0));
  CommandResult r = mixtape("verify" + swapped);
  EXPECT_NE(r.status, 0) << r.out;
  EXPECT_NE(r.err.find("list the drives' devices in the changer's drive order"), std::string::npos)
      << r.err;
}

// A tape sits in a drive whose device this run was not given (the run
// before used both drives): the drive cannot be told to eject it, and the
// run says so, naming the drive and what to do (it crashed, reading past
// the devices it had).
TEST_F(ChangerCliTest, ATapeInADriveWhoseDeviceWasNotGivenIsAClearError) {
  back_up(both());
  CommandResult r = mixtape("verify --serial L00002" + changer(drive(0)));
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("mixtape: verify: tape L00002: tape L00002 is in drive 1 of /dev/sg7, "
                       "whose device was not given (--device names 1): give every drive's "
                       "device, in the changer's drive order"),
            std::string::npos)
      << r.err;
}

}  // namespace
}  // namespace mixtape::backup::testing
