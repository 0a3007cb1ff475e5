// The Drive contract (engine/tape/tape.h), one typed suite run against every
// implementation: ImageDrive, StDrive over the emulated st driver (strict as
// an IBM LTO drive: reads and writes above 8 MiB refused; and once more with
// every write asynchronous), and FaultInjectingDrive (with no faults) around
// an ImageDrive.
#include <gtest/gtest.h>

#include "engine/tape/image_drive.h"
#include "tests/tape/tape_test_util.h"

namespace mixtape::tape::testing {
namespace {

constexpr Geometry kGeometry{4 << 20, 1 << 20};

template <typename Harness>
class DriveContractTest : public ::testing::Test {
 protected:
  DriveContractTest() : harness_(kGeometry) {}
  Drive& d() { return harness_.drive(); }

  // Three tape files: a0 a1 | b0 | c0 c1 |  (blocks 0..7, EOD at 8).
  void write_three_files() { put_all(d(), {"a0", "a1", "|FM|", "b0", "|FM|", "c0", "c1", "|FM|"}); }
  // The next `count` objects on the tape.
  Objects reads(std::size_t count) { return next_n(d(), count); }

  Harness harness_;
};

using Implementations = ::testing::Types<ImageHarness, StHarness, StAsyncHarness, FaultHarness>;

class ImplementationNames {
 public:
  template <typename T>
  static std::string GetName(int) {
    if (std::is_same_v<T, ImageHarness>) return "ImageDrive";
    if (std::is_same_v<T, StHarness>) return "StDrive";
    if (std::is_same_v<T, StAsyncHarness>) return "StDriveAsyncWrites";
    return "FaultInjectingDrive";
  }
};

TYPED_TEST_SUITE(DriveContractTest, Implementations, ImplementationNames);

TYPED_TEST(DriveContractTest, BlankTapeIsLoadedAtBotAndEod) {
  DriveStatus s = this->d().status();
  EXPECT_TRUE(s.loaded);
  EXPECT_TRUE(s.bot);
  EXPECT_FALSE(s.early_warning);
  EXPECT_FALSE(s.write_protected);
  EXPECT_EQ(this->d().tell(), 0u);
  EXPECT_EQ(this->reads(2), (Objects{"|EOD|", "|EOD|"}));
  EXPECT_EQ(this->d().tell(), 0u);
  EXPECT_TRUE(this->d().status().eod);
}

TYPED_TEST(DriveContractTest, RecordsReadBackWhole) {
  const std::size_t sizes[] = {1, 2, 3, 511, 4096, 65537};
  std::vector<Bytes> records;
  for (std::size_t size : sizes) {
    records.push_back(random_bytes(size, static_cast<std::uint32_t>(size)));
    this->d().write_record(records.back());
  }
  this->d().write_filemarks(1);
  this->d().rewind();
  Bytes buffer(kProbeReadSize);
  for (const Bytes& expected : records) {
    ReadResult r = this->d().read_record(buffer);
    ASSERT_EQ(r.kind, ReadKind::kData);
    ASSERT_EQ(r.size, expected.size());
    EXPECT_TRUE(std::equal(expected.begin(), expected.end(), buffer.begin()));
  }
  EXPECT_EQ(this->reads(2), (Objects{"|FM|", "|EOD|"}));
}

TYPED_TEST(DriveContractTest, FilemarkIsReportedOnceThenTheNextFile) {
  put_all(this->d(), {"a", "|FM|", "b", "|FM|"});
  this->d().rewind();
  EXPECT_EQ(this->reads(5), (Objects{"a", "|FM|", "b", "|FM|", "|EOD|"}));
}

TYPED_TEST(DriveContractTest, ReadingAtEndOfDataStaysThere) {
  put_all(this->d(), {"a", "|FM|"});
  this->d().rewind();
  EXPECT_EQ(this->reads(5), (Objects{"a", "|FM|", "|EOD|", "|EOD|", "|EOD|"}));
  EXPECT_EQ(this->d().tell(), 2u);
  EXPECT_TRUE(this->d().status().eod);
}

TYPED_TEST(DriveContractTest, EndOfDataWithoutFilemarkReadsAsEndOfData) {
  put_all(this->d(), {"a", "b"});
  this->d().rewind();
  EXPECT_EQ(this->reads(4), (Objects{"a", "b", "|EOD|", "|EOD|"}));
  EXPECT_EQ(this->d().tell(), 2u);
}

TYPED_TEST(DriveContractTest, BufferSmallerThanRecordIsAnErrorAndSkipsTheRecord) {
  this->d().write_record(random_bytes(1000, 1));
  put(this->d(), "next");
  this->d().rewind();
  Bytes small(100);
  auto e = expect_tape_error(TapeErrorKind::kRecordTooLarge, [&] { this->d().read_record(small); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->block(), 0u);
  EXPECT_EQ(this->d().tell(), 1u);  // as st: the record was passed
  EXPECT_EQ(next(this->d()), "next");
}

TYPED_TEST(DriveContractTest, SpaceFilemarksForwardLeavesAfterTheNthFilemark) {
  this->write_three_files();
  this->d().rewind();
  this->d().space_filemarks_forward(2);
  EXPECT_EQ(this->d().tell(), 5u);
  EXPECT_EQ(next(this->d()), "c0");
  this->d().rewind();
  this->d().space_filemarks_forward(1);
  EXPECT_EQ(next(this->d()), "b0");
  // From inside a file, the next filemark is the end of that file.
  this->d().locate(5);
  this->d().space_filemarks_forward(1);
  EXPECT_EQ(this->d().tell(), 8u);
  EXPECT_EQ(next(this->d()), "|EOD|");
}

TYPED_TEST(DriveContractTest, SpaceForwardPastEndOfDataStopsAtEndOfData) {
  this->write_three_files();
  this->d().rewind();
  expect_tape_error(TapeErrorKind::kEndOfData, [&] { this->d().space_filemarks_forward(4); });
  EXPECT_EQ(this->d().tell(), 8u);
  EXPECT_TRUE(this->d().status().eod);
  EXPECT_EQ(this->reads(1), (Objects{"|EOD|"}));
}

TYPED_TEST(DriveContractTest, SpaceFilemarksBackwardLeavesBeforeTheNthFilemark) {
  this->write_three_files();
  this->d().space_to_eod();
  this->d().space_filemarks_backward(1);
  EXPECT_EQ(this->d().tell(), 7u);  // the BOT side of the last filemark
  EXPECT_EQ(next(this->d()), "|FM|");
  EXPECT_EQ(this->d().tell(), 8u);
  this->d().space_filemarks_backward(2);
  EXPECT_EQ(this->d().tell(), 4u);
  EXPECT_EQ(this->reads(2), (Objects{"|FM|", "c0"}));
  // Start of the current file: back over one filemark, forward over it.
  this->d().locate(6);
  this->d().space_filemarks_backward(1);
  this->d().space_filemarks_forward(1);
  EXPECT_EQ(this->d().tell(), 5u);
}

TYPED_TEST(DriveContractTest, SpaceBackwardPastBeginningOfTapeStopsAtBot) {
  this->write_three_files();
  this->d().locate(4);
  expect_tape_error(TapeErrorKind::kBeginningOfTape,
                    [&] { this->d().space_filemarks_backward(2); });
  EXPECT_EQ(this->d().tell(), 0u);
  EXPECT_TRUE(this->d().status().bot);
  EXPECT_EQ(next(this->d()), "a0");
}

TYPED_TEST(DriveContractTest, FilemarksOccupyALogicalBlock) {
  put(this->d(), "a");
  EXPECT_EQ(this->d().tell(), 1u);
  put(this->d(), "b");
  EXPECT_EQ(this->d().tell(), 2u);
  this->d().write_filemarks(1);
  EXPECT_EQ(this->d().tell(), 3u);
  put(this->d(), "c");
  EXPECT_EQ(this->d().tell(), 4u);
  this->d().locate(3);
  EXPECT_EQ(next(this->d()), "c");
  this->d().locate(2);
  EXPECT_EQ(next(this->d()), "|FM|");
  this->d().locate(0);
  EXPECT_EQ(next(this->d()), "a");
  this->d().locate(4);  // end of data is a valid target
  EXPECT_EQ(this->d().tell(), 4u);
  EXPECT_EQ(next(this->d()), "|EOD|");
}

TYPED_TEST(DriveContractTest, LocateBeyondEndOfDataStopsAtEndOfData) {
  put_all(this->d(), {"a", "b"});
  auto e = expect_tape_error(TapeErrorKind::kEndOfData, [&] { this->d().locate(5); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->block(), 5u);
  EXPECT_EQ(this->d().tell(), 2u);
  EXPECT_TRUE(this->d().status().eod);
  EXPECT_EQ(next(this->d()), "|EOD|");
}

TYPED_TEST(DriveContractTest, RewindReturnsToBot) {
  this->write_three_files();
  EXPECT_FALSE(this->d().status().bot);
  this->d().rewind();
  EXPECT_TRUE(this->d().status().bot);
  EXPECT_EQ(this->d().tell(), 0u);
  EXPECT_EQ(next(this->d()), "a0");
}

TYPED_TEST(DriveContractTest, SpaceToEndOfDataThenAppend) {
  put_all(this->d(), {"a", "|FM|"});
  this->d().rewind();
  this->d().space_to_eod();
  EXPECT_EQ(this->d().tell(), 2u);
  EXPECT_TRUE(this->d().status().eod);
  put_all(this->d(), {"b", "|FM|"});
  this->d().rewind();
  EXPECT_EQ(this->reads(5), (Objects{"a", "|FM|", "b", "|FM|", "|EOD|"}));
}

TYPED_TEST(DriveContractTest, WritingInTheMiddleDiscardsWhatFollows) {
  put_all(this->d(), {"r0", "r1", "r2", "r3", "r4", "|FM|"});
  this->d().locate(2);
  put(this->d(), "X");
  EXPECT_EQ(this->d().tell(), 3u);
  EXPECT_TRUE(this->d().status().eod);
  this->d().rewind();
  EXPECT_EQ(this->reads(4), (Objects{"r0", "r1", "X", "|EOD|"}));
  this->d().rewind();
  this->d().space_to_eod();
  EXPECT_EQ(this->d().tell(), 3u);
}

TYPED_TEST(DriveContractTest, FilemarkInTheMiddleDiscardsWhatFollows) {
  put_all(this->d(), {"r0", "r1", "r2", "|FM|"});
  this->d().locate(1);
  this->d().write_filemarks(1);
  this->d().rewind();
  EXPECT_EQ(this->reads(3), (Objects{"r0", "|FM|", "|EOD|"}));
}

TYPED_TEST(DriveContractTest, EmptyAndOversizedRecordsAreRefused) {
  put(this->d(), "a");
  expect_tape_error(TapeErrorKind::kInvalidArgument, [&] { this->d().write_record(ByteSpan()); });
  Bytes huge(kMaxRecordSize + 1);
  expect_tape_error(TapeErrorKind::kInvalidArgument, [&] { this->d().write_record(huge); });
  EXPECT_EQ(this->d().tell(), 1u);
  this->d().rewind();
  EXPECT_EQ(this->reads(2), (Objects{"a", "|EOD|"}));
}

TYPED_TEST(DriveContractTest, EarlyWarningOnTheCrossingWriteThenPhysicalEnd) {
  // 64 KiB tape, early warning 16 KiB before the end; each 4000-byte record
  // takes 4008 bytes: record 13 crosses 48 KiB, record 17 would pass 64 KiB.
  TypeParam harness({64 * 1024, 16 * 1024});
  Drive& d = harness.drive();
  std::vector<Bytes> written;
  int first_warning = -1;
  for (int i = 0; i < 100; ++i) {
    Bytes record = random_bytes(4000, static_cast<std::uint32_t>(i));
    try {
      WriteResult r = d.write_record(record);
      written.push_back(record);
      if (r.early_warning && first_warning < 0) first_warning = i;
      if (first_warning >= 0) {
        EXPECT_TRUE(r.early_warning) << "write " << i;
      }
    } catch (const TapeError& e) {
      EXPECT_EQ(e.kind(), TapeErrorKind::kPhysicalEnd) << e.what();
      break;
    }
  }
  EXPECT_EQ(first_warning, 12);
  EXPECT_EQ(written.size(), 16u);
  EXPECT_TRUE(d.status().early_warning);
  // The physical end keeps refusing records, but a filemark still fits, so a
  // writer can close its tape file cleanly.
  expect_tape_error(TapeErrorKind::kPhysicalEnd, [&] { d.write_record(written[0]); });
  EXPECT_TRUE(d.write_filemarks(1).early_warning);
  expect_tape_error(TapeErrorKind::kPhysicalEnd, [&] { d.write_record(written[0]); });
  d.rewind();
  Bytes buffer(kProbeReadSize);
  for (const Bytes& expected : written) {
    ReadResult r = d.read_record(buffer);
    ASSERT_EQ(r.kind, ReadKind::kData);
    ASSERT_TRUE(std::equal(expected.begin(), expected.end(), buffer.begin()));
  }
  EXPECT_EQ(next_n(d, 2), (Objects{"|FM|", "|EOD|"}));
}

TYPED_TEST(DriveContractTest, WriteProtectedTapeRefusesWritesButReads) {
  put_all(this->d(), {"a", "|FM|"});
  this->harness_.reopen(true);
  EXPECT_TRUE(this->d().status().write_protected);
  expect_tape_error(TapeErrorKind::kWriteProtected, [&] { put(this->d(), "b"); });
  expect_tape_error(TapeErrorKind::kWriteProtected, [&] { this->d().write_filemarks(1); });
  this->d().rewind();
  EXPECT_EQ(this->reads(3), (Objects{"a", "|FM|", "|EOD|"}));
}

TYPED_TEST(DriveContractTest, UnloadedDriveRefusesCommandsUntilLoaded) {
  put_all(this->d(), {"a", "|FM|"});
  this->d().unload();
  EXPECT_FALSE(this->d().status().loaded);
  expect_tape_error(TapeErrorKind::kNotLoaded, [&] { next(this->d()); });
  expect_tape_error(TapeErrorKind::kNotLoaded, [&] { this->d().tell(); });
  this->d().unload();  // a no-op
  this->d().load();
  DriveStatus s = this->d().status();
  EXPECT_TRUE(s.loaded);
  EXPECT_TRUE(s.bot);
  EXPECT_EQ(next(this->d()), "a");
  this->d().load();  // a no-op: stays where it is
  EXPECT_EQ(this->d().tell(), 1u);
}

TYPED_TEST(DriveContractTest, LargestRecordsReadBackIntoAProbeBuffer) {
  // A record of the largest size mixtape writes, read before the record
  // size is known (with a buffer any record fits) and read into memory
  // that is not page-aligned.
  const Bytes record = random_bytes(kMaxWriteRecordSize, 7);
  this->d().write_record(record);
  this->d().write_record(record);
  this->d().rewind();
  RecordBuffer probe(kProbeReadSize);
  ReadResult r = this->d().read_record(probe.span());
  ASSERT_EQ(r.kind, ReadKind::kData);
  ASSERT_EQ(r.size, record.size());
  EXPECT_EQ(0, std::memcmp(probe.data(), record.data(), r.size));
  Bytes unaligned(record.size() + 1);
  r = this->d().read_record(MutableByteSpan(unaligned).subspan(1));
  ASSERT_EQ(r.size, record.size());
  EXPECT_TRUE(std::equal(record.begin(), record.end(), unaligned.begin() + 1));
  EXPECT_EQ(next(this->d()), "|EOD|");
}

TYPED_TEST(DriveContractTest, BlankMeansEndOfDataAtBlockZero) {
  EXPECT_TRUE(tape_is_blank(this->d()));
  put(this->d(), "a");
  EXPECT_FALSE(tape_is_blank(this->d()));
  EXPECT_EQ(this->d().tell(), 0u);
}

TYPED_TEST(DriveContractTest, FirstContactSelfTestPasses) {
  first_contact_test(this->d());
  EXPECT_EQ(this->d().tell(), 0u);
  EXPECT_TRUE(holds_only_first_contact_test(this->d()));
  put(this->d(), "label");
  EXPECT_FALSE(holds_only_first_contact_test(this->d()));
}

TYPED_TEST(DriveContractTest, CountersCountCommands) {
  DriveStats before = this->d().stats();
  for (int i = 0; i < 3; ++i) this->d().write_record(random_bytes(100, i));
  this->d().write_filemarks(1);
  this->d().rewind();
  EXPECT_EQ(this->reads(4).back(), "|FM|");
  this->d().locate(1);
  this->d().space_filemarks_forward(1);
  this->d().space_filemarks_backward(1);
  this->d().space_to_eod();
  this->d().unload();
  this->d().load();
  DriveStats after = this->d().stats();
  // Every counter but the time, compared whole (to_json names the fields).
  DriveStats counted;  // what the commands above count
  counted.loads = counted.unloads = counted.locates = counted.rewinds = counted.eod_spaces = 1;
  counted.filemark_spaces = 2;
  counted.records_written = counted.records_read = 3;
  counted.bytes_written = counted.bytes_read = 300;
  counted.filemarks_written = counted.filemarks_read = 1;
  DriveStats expected = before;
  expected += counted;
  expected.tape_seconds = after.tape_seconds;
  EXPECT_EQ(after.to_json(), expected.to_json());
  EXPECT_GE(after.tape_seconds, before.tape_seconds);
}

}  // namespace
}  // namespace mixtape::tape::testing
