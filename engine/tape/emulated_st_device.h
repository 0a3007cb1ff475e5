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
// Thread-safe, so a test can play the operator from another thread.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "engine/common/common.h"
#include "engine/tape/tape.h"

namespace mixtape::tape {

struct EmulatedBlock {
  enum class Kind { kRecord, kFilemark, kBadRecord };
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
};

class EmulatedStDevice final : public TapeSyscalls {
 public:
  // privileged: whether MTSETDRVBUFFER is allowed (st demands root).
  explicit EmulatedStDevice(std::string path = "/dev/nst0", bool privileged = true);

  // The operator inserts a cartridge into the empty drive, which loads it.
  void insert(EmulatedCartridge cartridge);
  // The operator takes the cartridge out (after an unload, or yanking it).
  std::optional<EmulatedCartridge> remove();
  // A copy of the cartridge in the drive (tests inspect what was written).
  std::optional<EmulatedCartridge> cartridge() const;
  // The block size last set with MTSETBLK (0 = variable).
  int block_size() const;
  // A cartridge is in the drive and threaded (not ejected by an unload).
  bool loaded() const;

  int open(const std::string& path, int flags) override;
  int close(int fd) override;
  ssize_t read(int fd, void* buffer, std::size_t size) override;
  ssize_t write(int fd, const void* data, std::size_t size) override;
  int ioctl_op(int fd, const mtop& operation) override;
  int ioctl_get(int fd, mtget& status) override;
  int ioctl_pos(int fd, mtpos& position) override;

 private:
  // st.h's eof states, in st.h's order (comparisons rely on it).
  enum class Eof { kNoEof, kFmHit, kFm, kEomOk, kEomError, kEod1, kEod2, kEod };
  enum class Rw { kIdle, kReading, kWriting };

  bool check_fd(int fd) const;
  bool check_ready();
  void truncate_at_position();
  bool append(EmulatedBlock block);  // false: no room (volume overflow)
  bool past_early_warning() const;
  int write_filemarks(int count);
  int space_forward(int count);
  int space_backward(int count);
  int fail(int error);

  mutable std::mutex mutex_;
  std::string path_;
  bool privileged_;
  std::optional<EmulatedCartridge> cartridge_;
  bool threaded_ = false;     // the cartridge is loaded in the mechanism
  bool ready_ = false;        // st's view, refreshed at open() and MTLOAD
  bool new_session_ = false;  // a cartridge was inserted since st last looked
  bool open_ = false;
  bool writable_open_ = false;
  std::uint64_t position_ = 0;  // logical block
  std::uint64_t used_ = 0;      // bytes of the blocks on the cartridge
  std::int64_t drv_file_ = 0;
  std::int64_t drv_block_ = 0;
  Eof eof_ = Eof::kNoEof;
  Rw rw_ = Rw::kIdle;
  int block_size_ = 512;  // drives often power up in fixed mode; StDrive must set 0
  bool scsi2_logical_ = false;
};

}  // namespace mixtape::tape
