// Reading members of a loaded tape: TapeCursor, ArchiveStream, MemberReader
// (engine/restore/internal.h has the overview).
#include <algorithm>
#include <cstring>

#include "engine/restore/internal.h"

namespace mixtape::restore::detail {
namespace {

constexpr std::size_t kCopyBuffer = 1 << 20;

bool is_key_error(const crypto::AgeError& e) {
  return e.kind() == crypto::AgeErrorKind::NoIdentityMatched ||
         e.kind() == crypto::AgeErrorKind::WrongPassphrase ||
         e.kind() == crypto::AgeErrorKind::WorkFactorTooHigh;
}

}  // namespace

// ------------------------------------------------------------ TapeCursor

TapeCursor::TapeCursor(tape::Drive& drive, std::optional<std::uint64_t> forward_read_limit)
    : drive_(drive),
      forward_limit_(forward_read_limit.value_or(drive.timing().read_forward_break_even())) {
  resync();
}

void TapeCursor::resync() {
  next_block_ = drive_.tell();
  buffer_block_.reset();
  have_ = pos_ = 0;
  at_end_ = at_eod_ = false;
}

bool TapeCursor::read_record() {
  const std::size_t size = record_size_ ? record_size_ : tape::kProbeReadSize;
  if (buffer_.size() != size) buffer_.resize(size);
  buffer_block_.reset();
  have_ = pos_ = 0;
  tape::ReadResult r;
  try {
    r = drive_.read_record(buffer_.span());
  } catch (const tape::TapeError&) {
    // The drive is past the bad record (Drive contract); ask where exactly.
    try {
      next_block_ = drive_.tell();
    } catch (const Error&) {
    }
    throw;
  }
  switch (r.kind) {
    case tape::ReadKind::kData:
      buffer_block_ = next_block_++;
      have_ = r.size;
      return true;
    case tape::ReadKind::kFilemark:
      ++next_block_;
      return false;
    case tape::ReadKind::kEndOfData:
      at_eod_ = true;
      return false;
  }
  return false;
}

void TapeCursor::seek(std::uint64_t first_block, std::uint64_t record_size, std::uint64_t offset) {
  if (record_size == 0 || record_size > tape::kMaxRecordSize)
    throw RestoreError("record size " + std::to_string(record_size) + " is out of range");
  record_size_ = static_cast<std::size_t>(record_size);
  const std::uint64_t block = first_block + offset / record_size;
  const std::size_t in_block = static_cast<std::size_t>(offset % record_size);
  at_end_ = at_eod_ = false;
  if (buffer_block_ == block && in_block <= have_) {
    pos_ = in_block;
    return;
  }
  const bool ahead = next_block_ <= block && block - next_block_ <= forward_limit_ / record_size;
  if (ahead) {
    // Streaming over the gap is no slower than a locate; records we only
    // pass over may even be unreadable.
    while (next_block_ < block) {
      try {
        if (!read_record() && at_eod_) {
          throw tape::TapeError(tape::TapeErrorKind::kEndOfData,
                                drive_.name() + ": the tape ends at block " +
                                    std::to_string(next_block_) + ", before block " +
                                    std::to_string(block) + " (truncated?)",
                                next_block_);
        }
      } catch (const tape::TapeError& e) {
        if (e.kind() != tape::TapeErrorKind::kMediaError) throw;
      }
    }
  } else {
    buffer_block_.reset();
    drive_.locate(block);
    next_block_ = block;
  }
  if (!read_record()) {
    throw tape::TapeError(tape::TapeErrorKind::kEndOfData,
                          drive_.name() + ": expected a data record at block " +
                              std::to_string(block) + ", found " +
                              (at_eod_ ? "the end of data (truncated tape?)" : "a filemark"),
                          block);
  }
  if (in_block > have_) {
    throw RestoreError(drive_.name() + ": record at block " + std::to_string(block) + " is " +
                       std::to_string(have_) + " bytes, shorter than expected");
  }
  pos_ = in_block;
}

std::size_t TapeCursor::read(MutableByteSpan out) {
  if (out.empty()) return 0;
  while (pos_ == have_) {
    if (at_end_) return 0;
    if (!read_record()) {
      at_end_ = true;
      return 0;
    }
  }
  std::size_t n = std::min(out.size(), have_ - pos_);
  std::memcpy(out.data(), buffer_.data() + pos_, n);
  pos_ += n;
  return n;
}

std::size_t LimitedSource::read(MutableByteSpan out) {
  if (left_ == 0 || out.empty()) return 0;
  std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(out.size(), left_));
  std::size_t n = source_.read(out.first(want));
  left_ -= n;
  return n;
}

