// engine/format: the on-tape format, version 2 (and reading version 1).
// docs/FORMAT.md is the normative description; every constant below points
// to a section of it.
//
// A tape is: file 0, a plain "archaeology" tar (label + recovery texts);
// then pairs (index, archive), each optionally age-encrypted; then a trailing
// index. This module produces and checks the plaintext of those files:
//
//   PaxWriter    writes an archive tar to a ByteSink. Encryption is composed
//                by the caller (PaxWriter -> age encryptor -> records ->
//                drive), so nothing here depends on age. The headers are
//                written by hand because libarchive cannot emit arbitrary pax
//                keywords and every member needs MIXTAPE.blake2b256.
//   PaxLayout    predicts PaxWriter's offsets without writing: the index
//                precedes its archive on tape, so it is built first.
//   TarReader    a strict, bounded reader for tars that come from tape and
//                may be hostile; safe_relative_path() vets member names.
//   IndexWriter  the index SQLite file; the catalog module fills its
//                catalog_* tables;
//   IndexReader  opens one from tape as untrusted and validates every value;
//   write_index_to_tape / read_index_from_tape  seal an index file into a
//                tape file (age unless the tape is plain) and back: the one
//                owner of the index file from schema to tape.
//   locate()     maps a plaintext offset in an archive to a tape block and
//                age chunk, so a restore is one locate and a short read.
//   write_archaeology / read_label: tape file 0.
//
// Every error is a FormatError whose message names the archive or index,
// the member and the byte offset.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/common/common.h"
#include "engine/crypto/crypto.h"
#include "engine/sqlite/sqlite.h"
#include "engine/tape/tape.h"

