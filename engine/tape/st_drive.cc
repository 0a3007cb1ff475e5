// StDrive: the Drive contract over the Linux st driver (variable-block mode).
//
// The st driver is the authority on position and status, but a few of its
// answers need interpretation (docs/TAPE.md has the full mapping):
//  - read() returning 0 is a filemark or end of data: MTIOCGET's GMT_EOD
//    tells them apart.
//  - read() failing with EIO is a media error, unless the drive did not move
//    (blank check: end of data where st had no filemark to go by).
//  - after early warning, st refuses every other write with ENOSPC without
//    writing ("EOM Behaviour When Writing" in st.rst); the retry is let
//    through. Two ENOSPC in a row for one record mean the physical end.
//  - st writes a filemark by itself before MTREW, MTOFFL, MTSEEK and MTBSF
//    (and at close) if the last operation was a write; StDrive issues
//    MTWEOF 0 (a flush) first, so no filemark appears that the caller did not
//    write.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mtio.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>

#include "engine/tape/tape.h"

namespace mixtape::tape {

// ------------------------------------------------------ SystemTapeSyscalls

int SystemTapeSyscalls::open(const std::string& path, int flags) {
  return ::open(path.c_str(), flags | O_CLOEXEC);
}
int SystemTapeSyscalls::close(int fd) {
  return ::close(fd);
}
ssize_t SystemTapeSyscalls::read(int fd, void* buffer, std::size_t size) {
  return ::read(fd, buffer, size);
}
ssize_t SystemTapeSyscalls::write(int fd, const void* data, std::size_t size) {
  return ::write(fd, data, size);
}
int SystemTapeSyscalls::ioctl_op(int fd, const mtop& operation) {
  mtop copy = operation;
  return ::ioctl(fd, MTIOCTOP, &copy);
}
int SystemTapeSyscalls::ioctl_get(int fd, mtget& status) {
  return ::ioctl(fd, MTIOCGET, &status);
}
int SystemTapeSyscalls::ioctl_pos(int fd, mtpos& position) {
  return ::ioctl(fd, MTIOCPOS, &position);
}

// ------------------------------------------------------------------ StDrive

// The device's file descriptor, closed through the seam it came from.
class StDrive::Fd {
 public:
  Fd(TapeSyscalls& sys, int fd) : sys_(sys), fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { sys_.close(fd_); }
  int get() const { return fd_; }

