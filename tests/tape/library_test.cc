// Libraries: a folder of images, a SCSI changer through mtx (with a fake
// robot behind the command-runner seam), and an operator with one drive.
#include <gtest/gtest.h>

#include <map>
#include <sstream>
#include <thread>

#include "engine/tape/emulated_changer.h"
#include "engine/tape/libraries.h"
#include "tests/tape/tape_test_util.h"

namespace mixtape::tape::testing {
namespace {

using namespace std::chrono_literals;

EmulatedCartridge labelled_cartridge(const std::string& serial) {
  EmulatedCartridge c;
  c.blocks = {{EmulatedBlock::Kind::kRecord, label_tar(serial)},
              {EmulatedBlock::Kind::kFilemark, {}}};
  return c;
}

// ------------------------------------------------------------ ImageLibrary

TEST(ImageLibrary, LabelsLoadsSwapsAndUnloadsThreeTapes) {
  TempDir dir;
  ImageLibrary library(dir.file("library"), 1, {8 << 20, 1 << 20});
  const std::vector<std::string> serials = {"L00001", "L00002", "L00003"};
  for (const std::string& serial : serials) {
    Drive& d = library.load(serial);  // blank tapes are made on demand
    EXPECT_EQ(read_label(d), std::nullopt);
    write_label(d, serial);
    put(d, "data of " + serial);
    d.write_filemarks(1);
    library.unload();
    EXPECT_EQ(library.loaded_serial(), std::nullopt);
  }
  EXPECT_EQ(library.serials(), serials);

  Drive& d = library.load("L00002");
  EXPECT_EQ(library.loaded_serial(), "L00002");
  EXPECT_TRUE(d.status().bot);
  EXPECT_EQ(read_label(d), "L00002");  // reads file 0 up to its filemark
  EXPECT_EQ(next(d), "data of L00002");
  // Swap: loading another tape unloads this one first.
  EXPECT_EQ(read_label(library.load("L00003")), "L00003");
  EXPECT_EQ(read_label(library.load("L00001")), "L00001");
  library.unload();
  EXPECT_FALSE(library.drive(0).status().loaded);

  // Counters survive every swap: 6 loads and unloads, 3 tapes written.
  DriveStats s = library.stats();
  EXPECT_EQ(s.loads, 6u);
  EXPECT_EQ(s.unloads, 6u);
  EXPECT_EQ(s.filemarks_written, 6u);
  EXPECT_EQ(s.records_written, 6u);  // one label record and one data record each
  EXPECT_GT(s.tape_seconds, 6 * (12.0 + 17.0));
}

TEST(ImageLibrary, MovesATapeBetweenDrivesAndRejectsBadSerials) {
  TempDir dir;
  ImageLibrary library(dir.path(), 2, {4 << 20, 0});
  EXPECT_EQ(library.drive_count(), 2u);
  put(library.load("A1", 0), "x");
  library.load("A1", 1);  // a cartridge is in one drive at a time
  EXPECT_EQ(library.loaded_serial(0), std::nullopt);
  EXPECT_EQ(library.loaded_serial(1), "A1");
  EXPECT_EQ(next(library.drive(1)), "x");
  library.load("A2", 0);
  EXPECT_EQ(library.serials(), (std::vector<std::string>{"A1", "A2"}));
  expect_tape_error(TapeErrorKind::kInvalidArgument, [&] { library.load("../etc/passwd"); });
  expect_tape_error(TapeErrorKind::kInvalidArgument, [&] { library.load(""); });
  expect_tape_error(TapeErrorKind::kInvalidArgument, [&] { library.drive(2); });
}

// ----------------------------------------------------------- mtx parsing

// mtx's Status(): "  Storage Changer %s:%d Drives, %d Slots ( %d Import/Export )",
// "Data Transfer Element %d:Full (Storage Element %d Loaded):VolumeTag = %s",
// "      Storage Element %d%s:%s" + ":VolumeTag=%s".
constexpr char kTwoDrives[] =
    "  Storage Changer /dev/sg3:2 Drives, 24 Slots ( 4 Import/Export )\n"
    "Data Transfer Element 0:Full (Storage Element 1 Loaded):VolumeTag = L00001L6\n"
    "Data Transfer Element 1:Empty\n"
    "      Storage Element 1:Empty\n"
    "      Storage Element 2:Full :VolumeTag=L00002L6\n"
    "      Storage Element 3:Full :VolumeTag=L00003L6\n"
    "      Storage Element 4:Empty\n"
    "      Storage Element 21 IMPORT/EXPORT:Full :VolumeTag=CLN001CU\n"
    "      Storage Element 24 IMPORT/EXPORT:Empty\n";

TEST(MtxStatus, ParsesDrivesSlotsAndBarcodes) {
  MtxStatus s = parse_mtx_status(kTwoDrives);
  EXPECT_EQ(s.drive_count, 2);
  EXPECT_EQ(s.slot_count, 24);
  EXPECT_EQ(s.import_export_count, 4);
  ASSERT_EQ(s.drives.size(), 2u);
  EXPECT_TRUE(s.drives[0].full);
  EXPECT_EQ(s.drives[0].source_slot, 1);
  EXPECT_EQ(s.drives[0].volume_tag, "L00001L6");
  EXPECT_FALSE(s.drives[1].full);
  ASSERT_EQ(s.slots.size(), 6u);
  EXPECT_FALSE(s.slots[0].full);
  EXPECT_EQ(s.slots[1].number, 2);
  EXPECT_EQ(s.slots[1].volume_tag, "L00002L6");
  EXPECT_TRUE(s.slots[4].import_export);
  EXPECT_EQ(s.slots[4].number, 21);
  EXPECT_EQ(s.slots[4].volume_tag, "CLN001CU");
  EXPECT_FALSE(s.slots[5].full);
}

TEST(MtxStatus, ParsesLibraryWithoutBarcodeReaderAndAlternateTags) {
  MtxStatus s = parse_mtx_status(
      "  Storage Changer /dev/sg6:4 Drives, 121 Slots ( 1 Import/Export )\n"
      "Data Transfer Element 0:Full (Storage Element 3 Loaded)\n"
      "Data Transfer Element 1:Full (Unknown Storage Element Loaded):VolumeTag = "
      "ABC123L5:AlternateVolumeTag = XYZ\n"
      "Data Transfer Element 2:Empty\n"
      "Data Transfer Element 3:Empty\n"
      "      Storage Element 1:Full \n"
      "      Storage Element 2:Full :VolumeTag=SDE122S                         \n"
      "      Storage Element 121 IMPORT/EXPORT:Full :VolumeTag=SDE120S\n");
  ASSERT_EQ(s.drives.size(), 4u);
  EXPECT_EQ(s.drives[0].source_slot, 3);
  EXPECT_EQ(s.drives[0].volume_tag, "");
  EXPECT_EQ(s.drives[1].source_slot, std::nullopt);
  EXPECT_EQ(s.drives[1].volume_tag, "ABC123L5");
  ASSERT_EQ(s.slots.size(), 3u);
  EXPECT_TRUE(s.slots[0].full);
  EXPECT_EQ(s.slots[0].volume_tag, "");
  EXPECT_EQ(s.slots[1].volume_tag, "SDE122S");
  EXPECT_TRUE(s.slots[2].import_export);
  EXPECT_EQ(s.slots[2].number, 121);
}

TEST(MtxStatus, RejectsOtherOutput) {
  expect_tape_error(TapeErrorKind::kDeviceError,
                    [] { parse_mtx_status("mtx: Request Sense: Long Report=yes\n"); });
}

TEST(MtxStatus, BarcodesNameSerials) {
  EXPECT_TRUE(volume_tag_matches("L00042L6", "L00042"));
  EXPECT_TRUE(volume_tag_matches("L00042", "L00042"));
  EXPECT_FALSE(volume_tag_matches("L00042L6", "L0004"));
  EXPECT_FALSE(volume_tag_matches("L00043L6", "L00042"));
  EXPECT_FALSE(volume_tag_matches("", ""));
}

// ------------------------------------------------------------- MtxChanger

// The emulated robot (engine/tape/emulated_changer.h) with tapes L00001..3
// in slots 1..3 of six (the last is the mail slot).
// Its drives are /dev/nst0 and /dev/nst1; changer() gives an MtxChanger
// over the devices listed, in that order.
class MtxChangerTest : public ::testing::Test {
 protected:
  MtxChangerTest() {
    for (int i = 1; i <= 3; ++i) {
      const std::string serial = "L0000" + std::to_string(i);
      robot_.put(static_cast<std::size_t>(i), serial + "L6", labelled_cartridge(serial));
    }
  }

