// Key text a user hands mixtape (engine/crypto bech32.cc, keys.cc,
// base64.cc): identity files (--identity, mount -o identity=), recipients
// (--recipient, recipients files), and the unpadded base64 of age stanzas.
//
// Each of these parsers is strict so that a key has exactly one text form:
// whatever parses must print back as the very input (Bech32 up to case,
// which the encoder normalises).
#include <string>

#include "engine/crypto/crypto.h"
#include "engine/crypto/internal.h"
#include "fuzz/fuzz_util.h"

namespace mixtape::crypto {
namespace {

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

void bech32(std::string_view text) {
  internal::Bech32 decoded;
  try {
    decoded = internal::bech32_decode(text);
  } catch (const AgeError& e) {
    FUZZ_CHECK(e.kind() == AgeErrorKind::KeyMalformed);
    return;
  }
  FUZZ_CHECK(internal::bech32_encode(lower(decoded.hrp), decoded.data) == lower(text));
}

void single_keys(std::string_view text) {
  try {
    FUZZ_CHECK(X25519Recipient::parse(text).to_string() == text);
  } catch (const AgeError& e) {
    FUZZ_CHECK(e.kind() == AgeErrorKind::KeyMalformed);
  }
  try {
    X25519Identity identity = X25519Identity::parse(text);
    std::string printed = identity.to_string();
    FUZZ_CHECK(printed == text);
    wipe(printed);
  } catch (const AgeError& e) {
    FUZZ_CHECK(e.kind() == AgeErrorKind::KeyMalformed);
  }
}

void key_files(std::string_view text) {
  try {
    for (const X25519Identity& identity : parse_identities(text, "fuzz")) {
      // Every key parsed from a file is a valid key on its own.
      std::string printed = identity.to_string();
      FUZZ_CHECK(X25519Identity::parse(printed).recipient() == identity.recipient());
      wipe(printed);
    }
  } catch (const AgeError& e) {
    FUZZ_CHECK(e.kind() == AgeErrorKind::KeyMalformed);
  }
  try {
    for (const X25519Recipient& recipient : parse_recipients(text, "fuzz")) {
      FUZZ_CHECK(X25519Recipient::parse(recipient.to_string()) == recipient);
    }
  } catch (const AgeError& e) {
    FUZZ_CHECK(e.kind() == AgeErrorKind::KeyMalformed);
  }
}

void base64(std::string_view text) {
  for (bool padded : {false, true}) {
    if (auto bytes = internal::base64_decode(text, padded)) {
      FUZZ_CHECK(internal::base64_encode(*bytes, padded) == text);
    }
  }
}

}  // namespace
}  // namespace mixtape::crypto

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace mixtape::crypto;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  bech32(text);
  single_keys(text);
  key_files(text);
  base64(text);
  return 0;
}
