// engine/tape: everything mixtape knows about tape drives.
//
// Design. Every other module talks to tape through one interface, Drive, in
// the role LevelDB's Env plays for files. Its contract is the behaviour of a
// Linux st drive in variable-block mode (one write() = one record, a read()
// returns one whole record), written down method by method below, and checked
// by one typed GoogleTest suite (tests/tape/drive_contract_test.cc) that runs
// against every implementation:
//
//   ImageDrive          a SIMH .tap image, byte-for-byte readable by any
//                       SIMH-aware tool, with an index sidecar for O(1) locate,
//                       and a timing model of an LTO-6 drive (tape_seconds).
//   StDrive             /dev/nstN through the TapeSyscalls seam; tested
//                       against an in-memory emulation of the st driver that
//                       fails as st does on real hardware.
//   FaultInjectingDrive a wrapper around any Drive that injects bad records,
//                       premature end of data and end of medium (LevelDB's
//                       SpecialEnv).
//
// Libraries hand out drives with a tape loaded: ImageLibrary (a folder of
// images), MtxChanger (a SCSI changer through mtx), ManualChanger (an
// operator and one drive) and SingleDriveLibrary (one drive and whatever tape
// is in it). RecordWriter and TapeFileReader adapt a drive to the
// ByteSink/ByteSource pipelines of engine/common.
//
// This header is the contract; the implementations are private to the module
// and its tests (image_drive.h, st_drive.h, libraries.h), as LevelDB keeps
// PosixEnv behind Env::Default(). Everyone else gets a drive from
// open_drive(), a library from open_library() or single_drive_library(), and
// a new image from create_image().
//
// Positions are logical blocks as in SCSI: block 0 is the beginning of tape
// (BOT), every record and every filemark occupies one block, and end of data
// (EOD) is the block after the last one written. The tape format that sits on
// top of this is docs/FORMAT.md; the image format, the timing model and the
// st mapping are docs/TAPE.md.
//
// Threads: a Drive is used by one thread at a time (recalls run one worker per
// drive). Errors are TapeError with a kind callers can act on, and a message
// naming the drive and block, e.g. "L00042.tap: media error reading block 1234".
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/common/common.h"

namespace mixtape::tape {

// The largest record any drive holds: SCSI READ(6)/WRITE(6) transfer lengths
// and SIMH record lengths have 24 bits. Linux st refuses (EINVAL) a read or
// write larger than the drive's maximum block length from READ BLOCK LIMITS,
// which is at most this (IBM LTO drives report 8 MiB).
inline constexpr std::size_t kMaxRecordSize = 0xFFFFFF;
// The largest record size mixtape chooses for a catalog or a new tape: every
// LTO drive and every HBA transfers 1 MiB in one command (docs/TAPE.md,
// "Record size"). Older tapes may have larger records; they are still read.
inline constexpr std::size_t kMaxWriteRecordSize = std::size_t{1} << 20;
// A read buffer for a tape whose record size is not known yet (file 0 before
// its label is read, `tape cat`): it holds any record. StDrive never asks st
// for more than the drive accepts (it learns that from st's EINVAL), so this
// is safe on every drive.
inline constexpr std::size_t kProbeReadSize = kMaxRecordSize;

// Native capacity of an LTO-6 cartridge: the default size of new images.
inline constexpr std::uint64_t kLto6NativeBytes = 2'500'000'000'000ULL;

// ------------------------------------------------------------------ errors

enum class TapeErrorKind {
  kMediaError,       // a record could not be read or written (EIO); bad record
  kEndOfData,        // spacing or locating ran into end of data
  kBeginningOfTape,  // spacing backward ran into BOT
  kPhysicalEnd,      // the medium is full: the write was refused (ENOSPC)
  kRecordTooLarge,   // the read buffer is smaller than the record (ENOMEM)
  kWriteProtected,   // write to a protected tape (EACCES)
  kNotLoaded,        // no tape in the drive (ENOMEDIUM)
  kInvalidArgument,  // empty or oversized record, bad serial, bad geometry
  kTimeout,          // the operator did not insert the tape in time, or the
                     // drive did not become ready
  // The drive cannot say where the tape is, or stopped answering: a bus or
  // device reset (st refuses reads and writes until the tape is
  // repositioned), or NOT READY in the middle of a session. Nothing is known
  // to be wrong with the medium: what was written before the last filemark
  // is on it, records after it may not be. Not a full tape, not end of data.
  kPositionLost,
  kDeviceError,  // anything else: system errors, changer failures
};

std::string_view to_string(TapeErrorKind kind);

class TapeError : public Error {
 public:
  TapeError(TapeErrorKind kind, const std::string& message,
            std::optional<std::uint64_t> block = std::nullopt)
      : Error(message), kind_(kind), block_(block) {}
  TapeErrorKind kind() const { return kind_; }
  // The logical block concerned, when there is one.
  std::optional<std::uint64_t> block() const { return block_; }

