// The STREAM payload: 64 KiB chunks sealed with ChaCha20-Poly1305 under a
// per-file payload key, nonce = 11-byte big-endian chunk counter || last flag.
//
// Both directions work in batches of kBatchChunks chunks. The encryptor seals
// batch k on the helper threads while the caller writes batch k-1 downstream
// and gathers batch k+1, so sealing, I/O and the producer overlap on two
// cores. The decryptor reads a batch, opens its chunks in parallel, then
// releases plaintext up to the first chunk that failed, keeping the error
// for the read that reaches it.
#include <sodium.h>

#include <algorithm>
#include <cstring>

#include "engine/crypto/internal.h"

namespace mixtape::crypto {

using internal::ChunkCipher;
using internal::ChunkPool;
using internal::FileKey;
using internal::Key32;

namespace {

constexpr std::size_t kChunk = kAgeChunkSize;
constexpr std::size_t kSealed = kAgeEncryptedChunkSize;
// 32 chunks: 2 MiB of plaintext per batch, large enough that per-batch costs
// (a write call, a thread hand-off) vanish, small enough to stay in L2/L3.
constexpr std::size_t kBatchChunks = 32;

// The decryptor's own buffers: not zero-filled either.
using RawBuffer = BufferPool::Buffer;

}  // namespace

namespace internal {

Key32 payload_key(const FileKey& file_key, ByteSpan nonce) {
  return hkdf_sha256(file_key.span(), nonce, kPayloadInfo);
}

std::array<std::uint8_t, 12> chunk_nonce(std::uint64_t index, bool last) {
  std::array<std::uint8_t, 12> nonce{};
  // Bytes 0-2 of the 11-byte counter stay zero: 2^64 chunks is 1 ZiB.
  for (int i = 0; i < 8; ++i) nonce[10 - i] = static_cast<std::uint8_t>(index >> (8 * i));
  nonce[11] = last ? 1 : 0;
  return nonce;
}

void seal_chunk(const Key32& key, std::uint64_t index, bool last, ByteSpan plain,
                std::uint8_t* out) {
  auto nonce = chunk_nonce(index, last);
  crypto_aead_chacha20poly1305_ietf_encrypt_detached(out, out + plain.size(), nullptr, plain.data(),
                                                     plain.size(), nullptr, 0, nullptr,
                                                     nonce.data(), key.data());
}

bool open_chunk(const Key32& key, std::uint64_t index, bool last, ByteSpan cipher,
                std::uint8_t* out) {
  if (cipher.size() < kAgeTagSize) return false;
  auto nonce = chunk_nonce(index, last);
  std::size_t plain_size = cipher.size() - kAgeTagSize;
  return crypto_aead_chacha20poly1305_ietf_decrypt_detached(out, nullptr, cipher.data(), plain_size,
                                                            cipher.data() + plain_size, nullptr, 0,
                                                            nonce.data(), key.data()) == 0;
}

std::string corrupt_chunk_message(std::uint64_t chunk) {
  return "age payload is corrupt at chunk " + std::to_string(chunk);
}

}  // namespace internal

std::uint64_t age_plaintext_size(std::uint64_t header_length, std::uint64_t ciphertext_size) {
  if (ciphertext_size < header_length + kAgeNonceSize)
    internal::fail(AgeErrorKind::Truncated, "age file is truncated (it ends inside the header)");
  std::uint64_t payload = ciphertext_size - header_length - kAgeNonceSize;
  if (payload == 0)
    internal::fail(AgeErrorKind::Truncated, "age file is truncated (no payload chunks)");
  std::uint64_t chunks = (payload + kSealed - 1) / kSealed;
  std::uint64_t last = payload - (chunks - 1) * kSealed;
  if (last < kAgeTagSize)
    internal::fail(
        AgeErrorKind::Truncated,
        "age file is truncated (chunk " + std::to_string(chunks - 1) + " is shorter than its tag)");
  if (last == kAgeTagSize && chunks > 1)
    throw AgeError(AgeErrorKind::PayloadCorrupt,
                   internal::corrupt_chunk_message(chunks - 1) + " (empty final chunk)",
                   chunks - 1);
  return payload - chunks * kAgeTagSize;
}

// ------------------------------------------------------------ encryptor

class AgeEncryptor::Impl {
 public:
  Impl(ByteSink& next, const AgeEncryptOptions& options)
      : out_(&next),
        buffers_(options.buffers ? *options.buffers : own_buffers_),
        ciphers_(std::max(1u, options.threads)),
        pool_(std::max(1u, options.threads)) {
    for (Batch& batch : batches_) batch.plain = buffers_.take(kBatchBytes);
    if (options.armor) {
      armor_ = std::make_unique<AgeArmorWriter>(next);
      out_ = armor_.get();
    }
  }