// ------------------------------------------------------------ KeyCache

std::optional<ArchiveKey> KeyCache::find(const Key& key, std::string* error) {
  std::lock_guard lock(mutex_);
  if (auto it = keys_.find(key); it != keys_.end()) return it->second;
  if (auto it = errors_.find(key); it != errors_.end() && error) *error = it->second;
  return std::nullopt;
}

void KeyCache::put(const Key& key, const ArchiveKey& value) {
  std::lock_guard lock(mutex_);
  keys_.insert_or_assign(key, value);
}

void KeyCache::put_error(const Key& key, const std::string& error) {
  std::lock_guard lock(mutex_);
  errors_.insert_or_assign(key, error);
}

// ------------------------------------------------------------ ArchiveStream

struct ArchiveStream::Pipeline {
  Pipeline(ByteSource& source, std::uint64_t limit) : window(source, limit) {}
  LimitedSource window;
  std::optional<crypto::AgePayloadDecryptor> decryptor;  // after window: destroyed first
};

ArchiveStream::ArchiveStream(TapeCursor& cursor, KeyCache& keys,
                             const crypto::AgeDecryptKeys& identities, const RecallOptions& options)
    : cursor_(cursor), keys_(keys), identities_(identities), options_(options) {}

ArchiveStream::~ArchiveStream() = default;

void ArchiveStream::reset() {
  pipeline_.reset();
  current_.reset();
}

std::string where(const catalog::TapeRow& tape, const catalog::ArchiveRow& archive,
                  std::optional<std::uint64_t> block) {
  std::string text =
      "tape " + tape.serial + ", archive file " + std::to_string(archive.archive_file);
  if (block) text += ", block " + std::to_string(*block);
  return text;
}

ArchiveKey ArchiveStream::key_for(const catalog::TapeRow& tape,
                                  const catalog::ArchiveRow& archive) {
  const KeyCache::Key id{tape.serial, archive.archive_file};
  std::string cached_error;
  if (auto key = keys_.find(id, &cached_error)) return *key;
  if (!cached_error.empty()) throw RestoreError(cached_error);
  // The payload key is in the age header at the start of the archive.
  cursor_.seek(archive.first_block, tape.record_size, 0);
  LimitedSource window(cursor_, archive.cipher_bytes);
  try {
    crypto::AgeFileKeys file_keys = crypto::read_age_header(window, identities_);
    if (file_keys.header_length != archive.age_header_len) {
      throw RestoreError("the archive's age header is " + std::to_string(file_keys.header_length) +
                         " bytes, the catalog says " + std::to_string(archive.age_header_len) +
                         ": this tape does not match the catalog");
    }
    ArchiveKey key{file_keys.header_length, file_keys.payload_key};
    keys_.put(id, key);
    return key;
  } catch (const crypto::AgeError& e) {
    if (is_key_error(e)) {
      const bool wrong_key = e.kind() != crypto::AgeErrorKind::WorkFactorTooHigh;
      std::string message = std::string("cannot decrypt the archive: ") + e.what() +
                            (wrong_key ? " (wrong --identity or --passphrase-file?)" : "");
      keys_.put_error(id, message);
      throw RestoreError(message);
    }
    throw RestoreError(std::string("damaged age header: ") + e.what());
  }
}

void ArchiveStream::seek(const catalog::TapeRow& tape, const catalog::ArchiveRow& archive,
                         std::uint64_t offset) {
  const std::pair<catalog::Id, std::int64_t> id{tape.id, archive.archive_file};
  if (pipeline_ && current_ == id && offset >= position_ &&
      offset - position_ <= options_.decrypt_skip_limit) {
    discard(offset - position_);
    return;
  }
  reset();
  std::optional<ArchiveKey> key;
  if (archive.encrypted) key = key_for(tape, archive);
  geometry_.first_block = archive.first_block;
  geometry_.record_size = tape.record_size;
  geometry_.encrypted = archive.encrypted;
  geometry_.age_header_length = archive.age_header_len;
  const format::TapePosition at = format::locate(geometry_, offset);
  const std::uint64_t stored_size = archive.encrypted ? archive.cipher_bytes : archive.plain_bytes;
  if (offset > archive.plain_bytes || at.stored_offset > stored_size) {
    throw RestoreError("offset " + std::to_string(offset) + " is beyond the end of the archive");
  }
  cursor_.seek(archive.first_block, tape.record_size, at.stored_offset);
  pipeline_ = std::make_unique<Pipeline>(cursor_, stored_size - at.stored_offset);
  if (key) {
    pipeline_->decryptor.emplace(pipeline_->window, key->payload_key, at.chunk,
                                 options_.decrypt_threads);
  }
  current_ = id;
  position_ = offset - at.offset_in_chunk;
  discard(at.offset_in_chunk);
}