 private:
  TapeSyscalls& sys_;
  int fd_;
};

namespace {

// Adds the wall-clock time of a drive command to tape_seconds: for a real
// drive, the time it really spent.
class CommandTimer {
 public:
  explicit CommandTimer(DriveStats& stats)
      : stats_(stats), start_(std::chrono::steady_clock::now()) {}
  CommandTimer(const CommandTimer&) = delete;
  CommandTimer& operator=(const CommandTimer&) = delete;
  ~CommandTimer() {
    stats_.tape_seconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  DriveStats& stats_;
  std::chrono::steady_clock::time_point start_;
};

TapeErrorKind kind_of(int error) {
  switch (error) {
    case ENOMEDIUM:
      return TapeErrorKind::kNotLoaded;
    case EACCES:
    case EROFS:
      return TapeErrorKind::kWriteProtected;
    case ENOSPC:
      return TapeErrorKind::kPhysicalEnd;
    case EIO:
      return TapeErrorKind::kMediaError;
    case ENOMEM:
      return TapeErrorKind::kRecordTooLarge;
    default:
      return TapeErrorKind::kDeviceError;
  }
}

int to_count(std::uint64_t n, const std::string& device) {
  if (n > static_cast<std::uint64_t>(INT_MAX)) {
    throw TapeError(TapeErrorKind::kInvalidArgument,
                    device + ": count " + std::to_string(n) + " is too large for st");
  }
  return static_cast<int>(n);
}

}  // namespace

StDrive::StDrive(std::string device, TapeSyscalls& syscalls, bool read_only)
    : device_(std::move(device)), sys_(syscalls), want_read_only_(read_only) {
  open_device();
}

StDrive::StDrive(std::string device, bool read_only)
    : device_(std::move(device)),
      owned_syscalls_(std::make_unique<SystemTapeSyscalls>()),
      sys_(*owned_syscalls_),
      want_read_only_(read_only) {
  open_device();
}

StDrive::~StDrive() {
  try {
    flush_writes();
  } catch (const std::exception&) {
    // Closing anyway; st then writes its own filemark, which is harmless.
  }
}

void StDrive::fail(TapeErrorKind kind, const std::string& what, int error,
                   std::optional<std::uint64_t> block) {
  if (kind == TapeErrorKind::kNotLoaded) configured_ = false;
  throw TapeError(kind, device_ + ": " + what + " (" + std::strerror(error) + ")", block);
}

void StDrive::open_device() {
  // O_NONBLOCK: open even with no tape or a write-protected one (st.rst), so
  // status() can report that instead of failing.
  read_only_ = want_read_only_;
  int fd = sys_.open(device_, (read_only_ ? O_RDONLY : O_RDWR) | O_NONBLOCK);
  if (fd < 0 && !read_only_ && (errno == EACCES || errno == EROFS)) {
    fd = sys_.open(device_, O_RDONLY | O_NONBLOCK);
    read_only_ = true;
  }
  if (fd < 0) fail(TapeErrorKind::kDeviceError, "cannot open tape device", errno);
  fd_ = std::make_unique<Fd>(sys_, fd);
  configured_ = false;
}

int StDrive::fd() {
  if (!fd_) open_device();  // a failed reopen left none
  return fd_->get();
}

void StDrive::reopen_device() {
  flush_writes();
  fd_.reset();
  open_device();
}

int StDrive::operation(short op, int count) {
  mtop m{};
  m.mt_op = op;
  m.mt_count = count;
  int rc;
  do {
    rc = sys_.ioctl_op(fd(), m);
  } while (rc != 0 && errno == EINTR);
  return rc;
}

unsigned long StDrive::query_gstat() {
  mtget status{};
  if (sys_.ioctl_get(fd(), status) != 0) {
    fail(TapeErrorKind::kDeviceError, "cannot read drive status (MTIOCGET)", errno);
  }
  return static_cast<unsigned long>(status.mt_gstat);
}

std::uint64_t StDrive::query_position() {
  mtpos position{};
  if (sys_.ioctl_pos(fd(), position) != 0) {
    int error = errno;
    fail(error == ENOMEDIUM ? TapeErrorKind::kNotLoaded : TapeErrorKind::kDeviceError,
         "cannot read tape position (MTIOCPOS)", error);
  }
  position_ = static_cast<std::uint64_t>(position.mt_blkno);
  return *position_;
}

void StDrive::configure() {
  if (operation(MTSETBLK, 0) != 0) {
    int error = errno;
    fail(kind_of(error) == TapeErrorKind::kNotLoaded ? TapeErrorKind::kNotLoaded
                                                     : TapeErrorKind::kDeviceError,
         "cannot set variable-block mode (MTSETBLK 0)", error);
  }
  // Logical block numbers in MTSEEK/MTIOCPOS. Needs root; without it the
  // option must have been set once with `mt stsetoptions scsi2logical`.
  operation(MTSETDRVBUFFER, MT_ST_SETBOOLEANS | MT_ST_SCSI2LOGICAL);
  configured_ = true;
  unflushed_write_ = false;
  at_eod_ = false;
  in_early_warning_ = false;
  query_position();
}

void StDrive::ensure_ready() {
  if (configured_) return;
  unsigned long gstat = query_gstat();
  if (!GMT_ONLINE(gstat)) {
    // st learns about a newly inserted tape only when the device is opened.
    reopen_device();
    gstat = query_gstat();
  }
  if (!GMT_ONLINE(gstat)) throw TapeError(TapeErrorKind::kNotLoaded, device_ + ": no tape loaded");
  configure();
}

void StDrive::flush_writes() {
  if (!unflushed_write_ || !fd_) return;
  unflushed_write_ = false;
  if (operation(MTWEOF, 0) != 0) fail(kind_of(errno), "cannot flush written records", errno);
}

WriteResult StDrive::write_record(ByteSpan data) {
  if (data.empty() || data.size() > kMaxRecordSize) {
    throw TapeError(TapeErrorKind::kInvalidArgument,
                    device_ + ": cannot write a record of " + std::to_string(data.size()) +
                        " bytes (1 to " + std::to_string(kMaxRecordSize) + " allowed)");
  }
  ensure_ready();
  if (read_only_) {
    throw TapeError(TapeErrorKind::kWriteProtected, device_ + ": tape is write protected");
  }
  CommandTimer timer(stats_);
  const std::uint64_t block = position_ ? *position_ : query_position();
  int refused = 0;  // ENOSPC answers for this record
  // st is in its writing state from now on, even if the write fails, and
  // would add a filemark before the next repositioning.
  unflushed_write_ = true;
  for (;;) {
    ssize_t n = sys_.write(fd(), data.data(), data.size());
    if (n == static_cast<ssize_t>(data.size())) break;
    int error = n < 0 ? errno : EIO;
    if (error == EINTR) continue;
    if (error == ENOSPC && ++refused < 2) continue;  // st's alternation: retry once
    if (error == ENOSPC) {
      in_early_warning_ = true;
      fail(TapeErrorKind::kPhysicalEnd,
           "physical end of medium: cannot write block " + std::to_string(block), error, block);
    }
    if (error == EBADF) error = EACCES;  // opened read-only
    // st refuses a protected tape before it starts writing: nothing to flush.
    if (error == EACCES) unflushed_write_ = false;
    fail(kind_of(error), "cannot write block " + std::to_string(block), error, block);
  }
  at_eod_ = true;
  position_ = block + 1;
  ++stats_.records_written;
  stats_.bytes_written += data.size();
  if (refused > 0 || GMT_EOT(query_gstat())) in_early_warning_ = true;
  return {in_early_warning_};
}

WriteResult StDrive::write_filemarks(std::uint32_t count) {
  ensure_ready();
  if (count == 0) {
    flush_writes();
    return {in_early_warning_};
  }
  if (read_only_) {
    throw TapeError(TapeErrorKind::kWriteProtected, device_ + ": tape is write protected");
  }
  CommandTimer timer(stats_);
  const std::uint64_t block = position_ ? *position_ : query_position();
  if (operation(MTWEOF, to_count(count, device_)) != 0) {
    int error = errno;
    if (error == EIO && (in_early_warning_ || GMT_EOT(query_gstat()))) error = ENOSPC;
    fail(kind_of(error), "cannot write filemark at block " + std::to_string(block), error, block);
  }
  unflushed_write_ = false;
  at_eod_ = true;
  position_ = block + count;
  stats_.filemarks_written += count;
  if (GMT_EOT(query_gstat())) in_early_warning_ = true;
  return {in_early_warning_};
}

ReadResult StDrive::read_record(MutableByteSpan buffer) {
  ensure_ready();
  CommandTimer timer(stats_);
  const std::uint64_t block = position_ ? *position_ : query_position();
  ssize_t n;
  do {
    n = sys_.read(fd(), buffer.data(), buffer.size());
  } while (n < 0 && errno == EINTR);
  if (n > 0) {
    position_ = block + 1;
    at_eod_ = false;
    ++stats_.records_read;
    stats_.bytes_read += static_cast<std::uint64_t>(n);
    return {ReadKind::kData, static_cast<std::size_t>(n)};
  }
  if (n == 0) {
    if (GMT_EOD(query_gstat())) {
      at_eod_ = true;
      return {ReadKind::kEndOfData, 0};
    }
    position_ = block + 1;
    at_eod_ = false;
    ++stats_.filemarks_read;
    return {ReadKind::kFilemark, 0};
  }
  int error = errno;
  if (error == ENOMEM) {
    position_ = block + 1;  // st has skipped the record
    fail(TapeErrorKind::kRecordTooLarge,
         "record at block " + std::to_string(block) + " is larger than the " +
             std::to_string(buffer.size()) + "-byte read buffer",
         error, block);
  }
  if (error == EIO) {
    // A blank check (end of data) leaves the tape where it was; a media
    // error moves it past the bad block.
    if (GMT_EOD(query_gstat()) || query_position() == block) {
      position_ = block;
      at_eod_ = true;
      return {ReadKind::kEndOfData, 0};
    }
    ++stats_.media_errors;
    fail(TapeErrorKind::kMediaError, "media error reading block " + std::to_string(block), error,
         block);
  }
  position_.reset();
  fail(kind_of(error), "cannot read block " + std::to_string(block), error, block);
}

void StDrive::space_filemarks_forward(std::uint32_t count) {
  ensure_ready();
  if (count == 0) return;
  CommandTimer timer(stats_);
  ++stats_.filemark_spaces;
  in_early_warning_ = false;
  if (operation(MTFSF, to_count(count, device_)) == 0) {
    at_eod_ = false;
    query_position();
    return;
  }
  int error = errno;
  bool eod = error == EIO && GMT_EOD(query_gstat());
  query_position();
  if (eod) {
    at_eod_ = true;
    throw TapeError(TapeErrorKind::kEndOfData,
                    device_ + ": end of data at block " + std::to_string(*position_) + " before " +
                        std::to_string(count) + " filemark(s)",
                    *position_);
  }
  fail(kind_of(error), "cannot space forward over filemarks", error);
}

void StDrive::space_filemarks_backward(std::uint32_t count) {
  ensure_ready();
  if (count == 0) return;
  flush_writes();
  CommandTimer timer(stats_);
  ++stats_.filemark_spaces;
  in_early_warning_ = false;
  at_eod_ = false;
  if (operation(MTBSF, to_count(count, device_)) == 0) {
    query_position();
    return;
  }
  int error = errno;
  if (error == EIO && query_position() == 0) {
    throw TapeError(
        TapeErrorKind::kBeginningOfTape,
        device_ + ": beginning of tape before " + std::to_string(count) + " filemark(s)", 0);
  }
  fail(kind_of(error), "cannot space backward over filemarks", error);
}

void StDrive::locate(std::uint64_t block) {
  ensure_ready();
  flush_writes();
  CommandTimer timer(stats_);
  ++stats_.locates;
  in_early_warning_ = false;
  at_eod_ = false;
  if (operation(MTSEEK, to_count(block, device_)) == 0) {
    position_ = block;
    return;
  }
  int error = errno;
  if (error == EIO && query_position() < block) {
    at_eod_ = true;
    throw TapeError(TapeErrorKind::kEndOfData,
                    device_ + ": cannot locate block " + std::to_string(block) +
                        ": end of data is at block " + std::to_string(*position_),
                    block);
  }
  fail(kind_of(error), "cannot locate block " + std::to_string(block), error, block);
}

std::uint64_t StDrive::tell() {
  ensure_ready();
  return query_position();
}

void StDrive::rewind() {
  ensure_ready();
  flush_writes();
  CommandTimer timer(stats_);
  ++stats_.rewinds;
  if (operation(MTREW, 1) != 0) fail(kind_of(errno), "cannot rewind", errno);
  position_ = 0;
  at_eod_ = false;
  in_early_warning_ = false;
}

void StDrive::space_to_eod() {
  ensure_ready();
  CommandTimer timer(stats_);
  ++stats_.eod_spaces;
  if (operation(MTEOM, 1) != 0) fail(kind_of(errno), "cannot space to end of data", errno);
  query_position();
  at_eod_ = true;
  in_early_warning_ = false;
}

DriveStatus StDrive::status() {
  DriveStatus s;
  unsigned long gstat = query_gstat();
  if (!GMT_ONLINE(gstat)) {
    reopen_device();  // st re-checks the drive at open
    gstat = query_gstat();
  }
  if (!GMT_ONLINE(gstat)) {
    configured_ = false;
    return s;
  }
  if (!configured_) configure();
  s.loaded = true;
  s.write_protected = GMT_WR_PROT(gstat) || read_only_;
  s.eod = GMT_EOD(gstat) || at_eod_;
  s.early_warning = GMT_EOT(gstat) || in_early_warning_;
  // GMT_BOT needs st's file/block counters, which MTSEEK leaves unknown.
  s.bot = GMT_BOT(gstat) || query_position() == 0;
  return s;
}

void StDrive::load() {
  if (status().loaded) return;
  CommandTimer timer(stats_);
  if (operation(MTLOAD, 1) != 0) {
    throw TapeError(TapeErrorKind::kNotLoaded,
                    device_ + ": no tape to load (" + std::strerror(errno) + ")");
  }
  ++stats_.loads;
  configure();
}

void StDrive::unload() {
  if (!GMT_ONLINE(query_gstat())) return;
  flush_writes();
  CommandTimer timer(stats_);
  if (operation(MTOFFL, 1) != 0) fail(kind_of(errno), "cannot unload", errno);
  ++stats_.unloads;
  configured_ = false;
  position_.reset();
  at_eod_ = false;
  in_early_warning_ = false;
}

}  // namespace mixtape::tape
