#include "engine/backup/tape_file.h"

#include <filesystem>

namespace mixtape::backup {
namespace {

format::IndexHeader index_header(catalog::Writer& catalog, const catalog::TapeRow& tape,
                                 format::IndexKind kind, std::int64_t index_file,
                                 const Sealing& sealing) {
  format::IndexHeader header;
  header.kind = kind;
  header.serial = tape.serial;
  header.record_size = tape.record_size;
  header.generation = index_generation(index_file);
  header.index_file = static_cast<std::uint64_t>(index_file);
  if (kind == format::IndexKind::kArchive) header.archive_file = header.index_file + 1;
  header.catalog_id = catalog.catalog_id();
  header.created = format::format_utc(now_ns() / 1000000000);
  header.encrypted = sealing.mode != Sealing::Mode::kNone;
  return header;
}

// A new index file (a copy of `seed`, if given). A scratch file until it is
// on tape: fsyncs (a dozen per index with a rollback journal) would only
// stall the drive.
sqlite::Database& open_index(std::optional<format::IndexWriter>& writer, const std::string& path,
                             const format::IndexHeader& header, const std::string& seed = "") {
  writer.emplace(path, header, seed);
  writer->database().exec("PRAGMA synchronous = OFF");
  return writer->database();
}

// A full copy of the catalog in a new index at `path`: the last full copy
// this catalog put on tape brought up to date (a file copy and what changed
// since) where there is one, else one INSERT ... SELECT per table, about a
// second per million files. Returns what the index holds.
catalog::CopyMark start_full_copy(catalog::Writer& catalog,
                                  std::optional<format::IndexWriter>& writer,
                                  const std::string& path, const format::IndexHeader& header) {
  if (std::optional<catalog::LastTapeCopy> last = catalog.last_tape_copy()) {
    try {
      return catalog.refresh_copy(open_index(writer, path, header, last->path), last->holds);
    } catch (const Error&) {
      // Unusable (damaged, or another layout): the copy is made anew.
      writer.reset();
      std::error_code ignored;
      for (const char* suffix : {"", "-journal"}) std::filesystem::remove(path + suffix, ignored);
    }
  }
  return catalog.copy_into(open_index(writer, path, header));
}

}  // namespace

Sealing sealing_for(catalog::Writer& catalog, const WriterKeys& keys) {
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

std::uint64_t index_generation(std::int64_t index_file) {
  return static_cast<std::uint64_t>((index_file + 1) / 2);
}

ArchiveIndex build_archive_index(catalog::Writer& catalog, const ArchiveIndexPlace& place,
                                 const std::vector<format::IndexedMember>& members,
                                 format::ArchiveRecord record, const Sealing& sealing,
                                 std::uint64_t age_header_length, const std::string& temp_dir) {
  const catalog::TapeRow& tape = *place.tape;
  format::IndexHeader header =
      index_header(catalog, tape, format::IndexKind::kArchive, place.index_file, sealing);
  if (place.base) {
    header.catalog = format::CatalogCopy::kChanges;
    header.catalog_base = static_cast<std::uint64_t>(place.base->index_file);
  }
  ArchiveIndex index;
  index.file = std::make_unique<ScratchFile>(temp_dir, "index-" + tape.serial);
  index.mark.index_file = place.index_file;
  std::optional<format::IndexWriter> writer;
  if (place.base) {
    index.mark.holds =
        catalog.copy_into(open_index(writer, index.file->path(), header), place.base->holds);
  } else {
    index.mark.holds = start_full_copy(catalog, writer, index.file->path(), header);
  }
  for (const auto& member : members) writer->add_member(member);
  writer->set_archive(record);
  index.first_block = writer->finish_at(place.index_block, sealing, age_header_length);
  return index;
}

TrailingIndex::TrailingIndex(catalog::Writer& catalog, const catalog::TapeRow& tape,
                             std::int64_t index_file, format::CatalogCopy scope,
                             const Sealing& sealing, const std::string& temp_dir)
    : catalog_(catalog),
      sealing_(sealing),
      record_size_(static_cast<std::size_t>(tape.record_size)),
      full_(scope == format::CatalogCopy::kFull),
      file_(temp_dir, "trailing-" + tape.serial) {
  format::IndexHeader header =
      index_header(catalog, tape, format::IndexKind::kTrailing, index_file, sealing);
  header.catalog = scope;
  if (full_) {
    mark_ = start_full_copy(catalog, writer_, file_.path(), header);
    return;
  }
  mark_ = catalog.copy_into(open_index(writer_, file_.path(), header),
                            catalog::CopyMark::nothing_new());
}

format::WrittenIndex TrailingIndex::write(tape::Drive& drive) {
  const catalog::CopyMark holds = catalog_.add_changes_into(writer_->database(), mark_);
  writer_->finish();
  writer_.reset();  // closed: the file is complete and moves on
  format::WrittenIndex written =
      format::write_index_to_tape(drive, record_size_, sealing_, file_.path());
  if (full_) catalog_.keep_tape_copy(file_.path(), holds);
  return written;
}

}  // namespace mixtape::backup
