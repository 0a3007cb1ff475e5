// BLAKE2b-256 through libb2, the same function `b2sum -l 256` computes.
#include <blake2.h>
#include <fcntl.h>

#include <new>

#include "engine/crypto/crypto.h"

namespace mixtape::crypto {
namespace {

static_assert(sizeof(blake2b_state) <= 512, "Blake2b256::state_ too small");

blake2b_state* state_of(std::array<std::uint8_t, 512>& storage) {
  return std::launder(reinterpret_cast<blake2b_state*>(storage.data()));
}

}  // namespace

Blake2b256::Blake2b256() {
  auto* state = new (state_.data()) blake2b_state;
  if (blake2b_init(state, kBlake2b256Size) != 0) throw Error("BLAKE2b initialisation failed");
}

void Blake2b256::update(ByteSpan data) { blake2b_update(state_of(state_), data.data(), data.size()); }

Blake2b256Digest Blake2b256::finish() {
  Blake2b256Digest digest{};
  if (blake2b_final(state_of(state_), digest.data(), digest.size()) != 0)
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
  FdSource source(fd.get(), path);
  Bytes buffer(4 << 20);
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
