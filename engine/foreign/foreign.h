// engine/foreign: tapes mixtape never wrote. One or several tar archives
// separated by filemarks (what `tar -cf /dev/nst0` leaves), of any record
// size, in any tar dialect libarchive reads (ustar, pax, GNU with long
// names, sparse files and multi-volume parts, old v7), compressed or not
// (gzip, bzip2, xz, zstd, compress, lzip); a tape file that is no tar is
// one plain file.
//
// Design
//
// * Reading tar is libarchive's job (TarStream): every dialect, every
//   compression, hostile input handled by code that exists for it. What
//   mixtape adds is where each member lies: its header's offset in the
//   (uncompressed) tar stream, from archive_read_header_position().
//
// * A foreign tape becomes a catalog (docs/CATALOG.md) in one sequential
//   pass (index_tape): tape file N (0-based) is the directory /fileN+1 (the
//   Nth file on the tape: `mt fsf N` reaches it), or the plain file
//   /fileN+1.bin when it is no tar. Every member is hashed (BLAKE2b-256) on
//   the way, so the catalog's rule holds: every byte recalled is checked.
//   Each tape file is an archive row with a foreign_format; each member a
//   version with a copy at its header offset. So the mount, ls, restore and
//   verify reuse the catalog, the recall queue and the stage cache as they
//   are; only reading a member differs (engine/restore reads foreign
//   archives through TarStream).
//
// * Finding a member: an uncompressed tar whose records all have one size R
//   ("tar") is random access: block = first block + offset / R, the bytes
//   from offset % R on. Compressed tars and tars whose records vary
//   ("tar.gz", ..., "tar-stream") are read from their start; the reader
//   keeps its stream open, so members read in tape order cost one pass.
//
// * A foreign tape has no label, so it is known by its fingerprint: the
//   BLAKE2b-256 of its first records. The index of a found tape is kept in
//   the mount's cache folder as foreign-<fingerprint>.db, never beside the
//   image (which may be read-only): later mounts read no tape to show it.
//   In one drive such a tape answers to the serial tar-<first 12 hex digits
//   of the fingerprint>; in a library, to its name there.
//
// * `mixtape import` copies a tape's index into the catalog under
//   /imported/<serial>/ (import_into), as a read-only tape (state full,
//   never written): its files are found, listed, mounted, restored and
//   verified beside the backups.
//
// * Hostile tapes: names are normalised into catalog paths (leading '/' and
//   './' dropped, '.' components dropped); a member whose name climbs out
//   ('..') or is empty is left out with a warning; a tar that turns out
//   damaged keeps the members before the damage and the pass goes on with
//   the next tape file. Nothing is ever written outside a destination:
//   restore's Destination checks every path again.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/catalog/catalog.h"
#include "engine/common/common.h"
#include "engine/tape/tape.h"

struct archive;

namespace mixtape::foreign {

class ForeignError : public Error {
 public:
  using Error::Error;
};

// ------------------------------------------------------------ TarStream

enum class MemberKind { kFile, kDirectory, kSymlink, kHardlink, kOther };

struct Member {
  std::string path;  // as the archive names it (not normalised)
  MemberKind kind = MemberKind::kFile;
  std::uint64_t size = 0;  // bytes of data (a sparse file: with its holes)
  std::uint32_t mode = 0;  // permission bits (07777)
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::string uname;
  std::string gname;
  std::int64_t mtime_ns = 0;
  std::string link;                   // a symlink's target, a hard link's member
  std::uint64_t header_offset = 0;    // of its first header in the tar stream
  std::uint64_t data_offset = 0;      // of its data in the tar stream
  bool sparse = false;                // a GNU or pax sparse file
  std::optional<std::uint64_t> part;  // a GNU multi-volume part: where in the
                                      // whole file this part begins
};

// A tar stream read with libarchive from a ByteSource, member by member.
// `start_offset` is the stream offset of the source's first byte (a reader
// that starts at a member's header). Errors are ForeignError naming `name`.
class TarStream {
 public:
  TarStream(ByteSource& source, std::string name, std::uint64_t start_offset = 0);
  ~TarStream();
  TarStream(const TarStream&) = delete;
  TarStream& operator=(const TarStream&) = delete;

