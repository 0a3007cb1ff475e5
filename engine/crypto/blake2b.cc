// BLAKE2b-256, the same function `b2sum -l 256` computes, through libsodium's
// crypto_generichash (BLAKE2b with a 32-byte digest and no key). libsodium
// picks an AVX2/SSSE3 implementation at run time: about 30% faster here than
// libb2, which matters because every byte backed up is hashed.
#include <fcntl.h>
#include <sodium.h>

#include <new>

#include "engine/crypto/crypto.h"

namespace mixtape::crypto {
namespace {

static_assert(sizeof(crypto_generichash_state) <= 512, "Blake2b256::state_ too small");
static_assert(alignof(crypto_generichash_state) <= 64, "Blake2b256::state_ under-aligned");

crypto_generichash_state* state_of(std::array<std::uint8_t, 512>& storage) {
  return std::launder(reinterpret_cast<crypto_generichash_state*>(storage.data()));
}

}  // namespace

Blake2b256::Blake2b256() {
  if (sodium_init() < 0) throw Error("libsodium failed to initialise");
  auto* state = new (state_.data()) crypto_generichash_state;
  if (crypto_generichash_init(state, nullptr, 0, kBlake2b256Size) != 0)
    throw Error("BLAKE2b initialisation failed");
}

void Blake2b256::update(ByteSpan data) {
  // libsodium wants a valid pointer even for zero bytes.
  static constexpr std::uint8_t kNothing = 0;
  crypto_generichash_update(state_of(state_), data.empty() ? &kNothing : data.data(), data.size());
}

Blake2b256Digest Blake2b256::finish() {
  Blake2b256Digest digest{};
  if (crypto_generichash_final(state_of(state_), digest.data(), digest.size()) != 0)
    throw Error("BLAKE2b finalisation failed (hasher finished twice?)");
  return digest;
}

Blake2b256Digest blake2b256(ByteSpan data) {
  Blake2b256 hasher;
  hasher.update(data);
  return hasher.finish();
}

std::string blake2b256_file_hex(const std::string& path) {
  UniqueFd fd = open_file(path, O_RDONLY);
  ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  FdSource source(fd.get(), path);
  // 1 MiB: few syscalls, and each block is still in cache when hashed.
  Bytes buffer(1 << 20);
  Blake2b256 hasher;
  for (std::size_t n; (n = source.read(buffer)) > 0;) hasher.update({buffer.data(), n});
  return to_hex(hasher.finish());
}

void HashingSink::write(ByteSpan data) {
  hasher_.update(data);
  if (next_) next_->write(data);
}

void HashingSink::close() {
  if (next_) next_->close();
}

}  // namespace mixtape::crypto
