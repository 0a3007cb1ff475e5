// TarStream: a tar stream read with libarchive from a ByteSource, member by
// member, with each member's offsets in the (uncompressed) stream.
#include <archive.h>
#include <archive_entry.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <limits>

#include "engine/foreign/foreign.h"

namespace mixtape::foreign {
namespace {

constexpr std::size_t kChunk = 128 * 1024;
// Bytes of the raw stream kept behind the reader, to read a member's own
// header where libarchive does not say what it holds (the GNU multi-volume
// type 'M'). At least the last two chunks are always kept.
constexpr std::size_t kWindow = 512 * 1024;
constexpr std::size_t kTarBlock = 512;

void enable_readers(::archive* a) {
  // Every tar dialect is one reader in libarchive (ustar, pax, GNU, v7,
  // star); the filters are what tar -z/-j/-J/--zstd/-Z/--lzip write.
  archive_read_support_format_tar(a);
  archive_read_support_filter_gzip(a);
  archive_read_support_filter_bzip2(a);
  archive_read_support_filter_xz(a);
  archive_read_support_filter_lzma(a);
  archive_read_support_filter_lzip(a);
  archive_read_support_filter_zstd(a);
  archive_read_support_filter_compress(a);
}

std::string extension_of(int filter) {
  switch (filter) {
    case ARCHIVE_FILTER_NONE:
      return "";
    case ARCHIVE_FILTER_GZIP:
      return ".gz";
    case ARCHIVE_FILTER_BZIP2:
      return ".bz2";
    case ARCHIVE_FILTER_XZ:
      return ".xz";
    case ARCHIVE_FILTER_LZMA:
      return ".lzma";
    case ARCHIVE_FILTER_LZIP:
      return ".lz";
    case ARCHIVE_FILTER_ZSTD:
      return ".zst";
    case ARCHIVE_FILTER_COMPRESS:
      return ".Z";
    default:
      return ".compressed";
  }
}

std::uint32_t clamp_id(la_int64_t id) {
  if (id < 0) return 0;
  return static_cast<std::uint32_t>(
      std::min<la_int64_t>(id, std::numeric_limits<std::uint32_t>::max()));
}

// An octal tar number field (NUL or space terminated).
std::optional<std::uint64_t> parse_octal(const std::uint8_t* field, std::size_t size) {
  std::uint64_t value = 0;
  bool any = false;
  for (std::size_t i = 0; i < size; ++i) {
    const std::uint8_t c = field[i];
    if (c == ' ' && !any) continue;
    if (c == 0 || c == ' ') break;
    if (c < '0' || c > '7') return std::nullopt;
    if (value > (std::numeric_limits<std::uint64_t>::max() >> 3)) return std::nullopt;
    value = value * 8 + (c - '0');
    any = true;
  }
  return any ? std::optional(value) : std::nullopt;
}

}  // namespace

// libarchive's client: reads the ByteSource in chunks and keeps the last
// ones (with their stream offsets) for gnu_part().
struct TarStream::Source {
  explicit Source(ByteSource& in) : input(in) {}

  ByteSource& input;
  std::deque<std::pair<std::uint64_t, Bytes>> window;  // (offset, bytes), oldest first
  std::size_t window_bytes = 0;
  std::uint64_t delivered = 0;
  std::string error;

  static la_ssize_t read(::archive*, void* self, const void** buffer) {
    auto* s = static_cast<Source*>(self);
    try {
      Bytes chunk(kChunk);
      std::size_t n = s->input.read(chunk);
      chunk.resize(n);
      if (n == 0) return 0;
      s->window.emplace_back(s->delivered, std::move(chunk));
      s->window_bytes += n;
      s->delivered += n;
      while (s->window.size() > 2 && s->window_bytes - s->window.front().second.size() >= kWindow) {
        s->window_bytes -= s->window.front().second.size();
        s->window.pop_front();
      }
      *buffer = s->window.back().second.data();
      return static_cast<la_ssize_t>(n);
    } catch (const std::exception& e) {
      s->error = e.what();
      return -1;
    }
  }

