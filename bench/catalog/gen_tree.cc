// Tree generator for bench/catalog/run.sh (see bench/README.md): the layout
// gen_catalog records, as empty files on disk, for timing `mixtape scan` of
// an unchanged tree (a scan compares each path's stat with its scan state
// and reads no file data, so the files need no content).
//
//   gen_tree DIR [FILES=1000000] [DIRS=100000] [BIG_DIR_ENTRIES=100000]
//
// Layout under DIR: big/f0000000.. holds BIG_DIR_ENTRIES files; the rest
// are spread evenly over DIRS leaf directories tree/dNNN/dNNNNNN.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "bench/catalog/layout.h"

using mixtape::bench::layout_from_args;
using mixtape::bench::num;

namespace {

void make_dir(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST)
    throw std::runtime_error("cannot create " + path + ": " + std::strerror(errno));
}

void make_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot create " + path + ": " + std::strerror(errno));
  ::close(fd);
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s DIR [FILES] [DIRS] [BIG_DIR_ENTRIES]\n", argv[0]);
    return 2;
  }
  const std::string root = argv[1];
  const auto [files, dirs, big, spread] = layout_from_args(argc, argv);
  const auto t0 = std::chrono::steady_clock::now();

  make_dir(root);
  make_dir(root + "/big");
  make_dir(root + "/tree");
  for (std::uint64_t i = 0; i < big; ++i) make_file(root + "/big/" + num("f", i, 7));
  for (std::uint64_t d = 0; d < dirs; ++d) {
    const std::string group = root + "/tree/" + num("d", d / 1000, 3);
    if (d % 1000 == 0) make_dir(group);
    const std::string leaf = group + "/" + num("d", d, 6);
    make_dir(leaf);
    for (std::uint64_t f = d * spread / dirs; f < (d + 1) * spread / dirs; ++f)
      make_file(leaf + "/" + num("f", f, 7));
  }
  std::printf("made %llu files in %llu+1 directories under %s in %.1f s\n",
              static_cast<unsigned long long>(files), static_cast<unsigned long long>(dirs),
              root.c_str(),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "gen_tree: %s\n", e.what());
  return 1;
}
