// Whole-file decryption: armor detection, header, then the STREAM payload;
// and random access over a file whose size is known.
#include <algorithm>
#include <cstring>
#include <mutex>

#include "engine/crypto/internal.h"

namespace mixtape::crypto {

using internal::BufferedReader;

namespace {

constexpr std::size_t kReadAhead = 1 << 16;

// Armored files start (after optional whitespace) with a PEM line; binary
// ones with "age-encryption.org/". Anything that looks like PEM goes to the
// armor reader, so a wrong label is reported as bad armor, not a bad header.
bool looks_armored(BufferedReader& in) {
  ByteSpan start = in.peek(internal::kMaxArmorWhitespace + 16);
  std::size_t i = 0;
  while (i < start.size() && std::strchr(" \t\r\n\v\f", start[i]) && start[i] != 0) ++i;
  return as_chars(start.subspan(i)).starts_with("-----BEGIN");
}

}  // namespace

// ------------------------------------------------------------ AgeDecryptor

class AgeDecryptor::Impl {
 public:
  Impl(ByteSource& source, const AgeDecryptKeys& keys, const AgeDecryptOptions& options)
      : outer_(source, kReadAhead) {
    BufferedReader* in = &outer_;
    armored_ = options.armor == AgeArmor::Armored ||
               (options.armor == AgeArmor::Auto && looks_armored(outer_));
    if (armored_) {
      armor_ = std::make_unique<AgeArmorReader>(outer_);
      inner_ = std::make_unique<BufferedReader>(*armor_, kReadAhead);
      in = inner_.get();
    }
    AgeFileKeys file = internal::open_header(*in, keys);
    header_length_ = file.header_length;
    payload_ = std::make_unique<AgePayloadDecryptor>(*in, file.payload_key, 0, options.threads);
  }

  std::size_t read(MutableByteSpan out) { return payload_->read(out); }
  std::uint64_t header_length() const { return header_length_; }
  bool armored() const { return armored_; }

 private:
  BufferedReader outer_;
  std::unique_ptr<AgeArmorReader> armor_;
  std::unique_ptr<BufferedReader> inner_;
  std::unique_ptr<AgePayloadDecryptor> payload_;
  std::uint64_t header_length_ = 0;
  bool armored_ = false;
};

AgeDecryptor::AgeDecryptor(ByteSource& ciphertext, const AgeDecryptKeys& keys,
                           const AgeDecryptOptions& options)
    : impl_(std::make_unique<Impl>(ciphertext, keys, options)) {}
AgeDecryptor::~AgeDecryptor() = default;
std::size_t AgeDecryptor::read(MutableByteSpan out) {
  return impl_->read(out);
}
std::uint64_t AgeDecryptor::header_length() const {
  return impl_->header_length();
}
bool AgeDecryptor::armored() const {
  return impl_->armored();
}

// ------------------------------------------------------------ random access

class AgeRandomAccessDecryptor::Impl {
 public:
  Impl(RandomAccessSource& source, const AgeFileKeys& keys)
      : source_(source), header_length_(keys.header_length), key_(keys.payload_key) {
    // Geometry first: a size no age file can have is truncation, found
    // without decrypting anything.
    size_ = age_plaintext_size(header_length_, source_.size());
    chunks_ = age_chunk_count(size_);
    authenticate_final_chunk();
  }

  std::uint64_t size() const { return size_; }
  std::uint64_t header_length() const { return header_length_; }

  std::size_t read_at(std::uint64_t offset, MutableByteSpan out) {
    if (offset >= size_ || out.empty()) return 0;
    std::size_t total =
        static_cast<std::size_t>(std::min<std::uint64_t>(out.size(), size_ - offset));
    std::lock_guard lock(mutex_);
    std::size_t done = 0;
    while (done < total) {
      std::uint64_t chunk = age_chunk_index(offset + done);
      load(chunk);
      std::size_t within = static_cast<std::size_t>((offset + done) % kAgeChunkSize);
      std::size_t n = std::min(total - done, cached_size_ - within);
      std::memcpy(out.data() + done, cached_.data() + within, n);
      done += n;
    }
    return done;
  }

