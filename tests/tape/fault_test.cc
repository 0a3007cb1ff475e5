// Faults, one test per kind: through FaultInjectingDrive (around any drive)
// and through StDrive's emulated device. (Damage inside an image file is
// covered in image_drive_test.cc.)
#include <gtest/gtest.h>

#include "engine/tape/image_drive.h"
#include "tests/tape/tape_test_util.h"

namespace mixtape::tape::testing {
namespace {

class FaultInjectingDriveTest : public ::testing::Test {
 protected:
  FaultInjectingDriveTest() : image_({8 << 20, 1 << 20}), faulty_(image_.drive()) {
    for (int i = 0; i < 5; ++i) put(image_.drive(), "r" + std::to_string(i));
    image_.drive().write_filemarks(1);
    put(image_.drive(), "s0");
    image_.drive().write_filemarks(1);
    image_.drive().rewind();
  }
  ImageHarness image_;
  FaultInjectingDrive faulty_;
};

TEST_F(FaultInjectingDriveTest, BadRecordIsAMediaErrorNamingItsBlockAndReadingContinues) {
  faulty_.add_bad_record(2);
  EXPECT_EQ(next(faulty_), "r0");
  EXPECT_EQ(next(faulty_), "r1");
  auto e = expect_tape_error(TapeErrorKind::kMediaError, [&] { next(faulty_); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->block(), 2u);
  EXPECT_NE(std::string(e->what()).find("media error reading block 2"), std::string::npos)
      << e->what();
  EXPECT_EQ(next(faulty_), "r3");
  EXPECT_EQ(next(faulty_), "r4");
  EXPECT_EQ(next(faulty_), "|FM|");
  // Coming back to it fails again, like a real bad spot.
  faulty_.locate(2);
  expect_tape_error(TapeErrorKind::kMediaError, [&] { next(faulty_); });
}

TEST_F(FaultInjectingDriveTest, PrematureEndOfData) {
  faulty_.set_end_of_data(3);
  EXPECT_EQ(next(faulty_), "r0");
  EXPECT_EQ(next(faulty_), "r1");
  EXPECT_EQ(next(faulty_), "r2");
  EXPECT_EQ(next(faulty_), "|EOD|");
  EXPECT_EQ(faulty_.tell(), 3u);
  EXPECT_TRUE(faulty_.status().eod);
  faulty_.rewind();
  expect_tape_error(TapeErrorKind::kEndOfData, [&] { faulty_.space_filemarks_forward(1); });
  EXPECT_EQ(faulty_.tell(), 3u);
  expect_tape_error(TapeErrorKind::kEndOfData, [&] { faulty_.locate(6); });
  EXPECT_EQ(faulty_.tell(), 3u);
  faulty_.rewind();
  faulty_.space_to_eod();
  EXPECT_EQ(faulty_.tell(), 3u);
  faulty_.clear_faults();
  faulty_.space_to_eod();
  EXPECT_EQ(faulty_.tell(), 8u);
}

TEST_F(FaultInjectingDriveTest, InjectedEarlyWarningAndPhysicalEnd) {
  faulty_.space_to_eod();  // block 8
  faulty_.set_early_warning_at(9);
  faulty_.set_physical_end_at(11);
  EXPECT_FALSE(faulty_.write_record(as_bytes("w8")).early_warning);
  EXPECT_TRUE(faulty_.write_record(as_bytes("w9")).early_warning);
  EXPECT_TRUE(faulty_.write_filemarks(1).early_warning);
  auto e = expect_tape_error(TapeErrorKind::kPhysicalEnd,
                             [&] { faulty_.write_record(as_bytes("w11")); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->block(), 11u);
}

TEST(StDriveFaults, BadRecordOnTapeIsAMediaErrorAndReadingContinues) {
  EmulatedStDevice device;
  EmulatedCartridge cartridge;
  cartridge.blocks = {{EmulatedBlock::Kind::kRecord, Bytes{'a'}},
                      {EmulatedBlock::Kind::kBadRecord, Bytes(100, 0)},
                      {EmulatedBlock::Kind::kRecord, Bytes{'c'}},
                      {EmulatedBlock::Kind::kFilemark, {}}};
  device.insert(cartridge);
  StDrive d("/dev/nst0", device);
  EXPECT_EQ(next(d), "a");
  auto e = expect_tape_error(TapeErrorKind::kMediaError, [&] { next(d); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->block(), 1u);
  EXPECT_NE(std::string(e->what()).find("/dev/nst0: media error reading block 1"),
            std::string::npos)
      << e->what();
  EXPECT_EQ(next(d), "c");
  EXPECT_EQ(next(d), "|FM|");
  EXPECT_EQ(next(d), "|EOD|");
  EXPECT_EQ(d.stats().media_errors, 1u);
}

TEST(StDriveFaults, TapeYankedOutIsNotLoaded) {
  EmulatedStDevice device;
  device.insert({});
  StDrive d("/dev/nst0", device);
  put(d, "a");
  device.remove();
  expect_tape_error(TapeErrorKind::kNotLoaded, [&] { d.rewind(); });
  EXPECT_FALSE(d.status().loaded);
}

}  // namespace
}  // namespace mixtape::tape::testing
