// One SIMH image opened as a tape cartridge: the .tap file, its geometry
// (.meta sidecar) and its block index (.idx sidecar). ImageDrive owns the
// position and the counters; this class owns the bytes. Private to
// engine/tape.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "engine/common/common.h"
#include "engine/tape/image_index.h"
#include "engine/tape/tape.h"

namespace mixtape::tape::detail {

// Makes an empty image and its .meta; throws if the image exists.
void create_image(const std::string& path, const ImageGeometry& geometry);
// The geometry with defaults resolved (early warning 0 -> capacity / 64).
ImageGeometry resolve_geometry(const ImageGeometry& geometry);

class ImageMedium {
 public:
  // Opens and locks the image (shared when write-protected, else exclusive)
  // and loads or rebuilds its index, kept at index_path (default
  // "<image>.idx"). An image that cannot be opened for writing (a read-only
  // file system, a 0444 file) is opened write-protected, like a cartridge
  // with its write-protect tab set: it reads, and refuses writes.
  ImageMedium(std::string path, bool write_protected, std::string index_path = {});
  ImageMedium(const ImageMedium&) = delete;
  ImageMedium& operator=(const ImageMedium&) = delete;
  // Saves the index if it changed; never throws (the index is a cache).
  ~ImageMedium();

  const std::string& path() const { return path_; }
  const std::string& index_path() const { return index_path_; }
  const ImageGeometry& geometry() const { return geometry_; }
  bool write_protected() const { return write_protected_; }
  const ImageIndex& index() const { return index_; }
  std::uint64_t reads() const { return reads_; }

  // Reads the object at `block` (< block_count) into buffer. Throws
  // kMediaError for bad or damaged records, kRecordTooLarge if it does not
  // fit; the caller moves past the block either way, as st does. An index
  // from the sidecar that proves not to match the image here is rebuilt
  // first: kEndOfData if the image has no such block after all.
  ReadResult read(std::uint64_t block, MutableByteSpan buffer);

  // Write at `block`, first discarding it and every later block. Return
  // whether the write ended in the early-warning zone. kPhysicalEnd (and no
  // change) if it would not fit.
  bool write_record(std::uint64_t block, std::span<const ByteSpan> pieces, std::size_t size);
  bool write_filemarks(std::uint64_t block, std::uint32_t count);

  bool in_early_warning(std::uint64_t offset) const;
  void save_index_quietly() noexcept;

  // Closes the image, its index saved: the cartridge left the drive, and
  // its lock goes with it. Only path(), index_path() and the counters are
  // used after that.
  void release() noexcept;
  bool released() const { return !fd_.valid(); }
  // Whether the file at path() is no longer the one opened (or there is
  // none): a changer took this cartridge out and put another in its place.
  bool replaced() const;

 private:
  ImageFingerprint fingerprint() const;
  // read(), or nullopt when the block shows the index is not the image's.
  std::optional<ReadResult> read_at(std::uint64_t block, MutableByteSpan buffer);
  void prepare_write(std::uint64_t block, std::uint64_t bytes, const char* what);
  [[noreturn]] void fail(TapeErrorKind kind, const std::string& what, std::uint64_t block) const;

  std::string path_;
  std::string index_path_;
  UniqueFd fd_;
  bool write_protected_;
  ImageGeometry geometry_;
  ImageIndex index_;
  std::uint64_t file_size_ = 0;
  std::uint64_t reads_ = 0;
  bool index_dirty_ = false;
  // Built from the image in this process, or kept up by its own writes:
  // nothing to check it against.
  bool index_scanned_ = false;
};

}  // namespace mixtape::tape::detail
