// Private to engine/backup: the tape files the writer makes besides the
// archives' own bytes: indexes (the format module's IndexWriter filled with
// the catalog's copy) and labels, and choosing the serial of a new tape.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/backup/backup.h"
#include "engine/catalog/catalog.h"
#include "engine/format/format.h"
#include "engine/tape/tape.h"

namespace mixtape::backup {

using format::Sealing;

// The catalog's encryption settings; a passphrase catalog needs keys.passphrase.
Sealing sealing_for(catalog::Writer& catalog, const WriterKeys& keys);

// Generation of the index at tape file `index_file` (1, 3, 5, ...): its
// ordinal among the indexes along the tape, counting from 1.
std::uint64_t index_generation(std::int64_t index_file);

// The index of one archive, in a scratch file, before the archive is
// written: its members, its archive row (the first block settled for an
// index at index_block) and the catalog: what changed since `base` (the
// tape's previous archive index), or all of it when there is none.
struct ArchiveIndex {
  std::unique_ptr<ScratchFile> file;
  std::uint64_t first_block = 0;
  catalog::IndexMark mark;  // what it holds: the next index's base, once it is on tape
};
struct ArchiveIndexPlace {
  const catalog::TapeRow* tape = nullptr;
  std::int64_t index_file = 0;
  std::uint64_t index_block = 0;
  std::optional<catalog::IndexMark> base;
};
ArchiveIndex build_archive_index(catalog::Writer& catalog, const ArchiveIndexPlace& place,
                                 const std::vector<format::IndexedMember>& members,
                                 format::ArchiveRecord record, const Sealing& sealing,
                                 std::uint64_t age_header_length, const std::string& temp_dir);

// A tape's trailing index (docs/FORMAT.md section 2), made in two steps
// around the transaction that commits a session: the committed catalog is
// copied when this is made (the last full copy on tape brought up to date,
// or one INSERT ... SELECT per table; no transaction may be open on
// `catalog`), and write(), inside that transaction, adds what
// the transaction changed and puts the index on tape; the transaction
// commits only once the tape holds it.
class TrailingIndex {
 public:
  // scope: kFull, or kTapes for the first trailing index of a new tape
  // (there is no file of the catalog on it to describe yet).
  TrailingIndex(catalog::Writer& catalog, const catalog::TapeRow& tape, std::int64_t index_file,
                format::CatalogCopy scope, const Sealing& sealing, const std::string& temp_dir);
  // A full index, once on tape, becomes the catalog's last copy (in the
  // caller's transaction): the next one starts from it.
  format::WrittenIndex write(tape::Drive& drive);

 private:
  catalog::Writer& catalog_;
  const Sealing& sealing_;
  std::size_t record_size_;
  bool full_;
  ScratchFile file_;
  std::optional<format::IndexWriter> writer_;
  catalog::CopyMark mark_;
};

// Bytes of tape file 0 as label_tape() writes it (the program and its
// source are in it, so this is megabytes: planning counts it exactly).
std::uint64_t file0_size(catalog::Writer& catalog, const LabelOptions& options,
                         const Sealing& sealing);

// A serial for a new tape: the first <prefix><5 digits> that the catalog does
// not know and that is either not in the library or there but reusable (blank,
// or labelled for this catalog by a run that was killed before registering
// it, and holding no archive). Never touches a tape of another catalog.
// Tapes it must look into are loaded into drive `drive`.
std::string new_tape_serial(catalog::Writer& catalog, tape::Library& library,
                            const std::string& prefix, Progress& progress, std::size_t drive = 0);

}  // namespace mixtape::backup
