// The tree that gen_catalog records and gen_tree makes on disk: run.sh
// compares a mount of the one with archivemount over a tar of the other and
// scans the one against the other, so both read the same arguments the same
// way and name every entry alike.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace mixtape::bench {

struct Layout {
  std::uint64_t files;   // all of them
  std::uint64_t dirs;    // leaf directories under tree/
  std::uint64_t big;     // entries of big/
  std::uint64_t spread;  // files - big, over the leaves
};

// argv[2..4]: [FILES=1000000] [DIRS=100000] [BIG_DIR_ENTRIES=100000]; big/
// never holds more than there are files.
inline Layout layout_from_args(int argc, char** argv) {
  Layout l{};
  l.files = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 1000000;
  l.dirs = argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 100000;
  l.big = std::min<std::uint64_t>(l.files, argc > 4 ? std::strtoull(argv[4], nullptr, 10) : 100000);
  l.spread = l.files - l.big;
  return l;
}

// PREFIX and N zero-padded to WIDTH digits: f0000012, d042.
inline std::string num(const char* prefix, std::uint64_t n, int width) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s%0*llu", prefix, width, static_cast<unsigned long long>(n));
  return buf;
}

}  // namespace mixtape::bench
