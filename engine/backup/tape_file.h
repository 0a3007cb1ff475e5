// Private to engine/backup: one tape file being written, encrypted or not.
//
// The chain is  caller -> [AgeEncryptor] -> HeaderHold -> RecordWriter -> drive.
// HeaderHold keeps the age header in memory until release(), so the writer
// can learn H (the header length, which the index that precedes the archive
// must record) before anything of the archive reaches the tape.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/backup/backup.h"
#include "engine/catalog/catalog.h"
#include "engine/crypto/crypto.h"
#include "engine/tape/tape.h"

namespace mixtape::backup {

std::int64_t now_ns();

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

// The catalog's encryption settings; a passphrase catalog needs keys.passphrase.
Sealing sealing_for(catalog::Catalog& catalog, const WriterKeys& keys);

// H of every age file written with this sealing (0 for plain tapes): it
// depends only on the stanzas' shapes, never on the keys drawn for a file.
std::uint64_t age_header_length_of(const Sealing& sealing);

// Where index files are built: `configured`, else $TMPDIR, else /tmp.
std::string temp_directory(const std::string& configured);

// A scratch file name in a directory, removed (with its SQLite journal) when
// it goes out of scope.
class ScratchFile {
 public:
  ScratchFile(const std::string& dir, const std::string& stem);
  ScratchFile(const ScratchFile&) = delete;
  ScratchFile& operator=(const ScratchFile&) = delete;
  ~ScratchFile();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Writes a trailing index for `tape` at the drive's position: the catalog as
// this connection sees it, including its open transaction's rows.
void write_trailing_index(catalog::Catalog& catalog, tape::Drive& drive,
                          const catalog::TapeRow& tape, const Sealing& sealing,
                          const std::string& temp_dir);

// Generation of the index at tape file `index_file` (1, 3, 5, ...): its
// ordinal among the indexes along the tape, counting from 1.
std::uint64_t index_generation(std::int64_t index_file);

// Bytes of tape file 0 as label_tape() writes it (the program and its
// source are in it, so this is megabytes: planning counts it exactly).
std::uint64_t file0_size(catalog::Catalog& catalog, const LabelOptions& options,
                         const Sealing& sealing);

// A serial for a new tape: the first <prefix><5 digits> that the catalog does
// not know and that is either not in the library or there but reusable (blank,
// or labelled for this catalog by a run that was killed before registering
// it, and holding no archive). Never touches a tape of another catalog.
// Tapes it must look into are loaded into drive `drive`.
std::string new_tape_serial(catalog::Catalog& catalog, tape::Library& library,
                            const std::string& prefix, Progress& progress, std::size_t drive = 0);

}  // namespace mixtape::backup
