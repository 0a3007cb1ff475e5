// SIMH magtape format constants ("SIMH Magtape Representation and Handling",
// Bob Supnik, 2022; summarised in docs/TAPE.md). Private to engine/tape.
//
// An image is a sequence of objects. A 4-byte little-endian word is either a
// metadata marker or the leading length word of a data record; a record is
// the length word, the data padded to even length (the pad byte is not
// counted in the length), and the length word again. The top four bits of a
// word are its class, the low 28 its value (record length).
#pragma once

#include <cstdint>

namespace mixtape::tape::simh {

inline constexpr std::uint32_t kTapeMark = 0x00000000;
inline constexpr std::uint32_t kEndOfMedium = 0xFFFFFFFF;
inline constexpr std::uint32_t kEraseGap = 0xFFFFFFFE;
// Half of an erase gap overwritten by an even-but-not-multiple-of-4 record:
// forward readers realign by 2 bytes.
inline constexpr std::uint32_t kForwardHalfGap = 0xFFFEFFFF;

inline constexpr std::uint32_t kClassGood = 0x0;
inline constexpr std::uint32_t kClassPrivateMarker = 0x7;
inline constexpr std::uint32_t kClassBad = 0x8;  // bad data record ("error flag")
inline constexpr std::uint32_t kClassReservedMarker = 0xF;

inline constexpr std::uint32_t kValueMask = 0x0FFFFFFF;
// The standard format limits records to 24 bits of length.
inline constexpr std::uint32_t kMaxStandardLength = 0x00FFFFFF;

inline constexpr std::uint32_t word_class(std::uint32_t word) {
  return word >> 28;
}
inline constexpr std::uint32_t word_value(std::uint32_t word) {
  return word & kValueMask;
}
// Bytes of data on disk for a record of `length` bytes: padded to even.
inline constexpr std::uint64_t padded(std::uint64_t length) {
  return (length + 1) & ~std::uint64_t{1};
}
// Bytes a record of `length` bytes occupies in an image.
inline constexpr std::uint64_t record_bytes(std::uint64_t length) {
  return 8 + padded(length);
}
inline constexpr std::uint64_t kMarkerBytes = 4;

inline std::uint32_t load_le32(const std::uint8_t* p) {
  return std::uint32_t{p[0]} | std::uint32_t{p[1]} << 8 | std::uint32_t{p[2]} << 16 |
         std::uint32_t{p[3]} << 24;
}
inline void store_le32(std::uint8_t* p, std::uint32_t v) {
  p[0] = static_cast<std::uint8_t>(v);
  p[1] = static_cast<std::uint8_t>(v >> 8);
  p[2] = static_cast<std::uint8_t>(v >> 16);
  p[3] = static_cast<std::uint8_t>(v >> 24);
}

}  // namespace mixtape::tape::simh
