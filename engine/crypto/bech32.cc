// Bech32 (BIP 173) as age uses it: no length limit, one case throughout, the
// checksum computed over the lower-case string.
#include <algorithm>
#include <cctype>

#include "engine/crypto/internal.h"

namespace mixtape::crypto::internal {
namespace {

constexpr std::string_view kCharset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";

std::uint32_t polymod(const Bytes& values) {
  static constexpr std::uint32_t kGenerator[] = {0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd,
                                                 0x2a1462b3};
  std::uint32_t chk = 1;
  for (std::uint8_t v : values) {
    std::uint32_t top = chk >> 25;
    chk = ((chk & 0x1ffffff) << 5) ^ v;
    for (int i = 0; i < 5; ++i)
      if ((top >> i) & 1) chk ^= kGenerator[i];
  }
  return chk;
}

Bytes hrp_expand(std::string_view hrp) {
  Bytes out;
  out.reserve(hrp.size() * 2 + 1);
  for (char c : hrp) out.push_back(static_cast<std::uint8_t>(c) >> 5);
  out.push_back(0);
  for (char c : hrp) out.push_back(static_cast<std::uint8_t>(c) & 31);
  return out;
}

std::string to_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

[[noreturn]] void malformed(const std::string& why) {
  fail(AgeErrorKind::KeyMalformed, "invalid Bech32 key: " + why);
}

}  // namespace

std::string bech32_encode(std::string_view hrp_in, ByteSpan data) {
  std::string hrp = to_lower(hrp_in);
  // Regroup 8-bit bytes into 5-bit values, zero-padding the last group.
  Bytes values;
  values.reserve(data.size() * 8 / 5 + 8);
  WipeOnExit wipe_values(values);
  std::uint32_t acc = 0;
  int bits = 0;
  for (std::uint8_t b : data) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      values.push_back(static_cast<std::uint8_t>((acc >> bits) & 31));
    }
    acc &= (1u << bits) - 1;
  }
  if (bits > 0) values.push_back(static_cast<std::uint8_t>((acc << (5 - bits)) & 31));

  Bytes check = hrp_expand(hrp);
  check.reserve(check.size() + values.size() + 6);
  WipeOnExit wipe_check(check);
  check.insert(check.end(), values.begin(), values.end());
  check.insert(check.end(), 6, 0);
  std::uint32_t mod = polymod(check) ^ 1;
  for (int i = 0; i < 6; ++i)
    values.push_back(static_cast<std::uint8_t>((mod >> (5 * (5 - i))) & 31));

  std::string out = hrp + "1";
  out.reserve(out.size() + values.size());
  for (std::uint8_t v : values) out += kCharset[v];
  return out;
}

Bech32 bech32_decode(std::string_view text) {
  bool has_lower =
      std::any_of(text.begin(), text.end(), [](char c) { return c >= 'a' && c <= 'z'; });
  bool has_upper =
      std::any_of(text.begin(), text.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
  if (has_lower && has_upper) malformed("mixed case");
  std::size_t pos = text.rfind('1');
  if (pos == std::string_view::npos || pos < 1 || pos + 7 > text.size())
    malformed("separator '1' missing or misplaced");
  std::string_view hrp = text.substr(0, pos);
  for (char c : hrp)
    if (c < 33 || c > 126) malformed("invalid character in prefix");
  // Identities pass through here: every temporary is wiped on the way out.
  std::string lower = to_lower(text);
  WipeOnExit wipe_lower(lower);
  Bytes values;
  values.reserve(lower.size());
  WipeOnExit wipe_values(values);
  for (char c : std::string_view(lower).substr(pos + 1)) {
    std::size_t v = kCharset.find(c);
    if (v == std::string_view::npos) malformed("invalid character");
    values.push_back(static_cast<std::uint8_t>(v));
  }
  Bytes check = hrp_expand(std::string_view(lower).substr(0, pos));
  check.reserve(check.size() + values.size());
  WipeOnExit wipe_check(check);
  check.insert(check.end(), values.begin(), values.end());
  if (polymod(check) != 1) malformed("checksum mismatch");
  values.resize(values.size() - 6);

  Bytes data;
  data.reserve(values.size() * 5 / 8 + 1);
  std::uint32_t acc = 0;
  int bits = 0;
  for (std::uint8_t v : values) {
    acc = (acc << 5) | v;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      data.push_back(static_cast<std::uint8_t>(acc >> bits));
    }
    acc &= (1u << bits) - 1;
  }
  // The padding must be shorter than one group and all zero, or the same
  // key would have several encodings.
  if (bits >= 5 || acc != 0) {
    wipe(data.data(), data.capacity());
    malformed("invalid padding");
  }
  return {std::string(hrp), std::move(data)};
}

}  // namespace mixtape::crypto::internal