  ~Impl() {
    // The helpers may still be sealing into our buffers.
    try {
      pool_.finish();
    } catch (...) {
    }
  }

  void begin(const std::vector<internal::Stanza>& stanzas, const FileKey& file_key) {
    std::string header = internal::serialize_header_without_mac(stanzas);
    internal::Mac mac = internal::header_mac(file_key, header);
    header += " " + internal::base64_encode(mac, false) + "\n";
    header_length_ = header.size();
    std::array<std::uint8_t, kAgeNonceSize> nonce;
    internal::random_bytes(nonce);
    key_ = internal::payload_key(file_key, nonce);
    std::string start = header;
    start.append(reinterpret_cast<const char*>(nonce.data()), nonce.size());
    out_->write(as_bytes(start));
  }

  void write(ByteSpan data) {
    if (closed_) throw Error("age encryptor: write after close");
    plaintext_size_ += data.size();
    while (!data.empty()) {
      // A full batch is sealed only once more data shows it is not the last.
      if (batches_[filling_].plain_size == kBatchBytes) dispatch(false);
      Batch& target = batches_[filling_];
      std::size_t n = std::min(kBatchBytes - target.plain_size, data.size());
      std::memcpy(target.plain->data.get() + target.plain_size, data.data(), n);
      target.plain_size += n;
      data = data.subspan(n);
      promised_ = false;
    }
  }

  MutableByteSpan buffer() {
    if (closed_) throw Error("age encryptor: write after close");
    if (batches_[filling_].plain_size == kBatchBytes) {
      dispatch(false);
      promised_ = true;
    }
    Batch& target = batches_[filling_];
    return MutableByteSpan(target.plain->data.get() + target.plain_size,
                           kBatchBytes - target.plain_size);
  }

  void commit(std::size_t bytes) {
    Batch& target = batches_[filling_];
    if (closed_ || bytes > kBatchBytes - target.plain_size)
      throw Error("age encryptor: commit of " + std::to_string(bytes) +
                  " bytes beyond the buffer handed out");
    target.plain_size += bytes;
    plaintext_size_ += bytes;
    if (bytes > 0) promised_ = false;
  }

  void close() {
    if (closed_) throw Error("age encryptor: closed twice");
    if (promised_)
      throw Error("age encryptor: closed with no bytes after a buffer() that sealed a full batch");
    closed_ = true;
    dispatch(true);
    drain();
    if (armor_)
      armor_->close();  // closes next too
    else
      out_->close();
  }

  std::uint64_t header_length() const { return header_length_; }
  std::uint64_t plaintext_size() const { return plaintext_size_; }
  std::uint64_t ciphertext_size() const {
    return header_length_ + kAgeNonceSize + plaintext_size_ +
           (closed_ ? age_chunk_count(plaintext_size_) : next_chunk_) * kAgeTagSize;
  }

 private:
  static constexpr std::size_t kBatchBytes = kBatchChunks * kChunk;

  struct Batch {
    std::shared_ptr<BufferPool::Buffer> plain;   // kept while the encryptor lives
    std::shared_ptr<BufferPool::Buffer> cipher;  // a free one for every batch
    std::size_t plain_size = 0;
    std::size_t cipher_size = 0;
  };

