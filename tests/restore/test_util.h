// Helpers shared by the tests of engine/restore and engine/recover: a temp
// directory, running the built `mixtape`, a backed-up fixture tree, and
// surgery on SIMH images (finding a block's bytes, flipping one,
// truncating).
#pragma once

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "engine/catalog/catalog.h"
#include "engine/common/common.h"
#include "engine/format/format.h"
#include "engine/tape/tape.h"
#include "tests/support/test_support.h"

namespace mixtape::restore::testing {

inline constexpr char kMixtape[] = MIXTAPE_BINARY_DIR "/cli/mixtape";

using namespace mixtape::test_support;

// One block of a SIMH image: where its bytes are.
struct ImageBlock {
  bool filemark = false;
  std::uint64_t data_offset = 0;  // file offset of the record's first data byte
  std::uint64_t size = 0;
};

inline std::vector<ImageBlock> parse_image(const std::string& path) {
  std::string image = read_file(path);
  std::vector<ImageBlock> blocks;
  std::size_t at = 0;
  auto word = [&](std::size_t offset) {
    std::uint32_t w = 0;
    for (int i = 3; i >= 0; --i) w = (w << 8) | static_cast<unsigned char>(image[offset + i]);
    return w;
  };
  while (at + 4 <= image.size()) {
    std::uint32_t length = word(at);
    if (length == 0) {
      blocks.push_back({true, at, 0});
      at += 4;
      continue;
    }
    std::uint64_t padded = length + (length & 1);
    if (at + 8 + padded > image.size()) break;  // cut short: not data
    blocks.push_back({false, at + 4, length});
    at += 8 + padded;
  }
  return blocks;
}

// First block of every tape file.
inline std::vector<std::uint64_t> tape_files(const std::vector<ImageBlock>& blocks) {
  std::vector<std::uint64_t> starts{0};
  for (std::uint64_t b = 0; b < blocks.size(); ++b)
    if (blocks[b].filemark && b + 1 < blocks.size()) starts.push_back(b + 1);
  return starts;
}

inline void flip_byte(const std::string& path, std::uint64_t offset) {
  std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  f.get(c);
  f.seekp(static_cast<std::streamoff>(offset));
  f.put(static_cast<char>(c ^ 0x5a));
}

// A tree of files backed up by the real binary into an image library.
class Fixture {
 public:
  Fixture() { std::filesystem::create_directories(dir_ / "home"); }

  const std::string& root() const { return dir_.path(); }
  std::string src() const { return dir_ / "src"; }
  std::string catalog() const { return dir_ / "catalog.db"; }
  std::string library() const { return dir_ / "tapes"; }
  // Where `mixtape init` puts it by default, so commands find it unasked.
  std::string identity() const { return dir_ / "home/.config/mixtape/identity.txt"; }
  std::string image(const std::string& serial) const { return library() + "/" + serial + ".tap"; }
  std::string file(const std::string& name) const { return dir_ / name; }

  CommandResult mixtape(const std::string& args) {
    const std::string out = dir_ / "stdout", err = dir_ / "stderr";
    std::string command = "cd " + shell_quote(dir_.path()) +
                          " && HOME=" + shell_quote(dir_ / "home") +
                          " MIXTAPE_CATALOG=" + shell_quote(catalog()) + " " + kMixtape + " " +
                          args + " > " + shell_quote(out) + " 2> " + shell_quote(err);
    int rc = std::system(command.c_str());
    CommandResult run;
    run.status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    run.out = read_file(out);
    run.err = read_file(err);
    return run;
  }

  // `ls -R --versions --replicas [paths]`: every version and copy the
  // catalog claims, to compare before and after.
  std::string listing(const std::string& paths = "") {
    CommandResult r = mixtape("ls -R --versions --replicas" + (paths.empty() ? "" : " " + paths));
    EXPECT_EQ(r.status, 0) << r.err;
    return r.out;
  }
  // The catalog gone, with its WAL, as with a lost disk.
  void drop_catalog() {
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(catalog() + suffix);
  }

  // A tree: big.bin (3 MB), `small` files of 1-150 KB spread over dirs
  // d0..d3, an empty file, a symlink, an empty directory, a 0600 file.
  // With --archive-size 1M that is 5 archives or so.
  void make_tree(int small = 40) {
    write_file(src() + "/big.bin", random_text(3'000'000, 1));
    for (int i = 0; i < small; ++i) {
      std::string name = src() + "/d" + std::to_string(i % 4) + "/f" + std::to_string(i);
      write_file(name, random_text(1024 + (i * 7919) % 150000, 100 + i));
    }
    write_file(src() + "/empty.txt", "");
    write_file(src() + "/private.txt", "secret\n");
    ::chmod((src() + "/private.txt").c_str(), 0600);
    std::filesystem::create_directories(src() + "/empty-dir");
    std::filesystem::create_symlink("big.bin", src() + "/link");
  }

