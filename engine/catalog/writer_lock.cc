// WriterLock: one writing command per catalog at a time (catalog.h).
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "engine/catalog/catalog.h"

namespace mixtape::catalog {
namespace {

// The holder as the lock file records it: "1234 mixtape backup /home".
std::string recorded_holder(int fd) {
  char text[512];
  ssize_t n = ::pread(fd, text, sizeof text - 1, 0);
  if (n <= 0) return {};
  std::string line(text, static_cast<std::size_t>(n));
  line = line.substr(0, line.find('\n'));
  const auto space = line.find(' ');
  if (space == std::string::npos || space == 0) return {};
  return "process " + line.substr(0, space) + " (" + line.substr(space + 1) + ")";
}

}  // namespace

std::string WriterLock::path_for(const std::string& catalog_path) {
  return catalog_path + ".lock";
}

WriterLock::WriterLock(const std::string& catalog_path) {
  const std::string path = path_for(catalog_path);
  int raw = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (raw < 0) raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);  // another user's lock file
  if (raw < 0) throw SystemError("cannot open the catalog's lock file " + path, errno);
  fd_.reset(raw);
  if (::flock(fd_.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) throw SystemError("cannot lock " + path, errno);
    // /proc/locks knows the process for sure; the file says what it runs
    // when /proc cannot tell (another pid namespace).
    std::string holder = flock_holder(fd_.get());
    if (holder.empty()) holder = recorded_holder(fd_.get());
    if (holder.empty()) holder = "another process";
    throw CatalogError("the catalog " + catalog_path + " is in use by " + holder +
                       ": one command writes to a catalog at a time; wait for it to finish");
  }
  // Whoever holds the lock says so in the file, for messages like the above.
  const std::string line =
      std::to_string(::getpid()) + " " + process_command_line(::getpid()) + "\n";
  if (::ftruncate(fd_.get(), 0) == 0) {
    if (::pwrite(fd_.get(), line.data(), line.size(), 0) < 0) {
      // A lock file we may not write (another user's) still locks.
    }
  }
}

}  // namespace mixtape::catalog
