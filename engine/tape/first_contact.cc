// Tape-level checks any drive can run: is the tape blank, and does the drive
// behave as the Drive contract says (the first-contact self-test).
#include <cstring>

#include "engine/tape/tape.h"

namespace mixtape::tape {

bool tape_is_blank(Drive& drive) {
  drive.rewind();
  RecordBuffer probe(kProbeReadSize);
  const ReadResult first = drive.read_record(probe.span());
  const bool blank = first.kind == ReadKind::kEndOfData && drive.tell() == 0;
  drive.rewind();
  return blank;
}

namespace {

// Two records of different sizes and contents, so merged, cut or swapped
// records show.
Bytes test_record(std::size_t size, std::uint8_t seed) {
  Bytes record(size);
  for (std::size_t i = 0; i < size; ++i) record[i] = static_cast<std::uint8_t>(seed + i * 7);
  return record;
}

[[noreturn]] void self_test_failed(Drive& drive, const std::string& what) {
  throw TapeError(TapeErrorKind::kDeviceError,
                  drive.name() + ": first-contact self-test failed: " + what +
                      " (docs/TAPE.md, \"First contact\": is st in variable-block mode with "
                      "scsi2logical set?)");
}

const Bytes& first_test_record() {
  static const Bytes record = test_record(10240, 1);
  return record;
}
const Bytes& second_test_record() {
  static const Bytes record = test_record(512, 2);
  return record;
}

}  // namespace

bool holds_only_first_contact_test(Drive& drive) {
  drive.rewind();
  RecordBuffer buffer(kProbeReadSize);
  bool match = true;
  for (const Bytes* expected : {&first_test_record(), &second_test_record()}) {
    const ReadResult r = drive.read_record(buffer.span());
    match = match && r.kind == ReadKind::kData && r.size == expected->size() &&
            std::memcmp(buffer.data(), expected->data(), r.size) == 0;
    if (!match) break;
  }
  match = match && drive.read_record(buffer.span()).kind == ReadKind::kFilemark &&
          drive.read_record(buffer.span()).kind == ReadKind::kEndOfData;
  drive.rewind();
  return match;
}

void first_contact_test(Drive& drive) {
  const Bytes& first = first_test_record();
  const Bytes& second = second_test_record();
  drive.rewind();
  drive.write_record(first);
  drive.write_record(second);
  drive.write_filemarks(1);
  const std::uint64_t after = drive.tell();
  if (after != 3) {
    self_test_failed(drive,
                     "after two records and a filemark at the beginning of the tape the "
                     "drive says block " +
                         std::to_string(after) + ", not 3");
  }
  drive.rewind();
  RecordBuffer buffer(kProbeReadSize);
  for (const Bytes* expected : {&first, &second}) {
    const std::uint64_t block = drive.tell();
    const ReadResult r = drive.read_record(buffer.span());
    if (r.kind != ReadKind::kData || r.size != expected->size() ||
        std::memcmp(buffer.data(), expected->data(), r.size) != 0) {
      self_test_failed(drive, "the record written at block " + std::to_string(block) + " (" +
                                  std::to_string(expected->size()) +
                                  " bytes) did not read back whole");
    }
  }
  if (drive.read_record(buffer.span()).kind != ReadKind::kFilemark || drive.tell() != 3) {
    self_test_failed(drive, "the filemark written at block 2 did not read back there");
  }
  drive.rewind();
}

}  // namespace mixtape::tape
