// Private to engine/backup: catalog attributes from stat(2) results.
#pragma once

#include <sys/stat.h>

#include <map>
#include <string>

#include "engine/catalog/catalog.h"

namespace mixtape::backup {

inline std::int64_t to_ns(const struct timespec& t) {
  return static_cast<std::int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec;
}

// Resolves uid/gid to names once each (getpwuid_r is slow over NSS).
class OwnerNames {
 public:
  const std::string& user(uid_t uid);
  const std::string& group(gid_t gid);

 private:
  std::map<uid_t, std::string> users_;
  std::map<gid_t, std::string> groups_;
};

catalog::Attributes attributes_of(const struct stat& st, OwnerNames& names);

}  // namespace mixtape::backup
