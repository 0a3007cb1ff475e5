#include "engine/tape/image_medium.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <sstream>

#include "engine/tape/simh.h"

namespace mixtape::tape::detail {
namespace {

std::string meta_path(const std::string& image) {
  return image + ".meta";
}
std::string index_path_for(const std::string& image) {
  return image + ".idx";
}

// The .meta sidecar: "key: value" lines, readable by a person with `cat`.
std::string format_meta(const ImageGeometry& geometry) {
  return "# mixtape tape image geometry (docs/TAPE.md); sizes in image bytes\n"
         "capacity: " +
         std::to_string(geometry.capacity) +
         "\n"
         "early-warning: " +
         std::to_string(geometry.early_warning) + "\n";
}

std::optional<ImageGeometry> read_meta(const std::string& image) {
  std::string path = meta_path(image);
  int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (raw < 0) {
    if (errno == ENOENT) return std::nullopt;
    throw_errno("cannot open " + path);
  }
  UniqueFd fd(raw);
  FdSource source(fd.get(), path);
  std::uint8_t buffer[4096];
  std::size_t n = read_full(source, buffer);
  std::istringstream text(std::string(as_chars(ByteSpan(buffer, n))));
  ImageGeometry geometry{0, 0};
  std::string line;
  while (std::getline(text, line)) {
    if (line.empty() || line[0] == '#') continue;
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, colon);
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(' '));
    std::uint64_t number = 0;
    auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), number);
    if (error != std::errc()) continue;
    if (key == "capacity") geometry.capacity = number;
    if (key == "early-warning") geometry.early_warning = number;
  }
  if (geometry.capacity == 0 || geometry.early_warning >= geometry.capacity) {
    throw TapeError(TapeErrorKind::kDeviceError, path + ": malformed image geometry");
  }
  return geometry;
}

// pwritev until every byte is written (short writes advance the vectors).
void pwritev_all(int fd, iovec* iov, int count, std::uint64_t offset, const std::string& what) {
  while (count > 0) {
    ssize_t n = ::pwritev(fd, iov, count, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("cannot write " + what);
    }
    offset += static_cast<std::uint64_t>(n);
    auto done = static_cast<std::size_t>(n);
    while (count > 0 && done >= iov->iov_len) {
      done -= iov->iov_len;
      ++iov;
      --count;
    }
    if (count > 0) {
      iov->iov_base = static_cast<char*>(iov->iov_base) + done;
      iov->iov_len -= done;
    }
  }
}

}  // namespace

ImageGeometry resolve_geometry(const ImageGeometry& geometry) {
  ImageGeometry resolved = geometry;
  if (resolved.early_warning == 0) resolved.early_warning = resolved.capacity / 64;
  if (resolved.capacity < 1024 || resolved.early_warning >= resolved.capacity) {
    throw TapeError(TapeErrorKind::kInvalidArgument,
                    "invalid image geometry: capacity " + std::to_string(resolved.capacity) +
                        ", early warning " + std::to_string(resolved.early_warning) +
                        " (need capacity >= 1024 and early warning < capacity)");
  }
  return resolved;
}