void ArchiveStream::discard(std::uint64_t count) {
  Bytes scratch(static_cast<std::size_t>(std::min<std::uint64_t>(count, 256 * 1024)));
  while (count > 0) {
    std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(count, scratch.size()));
    std::size_t n = read(MutableByteSpan(scratch.data(), want));
    if (n == 0) throw RestoreError("the archive ends early (truncated)");
    count -= n;
  }
}

std::size_t ArchiveStream::read(MutableByteSpan out) {
  if (!pipeline_) throw RestoreError("internal error: archive stream not positioned");
  std::size_t n =
      pipeline_->decryptor ? pipeline_->decryptor->read(out) : pipeline_->window.read(out);
  position_ += n;
  return n;
}

std::uint64_t ArchiveStream::block_of(std::uint64_t offset) const {
  return format::locate(geometry_, offset).block;
}

// ------------------------------------------------------------ MemberReader

MemberReader::MemberReader(TapeCursor& cursor, KeyCache& keys,
                           const crypto::AgeDecryptKeys& identities, const RecallOptions& options)
    : stream_(cursor, keys, identities, options) {}

namespace {

// The member as the tar reader found it must be the one the catalog names.
void check_member(const format::TarMember& member, const catalog::LocatedCopy& copy,
                  const catalog::VersionRow& version, const std::string& name) {
  std::string problem;
  const bool is_link = version.kind == catalog::VersionKind::kSymlink;
  if (member.info.path != name) {
    problem = "holds '" + member.info.path + "' there";
  } else if (member.offsets.header_offset != copy.copy.header_offset ||
             member.offsets.data_offset != copy.copy.data_offset) {
    problem = "has the member at other offsets";
  } else if (is_link ? member.info.type != format::MemberType::kSymlink
                     : member.info.type != format::MemberType::kFile) {
    problem = "holds a " + std::string(format::member_type_name(member.info.type)) +
              " there, the catalog a " + (is_link ? "symlink" : "file");
  } else if (is_link ? member.info.linkpath != version.symlink_target
                     : member.info.size != version.size) {
    problem = is_link ? "holds another symlink target"
                      : "holds " + std::to_string(member.info.size) + " bytes, the catalog " +
                            std::to_string(version.size);
  } else if (!is_link && member.info.blake2b256 != to_hex(version.hash)) {
    problem = "records hash " + member.info.blake2b256 + ", the catalog " + to_hex(version.hash);
  }
  if (!problem.empty()) {
    throw MemberError(MemberError::Kind::kMismatch,
                      "the tape " + problem + ": the tape does not match the catalog");
  }
}

}  // namespace

format::TarMember MemberReader::open_member(format::TarReader& tar,
                                            const catalog::LocatedCopy& copy,
                                            const catalog::VersionRow& version,
                                            const std::string& name, RecallSink& sink) {
  std::optional<format::TarMember> member = tar.next();
  if (!member) throw MemberError(MemberError::Kind::kMismatch, "the archive ends before it");
  check_member(*member, copy, version, name);
  if (member->offsets.data_offset + member->info.size > copy.archive.plain_bytes) {
    throw MemberError(MemberError::Kind::kMismatch,
                      "the member's " + std::to_string(member->info.size) +
                          " bytes run past the end of its archive: the tape does not match the "
                          "catalog");
  }
  // Only now that the tape has shown what it holds: a sink claims space
  // for the catalog's size (the stage cache up front), which a hostile or
  // mistaken catalog could make absurd.
  try {
    sink.begin(version);
  } catch (...) {
    throw SinkFailure(std::current_exception());
  }
  return std::move(*member);
}

MemberError MemberReader::error_of(std::exception_ptr error, const catalog::LocatedCopy& copy,
                                   std::optional<std::uint64_t> block) {
  stream_.reset();
  auto at = [&](MemberError::Kind kind, const std::string& what) {
    return MemberError(kind, what + " (" + where(copy.tape, copy.archive, block) + ")");
  };
  try {
    std::rethrow_exception(error);
  } catch (const MemberError& e) {
    return at(e.kind(), e.what());
  } catch (const crypto::AgeError& e) {
    if (e.chunk()) block = stream_.block_of(*e.chunk() * format::kAgeChunkSize);
    return at(MemberError::Kind::kUnreadable, e.what());
  } catch (const tape::TapeError& e) {
    if (e.block()) block = e.block();
    return at(e.kind() == tape::TapeErrorKind::kEndOfData ? MemberError::Kind::kMissing
                                                          : MemberError::Kind::kUnreadable,
              e.what());
  } catch (const std::exception& e) {
    return at(MemberError::Kind::kUnreadable, e.what());
  }
}

