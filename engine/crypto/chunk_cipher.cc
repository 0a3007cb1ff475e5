// ChunkCipher: the STREAM chunk AEAD (ChaCha20-Poly1305, RFC 8439, 12-byte
// nonce, no associated data) through OpenSSL's libcrypto, for the bulk of
// every encrypted byte the writer and the readers handle. libsodium 1.0.18
// has no AVX-512 code for it and only an SSE2 Poly1305; libcrypto picks
// AVX-512 or AVX2 at run time and measured 2.3-2.7x faster per core.
#include <openssl/evp.h>
#include <sodium.h>

#include <algorithm>
#include <array>
#include <climits>
#include <string>

#include "engine/crypto/internal.h"

namespace mixtape::crypto::internal {
namespace {

[[noreturn]] void fail_openssl(const char* what, std::uint64_t index) {
  throw Error(std::string("ChaCha20-Poly1305 (OpenSSL) failed to ") + what + " age chunk " +
              std::to_string(index));
}

int int_size(std::size_t size, std::uint64_t index) {
  if (size > static_cast<std::size_t>(INT_MAX)) fail_openssl("take", index);
  return static_cast<int>(size);
}

}  // namespace

ChunkCipher::ChunkCipher() : context_(EVP_CIPHER_CTX_new()) {
  if (!context_) throw Error("ChaCha20-Poly1305 (OpenSSL): cannot allocate a cipher context");
  // The cipher is set once; each chunk then only sets key, nonce and
  // direction, which neither allocates nor looks the cipher up again.
  if (EVP_CipherInit_ex(context_, EVP_chacha20_poly1305(), nullptr, nullptr, nullptr, 1) != 1) {
    EVP_CIPHER_CTX_free(context_);
    throw Error("ChaCha20-Poly1305 (OpenSSL): cannot initialise a cipher context");
  }
}

ChunkCipher::~ChunkCipher() {
  // Clears the key schedule too.
  EVP_CIPHER_CTX_free(context_);
}

void ChunkCipher::seal(const Key32& key, std::uint64_t index, bool last, ByteSpan plain,
                       std::uint8_t* out) {
  auto nonce = chunk_nonce(index, last);
  if (EVP_CipherInit_ex(context_, nullptr, nullptr, key.data(), nonce.data(), 1) != 1)
    fail_openssl("key", index);
  int written = 0;
  if (!plain.empty() &&
      EVP_CipherUpdate(context_, out, &written, plain.data(), int_size(plain.size(), index)) != 1)
    fail_openssl("seal", index);
  int tail = 0;
  if (EVP_CipherFinal_ex(context_, out + written, &tail) != 1 ||
      static_cast<std::size_t>(written + tail) != plain.size())
    fail_openssl("seal", index);
  if (EVP_CIPHER_CTX_ctrl(context_, EVP_CTRL_AEAD_GET_TAG, static_cast<int>(kAgeTagSize),
                          out + plain.size()) != 1)
    fail_openssl("tag", index);
}

bool ChunkCipher::open(const Key32& key, std::uint64_t index, bool last, ByteSpan cipher,
                       std::uint8_t* out) {
  if (cipher.size() < kAgeTagSize) return false;
  const std::size_t plain_size = cipher.size() - kAgeTagSize;
  auto nonce = chunk_nonce(index, last);
  if (EVP_CipherInit_ex(context_, nullptr, nullptr, key.data(), nonce.data(), 0) != 1)
    fail_openssl("key", index);
  // The tag is checked by Final, after the plaintext is out: it must be
  // set first, and a chunk that fails is wiped so that nothing
  // unauthenticated is ever released (as libsodium does).
  std::array<std::uint8_t, kAgeTagSize> tag;
  std::copy_n(cipher.data() + plain_size, kAgeTagSize, tag.begin());
  if (EVP_CIPHER_CTX_ctrl(context_, EVP_CTRL_AEAD_SET_TAG, static_cast<int>(tag.size()),
                          tag.data()) != 1)
    fail_openssl("tag", index);
  int written = 0;
  if (plain_size > 0 &&
      EVP_CipherUpdate(context_, out, &written, cipher.data(), int_size(plain_size, index)) != 1)
    fail_openssl("open", index);
  int tail = 0;
  if (EVP_CipherFinal_ex(context_, out + written, &tail) != 1 ||
      static_cast<std::size_t>(written + tail) != plain_size) {
    sodium_memzero(out, plain_size);
    return false;
  }
  return true;
}

}  // namespace mixtape::crypto::internal
