// age header parsing and STREAM decryption (engine/crypto header.cc,
// stream.cc, x25519.cc, scrypt.cc, age.cc): the input is a whole age file,
// binary or armored, as it would come off tape or from a user.
//
// The keys are fixed and known (the C2SP CCTV test kit's X25519 identities
// and its passphrase), so inputs made for them reach the payload, and the
// fuzzer mutates real headers and real chunks. scrypt's work factor is capped
// low so a passphrase stanza costs milliseconds, not a second.
//
// Besides crashes it checks that the ways of reading a file agree: with
// armor detection or without (and an armored file as its decoded armor), and
// for binary files the sequential decryptor, the random-access decryptor and
// the restore path (header, then payload from chunk 1). Whatever plaintext
// one releases must be exactly what the others release, and a file that
// decrypts one way must decrypt every way.
#include <algorithm>
#include <optional>

#include "engine/crypto/crypto.h"
#include "fuzz/fuzz_util.h"

namespace mixtape::crypto {
namespace {

const AgeDecryptKeys& keys() {
  static const AgeDecryptKeys k = [] {
    AgeDecryptKeys made;
    made.identities.push_back(X25519Identity::parse(
        "AGE-SECRET-KEY-1EGTZVFFV20835NWYV6270LXYVK2VKNX2MMDKWYKLMGR48UAWX40Q2P2LM0"));
    made.identities.push_back(X25519Identity::parse(
        "AGE-SECRET-KEY-143WN7DCXU4G8R5AXQSSYD9AEPYDNT3HXSLWSPK36CDU6E8M59SSSAGZ3KG"));
    made.passphrase.emplace("password");
    made.max_work_factor = 10;
    return made;
  }();
  return k;
}

struct Outcome {
  Bytes plaintext;  // everything released, also before a failure
  bool complete = false;
  std::optional<AgeErrorKind> error;
};

Outcome sequential(ByteSpan data, AgeArmor armor) {
  Outcome out;
  MemorySource source(data);
  try {
    AgeDecryptOptions options;
    options.armor = armor;
    options.threads = 1;
    AgeDecryptor decryptor(source, keys(), options);
    Bytes buffer(5000);  // not a divisor of the chunk size: reads straddle chunks
    for (;;) {
      std::size_t n = decryptor.read(buffer);
      if (n == 0) break;
      out.plaintext.insert(out.plaintext.end(), buffer.begin(),
                           buffer.begin() + static_cast<std::ptrdiff_t>(n));
    }
    out.complete = true;
  } catch (const AgeError& e) {
    out.error = e.kind();
  }
  return out;
}

// The restore path: header and nonce byte by byte, then the payload from
// chunk 1 on, read from where the geometry says it starts.
std::optional<Bytes> from_second_chunk(ByteSpan data) {
  try {
    MemorySource header_source(data);
    AgeFileKeys file = read_age_header(header_source, keys());
    std::uint64_t offset = age_chunk_offset(file.header_length, 1);
    if (offset > data.size()) return std::nullopt;
    MemorySource rest(data.subspan(static_cast<std::size_t>(offset)));
    AgePayloadDecryptor payload(rest, file.payload_key, 1, 1);
    return fuzz::drain(payload, 7000);
  } catch (const AgeError&) {
    return std::nullopt;
  }
}

void check_random_access(ByteSpan data, const Outcome& seq) {
  MemorySource source(data);
  std::optional<AgeRandomAccessDecryptor> ra;
  try {
    ra.emplace(source, keys());
  } catch (const AgeError&) {
    // The final chunk did not authenticate: a file the sequential reader
    // cannot finish either.
    FUZZ_CHECK(!seq.complete);
    return;
  }
  const std::uint64_t size = ra->size();
  FUZZ_CHECK(size < data.size());
  Bytes whole(static_cast<std::size_t>(size));
  bool all_read = true;
  // Pieces that cross chunk boundaries; a damaged chunk fails only its piece.
  constexpr std::size_t kPiece = 40000;
  for (std::uint64_t at = 0; at < size; at += kPiece) {
    auto piece = MutableByteSpan(whole).subspan(
        static_cast<std::size_t>(at),
        static_cast<std::size_t>(std::min<std::uint64_t>(kPiece, size - at)));
    try {
      FUZZ_CHECK(ra->read_at(at, piece) == piece.size());
    } catch (const AgeError& e) {
      FUZZ_CHECK(e.kind() == AgeErrorKind::PayloadCorrupt);
      all_read = false;
      continue;
    }
    // What both released must be the same bytes.
    std::uint64_t common = std::min<std::uint64_t>(seq.plaintext.size(), at + piece.size());
    if (common > at) {
      FUZZ_CHECK(std::equal(piece.begin(), piece.begin() + static_cast<std::ptrdiff_t>(common - at),
                            seq.plaintext.begin() + static_cast<std::ptrdiff_t>(at)));
    }
  }
  if (seq.complete) FUZZ_CHECK(all_read && whole == seq.plaintext);
  if (all_read) FUZZ_CHECK(seq.complete);
}

}  // namespace
}  // namespace mixtape::crypto

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace mixtape::crypto;
  const mixtape::ByteSpan input(data, size);
  const Outcome automatic = sequential(input, AgeArmor::Auto);
  const Outcome binary = sequential(input, AgeArmor::Binary);

  // A binary file reads the same whether or not armor is looked for; an
  // armored one the same as its decoded armor read as binary.
  if (binary.complete) {
    FUZZ_CHECK(automatic.complete && automatic.plaintext == binary.plaintext);
  } else if (automatic.complete) {
    mixtape::MemorySource armored(input);
    AgeArmorReader armor(armored);
    const mixtape::Bytes decoded = mixtape::fuzz::drain(armor);
    const Outcome inner = sequential(decoded, AgeArmor::Binary);
    FUZZ_CHECK(inner.complete && inner.plaintext == automatic.plaintext);
  }

  // A header that does not parse without keys never decrypts.
  try {
    mixtape::MemorySource source(input);
    std::uint64_t h = age_header_length(source);
    FUZZ_CHECK(h > 0 && h <= size);
  } catch (const AgeError& e) {
    FUZZ_CHECK(e.kind() == AgeErrorKind::HeaderMalformed);
    FUZZ_CHECK(!binary.complete && binary.plaintext.empty());
  }

  // Binary files are what tapes hold: random access and the restore path
  // must agree with the sequential reader. Both read the same header with
  // the same keys, so a file whose header did not open (most mutations)
  // fails them identically and is not worth their time.
  const bool header_opened = binary.complete || binary.error == AgeErrorKind::PayloadCorrupt ||
                             binary.error == AgeErrorKind::Truncated ||
                             binary.error == AgeErrorKind::TrailingData;
  if (!header_opened) return 0;
  check_random_access(input, binary);
  if (auto tail = from_second_chunk(input)) {
    if (binary.complete) {
      FUZZ_CHECK(binary.plaintext.size() >= kAgeChunkSize);
      FUZZ_CHECK(std::equal(tail->begin(), tail->end(),
                            binary.plaintext.begin() + static_cast<std::ptrdiff_t>(kAgeChunkSize),
                            binary.plaintext.end()));
    }
  }
  return 0;
}