 private:
  TapeErrorKind kind_;
  std::optional<std::uint64_t> block_;
};

// A tape another process or drive is using (an image locked by another
// mixtape command or mount): kDeviceError; holder() says who, as far as it
// can be told ("process 1234 (mount.mixtape ...)"), else empty.
class TapeInUseError : public TapeError {
 public:
  TapeInUseError(const std::string& message, std::string holder)
      : TapeError(TapeErrorKind::kDeviceError, message), holder_(std::move(holder)) {}
  const std::string& holder() const { return holder_; }

 private:
  std::string holder_;
};

// -------------------------------------------------------- status, counters

struct DriveStatus {
  bool loaded = false;  // a tape is in the drive, ready
  // A tape is in the drive but the drive is not ready yet (loading, or
  // calibrating a new cartridge): load() waits for it.
  bool becoming_ready = false;
  bool bot = false;              // positioned at block 0
  bool eod = false;              // the drive knows it is at end of data
  bool early_warning = false;    // positioned in the early-warning zone
  bool write_protected = false;  // writes will be refused
};

// What a drive did. Counters count commands (a locate to the current block
// is still a locate); tape_seconds is what a real drive would have spent
// (ImageDrive: the TimingModel; StDrive: measured time in the driver).
struct DriveStats {
  std::uint64_t loads = 0;
  std::uint64_t unloads = 0;
  std::uint64_t locates = 0;
  std::uint64_t filemark_spaces = 0;  // space_filemarks_* calls
  std::uint64_t eod_spaces = 0;       // space_to_eod calls
  std::uint64_t rewinds = 0;
  std::uint64_t records_read = 0;
  std::uint64_t records_written = 0;
  std::uint64_t bytes_read = 0;
  std::uint64_t bytes_written = 0;
  std::uint64_t filemarks_read = 0;
  std::uint64_t filemarks_written = 0;
  std::uint64_t media_errors = 0;
  double tape_seconds = 0;

  DriveStats& operator+=(const DriveStats& other);
  // One JSON object with every field above (--stats-json, .mixtape/stats).
  std::string to_json() const;
};

// The time model of ImageDrive: published LTO-6 figures. Every duration an
// image drive reports comes from these numbers, so benchmarks can state what
// a real drive would have spent. docs/TAPE.md explains the calibration.
struct TimingModel {
  double stream_bytes_per_second = 160e6;  // LTO-6 native transfer rate
  double load_seconds = 12;                // load and thread to BOT
  double unload_seconds = 17;              // unload from BOT (rewind is extra)
  // locate (and filemark spacing) over d bytes of tape takes
  // locate_base_seconds + d / locate_bytes_per_second: on a full 2.5 TB tape
  // the average locate from BOT (d = 1.25 TB) is 10 + 50 = 60 s.
  double locate_base_seconds = 10;
  double locate_bytes_per_second = 25e9;
  double full_rewind_seconds = 60;  // rewind from the end of a full tape
  // Bytes on a full tape: converts byte positions into tape length.
  std::uint64_t tape_bytes = kLto6NativeBytes;

  double stream_seconds(std::uint64_t bytes) const;
  // 0 for no movement, else base + distance / speed.
  double locate_seconds(std::uint64_t distance_bytes) const;
  // Proportional to the position: full_rewind_seconds from tape_bytes.
  double rewind_seconds(std::uint64_t position_bytes) const;
  // Up to this many bytes ahead, reading forward is no slower than a
  // locate (LTO-6: about 1.6 GB); the maximum when a locate never wins.
  std::uint64_t read_forward_break_even() const;
};

// ----------------------------------------------------------- RecordBuffer

// A page-aligned buffer for tape records. st maps a user buffer straight into
// the SCSI command (direct I/O) when the HBA has a scatter-gather entry for
// each of its pages: 128 pages for an aligned 512 KiB record, 129 for an
// unaligned one. Without direct I/O st copies the record through its own
// buffer and writes asynchronously: a write's error then comes back with the
// next call. Readers read into one of these; StDrive copies a caller's
// unaligned record into its own before writing it. The memory is not
// initialised.
class RecordBuffer {
 public:
  RecordBuffer() = default;
  explicit RecordBuffer(std::size_t size) { resize(size); }
  // Makes room for size bytes; the contents are then unspecified.
  void resize(std::size_t size);
  std::size_t size() const { return size_; }
  std::uint8_t* data() { return data_.get(); }
  const std::uint8_t* data() const { return data_.get(); }
  MutableByteSpan span() { return {data_.get(), size_}; }
  MutableByteSpan first(std::size_t n) { return span().first(n); }