namespace mixtape::format {

class FormatError : public Error {
 public:
  using Error::Error;
};

// File 0 of a tape is not a mixtape label (blank, foreign or damaged tape);
// callers identifying tapes tell this apart from I/O errors.
class NotMixtapeTape : public FormatError {
 public:
  using FormatError::FormatError;
};

// ------------------------------------------------------------ constants
// docs/FORMAT.md "Tape files", "Archives", "Finding bytes on tape".

// What this version writes, and the oldest it reads.
inline constexpr int kFormatVersion = 2;
inline constexpr int kOldestFormatVersion = 1;
inline constexpr std::uint64_t kDefaultRecordSize = 512 * 1024;
// Records are multiples of the tar block, at most what `dd bs=16M` reads.
inline constexpr std::uint64_t kMaxRecordSize = 16 * 1024 * 1024;
inline constexpr std::uint64_t kTarBlockSize = 512;
// Two zero blocks end every tar.
inline constexpr std::uint64_t kTarEndOfArchiveSize = 2 * kTarBlockSize;
// age v1 STREAM: 64 KiB plaintext chunks, each followed by a Poly1305 tag,
// after a 16-byte payload nonce that follows the header.
inline constexpr std::uint64_t kAgeChunkSize = 65536;
inline constexpr std::uint64_t kAgeChunkOverhead = 16;
inline constexpr std::uint64_t kAgeEncryptedChunkSize = kAgeChunkSize + kAgeChunkOverhead;
inline constexpr std::uint64_t kAgePayloadNonceSize = 16;
// The pax keyword carrying each regular file's BLAKE2b-256 (lower-case hex):
// a user xattr, which GNU tar and bsdtar pass over silently and restore with
// `tar --xattrs -x`. Format 1 used kHashKeywordV1, which readers still take.
inline constexpr std::string_view kHashKeyword = "SCHILY.xattr.user.mixtape.blake2b256";
inline constexpr std::string_view kHashKeywordV1 = "MIXTAPE.blake2b256";
inline constexpr std::string_view kHashName = "blake2b-256";
// First member of file 0.
inline constexpr std::string_view kLabelMemberName = "MIXTAPE";
// PRAGMA application_id of index files: "MIXT".
inline constexpr std::int32_t kIndexApplicationId = 0x4d495854;

// ------------------------------------------------------------ block mapping

// Where an archive sits on tape; all of it is recorded in its index.
struct ArchiveGeometry {
  std::uint64_t first_block = 0;                   // B0: logical block of its first record
  std::uint64_t record_size = kDefaultRecordSize;  // R
  bool encrypted = true;                           // false on plain tapes
  std::uint64_t age_header_length = 0;             // H: bytes up to and including the MAC line
};

// How to reach plaintext byte o of an archive: locate to `block`, read, skip
// `offset_in_block` bytes of the record; the bytes there start age chunk
// `chunk` (decrypt it with STREAM counter `chunk`), of whose plaintext skip
// `offset_in_chunk` bytes. Plain archives have no chunks: chunk and
// offset_in_chunk are 0 and the byte at offset_in_block is byte o itself.
struct TapePosition {
  std::uint64_t block = 0;
  std::uint64_t offset_in_block = 0;
  std::uint64_t chunk = 0;
  std::uint64_t offset_in_chunk = 0;
  std::uint64_t stored_offset = 0;  // c: byte offset within the tape file
  bool operator==(const TapePosition&) const = default;
};

// c = H + 16 + (o / 65536) * 65552 (plain: c = o); block = B0 + c / R.
TapePosition locate(const ArchiveGeometry& geometry, std::uint64_t plaintext_offset);

// Size of an age file with a header of header_length bytes and this much
// plaintext: header, nonce, full chunks, and a last chunk (empty only when
// the whole plaintext is empty).
std::uint64_t age_encrypted_size(std::uint64_t header_length, std::uint64_t plaintext_size);

// Number of records a tape file of this many bytes occupies.
std::uint64_t record_count(std::uint64_t file_size, std::uint64_t record_size);

// ------------------------------------------------------------ tar members

enum class MemberType {
  kFile,
  kDirectory,
  kSymlink,
  kHardlink,  // read only (tars made by other programs)
  kOther,     // read only: devices, fifos, unknown types
};

// "file", "directory", "symlink", "hardlink", "other": the index's `type`.
std::string_view member_type_name(MemberType type);

struct MemberInfo {
  // Member name: a normalised relative path (see safe_relative_path), the
  // source path without its leading '/'. Bytes, not necessarily UTF-8.
  std::string path;
  MemberType type = MemberType::kFile;
  std::uint64_t size = 0;     // regular files only
  std::uint32_t mode = 0644;  // permission bits, 07777
  std::uint64_t uid = 0;
  std::uint64_t gid = 0;
  std::string uname;
  std::string gname;
  std::int64_t mtime_ns = 0;  // nanoseconds since the epoch, may be negative
  std::string linkpath;       // symlink (or hardlink) target
  std::string blake2b256;     // lower-case hex; required for regular files
  bool operator==(const MemberInfo&) const = default;
};

// Byte offsets in the plaintext tar: header_offset is the member's first
// header block (its pax extended header), data_offset its first data byte.
struct MemberOffsets {
  std::uint64_t header_offset = 0;
  std::uint64_t data_offset = 0;
  bool operator==(const MemberOffsets&) const = default;
};

// Bytes of headers PaxWriter writes before this member's data (a multiple of
// 512). Throws FormatError for members it would refuse.
std::uint64_t pax_header_size(const MemberInfo& info);

// Predicts PaxWriter's offsets and total size without writing anything, so
// an index can be built before its archive is written.
class PaxLayout {
 public:
  MemberOffsets add(const MemberInfo& info);
  // Bytes written so far (as PaxWriter::position()).
  std::uint64_t position() const { return position_; }
  // Size of the finished archive, end-of-archive blocks included.
  std::uint64_t finished_size() const { return position_ + kTarEndOfArchiveSize; }

 private:
  std::uint64_t position_ = 0;
};

// Writes a POSIX pax tar to a sink. Members: begin_file, write_data (exactly
// info.size bytes in total), end_file; or add_symlink / add_directory. Data
// is passed straight through to the sink; only headers and padding are made
// here. Any misuse or sink failure leaves the writer failed: every further
// call throws, since the stream behind it is no longer a valid tar.
class PaxWriter {
 public:
  explicit PaxWriter(ByteSink& out) : out_(out) {}
  PaxWriter(const PaxWriter&) = delete;
  PaxWriter& operator=(const PaxWriter&) = delete;

  MemberOffsets begin_file(const MemberInfo& info);
  void write_data(ByteSpan data);
  // For a caller that wrote `bytes` of the open member's data to the sink
  // itself (AgeEncryptor::buffer(), without write_data's pass through):
  // counted and checked as write_data() would. Call it before the bytes
  // reach the sink, so that too many are refused before they are written.
  void data_written_directly(std::size_t bytes);
  void end_file();
  MemberOffsets add_symlink(const MemberInfo& info);
  MemberOffsets add_directory(const MemberInfo& info);
  // Writes the end-of-archive blocks; does not close the sink.
  void finish();