  // Hands the filling batch to the pool, then writes the previous one while
  // the helpers seal this one. The copy into the batch is what lets sealing
  // go on after write() returns, overlapping the producer (measured: sealing
  // large writes in place instead saved no CPU). The sealed bytes go
  // downstream by reference: the next batch is sealed into another buffer.
  void dispatch(bool final) {
    Batch& batch = batches_[filling_];
    std::size_t chunks =
        final ? std::max<std::size_t>(1, (batch.plain_size + kChunk - 1) / kChunk) : kBatchChunks;
    std::uint64_t first = next_chunk_;
    next_chunk_ += chunks;
    batch.cipher_size = batch.plain_size + chunks * kAgeTagSize;
    batch.cipher.reset();
    batch.cipher = buffers_.take(kBatchChunks * kSealed);

    pool_.finish();
    Batch* sealed = in_flight_;
    pool_.start(chunks, [this, &batch, first, chunks, final](std::size_t i, unsigned slot) {
      std::size_t offset = i * kChunk;
      std::size_t size = std::min(kChunk, batch.plain_size - offset);
      ciphers_[slot].seal(key_, first + i, final && i + 1 == chunks,
                          ByteSpan(batch.plain->data.get() + offset, size),
                          batch.cipher->data.get() + i * kSealed);
    });
    in_flight_ = &batch;
    filling_ ^= 1;
    batches_[filling_].plain_size = 0;
    if (sealed) emit(*sealed);
  }

  void drain() {
    pool_.finish();
    if (in_flight_) emit(*in_flight_);
    in_flight_ = nullptr;
  }

  void emit(Batch& sealed) {
    out_->write_shared(ByteSpan(sealed.cipher->data.get(), sealed.cipher_size), sealed.cipher);
  }

  ByteSink* out_;
  std::unique_ptr<AgeArmorWriter> armor_;
  Key32 key_;
  std::uint64_t header_length_ = 0;
  std::uint64_t plaintext_size_ = 0;
  std::uint64_t next_chunk_ = 0;
  bool closed_ = false;
  // buffer() sealed a full batch as a middle one: bytes must follow.
  bool promised_ = false;
  BufferPool own_buffers_;
  BufferPool& buffers_;
  std::array<Batch, 2> batches_;
  int filling_ = 0;
  Batch* in_flight_ = nullptr;        // sealed or being sealed, not yet written
  std::vector<ChunkCipher> ciphers_;  // one per pool slot
  ChunkPool pool_;                    // last: stopped before the buffers go
};

AgeEncryptor::AgeEncryptor(ByteSink& next, std::span<const X25519Recipient> recipients,
                           const AgeEncryptOptions& options)
    : impl_(std::make_unique<Impl>(next, options)) {
  if (recipients.empty()) throw Error("age encryption needs at least one recipient");
  FileKey file_key;
  internal::random_bytes(file_key.span());
  std::vector<internal::Stanza> stanzas;
  for (const X25519Recipient& recipient : recipients)
    stanzas.push_back(internal::x25519_wrap(recipient, file_key));
  impl_->begin(stanzas, file_key);
}

AgeEncryptor::AgeEncryptor(ByteSink& next, const Passphrase& passphrase,
                           const AgeEncryptOptions& options)
    : impl_(std::make_unique<Impl>(next, options)) {
  if (passphrase.bytes().empty()) throw Error("age encryption with an empty passphrase");
  FileKey file_key;
  internal::random_bytes(file_key.span());
  impl_->begin({internal::scrypt_wrap(passphrase, options.work_factor, file_key)}, file_key);
}

AgeEncryptor::~AgeEncryptor() = default;
void AgeEncryptor::write(ByteSpan data) {
  impl_->write(data);
}
void AgeEncryptor::close() {
  impl_->close();
}
MutableByteSpan AgeEncryptor::buffer() {
  return impl_->buffer();
}
void AgeEncryptor::commit(std::size_t bytes) {
  impl_->commit(bytes);
}
std::uint64_t AgeEncryptor::header_length() const {
  return impl_->header_length();
}
std::uint64_t AgeEncryptor::plaintext_size() const {
  return impl_->plaintext_size();
}
std::uint64_t AgeEncryptor::ciphertext_size() const {
  return impl_->ciphertext_size();
}

// ------------------------------------------------------------ payload decryptor

class AgePayloadDecryptor::Impl {
 public:
  Impl(ByteSource& source, const Key32& key, std::uint64_t first_chunk, unsigned threads)
      : source_(source),
        key_(key),
        next_chunk_(first_chunk),
        ciphers_(std::max(1u, threads)),
        pool_(std::max(1u, threads)) {}

