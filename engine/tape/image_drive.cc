// ImageDrive: the Drive contract over a SIMH image, plus counters and the
// LTO timing model. Positions are blocks; byte offsets in the image stand in
// for distance along the tape when the model prices a movement.
#include <algorithm>

#include "engine/tape/image_drive.h"
#include "engine/tape/image_medium.h"
#include "engine/tape/tape.h"

namespace mixtape::tape {
namespace {

std::uint64_t distance(std::uint64_t a, std::uint64_t b) {
  return a > b ? a - b : b - a;
}

}  // namespace

void ImageDrive::create(const std::string& path, const ImageGeometry& geometry) {
  detail::create_image(path, geometry);
}

ImageGeometry create_image(const std::string& path, const ImageGeometry& geometry) {
  ImageDrive::create(path, geometry);
  // The geometry as stored, read back the way any later use will read it.
  return ImageDrive::open(path, true)->geometry();
}

std::unique_ptr<ImageDrive> ImageDrive::open(const std::string& path, bool write_protected,
                                             TimingModel timing, const std::string& index_path) {
  auto drive = std::make_unique<ImageDrive>(timing);
  drive->medium_ = std::make_unique<detail::ImageMedium>(path, write_protected, index_path);
  drive->loaded_ = true;
  return drive;
}

ImageDrive::ImageDrive(TimingModel timing) : timing_(timing) {}

ImageDrive::~ImageDrive() = default;

void ImageDrive::insert(const std::string& path, bool write_protected) {
  if (medium_) {
    throw TapeError(TapeErrorKind::kDeviceError,
                    "cannot insert " + path + ": the drive holds " + medium_->path());
  }
  medium_ = std::make_unique<detail::ImageMedium>(path, write_protected);
  loaded_ = false;
  load();
}

std::optional<std::string> ImageDrive::eject() {
  if (!medium_) return std::nullopt;
  unload();
  std::string path = medium_->path();
  reads_of_ejected_ += medium_->reads();
  medium_.reset();
  return path;
}

std::optional<std::string> ImageDrive::image_path() const {
  if (!medium_) return std::nullopt;
  return medium_->path();
}

ImageGeometry ImageDrive::geometry() const {
  if (!medium_) throw TapeError(TapeErrorKind::kNotLoaded, name() + ": no tape in drive");
  return medium_->geometry();
}

std::uint64_t ImageDrive::image_reads() const {
  return reads_of_ejected_ + (medium_ ? medium_->reads() : 0);
}

std::string ImageDrive::name() const {
  return medium_ ? medium_->path() : "empty image drive";
}

detail::ImageMedium& ImageDrive::medium() {
  if (!medium_ || !loaded_) throw TapeError(TapeErrorKind::kNotLoaded, name() + ": no tape loaded");
  return *medium_;
}

std::uint64_t ImageDrive::position_bytes() const {
  return medium_->index().offset(position_);
}

void ImageDrive::move_to(std::uint64_t block) {
  std::uint64_t from = position_bytes();
  position_ = block;
  stats_.tape_seconds += timing_.locate_seconds(distance(from, position_bytes()));
}

WriteResult ImageDrive::write_record(ByteSpan data) {
  return write_record_gathered(std::span<const ByteSpan>(&data, 1));
}

WriteResult ImageDrive::write_record_gathered(std::span<const ByteSpan> pieces) {
  detail::ImageMedium& m = medium();
  std::size_t size = 0;
  for (ByteSpan piece : pieces) size += piece.size();
  if (size == 0 || size > kMaxRecordSize) {
    throw TapeError(TapeErrorKind::kInvalidArgument,
                    name() + ": cannot write a record of " + std::to_string(size) +
                        " bytes (1 to " + std::to_string(kMaxRecordSize) + " allowed)",
                    position_);
  }
  bool early_warning = m.write_record(position_, pieces, size);
  ++position_;
  ++stats_.records_written;
  stats_.bytes_written += size;
  stats_.tape_seconds += timing_.stream_seconds(size);
  return {early_warning};
}

WriteResult ImageDrive::write_filemarks(std::uint32_t count) {
  detail::ImageMedium& m = medium();
  if (count == 0) return {m.in_early_warning(position_bytes())};
  bool early_warning = m.write_filemarks(position_, count);
  position_ += count;
  stats_.filemarks_written += count;
  return {early_warning};
}

ReadResult ImageDrive::read_record(MutableByteSpan buffer) {
  detail::ImageMedium& m = medium();
  if (position_ == m.index().block_count()) return {ReadKind::kEndOfData, 0};
  ReadResult result;
  try {
    result = m.read(position_, buffer);
  } catch (const TapeError& e) {
    // The drive has passed the block either way (st skips a record it
    // cannot deliver), so the caller can carry on with the next one.
    ++position_;
    if (e.kind() == TapeErrorKind::kMediaError) ++stats_.media_errors;
    throw;
  }
  if (result.kind == ReadKind::kEndOfData) {
    // The sidecar index promised blocks the image does not have.
    position_ = m.index().block_count();
    return result;
  }
  ++position_;
  if (result.kind == ReadKind::kFilemark) {
    ++stats_.filemarks_read;
  } else {
    ++stats_.records_read;
    stats_.bytes_read += result.size;
    stats_.tape_seconds += timing_.stream_seconds(result.size);
  }
  return result;
}

void ImageDrive::space_filemarks_forward(std::uint32_t count) {
  detail::ImageMedium& m = medium();
  if (count == 0) return;
  ++stats_.filemark_spaces;
  std::optional<std::uint64_t> mark = m.index().filemark_forward(position_, count);
  move_to(mark ? *mark + 1 : m.index().block_count());
  if (!mark) {
    throw TapeError(TapeErrorKind::kEndOfData,
                    name() + ": end of data at block " + std::to_string(position_) + " before " +
                        std::to_string(count) + " filemark(s)",
                    position_);
  }
}

void ImageDrive::space_filemarks_backward(std::uint32_t count) {
  detail::ImageMedium& m = medium();
  if (count == 0) return;
  ++stats_.filemark_spaces;
  std::optional<std::uint64_t> mark = m.index().filemark_backward(position_, count);
  move_to(mark ? *mark : 0);
  if (!mark) {
    throw TapeError(TapeErrorKind::kBeginningOfTape,
                    name() + ": beginning of tape before " + std::to_string(count) + " filemark(s)",
                    0);
  }
}

void ImageDrive::locate(std::uint64_t block) {
  detail::ImageMedium& m = medium();
  ++stats_.locates;
  const std::uint64_t eod = m.index().block_count();
  move_to(std::min(block, eod));
  if (block > eod) {
    throw TapeError(TapeErrorKind::kEndOfData,
                    name() + ": cannot locate block " + std::to_string(block) +
                        ": end of data is at block " + std::to_string(eod),
                    block);
  }
}

std::uint64_t ImageDrive::tell() {
  medium();
  return position_;
}

void ImageDrive::rewind() {
  medium();
  ++stats_.rewinds;
  stats_.tape_seconds += timing_.rewind_seconds(position_bytes());
  position_ = 0;
}

void ImageDrive::space_to_eod() {
  detail::ImageMedium& m = medium();
  ++stats_.eod_spaces;
  move_to(m.index().block_count());
}

DriveStatus ImageDrive::status() {
  DriveStatus s;
  if (!medium_ || !loaded_) return s;
  s.loaded = true;
  s.bot = position_ == 0;
  s.eod = position_ == medium_->index().block_count();
  s.early_warning = medium_->in_early_warning(position_bytes());
  s.write_protected = medium_->write_protected();
  return s;
}

void ImageDrive::load() {
  if (!medium_) throw TapeError(TapeErrorKind::kNotLoaded, name() + ": no tape in drive");
  // Unloaded, the cartridge left the drive (its image was released); and a
  // changer (mtx driving images) may have put another image at the path.
  // Either way the drive loads what is at its path now.
  if (medium_->released() || medium_->replaced()) {
    const std::string path = medium_->path(), index_path = medium_->index_path();
    const bool write_protected = medium_->write_protected();
    reads_of_ejected_ += medium_->reads();
    medium_.reset();
    medium_ = std::make_unique<detail::ImageMedium>(path, write_protected, index_path);
    loaded_ = false;
  }
  if (loaded_) return;
  loaded_ = true;
  position_ = 0;
  ++stats_.loads;
  stats_.tape_seconds += timing_.load_seconds;
}

void ImageDrive::unload() {
  if (!medium_ || !loaded_) return;
  stats_.tape_seconds += timing_.rewind_seconds(position_bytes()) + timing_.unload_seconds;
  ++stats_.unloads;
  loaded_ = false;
  position_ = 0;
  medium_->release();
}

std::optional<std::uint64_t> ImageDrive::capacity() const {
  if (!medium_) return std::nullopt;
  return geometry().capacity;
}

}  // namespace mixtape::tape
