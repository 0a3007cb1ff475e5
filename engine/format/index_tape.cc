// Index files to and from tape: sealed (age-encrypted unless the tape is
// plain) and cut into records on the way out, read back and unsealed into a
// scratch file on the way in. docs/FORMAT.md sections 5 and 6.
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "engine/format/format.h"

namespace mixtape::format {
namespace {

constexpr std::string_view kAgeMagic = "age-encryption.org/v1\n";
constexpr std::string_view kSqliteMagic{"SQLite format 3\0", 16};

// Serves a prefix already read, then the rest of a source.
class PrefixedSource final : public ByteSource {
 public:
  PrefixedSource(ByteSpan prefix, ByteSource& rest) : prefix_(prefix), rest_(rest) {}
  std::size_t read(MutableByteSpan out) override {
    if (used_ < prefix_.size()) {
      std::size_t n = std::min(out.size(), prefix_.size() - used_);
      std::memcpy(out.data(), prefix_.data() + used_, n);
      used_ += n;
      return n;
    }
    return rest_.read(out);
  }

 private:
  ByteSpan prefix_;
  std::size_t used_ = 0;
  ByteSource& rest_;
};

class CountingSource final : public ByteSource {
 public:
  explicit CountingSource(ByteSource& inner) : inner_(inner) {}
  std::size_t read(MutableByteSpan out) override {
    std::size_t n = inner_.read(out);
    count_ += n;
    return n;
  }
  std::uint64_t count() const { return count_; }

 private:
  ByteSource& inner_;
  std::uint64_t count_ = 0;
};

// Copies an index's plaintext, refusing at its first bytes anything that is
// not a SQLite file: the last file of an interrupted tape is an archive,
// and reading all of it to find that out would cost the whole archive.
void copy_index(ByteSource& from, int fd, const std::string& path) {
  Bytes buffer(1 << 20);
  Bytes magic(kSqliteMagic.size());
  std::size_t n = read_full(from, magic);
  if (n < magic.size() || as_chars(magic) != kSqliteMagic)
    throw FormatError("not an index: the file does not hold a SQLite database (an archive?)");
  write_all(fd, magic, path);
  while ((n = from.read(buffer)) > 0) write_all(fd, {buffer.data(), n}, path);
}

}  // namespace

std::unique_ptr<crypto::AgeEncryptor> Sealing::encryptor(
    ByteSink& out, const crypto::AgeEncryptOptions& options) const {
  switch (mode) {
    case Mode::kNone:
      return nullptr;
    case Mode::kRecipients:
      return std::make_unique<crypto::AgeEncryptor>(out, recipients, options);
    case Mode::kPassphrase:
      return std::make_unique<crypto::AgeEncryptor>(out, *passphrase, options);
  }
  return nullptr;
}

std::uint64_t Sealing::header_length() const {
  MemorySink discard;
  crypto::AgeEncryptOptions options;
  // The scrypt stanza is "-> scrypt <salt> <work factor>": any two-digit
  // work factor gives the same length, and 10 costs a millisecond where the
  // real one (18) costs a second.
  static_assert(crypto::kScryptWorkFactor >= 10 && crypto::kScryptWorkFactor <= 99);
  options.work_factor = 10;
  auto sealed = encryptor(discard, options);
  return sealed ? sealed->header_length() : 0;
}

std::uint64_t Sealing::sealed_size(std::uint64_t header_length,
                                   std::uint64_t plaintext_size) const {
  if (mode == Mode::kNone) return plaintext_size;
  return crypto::age_ciphertext_size(header_length, plaintext_size);
}

WrittenIndex write_index_to_tape(tape::Drive& drive, std::size_t record_size,
                                 const Sealing& sealing, const std::string& path) {
  tape::RecordWriter records(drive, record_size);
  std::unique_ptr<crypto::AgeEncryptor> sealed = sealing.encryptor(records);
  ByteSink& sink = sealed ? static_cast<ByteSink&>(*sealed) : records;
  UniqueFd fd = open_file(path, O_RDONLY);
  FdSource source(fd.get(), path);
  Bytes buffer(1 << 20);
  for (std::size_t n; (n = source.read(buffer)) > 0;) sink.write({buffer.data(), n});
  sink.close();  // the encryptor closes the records: last record, filemark
  return {records.bytes_written(), records.early_warning()};
}

std::uint64_t read_index_from_tape(ByteSource& tape_file, const crypto::AgeDecryptKeys& keys,
                                   const std::string& path) {
  CountingSource counted(tape_file);
  Bytes head(kAgeMagic.size());
  head.resize(read_full(counted, head));
  if (head.empty()) throw FormatError("the index file is empty");
  PrefixedSource source(head, counted);
  UniqueFd out = open_file(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  const std::string_view start = as_chars(head);
  if (start == kAgeMagic) {
    crypto::AgeDecryptOptions options;
    options.armor = crypto::AgeArmor::Binary;
    crypto::AgeDecryptor decryptor(source, keys, options);
    copy_index(decryptor, out.get(), path);
  } else if (start.starts_with(kSqliteMagic)) {
    copy_index(source, out.get(), path);
  } else {
    throw FormatError("not a mixtape index: neither an age file nor a SQLite database");
  }
  if (::fsync(out.get()) != 0) throw_errno("cannot write " + path);
  return counted.count();
}

}  // namespace mixtape::format
