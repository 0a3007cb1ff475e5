// Labelling tapes, and choosing the serial of the next new tape.
//
// A tape becomes the catalog's in one transaction that registers it and
// writes its first trailing index; file 0 is written before. A run killed in
// between leaves a tape with our label that the catalog does not know and
// that holds no archive. new_tape_serial() gives such a tape its serial back
// (it is relabelled), rather than leaving it behind and skipping the serial.
#include <sys/stat.h>

#include <algorithm>

#include "engine/backup/backup.h"
#include "engine/backup/tape_file.h"
#include "engine/format/format.h"

namespace mixtape::backup {
namespace {

// Whether the tape in `drive` can be labelled anew without losing anything:
// blank (the drive confirms end of data at block 0), holding only the
// first-contact self-test, or labelled for this catalog with nothing after
// file 1 (which can only be the trailing index of a labelling that never
// committed). Data that cannot be read is still data: not reusable.
enum class Reuse { kNo, kBlank, kInterrupted };

Reuse reusable(tape::Drive& drive, const std::string& catalog_id) {
  try {
    if (tape::tape_is_blank(drive)) return Reuse::kBlank;
    if (tape::holds_only_first_contact_test(drive)) return Reuse::kInterrupted;
    try {
      if (format::read_tape_label(drive).catalog_id != catalog_id) return Reuse::kNo;
    } catch (const format::FormatError&) {
      return Reuse::kNo;  // another program's tape, or damage: never ours to overwrite
    }
    drive.rewind();
    try {
      drive.space_filemarks_forward(2);
    } catch (const tape::TapeError& e) {
      if (e.kind() == tape::TapeErrorKind::kEndOfData) return Reuse::kInterrupted;  // files 0, 1
      throw;
    }
    tape::RecordBuffer probe(tape::kProbeReadSize);
    return drive.read_record(probe.span()).kind == tape::ReadKind::kEndOfData ? Reuse::kInterrupted
                                                                              : Reuse::kNo;
  } catch (const tape::TapeError& e) {
    if (e.kind() == tape::TapeErrorKind::kMediaError ||
        e.kind() == tape::TapeErrorKind::kRecordTooLarge)
      return Reuse::kNo;
    throw;
  }
}

}  // namespace

void check_tape_identity(tape::Drive& drive, const catalog::TapeRow& tape) {
  format::LabelInfo label;
  try {
    label = format::read_tape_label(drive);
  } catch (const format::FormatError& e) {
    throw tape::TapeError(tape::TapeErrorKind::kDeviceError,
                          drive.name() + " should hold tape " + tape.serial +
                              ", but the tape in it has no readable mixtape label (" + e.what() +
                              "); not writing to it");
  }
  if (label.serial != tape.serial) {
    throw tape::TapeError(tape::TapeErrorKind::kDeviceError,
                          drive.name() + " holds tape " + label.serial + ", not tape " +
                              tape.serial +
                              "; not writing to it (with a changer: are the "
                              "drives' devices listed in the changer's drive order?)");
  }
  if (label.record_size != tape.record_size) {
    throw tape::TapeError(tape::TapeErrorKind::kDeviceError,
                          drive.name() + " holds a tape labelled " + label.serial +
                              " with records of " + std::to_string(label.record_size) +
                              " bytes, but the catalog's tape " + tape.serial + " has " +
                              std::to_string(tape.record_size) +
                              "-byte records: another tape with the same serial? "
                              "Not writing to it");
  }
}

std::string new_tape_serial(catalog::Writer& catalog, tape::Library& library,
                            const std::string& prefix, Progress& progress, std::size_t drive) {
  auto in_library = library.serials();
  std::string catalog_id = catalog.catalog_id();
  for (int n = 1; n < 100000; ++n) {
    char digits[8];
    std::snprintf(digits, sizeof digits, "%05d", n);
    std::string serial = prefix + digits;
    if (catalog.tape_by_serial(serial)) continue;
    if (std::find(in_library.begin(), in_library.end(), serial) == in_library.end()) return serial;
    const Reuse reuse = reusable(library.load(serial, drive), catalog_id);
    if (reuse == Reuse::kBlank) return serial;  // a new cartridge with that barcode
    if (reuse == Reuse::kInterrupted) {
      progress.warning("tape " + serial +
                       " was being labelled when a run was interrupted; labelling it again");
      return serial;
    }
  }
  throw Error("no free tape serial with prefix " + prefix);
}

namespace {

format::LabelInfo label_info(catalog::Writer& catalog, const std::string& serial,
                             const Sealing& sealing) {
  catalog::CatalogConfig config = catalog.config();
  format::LabelInfo label;
  label.serial = serial;
  label.record_size = config.record_size;
  label.labelled = format::format_utc(now_ns() / 1000000000);
  switch (sealing.mode) {
    case Sealing::Mode::kNone:
      label.encryption = format::Encryption::kNone;
      break;
    case Sealing::Mode::kPassphrase:
      label.encryption = format::Encryption::kAgePassphrase;
      break;
    case Sealing::Mode::kRecipients:
      label.encryption = format::Encryption::kAgeRecipients;
      break;
  }
  label.recipients = config.recipients;
  label.catalog_id = catalog.catalog_id();
  return label;
}

format::ArchaeologyExtras archaeology_extras(const LabelOptions& options) {
  format::ArchaeologyExtras extras;
  extras.binary_path = options.binary_path;
  extras.source_tarball_path = options.source_tarball_path;
  return extras;
}

// Counts what is written to it.
class CountingSink final : public ByteSink {
 public:
  void write(ByteSpan data) override { count_ += data.size(); }
  void close() override {}
  std::uint64_t count() const { return count_; }