std::string hash_mismatch(const catalog::Hash& expected, const catalog::Hash& found) {
  return "hash mismatch: the catalog says " + to_hex(expected) + ", the tape " + to_hex(found);
}

void MemberReader::read(const catalog::LocatedCopy& copy, const catalog::VersionRow& version,
                        const std::string& path, RecallSink& sink,
                        const std::function<void(std::uint64_t)>& on_bytes) {
  const std::string name = path.size() > 1 ? path.substr(1) : path;
  std::optional<std::uint64_t> block;
  try {
    stream_.seek(copy.tape, copy.archive, copy.copy.header_offset);
    block = stream_.block_of(copy.copy.header_offset);
    format::TarReader tar(stream_, "archive file " + std::to_string(copy.archive.archive_file),
                          copy.copy.header_offset);
    format::TarMember member = open_member(tar, copy, version, name, sink);
    crypto::Blake2b256 hasher;
    if (version.kind == catalog::VersionKind::kSymlink) {
      hasher.update(as_bytes(member.info.linkpath));
    } else {
      if (buffer_.size() != kCopyBuffer) buffer_.resize(kCopyBuffer);
      std::uint64_t left = version.size;
      while (left > 0) {
        block = stream_.block_of(stream_.position());
        std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(left, buffer_.size()));
        std::size_t n = tar.read_data(MutableByteSpan(buffer_.data(), want));
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
    }
    block = stream_.block_of(stream_.position());
    catalog::Hash digest = hasher.finish();
    if (digest != version.hash)
      throw MemberError(MemberError::Kind::kMismatch, hash_mismatch(version.hash, digest));
  } catch (const SinkFailure&) {
    throw;
  } catch (...) {
    throw error_of(std::current_exception(), copy, block);
  }
}

void MemberReader::read_into(MemberPipeline& pipeline, const catalog::LocatedCopy& copy,
                             const catalog::VersionRow& version, const std::string& path,
                             RecallSink& sink, MemberPipeline::Done done,
                             MemberPipeline::Progress on_bytes) {
  const std::string name = path.size() > 1 ? path.substr(1) : path;
  std::optional<std::uint64_t> block;
  std::optional<format::TarReader> tar;
  try {
    stream_.seek(copy.tape, copy.archive, copy.copy.header_offset);
    block = stream_.block_of(copy.copy.header_offset);
    tar.emplace(stream_, "archive file " + std::to_string(copy.archive.archive_file),
                copy.copy.header_offset);
    open_member(*tar, copy, version, name, sink);
  } catch (const SinkFailure&) {
    throw;
  } catch (...) {
    throw error_of(std::current_exception(), copy, block);
  }
  // From here on, the pipeline reports.
  pipeline.begin(sink, version.hash, std::move(done), std::move(on_bytes));
  try {
    if (version.kind != catalog::VersionKind::kFile)
      throw MemberError(MemberError::Kind::kMismatch, "not a regular file");
    std::uint64_t left = version.size;
    while (left > 0 && !pipeline.failed()) {
      block = stream_.block_of(stream_.position());
      MutableByteSpan room = pipeline.room();
      std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(left, room.size()));
      std::size_t n = tar->read_data(room.first(want));
      if (n == 0) throw MemberError(MemberError::Kind::kUnreadable, "the member ends early");
      pipeline.add(n);
      left -= n;
    }
    block = stream_.block_of(stream_.position());
    pipeline.end(where(copy.tape, copy.archive, block));
  } catch (...) {
    pipeline.fail(std::make_exception_ptr(error_of(std::current_exception(), copy, block)));
  }
}

// ------------------------------------------------------------ labels

void check_label(tape::Drive& drive, const std::string& serial, const std::string& catalog_id) {
  if (drive.tell() != 0) drive.rewind();
  tape::TapeFileReader file0(drive);
  format::LabelInfo label;
  try {
    label = format::read_label(file0);
  } catch (const Error& e) {
    throw RestoreError("tape " + serial + " in " + drive.name() + ": " + e.what());
  }
  if (label.serial != serial) {
    throw RestoreError("the tape in " + drive.name() + " is labelled " + label.serial + ", not " +
                       serial);
  }
  if (!catalog_id.empty() && label.catalog_id != catalog_id) {
    throw RestoreError("tape " + serial + " in " + drive.name() + " belongs to catalog " +
                       label.catalog_id + ", not to this catalog (" + catalog_id +
                       "): a different tape with the same serial?");
  }
}

}  // namespace mixtape::restore::detail
