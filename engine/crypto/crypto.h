// engine/crypto: age v1 (C2SP spec) on libsodium, and BLAKE2b-256 on libb2.
//
// Layout mirrors the age spec, one file per part: bech32, x25519 and scrypt
// stanzas, header (parse/serialise/MAC), stream (STREAM payload), armor, hkdf.
// This header is the module's only public face.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "engine/common/common.h"

namespace mixtape::crypto {

// ---------------------------------------------------------------- hashing

inline constexpr std::size_t kBlake2b256Size = 32;
using Blake2b256Digest = std::array<std::uint8_t, kBlake2b256Size>;

// Streaming BLAKE2b with a 256-bit digest; output equals `b2sum -l 256`.
class Blake2b256 {
 public:
  Blake2b256();
  void update(ByteSpan data);
  // Returns the digest; the hasher must not be updated afterwards.
  Blake2b256Digest finish();

 private:
  alignas(64) std::array<std::uint8_t, 512> state_;  // blake2b_state, kept opaque
};

Blake2b256Digest blake2b256(ByteSpan data);
// Hashes a whole file with large sequential reads; lower-case hex digest.
std::string blake2b256_file_hex(const std::string& path);

// A ByteSink that hashes what passes through it on its way to `next`
// (next may be null to only hash).
class HashingSink final : public ByteSink {
 public:
  explicit HashingSink(ByteSink* next) : next_(next) {}
  void write(ByteSpan data) override;
  void close() override;
  Blake2b256Digest digest() { return hasher_.finish(); }

 private:
  ByteSink* next_;
  Blake2b256 hasher_;
};

}  // namespace mixtape::crypto
