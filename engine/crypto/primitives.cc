// The spec's primitives on libsodium 1.0.18: HKDF-SHA-256 (which 1.0.18 lacks,
// so it is built on crypto_auth_hmacsha256), HMAC, file-key wrapping, and
// secret hygiene.
#include <sodium.h>

#include <cstring>

#include "engine/crypto/internal.h"

namespace mixtape::crypto {

void wipe(void* data, std::size_t size) {
  if (size > 0) sodium_memzero(data, size);
}

namespace {

constexpr EnumNames<AgeErrorKind, 10> kAgeErrorKinds{
    {{AgeErrorKind::HeaderMalformed, "header malformed"},
     {AgeErrorKind::NoIdentityMatched, "no identity matched"},
     {AgeErrorKind::WrongPassphrase, "wrong passphrase"},
     {AgeErrorKind::HmacMismatch, "header MAC mismatch"},
     {AgeErrorKind::PayloadCorrupt, "payload corrupt"},
     {AgeErrorKind::Truncated, "truncated"},
     {AgeErrorKind::TrailingData, "trailing data"},
     {AgeErrorKind::ArmorMalformed, "armor malformed"},
     {AgeErrorKind::WorkFactorTooHigh, "work factor too high"},
     {AgeErrorKind::KeyMalformed, "key malformed"}}};

}  // namespace

const char* to_string(AgeErrorKind kind) {
  return kAgeErrorKinds.name(kind);
}

Passphrase::Passphrase(std::string_view text) : bytes_(text.begin(), text.end()) {}

Passphrase::~Passphrase() {
  wipe(bytes_.data(), bytes_.size());
}

namespace internal {

void ensure_sodium() {
  if (sodium_init() < 0) throw Error("libsodium failed to initialise");
}

void random_bytes(MutableByteSpan out) {
  ensure_sodium();
  randombytes_buf(out.data(), out.size());
}

void fail(AgeErrorKind kind, const std::string& message) {
  throw AgeError(kind, message);
}

namespace {

// libsodium declares its pointers nonnull even for zero lengths, and an empty
// span's data() may be null (the empty HKDF salt).
const std::uint8_t* nonnull(ByteSpan bytes) {
  static constexpr std::uint8_t kNothing = 0;
  return bytes.empty() ? &kNothing : bytes.data();
}

// One HMAC-SHA-256 over the concatenation of parts, without copying them.
Mac hmac_parts(ByteSpan key, std::initializer_list<ByteSpan> parts) {
  crypto_auth_hmacsha256_state state;
  crypto_auth_hmacsha256_init(&state, nonnull(key), key.size());
  for (ByteSpan part : parts) crypto_auth_hmacsha256_update(&state, nonnull(part), part.size());
  Mac mac;
  crypto_auth_hmacsha256_final(&state, mac.data());
  wipe(&state, sizeof state);
  return mac;
}

}  // namespace

Mac hmac_sha256(ByteSpan key, ByteSpan data) {
  return hmac_parts(key, {data});
}

Key32 hkdf_sha256(ByteSpan ikm, ByteSpan salt, std::string_view info) {
  // Extract: PRK = HMAC(salt, IKM). An empty salt is an empty HMAC key, which
  // HMAC pads to the block size exactly as RFC 5869's "HashLen zeros" would.
  Mac prk = hmac_parts(salt, {ikm});
  // Expand: one block is all a 32-byte output needs: T(1) = HMAC(PRK, info || 0x01).
  static constexpr std::uint8_t kCounter = 1;
  Mac okm = hmac_parts(prk, {as_bytes(info), ByteSpan(&kCounter, 1)});
  Key32 key;
  std::memcpy(key.data(), okm.data(), key.size());
  wipe(prk.data(), prk.size());
  wipe(okm.data(), okm.size());
  return key;
}

std::array<std::uint8_t, kWrappedFileKeySize> wrap_file_key(const Key32& key,
                                                            const FileKey& file_key) {
  static constexpr std::array<std::uint8_t, 12> kZeroNonce{};
  std::array<std::uint8_t, kWrappedFileKeySize> body;
  crypto_aead_chacha20poly1305_ietf_encrypt_detached(
      body.data(), body.data() + kFileKeySize, nullptr, file_key.data(), file_key.size(), nullptr,
      0, nullptr, kZeroNonce.data(), key.data());
  return body;
}

bool unwrap_file_key(const Key32& key, ByteSpan body, FileKey& file_key) {
  static constexpr std::array<std::uint8_t, 12> kZeroNonce{};
  if (body.size() != kWrappedFileKeySize) return false;
  return crypto_aead_chacha20poly1305_ietf_decrypt_detached(
             file_key.data(), nullptr, body.data(), kFileKeySize, body.data() + kFileKeySize,
             nullptr, 0, kZeroNonce.data(), key.data()) == 0;
}

}  // namespace internal
}  // namespace mixtape::crypto
