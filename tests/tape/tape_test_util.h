// Helpers shared by the tape tests: temporary folders, test data, a tiny
// label writer/reader (the real one belongs to the label module), and one
// harness per Drive implementation for the typed contract suite.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "engine/common/common.h"
#include "engine/tape/emulated_st_device.h"
#include "engine/tape/image_drive.h"
#include "engine/tape/tape.h"
#include "tests/support/test_support.h"

namespace mixtape::tape::testing {

using test_support::TempDir;

inline Bytes random_bytes(std::size_t size, std::uint32_t seed) {
  std::mt19937 rng(seed);
  Bytes out(size);
  for (auto& b : out) b = static_cast<std::uint8_t>(rng());
  return out;
}

inline Bytes read_file(const std::string& path) {
  UniqueFd fd = open_file(path, O_RDONLY);
  FdSource source(fd.get(), path);
  Bytes out;
  std::uint8_t chunk[65536];
  for (std::size_t n; (n = source.read(chunk)) > 0;) out.insert(out.end(), chunk, chunk + n);
  return out;
}

inline void write_file(const std::string& path, ByteSpan data) {
  UniqueFd fd = open_file(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  write_all(fd.get(), data, path);
}

inline void put(Drive& d, std::string_view text) {
  d.write_record(as_bytes(text));
}

// Reads one object: its bytes as text, "|FM|" or "|EOD|".
inline std::string next(Drive& d, std::size_t buffer_size = kProbeReadSize) {
  RecordBuffer buffer(buffer_size);
  ReadResult r = d.read_record(buffer.span());
  switch (r.kind) {
    case ReadKind::kData:
      return std::string(as_chars(ByteSpan(buffer.data(), r.size)));
    case ReadKind::kFilemark:
      return "|FM|";
    case ReadKind::kEndOfData:
      return "|EOD|";
  }
  return "?";
}

// A stretch of tape as text: each item a record's bytes, "|FM|" a filemark,
// "|EOD|" the end of data (what next() returns).
using Objects = std::vector<std::string>;

// Writes each item as a record, "|FM|" as a filemark.
inline void put_all(Drive& d, const Objects& items) {
  for (const std::string& item : items) {
    if (item == "|FM|") {
      d.write_filemarks(1);
    } else {
      put(d, item);
    }
  }
}

// The next `count` objects (next() of each).
inline Objects next_n(Drive& d, std::size_t count) {
  Objects out;
  for (std::size_t i = 0; i < count; ++i) out.push_back(next(d));
  return out;
}

// Expects statement to throw TapeError of `kind`; returns it for more checks.
template <typename F>
std::optional<TapeError> expect_tape_error(TapeErrorKind kind, F&& statement) {
  try {
    statement();
  } catch (const TapeError& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    return e;
  }
  ADD_FAILURE() << "expected TapeError(" << to_string(kind) << ")";
  return std::nullopt;
}

// The same, and the error's message contains `words`.
template <typename F>
void expect_tape_error_saying(TapeErrorKind kind, std::string_view words, F&& statement) {
  std::optional<TapeError> e = expect_tape_error(kind, std::forward<F>(statement));
  if (e) {
    EXPECT_NE(std::string(e->what()).find(words), std::string::npos) << e->what();
  }
}

// ------------------------------------------------------------ a minimal label

// One ustar header block for a member of `size` bytes.
inline void tar_header(Bytes& out, const std::string& name, std::size_t size, char type) {
  std::uint8_t h[512] = {};
  std::memcpy(h, name.data(), std::min<std::size_t>(name.size(), 100));
  std::snprintf(reinterpret_cast<char*>(h + 100), 8, "%07o", 0644);
  std::snprintf(reinterpret_cast<char*>(h + 108), 8, "%07o", 0);
  std::snprintf(reinterpret_cast<char*>(h + 116), 8, "%07o", 0);
  std::snprintf(reinterpret_cast<char*>(h + 124), 12, "%011zo", size);
  std::snprintf(reinterpret_cast<char*>(h + 136), 12, "%011o", 0);
  h[156] = static_cast<std::uint8_t>(type);
  std::memcpy(h + 257, "ustar", 6);
  std::memcpy(h + 263, "00", 2);
  std::memset(h + 148, ' ', 8);
  unsigned sum = 0;
  for (std::uint8_t b : h) sum += b;
  std::snprintf(reinterpret_cast<char*>(h + 148), 8, "%06o", sum);
  out.insert(out.end(), h, h + 512);
}

inline void tar_member(Bytes& out, const std::string& name, std::string_view body, char type) {
  tar_header(out, name, body.size(), type);
  out.insert(out.end(), body.begin(), body.end());
  out.resize((out.size() + 511) / 512 * 512, 0);
}

// A label archive like the label module's: [pax header], MIXTAPE, README.
inline Bytes label_tar(const std::string& serial, bool with_pax_header = true) {
  Bytes out;
  if (with_pax_header) tar_member(out, "PaxHeader/MIXTAPE", "20 mtime=1700000000\n", 'x');
  tar_member(out, "MIXTAPE", "mixtape tape format 1\nserial: " + serial + "\nrecord size: 524288\n",
             '0');
  tar_member(out, "README.txt", "how to read this tape\n", '0');
  out.resize(out.size() + 1024, 0);                  // end-of-archive blocks
  out.resize((out.size() + 10239) / 10240 * 10240);  // one tar record
  return out;
}

// Writes the label as tape file 0 at BOT.
inline void write_label(Drive& d, const std::string& serial) {
  d.rewind();
  RecordWriter writer(d, 10240);
  writer.write(label_tar(serial));
  writer.close();
}

// Reads the serial from tape file 0 (a simple stand-in for the label module).
inline std::optional<std::string> read_label(Drive& d) {
  d.rewind();
  TapeFileReader reader(d);
  Bytes data(64 * 1024);
  std::size_t n = read_full(reader, data);
  std::string_view text = as_chars(ByteSpan(data.data(), n));
  std::size_t member = text.find("MIXTAPE");
  std::size_t at = text.find("serial: ");
  if (member == std::string_view::npos || at == std::string_view::npos) return std::nullopt;
  std::size_t end = text.find('\n', at);
  return std::string(text.substr(at + 8, end - at - 8));
}

// ------------------------------------------------------------- harnesses

struct Geometry {
  std::uint64_t capacity;
  std::uint64_t early_warning;
};

// A fresh blank tape in a drive of one implementation.
class DriveHarness {
 public:
  virtual ~DriveHarness() = default;
  virtual Drive& drive() = 0;
  // Closes the drive and opens the same tape again, like taking the
  // cartridge out and putting it back with the write-protect tab set or not.
  virtual void reopen(bool write_protected) = 0;
};

class ImageHarness : public DriveHarness {
 public:
  explicit ImageHarness(Geometry g) : path_(dir_.file("tape.tap")) {
    ImageDrive::create(path_, {g.capacity, g.early_warning});
    drive_ = ImageDrive::open(path_);
  }
  Drive& drive() override { return *drive_; }
  void reopen(bool write_protected) override {
    drive_.reset();
    drive_ = ImageDrive::open(path_, write_protected);
  }

 private:
  TempDir dir_;
  std::string path_;
  std::unique_ptr<ImageDrive> drive_;
};

// StDrive over the emulated st driver, strict as a real drive: an IBM LTO
// drive's 8 MiB maximum block length, st's default options (async writes).
class StHarness : public DriveHarness {
 public:
  explicit StHarness(Geometry g, EmulatedStOptions options = {}) : device_("/dev/nst0", options) {
    EmulatedCartridge cartridge;
    cartridge.capacity = g.capacity;
    cartridge.early_warning = g.early_warning;
    device_.insert(std::move(cartridge));
    drive_ = std::make_unique<StDrive>("/dev/nst0", device_);
  }
  Drive& drive() override { return *drive_; }
  void reopen(bool write_protected) override {
    drive_.reset();
    std::optional<EmulatedCartridge> cartridge = device_.remove();
    cartridge->write_protected = write_protected;
    device_.insert(std::move(*cartridge));
    drive_ = std::make_unique<StDrive>("/dev/nst0", device_);
  }
  EmulatedStDevice& device() { return device_; }

 private:
  EmulatedStDevice device_;
  std::unique_ptr<StDrive> drive_;
};

// The same, on an HBA st can never map a buffer for: every write goes
// through st's buffer and is asynchronous, its status arriving later.
class StAsyncHarness : public StHarness {
 public:
  explicit StAsyncHarness(Geometry g) : StHarness(g, async_options()) {}

 private:
  static EmulatedStOptions async_options() {
    EmulatedStOptions options;
    options.sg_entries = 0;
    return options;
  }
};

class FaultHarness : public DriveHarness {
 public:
  explicit FaultHarness(Geometry g) : inner_(g) {
    drive_ = std::make_unique<FaultInjectingDrive>(inner_.drive());
  }
  Drive& drive() override { return *drive_; }
  void reopen(bool write_protected) override {
    drive_.reset();
    inner_.reopen(write_protected);
    drive_ = std::make_unique<FaultInjectingDrive>(inner_.drive());
  }

 private:
  ImageHarness inner_;
  std::unique_ptr<FaultInjectingDrive> drive_;
};

}  // namespace mixtape::tape::testing
