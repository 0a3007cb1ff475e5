// StDrive specifics: how it drives st (variable-block mode, logical block
// addresses, no implicit filemarks) and that the emulated st behaves as the
// kernel documents, so the contract suite's verdict on StDrive means
// something.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mtio.h>

#include "tests/tape/tape_test_util.h"

namespace mixtape::tape::testing {
namespace {

int op(EmulatedStDevice& device, int fd, short code, int count) {
  mtop m{};
  m.mt_op = code;
  m.mt_count = count;
  return device.ioctl_op(fd, m);
}

std::size_t blocks_on(EmulatedStDevice& device) {
  return device.cartridge()->blocks.size();
}

// --------------------------------------- the emulation follows st.rst/st.c

TEST(EmulatedSt, WritesAfterEarlyWarningAlternateWithEnospc) {
  // "When the end of medium early warning is encountered, the current write
  // is finished and the number of bytes is returned. The next write returns
  // -1 and errno is set to ENOSPC. [...] the next write is allowed to
  // proceed [...]. After this, -1 and the number of bytes are alternately
  // returned until the physical end of medium."
  EmulatedStDevice device;
  EmulatedCartridge cartridge;
  cartridge.capacity = 10 * 108 + 4;  // ten records and a filemark
  cartridge.early_warning = 5 * 108 + 4;
  device.insert(cartridge);
  int fd = device.open("/dev/nst0", O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(op(device, fd, MTSETBLK, 0), 0);
  Bytes record(100, 'x');  // 108 bytes of tape each
  std::vector<std::string> answers;
  for (int i = 0; i < 16; ++i) {
    ssize_t n = device.write(fd, record.data(), record.size());
    answers.push_back(n >= 0 ? std::to_string(n) : std::string(errno == ENOSPC ? "ENOSPC" : "?"));
  }
  std::vector<std::string> expected = {"100",    "100", "100",    "100",   "100",    "100",
                                       "ENOSPC", "100", "ENOSPC", "100",   "ENOSPC", "100",
                                       "ENOSPC", "100", "ENOSPC", "ENOSPC"};
  EXPECT_EQ(answers, expected);
  EXPECT_EQ(blocks_on(device), 10u);
  EXPECT_EQ(op(device, fd, MTWEOF, 1), 0);  // a filemark still fits
  device.close(fd);
}

TEST(EmulatedSt, RepositioningAfterAWriteAddsAFilemarkAsStDoes) {
  EmulatedStDevice device;
  device.insert({});
  int fd = device.open("/dev/nst0", O_RDWR);
  ASSERT_EQ(op(device, fd, MTSETBLK, 0), 0);
  ASSERT_EQ(device.write(fd, "abc", 3), 3);
  ASSERT_EQ(op(device, fd, MTREW, 1), 0);
  EXPECT_EQ(blocks_on(device), 2u);
  EXPECT_EQ(device.cartridge()->blocks[1].kind, EmulatedBlock::Kind::kFilemark);
  ASSERT_EQ(op(device, fd, MTEOM, 1), 0);
  ASSERT_EQ(device.write(fd, "def", 3), 3);
  device.close(fd);  // and so does closing after a write
  EXPECT_EQ(blocks_on(device), 4u);
}

TEST(EmulatedSt, ReadsReturnZeroAtFilemarkAndAtFirstBlankCheckAfterIt) {
  EmulatedStDevice device;
  EmulatedCartridge cartridge;
  cartridge.blocks = {{EmulatedBlock::Kind::kRecord, Bytes(10, 'a')},
                      {EmulatedBlock::Kind::kFilemark, {}}};
  device.insert(cartridge);
  int fd = device.open("/dev/nst0", O_RDONLY);
  ASSERT_EQ(op(device, fd, MTSETBLK, 0), 0);
  char buffer[100];
  EXPECT_EQ(device.read(fd, buffer, 5), -1);  // smaller than the record
  EXPECT_EQ(errno, ENOMEM);
  EXPECT_EQ(device.read(fd, buffer, sizeof buffer), 0);  // the filemark
  EXPECT_EQ(device.read(fd, buffer, sizeof buffer), 0);  // blank check after a filemark
  EXPECT_EQ(device.read(fd, buffer, sizeof buffer), -1);
  EXPECT_EQ(errno, EIO);
  mtget status{};
  device.ioctl_get(fd, status);
  EXPECT_TRUE(GMT_EOD(status.mt_gstat));
  device.close(fd);
}

// ------------------------------------------------------------ StDrive

TEST(StDrive, SetsVariableBlockMode) {
  EmulatedStDevice device;
  device.insert({});
  ASSERT_NE(device.block_size(), 0);
  StDrive d("/dev/nst0", device);
  put(d, "a");
  EXPECT_EQ(device.block_size(), 0);
}

TEST(StDrive, WorksWithoutPrivilegeWhenScsi2LogicalIsSetAlready) {
  EmulatedStOptions options;
  options.privileged = false;
  options.options |= MT_ST_SCSI2LOGICAL;  // `mt stsetoptions scsi2logical`, run as root once
  EmulatedStDevice device("/dev/nst0", options);
  device.insert({});
  StDrive d("/dev/nst0", device);
  put(d, "a");
  d.locate(0);
  EXPECT_EQ(next(d), "a");
}

TEST(StDrive, NeverLetsStAddAFilemark) {
  EmulatedStDevice device;
  device.insert({});
  {
    StDrive d("/dev/nst0", device);
    put(d, "a");
    d.locate(0);
    EXPECT_EQ(blocks_on(device), 1u);
    d.space_to_eod();
    put(d, "b");
    d.rewind();
    EXPECT_EQ(blocks_on(device), 2u);
    d.space_to_eod();
    put(d, "c");
    expect_tape_error(TapeErrorKind::kBeginningOfTape, [&] { d.space_filemarks_backward(1); });
    EXPECT_EQ(blocks_on(device), 3u);
  }
  EXPECT_EQ(blocks_on(device), 3u);
}

TEST(StDrive, ClosingAfterAWriteAddsNoFilemark) {
  EmulatedStDevice device;
  device.insert({});
  {
    StDrive d("/dev/nst0", device);
    put(d, "a");
  }
  EXPECT_EQ(blocks_on(device), 1u);
}

TEST(StDrive, EmptyDriveReportsNotLoadedUntilATapeIsInserted) {
  EmulatedStDevice device;
  StDrive d("/dev/nst0", device);
  EXPECT_FALSE(d.status().loaded);
  expect_tape_error(TapeErrorKind::kNotLoaded, [&] { next(d); });
  expect_tape_error(TapeErrorKind::kNotLoaded, [&] { d.load(); });
  device.insert({});
  DriveStatus s = d.status();
  EXPECT_TRUE(s.loaded);
  EXPECT_TRUE(s.bot);
  put(d, "a");
  d.unload();
  EXPECT_FALSE(d.status().loaded);
  EXPECT_TRUE(device.remove().has_value());
}

TEST(StDrive, ReadOnlyDriveRefusesWrites) {
  EmulatedStDevice device;
  EmulatedCartridge cartridge;
  cartridge.blocks = {{EmulatedBlock::Kind::kRecord, Bytes{'a'}}};
  device.insert(cartridge);
  StDriveOptions read_only;
  read_only.read_only = true;
  StDrive d("/dev/nst0", device, read_only);
  EXPECT_TRUE(d.status().write_protected);
  expect_tape_error(TapeErrorKind::kWriteProtected, [&] { put(d, "b"); });
  EXPECT_EQ(next(d), "a");
}

TEST(StDrive, OpenDriveTreatsDeviceNodesAsStDrives) {
  // No tape hardware here: the st path is recognised and fails to open.
  auto e = expect_tape_error(TapeErrorKind::kDeviceError, [] { open_drive("/dev/nst97"); });
  ASSERT_TRUE(e);
  EXPECT_NE(std::string(e->what()).find("/dev/nst97: cannot open tape device"), std::string::npos)
      << e->what();
}

TEST(StDrive, MissingDeviceIsADeviceError) {
  EmulatedStDevice device("/dev/nst0");
  expect_tape_error(TapeErrorKind::kDeviceError, [&] { StDrive("/dev/nst1", device); });
}

}  // namespace
}  // namespace mixtape::tape::testing
