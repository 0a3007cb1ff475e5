// What a real drive behind Linux st does that the first StDrive did not
// expect (issue 14, docs/TAPE.md "First contact"): each test makes the
// emulated st fail the way st fails, and checks that StDrive turns it into
// the right answer. The emulation's own behaviour is checked first, against
// drivers/scsi/st.c.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mtio.h>

#include <chrono>

#include "tests/tape/tape_test_util.h"

namespace mixtape::tape::testing {
namespace {

using namespace std::chrono_literals;

int op(EmulatedStDevice& device, int fd, short code, int count) {
  mtop m{};
  m.mt_op = code;
  m.mt_count = count;
  return device.ioctl_op(fd, m);
}

EmulatedBlock record(const Bytes& data) {
  return {EmulatedBlock::Kind::kRecord, data};
}
EmulatedBlock record(std::string_view text) {
  return record(Bytes(text.begin(), text.end()));
}
EmulatedBlock filemark() {
  return {EmulatedBlock::Kind::kFilemark, {}};
}

EmulatedCartridge holding(std::vector<EmulatedBlock> blocks) {
  EmulatedCartridge cartridge;
  cartridge.blocks = std::move(blocks);
  return cartridge;
}

// The clock of StDrive's waits: sleeping moves it on at once.
struct FakeClock {
  std::chrono::steady_clock::time_point now{};
  std::chrono::steady_clock::duration slept{};
  std::vector<std::string> notices;

