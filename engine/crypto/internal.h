// engine/crypto private parts: the age spec's building blocks. Included only by
// engine/crypto/*.cc and tests/crypto; everything else uses crypto.h.
//
// Spec: https://age-encryption.org/v1 (C2SP). Labels and sizes below are the
// spec's constants, named so the code reads like the spec.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "engine/crypto/crypto.h"

// OpenSSL's cipher context, named without pulling <openssl/evp.h> into
// every user of this header.
struct evp_cipher_ctx_st;

namespace mixtape::crypto::internal {

inline constexpr std::string_view kIntro = "age-encryption.org/v1\n";
inline constexpr std::string_view kVersionPrefix = "age-encryption.org/";
inline constexpr std::string_view kStanzaPrefix = "-> ";
inline constexpr std::string_view kMacPrefix = "---";
inline constexpr std::string_view kX25519Type = "X25519";
inline constexpr std::string_view kScryptType = "scrypt";
inline constexpr std::string_view kX25519Label = "age-encryption.org/v1/X25519";
inline constexpr std::string_view kScryptLabel = "age-encryption.org/v1/scrypt";
inline constexpr std::string_view kHeaderInfo = "header";
inline constexpr std::string_view kPayloadInfo = "payload";
inline constexpr std::string_view kRecipientHrp = "age";
inline constexpr std::string_view kIdentityHrp = "AGE-SECRET-KEY-";
inline constexpr std::string_view kArmorBegin = "-----BEGIN AGE ENCRYPTED FILE-----";
inline constexpr std::string_view kArmorEnd = "-----END AGE ENCRYPTED FILE-----";

inline constexpr std::size_t kColumnsPerLine = 64;
inline constexpr std::size_t kBytesPerLine = kColumnsPerLine / 4 * 3;
inline constexpr std::size_t kFileKeySize = 16;
inline constexpr std::size_t kScryptSaltSize = 16;
inline constexpr std::size_t kMacSize = 32;
inline constexpr std::size_t kWrappedFileKeySize = kFileKeySize + kAgeTagSize;
// age headers are a few hundred bytes; this only stops hostile input from
// making the parser buffer without bound.
inline constexpr std::size_t kMaxHeaderSize = 1 << 20;
// Leading and trailing whitespace allowed around armor, as age allows.
inline constexpr std::size_t kMaxArmorWhitespace = 1024;

using FileKey = SecretArray<kFileKeySize>;
using Key32 = SecretArray<32>;
using Mac = std::array<std::uint8_t, kMacSize>;

// libsodium must be initialised before use; idempotent and thread-safe.
void ensure_sodium();
void random_bytes(MutableByteSpan out);

[[noreturn]] void fail(AgeErrorKind kind, const std::string& message);

// Wipes a byte vector's whole allocation (or a string's bytes) when the scope
// ends, on every path out, for temporaries that held key material. Reserve
// vectors up front: a reallocation would leave the old buffer unwiped.
class WipeOnExit {
 public:
  explicit WipeOnExit(Bytes& bytes) : bytes_(&bytes) {}
  explicit WipeOnExit(std::string& text) : text_(&text) {}
  ~WipeOnExit() {
    if (bytes_) wipe(bytes_->data(), bytes_->capacity());
    if (text_) wipe(*text_);
  }
  WipeOnExit(const WipeOnExit&) = delete;
  WipeOnExit& operator=(const WipeOnExit&) = delete;

