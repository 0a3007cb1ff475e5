// An in-memory emulation of a tape drive behind the Linux st driver, as seen
// through the TapeSyscalls seam: StDrive's stand-in for hardware in tests.
// Private to engine/tape (tests include it; front ends never do).
//
// It follows drivers/scsi/st.c in variable-block mode: its eof state machine
// (ST_NOEOF ... ST_EOD), reads of 0 bytes at filemarks and at the first blank
// check after one, ENOMEM for short buffers (skipping the record), the ENOSPC
// alternation after early warning, the filemark st writes by itself before
// MTREW/MTOFFL/MTSEEK/MTBSF and at close after a write, GMT_* status bits as
// st computes them, and "ready" being re-checked only at open() and MTLOAD.
//
// And it fails the way st fails on real hardware (docs/TAPE.md, "First
// contact"): reads and writes larger than the drive's maximum block length
// are refused with EINVAL (rw_checks); a cartridge can take a number of
// looks before it is ready (NOT READY: O_NONBLOCK opens show neither
// GMT_ONLINE nor GMT_DR_OPEN, MTLOAD fails with EIO); a bus reset leaves
// st's position unknown (reads, writes and most ioctls fail with EIO until
// MTREW/MTSEEK/MTEOM/MTOFFL/MTLOAD); a drive can turn NOT READY mid-session;
// records can be DATA PROTECT (EIO without moving) and blocks bad to write;
// a write whose buffer st cannot map for direct I/O (not 512-aligned, or more
// pages than the HBA's scatter-gather entries) goes through st's buffer and,
// with async writes on, returns at once: its status comes back with the next
// call, MTIOCGET included. st's options show in sysfs as in
// /sys/class/scsi_tape/nstN/options.
// Thread-safe, so a test can play the operator from another thread.
#pragma once

#include <sys/mtio.h>

#include <cstdint>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "engine/common/common.h"
#include "engine/tape/st_drive.h"

namespace mixtape::tape {

struct EmulatedBlock {
  // kProtected: a record the drive refuses to read without moving (DATA
  // PROTECT: encrypted, and the drive has no key).
  enum class Kind { kRecord, kFilemark, kBadRecord, kProtected };
  Kind kind = Kind::kRecord;
  Bytes data;
};

struct EmulatedCartridge {
  std::vector<EmulatedBlock> blocks;
  // Counted like a SIMH image (record: 8 + even length; filemark: 4), so a
  // capacity means the same thing for both drives.
  std::uint64_t capacity = std::uint64_t{64} << 20;
  std::uint64_t early_warning = std::uint64_t{1} << 20;
  bool write_protected = false;
  // Bad spots: a write (record or filemark) that would occupy one of these
  // blocks fails with a medium error and writes nothing.
  std::set<std::uint64_t> bad_writes;
};

// The drive, the HBA and st's settings.
struct EmulatedStOptions {
  // MTSETDRVBUFFER allowed (st demands CAP_SYS_ADMIN).
  bool privileged = true;
  // The maximum and minimum block length from READ BLOCK LIMITS; st refuses
  // (EINVAL) variable-block reads and writes outside them. IBM LTO drives
  // report 8 MiB, others 16 MiB - 1. 0: none reported (st's no_blklims).
  std::size_t max_block = 0x800000;
  std::size_t min_block = 1;
  // The most the HBA transfers in one command (its max_hw_sectors): st
  // refuses a larger transfer with EBUSY ("request was too large"). 0: any.
  std::size_t max_transfer = 0;
  // The scatter-gather entries st may use (the HBA's sg_tablesize, at most
  // st's max_sg_segs, 256): a buffer spanning more pages is not direct I/O.
  std::size_t sg_entries = 256;
  // st's options (MT_ST_* booleans) as the driver starts: its defaults.
  unsigned options = MT_ST_BUFFER_WRITES | MT_ST_ASYNC_WRITES | MT_ST_READ_AHEAD;
  // st's sysfs attributes can be read.
  bool sysfs = true;
  // Before Linux 6.13 MTIOCGET also failed (EIO) after a reset.
  bool mtiocget_fails_after_reset = false;
  // A drive whose own block addresses (used when scsi2logical is off)
  // count records only, not filemarks.
  bool device_addresses_skip_filemarks = false;
};

class EmulatedStDevice final : public TapeSyscalls {
 public:
  explicit EmulatedStDevice(std::string path = "/dev/nst0", EmulatedStOptions options = {});

