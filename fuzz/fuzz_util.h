// What the fuzz targets share. A target's LLVMFuzzerTestOneInput runs
// thousands of times a second in one process, so anything costly that does
// not depend on the input (keys, a scratch directory, an empty catalog) is
// made once, on first use, and lives until the process exits.
//
// A target reports a finding by crashing: sanitizer errors, an exception
// the parser's contract does not allow (anything but the error types it
// documents escapes LLVMFuzzerTestOneInput and aborts), or a broken
// invariant (FUZZ_CHECK).
#pragma once

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

#include "engine/common/common.h"

// Aborts with the failed condition: libFuzzer then saves the input.
#define FUZZ_CHECK(condition)                                                                \
  do {                                                                                       \
    if (!(condition)) {                                                                      \
      std::fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                          \
    }                                                                                        \
  } while (false)

namespace mixtape::fuzz {

// A private directory under $TMPDIR (scripts/fuzz.sh points it at tmpfs),
// removed when the fuzzing process exits normally.
class ScratchDir {
 public:
  ScratchDir() {
    std::string pattern = std::filesystem::temp_directory_path() / "mixtape-fuzz-XXXXXX";
    if (!::mkdtemp(pattern.data())) throw_errno("mkdtemp");
    path_ = pattern;
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::string file(std::string_view name) const { return path_ + "/" + std::string(name); }

 private:
  std::string path_;
};

// The process's scratch directory.
inline const ScratchDir& scratch() {
  static const ScratchDir dir;
  return dir;
}

// Replaces the file at path with exactly `data`.
inline void write_file(const std::string& path, ByteSpan data) {
  UniqueFd fd = open_file(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  write_all(fd.get(), data, path);
}

// Removes path and the side files SQLite or the image drive may leave.
inline void remove_with_sidecars(const std::string& path) {
  for (const char* suffix : {"", ".idx", ".idx.tmp", ".meta", "-journal", "-wal", "-shm"}) {
    ::unlink((path + suffix).c_str());
  }
}

// Reads a source to its end; returns everything it produced.
inline Bytes drain(ByteSource& source, std::size_t piece = 4096) {
  Bytes out;
  Bytes buffer(piece);
  for (;;) {
    std::size_t n = source.read(buffer);
    if (n == 0) return out;
    out.insert(out.end(), buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(n));
  }
}

}  // namespace mixtape::fuzz