  MtxChanger changer(const std::vector<EmulatedStDevice*>& devices,
                     SerialReader read_serial = read_label) {
    std::vector<std::unique_ptr<Drive>> drives;
    for (EmulatedStDevice* device : devices) {
      drives.push_back(
          std::make_unique<StDrive>(device == &nst0_ ? "/dev/nst0" : "/dev/nst1", *device));
    }
    return MtxChanger("/dev/sg3", std::move(drives), robot_.runner(), std::move(read_serial));
  }

  EmulatedStDevice nst0_{"/dev/nst0"}, nst1_{"/dev/nst1"};
  EmulatedChanger robot_{"/dev/sg3", {&nst0_, &nst1_}, 6};
};

TEST_F(MtxChangerTest, LoadsSwapsAndUnloadsWithMtx) {
  MtxChanger changer = this->changer({&nst0_, &nst1_}, {});

  EXPECT_EQ(changer.serials(), (std::vector<std::string>{"L00001", "L00002", "L00003"}));
  robot_.clear_calls();

  Drive& d0 = changer.load("L00002", 0);
  EXPECT_EQ(robot_.calls(),
            (std::vector<std::string>{"mtx -f /dev/sg3 status", "mtx -f /dev/sg3 load 2 0"}));
  EXPECT_EQ(read_label(d0), "L00002");
  EXPECT_EQ(changer.loaded_serial(0), "L00002");

  robot_.clear_calls();
  EXPECT_EQ(read_label(changer.load("L00003", 0)), "L00003");
  EXPECT_EQ(robot_.calls(),
            (std::vector<std::string>{"mtx -f /dev/sg3 status", "mtx -f /dev/sg3 unload 2 0",
                                      "mtx -f /dev/sg3 status", "mtx -f /dev/sg3 load 3 0"}));

  robot_.clear_calls();
  EXPECT_EQ(read_label(changer.load("L00003", 1)), "L00003");  // moves between drives
  EXPECT_EQ(robot_.calls(),
            (std::vector<std::string>{"mtx -f /dev/sg3 status", "mtx -f /dev/sg3 unload 3 0",
                                      "mtx -f /dev/sg3 status", "mtx -f /dev/sg3 load 3 1"}));

  robot_.clear_calls();
  changer.unload(1);
  EXPECT_EQ(robot_.calls(),
            (std::vector<std::string>{"mtx -f /dev/sg3 status", "mtx -f /dev/sg3 unload 3 1"}));
  EXPECT_EQ(changer.loaded_serial(1), std::nullopt);

  expect_tape_error(TapeErrorKind::kNotLoaded, [&] { changer.load("L00009", 0); });
  DriveStats s = changer.stats();
  EXPECT_EQ(s.loads, 3u);
  EXPECT_EQ(s.unloads, 3u);
}

TEST_F(MtxChangerTest, RefusesADeviceThatHoldsAnotherTapeThanTheRobotLoaded) {
  // An earlier run left L00002 in the changer's drive 1 (/dev/nst1).
  ASSERT_EQ(robot_({"mtx", "-f", "/dev/sg3", "load", "2", "1"}).exit_status, 0);
  // The devices listed in another order than the changer's drives.
  MtxChanger changer = this->changer({&nst1_, &nst0_});
  expect_tape_error_saying(TapeErrorKind::kDeviceError,
                           "/dev/nst1 holds tape L00002, but /dev/sg3 loaded tape L00001 into its "
                           "drive 0",
                           [&] { changer.load("L00001", 0); });
  EXPECT_EQ(changer.loaded_serial(0), std::nullopt);
  EXPECT_EQ(nst1_.cartridge()->blocks.size(), 2u) << "L00002 untouched";
}

// Fewer devices than the changer has drives (allowed: the rest go unused),
// and the tape wanted sits in one of those: nothing can tell that drive to
// eject it. A clear error naming it, not a read past the devices given.
TEST_F(MtxChangerTest, ATapeInADriveWithNoDeviceGivenIsAClearError) {
  ASSERT_EQ(robot_({"mtx", "-f", "/dev/sg3", "load", "2", "1"}).exit_status, 0);
  MtxChanger changer = this->changer({&nst0_});
  expect_tape_error_saying(TapeErrorKind::kInvalidArgument,
                           "tape L00002 is in drive 1 of /dev/sg3, whose device was not given "
                           "(--device names 1)",
                           [&] { changer.load("L00002", 0); });
  EXPECT_TRUE(nst1_.loaded()) << "L00002 stays where it was";
  // Tapes in slots still load into the drive it has.
  EXPECT_EQ(read_label(changer.load("L00003", 0)), "L00003");
}

TEST_F(MtxChangerTest, ChecksTheLabelOfEveryTapeItLoads) {
  MtxChanger changer = this->changer({&nst0_, &nst1_});
  EXPECT_EQ(read_label(changer.load("L00001", 0)), "L00001");
  EXPECT_EQ(read_label(changer.load("L00002", 1)), "L00002");
  EXPECT_EQ(read_label(changer.load("L00001", 0)), "L00001");  // already there
  EXPECT_EQ(changer.loaded_serial(1), "L00002");
}

TEST(MtxChanger, FailingMtxIsADeviceErrorWithItsOutput) {
  EmulatedStDevice nst0("/dev/nst0");
  std::vector<std::unique_ptr<Drive>> drives;
  drives.push_back(std::make_unique<StDrive>("/dev/nst0", nst0));
  MtxChanger changer("/dev/sg3", std::move(drives), [](const std::vector<std::string>&) {
    return CommandResult{1, "/dev/sg3: No such file or directory\n"};
  });
  auto e = expect_tape_error(TapeErrorKind::kDeviceError, [&] { changer.status(); });
  ASSERT_TRUE(e);
  EXPECT_NE(std::string(e->what()).find("mtx -f /dev/sg3 status failed"), std::string::npos);
  EXPECT_NE(std::string(e->what()).find("No such file"), std::string::npos);
}

TEST(RunCommand, CapturesOutputAndExitStatus) {
  CommandResult r = run_command({"sh", "-c", "echo out; echo err >&2; exit 3"});
  EXPECT_EQ(r.exit_status, 3);
  EXPECT_EQ(r.output, "out\nerr\n");
  EXPECT_EQ(run_command({"/nonexistent/mtx"}).exit_status, 127);
}

// ---------------------------------------------------------- ManualChanger

TEST(ManualChanger, PromptsAndWaitsUntilTheRightTapeIsInserted) {
  EmulatedStDevice device;
  StDrive drive("/dev/nst0", device);
  std::ostringstream prompt;  // written by this thread only
  ManualChanger changer(drive, prompt, read_label, {10ms, 300s});

  // The operator first inserts the wrong tape once the changer waits for
  // one (it asked), takes it out once the drive has ejected it, then
  // inserts the right one.
  const pid_t changer_thread = test_support::this_thread_id();
  std::thread operator_thread([&device, changer_thread] {
    test_support::poll_until([&] { return test_support::thread_asleep(changer_thread); });
    device.insert(labelled_cartridge("L00007"));
    test_support::poll_until([&] { return !device.loaded(); });
    device.remove();
    device.insert(labelled_cartridge("L00042"));
  });
  Drive& d = changer.load("L00042");
  operator_thread.join();

  EXPECT_EQ(changer.loaded_serial(), "L00042");
  EXPECT_TRUE(d.status().bot);
  EXPECT_EQ(read_label(d), "L00042");
  const std::string said = prompt.str();
  EXPECT_NE(said.find("please insert tape L00042 into /dev/nst0"), std::string::npos) << said;
  EXPECT_NE(said.find("holds tape L00007, not L00042"), std::string::npos) << said;
  changer.unload();
  EXPECT_NE(prompt.str().find("tape L00042 can be taken out"), std::string::npos);
  EXPECT_FALSE(device.loaded());
}

// The drive's waits on a clock that moves when slept on.
StDriveOptions instant_waits(std::chrono::steady_clock::time_point& now) {
  StDriveOptions options;
  options.now = [&now] { return now; };
  options.sleep = [&now](std::chrono::steady_clock::duration d) { now += d; };
  return options;
}

TEST(ManualChanger, WaitsForATapeTheDriveIsStillCalibrating) {
  // A new LTO-9 cartridge answers NOT READY for up to two hours; the
  // operator's timeout is about inserting it, not about the drive.
  EmulatedStDevice device;
  device.insert(labelled_cartridge("L00042"), /*not_ready_looks=*/300);
  std::chrono::steady_clock::time_point now{};
  StDrive drive("/dev/nst0", device, instant_waits(now));
  std::ostringstream prompt;
  ManualChanger changer(drive, prompt, read_label, {10ms, 5s});
  changer.load("L00042");
  EXPECT_EQ(changer.loaded_serial(), "L00042");
  EXPECT_TRUE(device.loaded());
  EXPECT_EQ(prompt.str().find("ejecting"), std::string::npos) << prompt.str();
  EXPECT_GE(now.time_since_epoch(), 45min);  // the drive's clock: 300 looks, 10 s apart
}

TEST(SingleDriveLibrary, WaitsForATapeTheDriveIsStillLoading) {
  // `--device /dev/nst0` right after the cartridge went in.
  EmulatedStDevice device;
  device.insert(labelled_cartridge("L00042"), /*not_ready_looks=*/20);
  std::chrono::steady_clock::time_point now{};
  SingleDriveLibrary library(std::make_unique<StDrive>("/dev/nst0", device, instant_waits(now)),
                             read_label);
  EXPECT_EQ(library.serials(), std::vector<std::string>{"L00042"});
  EXPECT_EQ(&library.load("L00042"), &library.drive(0));
  EXPECT_GT(now.time_since_epoch(), 0s);
}

TEST(ManualChanger, NeverEjectsATapeWhoseLabelCannotBeRead) {
  EmulatedStDevice device;
  EmulatedCartridge unreadable;
  unreadable.blocks = {{EmulatedBlock::Kind::kProtected, label_tar("L00042")},
                       {EmulatedBlock::Kind::kFilemark, {}}};
  device.insert(unreadable);
  StDrive drive("/dev/nst0", device);
  std::ostringstream prompt;
  ManualChanger changer(drive, prompt, read_label, {10ms, 5s});
  expect_tape_error(TapeErrorKind::kMediaError, [&] { changer.load("L00042"); });
  EXPECT_TRUE(device.loaded()) << "it may well be the right tape";
  EXPECT_EQ(prompt.str().find("ejecting"), std::string::npos) << prompt.str();
}

TEST(ManualChanger, TapeAlreadyInTheDriveNeedsNoPrompt) {
  EmulatedStDevice device;
  device.insert(labelled_cartridge("L00042"));
  StDrive drive("/dev/nst0", device);
  std::ostringstream prompt;
  ManualChanger changer(drive, prompt, read_label, {10ms, 1s});
  changer.load("L00042");
  EXPECT_EQ(prompt.str(), "");
  EXPECT_EQ(changer.serials(), std::vector<std::string>{"L00042"});
}

TEST(ManualChanger, GivesUpAfterTheTimeout) {
  EmulatedStDevice device;
  StDrive drive("/dev/nst0", device);
  std::ostringstream prompt;
  ManualChanger changer(drive, prompt, read_label, {10ms, 100ms});
  auto start = std::chrono::steady_clock::now();
  expect_tape_error(TapeErrorKind::kTimeout, [&] { changer.load("L00042"); });
  EXPECT_GE(std::chrono::steady_clock::now() - start, 100ms);
  EXPECT_NE(prompt.str().find("please insert tape L00042"), std::string::npos);
}

}  // namespace
}  // namespace mixtape::tape::testing