  const std::string& path() const { return path_; }
  // The operator inserts a cartridge into the empty drive, which loads it;
  // the drive then answers NOT READY to the next `not_ready_looks` looks (an
  // open, MTLOAD) while it threads or calibrates the cartridge.
  void insert(EmulatedCartridge cartridge, int not_ready_looks = 0);
  // The operator takes the cartridge out (after an unload, or yanking it).
  std::optional<EmulatedCartridge> remove();
  // A copy of the cartridge in the drive (tests inspect what was written).
  std::optional<EmulatedCartridge> cartridge() const;
  // The block size last set with MTSETBLK (0 = variable).
  int block_size() const;
  // A cartridge is in the drive and threaded (not ejected by an unload).
  bool loaded() const;
  // st's options (MT_ST_* booleans), as sysfs shows them.
  unsigned st_options() const;

  // A bus or device reset: most drives rewind, st's position is unknown
  // until the tape is repositioned, and a write in flight is lost.
  void reset();
  // A reset right after the next `writes` successful record writes.
  void reset_after_writes(std::uint64_t writes);
  // The drive answers NOT READY to every command (or stops doing so).
  void set_not_ready(bool not_ready);
  // Writes st sent straight from the caller's buffer, and through its own
  // (of which asynchronous: returned before the drive had the record).
  std::uint64_t direct_writes() const;
  std::uint64_t buffered_writes() const;
  std::uint64_t async_writes() const;

  int open(const std::string& path, int flags) override;
  int close(int fd) override;
  ssize_t read(int fd, void* buffer, std::size_t size) override;
  ssize_t write(int fd, const void* data, std::size_t size) override;
  int ioctl_op(int fd, const mtop& operation) override;
  int ioctl_get(int fd, mtget& status) override;
  int ioctl_pos(int fd, mtpos& position) override;
  std::optional<std::string> driver_attribute(const std::string& path,
                                              const std::string& name) override;

 private:
  // st.h's eof states, in st.h's order (comparisons rely on it).
  enum class Eof { kNoEof, kFmHit, kFm, kEomOk, kEomError, kEod1, kEod2, kEod };
  enum class Rw { kIdle, kReading, kWriting };
  // st's STp->ready.
  enum class Ready { kReady, kNotReady, kNoTape };

  bool check_fd(int fd) const;
  bool check_ready();
  int check_size(std::size_t size);
  int check_transfer(std::size_t size) const;
  int write_behind_check();
  int flush_buffer();
  bool direct_io(const void* data, std::size_t size) const;
  void truncate_at_position();
  bool append(EmulatedBlock block);  // false: no room (volume overflow)
  bool past_early_warning() const;
  int write_record(const void* data, std::size_t size);
  int write_filemarks(int count);
  int space_forward(int count);
  int space_backward(int count);
  int seek(std::uint64_t address);
  std::uint64_t address() const;
  void reset_state();
  int fail(int error);

  mutable std::mutex mutex_;
  std::string path_;
  EmulatedStOptions config_;
  std::optional<EmulatedCartridge> cartridge_;
  bool threaded_ = false;         // the cartridge is loaded in the mechanism
  int not_ready_looks_ = 0;       // looks before the cartridge is ready
  Ready ready_ = Ready::kNoTape;  // st's view, refreshed at open() and MTLOAD
  bool new_session_ = false;      // a cartridge was inserted since st last looked
  bool open_ = false;
  bool writable_open_ = false;
  bool pos_unknown_ = false;  // st's pos_unknown: a reset since the last repositioning
  bool not_ready_ = false;    // the drive answers NOT READY mid-session
  std::optional<std::uint64_t> reset_after_;
  int pending_ = 0;  // the errno of an asynchronous write not yet reported
  bool writing_async_ = false;
  std::uint64_t position_ = 0;  // logical block
  std::uint64_t used_ = 0;      // bytes of the blocks on the cartridge
  std::int64_t drv_file_ = 0;
  std::int64_t drv_block_ = 0;
  Eof eof_ = Eof::kNoEof;
  Rw rw_ = Rw::kIdle;
  int block_size_ = 512;  // drives often power up in fixed mode; StDrive must set 0
  unsigned options_;
  std::uint64_t direct_writes_ = 0;
  std::uint64_t buffered_writes_ = 0;
  std::uint64_t async_writes_ = 0;
};

}  // namespace mixtape::tape