 private:
  Bytes* bytes_ = nullptr;
  std::string* text_ = nullptr;
};

// ------------------------------------------------------------ base64

// Standard alphabet; `padded` selects '=' padding (armor) or none (header).
std::string base64_encode(ByteSpan data, bool padded);
// Strict: only canonical encodings (RFC 4648 3.5), no whitespace, padding
// exactly as `padded` demands. nullopt for anything else.
std::optional<Bytes> base64_decode(std::string_view text, bool padded);

// ------------------------------------------------------------ bech32

// BIP 173 without the 90-character limit; returns lower case.
std::string bech32_encode(std::string_view hrp, ByteSpan data);
struct Bech32 {
  std::string hrp;  // as written (upper or lower case)
  Bytes data;
};
// Rejects mixed case, bad checksums, bad padding. Throws AgeError(KeyMalformed)
// with a reason that never quotes the input.
Bech32 bech32_decode(std::string_view text);

// ------------------------------------------------------------ primitives

// HKDF-SHA-256 (RFC 5869) with a 32-byte output, on libsodium's HMAC.
Key32 hkdf_sha256(ByteSpan ikm, ByteSpan salt, std::string_view info);
Mac hmac_sha256(ByteSpan key, ByteSpan data);
// ChaCha20-Poly1305 with the all-zero nonce: how stanzas wrap the file key
// (each wrap key is used exactly once, so a fixed nonce is safe).
std::array<std::uint8_t, kWrappedFileKeySize> wrap_file_key(const Key32& key,
                                                            const FileKey& file_key);
// false when the key does not open the body. The caller checks the size first.
bool unwrap_file_key(const Key32& key, ByteSpan body, FileKey& file_key);

// ------------------------------------------------------------ buffered input

// A read-ahead buffer over a ByteSource that can also hand out lines and
// peeks. The header parser and the payload reader share one, so bytes read
// ahead while parsing the header are not lost to the payload.
class BufferedReader final : public ByteSource {
 public:
  BufferedReader(ByteSource& source, std::size_t capacity);
  // At least n bytes unless the source ends first (then all that is left).
  ByteSpan peek(std::size_t n);
  void consume(std::size_t n);
  enum class Line { Complete, End, TooLong };
  // Appends the next line, LF included, to `line`. End: the stream ended,
  // `line` holds whatever came before the end (possibly nothing).
  Line read_line(std::string& line, std::size_t max_length);
  std::size_t read(MutableByteSpan out) override;

 private:
  bool fill(std::size_t want);
  ByteSource& source_;
  std::size_t capacity_;
  Bytes buffer_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
  bool eof_ = false;
};

// ------------------------------------------------------------ header

struct Stanza {
  std::string type;
  std::vector<std::string> args;
  Bytes body;
  bool operator==(const Stanza&) const = default;
};

struct Header {
  std::vector<Stanza> stanzas;
  Mac mac{};
  // The header exactly as read, intro through the MAC line's LF; its size is H.
  std::string raw;
  // raw up to and including "---": what the MAC covers.
  std::string_view mac_input() const { return std::string_view(raw).substr(0, raw.size() - 45); }
};

// Strict parse per the spec's ABNF. Throws AgeError(HeaderMalformed).
Header parse_header(BufferedReader& in);
// Intro, stanzas, and "---" (what the MAC covers).
std::string serialize_header_without_mac(const std::vector<Stanza>& stanzas);
std::string serialize_header(const std::vector<Stanza>& stanzas, const Mac& mac);
Mac header_mac(const FileKey& file_key, std::string_view header_without_mac);

// ------------------------------------------------------------ recipient types

Stanza x25519_wrap(const X25519Recipient& recipient, const FileKey& file_key);
// nullopt: not this identity's stanza. Throws AgeError(HeaderMalformed) for a
// malformed X25519 stanza or a low-order share (fatal, as the spec says).
std::optional<FileKey> x25519_unwrap(const X25519Identity& identity, const Stanza& stanza);

Stanza scrypt_wrap(const Passphrase& passphrase, int work_factor, const FileKey& file_key);
// nullopt: not an scrypt stanza, or the passphrase does not open it.
std::optional<FileKey> scrypt_unwrap(const Passphrase& passphrase, int max_work_factor,
                                     const Stanza& stanza, bool* wrong_passphrase);

// Finds the file key for a parsed header (scrypt-alone rule included) and
// checks the MAC. Throws AgeError.
FileKey open_file_key(const Header& header, const AgeDecryptKeys& keys);

// Reads header and nonce from `in` and derives the payload key.
AgeFileKeys open_header(BufferedReader& in, const AgeDecryptKeys& keys);

// ------------------------------------------------------------ STREAM

Key32 payload_key(const FileKey& file_key, ByteSpan nonce);
// 11-byte big-endian counter, then 0x01 for the final chunk.
std::array<std::uint8_t, 12> chunk_nonce(std::uint64_t index, bool last);
// out receives plain.size() + 16 bytes.
void seal_chunk(const Key32& key, std::uint64_t index, bool last, ByteSpan plain,
                std::uint8_t* out);
// out receives cipher.size() - 16 bytes; false if the tag does not verify
// (then out holds zeros, never unauthenticated plaintext).
bool open_chunk(const Key32& key, std::uint64_t index, bool last, ByteSpan cipher,
                std::uint8_t* out);

std::string corrupt_chunk_message(std::uint64_t chunk);

// The same two operations for the streaming encryptor and decryptor, through
// OpenSSL's libcrypto: its AVX-512/AVX2 ChaCha20-Poly1305 seals 2.3-2.7x
// faster per core than libsodium 1.0.18 here (docs/DECISIONS.md, "Writer
// speed"). One context is made once and reused for every chunk, so a chunk
// costs no allocation; not thread-safe, so one per thread. seal_chunk and
// open_chunk above stay on libsodium: a second implementation the tests
// check this one against.
class ChunkCipher {
 public:
  ChunkCipher();
  ~ChunkCipher();
  ChunkCipher(const ChunkCipher&) = delete;
  ChunkCipher& operator=(const ChunkCipher&) = delete;

