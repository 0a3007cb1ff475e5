// SIMH .tap image reading (engine/tape image_medium.cc, image_index.cc,
// image_drive.cc, record_io.cc): the input is a whole tape image, as a found
// image file or a copy of a tape would be. ImageDrive opens it (no sidecars,
// so the block index is rebuilt by scanning), then the drive is driven as
// recover and restore drive it: every object read in order, filemarks spaced
// over forward and back, every block located and read, file 0 read as a
// label.
//
// Checked besides crashes:
//  - the Drive contract: each read moves exactly one block, also when it
//    fails; spacing and locating end where the contract says; EOD is EOD.
//  - the saved index sidecar is faithful: reopening the image (which loads
//    the .idx instead of scanning) gives the very same answers.
//  - writing onto a damaged image (the next backup appending after it)
//    leaves exactly the new record and filemark at the end.
#include <string>
#include <vector>

#include "engine/format/format.h"
#include "engine/tape/image_drive.h"
#include "engine/tape/tape.h"
#include "fuzz/fuzz_util.h"

namespace mixtape::tape {
namespace {

// More blocks than this are not all located one by one (time, not safety).
constexpr std::uint64_t kMaxLocates = 4096;

std::uint64_t checksum(ByteSpan data) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (std::uint8_t b : data) h = (h ^ b) * 0x100000001b3ULL;
  return h;
}

// What a drive answered, in order: compared between two opens of one image.
class Trace {
 public:
  void add(std::uint64_t a, std::uint64_t b = 0) {
    values_.push_back(a);
    values_.push_back(b);
  }
  bool operator==(const Trace&) const = default;

 private:
  std::vector<std::uint64_t> values_;
};

// Reads the object at the drive's position into the trace; returns false at
// end of data. Contract: the position moves one block, whatever happened.
bool read_one(Drive& drive, MutableByteSpan buffer, Trace& trace) {
  const std::uint64_t before = drive.tell();
  try {
    ReadResult r = drive.read_record(buffer);
    if (r.kind == ReadKind::kEndOfData) {
      FUZZ_CHECK(drive.tell() == before);
      trace.add(100);
      return false;
    }
    FUZZ_CHECK(r.size <= buffer.size());
    trace.add(static_cast<std::uint64_t>(r.kind), checksum(buffer.first(r.size)) ^ r.size);
  } catch (const TapeError& e) {
    FUZZ_CHECK(e.kind() == TapeErrorKind::kMediaError ||
               e.kind() == TapeErrorKind::kRecordTooLarge);
    FUZZ_CHECK(e.block() == before);
    trace.add(200 + static_cast<std::uint64_t>(e.kind()));
  }
  FUZZ_CHECK(drive.tell() == before + 1);
  return true;
}

Trace exercise(Drive& drive) {
  Trace trace;
  Bytes buffer(64 * 1024);
  // Everything, in order, to end of data.
  drive.rewind();
  while (read_one(drive, buffer, trace)) {
  }
  const std::uint64_t eod = drive.tell();
  trace.add(eod);
  drive.rewind();
  drive.space_to_eod();
  FUZZ_CHECK(drive.tell() == eod);
  FUZZ_CHECK(drive.status().eod);

  // Filemarks forward from BOT, then back from EOD.
  drive.rewind();
  for (;;) {
    const std::uint64_t before = drive.tell();
    try {
      drive.space_filemarks_forward(1);
    } catch (const TapeError& e) {
      FUZZ_CHECK(e.kind() == TapeErrorKind::kEndOfData);
      FUZZ_CHECK(drive.tell() == eod);
      break;
    }
    FUZZ_CHECK(drive.tell() > before && drive.tell() <= eod);
    trace.add(drive.tell());
  }
  for (;;) {
    const std::uint64_t before = drive.tell();
    try {
      drive.space_filemarks_backward(1);
    } catch (const TapeError& e) {
      FUZZ_CHECK(e.kind() == TapeErrorKind::kBeginningOfTape);
      FUZZ_CHECK(drive.tell() == 0);
      break;
    }
    FUZZ_CHECK(drive.tell() < before);
    trace.add(drive.tell());
    // Just before a filemark: reading it reports it.
    Bytes small(16);
    const std::uint64_t mark = drive.tell();
    FUZZ_CHECK(drive.read_record(small).kind == ReadKind::kFilemark);
    drive.locate(mark);
  }

  // Every block located and read on its own (a restore's access pattern).
  for (std::uint64_t block = 0; block < eod && block < kMaxLocates; ++block) {
    drive.locate(block);
    FUZZ_CHECK(drive.tell() == block);
    read_one(drive, buffer, trace);
  }
  try {
    drive.locate(eod + 1);
    FUZZ_CHECK(false);
  } catch (const TapeError& e) {
    FUZZ_CHECK(e.kind() == TapeErrorKind::kEndOfData);
    FUZZ_CHECK(drive.tell() == eod);
  }

  // File 0 as a label, through the record stream recover reads it with.
  drive.rewind();
  try {
    TapeFileReader file0(drive, buffer.size());
    format::LabelInfo label = format::read_label(file0);
    trace.add(label.record_size, checksum(as_bytes(label.serial)));
  } catch (const format::FormatError&) {
    trace.add(300);
  } catch (const TapeError& e) {
    FUZZ_CHECK(e.kind() == TapeErrorKind::kMediaError ||
               e.kind() == TapeErrorKind::kRecordTooLarge);
    trace.add(400);
  }
  return trace;
}

// Appends a record and a filemark at `block` of the image and reads them back.
void append_and_check(const std::string& path, std::uint64_t block) {
  auto drive = ImageDrive::open(path);
  drive->locate(block);
  const Bytes record = {'m', 'i', 'x', 't', 'a', 'p', 'e'};
  drive->write_record(record);
  drive->write_filemarks(1);
  FUZZ_CHECK(drive->tell() == block + 2);
  drive->space_to_eod();
  FUZZ_CHECK(drive->tell() == block + 2);
  drive->locate(block);
  Bytes buffer(64);
  ReadResult r = drive->read_record(buffer);
  FUZZ_CHECK(r.kind == ReadKind::kData && r.size == record.size());
  FUZZ_CHECK(std::equal(record.begin(), record.end(), buffer.begin()));
  FUZZ_CHECK(drive->read_record(buffer).kind == ReadKind::kFilemark);
  FUZZ_CHECK(drive->read_record(buffer).kind == ReadKind::kEndOfData);
}

}  // namespace
}  // namespace mixtape::tape

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace mixtape;
  using namespace mixtape::tape;
  const std::string path = fuzz::scratch().file("image.tap");
  fuzz::remove_with_sidecars(path);
  fuzz::write_file(path, ByteSpan(data, size));

  Trace scanned;
  std::uint64_t eod = 0;
  {
    auto drive = ImageDrive::open(path, /*write_protected=*/true);
    scanned = exercise(*drive);
    drive->space_to_eod();
    eod = drive->tell();
  }  // saves the .idx sidecar
  {
    auto drive = ImageDrive::open(path, /*write_protected=*/true);
    FUZZ_CHECK(exercise(*drive) == scanned);
  }
  append_and_check(path, eod / 2);
  return 0;
}
