// The sidecars an image drive trusts (engine/tape image_index.cc load(),
// image_medium.cc read_meta()): "<image>.idx", the cached block index, and
// "<image>.meta", the geometry. A found image can come with sidecars made by
// anyone, so both are input; an index that matches the image's fingerprint
// is used, though checked against the image where it is read, and it may
// point anywhere in the image.
//
// Input: a 4-byte little-endian image length L, a 2-byte meta length M,
// then L image bytes, M meta bytes (M = 0: no .meta file), and the rest is
// the .idx. So that mutations reach past the index's guards, the fuzzer
// writes the current version and the image's real size, mtime, ctime and
// inode into the index and recomputes its checksum, as a deliberate forger
// would.
//
// Checked besides crashes: whatever the index says, reads fail only with
// media or size errors and move one block, positions stay within end of
// data, and appending after a damaged index leaves exactly what was written.
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "engine/tape/image_drive.h"
#include "engine/tape/tape.h"
#include "fuzz/fuzz_util.h"

namespace mixtape::tape {
namespace {

constexpr std::size_t kIndexHeader = 64;
constexpr std::uint64_t kMaxSteps = 4096;

std::uint32_t le32(const std::uint8_t* p) {
  return std::uint32_t{p[0]} | std::uint32_t{p[1]} << 8 | std::uint32_t{p[2]} << 16 |
         std::uint32_t{p[3]} << 24;
}

void put_le64(std::uint8_t* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}

// The index with the image's fingerprint and a valid checksum (the layout
// of docs/TAPE.md "The block index").
Bytes forged_index(ByteSpan index, const std::string& image) {
  Bytes out(index.begin(), index.end());
  if (out.size() < kIndexHeader + 8) return out;
  struct stat st {};
  if (::stat(image.c_str(), &st) != 0) throw_errno("stat " + image);
  out[8] = 2;  // version 2, little-endian
  out[9] = out[10] = out[11] = 0;
  put_le64(out.data() + 16, static_cast<std::uint64_t>(st.st_size));
  put_le64(out.data() + 24,
           static_cast<std::uint64_t>(st.st_mtim.tv_sec * 1'000'000'000LL + st.st_mtim.tv_nsec));
  put_le64(out.data() + 32,
           static_cast<std::uint64_t>(st.st_ctim.tv_sec * 1'000'000'000LL + st.st_ctim.tv_nsec));
  put_le64(out.data() + 40, static_cast<std::uint64_t>(st.st_ino));
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (std::size_t i = 0; i + 8 < out.size(); ++i) h = (h ^ out[i]) * 0x100000001b3ULL;
  put_le64(out.data() + out.size() - 8, h);
  return out;
}

// Reads from the start to end of data and returns where it was met. A
// forged index that keeps its ends right may misplace block numbers until a
// read finds a record where it says none ends; the index is then rebuilt
// from the image (docs/DECISIONS.md, "The block index is checked, not
// believed"), so end of data is where reading meets it, and from then on
// the drive says so too.
std::uint64_t read_to_eod(Drive& drive) {
  Bytes buffer(64 * 1024);
  drive.rewind();
  for (std::uint64_t step = 0; step < kMaxSteps; ++step) {
    const std::uint64_t before = drive.tell();
    try {
      if (drive.read_record(buffer).kind == ReadKind::kEndOfData) {
        FUZZ_CHECK(drive.tell() == before);
        drive.space_to_eod();
        FUZZ_CHECK(drive.tell() == before);
        return before;
      }
    } catch (const TapeError& e) {
      FUZZ_CHECK(e.kind() == TapeErrorKind::kMediaError ||
                 e.kind() == TapeErrorKind::kRecordTooLarge);
    }
    FUZZ_CHECK(drive.tell() == before + 1);
  }
  drive.space_to_eod();
  return drive.tell();
}

void space_around(Drive& drive, std::uint64_t eod) {
  drive.rewind();
  for (std::uint64_t step = 0; step < kMaxSteps; ++step) {
    try {
      drive.space_filemarks_forward(1);
    } catch (const TapeError& e) {
      FUZZ_CHECK(e.kind() == TapeErrorKind::kEndOfData && drive.tell() == eod);
      break;
    }
    FUZZ_CHECK(drive.tell() <= eod);
  }
  for (std::uint64_t step = 0; step < kMaxSteps; ++step) {
    try {
      drive.space_filemarks_backward(1);
    } catch (const TapeError& e) {
      FUZZ_CHECK(e.kind() == TapeErrorKind::kBeginningOfTape && drive.tell() == 0);
      break;
    }
    FUZZ_CHECK(drive.tell() < eod);
  }
}

void append_at(Drive& drive, std::uint64_t block) {
  drive.locate(block);
  const Bytes record = {'f', 'u', 'z', 'z'};
  try {
    drive.write_record(record);
    drive.write_filemarks(1);
  } catch (const TapeError& e) {
    // A .meta can make the tape tiny: then there is no room to append.
    FUZZ_CHECK(e.kind() == TapeErrorKind::kPhysicalEnd);
    return;
  }
  drive.space_to_eod();
  FUZZ_CHECK(drive.tell() == block + 2);
  drive.locate(block);
  Bytes buffer(16);
  ReadResult r = drive.read_record(buffer);
  FUZZ_CHECK(r.kind == ReadKind::kData && r.size == record.size());
  FUZZ_CHECK(std::equal(record.begin(), record.end(), buffer.begin()));
  FUZZ_CHECK(drive.read_record(buffer).kind == ReadKind::kFilemark);
  FUZZ_CHECK(drive.read_record(buffer).kind == ReadKind::kEndOfData);
}

}  // namespace
}  // namespace mixtape::tape

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace mixtape;
  using namespace mixtape::tape;
  if (size < 6) return 0;
  const ByteSpan input(data, size);
  std::size_t image_size = std::min<std::size_t>(le32(data), size - 6);
  std::size_t meta_size = std::min<std::size_t>(data[4] | data[5] << 8, size - 6 - image_size);
  const ByteSpan image = input.subspan(6, image_size);
  const ByteSpan meta = input.subspan(6 + image_size, meta_size);
  const ByteSpan index = input.subspan(6 + image_size + meta_size);

  const std::string path = fuzz::scratch().file("sidecar.tap");
  fuzz::remove_with_sidecars(path);
  fuzz::write_file(path, image);
  if (!meta.empty()) fuzz::write_file(path + ".meta", meta);
  fuzz::write_file(path + ".idx", forged_index(index, path));

  std::unique_ptr<ImageDrive> drive;
  try {
    drive = ImageDrive::open(path);
  } catch (const TapeError& e) {
    // Only the geometry may be refused; an index is rebuilt, never an error.
    FUZZ_CHECK(e.kind() == TapeErrorKind::kDeviceError && !meta.empty());
    return 0;
  }
  const std::uint64_t eod = read_to_eod(*drive);
  space_around(*drive, eod);
  append_at(*drive, eod / 2);
  return 0;
}
