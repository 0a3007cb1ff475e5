// Private to engine/backup: one tape file being written, encrypted or not.
//
// The chain is  caller -> [AgeEncryptor] -> HeaderHold -> RecordWriter -> drive.
// HeaderHold keeps the age header in memory until release(), so the writer
// can learn H (the header length, which the index that precedes the archive
// must record) before anything of the archive reaches the tape.
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "engine/crypto/crypto.h"
#include "engine/tape/tape.h"

namespace mixtape::backup {

// How tape files are encrypted: the catalog's settings.
struct Sealing {
  enum class Mode { kNone, kRecipients, kPassphrase };
  Mode mode = Mode::kRecipients;
  std::vector<crypto::X25519Recipient> recipients;
  std::optional<crypto::Passphrase> passphrase;
};

// Buffers writes until release(), then passes them straight through.
class HeaderHold final : public ByteSink {
 public:
  explicit HeaderHold(ByteSink& next) : next_(next) {}
  void write(ByteSpan data) override;
  void close() override { next_.close(); }
  std::size_t held() const { return held_.size(); }
  void release();

 private:
  ByteSink& next_;
  Bytes held_;
  bool released_ = false;
};

class TapeFileWriter {
 public:
  // Nothing reaches the drive until release() (or the first write when
  // hold_header is false).
  TapeFileWriter(tape::Drive& drive, std::size_t record_size, const Sealing& sealing,
                 bool hold_header);
  // Where plaintext goes.
  ByteSink& sink() { return encryptor_ ? static_cast<ByteSink&>(*encryptor_) : hold_; }
  std::uint64_t header_length() const { return encryptor_ ? encryptor_->header_length() : 0; }
  void release() { hold_.release(); }
  // Ends the tape file (final chunk, last record, filemark).
  void close();
  bool early_warning() const { return records_.early_warning(); }
  std::uint64_t bytes_on_tape() const { return records_.bytes_written(); }

 private:
  tape::RecordWriter records_;
  HeaderHold hold_;
  std::unique_ptr<crypto::AgeEncryptor> encryptor_;
};

// Writes a whole disk file (an index database) as one tape file.
struct WrittenFile {
  std::uint64_t bytes_on_tape = 0;
  bool early_warning = false;
};
WrittenFile write_file_to_tape(tape::Drive& drive, std::size_t record_size, const Sealing& sealing,
                               const std::string& path);

// Bytes an encrypted (or plain) tape file of plaintext_size bytes occupies.
std::uint64_t sealed_size(const Sealing& sealing, std::uint64_t header_length,
                          std::uint64_t plaintext_size);

}  // namespace mixtape::backup
