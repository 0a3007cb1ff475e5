// engine/crypto: age v1 (C2SP spec) and BLAKE2b-256, both on libsodium.
//
// Layout mirrors the age spec, one file per part: bech32, keys (identities,
// recipients, identity files), x25519 and scrypt stanzas, header
// (parse/serialise/MAC), stream (STREAM payload), armor, hkdf/primitives.
// This header is the module's only public face; engine/crypto/internal.h
// holds the parts only this module and its tests see.
//
// Design
//
// * Streaming, never whole files. AgeEncryptor is a ByteSink writing
//   ciphertext into the next ByteSink; AgeDecryptor is a ByteSource reading
//   ciphertext from another ByteSource. Both keep a few MiB of buffers,
//   whatever the file size, so they sit in the tar -> age -> records -> drive
//   pipeline like any other stage.
//
// * Nothing unauthenticated is ever released. The decryptor hands out a
//   chunk's plaintext only after its Poly1305 tag verified, and the final
//   chunk's only once it is known to be final (so a truncated file can never
//   look complete). Errors found later are raised when the reader reaches
//   them: everything before a damaged chunk is still readable, as the age
//   test kit requires.
//
// * Seeking is arithmetic. A payload is 64 KiB chunks each grown by a 16-byte
//   tag, after the header (H bytes) and a 16-byte nonce, so plaintext offset o
//   lives in chunk o / 65536 at ciphertext offset H + 16 + chunk * 65552. The
//   age_* geometry helpers below are what restores use to locate straight to
//   a tar member on tape; AgeRandomAccessDecryptor uses them over any
//   RandomAccessSource, authenticating the final chunk first.
//
// * Speed comes from batching, not from tricks: plaintext is gathered into
//   batches of 32 chunks (2 MiB), the chunks of a batch are sealed on `threads`
//   threads while the caller writes the previous batch downstream, and the
//   ciphertext goes out in one large write. Nothing is done per byte.
//
// * Errors are AgeError with a kind callers can test (wrong key vs damaged
//   file vs truncated tape). Messages are one line and never contain key
//   material; key buffers are wiped (sodium_memzero) when released.
#pragma once

#include <array>
#include <cstdint>
#include <ctime>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/common/common.h"

namespace mixtape::crypto {

// ---------------------------------------------------------------- hashing

inline constexpr std::size_t kBlake2b256Size = 32;
using Blake2b256Digest = std::array<std::uint8_t, kBlake2b256Size>;

// Streaming BLAKE2b with a 256-bit digest; output equals `b2sum -l 256`.
// Two implementations of one message: libb2, and scalar code of our own
// (twice as fast on AMD Zen cores); the first hasher times both on this
// machine and kFastest is the faster from then on.
class Blake2b256 {
 public:
  enum class Kernel { kFastest, kLibb2, kScalar };
  explicit Blake2b256(Kernel kernel = Kernel::kFastest);
  void update(ByteSpan data);
  // Returns the digest; the hasher must not be updated afterwards.
  Blake2b256Digest finish();
  Kernel kernel() const { return kernel_; }
  // What kFastest is on this machine (measured at the first call).
  static Kernel fastest();