 private:
  struct Free {
    void operator()(std::uint8_t* p) const;
  };
  std::unique_ptr<std::uint8_t[], Free> data_;
  std::size_t size_ = 0;
};

// The size of a memory page (the alignment of RecordBuffer).
std::size_t page_size();
// Whether data starts on a page boundary.
bool page_aligned(const void* data);

// ------------------------------------------------------------------ Drive

enum class ReadKind { kData, kFilemark, kEndOfData };

struct ReadResult {
  ReadKind kind = ReadKind::kEndOfData;
  std::size_t size = 0;  // bytes of the record for kData, else 0
};

struct WriteResult {
  // The write completed and the tape is now in the early-warning zone:
  // finish the current tape file (trailer, index, filemark) and stop.
  bool early_warning = false;
};

// A tape drive. Methods other than name(), status(), load() and stats() throw
// TapeError(kNotLoaded) when no tape is loaded.
class Drive {
 public:
  virtual ~Drive() = default;

  // The image path or device node, for messages.
  virtual std::string name() const = 0;

  // Writes one record of 1..kMaxRecordSize bytes at the current position and
  // moves past it. Writing anywhere but at EOD discards everything after the
  // position first, as on tape. The write that crosses into the
  // early-warning zone, and every write after it, completes and returns
  // early_warning; a write that would not fit before the physical end is
  // refused with kPhysicalEnd and changes nothing. kWriteProtected if
  // protected; kInvalidArgument for an empty or oversized record, or one the
  // drive refuses (larger than its maximum block length). A write that fails
  // names the first block that is not on the tape: kMediaError, or
  // kPositionLost when the drive lost its position (a reset), which says
  // nothing about the medium.
  virtual WriteResult write_record(ByteSpan data) = 0;
  // write_record() of the concatenation of `pieces`, for a record that
  // straddles the caller's buffers. A drive that can gather (an image file:
  // pwritev) spares the copy the default makes.
  virtual WriteResult write_record_gathered(std::span<const ByteSpan> pieces);

  // Writes count filemarks (each one block) like write_record; a filemark
  // ends a tape file. count 0 writes nothing. Filemarks are a sync point:
  // everything written before is on the medium when this returns.
  virtual WriteResult write_filemarks(std::uint32_t count = 1) = 0;

  // Reads the object at the current position and moves past it:
  //  - a record: copied whole into buffer, kData with its size;
  //  - a filemark: kFilemark, reported once (the next read is the next file);
  //  - end of data: kEndOfData, the position stays at EOD. Only where the
  //    drive confirms it: an error that leaves the tape where it was is not
  //    end of data (a blank tape is one whose end of data is at block 0).
  // A record larger than buffer throws kRecordTooLarge (st's ENOMEM); like
  // st, the record is skipped. A record that cannot be read throws
  // kMediaError naming its block; the position is after it, so reading can
  // continue with the next record. kPositionLost when the drive cannot say
  // where it is. buffer may be larger than the drive reads at once: a drive
  // reads into as much of it as it accepts.
  virtual ReadResult read_record(MutableByteSpan buffer) = 0;

  // MTFSF: moves forward over count filemarks, leaving the position just
  // after the count-th one (the first block of a later file). If end of data
  // comes first, the position is EOD and kEndOfData is thrown.
  virtual void space_filemarks_forward(std::uint32_t count) = 0;

  // MTBSF: moves backward over count filemarks, leaving the position just
  // before (on the BOT side of) the count-th filemark met going back. If BOT
  // comes first, the position is BOT and kBeginningOfTape is thrown.
  virtual void space_filemarks_backward(std::uint32_t count) = 0;

  // Moves to logical block `block` (0 = BOT; EOD is a valid target, which is
  // how appending starts). Beyond EOD: kEndOfData, position at EOD.
  virtual void locate(std::uint64_t block) = 0;

  // The current logical block.
  virtual std::uint64_t tell() = 0;

  virtual void rewind() = 0;

  // Moves to end of data, where the next write appends.
  virtual void space_to_eod() = 0;

  // Never throws kNotLoaded: status().loaded says whether a tape is there.
  virtual DriveStatus status() = 0;

