// mixtape end to end through StDrive, over an emulated st driver as strict
// as a real drive (an IBM LTO drive's 8 MiB maximum block length, st's
// default asynchronous writes) behind an emulated mtx changer: backup,
// restore, verify and recover; the label checks (blank only where the drive
// confirms end of data at block 0, the first-contact self-test, the tape's
// identity); devices listed out of the changer's order; a reset while
// writing (issue 14).
#include <gtest/gtest.h>
#include <sys/mtio.h>

#include <filesystem>
#include <map>

#include "engine/backup/backup.h"
#include "engine/recover/recover.h"
#include "engine/restore/restore.h"
#include "engine/tape/emulated_changer.h"
#include "engine/tape/emulated_st_device.h"
#include "engine/tape/libraries.h"
#include "engine/tape/st_drive.h"
#include "tests/backup/backup_test_util.h"
#include "tests/tape/tape_test_util.h"

namespace mixtape::backup::testing {
namespace {

using catalog::Catalog;
using tape::EmulatedBlock;
using tape::EmulatedCartridge;
using tape::EmulatedChanger;
using tape::EmulatedStDevice;
using tape::StDrive;
using tape::TapeError;
using tape::TapeErrorKind;
using tape::testing::expect_tape_error;

constexpr std::uint64_t kCapacity = 64 << 20;

EmulatedCartridge blank() {
  EmulatedCartridge c;
  c.capacity = kCapacity;
  c.early_warning = 2 << 20;
  return c;
}

class StLibraryTest : public ::testing::Test {
 protected:
  StLibraryTest()
      : identity_(crypto::X25519Identity::generate()),
        nst0_("/dev/nst0"),
        nst1_("/dev/nst1"),
        robot_("/dev/sg3", {&nst0_, &nst1_}, 6) {
    catalog_.emplace(
        Catalog::create(dir_.file("catalog.db"), two_copy_config(identity_, 256 << 10)));
    options_ = small_label_options(dir_, src_, kCapacity, 1 << 20);
    std::filesystem::create_directories(src_);
    for (std::size_t slot = 1; slot <= 4; ++slot)
      robot_.put(slot, "L0000" + std::to_string(slot) + "L6", blank());
    keys_.identities.push_back(identity_);
  }

  // The changer as `mixtape --changer /dev/sg3 --device ...` opens it: its
  // drives' devices in the order given, every load checking the label.
  std::unique_ptr<tape::MtxChanger> library(bool swapped = false) {
    std::vector<std::unique_ptr<tape::Drive>> drives;
    EmulatedStDevice* order[2] = {&nst0_, &nst1_};
    if (swapped) std::swap(order[0], order[1]);
    for (EmulatedStDevice* device : order) {
      tape::StDriveOptions options;
      options.notice = [this](const std::string& line) { notices_.push_back(line); };
      drives.push_back(std::make_unique<StDrive>(device->path(), *device, options));
    }
    return std::make_unique<tape::MtxChanger>("/dev/sg3", std::move(drives), robot_.runner(),
                                              format::label_serial_reader());
  }

  // Keeps the warnings a run gives.
  class Warnings final : public Progress {
   public:
    explicit Warnings(std::vector<std::string>& out) : out_(out) {}
    void warning(const std::string& message) override { out_.push_back(message); }

   private:
    std::vector<std::string>& out_;
  };

  BackupReport run(tape::Library& library) {
    Warnings warnings(warnings_);
    return backup(*catalog_, library, options_, {}, warnings);
  }

  bool warned(std::string_view text) const {
    for (const auto& w : warnings_)
      if (w.find(text) != std::string::npos) return true;
    return false;
  }

  void make_files(int count, int first, std::size_t size) {
    for (int i = first; i < first + count; ++i)
      write_file(src_ + "/f" + std::to_string(i), random_text(size + i * 997, i));
  }

  catalog::TapeRow tape(const std::string& serial) { return *catalog_->tape_by_serial(serial); }

  // A first run onto L00001 and L00002, which stay in the drives, and new
  // files for the next run; what the tapes hold then is kept, for
  // expect_nothing_written().
  void back_up_onto_both_tapes_then_add_files() {
    make_files(6, 0, 50000);
    {
      auto changer = library();
      ASSERT_EQ(run(*changer).tapes, (std::vector<std::string>{"L00001", "L00002"}));
    }
    blocks_before_[0] = nst0_.cartridge()->blocks.size();
    blocks_before_[1] = nst1_.cartridge()->blocks.size();
    make_files(6, 100, 50000);
  }

  void expect_nothing_written() const {
    EXPECT_EQ(nst0_.cartridge()->blocks.size(), blocks_before_[0]);
    EXPECT_EQ(nst1_.cartridge()->blocks.size(), blocks_before_[1]);
  }