 private:
  Kernel kernel_;
  alignas(64) std::array<std::uint8_t, 512> state_;  // the kernel's state, kept opaque
};
const char* to_string(Blake2b256::Kernel kernel);

Blake2b256Digest blake2b256(ByteSpan data);

// ---------------------------------------------------------------- CPU

// The instruction sets mixtape's own kernels (the BLAKE2b lanes) may use.
enum class CpuLevel { kGeneric, kAvx2, kAvx512 };
const char* to_string(CpuLevel level);
// What this CPU and OS run (AVX-512 means AVX-512F and AVX-512VL).
CpuLevel cpu_level_of_hardware();
// The hardware's level, capped by the environment variable MIXTAPE_CPU
// ("avx512", "avx2" or "generic"), read once per process: MIXTAPE_CPU=avx2
// runs mixtape as on a CPU without AVX-512. Another value is an Error.
// OpenSSL (the STREAM cipher) reads its own OPENSSL_ia32cap instead
// (docs/PERFORMANCE.md, "Running as another CPU").
CpuLevel cpu_level();
// "avx512", "avx2", "generic" (also "avx-512"; any case); nullopt otherwise.
std::optional<CpuLevel> parse_cpu_level(std::string_view text);

// BLAKE2b-256 of kLanes independent messages at once (digests equal to
// Blake2b256's). One message is a chain of dependent compressions that
// leaves most of a core's vector units idle; update() runs the lanes'
// chains side by side, one message word of several lanes per register,
// which hashes many files several times faster per core: eight lanes in
// 512-bit registers with AVX-512, two groups of four in 256-bit registers
// with AVX2. Without either (or with kOneByOne) each lane is an ordinary
// Blake2b256. A lane fed alone costs what Blake2b256 does.
class Blake2b256Lanes {
 public:
  static constexpr std::size_t kLanes = 8;
  // kFastest: the best kernel cpu_level() allows. The others are asked for
  // by tests and benchmarks; one the CPU cannot run is an Error.
  enum class Kernel { kFastest, kAvx512, kAvx2, kOneByOne };
  static bool supported(Kernel kernel);  // by this CPU, whatever MIXTAPE_CPU says

  explicit Blake2b256Lanes(Kernel kernel = Kernel::kFastest);
  ~Blake2b256Lanes();
  Blake2b256Lanes(const Blake2b256Lanes&) = delete;
  Blake2b256Lanes& operator=(const Blake2b256Lanes&) = delete;

  // Appends input[i] to lane i's message, for every lane (empty: nothing).
  void update(std::span<const ByteSpan, kLanes> input);
  // The digest of the lane's message; the lane then holds a new, empty one.
  Blake2b256Digest finish(std::size_t lane);
  // Drops the lane's message: it starts again, empty.
  void reset(std::size_t lane);
  // The kernel in use (never kFastest), and whether it is side by side
  // (anything but kOneByOne).
  Kernel kernel() const;
  bool side_by_side() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};
const char* to_string(Blake2b256Lanes::Kernel kernel);

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

// ---------------------------------------------------------------- age: errors

enum class AgeErrorKind {
  HeaderMalformed,    // not an age v1 file, or its header breaks the spec
  NoIdentityMatched,  // none of the given identities can open any stanza
  WrongPassphrase,    // the scrypt stanza did not open with this passphrase
  HmacMismatch,       // a file key was found but the header MAC is wrong
  PayloadCorrupt,     // a payload chunk failed to authenticate (see chunk())
  Truncated,          // the payload ends without its final chunk
  TrailingData,       // bytes follow the final chunk
  ArmorMalformed,     // the ASCII armor is not strict PEM
  WorkFactorTooHigh,  // scrypt work factor above the configured maximum
  KeyMalformed,       // an age1... / AGE-SECRET-KEY-1... string or key file is invalid
};

const char* to_string(AgeErrorKind kind);

class AgeError : public Error {
 public:
  AgeError(AgeErrorKind kind, const std::string& message,
           std::optional<std::uint64_t> chunk = std::nullopt)
      : Error(message), kind_(kind), chunk_(chunk) {}
  AgeErrorKind kind() const { return kind_; }
  // For PayloadCorrupt / TrailingData: the 0-based payload chunk concerned.
  std::optional<std::uint64_t> chunk() const { return chunk_; }

 private:
  AgeErrorKind kind_;
  std::optional<std::uint64_t> chunk_;
};

// ---------------------------------------------------------------- age: secrets

// Overwrites memory that held secrets (sodium_memzero; never optimised away).
void wipe(void* data, std::size_t size);
inline void wipe(std::string& s) {
  wipe(s.data(), s.size());
}

// Fixed-size key material, wiped on destruction. Copies are wiped too.
template <std::size_t N>
class SecretArray {
 public:
  SecretArray() = default;
  SecretArray(const SecretArray&) = default;
  SecretArray& operator=(const SecretArray&) = default;
  ~SecretArray() { wipe(bytes_.data(), N); }

