#include "engine/format/tar_header.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <limits>

namespace mixtape::format::tar {

void put_string(Block& block, Field field, std::string_view value) {
  std::size_t n = std::min(value.size(), field.size);
  std::memcpy(block.data() + field.offset, value.data(), n);
}

bool put_number(Block& block, Field field, std::int64_t value) {
  std::uint8_t* out = block.data() + field.offset;
  // field.size - 1 octal digits and a NUL.
  std::size_t digits = field.size - 1;
  if (value >= 0 && (digits >= 21 || static_cast<std::uint64_t>(value) < (1ull << (3 * digits)))) {
    std::uint64_t v = static_cast<std::uint64_t>(value);
    for (std::size_t i = digits; i-- > 0;) {
      out[i] = static_cast<std::uint8_t>('0' + (v & 7));
      v >>= 3;
    }
    out[digits] = 0;
    return true;
  }
  // Base-256: two's complement big-endian over the whole field, with the top
  // bit of the first byte set (0x80 for positive values, 0xff for negative).
  std::uint64_t v = static_cast<std::uint64_t>(value);
  for (std::size_t i = field.size; i-- > 0;) {
    out[i] = static_cast<std::uint8_t>(v & 0xff);
    v = value < 0 ? (v >> 8) | (0xffull << 56) : v >> 8;
  }
  out[0] = value < 0 ? 0xff : 0x80;
  return false;
}

void put_checksum(Block& block) {
  std::memset(block.data() + kChecksum.offset, ' ', kChecksum.size);
  unsigned sum = 0;
  for (std::uint8_t b : block) sum += b;
  // Six octal digits, NUL, space: the form every tar writes.
  std::uint8_t* out = block.data() + kChecksum.offset;
  for (int i = 5; i >= 0; --i) {
    out[i] = static_cast<std::uint8_t>('0' + (sum & 7));
    sum >>= 3;
  }
  out[6] = 0;
  out[7] = ' ';
}

std::string pax_record(std::string_view key, std::string_view value) {
  // The length counts its own digits: grow until it is self-consistent.
  std::size_t body = key.size() + value.size() + 3;  // ' ', '=', '\n'
  std::size_t length = body + 1;
  while (std::to_string(length).size() + body != length) {
    length = std::to_string(length).size() + body;
  }
  std::string record = std::to_string(length);
  record.reserve(length);
  record.append(" ").append(key).append("=").append(value).append("\n");
  return record;
}

std::string_view utf8_prefix(std::string_view text, std::size_t limit) {
  if (text.size() <= limit) return text;
  std::size_t n = limit;
  // Back up over continuation bytes, then over the lead byte they belong to.
  while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xc0) == 0x80) --n;
  return text.substr(0, n);
}

