#include "engine/backup/tape_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>

#include "engine/format/format.h"

namespace mixtape::backup {

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

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

TapeFileWriter::TapeFileWriter(tape::Drive& drive, std::size_t record_size, const Sealing& sealing,
                               bool hold_header)
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

Sealing sealing_for(catalog::Catalog& catalog, const WriterKeys& keys) {
  catalog::CatalogConfig config = catalog.config();
  Sealing sealing;
  switch (config.encryption) {
    case catalog::Encryption::kNone:
      sealing.mode = Sealing::Mode::kNone;
      break;
    case catalog::Encryption::kRecipients:
      sealing.mode = Sealing::Mode::kRecipients;
      for (const auto& r : config.recipients)
        sealing.recipients.push_back(crypto::X25519Recipient::parse(r));
      if (sealing.recipients.empty()) throw Error("catalog has no recipients to encrypt to");
      break;
    case catalog::Encryption::kPassphrase:
      sealing.mode = Sealing::Mode::kPassphrase;
      if (!keys.passphrase)
        throw Error("this catalog encrypts with a passphrase: give --passphrase-file");
      sealing.passphrase = *keys.passphrase;
      break;
  }
  return sealing;
}

std::uint64_t age_header_length_of(const Sealing& sealing) {
  MemorySink discard;
  switch (sealing.mode) {
    case Sealing::Mode::kNone:
      return 0;
    case Sealing::Mode::kRecipients:
      return crypto::AgeEncryptor(discard, sealing.recipients).header_length();
    case Sealing::Mode::kPassphrase: {
      // The stanza is "-> scrypt <salt> <work factor>": any two-digit work
      // factor gives the same length, and 10 costs a millisecond where the
      // real one (18) costs a second.
      static_assert(crypto::kScryptWorkFactor >= 10 && crypto::kScryptWorkFactor <= 99);
      crypto::AgeEncryptOptions cheap;
      cheap.work_factor = 10;
      return crypto::AgeEncryptor(discard, *sealing.passphrase, cheap).header_length();
    }
  }
  return 0;
}

std::string temp_directory(const std::string& configured) {
  if (!configured.empty()) return configured;
  const char* tmp = std::getenv("TMPDIR");
  return tmp && *tmp ? tmp : "/tmp";
}

ScratchFile::ScratchFile(const std::string& dir, const std::string& stem)
    : path_(dir + "/mixtape-" + stem + "-" + std::to_string(::getpid()) + "-" +
            std::to_string(now_ns()) + ".db") {}

ScratchFile::~ScratchFile() {
  std::error_code ignored;
  std::filesystem::remove(path_, ignored);
  std::filesystem::remove(path_ + "-journal", ignored);
}

std::uint64_t index_generation(std::int64_t index_file) {
  return static_cast<std::uint64_t>((index_file + 1) / 2);
}

void write_trailing_index(catalog::Catalog& catalog, tape::Drive& drive,
                          const catalog::TapeRow& tape, const Sealing& sealing,
                          const std::string& temp_dir) {
  ScratchFile path(temp_dir, "trailing");
  format::IndexHeader header;
  header.kind = format::IndexKind::kTrailing;
  header.serial = tape.serial;
  header.record_size = tape.record_size;
  header.generation = index_generation(tape.append_file);
  header.index_file = static_cast<std::uint64_t>(tape.append_file);
  header.catalog_id = catalog.catalog_id();
  header.created = format::format_utc(now_ns() / 1000000000);
  header.encrypted = sealing.mode != Sealing::Mode::kNone;
  {
    format::IndexWriter writer(path.path(), header);
    writer.database().exec("PRAGMA synchronous = OFF");  // a scratch file until it is on tape
    catalog.copy_into(writer.database());
    writer.finish();
  }
  write_file_to_tape(drive, static_cast<std::size_t>(tape.record_size), sealing, path.path());
}

}  // namespace mixtape::backup