  // The next member (the current one's unread data is skipped); nullopt at
  // the end of the archive.
  std::optional<Member> next();
  // The current member's data; 0 at its end. A sparse file's holes read as
  // zeros.
  std::size_t read(MutableByteSpan out);
  // "tar", "tar.gz", ... (foreign_format without the record question).
  std::string format() const;
  // libarchive's names, for messages: "GNU tar format", "gzip".
  std::string dialect() const;

 private:
  struct Source;
  [[noreturn]] void fail(const std::string& what) const;
  std::optional<std::uint64_t> gnu_part(std::uint64_t data_offset) const;

  std::unique_ptr<Source> source_;
  std::string name_;
  std::uint64_t start_offset_;
  ::archive* archive_ = nullptr;
  bool at_end_ = false;
  // The current member's data, block by block (archive_read_data_block:
  // the bytes of a block that precede a damaged one are still returned).
  const void* block_ = nullptr;
  std::size_t block_size_ = 0;
  std::uint64_t block_offset_ = 0;  // of block_ in the member
  std::uint64_t position_ = 0;      // of the next byte read() returns
  std::uint64_t size_ = 0;          // of the member
  bool data_end_ = false;
};

// What the first bytes of a tape file are: "tar", "tar.gz", ..., or "" when
// libarchive sees no tar there (tape info).
std::string describe(ByteSpan first_bytes);

// ------------------------------------------------------------ found tapes

// The fingerprint of the tape in `drive`: BLAKE2b-256 (hex) of its first
// records (up to 1 MiB, filemarks counted). Rewinds first and after.
// ForeignError for a blank tape.
std::string fingerprint(tape::Drive& drive);
// "tar-" and the first 12 hex digits: the serial of a foreign tape in a
// single drive.
std::string serial_for(const std::string& fingerprint);

enum class TapeKind { kBlank, kMixtape, kForeign };
// Whether the tape in `drive` is blank, a mixtape tape (file 0 starts with
// a mixtape label) or another. Leaves the drive rewound.
TapeKind identify(tape::Drive& drive);

// For libraries (tape::SerialReader): a mixtape tape's label serial, a
// foreign tape's serial_for(fingerprint), nullopt for a blank tape.
tape::SerialReader serial_reader();

// ------------------------------------------------------------ the index

struct IndexOptions {
  std::string serial;  // default: serial_for(fingerprint)
  Progress* progress = nullptr;
};

struct IndexReport {
  std::string serial;
  std::string fingerprint;
  std::uint64_t tape_files = 0;
  std::uint64_t tars = 0;             // tape files read as tar
  std::uint64_t members = 0;          // files, links and directories indexed
  std::uint64_t bytes = 0;            // bytes read from tape
  std::vector<std::string> warnings;  // members left out, damage, parts
};

// One sequential pass over the tape in `drive` (rewound first), into a new,
// empty catalog: every tape file, every member, hashed. The catalog gets
// one tape (the foreign tape, state full) and one scan run.
IndexReport index_tape(catalog::Catalog& catalog, tape::Drive& drive,
                       const IndexOptions& options = {});

struct FoundForeignTape {
  std::string catalog_path;  // cache_dir/foreign-<fingerprint>.db
  std::string serial;
  bool indexed_now = false;  // false: the index was there already
  IndexReport report;        // when indexed now
};

// The index of the foreign tape in `drive`, from cache_dir when it is there
// (nothing but the fingerprint is read), else made by index_tape and kept
// there (built aside, renamed into place).
FoundForeignTape catalog_for_foreign_tape(tape::Drive& drive, const std::string& cache_dir,
                                          const IndexOptions& options = {});

// ------------------------------------------------------------ import

struct ImportReport {
  std::string serial;
  std::string prefix;    // where its files are in the catalog
  bool already = false;  // the tape was imported before: nothing changed
  std::uint64_t files = 0;
  std::uint64_t directories = 0;
  std::uint64_t bytes = 0;
};

// Copies the foreign tape indexed in `index_path` into `catalog` under
// /imported/<serial>/ as a read-only tape: its tape row, archives, files,
// versions and copies, with the copy goal of the prefix set to 1 (nothing
// else can copy them). A tape imported before (same fingerprint) changes
// nothing; a serial the catalog has for another tape is refused.
ImportReport import_into(catalog::Catalog& catalog, const std::string& index_path,
                         const std::string& serial = {});

// The catalog directory a foreign tape's files are imported under.
std::string import_prefix(const std::string& serial);

}  // namespace mixtape::foreign
