// StDrive: the Drive contract over the Linux st driver (variable-block mode).
// This file: the system-call seam, opening the device, waiting for a drive
// to become ready, st's options, positioning and status. Reading and
// writing, and what their errors mean, are in st_drive_io.cc.
//
// The st driver is the authority on position and status, but a few of its
// answers need interpretation (docs/TAPE.md has the full mapping):
//  - st learns whether a tape is ready only at open() and MTLOAD: with
//    O_NONBLOCK, a drive that is still loading or calibrating opens with
//    neither GMT_ONLINE nor GMT_DR_OPEN. StDrive reopens and waits, saying so.
//  - MTIOCGET and MTIOCPOS fail with EIO while st's position is unknown (a
//    bus or device reset; MTIOCGET answers again since Linux 6.13, MTIOCPOS
//    not) and while the drive is not ready: kPositionLost.
//  - st writes a filemark by itself before MTREW, MTOFFL, MTSEEK and MTBSF
//    (and at close) if the last operation was a write; StDrive issues
//    MTWEOF 0 (a flush) first, so no filemark appears that the caller did not
//    write.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mtio.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "engine/tape/st_drive_internal.h"

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

std::optional<std::string> SystemTapeSyscalls::driver_attribute(const std::string& path,
                                                                const std::string& name) {
  // /dev/tape/by-id/... links to /dev/nstN; st's class directory is nstN.
  std::error_code error;
  const std::filesystem::path device = std::filesystem::canonical(path, error);
  if (error) return std::nullopt;
  std::ifstream in("/sys/class/scsi_tape/" + device.filename().string() + "/" + name);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  if (!in && !in.eof()) return std::nullopt;
  return text.str();
}

// ------------------------------------------------------------------ StDrive

namespace st_detail {

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

std::string duration_text(std::chrono::steady_clock::duration d) {
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(d).count();
  if (seconds < 120) return std::to_string(seconds) + " s";
  const auto minutes = seconds / 60;
  if (minutes < 120) return std::to_string(minutes) + " min";
  const auto rest = minutes % 60;
  return std::to_string(minutes / 60) + " h" + (rest ? " " + std::to_string(rest) + " min" : "");
}

}  // namespace st_detail

using st_detail::CommandTimer;
using st_detail::duration_text;
using st_detail::kind_of;
using st_detail::to_count;

StDrive::StDrive(std::string device, TapeSyscalls& syscalls, StDriveOptions options)
    : device_(std::move(device)), sys_(syscalls), options_(std::move(options)) {
  open_device();
}

