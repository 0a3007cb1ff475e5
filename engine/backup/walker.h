// Private to engine/backup: walks source roots the way a backup must.
//
// Directories are opened relative to their parent's descriptor (openat), so
// paths of any length work and a directory renamed mid-walk cannot redirect
// the walk elsewhere. Symlinks are recorded, never followed, so loops are
// harmless. Other filesystems are not entered unless asked. Anything that
// vanishes or cannot be read is reported to the visitor and skipped; a walk
// never fails because of one bad entry.
#pragma once

#include <sys/stat.h>

#include <functional>
#include <string>
#include <vector>

#include "engine/backup/backup.h"

namespace mixtape::backup {

class WalkVisitor {
 public:
  virtual ~WalkVisitor() = default;
  // A directory about to be descended into (roots included).
  virtual void directory(const std::string& path, const struct stat& st) = 0;
  // Every entry that is not a directory: regular files, symlinks, others.
  virtual void entry(const std::string& path, const struct stat& st) = 0;
  // Called once a directory's entries have all been visited.
  virtual void directory_done(const std::string& /*path*/) {}
  // Something could not be read: `error` is the errno (ENOENT: it vanished
  // between readdir and stat, so it is gone rather than unreadable).
  virtual void problem(const std::string& path, const std::string& what, int error) = 0;
};

class Walker {
 public:
  explicit Walker(WalkOptions options) : options_(std::move(options)) {}
  // root must be an absolute path; trailing slashes are ignored.
  void walk(const std::string& root, WalkVisitor& visitor);

 private:
  bool excluded(const std::string& path, const std::string& name) const;
  void walk_directory(int dir_fd, const std::string& path, dev_t root_dev, WalkVisitor& visitor);

  WalkOptions options_;
};

// Joins a directory path and a name ("/" + "a" is "/a").
std::string join_path(const std::string& dir, const std::string& name);

}  // namespace mixtape::backup