  StDriveOptions options() {
    StDriveOptions o;
    o.notice = [this](const std::string& line) { notices.push_back(line); };
    o.now = [this] { return now; };
    o.sleep = [this](std::chrono::steady_clock::duration d) {
      now += d;
      slept += d;
    };
    return o;
  }
  bool said(std::string_view text) const {
    for (const auto& line : notices)
      if (line.find(text) != std::string::npos) return true;
    return false;
  }
};

std::string text_of(const RecordBuffer& buffer, std::size_t size) {
  return std::string(reinterpret_cast<const char*>(buffer.data()), size);
}

// ------------------------------------------- 1. the maximum block length

TEST(EmulatedSt, RefusesTransfersLargerThanTheMaximumBlockLength) {
  EmulatedStDevice device;  // an IBM LTO drive: 8 MiB
  device.insert(holding({record("a")}));
  int fd = device.open("/dev/nst0", O_RDWR);
  ASSERT_EQ(op(device, fd, MTSETBLK, 0), 0);
  RecordBuffer buffer(16 << 20);
  EXPECT_EQ(device.read(fd, buffer.data(), 16 << 20), -1);  // dd bs=16M
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(device.read(fd, buffer.data(), (8 << 20) + 1), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(device.read(fd, buffer.data(), 8 << 20), 1);  // nothing moved before
  EXPECT_EQ(device.write(fd, buffer.data(), (8 << 20) + 1), -1);
  EXPECT_EQ(errno, EINVAL);
  device.close(fd);
}

class StReadLimitTest : public ::testing::TestWithParam<std::size_t> {};
INSTANTIATE_TEST_SUITE_P(MaxBlock, StReadLimitTest, ::testing::Values(0x800000, 0xFFFFFF));

TEST_P(StReadLimitTest, ReadsAnyRecordWhateverTheBufferSize) {
  EmulatedStOptions options;
  options.max_block = GetParam();
  EmulatedStDevice device("/dev/nst0", options);
  device.insert({});
  StDrive d("/dev/nst0", device);
  const Bytes big = random_bytes(1 << 20, 1);
  d.write_record(big);
  put(d, "small");
  d.write_filemarks(1);
  d.rewind();
  // A record size not known yet: the probe buffer holds any record.
  RecordBuffer probe(kProbeReadSize);
  ReadResult r = d.read_record(probe.span());
  ASSERT_EQ(r.kind, ReadKind::kData);
  ASSERT_EQ(r.size, big.size());
  EXPECT_EQ(0, std::memcmp(probe.data(), big.data(), big.size()));
  // The 16 MiB mixtape used to read with is more than any drive takes.
  RecordBuffer sixteen(16 << 20);
  r = d.read_record(sixteen.span());
  ASSERT_EQ(r.kind, ReadKind::kData);
  EXPECT_EQ(text_of(sixteen, r.size), "small");
  EXPECT_EQ(d.read_limit(), GetParam());  // learnt from st's EINVAL, no larger
  EXPECT_EQ(next(d), "|FM|");
}

TEST(StDrive, RecordLargerThanTheDriveTakesIsRefusedNamingItsSize) {
  EmulatedStOptions options;
  options.max_block = 1 << 20;
  EmulatedStDevice device("/dev/nst0", options);
  device.insert({});
  StDrive d("/dev/nst0", device);
  auto e = expect_tape_error(TapeErrorKind::kInvalidArgument,
                             [&] { d.write_record(random_bytes(2 << 20, 2)); });
  ASSERT_TRUE(e);
  EXPECT_NE(std::string(e->what()).find("refuses a record of 2097152 bytes at block 0"),
            std::string::npos)
      << e->what();
  EXPECT_TRUE(device.cartridge()->blocks.empty());
  put(d, "fits");  // nothing was disturbed
  d.rewind();
  EXPECT_EQ(next(d), "fits");
  EXPECT_EQ(device.cartridge()->blocks.size(), 1u) << "no filemark from st either";
}

TEST(StDrive, ReadsAndWritesWithinWhatTheHbaTransfers) {
  // The drive takes 8 MiB, the HBA 1 MiB per command: st says EBUSY.
  EmulatedStOptions options;
  options.max_transfer = 1 << 20;
  EmulatedStDevice device("/dev/nst0", options);
  device.insert({});
  StDrive d("/dev/nst0", device);
  const Bytes record = random_bytes(1 << 20, 4);
  d.write_record(record);
  auto e = expect_tape_error(TapeErrorKind::kInvalidArgument,
                             [&] { d.write_record(random_bytes((1 << 20) + 512, 5)); });
  ASSERT_TRUE(e);
  EXPECT_NE(std::string(e->what()).find("refuses a record of 1049088 bytes at block 1"),
            std::string::npos)
      << e->what();
  d.rewind();
  RecordBuffer probe(kProbeReadSize);
  ReadResult r = d.read_record(probe.span());
  ASSERT_EQ(r.size, record.size());
  EXPECT_EQ(0, std::memcmp(probe.data(), record.data(), r.size));
  EXPECT_EQ(d.read_limit(), std::size_t{1} << 20);
}

// ------------------------------------------------ 2. becoming ready

TEST(EmulatedSt, CartridgeBecomingReadyIsNeitherOnlineNorDoorOpen) {
  EmulatedStDevice device;
  device.insert({}, /*not_ready_looks=*/2);
  int fd = device.open("/dev/nst0", O_RDWR | O_NONBLOCK);
  ASSERT_GE(fd, 0);
  mtget status{};
  ASSERT_EQ(device.ioctl_get(fd, status), 0);
  EXPECT_FALSE(GMT_ONLINE(status.mt_gstat));
  EXPECT_FALSE(GMT_DR_OPEN(status.mt_gstat));
  char byte;
  EXPECT_EQ(device.read(fd, &byte, 1), -1);
  EXPECT_EQ(errno, EIO);  // rw_checks: not ready, but not ENOMEDIUM
  EXPECT_EQ(op(device, fd, MTLOAD, 1), -1);
  EXPECT_EQ(errno, EIO);
  device.close(fd);
  fd = device.open("/dev/nst0", O_RDWR | O_NONBLOCK);  // the third look
  ASSERT_EQ(device.ioctl_get(fd, status), 0);
  EXPECT_TRUE(GMT_ONLINE(status.mt_gstat));
  device.close(fd);
}

TEST(StDrive, LoadWaitsForADriveThatIsNotReadyYet) {
  EmulatedStDevice device;
  device.insert(holding({record("label"), filemark()}), /*not_ready_looks=*/60);
  FakeClock clock;
  StDrive d("/dev/nst0", device, clock.options());
  DriveStatus s = d.status();
  EXPECT_FALSE(s.loaded);
  EXPECT_TRUE(s.becoming_ready);
  d.load();
  EXPECT_TRUE(d.status().loaded);
  EXPECT_EQ(next(d), "label");
  // One look per poll of 10 s: about ten minutes of a calibrating drive.
  EXPECT_GE(clock.slept, 9min);
  EXPECT_LE(clock.slept, 11min);
  EXPECT_TRUE(clock.said("/dev/nst0: the drive is not ready yet")) << clock.notices.front();
  EXPECT_TRUE(clock.said("still waiting for the drive to become ready (5 min so far)"));
  EXPECT_TRUE(clock.said("the drive is ready (after"));
}

TEST(StDrive, FirstCommandOnANewCartridgeWaitsToo) {
  EmulatedStDevice device;
  FakeClock clock;
  StDrive d("/dev/nst0", device, clock.options());
  EXPECT_FALSE(d.status().loaded);
  device.insert(holding({record("a")}), /*not_ready_looks=*/5);
  EXPECT_EQ(next(d), "a");
  EXPECT_TRUE(clock.said("not ready yet"));
}

TEST(StDrive, GivesUpOnADriveThatNeverBecomesReady) {
  EmulatedStDevice device;
  device.insert({}, /*not_ready_looks=*/1000000);
  FakeClock clock;
  StDrive d("/dev/nst0", device, clock.options());
  auto e = expect_tape_error(TapeErrorKind::kTimeout, [&] { d.load(); });
  ASSERT_TRUE(e);
  EXPECT_NE(std::string(e->what()).find("did not become ready in 2 h 30 min"), std::string::npos)
      << e->what();
  EXPECT_EQ(clock.slept, 150min);  // LTO-9 calibration takes up to two hours
}

TEST(StDrive, EmptyDriveIsNotWaitedFor) {
  EmulatedStDevice device;
  FakeClock clock;
  StDrive d("/dev/nst0", device, clock.options());
  expect_tape_error(TapeErrorKind::kNotLoaded, [&] { d.load(); });
  EXPECT_EQ(clock.slept, 0s);
}

// ------------------------------------- 3. EIO without movement, resets

TEST(StDrive, BlankTapeIsEndOfDataConfirmedAtBlockZero) {
  EmulatedStDevice device;
  device.insert({});
  StDrive d("/dev/nst0", device);
  EXPECT_TRUE(tape_is_blank(d));
  EXPECT_EQ(d.tell(), 0u);
}

TEST(StDrive, DataProtectedRecordIsAnErrorNotTheEndOfTheTape) {
  // An encrypted record the drive has no key for: EIO, and the drive stays.
  EmulatedStDevice device;
  device.insert(holding({record("r0"),
                         {EmulatedBlock::Kind::kProtected, Bytes(100, 'x')},
                         record("r2"),
                         filemark(),
                         record("next file")}));
  StDrive d("/dev/nst0", device);
  EXPECT_EQ(next(d), "r0");
  auto e = expect_tape_error(TapeErrorKind::kMediaError, [&] { next(d); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->block(), 1u);
  EXPECT_NE(std::string(e->what()).find("without moving"), std::string::npos) << e->what();
  EXPECT_EQ(d.tell(), 2u);  // passed, as after a medium error
  EXPECT_EQ(next(d), "r2");
  EXPECT_EQ(next(d), "|FM|");
  EXPECT_EQ(next(d), "next file");
  EXPECT_EQ(d.stats().media_errors, 1u);
}

TEST(StDrive, AFileWithAnUnreadableRecordDoesNotEndEarlySilently) {
  EmulatedStDevice device;
  device.insert(holding({record("aaaa"),
                         {EmulatedBlock::Kind::kProtected, Bytes(4, 'b')},
                         record("cccc"),
                         filemark()}));
  StDrive d("/dev/nst0", device);
  TapeFileReader reader(d, 4);
  Bytes out(4);
  EXPECT_EQ(reader.read(out), 4u);
  expect_tape_error(TapeErrorKind::kMediaError, [&] { reader.read(out); });
  EXPECT_FALSE(reader.ended_at_eod());
}

TEST(StDrive, DataProtectAtBlockZeroIsNotABlankTape) {
  EmulatedStDevice device;
  device.insert(holding({{EmulatedBlock::Kind::kProtected, Bytes(10240, 'x')}, filemark()}));
  StDrive d("/dev/nst0", device);
  expect_tape_error(TapeErrorKind::kMediaError, [&] { tape_is_blank(d); });
}

TEST(EmulatedSt, AResetLeavesThePositionUnknownUntilTheTapeIsRepositioned) {
  EmulatedStDevice device;
  device.insert(holding({record("r0"), record("r1")}));
  int fd = device.open("/dev/nst0", O_RDWR);
  ASSERT_EQ(op(device, fd, MTSETBLK, 0), 0);
  char buffer[16];
  ASSERT_EQ(device.read(fd, buffer, sizeof buffer), 2);
  device.reset();
  EXPECT_EQ(device.read(fd, buffer, sizeof buffer), -1);
  EXPECT_EQ(errno, EIO);
  EXPECT_EQ(op(device, fd, MTFSF, 1), -1);  // not a repositioning st allows
  mtget status{};
  ASSERT_EQ(device.ioctl_get(fd, status), 0);  // Linux 6.13 and later
  EXPECT_EQ(status.mt_blkno, -1);
  EXPECT_TRUE(GMT_ONLINE(status.mt_gstat));
  mtpos position{};
  EXPECT_EQ(device.ioctl_pos(fd, position), -1);
  ASSERT_EQ(op(device, fd, MTSEEK, 1), 0);
  ASSERT_EQ(device.read(fd, buffer, sizeof buffer), 2);
  EXPECT_EQ(std::string(buffer, 2), "r1");
  device.close(fd);
}

class StResetTest : public ::testing::TestWithParam<bool> {};
INSTANTIATE_TEST_SUITE_P(Kernels, StResetTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Before6_13" : "Since6_13"; });

TEST_P(StResetTest, ReadAfterAResetLocatesTheBlockAgain) {
  EmulatedStOptions options;
  options.mtiocget_fails_after_reset = GetParam();
  EmulatedStDevice device("/dev/nst0", options);
  device.insert(holding({record("r0"), record("r1"), record("r2"), filemark()}));
  FakeClock clock;
  StDrive d("/dev/nst0", device, clock.options());
  EXPECT_EQ(next(d), "r0");
  EXPECT_EQ(next(d), "r1");
  device.reset();  // the drive rewinds
  EXPECT_EQ(next(d), "r2");
  EXPECT_EQ(next(d), "|FM|");
  EXPECT_TRUE(clock.said("lost its position")) << ::testing::PrintToString(clock.notices);
}

TEST_P(StResetTest, WriteAfterAResetIsPositionLostNotAMediaError) {
  EmulatedStOptions options;
  options.mtiocget_fails_after_reset = GetParam();
  EmulatedStDevice device("/dev/nst0", options);
  device.insert({});
  StDrive d("/dev/nst0", device);
  put(d, "a");
  put(d, "b");
  device.reset();
  auto e = expect_tape_error(TapeErrorKind::kPositionLost, [&] { put(d, "c"); });
  ASSERT_TRUE(e);
  EXPECT_NE(std::string(e->what()).find("lost its position"), std::string::npos) << e->what();
  // Locating makes the tape usable again (st allows MTSEEK after a reset).
  d.locate(2);
  put(d, "c");
  d.rewind();
  EXPECT_EQ(next(d), "a");
  EXPECT_EQ(next(d), "b");
  EXPECT_EQ(next(d), "c");
}

TEST_P(StResetTest, UnloadsAfterAReset) {
  EmulatedStOptions options;
  options.mtiocget_fails_after_reset = GetParam();
  EmulatedStDevice device("/dev/nst0", options);
  device.insert(holding({record("r0")}));
  StDrive d("/dev/nst0", device);
  EXPECT_EQ(next(d), "r0");
  device.reset();
  d.unload();  // MTOFFL is allowed after a reset
  EXPECT_FALSE(device.loaded());
  d.load();
  EXPECT_EQ(next(d), "r0");
}

TEST(StDrive, NotReadyInTheMiddleOfASessionIsNotTheEndOfData) {
  EmulatedStDevice device;
  device.insert(holding({record("r0"), record("r1")}));
  StDrive d("/dev/nst0", device);
  EXPECT_EQ(next(d), "r0");
  device.set_not_ready(true);
  expect_tape_error(TapeErrorKind::kPositionLost, [&] { next(d); });
  expect_tape_error(TapeErrorKind::kPositionLost, [&] { put(d, "x"); });
  device.set_not_ready(false);
  d.locate(1);
  EXPECT_EQ(next(d), "r1");
}

// ------------------------------- 5. aligned buffers, asynchronous writes

TEST(EmulatedSt, AsynchronousWriteStatusArrivesWithTheNextCall) {
  EmulatedStOptions options;
  options.sg_entries = 128;
  EmulatedStDevice device("/dev/nst0", options);
  EmulatedCartridge cartridge;
  cartridge.bad_writes = {1};
  device.insert(cartridge);
  int fd = device.open("/dev/nst0", O_RDWR);
  ASSERT_EQ(op(device, fd, MTSETBLK, 0), 0);
  // 512 KiB not page-aligned: 129 pages, one more than the HBA maps.
  RecordBuffer memory((512 << 10) + 4096);
  const std::uint8_t* unaligned = memory.data() + 512;
  ASSERT_EQ(device.write(fd, unaligned, 512 << 10), 512 << 10);
  ASSERT_EQ(device.write(fd, unaligned, 512 << 10), 512 << 10);  // block 1: bad, not told yet
  EXPECT_EQ(device.async_writes(), 2u);
  mtget status{};
  EXPECT_EQ(device.ioctl_get(fd, status), -1);  // MTIOCGET brings the news
  EXPECT_EQ(errno, EIO);
  mtpos position{};
  ASSERT_EQ(device.ioctl_pos(fd, position), 0);
  EXPECT_EQ(position.mt_blkno, 1);  // block 1 is not on the tape
  // The same record from page-aligned memory goes straight to the drive.
  EXPECT_EQ(device.write(fd, memory.data(), 512 << 10), -1);
  EXPECT_EQ(errno, EIO);
  EXPECT_EQ(device.direct_writes(), 1u);
  device.close(fd);
}

TEST(StDrive, WritesRecordsFromPageAlignedMemory) {
  EmulatedStOptions options;
  options.sg_entries = 128;  // an HBA with 128 scatter-gather entries
  EmulatedStDevice device("/dev/nst0", options);
  device.insert({});
  StDrive d("/dev/nst0", device);
  Bytes data = random_bytes((512 << 10) + 1, 3);
  const ByteSpan unaligned = ByteSpan(data).subspan(page_aligned(data.data()) ? 1 : 0, 512 << 10);
  ASSERT_FALSE(page_aligned(unaligned.data()));
  for (int i = 0; i < 3; ++i) d.write_record(unaligned);
  const ByteSpan pieces[2] = {unaligned.first(1000), unaligned.subspan(1000)};
  d.write_record_gathered(pieces);
  EXPECT_EQ(device.direct_writes(), 4u);
  EXPECT_EQ(device.buffered_writes(), 0u);
  d.rewind();
  RecordBuffer buffer(512 << 10);
  for (int i = 0; i < 4; ++i) {
    ReadResult r = d.read_record(buffer.span());
    ASSERT_EQ(r.size, unaligned.size());
    EXPECT_EQ(0, std::memcmp(buffer.data(), unaligned.data(), r.size));
  }
}

TEST(StDrive, PutsAnAsynchronousWriteErrorOnItsOwnBlock) {
  EmulatedStOptions options;
  options.sg_entries = 0;  // st can never map the caller's pages: every write is asynchronous
  EmulatedStDevice device("/dev/nst0", options);
  EmulatedCartridge cartridge;
  cartridge.bad_writes = {2};
  device.insert(cartridge);
  StDrive d("/dev/nst0", device);
  put(d, "r0");
  put(d, "r1");
  auto e = expect_tape_error(TapeErrorKind::kMediaError, [&] { put(d, "r2"); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->block(), 2u);
  EXPECT_GT(device.async_writes(), 2u);
  EXPECT_EQ(d.tell(), 2u);
  d.rewind();
  EXPECT_EQ(next(d), "r0");
  EXPECT_EQ(next(d), "r1");
  EXPECT_EQ(next(d), "|EOD|");
}

TEST(StDrive, AsynchronousWritesReachEarlyWarningAndThePhysicalEnd) {
  EmulatedStOptions options;
  options.sg_entries = 0;
  EmulatedStDevice device("/dev/nst0", options);
  EmulatedCartridge cartridge;
  cartridge.capacity = 10 * 108 + 4;  // ten 100-byte records and a filemark
  cartridge.early_warning = 5 * 108 + 4;
  device.insert(cartridge);
  StDrive d("/dev/nst0", device);
  const Bytes data(100, 'x');
  int written = 0;
  bool warned = false;
  for (;; ++written) {
    try {
      warned = d.write_record(data).early_warning || warned;
    } catch (const TapeError& e) {
      EXPECT_EQ(e.kind(), TapeErrorKind::kPhysicalEnd) << e.what();
      break;
    }
  }
  EXPECT_TRUE(warned);
  EXPECT_EQ(written, 10);
  EXPECT_EQ(d.tell(), 10u);
  d.write_filemarks(1);
  EXPECT_EQ(device.cartridge()->blocks.size(), 11u);
}

// ------------------------------------------------------ 6. st's options

TEST(StDrive, SetsScsi2LogicalWhenItMay) {
  EmulatedStDevice device;
  device.insert({});
  ASSERT_EQ(device.st_options() & MT_ST_SCSI2LOGICAL, 0u);
  StDrive d("/dev/nst0", device);
  put(d, "a");
  EXPECT_NE(device.st_options() & MT_ST_SCSI2LOGICAL, 0u);
}

TEST(StDrive, RefusesADriveWithoutScsi2LogicalWhenItCannotSetIt) {
  EmulatedStOptions options;
  options.privileged = false;  // not root: MTSETDRVBUFFER is EPERM
  EmulatedStDevice device("/dev/nst0", options);
  device.insert({});
  StDrive d("/dev/nst0", device);
  auto e = expect_tape_error(TapeErrorKind::kDeviceError, [&] { put(d, "a"); });
  ASSERT_TRUE(e);
  EXPECT_NE(std::string(e->what()).find("scsi2logical option is off and only root can set it"),
            std::string::npos)
      << e->what();
  EXPECT_NE(std::string(e->what()).find("mt -f /dev/nst0 stsetoptions scsi2logical"),
            std::string::npos);
  EXPECT_TRUE(device.cartridge()->blocks.empty());
}

TEST(StDrive, SaysWhatItCannotCheckAndWhatLooksWrong) {
  EmulatedStOptions hidden;
  hidden.privileged = false;
  hidden.sysfs = false;
  EmulatedStDevice unchecked("/dev/nst0", hidden);
  unchecked.insert({});
  FakeClock clock;
  StDrive d("/dev/nst0", unchecked, clock.options());
  put(d, "a");
  EXPECT_TRUE(clock.said("cannot set st's scsi2logical option")) << clock.notices.size();

  EmulatedStOptions two_fm;
  two_fm.options |= MT_ST_TWO_FM | MT_ST_NO_BLKLIMS;
  EmulatedStDevice device("/dev/nst0", two_fm);
  device.insert({});
  FakeClock other;
  StDrive e("/dev/nst0", device, other.options());
  put(e, "a");
  EXPECT_TRUE(other.said("two_fm option is on"));
  EXPECT_TRUE(other.said("no_blklims option is on"));
  EXPECT_FALSE(other.said("scsi2logical"));
  const std::size_t said = other.notices.size();
  e.unload();
  device.remove();
  device.insert({});
  e.load();
  put(e, "b");
  EXPECT_EQ(other.notices.size(), said) << "the options are looked at once";
}

TEST(FirstContact, SelfTestPassesOnADriveThatKeepsLogicalBlocks) {
  EmulatedStDevice device;
  device.insert({});
  StDrive d("/dev/nst0", device);
  first_contact_test(d);
  EXPECT_EQ(d.tell(), 0u);
  EXPECT_TRUE(holds_only_first_contact_test(d));
  put(d, "label");  // written over the test
  EXPECT_EQ(device.cartridge()->blocks.size(), 1u);
  EXPECT_FALSE(holds_only_first_contact_test(d));
}

TEST(FirstContact, SelfTestCatchesBlockAddressesThatAreNotLogical) {
  // Not root and no sysfs: StDrive cannot set or check scsi2logical, and
  // this drive's own addresses do not count filemarks.
  EmulatedStOptions options;
  options.privileged = false;
  options.sysfs = false;
  options.device_addresses_skip_filemarks = true;
  EmulatedStDevice device("/dev/nst0", options);
  device.insert({});
  StDrive d("/dev/nst0", device);
  auto e = expect_tape_error(TapeErrorKind::kDeviceError, [&] { first_contact_test(d); });
  ASSERT_TRUE(e);
  EXPECT_NE(std::string(e->what()).find("the drive says block 2, not 3"), std::string::npos)
      << e->what();
}

}  // namespace
}  // namespace mixtape::tape::testing
