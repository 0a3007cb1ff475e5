// ImageDrive (a SIMH .tap image) and FaultInjectingDrive (a wrapper that
// injects faults into any drive): Drive implementations private to
// engine/tape and its tests. Front ends open an image with open_drive() or
// make one with create_image() (engine/tape/tape.h).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>

#include "engine/tape/tape.h"

namespace mixtape::tape {

// --------------------------------------------------------------- ImageDrive

namespace detail {
class ImageMedium;
}

// A drive whose cartridge is a SIMH .tap image (docs/TAPE.md). Besides the
// image it keeps "<image>.idx", the position of every block, so locate and
// filemark spacing never scan; a missing, stale or damaged index is rebuilt by
// scanning the image. Reading understands the whole SIMH standard format
// (erase gaps, end-of-medium marker, private records are skipped; bad-data
// records read as media errors; a truncated trailing record is ignored).
class ImageDrive final : public Drive {
 public:
  // Makes a blank image at path (and its .meta). Throws if path exists.
  static void create(const std::string& path, const ImageGeometry& geometry);

  // A drive with the image at path already loaded, at BOT, like a tape that
  // was in the drive when mixtape started (not counted as a load). Its block
  // index is kept at index_path (default "<path>.idx").
  static std::unique_ptr<ImageDrive> open(const std::string& path, bool write_protected = false,
                                          TimingModel timing = {},
                                          const std::string& index_path = {});

  // An empty drive.
  explicit ImageDrive(TimingModel timing = {});
  ImageDrive(const ImageDrive&) = delete;
  ImageDrive& operator=(const ImageDrive&) = delete;
  // Saves the index sidecar.
  ~ImageDrive() override;

  // Puts the image at path into the empty drive, which loads it (a counted
  // load, as LTO drives load on insertion). Another process or drive holding
  // the image writable makes this fail (kDeviceError naming the process).
  // An image that cannot be opened for writing goes in write-protected.
  void insert(const std::string& path, bool write_protected = false);
  // Takes the cartridge out, unloading it first if loaded; returns its path.
  std::optional<std::string> eject();

  // The inserted image, if any.
  std::optional<std::string> image_path() const;
  // Geometry of the inserted image (throws kNotLoaded when empty).
  ImageGeometry geometry() const;
  // pread calls made on image files: lets tests prove locate never scans.
  std::uint64_t image_reads() const;

  std::string name() const override;
  WriteResult write_record(ByteSpan data) override;
  WriteResult write_record_gathered(std::span<const ByteSpan> pieces) override;
  WriteResult write_filemarks(std::uint32_t count = 1) override;
  ReadResult read_record(MutableByteSpan buffer) override;
  void space_filemarks_forward(std::uint32_t count) override;
  void space_filemarks_backward(std::uint32_t count) override;
  void locate(std::uint64_t block) override;
  std::uint64_t tell() override;
  void rewind() override;
  void space_to_eod() override;
  DriveStatus status() override;
  void load() override;
  void unload() override;
  DriveStats stats() const override { return stats_; }
  TimingModel timing() const override { return timing_; }
  std::optional<std::uint64_t> capacity() const override;

 private:
  detail::ImageMedium& medium();  // the loaded medium, or kNotLoaded
  std::uint64_t position_bytes() const;
  void move_to(std::uint64_t block);  // updates position, no counters

  TimingModel timing_;
  DriveStats stats_;
  std::unique_ptr<detail::ImageMedium> medium_;
  bool loaded_ = false;
  std::uint64_t position_ = 0;  // logical block
  std::uint64_t reads_of_ejected_ = 0;
};

// ------------------------------------------------------ FaultInjectingDrive

// Wraps any Drive and injects faults for tests, LevelDB SpecialEnv style.
// With no faults set it passes everything through unchanged.
class FaultInjectingDrive final : public Drive {
 public:
  explicit FaultInjectingDrive(Drive& inner) : inner_(inner) {}

  // Reading block N throws kMediaError naming block N; the record is
  // consumed, so the next read returns block N + 1.
  void add_bad_record(std::uint64_t block) { bad_records_.insert(block); }
  // The tape seems to end at block N: reads there return kEndOfData, spacing
  // and locating stop there. Writes are passed through.
  void set_end_of_data(std::uint64_t block) { end_of_data_ = block; }
  // Writing block N or any later block reports early warning.
  void set_early_warning_at(std::uint64_t block) { early_warning_at_ = block; }
  // Writing block N or any later block is refused with kPhysicalEnd.
  void set_physical_end_at(std::uint64_t block) { physical_end_at_ = block; }
  // A bad spot: a write (record or filemark) that would occupy block N
  // throws kMediaError naming block N and writes nothing, every time.
  void add_bad_write(std::uint64_t block) { bad_writes_.insert(block); }
  // The drive dies after `writes` more successful writes (records or
  // filemark commands): the next write, and every command after it except
  // name(), status() (not loaded) and stats(), throws kDeviceError.
  void fail_after_writes(std::uint64_t writes) { writes_until_failure_ = writes; }
  bool dead() const { return dead_; }
  // Also brings a dead drive back.
  void clear_faults();

  std::string name() const override { return inner_.name(); }
  WriteResult write_record(ByteSpan data) override;
  WriteResult write_filemarks(std::uint32_t count = 1) override;
  ReadResult read_record(MutableByteSpan buffer) override;
  void space_filemarks_forward(std::uint32_t count) override;
  void space_filemarks_backward(std::uint32_t count) override;
  void locate(std::uint64_t block) override;
  std::uint64_t tell() override;
  void rewind() override;
  void space_to_eod() override;
  DriveStatus status() override;
  void load() override;
  void unload() override;
  DriveStats stats() const override { return inner_.stats(); }
  TimingModel timing() const override { return inner_.timing(); }
  std::optional<std::uint64_t> capacity() const override { return inner_.capacity(); }

 private:
  void check_alive() const;
  void check_write(std::uint64_t blocks);
  void count_write();
  WriteResult with_early_warning(WriteResult result);

  Drive& inner_;
  std::set<std::uint64_t> bad_records_;
  std::set<std::uint64_t> bad_writes_;
  std::optional<std::uint64_t> end_of_data_;
  std::optional<std::uint64_t> early_warning_at_;
  std::optional<std::uint64_t> physical_end_at_;
  std::optional<std::uint64_t> writes_until_failure_;
  bool dead_ = false;
};

}  // namespace mixtape::tape
