// The block index of a SIMH image: the file offset of every logical block,
// so ImageDrive locates and spaces without reading the image. Private to
// engine/tape.
//
// The index lives in memory while an image is loaded and is saved next to the
// image as "<image>.idx" (format in docs/TAPE.md). The sidecar is only a
// cache: it records the size and mtime of the image it describes, and a
// missing, stale or damaged sidecar is replaced by scanning the image.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mixtape::tape::detail {

// What an index must match to be trusted for an image file.
struct ImageFingerprint {
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
  // Set by the kernel on every change (touch cannot set it), and the file
  // itself: a sidecar copied from another image, or made before the image
  // was last changed, does not match.
  std::int64_t ctime_ns = 0;
  std::uint64_t inode = 0;
  bool operator==(const ImageFingerprint&) const = default;
};

class ImageIndex {
 public:
  std::uint64_t block_count() const { return offsets_.size(); }
  // File offset of `block`; block_count() gives the end-of-data offset.
  std::uint64_t offset(std::uint64_t block) const;
  std::uint64_t eod_offset() const { return eod_offset_; }
  bool is_filemark(std::uint64_t block) const;

  // Forgets `block` and everything after it; EOD becomes its offset.
  void truncate(std::uint64_t block);
  // Adds a block at the end, at `offset`, whose object ends at end_offset.
  void append(std::uint64_t offset, bool filemark, std::uint64_t end_offset);

  // The block of the n-th filemark (n >= 1) at or after `block`.
  std::optional<std::uint64_t> filemark_forward(std::uint64_t block, std::uint64_t n) const;
  // The block of the n-th filemark before `block`, counting backward.
  std::optional<std::uint64_t> filemark_backward(std::uint64_t block, std::uint64_t n) const;

  // Writes the sidecar atomically (temporary file, then rename).
  void save(const std::string& path, const ImageFingerprint& fingerprint) const;
  // The sidecar at path, if it exists, is intact and matches fingerprint.
  static std::optional<ImageIndex> load(const std::string& path,
                                        const ImageFingerprint& fingerprint);
  // Whether the index ends where the image's data ends: its last block
  // ends at its end of data, and nothing readable follows there (a record
  // cut short or an end-of-medium marker may). A few preads, counted in
  // *reads.
  bool ends_where_image_ends(int fd, std::uint64_t file_size, std::uint64_t* reads) const;
  // Builds the index by reading the image with the SIMH standard-format rules
  // (docs/TAPE.md); *reads counts the preads.
  static ImageIndex scan(int fd, std::uint64_t file_size, std::uint64_t* reads);

 private:
  std::vector<std::uint64_t> offsets_;
  std::vector<std::uint64_t> filemarks_;  // block numbers, ascending
  std::uint64_t eod_offset_ = 0;
};

}  // namespace mixtape::tape::detail
