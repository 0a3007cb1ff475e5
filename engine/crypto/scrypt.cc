// The scrypt recipient type: a passphrase stretched with scrypt (N = 2^logN,
// r = 8, p = 1) over a labelled random salt.
#include <sodium.h>

#include <cstring>

#include "engine/crypto/internal.h"

namespace mixtape::crypto::internal {
namespace {

Key32 scrypt_key(const Passphrase& passphrase, ByteSpan salt, int work_factor) {
  // The label keeps these scrypt outputs apart from any other use of the passphrase.
  Bytes labelled(kScryptLabel.begin(), kScryptLabel.end());
  labelled.insert(labelled.end(), salt.begin(), salt.end());
  ensure_sodium();
  Key32 key;
  ByteSpan pw = passphrase.bytes();
  if (crypto_pwhash_scryptsalsa208sha256_ll(pw.data(), pw.size(), labelled.data(), labelled.size(),
                                            std::uint64_t{1} << work_factor, 8, 1, key.data(),
                                            key.size()) != 0)
    throw Error("scrypt failed at work factor " + std::to_string(work_factor) +
                " (out of memory?)");
  return key;
}

[[noreturn]] void malformed(const std::string& why) {
  fail(AgeErrorKind::HeaderMalformed, "malformed scrypt stanza: " + why);
}

}  // namespace

Stanza scrypt_wrap(const Passphrase& passphrase, int work_factor, const FileKey& file_key) {
  if (work_factor < 1 || work_factor > 40)
    throw Error("scrypt work factor " + std::to_string(work_factor) + " is out of range 1..40");
  std::array<std::uint8_t, kScryptSaltSize> salt;
  random_bytes(salt);
  Key32 key = scrypt_key(passphrase, salt, work_factor);
  auto body = wrap_file_key(key, file_key);
  return Stanza{std::string(kScryptType),
                {base64_encode(salt, false), std::to_string(work_factor)},
                Bytes(body.begin(), body.end())};
}

std::optional<FileKey> scrypt_unwrap(const Passphrase& passphrase, int max_work_factor,
                                     const Stanza& stanza, bool* wrong_passphrase) {
  if (stanza.type != kScryptType) return std::nullopt;
  if (stanza.args.size() != 2) malformed("expected exactly two arguments");
  std::optional<Bytes> salt = base64_decode(stanza.args[0], false);
  if (!salt) malformed("salt is not canonical base64");
  if (salt->size() != kScryptSaltSize) malformed("salt is not 16 bytes");

  // The work factor is `^[1-9][0-9]*$`: no signs, no leading zeros, no hex.
  const std::string& text = stanza.args[1];
  if (text.empty() || text[0] < '1' || text[0] > '9')
    malformed("work factor is not a decimal number");
  for (char c : text)
    if (c < '0' || c > '9') malformed("work factor is not a decimal number");
  int work_factor = text.size() > 3 ? 1000 : std::stoi(text);
  if (work_factor > max_work_factor)
    fail(AgeErrorKind::WorkFactorTooHigh,
         "age scrypt work factor " +
             (text.size() > 3 ? "of " + std::to_string(text.size()) + " digits" : text) +
             " is above the maximum " + std::to_string(max_work_factor) +
             " (it would take too long or too much memory)");

  if (stanza.body.size() != kWrappedFileKeySize) malformed("body is not a 16-byte file key");
  Key32 key = scrypt_key(passphrase, *salt, work_factor);
  FileKey file_key;
  if (!unwrap_file_key(key, stanza.body, file_key)) {
    if (wrong_passphrase) *wrong_passphrase = true;
    return std::nullopt;
  }
  return file_key;
}

}  // namespace mixtape::crypto::internal
