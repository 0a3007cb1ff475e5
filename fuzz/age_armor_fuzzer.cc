// ASCII armor decoding (engine/crypto/armor.cc): the input is an armored
// age file, or anything a user could pass as one.
//
// The reader is strict so that armor is not malleable: every payload has
// exactly one accepted encoding, up to surrounding whitespace and CRLF line
// ends. So whatever decodes must re-encode (AgeArmorWriter) to the input
// itself, once that whitespace is dropped and CRLF made LF.
#include <string>

#include "engine/crypto/crypto.h"
#include "fuzz/fuzz_util.h"

namespace {

constexpr std::string_view kBegin = "-----BEGIN AGE ENCRYPTED FILE-----";
constexpr std::string_view kEnd = "-----END AGE ENCRYPTED FILE-----";

// The input as the writer would have produced it, if the reader's rules
// hold: from the BEGIN line through the END line, LF line ends, one LF after.
std::string canonical(std::string_view input) {
  std::size_t begin = input.find(kBegin);
  std::size_t end = input.rfind(kEnd);
  FUZZ_CHECK(begin != std::string_view::npos && end != std::string_view::npos && end > begin);
  std::string_view block = input.substr(begin, end + kEnd.size() - begin);
  std::string out;
  for (std::size_t i = 0; i < block.size(); ++i) {
    if (block[i] == '\r' && i + 1 < block.size() && block[i + 1] == '\n') continue;
    out += block[i];
  }
  return out + "\n";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace mixtape;
  const ByteSpan input(data, size);
  Bytes decoded;
  try {
    MemorySource source(input);
    crypto::AgeArmorReader reader(source);
    decoded = fuzz::drain(reader, 13);
  } catch (const crypto::AgeError& e) {
    FUZZ_CHECK(e.kind() == crypto::AgeErrorKind::ArmorMalformed);
    return 0;
  }
  MemorySink sink;
  crypto::AgeArmorWriter writer(sink);
  writer.write(decoded);
  writer.close();
  FUZZ_CHECK(as_chars(sink.bytes()) == canonical(as_chars(input)));
  return 0;
}