  TempDir dir_;
  crypto::X25519Identity identity_;
  crypto::AgeDecryptKeys keys_;
  std::optional<Catalog> catalog_;
  std::string src_ = dir_.file("src");
  BackupOptions options_;
  EmulatedStDevice nst0_, nst1_;
  EmulatedChanger robot_;
  std::vector<std::string> notices_;
  std::vector<std::string> warnings_;
  std::size_t blocks_before_[2] = {};
};

TEST_F(StLibraryTest, BackupRestoreVerifyAndRecoverThroughStDrive) {
  make_files(12, 0, 150000);
  write_file(src_ + "/big", random_text(3 << 20, 99));
  BackupReport report;
  {
    auto changer = library();
    report = run(*changer);
    // Labels were read before the record size was known: with a buffer any
    // record fits, which this drive refused until StDrive read less.
    for (std::size_t d = 0; d < 2; ++d)
      EXPECT_EQ(static_cast<StDrive&>(changer->drive(d)).read_limit(), 0x800000u);
  }
  EXPECT_EQ(report.failures(), 0u);
  EXPECT_TRUE(report.failed_drives.empty());
  EXPECT_EQ(report.below_goal, 0u);
  EXPECT_EQ(report.copies, 26u);
  EXPECT_EQ(report.tapes, (std::vector<std::string>{"L00001", "L00002"}));
  EXPECT_TRUE(notices_.empty()) << notices_.front();

  // Restore everything, as `mixtape restore` does.
  {
    auto changer = library();
    restore::RestoreOptions options;
    options.paths = {src_};
    options.destination = dir_.file("out");
    SilentProgress quiet;
    restore::RestoreReport restored =
        restore::restore(dir_.file("catalog.db"), *changer, keys_, options, quiet);
    EXPECT_TRUE(restored.failures.empty()) << restored.failures.front().error;
    EXPECT_EQ(restored.files, 13u);
    for (const auto& e : std::filesystem::directory_iterator(src_)) {
      const std::string path = e.path().string();
      EXPECT_EQ(read_file(dir_.file("out") + path), read_file(path)) << path;
    }
  }
  // Verify every copy on both tapes.
  {
    auto changer = library();
    restore::VerifyOptions options;
    SilentProgress quiet;
    restore::VerifyReport verified = restore::verify(*catalog_, *changer, keys_, options, quiet);
    EXPECT_TRUE(verified.ok()) << verified.problems.front();
    EXPECT_EQ(verified.tapes, 2u);
    EXPECT_EQ(verified.files_ok, 26u);
  }
  // Recover a catalog from each tape alone.
  for (const std::string serial : {"L00001", "L00002"}) {
    auto changer = library();
    catalog::CatalogConfig config;
    config.encryption = catalog::Encryption::kNone;
    Catalog found = Catalog::create(dir_.file("found-" + serial + ".db"), config);
    recover::RecoverReport recovered =
        recover::recover_tape(found, changer->load(serial, 0), keys_, {});
    EXPECT_EQ(recovered.serial, serial);
    EXPECT_EQ(recovered.source, recover::RecoverSource::kTrailingIndex);
    EXPECT_TRUE(found.tape_by_serial(serial));
    EXPECT_EQ(found.file_by_path(src_ + "/big").has_value(), true);
  }
}

TEST_F(StLibraryTest, DevicesListedOutOfTheChangersOrderNeverWriteOnTheWrongTape) {
  ASSERT_NO_FATAL_FAILURE(back_up_onto_both_tapes_then_add_files());
  // The next run lists /dev/nst1 first.
  BackupReport report;
  {
    auto changer = library(/*swapped=*/true);
    report = run(*changer);
  }
  ASSERT_EQ(report.failed_drives.size(), 2u);
  EXPECT_NE(report.failed_drives[0].find("holds tape L0000"), std::string::npos)
      << report.failed_drives[0];
  EXPECT_EQ(report.copies, 0u);
  expect_nothing_written();
  // In the right order, the run goes through.
  auto changer = library();
  EXPECT_EQ(run(*changer).below_goal, 0u);
}

// Every session reads the label before its first write: drives listed out
// of the changer's order, with a changer that does not check labels itself,
// write nothing onto the wrong cartridges.
TEST_F(StLibraryTest, EverySessionChecksTheTapeBeforeItsFirstWrite) {
  ASSERT_NO_FATAL_FAILURE(back_up_onto_both_tapes_then_add_files());
  BackupReport report;
  {
    std::vector<std::unique_ptr<tape::Drive>> drives;
    drives.push_back(std::make_unique<StDrive>("/dev/nst1", nst1_));
    drives.push_back(std::make_unique<StDrive>("/dev/nst0", nst0_));
    tape::MtxChanger unchecked("/dev/sg3", std::move(drives), robot_.runner());
    report = run(unchecked);
  }
  EXPECT_EQ(report.copies, 0u);
  EXPECT_TRUE(warned("holds tape L00002, not tape L00001")) << ::testing::PrintToString(warnings_);
  expect_nothing_written();
}

TEST_F(StLibraryTest, AResetWhileWritingLeavesTheTapeOpen) {
  options_.copies = 1;
  catalog_->set_copy_goal(src_, 1);
  make_files(4, 0, 50000);
  {
    auto changer = library();
    ASSERT_EQ(run(*changer).tapes, std::vector<std::string>{"L00001"});
  }
  const catalog::TapeRow before = tape("L00001");
  make_files(8, 100, 200000);
  // A bus reset a few records into the session: the drive rewinds and st
  // refuses to write until the tape is repositioned.
  nst0_.reset_after_writes(5);
  BackupReport report;
  {
    auto changer = library();
    report = run(*changer);
  }
  EXPECT_TRUE(warned("L00001: /dev/nst0: cannot write")) << ::testing::PrintToString(warnings_);
  EXPECT_TRUE(warned("the drive lost its position"));
  EXPECT_FALSE(warned("being labelled")) << "L00002 is a new cartridge";
  EXPECT_TRUE(report.failed_drives.empty());
  EXPECT_EQ(report.below_goal, 0u);  // what did not go to L00001 went to another tape
  const catalog::TapeRow after = tape("L00001");
  EXPECT_EQ(after.state, catalog::TapeState::kOpen) << "a reset is not the end of the tape";
  EXPECT_GE(after.append_block.value_or(0), before.append_block.value_or(0));
  make_files(3, 200, 50000);
  auto changer = library();
  report = run(*changer);
  EXPECT_EQ(report.below_goal, 0u);
  restore::VerifyOptions verify_options;
  SilentProgress quiet;
  EXPECT_TRUE(restore::verify(*catalog_, *changer, keys_, verify_options, quiet).ok());
}

// ------------------------------------------------------------ label checks

class StLabelTest : public ::testing::Test {
 protected:
  StLabelTest() {
    catalog::CatalogConfig config;
    config.encryption = catalog::Encryption::kNone;
    catalog_.emplace(Catalog::create(dir_.file("catalog.db"), config));
    write_file(dir_.file("small-binary"), "a binary");
    write_file(dir_.file("small-source.tar.gz"), "the source");
    label_.binary_path = dir_.file("small-binary");
    label_.source_tarball_path = dir_.file("small-source.tar.gz");
    label_.capacity = kCapacity;
  }

