// StDrive: the Drive contract over a Linux st tape (/dev/nstN), and the
// system calls it makes (TapeSyscalls), so it runs without hardware over
// EmulatedStDevice. Private to engine/tape and its tests: front ends open a
// tape device with open_drive() (engine/tape/tape.h).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "engine/tape/tape.h"

// <sys/mtio.h> structures, used by the TapeSyscalls seam.
struct mtop;
struct mtget;
struct mtpos;

namespace mixtape::tape {

// The system calls StDrive makes, so it can run without hardware. Each method
// behaves as the system call it names: -1 with errno set on failure.
class TapeSyscalls {
 public:
  virtual ~TapeSyscalls() = default;
  virtual int open(const std::string& path, int flags) = 0;
  virtual int close(int fd) = 0;
  virtual ssize_t read(int fd, void* buffer, std::size_t size) = 0;
  virtual ssize_t write(int fd, const void* data, std::size_t size) = 0;
  virtual int ioctl_op(int fd, const mtop& operation) = 0;  // MTIOCTOP
  virtual int ioctl_get(int fd, mtget& status) = 0;         // MTIOCGET
  virtual int ioctl_pos(int fd, mtpos& position) = 0;       // MTIOCPOS
  // The text of st's sysfs attribute `name` for the device at path
  // (/sys/class/scsi_tape/nst0/options for /dev/nst0); nullopt if there is
  // none to read.
  virtual std::optional<std::string> driver_attribute(const std::string& path,
                                                      const std::string& name) = 0;
};

// The real thing: ::open, ::read, ::write, ::ioctl, and sysfs.
class SystemTapeSyscalls final : public TapeSyscalls {
 public:
  int open(const std::string& path, int flags) override;
  int close(int fd) override;
  ssize_t read(int fd, void* buffer, std::size_t size) override;
  ssize_t write(int fd, const void* data, std::size_t size) override;
  int ioctl_op(int fd, const mtop& operation) override;
  int ioctl_get(int fd, mtget& status) override;
  int ioctl_pos(int fd, mtpos& position) override;
  std::optional<std::string> driver_attribute(const std::string& path,
                                              const std::string& name) override;
};

// How an StDrive talks to its operator and how long it waits.
struct StDriveOptions {
  // Open O_RDONLY: writes then fail with kWriteProtected.
  bool read_only = false;
  // Lines for the operator: waiting for the drive to become ready, st
  // options that look wrong. Empty: said nowhere.
  std::function<void(const std::string&)> notice;
  // A drive answers NOT READY for seconds to minutes after a cartridge is
  // loaded, and for 20 minutes to 2 hours while it calibrates a new LTO-9
  // cartridge. load() and the first command on a newly loaded tape wait
  // this long for it, looking every ready_poll and saying so every
  // ready_report; then kTimeout.
  std::chrono::seconds ready_timeout{std::chrono::minutes(150)};
  std::chrono::seconds ready_poll{10};
  std::chrono::seconds ready_report{std::chrono::minutes(5)};
  // The clock of those waits (tests replace both); empty: steady_clock and
  // std::this_thread::sleep_for.
  std::function<std::chrono::steady_clock::time_point()> now;
  std::function<void(std::chrono::steady_clock::duration)> sleep;
};

// A Linux SCSI tape (/dev/nstN: the non-rewinding node) in variable-block
// mode (MTSETBLK 0) with SCSI-2 logical block addresses (MT_ST_SCSI2LOGICAL:
// set when running as root, else it must be set already, or StDrive refuses
// the drive). docs/TAPE.md maps every method to the st ioctls and explains
// how st's quirks are hidden: the ENOSPC alternation after early warning,
// reads of 0 bytes meaning filemark or EOD, EIO that leaves the tape where
// it was (end of data only when the drive confirms it), reads larger than
// the drive's maximum block length (EINVAL: read less), a drive that is not
// ready yet (wait for it), a reset (kPositionLost), asynchronous writes
// whose status comes back with the next call (each write is settled before
// write_record returns), and the filemark st adds on its own before
// repositioning after a write (StDrive flushes with MTWEOF 0 instead, so
// the contract's "no implicit filemarks" holds).
class StDrive final : public Drive {
 public:
  // Opens device through syscalls, which must outlive the drive.
  StDrive(std::string device, TapeSyscalls& syscalls, StDriveOptions options = {});
  // Opens device with the real system calls.
  explicit StDrive(std::string device, StDriveOptions options = {});
  StDrive(const StDrive&) = delete;
  StDrive& operator=(const StDrive&) = delete;
  ~StDrive() override;

  std::string name() const override { return device_; }
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

  // The most StDrive asks st to read at once: kMaxRecordSize until st
  // refuses a read as larger than the drive's maximum block length.
  std::size_t read_limit() const { return read_limit_; }

 private:
  class Fd;  // the open device, closed through the seam
  enum class Readiness { kReady, kNotReady, kNoTape };
  void open_device();
  void reopen_device();
  int fd();
  unsigned long query_gstat();
  std::uint64_t query_position();
  std::optional<std::uint64_t> try_position();
  Readiness look();
  Readiness wait_until_ready(Readiness now);
  void ensure_ready();
  void configure();
  void check_driver_options();
  int operation(short op, int count);
  void flush_writes();
  WriteResult write_block(ByteSpan record);
  void settle_write(std::uint64_t block);
  std::optional<ReadResult> read_failed(std::uint64_t block, bool may_relocate);
  [[noreturn]] void write_failed(std::uint64_t block, int error);
  [[noreturn]] void position_lost(const std::string& what, int error,
                                  std::optional<std::uint64_t> block);
  void say(const std::string& line);
  std::chrono::steady_clock::time_point clock_now() const;
  [[noreturn]] void fail(TapeErrorKind kind, const std::string& what, int error,
                         std::optional<std::uint64_t> block = std::nullopt);

  std::string device_;
  std::unique_ptr<TapeSyscalls> owned_syscalls_;
  TapeSyscalls& sys_;
  StDriveOptions options_;
  std::unique_ptr<Fd> fd_;
  bool read_only_ = false;        // opened O_RDONLY (asked for, or a protected tape)
  bool configured_ = false;       // MTSETBLK 0 done for the tape in the drive
  bool options_checked_ = false;  // st's options looked at (once per drive)
  bool unflushed_write_ = false;  // st would add a filemark before moving
  bool at_eod_ = false;
  bool in_early_warning_ = false;
  std::optional<std::uint64_t> position_;
  std::size_t read_limit_ = kMaxRecordSize;
  RecordBuffer bounce_;  // aligned copies of records the caller's memory holds unaligned
  DriveStats stats_;
};

}  // namespace mixtape::tape
