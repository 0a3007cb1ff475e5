// ImageDrive beyond the common contract: the exact SIMH bytes, what a
// foreign reader sees, the geometry and index sidecars, each kind of damage
// in an image, and the LTO timing model.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/time.h>

#include <cstdio>

#include "engine/crypto/crypto.h"
#include "engine/tape/image_drive.h"
#include "tests/tape/tape_test_util.h"

namespace mixtape::tape::testing {
namespace {

// Builders for hand-made images.
void word(Bytes& out, std::uint32_t w) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::uint8_t>(w >> (8 * i)));
}
void record(Bytes& out, std::string_view data, std::uint32_t cls = 0) {
  const auto header = cls << 28 | static_cast<std::uint32_t>(data.size());
  word(out, header);
  out.insert(out.end(), data.begin(), data.end());
  if (data.size() % 2) out.push_back(0);
  word(out, header);
}

std::string run(const std::string& command) {
  return test_support::run_shell(command).out;
}

class ImageDriveTest : public ::testing::Test {
 protected:
  std::string image(const std::string& name = "tape.tap") { return dir_.file(name); }
  std::unique_ptr<ImageDrive> make(Geometry g = {8 << 20, 1 << 20}) {
    ImageDrive::create(image(), {g.capacity, g.early_warning});
    return ImageDrive::open(image());
  }
  TempDir dir_;
};

TEST_F(ImageDriveTest, WritesExactSimhBytes) {
  {
    auto d = make();
    put(*d, "A");
    put(*d, "BC");
    put(*d, "DEF");
    d->write_filemarks(1);
  }
  Bytes expected;
  record(expected, "A");  // odd: one pad byte, not counted in the length
  record(expected, "BC");
  record(expected, "DEF");
  word(expected, 0);
  Bytes actual = read_file(image());
  EXPECT_EQ(to_hex(actual), to_hex(expected));
  EXPECT_EQ(actual[5], 0) << "the pad byte should be 0";
}

// A record gathered from pieces is the record of their concatenation, byte
// for byte (empty pieces add nothing); the size limits apply to the whole.
TEST_F(ImageDriveTest, GatheredRecordIsTheRecordOfItsPiecesJoined) {
  {
    auto d = make();
    const ByteSpan pieces[] = {as_bytes("DE"), ByteSpan(), as_bytes("F")};
    d->write_record_gathered(pieces);
    put(*d, "DEF");
    const ByteSpan none[] = {ByteSpan(), ByteSpan()};
    expect_tape_error(TapeErrorKind::kInvalidArgument, [&] { d->write_record_gathered(none); });
    Bytes half(kMaxRecordSize / 2 + 1, 1);
    const ByteSpan too_big[] = {half, half};
    expect_tape_error(TapeErrorKind::kInvalidArgument, [&] { d->write_record_gathered(too_big); });
    EXPECT_EQ(d->tell(), 2u);
  }
  Bytes expected;
  record(expected, "DEF");
  record(expected, "DEF");
  EXPECT_EQ(to_hex(read_file(image())), to_hex(expected));
}

TEST_F(ImageDriveTest, IndependentSimhReaderReadsRecordForRecord) {
  std::string expected;
  {
    auto d = make({32 << 20, 1 << 20});
    std::uint32_t seed = 1;
    for (int file = 0; file < 3; ++file) {
      for (std::size_t size : {std::size_t{1}, std::size_t{4095}, std::size_t{65536},
                               std::size_t{524288}, std::size_t{777}}) {
        Bytes data = random_bytes(size, seed++);
        d->write_record(data);
        expected +=
            "record " + std::to_string(size) + " " + to_hex(crypto::blake2b256(data)) + "\n";
      }
      d->write_filemarks(1);
      expected += "mark\n";
    }
  }
  expected += "end\n";
  std::string output =
      run("python3 " MIXTAPE_SOURCE_DIR "/tests/tape/simh_read.py '" + image() + "' 2>&1");
  EXPECT_EQ(output, expected);
}

