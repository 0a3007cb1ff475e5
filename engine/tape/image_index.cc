#include "engine/tape/image_index.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "engine/common/common.h"
#include "engine/tape/simh.h"

namespace mixtape::tape::detail {
namespace {

constexpr char kMagic[8] = {'M', 'X', 'T', 'A', 'P', 'I', 'D', 'X'};
constexpr std::uint32_t kVersion = 2;
constexpr std::size_t kHeaderBytes = 64;
constexpr std::uint64_t kFilemarkBit = std::uint64_t{1} << 63;

void store_le64(std::uint8_t* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
std::uint64_t load_le64(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = v << 8 | p[i];
  return v;
}

// FNV-1a: enough to notice a torn or scribbled sidecar; not a defence
// against malice (the sidecar is a cache we can always rebuild).
std::uint64_t fnv1a(const std::uint8_t* data, std::size_t size) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (std::size_t i = 0; i < size; ++i) {
    h ^= data[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

// Reads 4-byte words at increasing offsets through a read-ahead window, so a
// scan of small records costs one pread per window, and a scan of large
// records one pread per record.
class WordReader {
 public:
  WordReader(int fd, std::uint64_t file_size, std::uint64_t* reads)
      : fd_(fd), file_size_(file_size), reads_(reads), window_(kWindow) {}

  // The word at offset, or nullopt if fewer than 4 bytes remain.
  std::optional<std::uint32_t> word_at(std::uint64_t offset) {
    if (offset + 4 > file_size_) return std::nullopt;
    if (offset < start_ || offset + 4 > start_ + length_) fill(offset);
    if (offset + 4 > start_ + length_) return std::nullopt;
    return simh::load_le32(window_.data() + (offset - start_));
  }

 private:
  static constexpr std::size_t kWindow = 64 * 1024;

  void fill(std::uint64_t offset) {
    start_ = offset;
    length_ = 0;
    while (length_ < kWindow) {
      ssize_t n = ::pread(fd_, window_.data() + length_, kWindow - length_,
                          static_cast<off_t>(offset + length_));
      ++*reads_;
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw_errno("cannot read tape image");
      if (n == 0) break;
      length_ += static_cast<std::size_t>(n);
    }
  }

  int fd_;
  std::uint64_t file_size_;
  std::uint64_t* reads_;
  Bytes window_;
  std::uint64_t start_ = 0;
  std::size_t length_ = 0;
};

}  // namespace

std::uint64_t ImageIndex::offset(std::uint64_t block) const {
  return block < offsets_.size() ? offsets_[block] : eod_offset_;
}

bool ImageIndex::is_filemark(std::uint64_t block) const {
  return std::binary_search(filemarks_.begin(), filemarks_.end(), block);
}

void ImageIndex::truncate(std::uint64_t block) {
  if (block >= offsets_.size()) return;
  eod_offset_ = offsets_[block];
  offsets_.resize(block);
  filemarks_.erase(std::lower_bound(filemarks_.begin(), filemarks_.end(), block), filemarks_.end());
}

void ImageIndex::append(std::uint64_t offset, bool filemark, std::uint64_t end_offset) {
  if (filemark) filemarks_.push_back(offsets_.size());
  offsets_.push_back(offset);
  eod_offset_ = end_offset;
}

std::optional<std::uint64_t> ImageIndex::filemark_forward(std::uint64_t block,
                                                          std::uint64_t n) const {
  auto first = std::lower_bound(filemarks_.begin(), filemarks_.end(), block);
  auto available = static_cast<std::uint64_t>(filemarks_.end() - first);
  if (n == 0 || n > available) return std::nullopt;
  return *(first + static_cast<std::ptrdiff_t>(n - 1));
}

std::optional<std::uint64_t> ImageIndex::filemark_backward(std::uint64_t block,
                                                           std::uint64_t n) const {
  auto end = std::lower_bound(filemarks_.begin(), filemarks_.end(), block);
  auto available = static_cast<std::uint64_t>(end - filemarks_.begin());
  if (n == 0 || n > available) return std::nullopt;
  return *(end - static_cast<std::ptrdiff_t>(n));
}

void ImageIndex::save(const std::string& path, const ImageFingerprint& fingerprint) const {
  Bytes out(kHeaderBytes + 8 * offsets_.size() + 8);
  std::memcpy(out.data(), kMagic, 8);
  simh::store_le32(out.data() + 8, kVersion);
  simh::store_le32(out.data() + 12, 0);
  store_le64(out.data() + 16, fingerprint.size);
  store_le64(out.data() + 24, static_cast<std::uint64_t>(fingerprint.mtime_ns));
  store_le64(out.data() + 32, static_cast<std::uint64_t>(fingerprint.ctime_ns));
  store_le64(out.data() + 40, fingerprint.inode);
  store_le64(out.data() + 48, eod_offset_);
  store_le64(out.data() + 56, offsets_.size());
  auto mark = filemarks_.begin();
  for (std::size_t i = 0; i < offsets_.size(); ++i) {
    std::uint64_t entry = offsets_[i];
    if (mark != filemarks_.end() && *mark == i) {
      entry |= kFilemarkBit;
      ++mark;
    }
    store_le64(out.data() + kHeaderBytes + 8 * i, entry);
  }
  store_le64(out.data() + out.size() - 8, fnv1a(out.data(), out.size() - 8));

  std::string temporary = path + ".tmp";
  {
    UniqueFd fd = open_file(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    write_all(fd.get(), out, temporary);
  }
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    int error = errno;
    ::unlink(temporary.c_str());
    throw SystemError("cannot rename " + temporary, error);
  }
}

std::optional<ImageIndex> ImageIndex::load(const std::string& path,
                                           const ImageFingerprint& fingerprint) {
  int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (raw < 0) return std::nullopt;
  UniqueFd fd(raw);
  Bytes data;
  FdSource source(fd.get(), path);
  std::uint8_t chunk[1 << 16];
  for (;;) {
    std::size_t n = source.read(chunk);
    if (n == 0) break;
    data.insert(data.end(), chunk, chunk + n);
  }
  if (data.size() < kHeaderBytes + 8 || std::memcmp(data.data(), kMagic, 8) != 0 ||
      simh::load_le32(data.data() + 8) != kVersion) {
    return std::nullopt;
  }
  if (load_le64(data.data() + data.size() - 8) != fnv1a(data.data(), data.size() - 8)) {
    return std::nullopt;
  }
  ImageFingerprint stored;
  stored.size = load_le64(data.data() + 16);
  stored.mtime_ns = static_cast<std::int64_t>(load_le64(data.data() + 24));
  stored.ctime_ns = static_cast<std::int64_t>(load_le64(data.data() + 32));
  stored.inode = load_le64(data.data() + 40);
  std::uint64_t count = load_le64(data.data() + 56);
  if (!(stored == fingerprint) || count != (data.size() - kHeaderBytes - 8) / 8 ||
      data.size() != kHeaderBytes + 8 * count + 8) {
    return std::nullopt;
  }
  ImageIndex index;
  index.eod_offset_ = load_le64(data.data() + 48);
  if (index.eod_offset_ > fingerprint.size) return std::nullopt;
  index.offsets_.reserve(count);
  for (std::uint64_t i = 0; i < count; ++i) {
    std::uint64_t entry = load_le64(data.data() + kHeaderBytes + 8 * i);
    std::uint64_t offset = entry & ~kFilemarkBit;
    bool ascending = index.offsets_.empty() || offset > index.offsets_.back();
    if (!ascending || offset >= index.eod_offset_) return std::nullopt;
    if (entry & kFilemarkBit) index.filemarks_.push_back(i);
    index.offsets_.push_back(offset);
  }
  return index;
}

bool ImageIndex::ends_where_image_ends(int fd, std::uint64_t file_size,
                                       std::uint64_t* reads) const {
  WordReader reader(fd, file_size, reads);
  // The last block must end exactly at end of data.
  if (!offsets_.empty()) {
    const std::uint64_t last = offsets_.back();
    std::optional<std::uint32_t> word = reader.word_at(last);
    if (!word) return false;
    std::uint64_t end = last + simh::kMarkerBytes;
    if (*word == simh::kTapeMark) {
      if (!is_filemark(offsets_.size() - 1)) return false;
    } else if (simh::word_class(*word) == simh::kClassGood ||
               (simh::word_class(*word) == simh::kClassBad && simh::word_value(*word) > 0)) {
      end = last + simh::record_bytes(simh::word_value(*word));
      std::optional<std::uint32_t> trailer = reader.word_at(end - 4);
      if (!trailer || *trailer != *word) return false;
    } else if (*word != 0x80000000) {  // a bad record with no data is one word
      return false;
    }
    if (end != eod_offset_) return false;
  }
  // Nothing a reader would take for more data may follow.
  std::optional<std::uint32_t> after = reader.word_at(eod_offset_);
  if (!after || *after == simh::kEndOfMedium) return true;
  if (*after == simh::kTapeMark) return false;
  const std::uint32_t cls = simh::word_class(*after);
  if (cls == simh::kClassGood || cls == simh::kClassBad)
    return eod_offset_ + simh::record_bytes(simh::word_value(*after)) > file_size;
  return false;  // gaps or markers, and perhaps data after them: scan
}

ImageIndex ImageIndex::scan(int fd, std::uint64_t file_size, std::uint64_t* reads) {
  ImageIndex index;
  WordReader reader(fd, file_size, reads);
  std::uint64_t pos = 0;
  for (;;) {
    std::optional<std::uint32_t> word = reader.word_at(pos);
    if (!word || *word == simh::kEndOfMedium) break;  // logical end of the tape
    if (*word == simh::kTapeMark) {
      index.append(pos, true, pos + simh::kMarkerBytes);
      pos += simh::kMarkerBytes;
      continue;
    }
    if (*word == simh::kForwardHalfGap) {
      pos += 2;
      continue;
    }
    std::uint32_t cls = simh::word_class(*word);
    std::uint32_t length = simh::word_value(*word);
    if (cls == simh::kClassReservedMarker || cls == simh::kClassPrivateMarker) {
      pos += simh::kMarkerBytes;  // erase gaps and markers we do not interpret
      continue;
    }
    if (cls == simh::kClassBad && length == 0) {
      // "Bad data record, no data recovered": a one-word marker that still
      // stands for a block on the original tape.
      index.append(pos, false, pos + simh::kMarkerBytes);
      pos += simh::kMarkerBytes;
      continue;
    }
    std::uint64_t end = pos + simh::record_bytes(length);
    if (end > file_size) break;  // a record cut short by a crash: not data
    if (cls == simh::kClassGood || cls == simh::kClassBad) index.append(pos, false, end);
    // Classes 1-6 and 9-E are private, reserved or description records:
    // a standard-format reader skips them.
    pos = end;
  }
  index.eod_offset_ = pos;
  return index;
}

}  // namespace mixtape::tape::detail