  static constexpr std::size_t size() { return N; }
  std::uint8_t* data() { return bytes_.data(); }
  const std::uint8_t* data() const { return bytes_.data(); }
  MutableByteSpan span() { return bytes_; }
  ByteSpan span() const { return bytes_; }

 private:
  std::array<std::uint8_t, N> bytes_{};
};

// A passphrase, wiped on destruction.
class Passphrase {
 public:
  explicit Passphrase(std::string_view text);
  Passphrase(const Passphrase& other) : bytes_(other.bytes_) {}
  Passphrase(Passphrase&& other) noexcept = default;
  // By value, so the replaced bytes die (wiped) in the parameter.
  Passphrase& operator=(Passphrase other) noexcept {
    bytes_.swap(other.bytes_);
    return *this;
  }
  ~Passphrase();
  ByteSpan bytes() const { return bytes_; }

 private:
  Bytes bytes_;
};

// The first line of a passphrase file (without its line ending).
Passphrase load_passphrase_file(const std::string& path);

// ---------------------------------------------------------------- age: keys

inline constexpr std::size_t kX25519KeySize = 32;

// A public key, written `age1...` (Bech32, lower case).
class X25519Recipient {
 public:
  explicit X25519Recipient(const std::array<std::uint8_t, kX25519KeySize>& public_key)
      : public_key_(public_key) {}
  // Throws AgeError(KeyMalformed) for anything but a valid lower-case age1 string.
  static X25519Recipient parse(std::string_view text);
  std::string to_string() const;
  const std::array<std::uint8_t, kX25519KeySize>& public_key() const { return public_key_; }
  bool operator==(const X25519Recipient&) const = default;

 private:
  std::array<std::uint8_t, kX25519KeySize> public_key_;
};

// A secret key, written `AGE-SECRET-KEY-1...` (Bech32, upper case).
class X25519Identity {
 public:
  static X25519Identity generate();
  // Throws AgeError(KeyMalformed); the message never repeats the text.
  static X25519Identity parse(std::string_view text);
  // The secret in its text form; wipe() the string when done with it.
  std::string to_string() const;
  X25519Recipient recipient() const { return X25519Recipient(public_key_); }
  const SecretArray<kX25519KeySize>& secret_key() const { return secret_; }