TEST_F(ImageDriveTest, GeometryIsKeptInMetaSidecarAndImageStaysPureSimh) {
  ImageDrive::create(image(), {1 << 20, 100000});
  EXPECT_EQ(read_file(image()).size(), 0u);
  std::string meta(as_chars(read_file(image() + ".meta")));
  EXPECT_NE(meta.find("capacity: 1048576\n"), std::string::npos) << meta;
  EXPECT_NE(meta.find("early-warning: 100000\n"), std::string::npos) << meta;
  auto d = ImageDrive::open(image());
  EXPECT_EQ(d->geometry().capacity, 1u << 20);
  EXPECT_EQ(d->geometry().early_warning, 100000u);
  expect_tape_error(TapeErrorKind::kDeviceError, [&] {
    ImageDrive::create(image(), {1 << 20, 0});
  });
}

TEST_F(ImageDriveTest, DefaultEarlyWarningIsOneSixtyFourthOfCapacity) {
  ImageDrive::create(image(), {64 << 20, 0});
  EXPECT_EQ(ImageDrive::open(image())->geometry().early_warning, 1u << 20);
  expect_tape_error(TapeErrorKind::kInvalidArgument, [&] {
    ImageDrive::create(image("bad.tap"), {1 << 20, 1 << 20});
  });
}

TEST_F(ImageDriveTest, ForeignImageWithoutMetaIsAFullSizeTape) {
  Bytes raw;
  record(raw, "hello");
  word(raw, 0);
  write_file(image(), raw);
  auto d = ImageDrive::open(image());
  EXPECT_EQ(d->geometry().capacity, kLto6NativeBytes);
  EXPECT_EQ(next(*d), "hello");
  EXPECT_EQ(next(*d), "|FM|");
  EXPECT_EQ(next(*d), "|EOD|");
}

TEST_F(ImageDriveTest, TwoDrivesCannotHoldOneImage) {
  auto d = make();
  expect_tape_error(TapeErrorKind::kDeviceError, [&] { ImageDrive::open(image()); });
}

// A drive opened on a path is a bay a changer loads (mtx driving images):
// unloaded, its cartridge is out and its image free for another drive;
// loaded again, it reads whatever image is at the path now.
TEST_F(ImageDriveTest, AnUnloadedImageIsReleasedAndALoadReadsWhatIsAtThePathNow) {
  ImageDrive::create(image("a.tap"), {8 << 20, 1 << 20});
  ImageDrive::create(image("b.tap"), {8 << 20, 1 << 20});
  std::filesystem::create_symlink(image("a.tap"), image("bay.tap"));
  auto bay = ImageDrive::open(image("bay.tap"));
  bay->write_record(as_bytes(std::string_view("on a")));
  bay->unload();
  // Out of the drive: another drive may hold it.
  auto other = ImageDrive::open(image("a.tap"));
  other->unload();
  // The robot puts b where a was.
  std::filesystem::remove(image("bay.tap"));
  std::filesystem::create_symlink(image("b.tap"), image("bay.tap"));
  bay->load();
  EXPECT_TRUE(bay->status().bot);
  EXPECT_TRUE(bay->status().eod) << "b is blank";
  bay->write_record(as_bytes(std::string_view("on b")));
  bay->unload();
  // And back: a still holds its record.
  std::filesystem::remove(image("bay.tap"));
  std::filesystem::create_symlink(image("a.tap"), image("bay.tap"));
  bay->load();
  Bytes buffer(64);
  ReadResult r = bay->read_record(buffer);
  ASSERT_EQ(r.kind, ReadKind::kData);
  EXPECT_EQ(as_chars(ByteSpan(buffer.data(), r.size)), "on a");
  EXPECT_EQ(bay->stats().loads, 2u);
}

// ------------------------------------------------------------- the index

constexpr int kRecords = 100'000;

void write_numbered_records(ImageDrive& d, int count) {
  for (int i = 0; i < count; ++i) {
    std::string text = "rec" + std::to_string(i);
    d.write_record(as_bytes(text));
    if (i % 10'000 == 9'999) d.write_filemarks(1);
  }
}

