#include "engine/backup/attributes.h"

#include <grp.h>
#include <pwd.h>

#include <vector>

namespace mixtape::backup {

const std::string& OwnerNames::user(uid_t uid) {
  auto [it, inserted] = users_.try_emplace(uid);
  if (inserted) {
    std::vector<char> buffer(16384);
    struct passwd pw {};
    struct passwd* result = nullptr;
    if (::getpwuid_r(uid, &pw, buffer.data(), buffer.size(), &result) == 0 && result)
      it->second = pw.pw_name;
  }
  return it->second;
}

const std::string& OwnerNames::group(gid_t gid) {
  auto [it, inserted] = groups_.try_emplace(gid);
  if (inserted) {
    std::vector<char> buffer(16384);
    struct group gr {};
    struct group* result = nullptr;
    if (::getgrgid_r(gid, &gr, buffer.data(), buffer.size(), &result) == 0 && result)
      it->second = gr.gr_name;
  }
  return it->second;
}

catalog::Attributes attributes_of(const struct stat& st, OwnerNames& names) {
  catalog::Attributes attrs;
  attrs.mode = st.st_mode;
  attrs.uid = st.st_uid;
  attrs.gid = st.st_gid;
  attrs.uname = names.user(st.st_uid);
  attrs.gname = names.group(st.st_gid);
  attrs.mtime_ns = to_ns(st.st_mtim);
  return attrs;
}

}  // namespace mixtape::backup
