// ForeignReader: members of tapes mixtape did not write, read through
// libarchive (engine/foreign) from the recall's TapeCursor.
#include <algorithm>

#include "engine/foreign/foreign.h"
#include "engine/restore/internal.h"

namespace mixtape::restore::detail {
namespace {

std::string where_foreign(const catalog::LocatedCopy& copy, std::optional<std::uint64_t> block) {
  std::string text = "tape " + copy.tape.serial + ", file " +
                     std::to_string(copy.archive.archive_file + 1) + " (" +
                     copy.archive.foreign_format + ")";
  if (block) text += ", block " + std::to_string(*block);
  return text;
}

std::uint64_t record_size_of(const catalog::LocatedCopy& copy) {
  return copy.archive.record_size ? copy.archive.record_size : copy.tape.record_size;
}

// Members are found by arithmetic only in an uncompressed tar whose
// records all have one size.
bool random_access(const catalog::ArchiveRow& archive) {
  return archive.foreign_format == "tar";
}

}  // namespace

struct ForeignReader::Stream {
  Stream(TapeCursor& cursor, std::uint64_t limit) : window(cursor, limit) {}
  catalog::Id tape_id = 0;
  std::int64_t archive_file = 0;
  std::uint64_t start = 0;
  std::uint64_t last_header = 0;  // of the member read last
  bool any = false;               // a member was read
  LimitedSource window;
  std::unique_ptr<foreign::TarStream> tar;  // after window: destroyed first
};

ForeignReader::ForeignReader(TapeCursor& cursor, const RecallOptions& options)
    : cursor_(cursor),
      forward_limit_(
          options.forward_read_limit.value_or(cursor.drive().timing().read_forward_break_even())) {}

ForeignReader::~ForeignReader() = default;

void ForeignReader::reset() {
  stream_.reset();
}

void ForeignReader::open(const catalog::LocatedCopy& copy, std::uint64_t start) {
  stream_.reset();
  const catalog::ArchiveRow& a = copy.archive;
  cursor_.seek(a.first_block, record_size_of(copy), start);
  // A plain tar's offsets are the tape file's; a compressed one is read
  // to the end of the tape file.
  const std::uint64_t limit = a.cipher_bytes - std::min(a.cipher_bytes, start);
  stream_ = std::make_unique<Stream>(cursor_, limit);
  stream_->tape_id = copy.tape.id;
  stream_->archive_file = a.archive_file;
  stream_->start = start;
  stream_->tar =
      std::make_unique<foreign::TarStream>(stream_->window, where_foreign(copy, {}), start);
}

void ForeignReader::read(const catalog::LocatedCopy& copy, const catalog::VersionRow& version,
                         RecallSink& sink, const std::function<void(std::uint64_t)>& on_bytes) {
  std::optional<std::uint64_t> block;
  if (random_access(copy.archive))
    block = copy.archive.first_block + copy.copy.header_offset / record_size_of(copy);
  try {
    if (copy.archive.foreign_format == "raw") {
      read_raw(copy, version, sink, on_bytes);
    } else {
      read_member(copy, version, sink, on_bytes);
    }
  } catch (const SinkFailure&) {
    throw;
  } catch (const MemberError& e) {
    stream_.reset();
    throw MemberError(e.kind(), std::string(e.what()) + " (" + where_foreign(copy, block) + ")");
  } catch (const tape::TapeError& e) {
    stream_.reset();
    if (e.block()) block = e.block();
    throw MemberError(e.kind() == tape::TapeErrorKind::kEndOfData ? MemberError::Kind::kMissing
                                                                  : MemberError::Kind::kUnreadable,
                      std::string(e.what()) + " (" + where_foreign(copy, block) + ")");
  } catch (const std::exception& e) {
    stream_.reset();
    throw MemberError(MemberError::Kind::kUnreadable,
                      std::string(e.what()) + " (" + where_foreign(copy, block) + ")");
  }
}

void ForeignReader::copy_checked(const std::function<std::size_t(MutableByteSpan)>& read,
                                 const catalog::VersionRow& version, RecallSink& sink,
                                 const std::function<void(std::uint64_t)>& on_bytes,
                                 const ShortRead& short_read) {
  if (buffer_.size() != (1 << 20)) buffer_.resize(1 << 20);
  crypto::Blake2b256 hasher;
  std::uint64_t left = version.size;
  while (left > 0) {
    const std::size_t want =
        static_cast<std::size_t>(std::min<std::uint64_t>(left, buffer_.size()));
    const std::size_t n = read(MutableByteSpan(buffer_.data(), want));
    if (n == 0) throw MemberError(short_read.kind, short_read.what);
    ByteSpan data(buffer_.data(), n);
    hasher.update(data);
    try {
      sink.write(data);
    } catch (...) {
      throw SinkFailure(std::current_exception());
    }
    left -= n;
    if (on_bytes) on_bytes(n);
  }
  if (const catalog::Hash digest = hasher.finish(); digest != version.hash)
    throw MemberError(MemberError::Kind::kMismatch, hash_mismatch(version.hash, digest));
}

void ForeignReader::read_raw(const catalog::LocatedCopy& copy, const catalog::VersionRow& version,
                             RecallSink& sink, const std::function<void(std::uint64_t)>& on_bytes) {
  stream_.reset();
  cursor_.seek(copy.archive.first_block, record_size_of(copy), 0);
  try {
    sink.begin(version);
  } catch (...) {
    throw SinkFailure(std::current_exception());
  }
  LimitedSource source(cursor_, version.size);
  copy_checked([&](MutableByteSpan room) { return source.read(room); }, version, sink, on_bytes,
               {MemberError::Kind::kMissing, "the tape file ends early"});
}

void ForeignReader::read_member(const catalog::LocatedCopy& copy,
                                const catalog::VersionRow& version, RecallSink& sink,
                                const std::function<void(std::uint64_t)>& on_bytes) {
  const std::uint64_t target = copy.copy.header_offset;
  const bool same = stream_ && stream_->tape_id == copy.tape.id &&
                    stream_->archive_file == copy.archive.archive_file &&
                    (!stream_->any || stream_->last_header < target) && stream_->start <= target;
  const bool random = random_access(copy.archive);
  // Going on with the open stream costs reading what lies between; a
  // random-access tar far ahead is reached by the cursor instead (which
  // locates when that is cheaper).
  const bool near =
      same && (!random ||
               target - (stream_->any ? stream_->last_header : stream_->start) <= forward_limit_);
  if (!near) open(copy, random ? target : 0);
  std::optional<foreign::Member> member;
  for (;;) {
    member = stream_->tar->next();
    if (!member) throw MemberError(MemberError::Kind::kMismatch, "the archive ends before it");
    stream_->any = true;
    stream_->last_header = member->header_offset;
    if (member->header_offset == target) break;
    if (member->header_offset > target)
      throw MemberError(MemberError::Kind::kMismatch, "no member starts at offset " +
                                                          std::to_string(target) +
                                                          ": the tape does not match its index");
  }
  if (member->kind != foreign::MemberKind::kFile || member->size < version.size) {
    throw MemberError(MemberError::Kind::kMismatch,
                      "the member at offset " + std::to_string(target) + " ('" + member->path +
                          "') is not a file of " + std::to_string(version.size) +
                          " bytes: the tape does not match its index");
  }
  try {
    sink.begin(version);
  } catch (...) {
    throw SinkFailure(std::current_exception());
  }
  copy_checked([&](MutableByteSpan room) { return stream_->tar->read(room); }, version, sink,
               on_bytes, {MemberError::Kind::kUnreadable, "the member ends early"});
}

void check_foreign_tape(tape::Drive& drive, const std::string& serial,
                        const std::string& foreign_id) {
  std::string found;
  try {
    found = foreign::fingerprint(drive);
  } catch (const Error& e) {
    throw RestoreError("tape " + serial + " in " + drive.name() + ": " + e.what());
  }
  if (found != foreign_id) {
    throw RestoreError("the tape in " + drive.name() + " is not tape " + serial +
                       " (its first records differ from the ones indexed)");
  }
}

}  // namespace mixtape::restore::detail