// Block of record i: one filemark after every 10,000 records.
std::uint64_t block_of(int i) {
  return static_cast<std::uint64_t>(i + i / 10'000);
}

TEST_F(ImageDriveTest, LocateOnAHundredThousandRecordsReadsTheImageAtMostTwice) {
  {
    auto d = make({64 << 20, 1 << 20});
    write_numbered_records(*d, kRecords);
  }
  auto d = ImageDrive::open(image());
  // Opening only checks that the index ends where the image does.
  EXPECT_LE(d->image_reads(), 2u) << "the index sidecar should make scanning unnecessary";
  for (int i : {99'999, 3, 54'321, 0, 77'777}) {
    std::uint64_t before = d->image_reads();
    d->locate(block_of(i));
    EXPECT_EQ(d->image_reads(), before) << "locate must not read the image";
    EXPECT_EQ(next(*d), "rec" + std::to_string(i));
    EXPECT_LE(d->image_reads() - before, 2u) << "one read for the header, one for the data";
  }
  std::uint64_t before = d->image_reads();
  d->rewind();
  d->space_filemarks_forward(7);
  d->space_to_eod();
  d->space_filemarks_backward(3);
  EXPECT_EQ(d->image_reads(), before) << "spacing must not read the image";
  EXPECT_EQ(d->tell(), block_of(80'000) - 1);  // before the 8th of 10 filemarks
}

TEST_F(ImageDriveTest, MissingIndexIsRebuiltByScanningTransparently) {
  {
    auto d = make({64 << 20, 1 << 20});
    write_numbered_records(*d, 20'000);
  }
  ASSERT_EQ(::unlink((image() + ".idx").c_str()), 0);
  {
    auto d = ImageDrive::open(image());
    EXPECT_GT(d->image_reads(), 0u);  // it scanned
    d->locate(block_of(12'345));
    EXPECT_EQ(next(*d), "rec12345");
    d->space_to_eod();
    EXPECT_EQ(d->tell(), block_of(20'000));
  }
  struct stat st {};
  EXPECT_EQ(::stat((image() + ".idx").c_str(), &st), 0) << "the rebuilt index is saved";
  EXPECT_LE(ImageDrive::open(image())->image_reads(), 2u);  // the end checked, nothing scanned
}

TEST_F(ImageDriveTest, StaleIndexAfterAppendByAnotherToolIsRebuilt) {
  {
    auto d = make();
    put(*d, "a");
    d->write_filemarks(1);
  }
  // Another SIMH tool appends a file; our sidecar still describes 2 blocks.
  Bytes raw = read_file(image());
  record(raw, "b");
  word(raw, 0);
  write_file(image(), raw);
  auto d = ImageDrive::open(image());
  d->space_filemarks_forward(1);
  EXPECT_EQ(next(*d), "b");
  EXPECT_EQ(next(*d), "|FM|");
  EXPECT_EQ(next(*d), "|EOD|");
}

TEST_F(ImageDriveTest, StaleIndexOfSameSizeImageIsRebuilt) {
  {
    auto d = make();
    put(*d, "aaaa");
    put(*d, "bbbb");  // 12 bytes in the image
  }
  // Rewrite the second record in place as three tape marks (same 12 bytes).
  Bytes raw = read_file(image());
  std::fill(raw.begin() + 12, raw.end(), 0);
  write_file(image(), raw);
  timeval times[2] = {{2'000'000'000, 0}, {2'000'000'000, 0}};  // a distinct mtime
  ASSERT_EQ(::utimes(image().c_str(), times), 0);
  auto d = ImageDrive::open(image());
  EXPECT_EQ(next(*d), "aaaa");
  EXPECT_EQ(next(*d), "|FM|");
  EXPECT_EQ(next(*d), "|FM|");
  EXPECT_EQ(next(*d), "|FM|");
  EXPECT_EQ(next(*d), "|EOD|");
}

TEST_F(ImageDriveTest, DamagedIndexIsRebuilt) {
  {
    auto d = make();
    put(*d, "a");
    put(*d, "b");
  }
  Bytes index = read_file(image() + ".idx");
  index[index.size() / 2] ^= 0xff;
  write_file(image() + ".idx", index);
  auto d = ImageDrive::open(image());
  d->locate(1);
  EXPECT_EQ(next(*d), "b");
}

// An index saved for another state of the image, put back with the image's
// size and mtime (as a forger, or a careless copy, would): the image has
// changed since (its ctime says so), and the index is rebuilt, not believed.
TEST_F(ImageDriveTest, AnIndexOfAnotherStateWithTheImagesSizeAndMtimeIsNotTrusted) {
  {
    auto d = make();
    put(*d, "aaaa");
    put(*d, "bbbb");  // 12 bytes in the image
    d->write_filemarks(1);
  }
  const Bytes old_index = read_file(image() + ".idx");
  struct stat before {};
  ASSERT_EQ(::stat(image().c_str(), &before), 0);
  // The second record becomes three tape marks: the same 12 bytes.
  Bytes raw = read_file(image());
  std::fill(raw.begin() + 12, raw.begin() + 24, 0);
  write_file(image(), raw);
  write_file(image() + ".idx", old_index);
  const timespec times[2] = {before.st_atim, before.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, image().c_str(), times, 0), 0);
  auto d = ImageDrive::open(image());
  EXPECT_EQ(next(*d), "aaaa");
  for (int i = 0; i < 4; ++i) EXPECT_EQ(next(*d), "|FM|") << i;
  EXPECT_EQ(next(*d), "|EOD|");
}

// A sidecar forged to match every field of the image's fingerprint, with a
// valid checksum (docs/TAPE.md layout): its end of data must be the image's,
// and every record read must end where it says the next block starts. A
// forgery caught either way is replaced by a scan.
TEST_F(ImageDriveTest, AForgedIndexIsCheckedAgainstTheImage) {
  {
    auto d = make();
    put(*d, "a");
    put(*d, "b");
    d->write_filemarks(1);
    put(*d, "c");
    d->write_filemarks(1);  // blocks at 0, 10, 20, 24, 34; end of data 38
  }
  const Bytes genuine = read_file(image() + ".idx");
  auto le64 = [](const Bytes& b, std::size_t at) {
    std::uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = v << 8 | b[at + static_cast<std::size_t>(i)];
    return v;
  };
  auto put64 = [](Bytes& b, std::size_t at, std::uint64_t v) {
    for (int i = 0; i < 8; ++i)
      b[at + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v >> (8 * i));
  };
  // Entries start at 64; count at 56, end of data at 48; FNV-1a 64 last.
  auto forge = [&](std::vector<std::uint64_t> entries, std::uint64_t eod) {
    Bytes out(genuine.begin(), genuine.begin() + 64);
    put64(out, 48, eod);
    put64(out, 56, entries.size());
    for (std::uint64_t e : entries) {
      out.resize(out.size() + 8);
      put64(out, out.size() - 8, e);
    }
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (std::uint8_t c : out) h = (h ^ c) * 0x100000001b3ULL;
    out.resize(out.size() + 8);
    put64(out, out.size() - 8, h);
    write_file(image() + ".idx", out);
  };
  ASSERT_EQ(le64(genuine, 56), 5u);
  constexpr std::uint64_t kMark = std::uint64_t{1} << 63;
  // The last file hidden: end of data at the first filemark's end.
  forge({0, 10, 20 | kMark}, 24);
  {
    auto d = ImageDrive::open(image());
    d->space_to_eod();
    EXPECT_EQ(d->tell(), 5u);
  }
  // Record "b" left out: locally consistent from block 1 on, but block 0
  // does not end where block 1 is said to start.
  forge({0, 20 | kMark, 24, 34 | kMark}, 38);
  auto d = ImageDrive::open(image());
  EXPECT_EQ(next(*d), "a");
  EXPECT_EQ(next(*d), "b");
  EXPECT_EQ(next(*d), "|FM|");
  EXPECT_EQ(next(*d), "c");
  EXPECT_EQ(next(*d), "|FM|");
  EXPECT_EQ(next(*d), "|EOD|");
}

// ------------------------------------------------- damage and SIMH features

TEST_F(ImageDriveTest, BadDataRecordIsAMediaErrorAndReadingContinues) {
  Bytes raw;
  record(raw, "good0");
  record(raw, "junk", 0x8);  // class 8: the error flag
  word(raw, 0x80000000);     // class 8, length 0: bad record, no data recovered
  record(raw, "good3");
  write_file(image(), raw);
  auto d = ImageDrive::open(image());
  EXPECT_EQ(next(*d), "good0");
  auto e = expect_tape_error(TapeErrorKind::kMediaError, [&] { next(*d); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->block(), 1u);
  EXPECT_NE(std::string(e->what()).find(image() + ": media error reading block 1"),
            std::string::npos)
      << e->what();
  e = expect_tape_error(TapeErrorKind::kMediaError, [&] { next(*d); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->block(), 2u);
  EXPECT_EQ(next(*d), "good3");
  EXPECT_EQ(next(*d), "|EOD|");
  EXPECT_EQ(d->stats().media_errors, 2u);
}

TEST_F(ImageDriveTest, EndOfMediumMarkerIsAPrematureEndOfData) {
  Bytes raw;
  record(raw, "one");
  word(raw, 0);
  word(raw, 0xFFFFFFFF);  // end of medium: what follows is not on the tape
  record(raw, "ghost");
  write_file(image(), raw);
  {
    auto d = ImageDrive::open(image());
    EXPECT_EQ(next(*d), "one");
    EXPECT_EQ(next(*d), "|FM|");
    EXPECT_EQ(next(*d), "|EOD|");
    d->space_to_eod();
    EXPECT_EQ(d->tell(), 2u);
    put(*d, "two");  // appending overwrites the marker and what follows
  }
  Bytes expected;
  record(expected, "one");
  word(expected, 0);
  record(expected, "two");
  EXPECT_EQ(to_hex(read_file(image())), to_hex(expected));
}

TEST_F(ImageDriveTest, GapsMarkersAndPrivateRecordsAreSkipped) {
  Bytes raw;
  word(raw, 0xFFFFFFFE);  // erase gap
  record(raw, "abc");
  record(raw, "private", 0x1);      // a private data record
  word(raw, 0x70000001);            // a private marker
  record(raw, "description", 0xE);  // a tape description record
  record(raw, "def");
  word(raw, 0);
  write_file(image(), raw);
  auto d = ImageDrive::open(image());
  EXPECT_EQ(next(*d), "abc");
  EXPECT_EQ(d->tell(), 1u);
  EXPECT_EQ(next(*d), "def");
  EXPECT_EQ(next(*d), "|FM|");
  EXPECT_EQ(next(*d), "|EOD|");
  d->locate(1);
  EXPECT_EQ(next(*d), "def");
}

TEST_F(ImageDriveTest, TruncatedTrailingRecordIsIgnored) {
  {
    auto d = make();
    put(*d, "complete");
    put(*d, "cut short by a crash");
  }
  ASSERT_EQ(::truncate(image().c_str(), static_cast<off_t>(read_file(image()).size() - 3)), 0);
  ::unlink((image() + ".idx").c_str());
  {
    auto d = ImageDrive::open(image());
    EXPECT_EQ(next(*d), "complete");
    EXPECT_EQ(next(*d), "|EOD|");
    put(*d, "again");
  }
  Bytes expected;
  record(expected, "complete");
  record(expected, "again");
  EXPECT_EQ(to_hex(read_file(image())), to_hex(expected));
}

TEST_F(ImageDriveTest, MismatchedTrailingLengthIsAMediaError) {
  Bytes raw;
  record(raw, "broken");
  raw[raw.size() - 4] = 7;  // trailing length no longer matches
  record(raw, "fine");
  write_file(image(), raw);
  auto d = ImageDrive::open(image());
  auto e = expect_tape_error(TapeErrorKind::kMediaError, [&] { next(*d); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->block(), 0u);
  EXPECT_EQ(next(*d), "fine");
}

// ------------------------------------------------------------------ timing

TEST(TimingModel, IsCalibratedToLto6) {
  TimingModel m;
  EXPECT_DOUBLE_EQ(m.locate_seconds(kLto6NativeBytes / 2), 60.0);  // average from BOT
  EXPECT_DOUBLE_EQ(m.rewind_seconds(kLto6NativeBytes), 60.0);      // full rewind
  EXPECT_DOUBLE_EQ(m.rewind_seconds(kLto6NativeBytes / 4), 15.0);
  EXPECT_DOUBLE_EQ(m.stream_seconds(160'000'000), 1.0);
  EXPECT_DOUBLE_EQ(m.locate_seconds(0), 0.0);
  EXPECT_GT(m.locate_seconds(2'000'000'000'000), m.locate_seconds(1'000'000'000'000));
}

TEST_F(ImageDriveTest, TapeSecondsMatchHandComputedModel) {
  ImageDrive::create(image(), {10ull << 30, 1 << 20});
  auto d = ImageDrive::open(image());
  const double stream = 160e6, base = 10, speed = 25e9;
  const double record_bytes = 1048576 + 8;  // one 1 MiB record in the image
  const double eod = 3 * record_bytes + 4;  // 3 records and a filemark
  double expected = 0;
  Bytes data = random_bytes(1 << 20, 9);
  for (int i = 0; i < 3; ++i) d->write_record(data);
  expected += 3 * 1048576 / stream;
  d->write_filemarks(1);
  d->rewind();
  expected += 60 * eod / 2.5e12;
  d->locate(2);
  expected += base + 2 * record_bytes / speed;
  next(*d);
  expected += 1048576 / stream;
  d->locate(2);
  expected += base + record_bytes / speed;
  d->locate(2);  // already there: no movement, no time
  d->space_to_eod();
  expected += base + (eod - 2 * record_bytes) / speed;
  d->unload();
  expected += 60 * eod / 2.5e12 + 17;
  d->load();
  expected += 12;
  DriveStats s = d->stats();
  EXPECT_NEAR(s.tape_seconds, expected, 1e-9);
  EXPECT_EQ(s.locates, 3u);
  EXPECT_EQ(s.loads, 1u);
  EXPECT_EQ(s.unloads, 1u);
  EXPECT_EQ(s.rewinds, 1u);
  EXPECT_EQ(s.eod_spaces, 1u);
  EXPECT_EQ(s.records_written, 3u);
  EXPECT_EQ(s.bytes_written, 3u << 20);
  EXPECT_EQ(s.records_read, 1u);
  EXPECT_EQ(s.bytes_read, 1u << 20);
}

TEST_F(ImageDriveTest, FilemarkSpacingIsPricedByDistance) {
  ImageDrive::create(image(), {10ull << 30, 1 << 20});
  auto d = ImageDrive::open(image());
  Bytes data = random_bytes(1000, 3);
  d->write_record(data);
  d->write_filemarks(1);
  d->write_record(data);
  d->write_filemarks(1);
  d->rewind();
  double before = d->stats().tape_seconds;
  d->space_filemarks_forward(1);
  EXPECT_NEAR(d->stats().tape_seconds - before, 10 + (1008 + 4) / 25e9, 1e-9);
  before = d->stats().tape_seconds;
  d->space_filemarks_backward(1);  // back to the BOT side of that filemark
  EXPECT_NEAR(d->stats().tape_seconds - before, 10 + 4 / 25e9, 1e-9);
  EXPECT_EQ(d->stats().filemark_spaces, 2u);
}

TEST(DriveStats, JsonHasEveryCounter) {
  DriveStats s;
  s.loads = 1;
  s.unloads = 2;
  s.locates = 3;
  s.filemark_spaces = 4;
  s.rewinds = 5;
  s.records_read = 6;
  s.records_written = 7;
  s.bytes_read = 8;
  s.bytes_written = 9;
  s.filemarks_written = 10;
  s.tape_seconds = 12.5;
  std::string json = s.to_json();
  for (const char* field :
       {"\"loads\": 1", "\"unloads\": 2", "\"locates\": 3", "\"filemark_spaces\": 4",
        "\"rewinds\": 5", "\"records_read\": 6", "\"records_written\": 7", "\"bytes_read\": 8",
        "\"bytes_written\": 9", "\"filemarks_written\": 10", "\"tape_seconds\": 12.5"}) {
    EXPECT_NE(json.find(field), std::string::npos) << field << " in " << json;
  }
  EXPECT_EQ(json.front(), '{');
  EXPECT_EQ(json.back(), '}');
  DriveStats sum = s;
  sum += s;
  EXPECT_EQ(sum.loads, 2u);
  EXPECT_DOUBLE_EQ(sum.tape_seconds, 25.0);
}

TEST_F(ImageDriveTest, OpenDriveMakesImagesOnRequestOnly) {
  expect_tape_error(TapeErrorKind::kNotLoaded, [&] { open_drive(image("none.tap")); });
  OpenDriveOptions options;
  options.create_if_missing = true;
  options.geometry = {4 << 20, 0};
  std::unique_ptr<Drive> d = open_drive(image("new.tap"), options);
  put(*d, "x");
  EXPECT_EQ(d->name(), image("new.tap"));
}

}  // namespace
}  // namespace mixtape::tape::testing