  // Copies stream bytes [offset, offset + size) if the window still holds them.
  bool copy(std::uint64_t offset, std::uint8_t* out, std::size_t size) const {
    for (const auto& [start, bytes] : window) {
      if (offset >= start && offset + size <= start + bytes.size()) {
        std::memcpy(out, bytes.data() + (offset - start), size);
        return true;
      }
    }
    return false;
  }
};

TarStream::TarStream(ByteSource& source, std::string name, std::uint64_t start_offset)
    : source_(std::make_unique<Source>(source)),
      name_(std::move(name)),
      start_offset_(start_offset) {
  archive_ = archive_read_new();
  if (!archive_) throw ForeignError(name_ + ": out of memory");
  enable_readers(archive_);
  if (archive_read_open2(archive_, source_.get(), nullptr, &Source::read, nullptr, nullptr) !=
      ARCHIVE_OK) {
    std::string why = !source_->error.empty()          ? source_->error
                      : archive_error_string(archive_) ? archive_error_string(archive_)
                                                       : "not a tar archive";
    archive_read_free(archive_);
    archive_ = nullptr;
    throw ForeignError(name_ + ": " + why);
  }
}

TarStream::~TarStream() {
  if (archive_) archive_read_free(archive_);
}

void TarStream::fail(const std::string& what) const {
  std::string why = !source_->error.empty()          ? source_->error
                    : archive_error_string(archive_) ? archive_error_string(archive_)
                                                     : "unknown error";
  throw ForeignError(name_ + ": " + what + ": " + why);
}

std::optional<std::uint64_t> TarStream::gnu_part(std::uint64_t data_offset) const {
  // Only a plain stream's bytes are the window's; GNU tar writes no
  // compressed multi-volume archives.
  if (archive_filter_code(archive_, 0) != ARCHIVE_FILTER_NONE) return std::nullopt;
  const std::uint64_t relative = data_offset - start_offset_;
  if (relative < kTarBlock) return std::nullopt;
  std::uint8_t header[kTarBlock];
  if (!source_->copy(relative - kTarBlock, header, kTarBlock)) return std::nullopt;
  if (header[156] != 'M') return std::nullopt;
  // oldgnu_header: offset[12] at 369, where this part begins in the file.
  return parse_octal(header + 369, 12).value_or(0);
}

std::optional<Member> TarStream::next() {
  if (at_end_) return std::nullopt;
  archive_entry* entry = nullptr;
  const int rc = archive_read_next_header(archive_, &entry);
  if (rc == ARCHIVE_EOF) {
    at_end_ = true;
    return std::nullopt;
  }
  if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) fail("cannot read the next member");
  Member m;
  const char* path = archive_entry_pathname(entry);
  if (!path) path = archive_entry_pathname_utf8(entry);
  if (!path) fail("a member name that cannot be read");
  m.path = path;
  const char* hardlink = archive_entry_hardlink(entry);
  switch (archive_entry_filetype(entry)) {
    case AE_IFREG:
      m.kind = MemberKind::kFile;
      break;
    case AE_IFDIR:
      m.kind = MemberKind::kDirectory;
      break;
    case AE_IFLNK:
      m.kind = MemberKind::kSymlink;
      break;
    default:
      m.kind = MemberKind::kOther;
      break;
  }
  m.size = archive_entry_size_is_set(entry) && archive_entry_size(entry) > 0
               ? static_cast<std::uint64_t>(archive_entry_size(entry))
               : 0;
  if (hardlink && m.size == 0) {
    m.kind = MemberKind::kHardlink;
    m.link = hardlink;
  }
  if (m.kind == MemberKind::kSymlink) {
    const char* target = archive_entry_symlink(entry);
    if (!target) target = archive_entry_symlink_utf8(entry);
    m.link = target ? target : "";
    m.size = 0;
  }
  if (m.kind != MemberKind::kFile) m.size = m.kind == MemberKind::kOther ? m.size : 0;
  m.mode = static_cast<std::uint32_t>(archive_entry_perm(entry)) & 07777;
  m.uid = clamp_id(archive_entry_uid(entry));
  m.gid = clamp_id(archive_entry_gid(entry));
  if (const char* u = archive_entry_uname(entry)) m.uname = u;
  if (const char* g = archive_entry_gname(entry)) m.gname = g;
  if (archive_entry_mtime_is_set(entry)) {
    const std::int64_t seconds = archive_entry_mtime(entry);
    const std::int64_t limit = std::numeric_limits<std::int64_t>::max() / 1000000000 - 1;
    m.mtime_ns = std::clamp<std::int64_t>(seconds, -limit, limit) * 1000000000 +
                 std::clamp<std::int64_t>(archive_entry_mtime_nsec(entry), 0, 999999999);
  }
  m.sparse = archive_entry_sparse_count(entry) > 0;
  m.header_offset =
      start_offset_ + static_cast<std::uint64_t>(archive_read_header_position(archive_));
  m.data_offset = start_offset_ + static_cast<std::uint64_t>(archive_filter_bytes(archive_, 0));
  if (m.kind == MemberKind::kFile || m.kind == MemberKind::kOther) {
    // libarchive gives a GNU multi-volume continuation ('M') no file type.
    m.part = gnu_part(m.data_offset);
    if (m.part) m.kind = MemberKind::kFile;
  }
  block_ = nullptr;
  block_size_ = 0;
  block_offset_ = 0;
  position_ = 0;
  data_end_ = false;
  size_ = m.size;
  return m;
}