  catalog::TapeRow label(tape::Drive& drive, const std::string& serial) {
    return label_tape(*catalog_, drive, serial, label_, {});
  }

  TempDir dir_;
  std::optional<Catalog> catalog_;
  LabelOptions label_;
};

TEST_F(StLabelTest, LabelsAndReadsBackThroughAStrictDrive) {
  EmulatedStDevice device;
  device.insert(blank());
  StDrive drive("/dev/nst0", device);
  const catalog::TapeRow row = label(drive, "L00001");
  EXPECT_EQ(format::label_serial_reader()(drive), "L00001");
  EXPECT_EQ(drive.tell(), 0u);
  EXPECT_EQ(format::read_tape_label(drive).record_size, row.record_size);
  // No test records left in front of the label.
  const auto blocks = device.cartridge()->blocks;
  ASSERT_FALSE(blocks.empty());
  EXPECT_EQ(std::string(blocks[0].data.begin() + 257, blocks[0].data.begin() + 262), "ustar");
}

TEST_F(StLabelTest, TheReadmeOnANewTapeGivesDdCommandsEveryDriveTakes) {
  EmulatedStDevice device;
  device.insert(blank());
  StDrive drive("/dev/nst0", device);
  label(drive, "L00001");
  drive.rewind();
  tape::TapeFileReader file0(drive);
  format::TarReader tar(file0, "tape file 0");
  std::string readme;
  while (auto member = tar.next()) {
    if (member->info.path != "README.txt") continue;
    readme.resize(member->info.size);
    for (std::size_t done = 0; done < readme.size();) {
      done += tar.read_data(MutableByteSpan(reinterpret_cast<std::uint8_t*>(readme.data()) + done,
                                            readme.size() - done));
    }
    break;
  }
  ASSERT_FALSE(readme.empty());
  // st refuses a read larger than the drive's largest block: 16M fails on
  // IBM LTO drives (8 MiB), and every record mixtape writes fits in 1M.
  EXPECT_EQ(readme.find("bs=16M"), std::string::npos);
  std::size_t dd_lines = 0;
  for (std::size_t at = 0; (at = readme.find("dd if=/dev/nst0", at)) != std::string::npos; ++at) {
    const std::string line = readme.substr(at, readme.find('\n', at) - at);
    EXPECT_NE(line.find("bs=1M"), std::string::npos) << line;
    ++dd_lines;
  }
  EXPECT_GE(dd_lines, 8u);
  EXPECT_NE(readme.find("dd if=/dev/nst0 of=/dev/null bs=1M count=1"), std::string::npos)
      << "how to find the record size of an unknown tape";
}

TEST_F(StLabelTest, AFirstRecordTheDriveCannotReadIsNotABlankTape) {
  // Encrypted by another program, and this drive has no key: DATA PROTECT.
  EmulatedStDevice device;
  EmulatedCartridge cartridge = blank();
  cartridge.blocks = {{EmulatedBlock::Kind::kProtected, Bytes(65536, 'x')},
                      {EmulatedBlock::Kind::kFilemark, {}},
                      {EmulatedBlock::Kind::kRecord, Bytes(65536, 'y')}};
  device.insert(cartridge);
  StDrive drive("/dev/nst0", device);
  expect_tape_error(TapeErrorKind::kMediaError, [&] { format::label_serial_reader()(drive); });
  try {
    label(drive, "L00001");
    ADD_FAILURE() << "labelled a tape holding data";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("is not blank"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(catalog_->tape_by_serial("L00001"));
  EXPECT_EQ(device.cartridge()->blocks.size(), 3u);
  EXPECT_EQ(device.cartridge()->blocks[0].kind, EmulatedBlock::Kind::kProtected);
}

TEST_F(StLabelTest, LabellingRunsTheFirstContactSelfTest) {
  // A drive whose own block addresses skip filemarks, with st's
  // scsi2logical neither settable (not root) nor visible (no sysfs).
  tape::EmulatedStOptions options;
  options.privileged = false;
  options.sysfs = false;
  options.device_addresses_skip_filemarks = true;
  EmulatedStDevice device("/dev/nst0", options);
  device.insert(blank());
  StDrive drive("/dev/nst0", device);
  auto e = expect_tape_error(TapeErrorKind::kDeviceError, [&] { label(drive, "L00001"); });
  ASSERT_TRUE(e);
  EXPECT_NE(std::string(e->what()).find("first-contact self-test failed"), std::string::npos)
      << e->what();
  EXPECT_FALSE(catalog_->tape_by_serial("L00001"));
}

TEST_F(StLabelTest, ATapeHoldingOnlyTheSelfTestIsLabelledAgain) {
  EmulatedStDevice device;
  device.insert(blank());
  StDrive drive("/dev/nst0", device);
  tape::first_contact_test(drive);  // then the run was killed
  EXPECT_EQ(label(drive, "L00001").serial, "L00001");
  EXPECT_EQ(format::label_serial_reader()(drive), "L00001");
}

TEST_F(StLabelTest, TapeIdentityIsCheckedBeforeAppending) {
  EmulatedStDevice device;
  device.insert(blank());
  StDrive drive("/dev/nst0", device);
  const catalog::TapeRow first = label(drive, "L00001");
  drive.unload();
  device.remove();
  device.insert(blank());
  drive.load();
  const catalog::TapeRow second = label(drive, "L00002");

  // L00002 is in the drive.
  check_tape_identity(drive, second);
  drive.locate(*second.append_block);  // and the caller goes on from there
  EXPECT_EQ(drive.tell(), *second.append_block);
  auto e =
      expect_tape_error(TapeErrorKind::kDeviceError, [&] { check_tape_identity(drive, first); });
  ASSERT_TRUE(e);
  EXPECT_NE(std::string(e->what()).find("/dev/nst0 holds tape L00002, not tape L00001"),
            std::string::npos)
      << e->what();
  catalog::TapeRow other_size = second;
  other_size.record_size *= 2;
  expect_tape_error(TapeErrorKind::kDeviceError, [&] { check_tape_identity(drive, other_size); });

  drive.unload();
  device.remove();
  device.insert(blank());
  drive.load();
  e = expect_tape_error(TapeErrorKind::kDeviceError, [&] { check_tape_identity(drive, first); });
  ASSERT_TRUE(e);
  EXPECT_NE(std::string(e->what()).find("no readable mixtape label"), std::string::npos)
      << e->what();
}

}  // namespace
}  // namespace mixtape::backup::testing
