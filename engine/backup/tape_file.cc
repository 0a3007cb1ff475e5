#include "engine/backup/tape_file.h"

#include <fcntl.h>

namespace mixtape::backup {

void HeaderHold::write(ByteSpan data) {
  if (released_) {
    next_.write(data);
    return;
  }
  held_.insert(held_.end(), data.begin(), data.end());
}

void HeaderHold::release() {
  if (released_) return;
  released_ = true;
  if (!held_.empty()) next_.write(held_);
  Bytes().swap(held_);
}

TapeFileWriter::TapeFileWriter(tape::Drive& drive, std::size_t record_size,
                               const Sealing& sealing, bool hold_header)
    : records_(drive, record_size), hold_(records_) {
  if (!hold_header) hold_.release();
  switch (sealing.mode) {
    case Sealing::Mode::kNone:
      break;
    case Sealing::Mode::kRecipients:
      encryptor_ = std::make_unique<crypto::AgeEncryptor>(hold_, sealing.recipients);
      break;
    case Sealing::Mode::kPassphrase:
      encryptor_ = std::make_unique<crypto::AgeEncryptor>(hold_, *sealing.passphrase);
      break;
  }
}

void TapeFileWriter::close() {
  hold_.release();
  sink().close();  // the encryptor closes the hold, which closes the records
}

WrittenFile write_file_to_tape(tape::Drive& drive, std::size_t record_size, const Sealing& sealing,
                               const std::string& path) {
  TapeFileWriter writer(drive, record_size, sealing, false);
  UniqueFd fd = open_file(path, O_RDONLY);
  FdSource source(fd.get(), path);
  Bytes buffer(record_size);
  for (std::size_t n; (n = source.read(buffer)) > 0;) writer.sink().write({buffer.data(), n});
  writer.close();
  return {writer.bytes_on_tape(), writer.early_warning()};
}

std::uint64_t sealed_size(const Sealing& sealing, std::uint64_t header_length,
                          std::uint64_t plaintext_size) {
  if (sealing.mode == Sealing::Mode::kNone) return plaintext_size;
  return crypto::age_ciphertext_size(header_length, plaintext_size);
}

}  // namespace mixtape::backup
