#include "engine/tape/emulated_st_device.h"

#include <fcntl.h>
#include <sys/mtio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "engine/tape/simh.h"

namespace mixtape::tape {
namespace {

constexpr int kFd = 42;

std::uint64_t cost(const EmulatedBlock& block) {
  return block.kind == EmulatedBlock::Kind::kFilemark ? simh::kMarkerBytes
                                                      : simh::record_bytes(block.data.size());
}

std::uint64_t total_cost(const std::vector<EmulatedBlock>& blocks) {
  std::uint64_t sum = 0;
  for (const EmulatedBlock& b : blocks) sum += cost(b);
  return sum;
}

}  // namespace

EmulatedStDevice::EmulatedStDevice(std::string path, bool privileged)
    : path_(std::move(path)), privileged_(privileged) {}

void EmulatedStDevice::insert(EmulatedCartridge cartridge) {
  std::lock_guard lock(mutex_);
  if (cartridge_) throw Error("emulated drive " + path_ + " already holds a cartridge");
  used_ = total_cost(cartridge.blocks);
  cartridge_ = std::move(cartridge);
  threaded_ = true;  // LTO drives load a cartridge when it is inserted
  new_session_ = true;
}

std::optional<EmulatedCartridge> EmulatedStDevice::remove() {
  std::lock_guard lock(mutex_);
  std::optional<EmulatedCartridge> out = std::move(cartridge_);
  cartridge_.reset();
  threaded_ = false;
  return out;
}

std::optional<EmulatedCartridge> EmulatedStDevice::cartridge() const {
  std::lock_guard lock(mutex_);
  return cartridge_;
}

int EmulatedStDevice::block_size() const {
  std::lock_guard lock(mutex_);
  return block_size_;
}

bool EmulatedStDevice::loaded() const {
  std::lock_guard lock(mutex_);
  return cartridge_.has_value() && threaded_;
}

int EmulatedStDevice::fail(int error) {
  errno = error;
  return -1;
}

bool EmulatedStDevice::check_fd(int fd) const {
  return open_ && fd == kFd;
}

// st's rw_checks: commands need a ready drive. A cartridge pulled out behind
// st's back makes the next command fail and st notice.
bool EmulatedStDevice::check_ready() {
  if (ready_ && (!cartridge_ || !threaded_)) ready_ = false;
  if (!ready_) {
    errno = ENOMEDIUM;
    return false;
  }
  return true;
}

void EmulatedStDevice::truncate_at_position() {
  if (position_ < cartridge_->blocks.size()) {
    cartridge_->blocks.resize(position_);
    used_ = total_cost(cartridge_->blocks);
  }
}

bool EmulatedStDevice::past_early_warning() const {
  return used_ > cartridge_->capacity - cartridge_->early_warning;
}

bool EmulatedStDevice::append(EmulatedBlock block) {
  std::uint64_t c = cost(block);
  if (used_ + c > cartridge_->capacity) return false;
  used_ += c;
  cartridge_->blocks.push_back(std::move(block));
  ++position_;
  return true;
}

int EmulatedStDevice::open(const std::string& path, int flags) {
  std::lock_guard lock(mutex_);
  if (path != path_) return fail(ENOENT);
  if (open_) return fail(EBUSY);
  // check_tape(): st looks at the drive now, and only now.
  ready_ = cartridge_ && threaded_;
  if (ready_ && new_session_) {
    position_ = 0;
    drv_file_ = drv_block_ = 0;
    eof_ = Eof::kNoEof;
    new_session_ = false;
  }
  const bool nonblock = (flags & O_NONBLOCK) != 0;
  const bool for_write = (flags & O_ACCMODE) != O_RDONLY;
  if (!nonblock && !ready_) return fail(ENOMEDIUM);
  if (!nonblock && for_write && ready_ && cartridge_->write_protected) return fail(EROFS);
  open_ = true;
  writable_open_ = for_write;
  rw_ = Rw::kIdle;
  return kFd;
}

int EmulatedStDevice::close(int fd) {
  std::lock_guard lock(mutex_);
  if (!check_fd(fd)) return fail(EBADF);
  // st_flush: closing after a write ends the file with a filemark.
  if (rw_ == Rw::kWriting && ready_ && cartridge_ && threaded_) write_filemarks(1);
  open_ = false;
  rw_ = Rw::kIdle;
  return 0;
}

ssize_t EmulatedStDevice::read(int fd, void* buffer, std::size_t size) {
  std::lock_guard lock(mutex_);
  if (!check_fd(fd)) return fail(EBADF);
  if (!check_ready()) return -1;
  if (block_size_ != 0) return fail(EINVAL);  // fixed-block mode is not emulated
  rw_ = Rw::kReading;
  if (eof_ >= Eof::kEod1) {
    if (eof_ < Eof::kEod) {
      eof_ = static_cast<Eof>(static_cast<int>(eof_) + 1);
      return 0;
    }
    return fail(EIO);
  }
  const std::vector<EmulatedBlock>& blocks = cartridge_->blocks;
  if (position_ >= blocks.size()) {
    // BLANK CHECK: zero bytes once if a filemark was just read, else EIO.
    drv_block_ = -1;
    if (eof_ == Eof::kFm) {
      eof_ = Eof::kEod;  // read_tape sets ST_EOD_2, st_read moves it on
      return 0;
    }
    return fail(EIO);
  }
  const EmulatedBlock& block = blocks[position_];
  switch (block.kind) {
    case EmulatedBlock::Kind::kFilemark:
      ++position_;
      eof_ = Eof::kFm;
      drv_block_ = 0;
      if (drv_file_ >= 0) ++drv_file_;
      return 0;
    case EmulatedBlock::Kind::kBadRecord:
      // MEDIUM ERROR: the drive has passed the block.
      ++position_;
      drv_block_ = -1;
      return fail(EIO);
    case EmulatedBlock::Kind::kRecord:
      break;
  }
  ++position_;
  if (drv_block_ >= 0) ++drv_block_;
  if (size < block.data.size()) return fail(ENOMEM);  // ILI with a short buffer
  std::memcpy(buffer, block.data.data(), block.data.size());
  if (eof_ == Eof::kFm) eof_ = Eof::kNoEof;
  return static_cast<ssize_t>(block.data.size());
}

ssize_t EmulatedStDevice::write(int fd, const void* data, std::size_t size) {
  std::lock_guard lock(mutex_);
  if (!check_fd(fd) || !writable_open_) return fail(EBADF);
  if (!check_ready()) return -1;
  if (block_size_ != 0) return fail(EINVAL);
  if (cartridge_->write_protected) return fail(EACCES);
  if (rw_ == Rw::kReading) rw_ = Rw::kWriting;
  // "EOM Behaviour When Writing": after early warning every other write is
  // refused with ENOSPC, the one after it is let through.
  if (eof_ == Eof::kEomOk) {
    eof_ = Eof::kEod1;
    return fail(ENOSPC);
  }
  if (eof_ == Eof::kEomError) return fail(EIO);
  rw_ = Rw::kWriting;
  truncate_at_position();
  const auto* bytes = static_cast<const std::uint8_t*>(data);
  if (!append({EmulatedBlock::Kind::kRecord, Bytes(bytes, bytes + size)})) {
    eof_ = Eof::kEomOk;  // VOLUME OVERFLOW: nothing written
    return fail(ENOSPC);
  }
  if (drv_block_ >= 0) ++drv_block_;
  if (past_early_warning()) {
    eof_ = Eof::kEomOk;  // written, with the EOM (early warning) flag
  } else if (eof_ == Eof::kEod1) {
    eof_ = Eof::kEomOk;
  } else {
    eof_ = Eof::kNoEof;
  }
  return static_cast<ssize_t>(size);
}

int EmulatedStDevice::write_filemarks(int count) {
  if (count == 0) return 0;  // WRITE FILEMARKS(0) only flushes the buffer
  truncate_at_position();
  for (int i = 0; i < count; ++i) {
    if (!append({EmulatedBlock::Kind::kFilemark, {}})) return fail(ENOSPC);
    if (drv_file_ >= 0) ++drv_file_;
    drv_block_ = 0;
  }
  // Filemarks written in the early-warning zone succeed (NO SENSE + EOM).
  eof_ = Eof::kNoEof;
  return 0;
}

int EmulatedStDevice::space_forward(int count) {
  const std::vector<EmulatedBlock>& blocks = cartridge_->blocks;
  for (int passed = 0; passed < count;) {
    if (position_ >= blocks.size()) {
      drv_block_ = -1;
      eof_ = Eof::kEod;  // BLANK CHECK
      return fail(EIO);
    }
    if (blocks[position_++].kind == EmulatedBlock::Kind::kFilemark) {
      ++passed;
      if (drv_file_ >= 0) ++drv_file_;
    }
  }
  drv_block_ = 0;
  eof_ = Eof::kFm;
  return 0;
}

int EmulatedStDevice::space_backward(int count) {
  const std::vector<EmulatedBlock>& blocks = cartridge_->blocks;
  for (int passed = 0; passed < count;) {
    if (position_ == 0) {
      drv_block_ = 0;  // BOT (EOM sense); eof is left alone for MTBSF
      return fail(EIO);
    }
    if (blocks[--position_].kind == EmulatedBlock::Kind::kFilemark) {
      ++passed;
      if (drv_file_ > 0) --drv_file_;
    }
  }
  drv_block_ = -1;
  eof_ = Eof::kNoEof;
  return 0;
}

int EmulatedStDevice::ioctl_op(int fd, const mtop& operation) {
  std::lock_guard lock(mutex_);
  if (!check_fd(fd)) return fail(EBADF);
  const int op = operation.mt_op;
  int count = operation.mt_count;
  if (op == MTSETDRVBUFFER) {
    if (!privileged_) return fail(EPERM);
    const int code = count & MT_ST_OPTIONS;
    if ((code == MT_ST_SETBOOLEANS || code == MT_ST_CLEARBOOLEANS) &&
        (count & MT_ST_SCSI2LOGICAL)) {
      scsi2_logical_ = code == MT_ST_SETBOOLEANS;
    }
    return 0;
  }
  if (op == MTLOAD) {
    if (!cartridge_) return fail(EIO);  // START STOP UNIT fails: not ready
    threaded_ = true;
    ready_ = true;
    new_session_ = false;
    position_ = 0;
    drv_file_ = drv_block_ = 0;
    eof_ = Eof::kNoEof;
    rw_ = Rw::kIdle;
    return 0;
  }
  if (!check_ready()) return -1;
  // st_ioctl: repositioning after a write first ends the file.
  if (rw_ == Rw::kWriting &&
      (op == MTREW || op == MTOFFL || op == MTSEEK || op == MTBSF || op == MTBSFM)) {
    if (write_filemarks(1) != 0) return -1;
    if (op == MTBSF || op == MTBSFM) ++count;
  }
  if (op != MTNOP && op != MTSETBLK && op != MTSETDENSITY && op != MTWSM) rw_ = Rw::kIdle;
  switch (op) {
    case MTNOP:
      return 0;
    case MTSETBLK:
      block_size_ = count;
      return 0;
    case MTWEOF:
      if (cartridge_->write_protected) return fail(EACCES);
      return write_filemarks(count);
    case MTFSF:
      return space_forward(count);
    case MTBSF:
      return space_backward(count);
    case MTREW:
      position_ = 0;
      drv_file_ = drv_block_ = 0;
      eof_ = Eof::kNoEof;
      return 0;
    case MTEOM:
      // Without MT_ST_FAST_MTEOM, st spaces filemarks until the blank check.
      space_forward(0x7fffff);
      drv_block_ = -1;
      eof_ = Eof::kEod;
      return 0;
    case MTSEEK: {
      const std::uint64_t target = static_cast<std::uint64_t>(count);
      eof_ = Eof::kNoEof;
      drv_file_ = drv_block_ = -1;
      if (target > cartridge_->blocks.size()) {
        position_ = cartridge_->blocks.size();  // stopped at end of data
        return fail(EIO);
      }
      position_ = target;
      if (target == 0) drv_file_ = drv_block_ = 0;
      return 0;
    }
    case MTOFFL:
    case MTUNLOAD:
      position_ = 0;
      threaded_ = false;
      ready_ = false;
      drv_file_ = drv_block_ = -1;
      eof_ = Eof::kNoEof;
      return 0;
    default:
      return fail(ENOSYS);
  }
}

int EmulatedStDevice::ioctl_get(int fd, mtget& status) {
  std::lock_guard lock(mutex_);
  if (!check_fd(fd)) return fail(EBADF);
  if (ready_ && (!cartridge_ || !threaded_)) ready_ = false;
  status = mtget{};
  status.mt_type = MT_ISSCSI2;
  status.mt_dsreg = (static_cast<long>(block_size_) << MT_ST_BLKSIZE_SHIFT) & MT_ST_BLKSIZE_MASK;
  status.mt_fileno = static_cast<int>(drv_file_);
  status.mt_blkno = static_cast<int>(drv_block_);
  long gstat = 0;
  if (ready_ && cartridge_->write_protected) gstat |= GMT_WR_PROT(0xffffffff);
  if (status.mt_blkno == 0) {
    gstat |= status.mt_fileno == 0 ? GMT_BOT(0xffffffff) : GMT_EOF(0xffffffff);
  }
  if (eof_ == Eof::kEomOk || eof_ == Eof::kEomError) {
    gstat |= GMT_EOT(0xffffffff);
  } else if (eof_ >= Eof::kEomOk) {
    gstat |= GMT_EOD(0xffffffff);
  }
  gstat |= ready_ ? GMT_ONLINE(0xffffffff) : GMT_DR_OPEN(0xffffffff);
  status.mt_gstat = gstat;
  return 0;
}

int EmulatedStDevice::ioctl_pos(int fd, mtpos& position) {
  std::lock_guard lock(mutex_);
  if (!check_fd(fd)) return fail(EBADF);
  if (!ready_) return fail(EIO);  // get_location needs a ready drive
  position.mt_blkno = static_cast<long>(position_);
  return 0;
}

}  // namespace mixtape::tape