std::size_t TarStream::read(MutableByteSpan out) {
  std::size_t done = 0;
  while (done < out.size()) {
    if (block_size_ == 0 || position_ >= block_offset_ + block_size_) {
      if (data_end_) break;
      if (done > 0) break;  // what is here first; the next block at the next call
      la_int64_t offset = 0;
      const int rc = archive_read_data_block(archive_, &block_, &block_size_, &offset);
      if (rc == ARCHIVE_EOF) {
        data_end_ = true;
        block_size_ = 0;
        break;
      }
      if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) {
        block_size_ = 0;
        fail("cannot read member data");
      }
      block_offset_ = static_cast<std::uint64_t>(std::max<la_int64_t>(offset, 0));
      if (block_offset_ < position_) fail("member data out of order");
      continue;
    }
    if (position_ < block_offset_) {
      // A sparse file's hole: zeros.
      const std::size_t n = static_cast<std::size_t>(
          std::min<std::uint64_t>(block_offset_ - position_, out.size() - done));
      std::memset(out.data() + done, 0, n);
      done += n;
      position_ += n;
      continue;
    }
    const std::size_t in_block = static_cast<std::size_t>(position_ - block_offset_);
    const std::size_t n = std::min(block_size_ - in_block, out.size() - done);
    std::memcpy(out.data() + done, static_cast<const std::uint8_t*>(block_) + in_block, n);
    done += n;
    position_ += n;
  }
  // The hole at the end of a sparse file.
  if (done == 0 && data_end_ && position_ < size_) {
    const std::size_t n =
        static_cast<std::size_t>(std::min<std::uint64_t>(size_ - position_, out.size()));
    std::memset(out.data(), 0, n);
    position_ += n;
    return n;
  }
  return done;
}

std::string TarStream::format() const {
  return "tar" + extension_of(archive_filter_code(archive_, 0));
}

std::string TarStream::dialect() const {
  const char* format = archive_format_name(archive_);
  const char* filter = archive_filter_name(archive_, 0);
  std::string text = format ? format : "tar";
  if (filter && archive_filter_code(archive_, 0) != ARCHIVE_FILTER_NONE)
    text += std::string(", ") + filter;
  return text;
}

std::string describe(ByteSpan first_bytes) {
  MemorySource source(first_bytes);
  try {
    TarStream tar(source, "probe");
    if (!tar.next()) return "";
    return tar.format();
  } catch (const ForeignError&) {
    return "";
  }
}

}  // namespace mixtape::foreign
