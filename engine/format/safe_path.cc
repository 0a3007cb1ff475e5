// Member names from tape are hostile until proven otherwise: the restore
// side joins them to a target directory, so they must stay inside it.
#include "engine/format/format.h"

namespace mixtape::format {

std::optional<std::string> safe_relative_path(std::string_view member_name) {
  if (member_name.empty() || member_name.front() == '/') return std::nullopt;
  if (member_name.find('\0') != std::string_view::npos) return std::nullopt;
  std::string result;
  result.reserve(member_name.size());
  std::size_t start = 0;
  while (start <= member_name.size()) {
    std::size_t slash = member_name.find('/', start);
    if (slash == std::string_view::npos) slash = member_name.size();
    std::string_view component = member_name.substr(start, slash - start);
    start = slash + 1;
    if (component.empty() || component == ".") continue;
    if (component == "..") return std::nullopt;
    if (!result.empty()) result += '/';
    result += component;
  }
  if (result.empty()) return std::nullopt;
  return result;
}

namespace {

constexpr EnumNames<MemberType, 5> kMemberTypes{{{MemberType::kFile, "file"},
                                                 {MemberType::kDirectory, "directory"},
                                                 {MemberType::kSymlink, "symlink"},
                                                 {MemberType::kHardlink, "hardlink"},
                                                 {MemberType::kOther, "other"}}};

}  // namespace

std::string_view member_type_name(MemberType type) {
  return kMemberTypes.name(type);
}

}  // namespace mixtape::format