  // Bytes written to the sink so far.
  std::uint64_t position() const { return position_; }

 private:
  enum class State { kBetween, kInFile, kFinished, kFailed };
  MemberOffsets add_header_only(const MemberInfo& info, MemberType expected);
  void write_headers(const MemberInfo& info);
  void emit(ByteSpan bytes);
  void require(State state, const char* operation);

  ByteSink& out_;
  State state_ = State::kBetween;
  std::uint64_t position_ = 0;
  std::uint64_t remaining_ = 0;  // data bytes still due for the current file
  std::uint64_t file_size_ = 0;
  std::string current_;  // current member, for errors
};

// A member as read back: metadata, where it is, and the raw type flag.
struct TarMember {
  MemberInfo info;  // path normalised by safe_relative_path()
  MemberOffsets offsets;
  char typeflag = '0';
};

// Reads a pax/ustar/GNU tar from a stream, strictly and within fixed bounds:
// header checksums, numeric fields and pax record syntax are verified,
// extended headers over 1 MiB are refused, and no size is trusted (data
// that runs out is a "truncated" error, never a large allocation).
class TarReader {
 public:
  // `name` names the archive in errors; offsets count from start_offset
  // (where `source` begins within the archive).
  TarReader(ByteSource& source, std::string name, std::uint64_t start_offset = 0);
  TarReader(const TarReader&) = delete;
  TarReader& operator=(const TarReader&) = delete;

  // The next member, skipping any unread data of the previous one; nullopt
  // at the end-of-archive marker. Member names are normalised with
  // safe_relative_path(). A member that is refused (hostile name, malformed
  // hash or owner...) throws a FormatError ending in "member skipped": only
  // it is lost, and next() continues with the following one. Any other
  // error is damage to the tar structure and ends the reading.
  std::optional<TarMember> next();
  // Reads the current member's data; 0 once all of it has been read.
  std::size_t read_data(MutableByteSpan out);
  void skip_data();
  std::uint64_t data_remaining() const { return remaining_; }
  // Offset of the next byte to be read from the archive.
  std::uint64_t position() const { return position_; }

 private:
  using Block = std::array<std::uint8_t, kTarBlockSize>;
  // The next entry; a directory naming the archive root has an empty path.
  std::optional<TarMember> read_member();
  // One header block; false when the source ends exactly before it.
  bool read_block(Block& block);
  // The data of an extended header ('x', 'g', 'L', 'K'), bounded in size.
  std::string read_extended(std::uint64_t size, std::uint64_t header_offset);
  void skip_bytes(std::uint64_t count);
  [[noreturn]] void fail(std::uint64_t offset, const std::string& message) const;

  ByteSource& source_;
  std::string name_;
  std::uint64_t position_;
  std::uint64_t remaining_ = 0;                              // unread data of the current member
  std::uint64_t padding_ = 0;                                // and the padding after it
  std::string current_;                                      // the current member, for errors
  std::vector<std::pair<std::string, std::string>> global_;  // pax 'g' records
  bool ended_ = false;
};

// Parses the member whose first header block is at header_offset (as
// recorded in an index), so a restore can seek straight to it. Its data is
// then at offsets.data_offset, info.size bytes.
TarMember read_member_at(RandomAccessSource& archive, std::uint64_t header_offset,
                         std::string_view archive_name);

// The member name as a relative path that cannot leave the directory it is
// extracted into: "." and empty components and a trailing '/' are dropped;
// nullopt for an empty result, absolute names, ".." components and NUL.
std::optional<std::string> safe_relative_path(std::string_view member_name);

// How tape files are sealed: the catalog's encryption settings.
struct Sealing {
  enum class Mode { kNone, kRecipients, kPassphrase };
  Mode mode = Mode::kRecipients;
  std::vector<crypto::X25519Recipient> recipients;
  std::optional<crypto::Passphrase> passphrase;