bool is_valid_utf8(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    std::size_t extra;
    std::uint32_t min;
    std::uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      extra = 1, min = 0x80, cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      extra = 2, min = 0x800, cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      extra = 3, min = 0x10000, cp = c & 0x07;
    } else {
      return false;
    }
    if (i + extra >= text.size()) return false;
    for (std::size_t k = 1; k <= extra; ++k) {
      unsigned char cc = static_cast<unsigned char>(text[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    // Overlong forms, surrogates and values beyond Unicode are not UTF-8.
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += extra + 1;
  }
  return true;
}

bool is_hash_hex(std::string_view text) {
  return text.size() == 64 && std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::string printable(std::string_view text) {
  return mixtape::printable(text, 300);
}

std::string_view get_string(const Block& block, Field field) {
  const char* p = reinterpret_cast<const char*>(block.data() + field.offset);
  return {p, strnlen(p, field.size)};
}

std::optional<std::int64_t> get_number(const Block& block, Field field) {
  const std::uint8_t* p = block.data() + field.offset;
  if (p[0] & 0x80) {
    // Base-256. Only 0x80 (positive) and 0xff (negative) are defined.
    if (p[0] != 0x80 && p[0] != 0xff) return std::nullopt;
    bool negative = p[0] == 0xff;
    std::uint64_t v = negative ? ~0ull : 0;
    for (std::size_t i = 1; i < field.size; ++i) {
      // Refuse values that need more than 63 bits.
      std::uint64_t top = v >> 55;
      if (top != (negative ? 0x1ffull : 0)) return std::nullopt;
      v = (v << 8) | p[i];
    }
    auto result = static_cast<std::int64_t>(v);
    if ((result < 0) != negative) return std::nullopt;
    return result;
  }
  std::size_t i = 0;
  while (i < field.size && p[i] == ' ') ++i;
  // An all-blank field reads as 0, as every tar reads it.
  std::uint64_t v = 0;
  for (; i < field.size && p[i] >= '0' && p[i] <= '7'; ++i) {
    if (v > (std::numeric_limits<std::uint64_t>::max() >> 4)) return std::nullopt;
    v = v * 8 + (p[i] - '0');
  }
  // The digits end at a NUL or space, or at the field's end; then only
  // NULs and spaces may follow.
  for (; i < field.size; ++i) {
    if (p[i] != 0 && p[i] != ' ') return std::nullopt;
  }
  if (v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    return std::nullopt;
  }
  return static_cast<std::int64_t>(v);
}

bool checksum_matches(const Block& block) {
  auto stored = get_number(block, kChecksum);
  if (!stored) return false;
  std::int64_t unsigned_sum = 0;
  std::int64_t signed_sum = 0;
  for (std::size_t i = 0; i < kBlockSize; ++i) {
    bool in_field = i >= kChecksum.offset && i < kChecksum.offset + kChecksum.size;
    std::uint8_t b = in_field ? ' ' : block[i];
    unsigned_sum += b;
    signed_sum += static_cast<std::int8_t>(b);
  }
  return *stored == unsigned_sum || *stored == signed_sum;
}

bool is_zero(const Block& block) {
  return std::all_of(block.begin(), block.end(), [](std::uint8_t b) { return b == 0; });
}

std::optional<std::pair<std::string_view, std::string_view>> PaxRecordParser::next() {
  std::string_view rest = data_.substr(pos_);
  // Writers may pad the data with NULs; nothing else may follow the records.
  if (std::all_of(rest.begin(), rest.end(), [](char c) { return c == '\0'; })) {
    pos_ = data_.size();
    return std::nullopt;
  }
  std::size_t space = rest.find(' ');
  if (space == 0 || space == std::string_view::npos || space > 9) {
    throw Error("malformed pax record: no length at byte " + std::to_string(pos_));
  }
  std::size_t length = 0;
  for (std::size_t i = 0; i < space; ++i) {
    if (rest[i] < '0' || rest[i] > '9') {
      throw Error("malformed pax record: bad length at byte " + std::to_string(pos_));
    }
    length = length * 10 + static_cast<std::size_t>(rest[i] - '0');
  }
  if (length > rest.size() || length < space + 4) {
    throw Error("malformed pax record: length " + std::to_string(length) + " at byte " +
                std::to_string(pos_) + " does not fit the extended header");
  }
  std::string_view record = rest.substr(space + 1, length - space - 1);
  if (record.back() != '\n') {
    throw Error("malformed pax record: length " + std::to_string(length) + " at byte " +
                std::to_string(pos_) + " does not end at a newline");
  }
  record.remove_suffix(1);
  std::size_t eq = record.find('=');
  if (eq == 0 || eq == std::string_view::npos) {
    throw Error("malformed pax record at byte " + std::to_string(pos_) + ": no keyword");
  }
  pos_ += length;
  return std::make_pair(record.substr(0, eq), record.substr(eq + 1));
}

std::optional<std::int64_t> parse_pax_integer(std::string_view text) {
  std::int64_t value = 0;
  if (text.empty() || text[0] == '+') return std::nullopt;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<std::int64_t> parse_pax_time_ns(std::string_view text) {
  bool negative = !text.empty() && text[0] == '-';
  if (negative) text.remove_prefix(1);
  std::size_t dot = text.find('.');
  std::string_view whole = text.substr(0, dot);
  std::string_view fraction = dot == std::string_view::npos ? "" : text.substr(dot + 1);
  if (whole.empty() || whole[0] == '+' || whole[0] == '-') return std::nullopt;
  std::int64_t seconds = 0;
  auto [end, ec] = std::from_chars(whole.data(), whole.data() + whole.size(), seconds);
  if (ec != std::errc() || end != whole.data() + whole.size()) return std::nullopt;
  std::int64_t nanos = 0;
  for (std::size_t i = 0; i < fraction.size(); ++i) {
    if (fraction[i] < '0' || fraction[i] > '9') return std::nullopt;
    // Digits beyond nanoseconds are dropped (truncated, like GNU tar).
    if (i < 9) nanos = nanos * 10 + (fraction[i] - '0');
  }
  for (std::size_t i = fraction.size(); i < 9; ++i) nanos *= 10;
  constexpr std::int64_t kLimit = std::numeric_limits<std::int64_t>::max() / 1000000000 - 1;
  if (seconds > kLimit) return std::nullopt;
  std::int64_t ns = seconds * 1000000000 + nanos;
  return negative ? -ns : ns;
}

std::string format_pax_time_ns(std::int64_t ns) {
  // Magnitude in unsigned arithmetic so the most negative value is safe.
  bool negative = ns < 0;
  std::uint64_t magnitude =
      negative ? 0 - static_cast<std::uint64_t>(ns) : static_cast<std::uint64_t>(ns);
  std::string fraction = std::to_string(magnitude % 1000000000);
  fraction.insert(0, 9 - fraction.size(), '0');
  return (negative ? "-" : "") + std::to_string(magnitude / 1000000000) + "." + fraction;
}

}  // namespace mixtape::format::tar