  ~Impl() {
    // The helpers may still be opening chunks into our buffers.
    try {
      pool_.finish();
    } catch (...) {
    }
  }

  std::size_t read(MutableByteSpan out) {
    if (out.empty()) return 0;
    for (;;) {
      if (serving_ && serving_->released_begin < serving_->released_end) {
        Batch& b = *serving_;
        std::size_t n = std::min(out.size(), b.released_end - b.released_begin);
        std::memcpy(out.data(), b.plain.data.get() + b.released_begin, n);
        b.released_begin += n;
        return n;
      }
      // Errors and the end surface only after everything before them.
      if (error_) throw *error_;
      if (source_error_) std::rethrow_exception(source_error_);
      if (done_) return 0;
      advance();
    }
  }

 private:
  enum class Opened { Failed, Middle, Final, EmptyFinal };
  struct Result {
    Opened opened = Opened::Failed;
    std::size_t plain_size = 0;
  };
  struct Batch {
    // One chunk more than a full batch: at the end of the file a batch takes
    // everything that is left.
    Batch()
        : cipher((kBatchChunks + 1) * kSealed),
          plain((kBatchChunks + 1) * kChunk),
          results(kBatchChunks + 1) {}
    RawBuffer cipher;
    RawBuffer plain;
    std::vector<Result> results;
    std::size_t have = 0;   // ciphertext bytes
    std::size_t count = 0;  // chunks opened in this batch
    std::uint64_t first_chunk = 0;
    bool at_eof = false;
    std::size_t released_begin = 0;
    std::size_t released_end = 0;
  };

  // Pipelined: batch k+1 is read and handed to the helpers before batch k is
  // served, so they open it while the caller consumes batch k.
  void advance() {
    if (!in_flight_) launch_or_keep_error(nullptr);
    if (!in_flight_) return;
    pool_.finish();
    Batch& batch = *in_flight_;
    in_flight_ = nullptr;
    judge(batch);
    serving_ = &batch;
    if (!error_ && !done_) launch_or_keep_error(&batch);
  }

  // A failing source (I/O error, bad armor) must not hide the plaintext
  // already authenticated, nor leave a half-read batch behind: its error is
  // kept, raised after what came before, and raised again on every read.
  void launch_or_keep_error(const Batch* previous) {
    try {
      launch(previous);
    } catch (...) {
      source_error_ = std::current_exception();
    }
  }

  void launch(const Batch* previous) {
    Batch& batch = previous == &batches_[0] ? batches_[1] : batches_[0];
    batch.have = 0;
    if (previous) {
      // The chunk (or part) the previous batch could not judge yet.
      std::size_t used = previous->count * kSealed;
      batch.have = previous->have - used;
      std::memcpy(batch.cipher.data.get(), previous->cipher.data.get() + used, batch.have);
    }
    while (batch.have < batch.cipher.size && !eof_) {
      std::size_t n = source_.read(
          MutableByteSpan(batch.cipher.data.get() + batch.have, batch.cipher.size - batch.have));
      if (n == 0) eof_ = true;
      batch.have += n;
    }
    batch.at_eof = eof_;
    // A full chunk can be judged once a byte after it (or the end) is seen.
    batch.count = eof_ ? std::max<std::size_t>(1, (batch.have + kSealed - 1) / kSealed)
                       : (batch.have - 1) / kSealed;
    batch.first_chunk = next_chunk_;
    next_chunk_ += batch.count;
    pool_.start(batch.count,
                [this, &batch](std::size_t i, unsigned slot) { open(batch, i, ciphers_[slot]); });
    in_flight_ = &batch;
  }