  // As seal_chunk: out receives plain.size() + 16 bytes; out may equal plain.
  void seal(const Key32& key, std::uint64_t index, bool last, ByteSpan plain, std::uint8_t* out);
  // As open_chunk: false (and out zeroed) if the tag does not verify.
  bool open(const Key32& key, std::uint64_t index, bool last, ByteSpan cipher, std::uint8_t* out);

 private:
  evp_cipher_ctx_st* context_;
};

// ------------------------------------------------------------ parallelism

// Runs the chunks of one batch on helper threads and the caller. start()
// hands a batch to the helpers and returns at once, so the caller can do I/O
// for another batch; finish() has the caller take its share of what is left
// and waits for the helpers. One batch at a time. Helpers start on first use.
class ChunkPool {
 public:
  explicit ChunkPool(unsigned threads);  // threads including the caller; 0 means 1
  ~ChunkPool();
  ChunkPool(const ChunkPool&) = delete;
  ChunkPool& operator=(const ChunkPool&) = delete;

  // job(i, slot) runs chunk i; slot (0 for the caller, 1.. for helpers) is
  // the same for every chunk one thread runs, so per-thread state (a
  // ChunkCipher) can be indexed by it without locks.
  void start(std::size_t count, std::function<void(std::size_t, unsigned)> job);
  void finish();  // rethrows the first exception a job threw
  bool busy() const { return busy_; }
  unsigned threads() const { return helpers_wanted_ + 1; }
  void run(std::size_t count, std::function<void(std::size_t, unsigned)> job) {
    start(count, std::move(job));
    finish();
  }

 private:
  void helper_loop(unsigned slot);
  void run_jobs(unsigned slot);

  unsigned helpers_wanted_;
  bool busy_ = false;
  std::mutex mutex_;
  std::condition_variable work_ready_;
  std::condition_variable work_done_;
  std::uint64_t generation_ = 0;
  std::function<void(std::size_t, unsigned)> job_;
  std::size_t count_ = 0;
  std::atomic<std::size_t> next_{0};
  unsigned running_ = 0;
  bool stopping_ = false;
  std::exception_ptr error_;
  std::vector<std::jthread> helpers_;  // last: joined before the rest is destroyed
};

}  // namespace mixtape::crypto::internal
