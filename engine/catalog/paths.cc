// Path rules of the catalog. Paths are bytes: nothing here assumes UTF-8.
#include <cstdio>

#include "engine/catalog/internal.h"

namespace mixtape::catalog::internal {

bool is_valid_name(std::string_view name) {
  return !name.empty() && name.size() <= kMaxNameBytes && name != "." && name != ".." &&
         name.find('/') == std::string_view::npos && name.find('\0') == std::string_view::npos;
}

bool is_valid_path(std::string_view path) {
  if (path.empty() || path.front() != '/' || path.size() > kMaxPathBytes) return false;
  if (path == "/") return true;
  std::size_t start = 1;
  while (start <= path.size()) {
    std::size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    if (!is_valid_name(path.substr(start, end - start))) return false;
    start = end + 1;
  }
  return true;
}

bool is_valid_serial(std::string_view serial) {
  if (serial.empty() || serial.size() > 32) return false;
  for (char c : serial) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return serial != "." && serial != "..";
}

std::string quote(std::string_view bytes) {
  return "\"" + mixtape::printable(bytes, 200) + "\"";
}

void check_path(std::string_view path, std::string_view what) {
  if (!is_valid_path(path)) {
    throw CatalogError(std::string(what) + ": " + quote(path) +
                       " is not an absolute normalised path");
  }
}

void check_name(std::string_view name, std::string_view what) {
  if (!is_valid_name(name)) {
    throw CatalogError(std::string(what) + ": " + quote(name) + " is not a valid file name");
  }
}

std::string join_path(std::string_view dir, std::string_view name) {
  std::string path(dir);
  if (path != "/") path += '/';
  path += name;
  return path;
}

std::pair<std::string_view, std::string_view> split_path(std::string_view path) {
  std::size_t slash = path.rfind('/');
  std::string_view parent = slash == 0 ? path.substr(0, 1) : path.substr(0, slash);
  return {parent, path.substr(slash + 1)};
}

std::pair<std::string, std::string> subtree_bounds(std::string_view prefix) {
  if (prefix == "/") return {"/", "0"};
  return {std::string(prefix) + "/", std::string(prefix) + "0"};
}

bool is_under(std::string_view path, std::string_view root) {
  if (root == "/") return true;
  return path.starts_with(root) && (path.size() == root.size() || path[root.size()] == '/');
}

}  // namespace mixtape::catalog::internal