  // What chunk i is, as age decides it: a full-size chunk is a middle chunk
  // unless only the final-chunk nonce opens it; a short one can only be final.
  void open(Batch& batch, std::size_t i, ChunkCipher& cipher) {
    bool at_end = batch.at_eof && i + 1 == batch.count;
    std::size_t begin = i * kSealed;
    std::size_t size = std::min(kSealed, batch.have - std::min(batch.have, begin));
    ByteSpan sealed(batch.cipher.data.get() + begin, size);
    std::uint8_t* plain = batch.plain.data.get() + i * kChunk;
    std::uint64_t chunk = batch.first_chunk + i;
    Result& r = batch.results[i];
    r = Result{};
    if (size < kAgeTagSize) return;
    r.plain_size = size - kAgeTagSize;
    if (size == kSealed && cipher.open(key_, chunk, false, sealed, plain)) {
      r.opened = Opened::Middle;
    } else if ((size == kSealed || at_end) && cipher.open(key_, chunk, true, sealed, plain)) {
      // Only the first chunk may be empty, and only as the whole payload.
      r.opened = r.plain_size == 0 && chunk != 0 ? Opened::EmptyFinal : Opened::Final;
    }
  }

  // Releases the batch's plaintext up to the first problem, which is kept
  // for the read that reaches it.
  void judge(Batch& batch) {
    batch.released_begin = batch.released_end = 0;
    for (std::size_t i = 0; i < batch.count && !error_ && !done_; ++i) {
      std::uint64_t chunk = batch.first_chunk + i;
      bool at_end = batch.at_eof && i + 1 == batch.count;
      std::size_t size = std::min(kSealed, batch.have - std::min(batch.have, i * kSealed));
      const Result& r = batch.results[i];
      switch (r.opened) {
        case Opened::Failed:
          if (at_end && size == 0)
            set_error(AgeErrorKind::Truncated,
                      chunk == 0 ? "age file is truncated (no payload chunks)"
                                 : "age file is truncated (the payload ends after chunk " +
                                       std::to_string(chunk - 1) + " without a final chunk)",
                      chunk);
          else if (at_end && size < kSealed)
            set_error(AgeErrorKind::PayloadCorrupt,
                      internal::corrupt_chunk_message(chunk) + " (or the file is truncated there)",
                      chunk);
          else
            set_error(AgeErrorKind::PayloadCorrupt, internal::corrupt_chunk_message(chunk), chunk);
          break;
        case Opened::EmptyFinal:
          set_error(AgeErrorKind::PayloadCorrupt,
                    internal::corrupt_chunk_message(chunk) + " (empty final chunk)", chunk);
          break;
        case Opened::Middle:
          batch.released_end += r.plain_size;
          if (at_end)
            set_error(AgeErrorKind::Truncated,
                      "age file is truncated (the payload ends after chunk " +
                          std::to_string(chunk) + " without a final chunk)",
                      chunk);
          break;
        case Opened::Final:
          batch.released_end += r.plain_size;
          if (at_end)
            done_ = true;
          else
            set_error(AgeErrorKind::TrailingData,
                      "age file has trailing data after its final chunk (chunk " +
                          std::to_string(chunk) + ")",
                      chunk);
          break;
      }
    }
  }

  void set_error(AgeErrorKind kind, const std::string& message, std::uint64_t chunk) {
    error_.emplace(kind, message, chunk);
  }

  ByteSource& source_;
  Key32 key_;
  std::uint64_t next_chunk_;
  bool eof_ = false;
  bool done_ = false;
  std::optional<AgeError> error_;
  std::exception_ptr source_error_;
  std::array<Batch, 2> batches_;
  Batch* in_flight_ = nullptr;        // read and handed to the pool, not judged yet
  Batch* serving_ = nullptr;          // judged; its plaintext is being read out
  std::vector<ChunkCipher> ciphers_;  // one per pool slot
  ChunkPool pool_;                    // last: stopped before the buffers go
};

AgePayloadDecryptor::AgePayloadDecryptor(ByteSource& ciphertext, const SecretArray<32>& payload_key,
                                         std::uint64_t first_chunk, unsigned threads)
    : impl_(std::make_unique<Impl>(ciphertext, payload_key, first_chunk, threads)) {}
AgePayloadDecryptor::~AgePayloadDecryptor() = default;
std::size_t AgePayloadDecryptor::read(MutableByteSpan out) {
  return impl_->read(out);
}

}  // namespace mixtape::crypto
