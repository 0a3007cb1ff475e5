// Private to StDrive (st_drive.cc, st_drive_io.cc): its file descriptor and
// small helpers shared by its two files.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "engine/tape/st_drive.h"

namespace mixtape::tape {

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

namespace st_detail {

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

// The error kind an errno from st means when nothing more is known.
TapeErrorKind kind_of(int error);
// n as an ioctl count, or kInvalidArgument.
int to_count(std::uint64_t n, const std::string& device);
// "45 s", "12 min", "2 h 30 min".
std::string duration_text(std::chrono::steady_clock::duration d);

}  // namespace st_detail
}  // namespace mixtape::tape