  void init(int copies) {
    CommandResult r = mixtape("init --copies " + std::to_string(copies) + " --identity-out " +
                              shell_quote(identity()));
    if (r.status != 0) throw Error("init failed: " + r.err);
  }

  void backup(const std::string& archive_size = "1M") {
    CommandResult r =
        mixtape("backup " + shell_quote(src()) + " --library " + shell_quote(library()) +
                " --new-library --capacity 64M --archive-size " + archive_size);
    if (r.status != 0) throw Error("backup failed: " + r.err + r.out);
  }

  // `mixtape restore` of the whole source tree from the library into
  // file(to), with `extra` arguments (keys), and what `diff -r` then finds
  // between it and the source: "" when every file, symlink and directory
  // came back with its bytes.
  std::string restore_differences(const std::string& to, const std::string& extra = "") {
    CommandResult r = mixtape("restore " + shell_quote(src()) + " --to " + shell_quote(file(to)) +
                              " --library " + shell_quote(library()) + extra);
    if (r.status != 0)
      return "restore failed (status " + std::to_string(r.status) + "): " + r.err + r.out;
    CommandResult d = test_support::run_shell("diff -r --no-dereference " + shell_quote(src()) +
                                              " " + shell_quote(file(to) + src()));
    return d.status == 0 ? "" : "diff -r: " + d.out + d.err;
  }

  // The replicas of the newest version of a path, by tape serial.
  std::vector<catalog::LocatedCopy> replicas(const std::string& path) {
    auto catalog = catalog::Catalog::open_read_only(this->catalog());
    auto entry = catalog.resolve(path);
    if (!entry || entry->is_dir) throw Error(path + " is not a file in the catalog");
    return catalog.copies_of(entry->version.id);
  }

  catalog::VersionRow version(const std::string& path) {
    auto catalog = catalog::Catalog::open_read_only(this->catalog());
    auto entry = catalog.resolve(path);
    if (!entry || entry->is_dir) throw Error(path + " is not a file in the catalog");
    return entry->version;
  }

  // Flips one byte of the ciphertext at plaintext offset `offset` of the
  // replica's archive, in its tape image (the record headers skipped).
  void flip(const catalog::LocatedCopy& replica, std::uint64_t offset) {
    format::ArchiveGeometry geometry;
    geometry.first_block = replica.archive.first_block;
    geometry.record_size = replica.tape.record_size;
    geometry.encrypted = replica.archive.encrypted;
    geometry.age_header_length = replica.archive.age_header_len;
    format::TapePosition at = format::locate(geometry, offset);
    // The byte at `offset` inside chunk at.chunk: its ciphertext position is
    // the chunk start plus offset_in_chunk.
    std::uint64_t stored = at.stored_offset + at.offset_in_chunk;
    std::uint64_t block = replica.archive.first_block + stored / replica.tape.record_size;
    std::uint64_t in_block = stored % replica.tape.record_size;
    const std::string path = image(replica.tape.serial);
    auto blocks = parse_image(path);
    if (block >= blocks.size() || blocks[block].filemark) throw Error("no record at that block");
    flip_byte(path, blocks[block].data_offset + in_block);
  }

 private:
  TempDir dir_;
};

// A test over Fixture's tree, made before each test.
class TreeTest : public ::testing::Test {
 protected:
  void SetUp() override { f_.make_tree(); }

  // `mixtape restore ARGS` (shell words) from the library into file(to),
  // its --stats-json counters left in file("stats.json").
  CommandResult restore_into(const std::string& args, const std::string& to) {
    return f_.mixtape("restore " + args + " --to " + shell_quote(f_.file(to)) + " --library " +
                      shell_quote(f_.library()) + " --stats-json " +
                      shell_quote(f_.file("stats.json")));
  }
  std::string restored(const std::string& path, const std::string& to = "out") {
    return f_.file(to) + path;
  }
  // Whether `path` came back into file(to) with its bytes.
  bool same(const std::string& path, const std::string& to = "out") {
    return std::filesystem::exists(restored(path, to)) &&
           read_file(restored(path, to)) == read_file(path);
  }

  Fixture f_;
};

}  // namespace mixtape::restore::testing