  // An age encryptor writing to `out`; null for plain tapes.
  std::unique_ptr<crypto::AgeEncryptor> encryptor(
      ByteSink& out, const crypto::AgeEncryptOptions& options = {}) const;
  // H of every age file sealed so (0 for plain tapes): it depends only on
  // the stanzas' shapes, never on the keys drawn for a file.
  std::uint64_t header_length() const;
  // Bytes on tape of a tape file holding plaintext_size bytes.
  std::uint64_t sealed_size(std::uint64_t header_length, std::uint64_t plaintext_size) const;
};

// ------------------------------------------------------------ index files
// docs/FORMAT.md "Indexes".

enum class IndexKind {
  kArchive,   // describes the archive that follows it
  kTrailing,  // last file on the tape: catalog copy only, no archive
};

// What the catalog_* tables of an index hold (format key `catalog`).
enum class CatalogCopy {
  kFull,     // the whole catalog (every format-1 index)
  kChanges,  // the rows changed since the index at catalog_base, the small tables whole
  kTapes,    // the small tables only: settings, runs, tapes, goals (a new tape's first
             // trailing index, which describes no file yet)
};

// The `format` table.
struct IndexHeader {
  int version = kFormatVersion;  // as read; writers write kFormatVersion
  IndexKind kind = IndexKind::kArchive;
  std::string serial;
  std::uint64_t record_size = kDefaultRecordSize;
  std::uint64_t generation = 0;
  std::uint64_t index_file = 0;    // tape file number of this index
  std::uint64_t archive_file = 0;  // of the archive it describes (kArchive only)
  std::string catalog_id;
  std::string created;  // RFC 3339 UTC, "2026-11-21T10:00:00Z"
  bool encrypted = true;
  CatalogCopy catalog = CatalogCopy::kFull;
  std::uint64_t catalog_base = 0;  // kChanges: tape file of the index it continues
  bool operator==(const IndexHeader&) const = default;
};

// The `archive` table's one row.
struct ArchiveRecord {
  std::uint64_t tape_file = 0;
  std::uint64_t first_block = 0;
  std::uint64_t age_header_length = 0;  // 0 on plain tapes
  std::uint64_t ciphertext_size = 0;    // bytes of the tape file
  std::uint64_t plaintext_size = 0;     // bytes of the tar
  std::uint64_t member_count = 0;
  bool operator==(const ArchiveRecord&) const = default;
};

struct IndexedMember {
  MemberInfo info;
  MemberOffsets offsets;
  bool operator==(const IndexedMember&) const = default;
};

// Creates an index file at `path` (which must not exist). Members are added
// in archive order; set_archive() once for an archive index; finish() makes
// the file compact and complete (rollback journal, no side files). The file
// is incomplete until finish() returns.
class IndexWriter {
 public:
  // With a seed (a full trailing index written earlier, e.g. the catalog's
  // last copy on tape), the file starts as a copy of it: the catalog_*
  // tables it holds are kept for the catalog module to bring up to date,
  // and its header is replaced. Only for an index holding a full copy.
  IndexWriter(std::string path, const IndexHeader& header, const std::string& seed = "");
  void add_member(const IndexedMember& member);
  void set_archive(const ArchiveRecord& archive);
  // The connection, with no transaction open, for the catalog module to copy
  // its tables in (ATTACH the catalog, CREATE TABLE catalog_x AS SELECT ...).
  sqlite::Database& database();
  void finish();
  // finish() for an archive index at `index_block`, sealed with `sealing`
  // (age headers of header_length bytes): its archive follows it on tape, so
  // the archive's first_block depends on this file's own sealed size, and
  // is settled here. Returns that first block.
  std::uint64_t finish_at(std::uint64_t index_block, const Sealing& sealing,
                          std::uint64_t header_length);

 private:
  void commit_pending();
  void check_seed(const std::string& seed);

  std::string path_;
  IndexKind kind_;
  std::uint64_t record_size_;
  sqlite::Database db_;
  std::optional<sqlite::Statement> insert_member_;
  std::optional<sqlite::Transaction> pending_;
  std::uint64_t members_ = 0;
  bool archive_set_ = false;
  bool finished_ = false;
};

// Opens an index that came from tape (read-only, defensive SQLite) and
// validates it: format version 1 or 2, no views or triggers, a consistent
// archive row; members are validated one by one as they are read.
class IndexReader {
 public:
  explicit IndexReader(std::string path);
  const IndexHeader& header() const { return header_; }
  // The archive row; nullopt for a trailing index.
  const std::optional<ArchiveRecord>& archive() const { return archive_; }
  // Geometry of the described archive (requires an archive index).
  ArchiveGeometry geometry() const;

  // Members in archive order, each validated when read.
  class Cursor {
   public:
    std::optional<IndexedMember> next();