 private:
  std::uint64_t count_ = 0;
};

}  // namespace

std::uint64_t file0_size(catalog::Writer& catalog, const LabelOptions& options,
                         const Sealing& sealing) {
  CountingSink counter;
  // The longest serial a library makes; no other line of the label varies.
  format::write_archaeology(counter, label_info(catalog, "L99999", sealing),
                            archaeology_extras(options));
  return counter.count();
}

catalog::TapeRow label_tape(catalog::Writer& catalog, tape::Drive& drive, const std::string& serial,
                            const LabelOptions& options, const WriterKeys& keys) {
  tape::check_serial(serial);
  if (catalog.tape_by_serial(serial))
    throw Error("tape " + serial + " is already in the catalog; labelling it again would lose it");
  if (!options.overwrite && reusable(drive, catalog.catalog_id()) == Reuse::kNo)
    throw Error("the tape loaded for " + serial +
                " is not blank (another catalog's or another program's data is on it, or data "
                "the drive cannot read); erase it first, or label it with --force to overwrite "
                "it");
  Sealing sealing = sealing_for(catalog, keys);
  catalog::CatalogConfig config = catalog.config();

  // An image knows its real size; for a drive the caller's figure is all
  // there is. Planning trusts this number, so it must not be larger than
  // the medium.
  std::uint64_t capacity =
      drive.capacity().value_or(options.capacity ? options.capacity : tape::kLto6NativeBytes);

  // A new tape is where a drive is first written: check that the drive
  // keeps records and block numbers as mixtape needs before trusting it.
  tape::first_contact_test(drive);
  drive.rewind();
  std::uint64_t label_bytes = 0;
  {
    tape::RecordWriter records(drive, static_cast<std::size_t>(config.record_size));
    format::write_archaeology(records, label_info(catalog, serial, sealing),
                              archaeology_extras(options));
    records.close();
    label_bytes = records.bytes_written();
  }
  catalog::TapeRow tape;
  tape.serial = serial;
  tape.capacity = capacity;
  tape.record_size = config.record_size;
  tape.encrypted = sealing.mode != Sealing::Mode::kNone;
  tape.state = catalog::TapeState::kLabelled;
  tape.append_file = 1;
  tape.append_block = drive.tell();
  tape.bytes_used = label_bytes;
  tape.labelled_at_ns = now_ns();
  TrailingIndex trailing(catalog, tape, tape.append_file, format::CatalogCopy::kTapes, sealing,
                         temp_directory());
  auto transaction = catalog.transaction();
  tape.id = catalog.add_tape(tape);
  trailing.write(drive);
  transaction.commit();
  return *catalog.tape(tape.id);
}

}  // namespace mixtape::backup
