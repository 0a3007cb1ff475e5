// Private to engine/format: the ustar header block and pax records
// (POSIX.1-2017 "pax" utility, sections "ustar Interchange Format" and
// "pax Extended Header"), shared by the writer and the reader.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "engine/common/common.h"

namespace mixtape::format::tar {

inline constexpr std::size_t kBlockSize = 512;
using Block = std::array<std::uint8_t, kBlockSize>;

// A fixed-width field of the ustar header.
struct Field {
  std::size_t offset;
  std::size_t size;
};
inline constexpr Field kName{0, 100};
inline constexpr Field kMode{100, 8};
inline constexpr Field kUid{108, 8};
inline constexpr Field kGid{116, 8};
inline constexpr Field kSize{124, 12};
inline constexpr Field kMtime{136, 12};
inline constexpr Field kChecksum{148, 8};
inline constexpr Field kTypeflag{156, 1};
inline constexpr Field kLinkname{157, 100};
inline constexpr Field kMagic{257, 6};
inline constexpr Field kVersion{263, 2};
inline constexpr Field kUname{265, 32};
inline constexpr Field kGname{297, 32};
inline constexpr Field kDevmajor{329, 8};
inline constexpr Field kDevminor{337, 8};
inline constexpr Field kPrefix{345, 155};

// Type flags.
inline constexpr char kTypeFile = '0';
inline constexpr char kTypeHardlink = '1';
inline constexpr char kTypeSymlink = '2';
inline constexpr char kTypeDirectory = '5';
inline constexpr char kTypePaxLocal = 'x';
inline constexpr char kTypePaxGlobal = 'g';
inline constexpr char kTypeGnuLongName = 'L';
inline constexpr char kTypeGnuLongLink = 'K';

// Extended headers (pax 'x'/'g', GNU 'L'/'K') larger than this are refused:
// no real name or record set comes close, and a hostile size must not make
// the reader allocate.
inline constexpr std::uint64_t kMaxExtendedHeaderSize = 1 << 20;

inline std::uint64_t padded(std::uint64_t size) {
  return (size + kBlockSize - 1) / kBlockSize * kBlockSize;
}

// ---- writing

// Copies up to field.size bytes (no terminator needed when full).
void put_string(Block& block, Field field, std::string_view value);
// Octal with a NUL terminator when the value fits, otherwise GNU base-256
// (which GNU tar, libarchive, Go and Python all read); returns false when the
// value did not fit in octal, so a pax record must carry it.
bool put_number(Block& block, Field field, std::int64_t value);
// Fills the checksum field; call last.
void put_checksum(Block& block);

// One pax record "<len> <key>=<value>\n", len counting itself.
std::string pax_record(std::string_view key, std::string_view value);

// The longest prefix of `text` of at most `limit` bytes that does not end
// inside a UTF-8 sequence.
std::string_view utf8_prefix(std::string_view text, std::size_t limit);
bool is_valid_utf8(std::string_view text);
// 64 lower-case hex digits: a BLAKE2b-256 as b2sum prints it.
bool is_hash_hex(std::string_view text);
// For error messages: control characters and bytes >= 0x7f as \xNN, so a
// hostile name cannot break the one-line message.
std::string printable(std::string_view text);

// ---- reading

std::string_view get_string(const Block& block, Field field);
// Octal (leading spaces, then digits, then NUL/space) or base-256; nullopt
// when malformed. An empty field reads as 0.
std::optional<std::int64_t> get_number(const Block& block, Field field);
// POSIX checksum (unsigned sum); the historic signed sum is accepted too.
bool checksum_matches(const Block& block);
bool is_zero(const Block& block);

// A pax record parser over an extended header's data.
class PaxRecordParser {
 public:
  explicit PaxRecordParser(std::string_view data) : data_(data) {}
  // Next record; nullopt at the end. Throws Error (message without context)
  // on malformed syntax.
  std::optional<std::pair<std::string_view, std::string_view>> next();

 private:
  std::string_view data_;
  std::size_t pos_ = 0;
};

// Pax numbers: a decimal integer ("size", "uid"), and a time with an optional
// fraction ("mtime=-12.5"), in nanoseconds. nullopt when malformed or out of
// range.
std::optional<std::int64_t> parse_pax_integer(std::string_view text);
std::optional<std::int64_t> parse_pax_time_ns(std::string_view text);
std::string format_pax_time_ns(std::int64_t ns);

}  // namespace mixtape::format::tar