   private:
    friend class IndexReader;
    Cursor(const IndexReader& reader, sqlite::Statement statement)
        : reader_(reader), statement_(std::move(statement)) {}
    const IndexReader& reader_;
    sqlite::Statement statement_;
    std::uint64_t last_header_offset_ = 0;
    bool first_ = true;
  };
  Cursor members();
  std::optional<IndexedMember> find(std::string_view path);

  // For the catalog module (catalog_* tables); read-only.
  sqlite::Database& database() { return db_; }

 private:
  IndexedMember validated(sqlite::Statement& row) const;
  [[noreturn]] void fail(const std::string& message) const;
  void check_schema();
  void read_header();
  void read_archive();

  std::string path_;
  sqlite::Database db_;
  IndexHeader header_;
  std::optional<ArchiveRecord> archive_;
};

// Writes a whole index file as one tape file at the drive's position:
// sealed, in records of record_size, then a filemark.
struct WrittenIndex {
  std::uint64_t bytes_on_tape = 0;
  bool early_warning = false;
};
WrittenIndex write_index_to_tape(tape::Drive& drive, std::size_t record_size,
                                 const Sealing& sealing, const std::string& path);

// Reads one index tape file from `tape_file` (to its end) into a new file at
// `path` (which must not exist, made 0600), unsealing it when it is an age
// file; a plain tape's index is a SQLite file as is. Throws crypto::AgeError
// for a wrong key or damage, FormatError for a file that is neither (an
// archive is refused at its first bytes). Returns the bytes read from tape.
std::uint64_t read_index_from_tape(ByteSource& tape_file, const crypto::AgeDecryptKeys& keys,
                                   const std::string& path);

// ------------------------------------------------------------ tape file 0
// docs/FORMAT.md "File 0: the label and archaeology".

enum class Encryption { kNone, kAgeRecipients, kAgePassphrase };

// The MIXTAPE member.
struct LabelInfo {
  int format_version = kFormatVersion;
  std::string serial;
  std::uint64_t record_size = kDefaultRecordSize;
  std::string labelled;  // RFC 3339 UTC, "2026-11-21T10:00:00Z"
  Encryption encryption = Encryption::kAgeRecipients;
  std::vector<std::string> recipients;  // age1... (kAgeRecipients only)
  std::string hash = std::string(kHashName);
  std::string catalog_id;  // hex
  bool operator==(const LabelInfo&) const = default;
};

// What besides the embedded texts goes into file 0. Empty fields take the
// defaults; tests pass small files.
struct ArchaeologyExtras {
  std::string version = MIXTAPE_VERSION;
  std::string arch;                 // default: uname -m
  std::string binary_path;          // default: /proc/self/exe
  std::string source_tarball_path;  // default: the tarball embedded at build time
  // Files written as source/<name>: the sources of the libraries linked
  // into the binary (SOURCES.txt says which is which). Default: the
  // directory <binary_path>.sources, if there is one.
  std::string library_sources_dir;
};

// The MIXTAPE text. Throws FormatError for a label that would not parse back.
std::string format_label(const LabelInfo& label);
// Strict: the first line must be "mixtape tape format 1", and every field
// present, well-formed and unique; unknown "key: value" lines are ignored.
LabelInfo parse_label(std::string_view text);
// Reads only the first member of file 0. NotMixtapeTape for anything that is
// not a mixtape label; FormatError for a mixtape label this version rejects.
LabelInfo read_label(ByteSource& tape_file0);

// The label of the tape in a drive: file 0 read from the start (the drive is
// left after it). Throws like read_label.
LabelInfo read_tape_label(tape::Drive& drive);

// Reads the serial from the label (tape file 0) of the tape in a drive:
// nullopt for a blank tape (end of data confirmed at block 0);
// NotMixtapeTape for someone else's. Leaves the drive rewound. What the
// libraries use to know which tape a drive holds.
tape::SerialReader label_serial_reader();

// Writes file 0: MIXTAPE, README.txt, FORMAT.txt, specs/*.txt,
// source/mixtape-<version>.tar.gz, the library sources (source/*),
// bin/mixtape-<version>-<arch>; then the
// end-of-archive blocks. Does not close the sink.
void write_archaeology(ByteSink& out, const LabelInfo& label, const ArchaeologyExtras& extras = {});

// Seconds since the epoch as RFC 3339 UTC ("2026-11-21T10:00:00Z"), and back
// (strictly that shape).
std::string format_utc(std::int64_t unix_seconds);
std::optional<std::int64_t> parse_utc(std::string_view text);

}  // namespace mixtape::format
