#include "engine/backup/walker.h"

#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "engine/common/common.h"

namespace mixtape::backup {
namespace {

struct DirCloser {
  void operator()(DIR* dir) const { ::closedir(dir); }
};

std::string strip_trailing_slashes(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

}  // namespace

std::string join_path(const std::string& dir, const std::string& name) {
  if (dir == "/") return "/" + name;
  return dir + "/" + name;
}

bool Walker::excluded(const std::string& path, const std::string& name) const {
  for (const auto& skip : options_.skip_paths)
    if (path == skip) return true;
  for (const auto& pattern : options_.excludes) {
    bool whole = pattern.find('/') != std::string::npos;
    if (::fnmatch(pattern.c_str(), whole ? path.c_str() : name.c_str(), 0) == 0) return true;
  }
  return false;
}

void Walker::walk(const std::string& root_in, WalkVisitor& visitor) {
  std::string root = strip_trailing_slashes(root_in);
  if (root.empty() || root[0] != '/') throw Error("scan root must be an absolute path: " + root_in);
  struct stat st {};
  if (::lstat(root.c_str(), &st) != 0) {
    throw SystemError("cannot scan " + root, errno);
  }
  if (!S_ISDIR(st.st_mode)) {
    visitor.entry(root, st);
    return;
  }
  int fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) throw SystemError("cannot open directory " + root, errno);
  visitor.directory(root, st);
  walk_directory(fd, root, st.st_dev, visitor);
}

// Takes ownership of dir_fd.
void Walker::walk_directory(int dir_fd, const std::string& path, dev_t root_dev,
                            WalkVisitor& visitor) {
  std::unique_ptr<DIR, DirCloser> dir(::fdopendir(dir_fd));
  if (!dir) {
    int error = errno;
    ::close(dir_fd);
    visitor.problem(path, std::strerror(error), error);
    visitor.directory_done(path);
    return;
  }
  std::vector<std::string> names;
  errno = 0;
  while (dirent* e = ::readdir(dir.get())) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    names.emplace_back(e->d_name);
    errno = 0;
  }
  if (errno != 0) {
    int error = errno;
    visitor.problem(path, std::string("reading directory: ") + std::strerror(error), error);
  }
  std::sort(names.begin(), names.end());

  int fd = ::dirfd(dir.get());
  for (const auto& name : names) {
    std::string child = join_path(path, name);
    if (excluded(child, name)) continue;
    struct stat st {};
    if (::fstatat(fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      int error = errno;
      visitor.problem(child, error == ENOENT ? "vanished during scan" : std::strerror(error),
                      error);
      continue;
    }
    if (!S_ISDIR(st.st_mode)) {
      visitor.entry(child, st);
      continue;
    }
    if (st.st_dev != root_dev && !options_.cross_filesystems) continue;
    int child_fd = ::openat(fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (child_fd < 0) {
      int error = errno;
      visitor.problem(child, error == ENOENT ? "vanished during scan" : std::strerror(error),
                      error);
      continue;
    }
    visitor.directory(child, st);
    walk_directory(child_fd, child, root_dev, visitor);
  }
  visitor.directory_done(path);
}

}  // namespace mixtape::backup
