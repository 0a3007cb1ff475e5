// The kinds of damage a catalog database suffers, for the catalog tests and
// the mount tests: bytes flipped in the middle, cut to half its size, its
// header destroyed, a write-ahead log from another catalog beside it.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "tests/faults/faults_test_util.h"

namespace mixtape::faults::testing {

// Flips `count` bytes at `offset` of a file.
inline void flip_bytes(const std::string& path, std::uint64_t offset, std::size_t count) {
  std::string data = read_file(path);
  for (std::size_t i = 0; i < count && offset + i < data.size(); ++i) data[offset + i] ^= 0x5a;
  write_file(path, data);
}

inline std::uint64_t page_size(const std::string& db) {
  std::string header = read_file(db).substr(0, 100);
  std::uint64_t size =
      (static_cast<unsigned char>(header[16]) << 8) | static_cast<unsigned char>(header[17]);
  return size == 1 ? 65536 : size;
}

// A write-ahead log of another catalog: that catalog is changed by a
// process that dies before it can checkpoint (as after a crash), and its
// -wal file is left.
inline std::string foreign_wal(const std::string& scratch) {
  Fixture other;
  for (int i = 0; i < 1000; ++i)
    write_file(other.src() + "/d" + std::to_string(i % 10) + "/f" + std::to_string(i), "x");
  other.init(1);
  CommandResult r = other.mixtape("scan " + shell_quote(other.src()));
  EXPECT_EQ(r.status, 0) << r.err;
  r = run_shell("python3 -c " +
                shell_quote("import os, sqlite3, sys\n"
                            "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
                            "db.execute('PRAGMA wal_autocheckpoint = 0')\n"
                            "db.execute('BEGIN')\n"
                            "db.execute(\"UPDATE files SET name = name || '~'\")\n"
                            "db.execute('UPDATE versions SET mtime_ns = mtime_ns + 1')\n"
                            "db.execute('COMMIT')\n"
                            "os._exit(0)\n") +
                " " + shell_quote(other.catalog()));
  EXPECT_EQ(r.status, 0) << r.err;
  const std::string wal = scratch + "/foreign.wal";
  std::filesystem::copy_file(other.catalog() + "-wal", wal);
  EXPECT_GT(std::filesystem::file_size(wal), 32u * 1024) << "the log holds pages";
  EXPECT_EQ(page_size(other.catalog()), 4096u);
  return wal;
}

struct Damage {
  const char* name;
  const char* says;  // what the refusal says
  std::function<void(const std::string& catalog, const std::string& scratch)> apply;
};

inline std::vector<Damage> damages() {
  return {
      {"FlippedBytesInTheMiddle", "is damaged",
       [](const std::string& catalog, const std::string&) {
         // The page in the middle, at its start (its b-tree header).
         const std::uint64_t page = page_size(catalog);
         flip_bytes(catalog, std::filesystem::file_size(catalog) / page / 2 * page, 64);
       }},
      {"TruncatedToHalf", "is damaged",
       [](const std::string& catalog, const std::string&) {
         std::filesystem::resize_file(catalog, std::filesystem::file_size(catalog) / 2);
       }},
      {"HeaderDestroyed", "is not a SQLite database",
       [](const std::string& catalog, const std::string&) {
         std::string data = read_file(catalog);
         std::fill(data.begin(), data.begin() + 100, '\0');
         write_file(catalog, data);
       }},
      {"ForeignWriteAheadLog", "is damaged",
       [](const std::string& catalog, const std::string& scratch) {
         std::filesystem::copy_file(foreign_wal(scratch), catalog + "-wal",
                                    std::filesystem::copy_options::overwrite_existing);
         std::filesystem::remove(catalog + "-shm");
       }},
  };
}

}  // namespace mixtape::faults::testing
