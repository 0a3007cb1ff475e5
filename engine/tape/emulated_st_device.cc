#include "engine/tape/emulated_st_device.h"

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "engine/tape/simh.h"

namespace mixtape::tape {
namespace {

constexpr int kFd = 42;
constexpr std::uintptr_t kDmaAlignment = 512;  // the block layer's default queue_dma_alignment
constexpr std::uintptr_t kPage = 4096;

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

EmulatedStDevice::EmulatedStDevice(std::string path, EmulatedStOptions options)
    : path_(std::move(path)), config_(options), options_(options.options) {}

void EmulatedStDevice::insert(EmulatedCartridge cartridge, int not_ready_looks) {
  std::lock_guard lock(mutex_);
  if (cartridge_) throw Error("emulated drive " + path_ + " already holds a cartridge");
  used_ = total_cost(cartridge.blocks);
  cartridge_ = std::move(cartridge);
  threaded_ = true;  // LTO drives load a cartridge when it is inserted
  not_ready_looks_ = not_ready_looks;
  new_session_ = true;
}

std::optional<EmulatedCartridge> EmulatedStDevice::remove() {
  std::lock_guard lock(mutex_);
  std::optional<EmulatedCartridge> out = std::move(cartridge_);
  cartridge_.reset();
  threaded_ = false;
  not_ready_looks_ = 0;
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

unsigned EmulatedStDevice::st_options() const {
  std::lock_guard lock(mutex_);
  return options_;
}

void EmulatedStDevice::reset() {
  std::lock_guard lock(mutex_);
  pos_unknown_ = true;
  position_ = 0;  // most drives rewind when reset
  pending_ = 0;   // the command in flight is gone
  writing_async_ = false;
}

void EmulatedStDevice::reset_after_writes(std::uint64_t writes) {
  std::lock_guard lock(mutex_);
  reset_after_ = writes;
}

void EmulatedStDevice::set_not_ready(bool not_ready) {
  std::lock_guard lock(mutex_);
  not_ready_ = not_ready;
}

std::uint64_t EmulatedStDevice::direct_writes() const {
  std::lock_guard lock(mutex_);
  return direct_writes_;
}

std::uint64_t EmulatedStDevice::buffered_writes() const {
  std::lock_guard lock(mutex_);
  return buffered_writes_;
}

std::uint64_t EmulatedStDevice::async_writes() const {
  std::lock_guard lock(mutex_);
  return async_writes_;
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
  if (ready_ == Ready::kReady && (!cartridge_ || !threaded_)) ready_ = Ready::kNoTape;
  if (ready_ == Ready::kNoTape) {
    errno = ENOMEDIUM;
    return false;
  }
  if (ready_ == Ready::kNotReady) {
    errno = EIO;
    return false;
  }
  return true;
}

// rw_checks, continued: in variable-block mode the byte count must be within
// the block limits the drive reported.
int EmulatedStDevice::check_size(std::size_t size) {
  if (config_.max_block > 0 && (size < config_.min_block || size > config_.max_block))
    return EINVAL;
  return 0;
}

// st_do_scsi: a command the block layer cannot map for the HBA.
int EmulatedStDevice::check_transfer(std::size_t size) const {
  return config_.max_transfer > 0 && size > config_.max_transfer ? EBUSY : 0;
}

// st's write_behind_check: the status of an asynchronous write, once.
int EmulatedStDevice::write_behind_check() {
  const int error = pending_;
  pending_ = 0;
  writing_async_ = false;
  return error;
}

// st's flush_buffer in variable-block mode: only a pending write to settle.
int EmulatedStDevice::flush_buffer() {
  return rw_ == Rw::kWriting ? write_behind_check() : 0;
}

// setup_buffering: st maps the caller's pages for the command when the
// buffer is DMA-aligned and its pages fit the scatter-gather list.
bool EmulatedStDevice::direct_io(const void* data, std::size_t size) const {
  const auto at = reinterpret_cast<std::uintptr_t>(data);
  const std::uintptr_t pages = (at + size + kPage - 1) / kPage - at / kPage;
  return at % kDmaAlignment == 0 && pages <= config_.sg_entries;
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

// Blocks before the position as the drive addresses them: logical (every
// record and filemark), or the drive's own addresses without scsi2logical.
std::uint64_t EmulatedStDevice::address() const {
  if ((options_ & MT_ST_SCSI2LOGICAL) || !config_.device_addresses_skip_filemarks) return position_;
  const auto& blocks = cartridge_->blocks;
  const auto end = blocks.begin() +
                   static_cast<std::ptrdiff_t>(std::min<std::uint64_t>(position_, blocks.size()));
  return static_cast<std::uint64_t>(std::count_if(
      blocks.begin(), end, [](const auto& b) { return b.kind != EmulatedBlock::Kind::kFilemark; }));
}

int EmulatedStDevice::seek(std::uint64_t target) {
  eof_ = Eof::kNoEof;
  drv_file_ = drv_block_ = -1;
  const auto& blocks = cartridge_->blocks;
  std::uint64_t at = 0;
  if ((options_ & MT_ST_SCSI2LOGICAL) || !config_.device_addresses_skip_filemarks) {
    at = target;
  } else {
    for (std::uint64_t records = 0; at < blocks.size() && records < target; ++at) {
      if (blocks[at].kind != EmulatedBlock::Kind::kFilemark) ++records;
    }
    if (at == blocks.size() && address() < target) at = blocks.size() + 1;
  }
  if (at > blocks.size()) {
    position_ = blocks.size();  // stopped at end of data
    return fail(EIO);
  }
  position_ = at;
  if (at == 0) drv_file_ = drv_block_ = 0;
  return 0;
}

// st's reset_state: what a repositioning after a reset starts from.
void EmulatedStDevice::reset_state() {
  pos_unknown_ = false;
  rw_ = Rw::kIdle;
  eof_ = Eof::kNoEof;
  drv_file_ = drv_block_ = -1;
}

int EmulatedStDevice::open(const std::string& path, int flags) {
  std::lock_guard lock(mutex_);
  if (path != path_) return fail(ENOENT);
  if (open_) return fail(EBUSY);
  // check_tape(): st looks at the drive now (TEST UNIT READY), and only now.
  if (!cartridge_ || !threaded_) {
    ready_ = Ready::kNoTape;  // NOT READY, medium not present
  } else if (not_ready_looks_ > 0) {
    --not_ready_looks_;
    ready_ = Ready::kNotReady;  // NOT READY, becoming ready
  } else {
    ready_ = Ready::kReady;
  }
  if (ready_ == Ready::kReady && new_session_) {
    position_ = 0;
    drv_file_ = drv_block_ = 0;
    eof_ = Eof::kNoEof;
    pos_unknown_ = false;
    new_session_ = false;
  }
  const bool nonblock = (flags & O_NONBLOCK) != 0;
  const bool for_write = (flags & O_ACCMODE) != O_RDONLY;
  if (!nonblock && ready_ != Ready::kReady) return fail(ready_ == Ready::kNoTape ? ENOMEDIUM : EIO);
  if (!nonblock && for_write && cartridge_->write_protected) return fail(EROFS);
  open_ = true;
  writable_open_ = for_write;
  rw_ = Rw::kIdle;
  return kFd;
}

int EmulatedStDevice::close(int fd) {
  std::lock_guard lock(mutex_);
  if (!check_fd(fd)) return fail(EBADF);
  // st_flush: closing after a write ends the file with a filemark, unless
  // the last write failed or the position is unknown.
  if (rw_ == Rw::kWriting && !pos_unknown_ && ready_ == Ready::kReady && cartridge_ && threaded_) {
    const int error = write_behind_check();
    if (error == 0 || error == ENOSPC) write_filemarks(1);
  }
  open_ = false;
  rw_ = Rw::kIdle;
  return 0;
}

ssize_t EmulatedStDevice::read(int fd, void* buffer, std::size_t size) {
  std::lock_guard lock(mutex_);
  if (!check_fd(fd)) return fail(EBADF);
  if (!check_ready()) return -1;
  if (pos_unknown_) return fail(EIO);         // "If there was a bus reset, block further access"
  if (block_size_ != 0) return fail(EINVAL);  // fixed-block mode is not emulated
  if (int error = check_size(size)) return fail(error);
  if (rw_ == Rw::kWriting) {
    if (int error = flush_buffer()) return fail(error);
  }
  rw_ = Rw::kReading;
  if (eof_ >= Eof::kEod1) {
    if (eof_ < Eof::kEod) {
      eof_ = static_cast<Eof>(static_cast<int>(eof_) + 1);
      return 0;
    }
    return fail(EIO);
  }
  if (int error = check_transfer(size)) return fail(error);
  if (not_ready_) return fail(EIO);  // READ(6) answered NOT READY: nothing moved
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
    case EmulatedBlock::Kind::kProtected:
      // DATA PROTECT: refused where it is.
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

// The record goes to the medium: 0, ENOSPC (written, early warning),
// EOVERFLOW (volume overflow: nothing written) or EIO (a bad spot).
int EmulatedStDevice::write_record(const void* data, std::size_t size) {
  truncate_at_position();
  if (cartridge_->bad_writes.count(position_)) return EIO;
  const auto* bytes = static_cast<const std::uint8_t*>(data);
  if (!append({EmulatedBlock::Kind::kRecord, Bytes(bytes, bytes + size)})) return EOVERFLOW;
  if (drv_block_ >= 0) ++drv_block_;
  return past_early_warning() ? ENOSPC : 0;
}

ssize_t EmulatedStDevice::write(int fd, const void* data, std::size_t size) {
  std::lock_guard lock(mutex_);
  if (!check_fd(fd) || !writable_open_) return fail(EBADF);
  if (!check_ready()) return -1;
  if (pos_unknown_) return fail(EIO);
  if (block_size_ != 0) return fail(EINVAL);
  if (int error = check_size(size)) return fail(error);
  if (cartridge_->write_protected) return fail(EACCES);
  if (rw_ == Rw::kReading) rw_ = Rw::kWriting;
  if (int error = write_behind_check()) eof_ = error == ENOSPC ? Eof::kEomOk : Eof::kEomError;
  // "EOM Behaviour When Writing": after early warning every other write is
  // refused with ENOSPC, the one after it is let through.
  if (eof_ == Eof::kEomOk) {
    eof_ = Eof::kEod1;
    return fail(ENOSPC);
  }
  if (eof_ == Eof::kEomError) return fail(EIO);
  rw_ = Rw::kWriting;
  if (int error = check_transfer(size)) {
    drv_block_ = -1;
    return fail(error);
  }
  if (not_ready_) {
    drv_block_ = -1;
    return fail(EIO);
  }
  const bool direct = direct_io(data, size);
  const bool async = !direct && (options_ & MT_ST_ASYNC_WRITES) != 0 && eof_ < Eof::kEomOk;
  ++(direct ? direct_writes_ : buffered_writes_);
  const int result = write_record(data, size);
  if (async) {
    // Returned at once; the drive's answer waits for the next call.
    ++async_writes_;
    eof_ = eof_ == Eof::kEod1 ? Eof::kEomOk : Eof::kNoEof;
    pending_ = result == 0 ? 0 : result == ENOSPC ? ENOSPC : EIO;
    writing_async_ = true;
    if (result == EIO || result == EOVERFLOW) drv_block_ = -1;
  } else {
    switch (result) {
      case 0:
        eof_ = eof_ == Eof::kEod1 ? Eof::kEomOk : Eof::kNoEof;
        break;
      case ENOSPC:
        eof_ = Eof::kEomOk;  // written, with the EOM (early warning) flag
        break;
      case EOVERFLOW:
        eof_ = Eof::kEomOk;  // VOLUME OVERFLOW: nothing written
        return fail(ENOSPC);
      default:
        drv_block_ = -1;  // MEDIUM ERROR
        return fail(EIO);
    }
  }
  if (reset_after_ && --*reset_after_ == 0) {
    reset_after_.reset();
    pos_unknown_ = true;
    position_ = 0;
    pending_ = 0;
  }
  return static_cast<ssize_t>(size);
}

int EmulatedStDevice::write_filemarks(int count) {
  if (count == 0) return 0;  // WRITE FILEMARKS(0) only flushes the buffer
  truncate_at_position();
  for (int i = 0; i < count; ++i) {
    if (cartridge_->bad_writes.count(position_)) {
      drv_block_ = -1;
      return fail(EIO);
    }
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
  if (op == MTSETDRVBUFFER && !config_.privileged) return fail(EPERM);
  if (pos_unknown_) {
    // After a reset only what makes the position known again is allowed.
    if (op != MTREW && op != MTOFFL && op != MTLOAD && op != MTRETEN && op != MTERASE &&
        op != MTSEEK && op != MTEOM)
      return fail(EIO);
    reset_state();
  } else {
    if (int error = flush_buffer()) return fail(error);
    // st_ioctl: repositioning after a write first ends the file.
    if (rw_ == Rw::kWriting && cartridge_ && threaded_ && ready_ == Ready::kReady &&
        (op == MTREW || op == MTOFFL || op == MTSEEK || op == MTBSF || op == MTBSFM)) {
      if (write_filemarks(1) != 0) return -1;
      if (op == MTBSF || op == MTBSFM) ++count;
    }
  }
  if (op == MTSETDRVBUFFER) {
    const unsigned code = static_cast<unsigned>(count) & MT_ST_OPTIONS;
    const unsigned bits = static_cast<unsigned>(count) & ~MT_ST_OPTIONS;
    if (code == MT_ST_BOOLEANS) options_ = bits;
    if (code == MT_ST_SETBOOLEANS) options_ |= bits;
    if (code == MT_ST_CLEARBOOLEANS) options_ &= ~bits;
    return 0;
  }
  if (op == MTLOAD) {
    // START STOP UNIT fails while the drive is not ready.
    if (!cartridge_) return fail(EIO);
    threaded_ = true;
    if (not_ready_looks_ > 0) {
      --not_ready_looks_;
      return fail(EIO);
    }
    ready_ = Ready::kReady;
    new_session_ = false;
    position_ = 0;
    drv_file_ = drv_block_ = 0;
    eof_ = Eof::kNoEof;
    rw_ = Rw::kIdle;
    return 0;
  }
  if (!check_ready()) return -1;
  if (not_ready_ && op != MTNOP) return fail(EIO);
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
    case MTSEEK:
      return seek(static_cast<std::uint64_t>(count));
    case MTOFFL:
    case MTUNLOAD:
      position_ = 0;
      threaded_ = false;
      ready_ = Ready::kNoTape;
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
  if (pos_unknown_) {
    // Since Linux 6.13 MTIOCGET answers after a reset, with the position
    // unknown; before, it failed like everything else.
    if (config_.mtiocget_fails_after_reset) return fail(EIO);
    rw_ = Rw::kIdle;
    eof_ = Eof::kNoEof;
    drv_file_ = drv_block_ = -1;
  } else if (int error = flush_buffer()) {
    return fail(error);
  }
  if (ready_ == Ready::kReady && (!cartridge_ || !threaded_)) ready_ = Ready::kNoTape;
  status = mtget{};
  status.mt_type = MT_ISSCSI2;
  status.mt_dsreg = (static_cast<long>(block_size_) << MT_ST_BLKSIZE_SHIFT) & MT_ST_BLKSIZE_MASK;
  status.mt_fileno = static_cast<int>(drv_file_);
  status.mt_blkno = static_cast<int>(drv_block_);
  long gstat = 0;
  if (ready_ == Ready::kReady && cartridge_->write_protected) gstat |= GMT_WR_PROT(0xffffffff);
  if (status.mt_blkno == 0) {
    gstat |= status.mt_fileno == 0 ? GMT_BOT(0xffffffff) : GMT_EOF(0xffffffff);
  }
  if (eof_ == Eof::kEomOk || eof_ == Eof::kEomError) {
    gstat |= GMT_EOT(0xffffffff);
  } else if (eof_ >= Eof::kEomOk) {
    gstat |= GMT_EOD(0xffffffff);
  }
  if (ready_ == Ready::kReady) gstat |= GMT_ONLINE(0xffffffff);
  if (ready_ == Ready::kNoTape) gstat |= GMT_DR_OPEN(0xffffffff);
  status.mt_gstat = gstat;
  return 0;
}

int EmulatedStDevice::ioctl_pos(int fd, mtpos& position) {
  std::lock_guard lock(mutex_);
  if (!check_fd(fd)) return fail(EBADF);
  if (pos_unknown_) return fail(EIO);
  if (int error = flush_buffer()) return fail(error);
  if (ready_ != Ready::kReady || not_ready_) return fail(EIO);  // READ POSITION needs a ready drive
  if (!cartridge_ || !threaded_) return fail(EIO);
  position.mt_blkno = static_cast<long>(address());
  return 0;
}

std::optional<std::string> EmulatedStDevice::driver_attribute(const std::string& path,
                                                              const std::string& name) {
  std::lock_guard lock(mutex_);
  if (!config_.sysfs || path != path_ || name != "options") return std::nullopt;
  char text[16];
  std::snprintf(text, sizeof text, "0x%08x\n", options_);
  return std::string(text);
}

}  // namespace mixtape::tape