StDrive::StDrive(std::string device, StDriveOptions options)
    : device_(std::move(device)),
      owned_syscalls_(std::make_unique<SystemTapeSyscalls>()),
      sys_(*owned_syscalls_),
      options_(std::move(options)) {
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

void StDrive::position_lost(const std::string& what, int error,
                            std::optional<std::uint64_t> block) {
  position_.reset();
  at_eod_ = false;
  throw TapeError(TapeErrorKind::kPositionLost,
                  device_ + ": " + what + ": the drive lost its position (a bus or device " +
                      "reset?) or is not ready (" + std::strerror(error) +
                      "); nothing is known to be wrong with the tape",
                  block);
}

void StDrive::say(const std::string& line) {
  if (options_.notice) options_.notice(line);
}

std::chrono::steady_clock::time_point StDrive::clock_now() const {
  return options_.now ? options_.now() : std::chrono::steady_clock::now();
}

void StDrive::open_device() {
  // O_NONBLOCK: open even with no tape, a tape that is not ready, or a
  // write-protected one (st.rst), so status() can report that instead of
  // failing.
  read_only_ = options_.read_only;
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
  int rc;
  do {
    rc = sys_.ioctl_get(fd(), status);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    const int error = errno;
    if (error == EIO) position_lost("cannot read drive status (MTIOCGET)", error, std::nullopt);
    fail(TapeErrorKind::kDeviceError, "cannot read drive status (MTIOCGET)", error);
  }
  return static_cast<unsigned long>(status.mt_gstat);
}

std::optional<std::uint64_t> StDrive::try_position() {
  mtpos position{};
  int rc;
  do {
    rc = sys_.ioctl_pos(fd(), position);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) return std::nullopt;
  return static_cast<std::uint64_t>(position.mt_blkno);
}

std::uint64_t StDrive::query_position() {
  std::optional<std::uint64_t> at = try_position();
  if (!at) {
    const int error = errno;
    if (error == ENOMEDIUM) fail(TapeErrorKind::kNotLoaded, "cannot read tape position", error);
    if (error == EIO) position_lost("cannot read tape position (MTIOCPOS)", error, std::nullopt);
    fail(TapeErrorKind::kDeviceError, "cannot read tape position (MTIOCPOS)", error);
  }
  position_ = *at;
  return *at;
}

// ------------------------------------------------------------ readiness

StDrive::Readiness StDrive::look() {
  unsigned long gstat = query_gstat();
  if (!GMT_ONLINE(gstat)) {
    reopen_device();  // st looks at the drive again only at open
    gstat = query_gstat();
  }
  if (GMT_ONLINE(gstat)) return Readiness::kReady;
  configured_ = false;
  // st sets GMT_DR_OPEN for "medium not present"; a drive that answers NOT
  // READY for another reason (loading, calibrating) shows neither bit.
  return GMT_DR_OPEN(gstat) ? Readiness::kNoTape : Readiness::kNotReady;
}

StDrive::Readiness StDrive::wait_until_ready(Readiness state) {
  const auto start = clock_now();
  const auto deadline = start + options_.ready_timeout;
  auto next_report = start + options_.ready_report;
  say(device_ + ": the drive is not ready yet (loading the cartridge, or calibrating a new one, " +
      "which takes up to two hours for LTO-9); waiting up to " +
      duration_text(options_.ready_timeout));
  while (state == Readiness::kNotReady) {
    const auto now = clock_now();
    if (now >= deadline) {
      throw TapeError(TapeErrorKind::kTimeout,
                      device_ + ": the drive did not become ready in " +
                          duration_text(options_.ready_timeout) +
                          " (it still answers NOT READY: does it need attention?)");
    }
    if (now >= next_report) {
      say(device_ + ": still waiting for the drive to become ready (" + duration_text(now - start) +
          " so far)");
      next_report += options_.ready_report;
    }
    const auto pause = std::min<std::chrono::steady_clock::duration>(
        std::chrono::steady_clock::duration(options_.ready_poll), deadline - now);
    if (options_.sleep) {
      options_.sleep(pause);
    } else {
      std::this_thread::sleep_for(pause);
    }
    state = look();
  }
  if (state == Readiness::kReady) {
    say(device_ + ": the drive is ready (after " + duration_text(clock_now() - start) + ")");
  }
  return state;
}

void StDrive::ensure_ready() {
  if (configured_) return;
  Readiness state = look();
  if (state == Readiness::kNotReady) state = wait_until_ready(state);
  if (state == Readiness::kNoTape)
    throw TapeError(TapeErrorKind::kNotLoaded, device_ + ": no tape loaded");
  configure();
}

void StDrive::configure() {
  if (operation(MTSETBLK, 0) != 0) {
    int error = errno;
    fail(kind_of(error) == TapeErrorKind::kNotLoaded ? TapeErrorKind::kNotLoaded
                                                     : TapeErrorKind::kDeviceError,
         "cannot set variable-block mode (MTSETBLK 0)", error);
  }
  check_driver_options();
  configured_ = true;
  unflushed_write_ = false;
  at_eod_ = false;
  in_early_warning_ = false;
  query_position();
}

// st's options are the driver's, not the tape's: looked at once. Logical
// block numbers in MTSEEK/MTIOCPOS are a must (the catalog stores them);
// setting them needs root, so without root they must be set already.
void StDrive::check_driver_options() {
  if (options_checked_) return;
  int set_error = 0;
  if (operation(MTSETDRVBUFFER, MT_ST_SETBOOLEANS | MT_ST_SCSI2LOGICAL) != 0) set_error = errno;
  const std::string set_it = "run `mt -f " + device_ +
                             " stsetoptions scsi2logical` as root once (or put scsi2logical " +
                             "in /etc/stinit.def)";
  std::optional<unsigned long> options;
  if (std::optional<std::string> text = sys_.driver_attribute(device_, "options")) {
    char* end = nullptr;
    const unsigned long value = std::strtoul(text->c_str(), &end, 0);
    if (end != text->c_str()) options = value;
  }
  if (!options) {
    if (set_error != 0) {
      say(device_ + ": cannot set st's scsi2logical option (" + std::strerror(set_error) +
          ": it needs root) nor read st's options to see whether it is set; unless it is, block " +
          "numbers are not logical and mixtape would look for its data in the wrong places: " +
          set_it);
    }
    options_checked_ = true;
    return;
  }
  if ((*options & MT_ST_SCSI2LOGICAL) == 0) {
    throw TapeError(TapeErrorKind::kDeviceError,
                    device_ + ": st's scsi2logical option is off" +
                        (set_error != 0 ? " and only root can set it" : "") +
                        "; mixtape needs logical block numbers: " + set_it);
  }
  if ((*options & MT_ST_TWO_FM) != 0) {
    say(device_ + ": st's two_fm option is on: a write cut short by a crash then ends in two " +
        "filemarks (an empty tape file); `mt -f " + device_ +
        " stclearoptions two_fm` turns it off");
  }
  if ((*options & MT_ST_NO_BLKLIMS) != 0) {
    say(device_ + ": st's no_blklims option is on: st does not know the drive's largest block, " +
        "so a read larger than it fails with an I/O error instead of being refused; `mt -f " +
        device_ + " stclearoptions no_blklims` turns it off");
  }
  options_checked_ = true;
}

// ------------------------------------------------------------ positioning

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

// ------------------------------------------------------------ status, load

DriveStatus StDrive::status() {
  DriveStatus s;
  const Readiness state = look();
  if (state != Readiness::kReady) {
    s.becoming_ready = state == Readiness::kNotReady;
    return s;
  }
  if (!configured_) configure();
  const unsigned long gstat = query_gstat();
  s.loaded = true;
  s.write_protected = GMT_WR_PROT(gstat) || read_only_;
  s.eod = GMT_EOD(gstat) || at_eod_;
  s.early_warning = GMT_EOT(gstat) || in_early_warning_;
  // GMT_BOT needs st's file/block counters, which MTSEEK leaves unknown.
  s.bot = GMT_BOT(gstat) || query_position() == 0;
  return s;
}

void StDrive::load() {
  Readiness state = look();
  if (state == Readiness::kReady) {
    if (!configured_) configure();
    return;
  }
  CommandTimer timer(stats_);
  if (state == Readiness::kNoTape) {
    // A cartridge that was unloaded can still be in the drive: MTLOAD
    // threads it again. Without one, st still says "no tape" afterwards.
    const bool loaded = operation(MTLOAD, 1) == 0;
    const int error = errno;
    state = look();
    if (state == Readiness::kNoTape) {
      throw TapeError(
          TapeErrorKind::kNotLoaded,
          device_ + ": no tape to load" +
              (loaded ? std::string() : " (" + std::string(std::strerror(error)) + ")"));
    }
    if (loaded) ++stats_.loads;
  }
  if (state == Readiness::kNotReady) state = wait_until_ready(state);
  if (state != Readiness::kReady)
    throw TapeError(TapeErrorKind::kNotLoaded, device_ + ": no tape to load");
  configure();
}

void StDrive::unload() {
  // MTOFFL is one of the commands st allows after a reset; MTIOCGET was not
  // before Linux 6.13, so its failure does not stop the unload.
  mtget status{};
  if (sys_.ioctl_get(fd(), status) == 0 && !GMT_ONLINE(status.mt_gstat)) return;
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