  // Loads the tape in the drive and positions at BOT; a no-op if loaded.
  // kNotLoaded if there is no tape to load.
  virtual void load() = 0;
  // Rewinds and unloads the tape; a no-op if none is loaded.
  virtual void unload() = 0;

  // Counters since the drive object was created (they survive tape swaps).
  virtual DriveStats stats() const = 0;

  // What streaming and locating cost on this drive, for callers choosing
  // between reading forward and a locate. ImageDrive: the model it charges;
  // a drive that does not know its own: LTO-6's published figures.
  virtual TimingModel timing() const { return {}; }

  // The capacity of the loaded medium in bytes, when the drive knows it (an
  // image: its geometry); nullopt otherwise (a real drive: the operator's
  // figure is all there is).
  virtual std::optional<std::uint64_t> capacity() const { return std::nullopt; }
};

// ------------------------------------------------------------ image geometry

// Size and early-warning zone of an image, fixed when it is created and
// stored in the "<image>.meta" sidecar, since the .tap itself stays pure SIMH.
// Both count image bytes (SIMH length words included).
struct ImageGeometry {
  std::uint64_t capacity = kLto6NativeBytes;
  // Bytes before the physical end where early warning starts; 0 chooses the
  // default, capacity / 64.
  std::uint64_t early_warning = 0;
};

// ---------------------------------------------------------------- libraries

// Slots and drives: hands out drives with a requested tape loaded.
class Library {
 public:
  virtual ~Library() = default;
  virtual std::size_t drive_count() const = 0;
  virtual Drive& drive(std::size_t index) = 0;
  // Serials of the tapes the library can load right now (slots and drives).
  virtual std::vector<std::string> serials() = 0;
  // Loads tape `serial` into drive `index` (unloading what is there) and
  // returns the drive at BOT.
  virtual Drive& load(const std::string& serial, std::size_t index = 0) = 0;
  // Unloads drive `index` back to its slot; a no-op if it is empty.
  virtual void unload(std::size_t index = 0) = 0;
  // The tape in drive `index`, if known.
  virtual std::optional<std::string> loaded_serial(std::size_t index = 0) const = 0;
  // Counters summed over every drive since the library was made.
  virtual DriveStats stats() const = 0;
};

// Throws kInvalidArgument unless serial is 1-32 of [A-Za-z0-9_-] (serials
// become file names and mtx arguments).
void check_serial(std::string_view serial);

// Reads the serial from the label (tape file 0) of the tape in a drive;
// nullopt for a blank tape; throws for a foreign one. Provided by the label
// module.
using SerialReader = std::function<std::optional<std::string>(Drive&)>;

// ------------------------------------------------------- record streaming

// A ByteSink that cuts a byte stream into records of record_size bytes (the
// last one shorter) and writes them to the drive; close() writes the last
// record and the filemark that ends the tape file. Early warning does not
// throw: the pipeline checks early_warning() and closes its archive cleanly.
// Running into the physical end throws TapeError(kPhysicalEnd).
class RecordWriter final : public ByteSink {
 public:
  RecordWriter(Drive& drive, std::size_t record_size);
  void write(ByteSpan data) override;
  // Whole records are written from `data` itself, and so is a short tail:
  // it is kept (with `owner`) until the next bytes complete its record.
  void write_shared(ByteSpan data, const std::shared_ptr<const void>& owner) override;
  void close() override;

  bool early_warning() const { return early_warning_; }
  std::uint64_t bytes_written() const { return bytes_written_; }
  std::uint64_t records_written() const { return records_written_; }

 private:
  void write_out(ByteSpan record);
  void write_out(std::span<const ByteSpan> record);
  void copy_held();

  Drive& drive_;
  std::size_t record_size_;
  RecordBuffer buffer_;  // the start of the next record, copied (page-aligned); or:
  std::size_t buffered_ = 0;
  ByteSpan held_;  // the start of the next record, in the writer's buffer
  std::shared_ptr<const void> held_owner_;
  bool early_warning_ = false;
  bool closed_ = false;
  std::uint64_t bytes_written_ = 0;
  std::uint64_t records_written_ = 0;
};

// A ByteSource over the rest of the current tape file: the bytes of its
// records up to the filemark, which it consumes (so the drive is then at the
// next file). buffer_size must be at least the tape's record size (give the
// record size when it is known: a page-aligned buffer of that size is what
// st transfers straight into); the default holds any record.
class TapeFileReader final : public ByteSource {
 public:
  explicit TapeFileReader(Drive& drive, std::size_t buffer_size = kProbeReadSize);
  std::size_t read(MutableByteSpan out) override;

