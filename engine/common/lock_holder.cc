// flock_holder: naming the process that holds a lock, so that "in use"
// says by whom (a mount holding a tape, a backup holding the catalog).
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "engine/common/common.h"

namespace mixtape {

std::string process_command_line(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  std::string text;
  for (std::string arg; std::getline(in, arg, '\0');) {
    if (!text.empty()) text += ' ';
    text += arg;
  }
  for (char& c : text)
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  constexpr std::size_t kLimit = 120;
  if (text.size() > kLimit) text = text.substr(0, kLimit - 3) + "...";
  return text;
}

bool process_exists(pid_t pid) {
  return pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM);
}

std::string flock_holder(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return {};
  // /proc/locks: "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF"; the
  // device is major:minor in hex, the inode in decimal. "->" lines are
  // waiters, not holders.
  char wanted[64];
  std::snprintf(wanted, sizeof wanted, "%02x:%02x:%llu", major(st.st_dev), minor(st.st_dev),
                static_cast<unsigned long long>(st.st_ino));
  std::ifstream locks("/proc/locks");
  for (std::string line; std::getline(locks, line);) {
    std::istringstream fields(line);
    std::string number, kind, mode, access, pid, device;
    fields >> number >> kind;
    if (kind == "->") continue;
    fields >> mode >> access >> pid >> device;
    if (kind != "FLOCK" || device != wanted) continue;
    const pid_t holder = static_cast<pid_t>(std::strtol(pid.c_str(), nullptr, 10));
    if (holder <= 0) continue;
    if (holder == ::getpid()) return "this process";
    std::string command = process_command_line(holder);
    return "process " + std::to_string(holder) + (command.empty() ? "" : " (" + command + ")");
  }
  return {};
}

}  // namespace mixtape
