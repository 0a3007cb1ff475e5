// The daemon's share of `find` over a mount, without FUSE or the kernel:
// walks latest/ through fs::Tree with the calls `find` makes the daemon
// answer (bench/catalog/run.sh reports it as "Tree walk"). Each directory is
// listed in calls holding what fits in the reply to a 32 KiB getdents buffer
// (readdirplus entries), then one more call at the last entry's cookie, the
// one that confirms the end, as the kernel sends it. The process's CPU time
// is the cost of listing the catalog, steadier than the mount's when the
// machine is shared.
//
//   walk_tree CATALOG.db [REPEAT=1] [PATH=/ (below latest/)]
#include <sys/resource.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "fs/tree.h"

using mixtape::fs::DirEntry;
using mixtape::fs::Ino;
using mixtape::fs::Tree;

namespace {

// What a readdirplus entry takes in a reply (struct fuse_direntplus: the
// 128-byte entry_out and the 24-byte dirent header before the name, padded
// to 8 bytes), and the reply's room: the getdents buffer glibc sizes by a
// directory's st_blksize (fs/fuse_fs.cc sets 32 KiB).
constexpr std::size_t kEntryHead = 152;
constexpr std::size_t kReplyRoom = 32 << 10;

double cpu_seconds() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return s(usage.ru_utime) + s(usage.ru_stime);
}

struct Counts {
  std::uint64_t entries = 0;
  std::uint64_t calls = 0;
};

void walk(Tree& tree, Ino dir, Counts& counts) {
  std::vector<Ino> subdirs;
  std::uint64_t cookie = 0;
  for (;;) {
    std::size_t used = 0;
    std::uint64_t added = 0;
    ++counts.calls;
    tree.list(dir, cookie, [&](const DirEntry& e, std::uint64_t next) {
      const std::size_t need = (kEntryHead + e.name.size() + 7) & ~std::size_t{7};
      if (used + need > kReplyRoom) return false;
      used += need;
      ++added;
      cookie = next;
      if ((e.attr.mode & S_IFMT) == S_IFDIR) subdirs.push_back(e.attr.ino);
      return true;
    });
    counts.entries += added;
    if (added == 0) break;
  }
  for (Ino sub : subdirs) walk(tree, sub, counts);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: walk_tree CATALOG.db [REPEAT=1] [PATH]\n");
    return 2;
  }
  const int repeat = argc > 2 ? std::atoi(argv[2]) : 1;
  try {
    Tree tree(argv[1]);
    auto start = tree.lookup(1, "latest");
    if (!start) throw mixtape::Error("no latest/ in the mount's root");
    const std::string path = argc > 3 ? argv[3] : "/";
    for (std::size_t begin = 0; begin < path.size();) {
      std::size_t end = path.find('/', begin);
      if (end == std::string::npos) end = path.size();
      if (end > begin) {
        start = tree.lookup(start->attr.ino, path.substr(begin, end - begin));
        if (!start) throw mixtape::Error("no " + path + " below latest/");
      }
      begin = end + 1;
    }
    for (int i = 0; i < repeat; ++i) {
      Counts counts;
      const double cpu0 = cpu_seconds();
      const auto t0 = std::chrono::steady_clock::now();
      walk(tree, start->attr.ino, counts);
      const double wall =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::printf("walk: %llu entries, %llu list calls, %.2f s wall, %.2f s CPU\n",
                  static_cast<unsigned long long>(counts.entries),
                  static_cast<unsigned long long>(counts.calls), wall, cpu_seconds() - cpu0);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "walk_tree: %s\n", e.what());
    return 1;
  }
  return 0;
}