 private:
  explicit X25519Identity(const SecretArray<kX25519KeySize>& secret);
  SecretArray<kX25519KeySize> secret_;
  std::array<std::uint8_t, kX25519KeySize> public_key_{};
};

// Identity files in age-keygen's format: `#` comments, blank lines, and one
// AGE-SECRET-KEY-1... per line (several allowed). `name` names the source in
// errors ("identity file F, line 3: ..."). Throws AgeError(KeyMalformed),
// also when no key is found.
std::vector<X25519Identity> parse_identities(std::string_view text, const std::string& name);
std::vector<X25519Identity> load_identities(const std::string& path);

// Recipients files as `age -R` reads them: comments, blank lines, age1... lines.
std::vector<X25519Recipient> parse_recipients(std::string_view text, const std::string& name);
std::vector<X25519Recipient> load_recipients(const std::string& path);

// What age-keygen writes: "# created: <RFC 3339 local time>", "# public key:
// age1...", then the secret key line. Holds the secret: wipe() it after use.
std::string identity_file_text(const X25519Identity& identity, std::time_t created);

// Writes identity_file_text to a new file with mode 0600. Refuses to replace
// an existing file (SystemError with EEXIST naming the path).
void write_identity_file(const std::string& path, const X25519Identity& identity);

// ---------------------------------------------------------------- age: geometry

inline constexpr std::uint64_t kAgeChunkSize = 64 * 1024;
inline constexpr std::uint64_t kAgeTagSize = 16;
inline constexpr std::uint64_t kAgeEncryptedChunkSize = kAgeChunkSize + kAgeTagSize;
inline constexpr std::uint64_t kAgeNonceSize = 16;
inline constexpr int kScryptWorkFactor = 18;     // log2(N) when encrypting, as age
inline constexpr int kScryptMaxWorkFactor = 22;  // refused above this when decrypting, as age

// The payload chunk holding plaintext offset `plaintext_offset`.
constexpr std::uint64_t age_chunk_index(std::uint64_t plaintext_offset) {
  return plaintext_offset / kAgeChunkSize;
}
// Where chunk `chunk` starts in the ciphertext of a file whose header
// (intro line through MAC line) is `header_length` bytes.
constexpr std::uint64_t age_chunk_offset(std::uint64_t header_length, std::uint64_t chunk) {
  return header_length + kAgeNonceSize + chunk * kAgeEncryptedChunkSize;
}
// Number of chunks for a plaintext size (an empty payload is one empty chunk).
constexpr std::uint64_t age_chunk_count(std::uint64_t plaintext_size) {
  return plaintext_size == 0 ? 1 : (plaintext_size + kAgeChunkSize - 1) / kAgeChunkSize;
}
constexpr std::uint64_t age_ciphertext_size(std::uint64_t header_length,
                                            std::uint64_t plaintext_size) {
  return header_length + kAgeNonceSize + plaintext_size +
         age_chunk_count(plaintext_size) * kAgeTagSize;
}
// Inverse of age_ciphertext_size. Throws AgeError (Truncated, PayloadCorrupt)
// when no valid age file has this size.
std::uint64_t age_plaintext_size(std::uint64_t header_length, std::uint64_t ciphertext_size);

// ---------------------------------------------------------------- age: encrypt

struct AgeEncryptOptions {
  bool armor = false;                   // write `age -a` ASCII armor
  int work_factor = kScryptWorkFactor;  // scrypt log2(N), passphrase only
  unsigned threads = 2;                 // threads sealing chunks, the caller included
  // Batches, kept from one encryptor to the next (sealed ones go downstream
  // through ByteSink::write_shared); outlives the encryptor; nullptr: its own.
  BufferPool* buffers = nullptr;
};

// Encrypts what is written to it into `next`. The header is written at
// construction; close() seals the final chunk and closes `next`. Without
// close() the output has no final chunk, so it can never decrypt as complete.
class AgeEncryptor final : public ByteSink {
 public:
  AgeEncryptor(ByteSink& next, std::span<const X25519Recipient> recipients,
               const AgeEncryptOptions& options = {});
  AgeEncryptor(ByteSink& next, const Passphrase& passphrase, const AgeEncryptOptions& options = {});
  ~AgeEncryptor() override;
  AgeEncryptor(const AgeEncryptor&) = delete;
  AgeEncryptor& operator=(const AgeEncryptor&) = delete;

  void write(ByteSpan data) override;
  void close() override;

  // Writing without write()'s copy: buffer() is room in the encryptor's own
  // batch for the next plaintext bytes (never empty); the caller fills a
  // prefix of it (a read(2) straight into it) and commit()s that many bytes,
  // which then count as written. Call buffer() only when at least one more
  // byte is coming before close(): a full batch is then sealed as not the
  // last, so close() right after it throws rather than write a file that
  // ends without its final chunk.
  MutableByteSpan buffer();
  void commit(std::size_t bytes);