  // The file ended at end of data rather than at a filemark.
  bool ended_at_eod() const { return ended_at_eod_; }
  std::uint64_t records_read() const { return records_read_; }
  std::uint64_t bytes_read() const { return bytes_read_; }

 private:
  Drive& drive_;
  std::size_t buffer_size_;
  RecordBuffer buffer_;  // allocated on first use: direct reads into large spans need none
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
  bool ended_ = false;
  bool ended_at_eod_ = false;
  std::uint64_t records_read_ = 0;
  std::uint64_t bytes_read_ = 0;
};

// ------------------------------------------------------ tape-level checks

// Whether the tape in `drive` is blank: rewinds and reads block 0, which must
// be end of data as the drive confirms it. A first record that cannot be
// read is an error (thrown), never a blank tape. Leaves the drive at BOT.
bool tape_is_blank(Drive& drive);

// The first-contact self-test, run on a new tape before its label is
// written: at BOT, two records and a filemark, then tell() must be 3 and the
// records must read back whole, followed by the filemark. It catches a drive
// that st does not drive the way mixtape needs (fixed-block mode, block
// addresses that are not logical, records cut or merged). Throws
// TapeError(kDeviceError) saying what differed. Leaves the drive at BOT; the
// label is written over the test.
void first_contact_test(Drive& drive);
// Whether the tape holds exactly what first_contact_test writes and nothing
// else (a labelling cut short right after it): as good as blank. Leaves the
// drive at BOT.
bool holds_only_first_contact_test(Drive& drive);

// ------------------------------------------------------------ open_drive

struct OpenDriveOptions {
  bool read_only = false;
  // Where a tape device says what it waits for (StDriveOptions::notice).
  std::function<void(const std::string&)> notice;
  bool create_if_missing = false;  // images only: make a blank image
  ImageGeometry geometry;          // of a newly made image
  TimingModel timing;
  // Images only: where the block index is kept (default "<image>.idx";
  // a found tape's goes to the mount's cache folder instead).
  std::string index_path;
};

// A character device (or a missing "/dev/..." path that is not a .tap) opens
// an StDrive with the real system calls; anything else is a .tap image (the
// ImageDrive::open semantics), so images on /dev/shm work too.
std::unique_ptr<Drive> open_drive(const std::string& device, const OpenDriveOptions& options = {});

// Makes a blank image at path (and its .meta sidecar); throws if path exists.
// Returns the geometry the image was made with, early warning resolved (0
// in `geometry` chooses capacity / 64). `mixtape tape mkimage`.
ImageGeometry create_image(const std::string& path, const ImageGeometry& geometry);

// ------------------------------------------------------------ from flags

// Opens a drive again after a library released it.
using DriveOpener = std::function<std::unique_ptr<Drive>()>;

// One drive and whatever tape is in it (`--device`): its serial comes from
// the label; a blank tape answers to any serial, so a writer can label it.
// Asking for another serial than the label's is an error telling the
// operator which tape to insert. With `reopen`, unload() closes the device
// (or image), so that another process may use it, and the next use opens
// it again with reopen(); without, unload() does nothing.
std::unique_ptr<Library> single_drive_library(std::unique_ptr<Drive> drive,
                                              SerialReader read_serial, DriveOpener reopen = {});

// What --device / --library / --changer name (cli.md), and mount -o alike.
struct LibrarySpec {
  // A drive or .tap image. With a changer: its drives' devices, comma
  // separated, in data transfer element order (/dev/nst0,/dev/nst1); mtx
  // status must list at least that many drives.
  std::string device;
  std::string library;           // a folder of <serial>.tap images
  std::string changer;           // /dev/sgN, driven with mtx
  std::size_t drives = 1;        // of an image library
  ImageGeometry blank_geometry;  // of images made on demand
  bool read_only = false;
  // An image library's: see ImageLibraryOptions (libraries.h).
  std::chrono::milliseconds busy_wait{0};
  std::function<void(const std::string&)> on_wait;
  // Where tape devices say what they wait for (StDriveOptions::notice).
  std::function<void(const std::string&)> notice;
};

// Exactly one of device or library (or changer with device); throws
// TapeError(kInvalidArgument) otherwise. A read-only spec never makes
// anything: a missing library folder is kNotLoaded ("no tape library at
// DIR"), and so is a missing image. A single drive can be released
// (unload) and is opened again when next used, as single_drive_library's.
std::unique_ptr<Library> open_library(const LibrarySpec& spec, SerialReader read_serial);

}  // namespace mixtape::tape
