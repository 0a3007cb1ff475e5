// RecordWriter and TapeFileReader: byte streams cut into records and read
// back file by file.
#include <gtest/gtest.h>

#include "engine/tape/image_drive.h"
#include "tests/tape/tape_test_util.h"

namespace mixtape::tape::testing {
namespace {

class RecordIoTest : public ::testing::Test {
 protected:
  RecordIoTest() : image_({8 << 20, 1 << 20}) {}
  Drive& d() { return image_.drive(); }
  ImageHarness image_;
};

std::vector<std::size_t> record_sizes(Drive& d) {
  std::vector<std::size_t> sizes;
  Bytes buffer(kProbeReadSize);
  for (;;) {
    ReadResult r = d.read_record(buffer);
    if (r.kind != ReadKind::kData) break;
    sizes.push_back(r.size);
  }
  return sizes;
}

TEST_F(RecordIoTest, CutsTheStreamIntoFixedRecordsTheLastOneShorter) {
  Bytes data = random_bytes(2500, 1);
  RecordWriter writer(d(), 1000);
  ByteSpan rest(data);
  for (std::size_t chunk : {7, 993, 1500}) {
    writer.write(rest.first(chunk));
    rest = rest.subspan(chunk);
  }
  writer.close();
  EXPECT_EQ(writer.records_written(), 3u);
  EXPECT_EQ(writer.bytes_written(), 2500u);
  EXPECT_FALSE(writer.early_warning());
  d().rewind();
  EXPECT_EQ(record_sizes(d()), (std::vector<std::size_t>{1000, 1000, 500}));
  EXPECT_EQ(next(d()), "|EOD|") << "close() ends the file with one filemark";
}

TEST_F(RecordIoTest, EmptyStreamIsAnEmptyTapeFile) {
  RecordWriter writer(d(), 1000);
  writer.close();
  writer.close();  // once is enough
  d().rewind();
  EXPECT_EQ(next(d()), "|FM|");
  EXPECT_EQ(next(d()), "|EOD|");
  expect_tape_error(TapeErrorKind::kInvalidArgument, [&] { RecordWriter(d(), 0); });
}

TEST_F(RecordIoTest, ReaderReturnsEachFileAndConsumesItsFilemark) {
  Bytes first = random_bytes(10'000, 2), second = random_bytes(3'000, 3);
  for (const Bytes* data : {&first, &second}) {
    RecordWriter writer(d(), 4096);
    writer.write(*data);
    writer.close();
  }
  d().rewind();
  {
    TapeFileReader reader(d(), 4096);
    Bytes got;
    std::uint8_t chunk[333];
    for (std::size_t n; (n = reader.read(chunk)) > 0;) got.insert(got.end(), chunk, chunk + n);
    EXPECT_EQ(got, first);
    EXPECT_EQ(reader.read(chunk), 0u);
    EXPECT_FALSE(reader.ended_at_eod());
    EXPECT_EQ(reader.records_read(), 3u);
    EXPECT_EQ(d().tell(), 4u) << "positioned at the next file";
  }
  {
    TapeFileReader reader(d());
    Bytes got(kProbeReadSize);  // big enough to be filled straight from the drive
    std::size_t n = read_full(reader, got);
    got.resize(n);
    EXPECT_EQ(got, second);
  }
  TapeFileReader past_the_end(d());
  std::uint8_t byte;
  EXPECT_EQ(past_the_end.read(MutableByteSpan(&byte, 1)), 0u);
  EXPECT_TRUE(past_the_end.ended_at_eod());
}

TEST_F(RecordIoTest, ReaderBufferSmallerThanARecordIsAnError) {
  RecordWriter writer(d(), 4096);
  writer.write(random_bytes(4096, 4));
  writer.close();
  d().rewind();
  TapeFileReader reader(d(), 1024);
  std::uint8_t chunk[100];
  expect_tape_error(TapeErrorKind::kRecordTooLarge, [&] { reader.read(chunk); });
}

TEST_F(RecordIoTest, MediaErrorReachesTheReaderAndReadingCanContinue) {
  RecordWriter writer(d(), 10);
  writer.write(as_bytes("0123456789abcdefghijABCDEFGHIJ"));
  writer.close();
  d().rewind();
  FaultInjectingDrive faulty(d());
  faulty.add_bad_record(1);
  TapeFileReader reader(faulty, 10);
  std::uint8_t chunk[10];
  EXPECT_EQ(reader.read(chunk), 10u);
  expect_tape_error(TapeErrorKind::kMediaError, [&] { reader.read(chunk); });
  EXPECT_EQ(reader.read(chunk), 10u);
  EXPECT_EQ(as_chars(ByteSpan(chunk, 10)), "ABCDEFGHIJ");
  EXPECT_EQ(reader.read(chunk), 0u);
}

TEST_F(RecordIoTest, EarlyWarningIsReportedNotThrownAndPhysicalEndThrows) {
  FaultInjectingDrive faulty(d());
  faulty.set_early_warning_at(3);
  faulty.set_physical_end_at(6);
  RecordWriter writer(faulty, 100);
  writer.write(random_bytes(300, 5));  // blocks 0..2
  EXPECT_FALSE(writer.early_warning());
  writer.write(random_bytes(100, 6));  // block 3 crosses into the zone
  EXPECT_TRUE(writer.early_warning());
  writer.write(random_bytes(150, 7));  // block 4; 50 bytes wait for close
  // close() writes block 5, but its filemark would be block 6: past the end.
  expect_tape_error(TapeErrorKind::kPhysicalEnd, [&] { writer.close(); });
  EXPECT_EQ(writer.records_written(), 6u);
}

// The bytes of every record from the start of the tape, and how many.
Bytes tape_bytes(Drive& d, std::size_t* records = nullptr) {
  d.rewind();
  Bytes all, buffer(kProbeReadSize);
  std::size_t count = 0;
  for (ReadResult r; (r = d.read_record(buffer)).kind == ReadKind::kData; ++count)
    all.insert(all.end(), buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(r.size));
  if (records) *records = count;
  return all;
}

// Shared buffers are written where they are: each straddling record is
// gathered from the end of one buffer and the start of the next, and a tail
// waits (with its owner) for the bytes that complete it.
TEST_F(RecordIoTest, SharedBuffersMakeTheSameRecordsAsCopiedBytes) {
  Bytes data = random_bytes(10'000, 8);
  std::vector<std::shared_ptr<const Bytes>> owners;
  RecordWriter writer(d(), 1000);
  ByteSpan rest(data);
  // Pieces smaller than a record, exactly a record, straddling several, and
  // a copied write() between shared ones.
  std::size_t i = 0;
  for (std::size_t size : {300, 1000, 2700, 50, 10, 4200, 1740}) {
    auto owner = std::make_shared<const Bytes>(rest.begin(), rest.begin() + size);
    if (i++ == 4) {
      writer.write(*owner);
    } else {
      writer.write_shared(*owner, owner);
      owners.push_back(owner);
    }
    rest = rest.subspan(size);
  }
  ASSERT_TRUE(rest.empty());
  writer.close();
  EXPECT_EQ(writer.records_written(), 10u);
  EXPECT_EQ(writer.bytes_written(), data.size());
  for (const auto& owner : owners) EXPECT_EQ(owner.use_count(), 1) << "the writer let go";
  std::size_t records = 0;
  EXPECT_EQ(tape_bytes(d(), &records), data);
  EXPECT_EQ(records, 10u);
  d().rewind();
  EXPECT_EQ(record_sizes(d()), std::vector<std::size_t>(10, 1000));
}

TEST_F(RecordIoTest, ASharedTailIsHeldUntilTheNextBytesOrClose) {
  auto first = std::make_shared<const Bytes>(random_bytes(1500, 9));
  RecordWriter writer(d(), 1000);
  writer.write_shared(*first, first);
  EXPECT_EQ(writer.records_written(), 1u);
  EXPECT_EQ(first.use_count(), 2) << "500 bytes wait for their record, in place";
  writer.close();
  EXPECT_EQ(first.use_count(), 1);
  EXPECT_EQ(tape_bytes(d()), *first);
  d().rewind();
  EXPECT_EQ(record_sizes(d()), (std::vector<std::size_t>{1000, 500}));
}

// A drive that cannot gather (here one injecting faults) gets the default:
// the pieces joined, then its own write_record, faults and all.
TEST_F(RecordIoTest, GatheredRecordsOnADriveWithoutGatherAreJoined) {
  FaultInjectingDrive faulty(d());
  faulty.set_physical_end_at(3);
  Bytes data = random_bytes(2500, 10);
  RecordWriter writer(faulty, 1000);
  auto a = std::make_shared<const Bytes>(data.begin(), data.begin() + 700);
  auto b = std::make_shared<const Bytes>(data.begin() + 700, data.end());
  writer.write_shared(*a, a);
  writer.write_shared(*b, b);  // record 0 gathered from a and b, record 1 from b
  EXPECT_EQ(writer.records_written(), 2u);
  // The last 500 bytes and the filemark: the filemark is past the end.
  expect_tape_error(TapeErrorKind::kPhysicalEnd, [&] { writer.close(); });
  EXPECT_EQ(tape_bytes(d()), data);
}

}  // namespace
}  // namespace mixtape::tape::testing
