// The X25519 recipient type: an ephemeral Diffie-Hellman share per stanza,
// the wrap key derived from the shared secret and both public keys.
#include <sodium.h>

#include <cstring>

#include "engine/crypto/internal.h"

namespace mixtape::crypto::internal {
namespace {

Key32 x25519_wrap_key(const SecretArray<32>& shared, ByteSpan share, ByteSpan recipient) {
  // Salting with both public keys binds the wrap key to this exact pair.
  std::array<std::uint8_t, 64> salt;
  std::memcpy(salt.data(), share.data(), 32);
  std::memcpy(salt.data() + 32, recipient.data(), 32);
  return hkdf_sha256(shared.span(), salt, kX25519Label);
}

[[noreturn]] void malformed(const std::string& why) {
  fail(AgeErrorKind::HeaderMalformed, "malformed X25519 stanza: " + why);
}

}  // namespace

Stanza x25519_wrap(const X25519Recipient& recipient, const FileKey& file_key) {
  ensure_sodium();
  // A fresh ephemeral secret for every stanza of every file.
  SecretArray<32> ephemeral;
  random_bytes(ephemeral.span());
  std::array<std::uint8_t, 32> share;
  crypto_scalarmult_curve25519_base(share.data(), ephemeral.data());
  SecretArray<32> shared;
  if (crypto_scalarmult_curve25519(shared.data(), ephemeral.data(),
                                   recipient.public_key().data()) != 0)
    fail(AgeErrorKind::KeyMalformed, "age recipient is not a usable X25519 public key (low order)");
  Key32 wrap_key = x25519_wrap_key(shared, share, recipient.public_key());
  auto body = wrap_file_key(wrap_key, file_key);
  return Stanza{
      std::string(kX25519Type), {base64_encode(share, false)}, Bytes(body.begin(), body.end())};
}

std::optional<FileKey> x25519_unwrap(const X25519Identity& identity, const Stanza& stanza) {
  if (stanza.type != kX25519Type) return std::nullopt;
  if (stanza.args.size() != 1) malformed("expected exactly one argument");
  std::optional<Bytes> share = base64_decode(stanza.args[0], false);
  if (!share) malformed("share is not canonical base64");
  if (share->size() != 32) malformed("share is not 32 bytes");
  // Checked before any decryption, against partitioning oracles (spec).
  if (stanza.body.size() != kWrappedFileKeySize) malformed("body is not a 16-byte file key");
  ensure_sodium();
  SecretArray<32> shared;
  // libsodium refuses low-order points and all-zero results; the spec says abort.
  if (crypto_scalarmult_curve25519(shared.data(), identity.secret_key().data(), share->data()) != 0)
    malformed("share is a low-order point");
  Key32 wrap_key = x25519_wrap_key(shared, *share, identity.recipient().public_key());
  FileKey file_key;
  if (!unwrap_file_key(wrap_key, stanza.body, file_key)) return std::nullopt;
  return file_key;
}

}  // namespace mixtape::crypto::internal