  // Bytes of the binary header, intro through MAC line (H in docs/FORMAT.md).
  std::uint64_t header_length() const;
  std::uint64_t plaintext_size() const;  // bytes written so far
  // Binary (unarmored) ciphertext size; final once closed.
  std::uint64_t ciphertext_size() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// ---------------------------------------------------------------- age: decrypt

// What may open a file: X25519 identities and/or a passphrase.
struct AgeDecryptKeys {
  std::vector<X25519Identity> identities;
  std::optional<Passphrase> passphrase;
  int max_work_factor = kScryptMaxWorkFactor;
};

enum class AgeArmor { Auto, Binary, Armored };

struct AgeDecryptOptions {
  AgeArmor armor =
      AgeArmor::Auto;    // Auto: armored iff it starts (after whitespace) with -----BEGIN
  unsigned threads = 2;  // threads opening chunks, the caller included
};

// The payload key of one file, from its header: enough to decrypt any chunk.
struct AgeFileKeys {
  std::uint64_t header_length = 0;  // H: intro through MAC line
  SecretArray<32> payload_key;
};

// Reads a binary age header and the payload nonce from `ciphertext` (exactly
// H + 16 bytes; the header is read a byte at a time so nothing more is
// consumed), unwraps the file key, checks the MAC. Throws AgeError.
AgeFileKeys read_age_header(ByteSource& ciphertext, const AgeDecryptKeys& keys);

// Parses a binary age header strictly, without keys, and returns H.
std::uint64_t age_header_length(ByteSource& ciphertext);

// Decrypts the payload from chunk `first_chunk` on, reading from a source
// positioned at age_chunk_offset(H, first_chunk). This is the restore path:
// read the header once, then locate to the chunk holding a tar member.
class AgePayloadDecryptor final : public ByteSource {
 public:
  AgePayloadDecryptor(ByteSource& ciphertext, const SecretArray<32>& payload_key,
                      std::uint64_t first_chunk = 0, unsigned threads = 2);
  ~AgePayloadDecryptor() override;
  AgePayloadDecryptor(const AgePayloadDecryptor&) = delete;
  AgePayloadDecryptor& operator=(const AgePayloadDecryptor&) = delete;
  // Returns 0 only at the authenticated end; throws AgeError for damage.
  std::size_t read(MutableByteSpan out) override;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// Decrypts a whole age file (binary or armored) read from `ciphertext`. The
// header is read and checked in the constructor, so a wrong key fails there.
class AgeDecryptor final : public ByteSource {
 public:
  AgeDecryptor(ByteSource& ciphertext, const AgeDecryptKeys& keys,
               const AgeDecryptOptions& options = {});
  ~AgeDecryptor() override;
  AgeDecryptor(const AgeDecryptor&) = delete;
  AgeDecryptor& operator=(const AgeDecryptor&) = delete;

  std::size_t read(MutableByteSpan out) override;
  // H of the binary file (inside the armor when armored).
  std::uint64_t header_length() const;
  bool armored() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// Plaintext at any offset of a binary age file, decrypting only the chunks a
// read touches. The constructor authenticates the final chunk, so size() is
// trustworthy and a truncated file fails up front. Reads touching a damaged
// chunk throw AgeError(PayloadCorrupt) naming it; other reads still work.
// Safe to call from several threads.
class AgeRandomAccessDecryptor final : public RandomAccessSource {
 public:
  AgeRandomAccessDecryptor(RandomAccessSource& ciphertext, const AgeDecryptKeys& keys);
  AgeRandomAccessDecryptor(RandomAccessSource& ciphertext, const AgeFileKeys& file_keys);
  ~AgeRandomAccessDecryptor() override;
  AgeRandomAccessDecryptor(const AgeRandomAccessDecryptor&) = delete;
  AgeRandomAccessDecryptor& operator=(const AgeRandomAccessDecryptor&) = delete;

  std::uint64_t size() const override;  // plaintext bytes
  std::size_t read_at(std::uint64_t offset, MutableByteSpan out) override;
  std::uint64_t header_length() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// ---------------------------------------------------------------- age: armor

// ASCII armor as `age -a` writes it (strict PEM, 64 columns, LF). close()
// writes the footer and closes `next`.
class AgeArmorWriter final : public ByteSink {
 public:
  explicit AgeArmorWriter(ByteSink& next);
  ~AgeArmorWriter() override;
  AgeArmorWriter(const AgeArmorWriter&) = delete;
  AgeArmorWriter& operator=(const AgeArmorWriter&) = delete;
  void write(ByteSpan data) override;
  void close() override;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// Strict armor decoding: whitespace allowed only around the block, LF or CRLF
// line ends, canonical base64, full 64-column lines but the last. Throws
// AgeError(ArmorMalformed).
class AgeArmorReader final : public ByteSource {
 public:
  explicit AgeArmorReader(ByteSource& armored);
  ~AgeArmorReader() override;
  AgeArmorReader(const AgeArmorReader&) = delete;
  AgeArmorReader& operator=(const AgeArmorReader&) = delete;
  std::size_t read(MutableByteSpan out) override;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mixtape::crypto