 private:
  // Reads and opens one chunk into the cache; throws PayloadCorrupt naming it.
  void load(std::uint64_t chunk) {
    if (cached_chunk_ == chunk) return;
    cached_chunk_.reset();
    std::size_t sealed_size = read_sealed(chunk);
    if (!internal::open_chunk(key_, chunk, chunk + 1 == chunks_,
                              ByteSpan(sealed_).first(sealed_size), cached_.data()))
      throw AgeError(AgeErrorKind::PayloadCorrupt, internal::corrupt_chunk_message(chunk), chunk);
    cached_size_ = sealed_size - kAgeTagSize;
    cached_chunk_ = chunk;
  }

  std::size_t read_sealed(std::uint64_t chunk) {
    std::uint64_t begin = age_chunk_offset(header_length_, chunk);
    std::size_t want = static_cast<std::size_t>(
        std::min<std::uint64_t>(kAgeEncryptedChunkSize, source_.size() - begin));
    std::size_t got = source_.read_at(begin, MutableByteSpan(sealed_).first(want));
    if (got != want)
      throw AgeError(AgeErrorKind::Truncated, "age file is truncated (it shrank while being read)");
    return got;
  }

  // The spec: seeking relative to the end must first verify the final chunk.
  // Its failure is told apart as well as the bytes allow.
  void authenticate_final_chunk() {
    std::uint64_t last = chunks_ - 1;
    std::size_t sealed_size = read_sealed(last);
    ByteSpan sealed = ByteSpan(sealed_).first(sealed_size);
    if (internal::open_chunk(key_, last, true, sealed, cached_.data())) {
      cached_size_ = sealed_size - kAgeTagSize;
      cached_chunk_ = last;
      return;
    }
    if (sealed_size == kAgeEncryptedChunkSize &&
        internal::open_chunk(key_, last, false, sealed, cached_.data()))
      throw AgeError(AgeErrorKind::Truncated,
                     "age file is truncated (the payload ends after chunk " + std::to_string(last) +
                         " without a final chunk)",
                     last);
    if (last > 0) {
      read_sealed(last - 1);
      if (internal::open_chunk(key_, last - 1, true, sealed_, cached_.data()))
        throw AgeError(AgeErrorKind::TrailingData,
                       "age file has trailing data after its final chunk (chunk " +
                           std::to_string(last - 1) + ")",
                       last - 1);
    }
    throw AgeError(AgeErrorKind::PayloadCorrupt,
                   internal::corrupt_chunk_message(last) +
                       " (the final chunk does not authenticate; the file may be truncated)",
                   last);
  }

  RandomAccessSource& source_;
  std::uint64_t header_length_;
  SecretArray<32> key_;
  std::uint64_t size_ = 0;
  std::uint64_t chunks_ = 0;
  std::mutex mutex_;
  std::array<std::uint8_t, kAgeEncryptedChunkSize> sealed_{};
  std::array<std::uint8_t, kAgeChunkSize> cached_{};
  std::size_t cached_size_ = 0;
  std::optional<std::uint64_t> cached_chunk_;
};

namespace {

AgeFileKeys keys_from_header(RandomAccessSource& source, const AgeDecryptKeys& keys) {
  OffsetReader reader(source, 0);
  BufferedReader in(reader, 4096);
  return internal::open_header(in, keys);
}

}  // namespace

AgeRandomAccessDecryptor::AgeRandomAccessDecryptor(RandomAccessSource& ciphertext,
                                                   const AgeDecryptKeys& keys)
    : impl_(std::make_unique<Impl>(ciphertext, keys_from_header(ciphertext, keys))) {}
AgeRandomAccessDecryptor::AgeRandomAccessDecryptor(RandomAccessSource& ciphertext,
                                                   const AgeFileKeys& file_keys)
    : impl_(std::make_unique<Impl>(ciphertext, file_keys)) {}
AgeRandomAccessDecryptor::~AgeRandomAccessDecryptor() = default;
std::uint64_t AgeRandomAccessDecryptor::size() const {
  return impl_->size();
}
std::size_t AgeRandomAccessDecryptor::read_at(std::uint64_t offset, MutableByteSpan out) {
  return impl_->read_at(offset, out);
}
std::uint64_t AgeRandomAccessDecryptor::header_length() const {
  return impl_->header_length();
}

}  // namespace mixtape::crypto
