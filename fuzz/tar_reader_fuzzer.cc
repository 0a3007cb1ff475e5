// The tar member reader (engine/format tar_reader.cc, tar_header.cc) and the
// tape label it carries (label.cc): the input is a tar as it comes off tape,
// an archive's plaintext or tape file 0.
//
// Checked besides crashes: a refused member ("member skipped") costs only
// that member and reading goes on; every member handed out has a safe,
// normalised relative name and block-aligned offsets; its data is exactly
// its size; and seeking straight to a member's header (what a restore does
// with the offset from the index) gives the same member as reading up to it.
#include <string>
#include <vector>

#include "engine/format/format.h"
#include "fuzz/fuzz_util.h"

namespace mixtape::format {
namespace {

constexpr int kMaxMembers = 10000;

bool skipped(const FormatError& e) {
  return std::string_view(e.what()).ends_with("member skipped");
}

void check_member(const TarMember& m) {
  FUZZ_CHECK(!m.info.path.empty());
  auto safe = safe_relative_path(m.info.path);
  FUZZ_CHECK(safe && *safe == m.info.path);
  FUZZ_CHECK(m.offsets.header_offset % kTarBlockSize == 0);
  FUZZ_CHECK(m.offsets.data_offset % kTarBlockSize == 0);
  FUZZ_CHECK(m.offsets.data_offset > m.offsets.header_offset);
  FUZZ_CHECK(m.info.mode <= 07777);
  if (m.info.type != MemberType::kFile && m.info.type != MemberType::kOther) {
    FUZZ_CHECK(m.info.size == 0);
  }
}

std::vector<TarMember> read_sequentially(ByteSpan input) {
  std::vector<TarMember> members;
  MemorySource source(input);
  TarReader reader(source, "fuzz.tar");
  Bytes buffer(3000);
  for (int i = 0; i < kMaxMembers; ++i) {
    std::optional<TarMember> member;
    try {
      member = reader.next();
    } catch (const FormatError& e) {
      if (skipped(e)) continue;
      break;
    }
    if (!member) break;
    check_member(*member);
    FUZZ_CHECK(reader.position() == member->offsets.data_offset);
    // Read some members' data and step over the others unread, as a
    // restore that wants only some files does.
    if (i % 2 == 0) {
      std::uint64_t got = 0;
      try {
        while (std::size_t n = reader.read_data(buffer)) got += n;
      } catch (const FormatError&) {
        break;  // truncated inside the data
      }
      FUZZ_CHECK(got == member->info.size);
      FUZZ_CHECK(reader.position() == member->offsets.data_offset + got);
    }
    members.push_back(std::move(*member));
  }
  return members;
}

// Global pax headers ('g') before a member apply to it when the archive is
// read from the start, but not when a restore seeks to the member: mixtape
// never writes them, so members after one are not compared. Blocks are recognised loosely; a false
// hit only skips checks.
bool global_header_before(ByteSpan input, std::uint64_t offset) {
  for (std::uint64_t at = 0; at + kTarBlockSize <= offset; at += kTarBlockSize) {
    const std::uint8_t* block = input.data() + at;
    if (block[156] == 'g' &&
        std::string_view(reinterpret_cast<const char*>(block + 257), 5) == "ustar") {
      return true;
    }
  }
  return false;
}

}  // namespace
}  // namespace mixtape::format

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace mixtape;
  using namespace mixtape::format;
  const ByteSpan input(data, size);
  for (const TarMember& member : read_sequentially(input)) {
    if (global_header_before(input, member.offsets.header_offset)) continue;
    MemorySource archive(input);
    TarMember again = read_member_at(archive, member.offsets.header_offset, "fuzz.tar");
    FUZZ_CHECK(again.offsets == member.offsets);
    FUZZ_CHECK(again.info == member.info);
    FUZZ_CHECK(again.typeflag == member.typeflag);
  }
  try {
    MemorySource file0(input);
    LabelInfo label = read_label(file0);
    // A label that parses prints back to a text that parses to it.
    FUZZ_CHECK(parse_label(format_label(label)) == label);
  } catch (const FormatError&) {
  }
  return 0;
}
