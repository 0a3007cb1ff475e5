// Catalog generator for bench/catalog/run.sh (see bench/README.md): builds a
// catalog of N files through the public catalog API, the way a backup would
// record them (dirs, files, versions, one tape, archives, copies), batched in
// large transactions.
//
//   gen_catalog CATALOG.db [FILES=1000000] [DIRS=100000] [BIG_DIR_ENTRIES=100000]
//               [RECIPIENT]
//
// With an age RECIPIENT (age1...) the catalog encrypts tapes to it, as one
// made by `mixtape init` does; without, it writes plain tapes.
//
// Layout: /bench/big/f0000000.. holds BIG_DIR_ENTRIES files; the other
// FILES - BIG_DIR_ENTRIES are spread evenly over DIRS leaf directories
// /bench/tree/dNNN/dNNNNNN (1000 leaves per intermediate directory). Every
// file has one version (a pseudo-random hash, sizes 1 KiB..1 MiB) and one
// copy on tape BENCH1, in archives of 10,000 members.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <sys/stat.h>

#include "bench/catalog/layout.h"
#include "engine/catalog/catalog.h"

using namespace mixtape::catalog;
using mixtape::bench::layout_from_args;
using mixtape::bench::num;

namespace {

std::uint64_t splitmix(std::uint64_t& x) {
  std::uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CATALOG.db [FILES] [DIRS] [BIG_DIR_ENTRIES] [RECIPIENT]\n",
                 argv[0]);
    return 2;
  }
  const std::string path = argv[1];
  const auto [files, dirs, big, spread] = layout_from_args(argc, argv);
  const std::uint64_t batch = 50000;  // files per transaction
  const std::uint64_t archive_members = 10000;
  const std::int64_t mtime = 1700000000LL * 1000000000LL;

  auto t0 = std::chrono::steady_clock::now();
  CatalogConfig config;
  config.encryption = Encryption::kNone;
  if (argc > 5) {
    config.encryption = Encryption::kRecipients;
    config.recipients = {argv[5]};
  }
  config.default_copies = 1;
  Catalog cat = Catalog::create(path, config);

  const Id run = cat.begin_run(RunKind::kBackup, {"/bench"});
  TapeRow tape;
  tape.serial = "BENCH1";
  tape.capacity = 18ULL << 40;
  tape.record_size = 512 * 1024;
  tape.encrypted = false;
  tape.state = TapeState::kOpen;
  const Id tape_id = cat.add_tape(tape);

  Attributes dir_attrs{S_IFDIR | 0755, 0, 0, "root", "root", mtime};
  std::uint64_t rng = 42, done = 0, tape_file = 1, block = 0;
  ArchiveRow archive;
  Id archive_id = 0;
  std::uint64_t in_archive = 0, offset = 0;

  // One file: ensure_file, record_version, add_copy (a new archive every
  // archive_members files).
  auto add_file = [&](Id dir_id, const std::string& name) {
    if (archive_id == 0 || in_archive == archive_members) {
      archive = ArchiveRow{};
      archive.tape_id = tape_id;
      archive.index_file = static_cast<std::int64_t>(tape_file++);
      archive.index_block = block++;
      archive.archive_file = static_cast<std::int64_t>(tape_file++);
      archive.first_block = block;
      archive.encrypted = false;
      archive.plain_bytes = archive.cipher_bytes = 1ULL << 30;
      archive.members = archive_members;
      archive.written_at_ns = mtime;
      archive.run_id = run;
      archive_id = cat.add_archive(archive);
      block += 2048;
      in_archive = 0;
      offset = 0;
    }
    Id file_id = cat.ensure_file(dir_id, name);
    VersionRow v;
    v.kind = VersionKind::kFile;
    v.size = 1024 + splitmix(rng) % (1 << 20);
    for (std::size_t i = 0; i < v.hash.size(); i += 8) {
      std::uint64_t r = splitmix(rng);
      for (int j = 0; j < 8; ++j) v.hash[i + j] = static_cast<std::uint8_t>(r >> (8 * j));
    }
    v.attrs = Attributes{S_IFREG | 0644, 1000, 1000, "bench", "bench", mtime};
    auto rec = cat.record_version(file_id, v, run);
    CopyRow c;
    c.archive_id = archive_id;
    c.version_id = rec.id;
    c.header_offset = offset;
    c.data_offset = offset + 512;
    offset += 512 + (v.size + 511) / 512 * 512;
    cat.add_copy(c);
    ++in_archive;
    ++done;
  };

  auto progress = [&] {
    std::fprintf(stderr, "\r%llu/%llu files, %.1f s", static_cast<unsigned long long>(done),
                 static_cast<unsigned long long>(files), seconds_since(t0));
  };

  {
    auto tx = cat.transaction();
    Id bench = cat.ensure_dir("/bench");
    cat.touch_dir(kRootDirId, dir_attrs, run);
    cat.touch_dir(bench, dir_attrs, run);
    // The big directory.
    Id big_dir = cat.ensure_dir("/bench/big");
    cat.touch_dir(big_dir, dir_attrs, run);
    Id tree_dir = cat.ensure_dir("/bench/tree");
    cat.touch_dir(tree_dir, dir_attrs, run);
    tx.commit();
    for (std::uint64_t i = 0; i < big;) {
      auto t = cat.transaction();
      for (std::uint64_t end = std::min(big, i + batch); i < end; ++i) {
        add_file(big_dir, num("f", i, 7));
      }
      t.commit();
      progress();
    }
  }
  // The spread tree: leaf d gets files [d*spread/dirs, (d+1)*spread/dirs).
  std::uint64_t d = 0;
  while (d < dirs) {
    auto t = cat.transaction();
    std::uint64_t in_tx = 0;
    for (; d < dirs && in_tx < batch; ++d) {
      std::string dir_path = "/bench/tree/" + num("d", d / 1000, 3) + "/" + num("d", d, 6);
      Id dir_id = cat.ensure_dir(dir_path);
      if (d % 1000 == 0) cat.touch_dir(cat.dir(dir_id)->parent, dir_attrs, run);
      cat.touch_dir(dir_id, dir_attrs, run);
      std::uint64_t first = d * spread / dirs, last = (d + 1) * spread / dirs;
      for (std::uint64_t f = first; f < last; ++f, ++in_tx) add_file(dir_id, num("f", f, 7));
    }
    t.commit();
    progress();
  }
  cat.finish_run(run);
  std::fprintf(stderr, "\n");
  std::printf("generated %llu files in %llu+1 directories in %.1f s\n",
              static_cast<unsigned long long>(done), static_cast<unsigned long long>(dirs),
              seconds_since(t0));
  return 0;
}