void create_image(const std::string& path, const ImageGeometry& geometry) {
  ImageGeometry resolved = resolve_geometry(geometry);
  int raw = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (raw < 0) {
    int error = errno;
    throw TapeError(TapeErrorKind::kDeviceError,
                    "cannot create tape image " + path + ": " + std::strerror(error));
  }
  UniqueFd image(raw);
  try {
    UniqueFd meta = open_file(meta_path(path), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    write_all(meta.get(), as_bytes(format_meta(resolved)), meta_path(path));
    ::unlink(index_path_for(path).c_str());  // a leftover index of an older image
  } catch (...) {
    ::unlink(path.c_str());
    throw;
  }
}

ImageMedium::ImageMedium(std::string path, bool write_protected, std::string index_path)
    : path_(std::move(path)),
      index_path_(index_path.empty() ? index_path_for(path_) : std::move(index_path)),
      write_protected_(write_protected) {
  int raw = ::open(path_.c_str(), (write_protected ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (raw < 0 && !write_protected && (errno == EROFS || errno == EACCES || errno == EPERM)) {
    // Read-only media or a file the user may only read: a write-protected
    // tape, which reads like any other.
    raw = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    write_protected_ = raw >= 0;
  }
  if (raw < 0) {
    int error = errno;
    TapeErrorKind kind = error == ENOENT ? TapeErrorKind::kNotLoaded : TapeErrorKind::kDeviceError;
    throw TapeError(kind, "cannot open tape image " + path_ + ": " + std::strerror(error));
  }
  fd_.reset(raw);
  // One writer per image, like one drive per cartridge.
  if (::flock(fd_.get(), (write_protected_ ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0) {
    const std::string holder = flock_holder(fd_.get());
    throw TapeInUseError(path_ + ": tape image is in use by " +
                             (holder.empty()             ? "another drive or process"
                              : holder == "this process" ? "another drive of this process"
                                                         : holder),
                         holder);
  }
  struct stat st {};
  if (::fstat(fd_.get(), &st) != 0) throw_errno("cannot stat " + path_);
  file_size_ = static_cast<std::uint64_t>(st.st_size);

  std::optional<ImageGeometry> meta = read_meta(path_);
  // A foreign SIMH image has no .meta: treat it as a full-size LTO-6 tape.
  geometry_ =
      meta ? *meta : resolve_geometry({std::max<std::uint64_t>(file_size_, kLto6NativeBytes), 0});

  auto loaded = ImageIndex::load(index_path_, fingerprint());
  if (loaded && loaded->ends_where_image_ends(fd_.get(), file_size_, &reads_)) {
    index_ = std::move(*loaded);
  } else {
    index_ = ImageIndex::scan(fd_.get(), file_size_, &reads_);
    index_dirty_ = true;
    index_scanned_ = true;
  }
}

ImageMedium::~ImageMedium() {
  save_index_quietly();
}

ImageFingerprint ImageMedium::fingerprint() const {
  struct stat st {};
  if (::fstat(fd_.get(), &st) != 0) throw_errno("cannot stat " + path_);
  ImageFingerprint f;
  f.size = static_cast<std::uint64_t>(st.st_size);
  f.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  f.ctime_ns = static_cast<std::int64_t>(st.st_ctim.tv_sec) * 1'000'000'000 + st.st_ctim.tv_nsec;
  f.inode = static_cast<std::uint64_t>(st.st_ino);
  return f;
}

void ImageMedium::save_index_quietly() noexcept {
  if (!index_dirty_) return;
  try {
    index_.save(index_path_, fingerprint());
    index_dirty_ = false;
  } catch (const std::exception&) {
    // A read-only directory or a full disk: the next open rebuilds the index.
  }
}

void ImageMedium::release() noexcept {
  save_index_quietly();
  index_dirty_ = false;  // unsaved (a read-only folder): the next open rebuilds it
  fd_.reset();
}

bool ImageMedium::replaced() const {
  struct stat now {
  }, held{};
  if (::stat(path_.c_str(), &now) != 0 || ::fstat(fd_.get(), &held) != 0) return true;
  return now.st_dev != held.st_dev || now.st_ino != held.st_ino;
}

void ImageMedium::fail(TapeErrorKind kind, const std::string& what, std::uint64_t block) const {
  throw TapeError(kind, path_ + ": " + what, block);
}

ReadResult ImageMedium::read(std::uint64_t block, MutableByteSpan buffer) {
  if (std::optional<ReadResult> result = read_at(block, buffer)) return *result;
  // The index loaded from the sidecar does not describe the image (stale in
  // a way its fingerprint missed, or forged): rebuild it from the image and
  // read the block the tape really has there.
  index_ = ImageIndex::scan(fd_.get(), file_size_, &reads_);
  index_dirty_ = true;
  index_scanned_ = true;
  if (block >= index_.block_count()) return {ReadKind::kEndOfData, 0};
  return *read_at(block, buffer);
}

std::optional<ReadResult> ImageMedium::read_at(std::uint64_t block, MutableByteSpan buffer) {
  const std::uint64_t offset = index_.offset(block);
  const std::uint64_t next = index_.offset(block + 1);
  std::uint8_t header[4];
  ssize_t n = ::pread(fd_.get(), header, sizeof header, static_cast<off_t>(offset));
  ++reads_;
  if (n != static_cast<ssize_t>(sizeof header)) {
    if (!index_scanned_) return std::nullopt;
    fail(TapeErrorKind::kMediaError,
         "media error reading block " + std::to_string(block) + " (image truncated)", block);
  }
  const std::uint32_t word = simh::load_le32(header);
  if (word == simh::kTapeMark) {
    if (!index_scanned_ && (!index_.is_filemark(block) || next != offset + simh::kMarkerBytes))
      return std::nullopt;
    return ReadResult{ReadKind::kFilemark, 0};
  }
  const std::uint32_t cls = simh::word_class(word);
  const std::uint64_t length = simh::word_value(word);
  // A block the index places where the image holds no object ending at the
  // next block's offset: the index is not this image's.
  if (!index_scanned_ &&
      (index_.is_filemark(block) || (cls != simh::kClassGood && cls != simh::kClassBad) ||
       next != offset + (word == 0x80000000 ? simh::kMarkerBytes : simh::record_bytes(length))))
    return std::nullopt;
  if (cls == simh::kClassBad) {
    fail(TapeErrorKind::kMediaError,
         "media error reading block " + std::to_string(block) + " (bad data record)", block);
  }
  if (cls != simh::kClassGood) {
    fail(TapeErrorKind::kMediaError,
         "media error reading block " + std::to_string(block) +
             " (no record there: was the image changed while in use?)",
         block);
  }
  if (length > buffer.size()) {
    fail(TapeErrorKind::kRecordTooLarge,
         "record at block " + std::to_string(block) + " is " + std::to_string(length) +
             " bytes, larger than the " + std::to_string(buffer.size()) + "-byte read buffer",
         block);
  }
  // Data straight into the caller's buffer; pad byte and trailing length
  // into a small one.
  std::uint8_t tail[5];
  const std::size_t tail_size = static_cast<std::size_t>(simh::padded(length) - length) + 4;
  iovec iov[2] = {{buffer.data(), static_cast<std::size_t>(length)}, {tail, tail_size}};
  std::size_t want = static_cast<std::size_t>(length) + tail_size;
  ssize_t got;
  do {
    got = ::preadv(fd_.get(), iov, 2, static_cast<off_t>(offset + 4));
  } while (got < 0 && errno == EINTR);
  ++reads_;
  if (got < 0 || static_cast<std::size_t>(got) != want) {
    fail(TapeErrorKind::kMediaError,
         "media error reading block " + std::to_string(block) + " (record cut short)", block);
  }
  if (simh::load_le32(tail + tail_size - 4) != word) {
    if (!index_scanned_) return std::nullopt;
    fail(TapeErrorKind::kMediaError,
         "media error reading block " + std::to_string(block) +
             " (leading and trailing record lengths differ)",
         block);
  }
  return ReadResult{ReadKind::kData, static_cast<std::size_t>(length)};
}

bool ImageMedium::in_early_warning(std::uint64_t offset) const {
  return offset > geometry_.capacity - geometry_.early_warning;
}

void ImageMedium::prepare_write(std::uint64_t block, std::uint64_t bytes, const char* what) {
  if (write_protected_) {
    fail(TapeErrorKind::kWriteProtected,
         std::string("tape is write protected, cannot write ") + what, block);
  }
  const std::uint64_t offset = index_.offset(block);
  if (offset + bytes > geometry_.capacity) {
    fail(TapeErrorKind::kPhysicalEnd,
         std::string("physical end of medium: no room to write ") + what + " at block " +
             std::to_string(block),
         block);
  }
  // Writing discards what follows, like tape. (Bytes past EOD that belong to
  // no block, e.g. a record cut short by a crash, go too.)
  index_.truncate(block);
  if (file_size_ > offset) {
    if (::ftruncate(fd_.get(), static_cast<off_t>(offset)) != 0) {
      throw_errno("cannot truncate " + path_);
    }
    file_size_ = offset;
  }
  index_dirty_ = true;
}

// A record is its length, the bytes of `pieces` in order (`size` in all),
// and the length again, written in one pwritev.
bool ImageMedium::write_record(std::uint64_t block, std::span<const ByteSpan> pieces,
                               std::size_t size) {
  const std::uint64_t bytes = simh::record_bytes(size);
  prepare_write(block, bytes, "a record");
  const std::uint64_t offset = index_.offset(block);
  std::uint8_t header[4];
  std::uint8_t tail[5] = {0, 0, 0, 0, 0};  // pad byte (0, as the spec asks) + length
  const auto length = static_cast<std::uint32_t>(size);
  const std::size_t pad = size % 2;
  simh::store_le32(header, length);
  simh::store_le32(tail + pad, length);
  constexpr std::size_t kMaxPieces = 8;
  if (pieces.size() > kMaxPieces)
    throw TapeError(TapeErrorKind::kInvalidArgument, path_ + ": a record gathered from more than " +
                                                         std::to_string(kMaxPieces) + " pieces");
  iovec iov[kMaxPieces + 2];
  int count = 0;
  iov[count++] = {header, sizeof header};
  for (ByteSpan piece : pieces)
    if (!piece.empty()) iov[count++] = {const_cast<std::uint8_t*>(piece.data()), piece.size()};
  iov[count++] = {tail, pad + 4};
  pwritev_all(fd_.get(), iov, count, offset, path_);
  file_size_ = offset + bytes;
  index_.append(offset, false, file_size_);
  return in_early_warning(file_size_);
}

bool ImageMedium::write_filemarks(std::uint64_t block, std::uint32_t count) {
  const std::uint64_t bytes = simh::kMarkerBytes * count;
  prepare_write(block, bytes, "a filemark");
  std::uint64_t offset = index_.offset(block);
  Bytes marks(bytes, 0);  // a tape mark is a zero word
  iovec iov[1] = {{marks.data(), marks.size()}};
  pwritev_all(fd_.get(), iov, 1, offset, path_);
  for (std::uint32_t i = 0; i < count; ++i, offset += simh::kMarkerBytes) {
    index_.append(offset, true, offset + simh::kMarkerBytes);
  }
  file_size_ = offset;
  // A filemark is a sync point on tape: make everything before it durable.
  if (::fdatasync(fd_.get()) != 0) throw_errno("cannot sync " + path_);
  return in_early_warning(file_size_);
}

}  // namespace mixtape::tape::detail
