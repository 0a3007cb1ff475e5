// mixtape tape info|cat|mkimage: look at a tape or image directly, without
// a catalog, as `mt` and `dd` would.
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/context.h"
#include "cli/json.h"
#include "cli/settings.h"
#include "engine/common/common.h"
#include "engine/foreign/foreign.h"
#include "engine/tape/tape.h"

namespace mixtape::cli {
namespace {

using tape::Drive;
using tape::ReadKind;
using tape::TapeError;
using tape::TapeErrorKind;

// ----------------------------------------------------------- label parsing

constexpr std::size_t kTarBlock = 512;
// Enough of file 0 to hold a pax header and the MIXTAPE member.
constexpr std::size_t kLabelPrefix = std::size_t{1} << 20;
// What a tape file holds (tar, compressed tar, data) is told from this much.
constexpr std::size_t kHeadBytes = std::size_t{256} << 10;

std::string c_string(const std::uint8_t* field, std::size_t size) {
  std::size_t n = 0;
  while (n < size && field[n] != 0) ++n;
  return std::string(reinterpret_cast<const char*>(field), n);
}

// A tar numeric field: octal digits (optionally space/NUL padded), or GNU
// base-256 when the top bit of the first byte is set.
std::optional<std::uint64_t> tar_number(const std::uint8_t* field, std::size_t size) {
  std::uint64_t value = 0;
  if (field[0] & 0x80) {
    for (std::size_t i = 1; i < size; ++i) value = value << 8 | field[i];
    return value;
  }
  std::size_t i = 0;
  while (i < size && field[i] == ' ') ++i;
  bool any = false;
  for (; i < size && field[i] >= '0' && field[i] <= '7'; ++i) {
    value = value * 8 + (field[i] - '0');
    any = true;
  }
  if (!any) return std::nullopt;
  return value;
}

bool tar_checksum_ok(const std::uint8_t* header) {
  std::optional<std::uint64_t> stored = tar_number(header + 148, 8);
  if (!stored) return false;
  std::uint64_t unsigned_sum = 0;
  std::int64_t signed_sum = 0;
  for (std::size_t i = 0; i < kTarBlock; ++i) {
    std::uint8_t b = (i >= 148 && i < 156) ? ' ' : header[i];
    unsigned_sum += b;
    signed_sum += static_cast<std::int8_t>(b);
  }
  return *stored == unsigned_sum || static_cast<std::int64_t>(*stored) == signed_sum;
}

// pax extended header records: "<length> <key>=<value>\n".
std::optional<std::string> pax_path(std::string_view records) {
  std::optional<std::string> path;
  while (!records.empty()) {
    std::size_t space = records.find(' ');
    if (space == std::string_view::npos) break;
    std::size_t length = 0;
    for (char c : records.substr(0, space)) {
      if (c < '0' || c > '9') return path;
      length = length * 10 + static_cast<std::size_t>(c - '0');
    }
    if (length <= space + 1 || length > records.size()) break;
    std::string_view record = records.substr(space + 1, length - space - 2);  // no '\n'
    if (record.starts_with("path=")) path = std::string(record.substr(5));
    records.remove_prefix(length);
  }
  return path;
}

// The serial named by a mixtape label: file 0 is a tar archive whose first
// member (after pax headers) is MIXTAPE, containing a line "serial: L00042".
std::optional<std::string> label_serial(ByteSpan data) {
  std::size_t pos = 0;
  std::optional<std::string> long_name;
  while (pos + kTarBlock <= data.size()) {
    const std::uint8_t* header = data.data() + pos;
    if (!tar_checksum_ok(header)) return std::nullopt;  // also the zero end blocks
    std::optional<std::uint64_t> size = tar_number(header + 124, 12);
    if (!size) return std::nullopt;
    const char type = static_cast<char>(header[156]);
    const std::size_t body = pos + kTarBlock;
    const std::size_t available = data.size() > body ? data.size() - body : 0;
    const std::string_view content = as_chars(
        data.subspan(body, static_cast<std::size_t>(std::min<std::uint64_t>(*size, available))));
    const std::size_t next =
        body + static_cast<std::size_t>((*size + kTarBlock - 1) / kTarBlock * kTarBlock);
    if (type == 'x' || type == 'g') {
      if (type == 'x') long_name = pax_path(content);
      pos = next;
      continue;
    }
    std::string name = c_string(header, 100);
    std::string prefix = c_string(header + 345, 155);
    if (long_name) {
      name = *long_name;
    } else if (!prefix.empty() && c_string(header + 257, 5) == "ustar") {
      name = prefix + "/" + name;
    }
    if (name != "MIXTAPE") return std::nullopt;
    std::istringstream lines{std::string(content)};
    std::string line;
    while (std::getline(lines, line)) {
      if (!line.starts_with("serial:")) continue;
      std::string serial = line.substr(7);
      serial.erase(0, serial.find_first_not_of(" \t"));
      serial.erase(serial.find_last_not_of(" \t\r") + 1);
      if (serial.empty()) return std::nullopt;
      return serial;
    }
    return std::nullopt;
  }
  return std::nullopt;
}

// ------------------------------------------------------------ shared bits

struct DriveArgs {
  std::string device;
  std::string stats_json;
};

void add_drive_options(CLI::App* command, DriveArgs& args) {
  command->add_option("--device", args.device,
                      "Tape device (/dev/nst0) or .tap image (default: MIXTAPE_DEVICE or the "
                      "config file's device)");
  command->add_option("--stats-json", args.stats_json,
                      "Write the drive's counters and tape_seconds to FILE as JSON at exit");
}

void write_stats(const std::string& path, const Drive& drive) {
  if (path.empty()) return;
  std::ofstream out(path, std::ios::trunc);
  out << drive.stats().to_json() << "\n";
  out.close();
  if (!out) throw Error("cannot write " + path);
}

// Opens the drive, runs body, and writes --stats-json whether body
// succeeded or not (the counters of a failed run are the interesting ones).
template <typename Body>
void with_drive(const DriveArgs& args, Body body) {
  std::string device = args.device;
  if (device.empty()) {
    if (auto named = Settings::load().drive().device) device = named->value;
  }
  if (device.empty())
    throw Error("name the tape with --device (or set MIXTAPE_DEVICE, or device in " +
                Settings::file_path() + ")");
  tape::OpenDriveOptions options;
  options.read_only = true;
  options.notice = print_drive_notice;
  std::unique_ptr<Drive> drive = tape::open_drive(device, options);
  try {
    body(*drive);
  } catch (...) {
    try {
      write_stats(args.stats_json, *drive);
    } catch (const std::exception&) {
      // The original error matters more.
    }
    throw;
  }
  write_stats(args.stats_json, *drive);
}

// ------------------------------------------------------------------- info

struct TapeFileInfo {
  std::string content;  // "tar", "tar.gz", ... for a tape mixtape did not write
  std::uint64_t number = 0;
  std::uint64_t first_block = 0;
  std::uint64_t records = 0;
  std::uint64_t bytes = 0;
  std::uint64_t media_errors = 0;
};

struct TapeInfo {
  std::vector<TapeFileInfo> files;
  std::optional<std::string> serial;
  std::optional<std::string> foreign_serial;  // no label: the serial it answers to in a drive
  std::uint64_t end_of_data = 0;
};

TapeInfo survey(Drive& drive) {
  TapeInfo info;
  // Any record fits; a tape device reads as much of it as the drive takes.
  tape::RecordBuffer buffer(tape::kProbeReadSize);
  Bytes label;
  drive.rewind();
  for (bool at_end = false; !at_end;) {
    TapeFileInfo file;
    file.number = info.files.size();
    file.first_block = drive.tell();
    bool ended = false;
    Bytes head;  // the file's first bytes: what it holds, for a tape mixtape did not write
    while (!ended) {
      try {
        tape::ReadResult r = drive.read_record(buffer.span());
        if (r.kind == ReadKind::kData) {
          ++file.records;
          file.bytes += r.size;
          if (file.number == 0 && label.size() < kLabelPrefix) {
            label.insert(label.end(), buffer.data(), buffer.data() + r.size);
          }
          if (head.size() < kHeadBytes)
            head.insert(head.end(), buffer.data(),
                        buffer.data() + std::min<std::size_t>(r.size, kHeadBytes));
        } else {
          ended = true;
          at_end = r.kind == ReadKind::kEndOfData;
        }
      } catch (const TapeError& e) {
        if (e.kind() != TapeErrorKind::kMediaError) throw;
        ++file.media_errors;  // the drive is past the bad record: go on
      }
    }
    // End of data straight after a filemark is not another file.
    if (at_end && file.records == 0 && file.media_errors == 0) break;
    file.content = foreign::describe(head);
    info.files.push_back(file);
  }
  info.end_of_data = drive.tell();
  if (!info.files.empty()) info.serial = label_serial(label);
  if (!info.files.empty() && !info.serial) {
    info.foreign_serial = foreign::serial_for(foreign::fingerprint(drive));
  } else {
    for (auto& f : info.files) f.content.clear();  // a mixtape tape's files are its own
  }
  return info;
}

void print_info(const std::string& device, const TapeInfo& info, bool json) {
  if (json) {
    std::cout << "{\"device\": " << json_string(device)
              << ", \"serial\": " << (info.serial ? json_string(*info.serial) : "null")
              << ", \"foreign_serial\": "
              << (info.foreign_serial ? json_string(*info.foreign_serial) : "null")
              << ", \"end_of_data_block\": " << info.end_of_data << ", \"files\": [";
    for (std::size_t i = 0; i < info.files.size(); ++i) {
      const TapeFileInfo& f = info.files[i];
      std::cout << (i ? ", " : "") << "{\"file\": " << f.number
                << ", \"first_block\": " << f.first_block << ", \"records\": " << f.records
                << ", \"bytes\": " << f.bytes << ", \"media_errors\": " << f.media_errors;
      if (info.foreign_serial)
        std::cout << ", \"content\": " << json_string(f.content.empty() ? "data" : f.content);
      std::cout << "}";
    }
    std::cout << "]}\n";
    return;
  }
  std::cout << "device: " << device << "\n";
  if (info.foreign_serial) {
    std::cout << "serial: none (a tape mixtape did not write; in a drive it is "
              << *info.foreign_serial << ")\n";
  } else {
    std::cout << "serial: " << (info.serial ? *info.serial : "none (no mixtape label)") << "\n";
  }
  if (info.files.empty()) std::cout << "blank tape\n";
  for (const TapeFileInfo& f : info.files) {
    std::cout << "file " << f.number << ": first block " << f.first_block << ", records "
              << f.records << ", bytes " << f.bytes;
    if (f.media_errors) std::cout << ", media errors " << f.media_errors;
    if (f.number == 0 && info.serial) std::cout << " (label " << *info.serial << ")";
    if (info.foreign_serial) std::cout << " (" << (f.content.empty() ? "data" : f.content) << ")";
    std::cout << "\n";
  }
  std::cout << "end of data at block " << info.end_of_data << "\n";
}

void add_info(CLI::App* tape_command) {
  struct Args : DriveArgs {
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* info = tape_command->add_subcommand(
      "info", "List the tape files: number, first block, records, bytes; and the label's serial");
  add_drive_options(info, *args);
  info->add_flag("--json", args->json, "Print the result as JSON");
  info->callback([args] {
    with_drive(*args, [&](Drive& drive) { print_info(drive.name(), survey(drive), args->json); });
  });
}

// -------------------------------------------------------------------- cat

void add_cat(CLI::App* tape_command) {
  struct Args : DriveArgs {
    std::uint64_t file = 0;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cat = tape_command->add_subcommand(
      "cat",
      "Write the bytes of tape file N to stdout (like mt fsf N; dd bs=R, R the record size)");
  add_drive_options(cat, *args);
  cat->add_option("--file", args->file, "Tape file number (0 is the label)")->required();
  cat->callback([args] {
    with_drive(*args, [&](Drive& drive) {
      const std::string missing =
          drive.name() + ": the tape has no file " + std::to_string(args->file);
      if (args->file > UINT32_MAX) throw Error(missing);
      drive.rewind();
      if (args->file > 0) {
        try {
          drive.space_filemarks_forward(static_cast<std::uint32_t>(args->file));
        } catch (const TapeError& e) {
          if (e.kind() == TapeErrorKind::kEndOfData) throw Error(missing);
          throw;
        }
      }
      tape::RecordBuffer buffer(tape::kProbeReadSize);
      for (bool first = true;; first = false) {
        tape::ReadResult r = drive.read_record(buffer.span());
        if (r.kind == ReadKind::kEndOfData && first) throw Error(missing);
        if (r.kind != ReadKind::kData) break;
        write_all(STDOUT_FILENO, ByteSpan(buffer.data(), r.size), "standard output");
      }
    });
  });
}

// ---------------------------------------------------------------- mkimage

void add_mkimage(CLI::App* tape_command) {
  struct Args {
    std::string device;
    std::string capacity;
    std::string early_warning;
  };
  auto args = std::make_shared<Args>();
  CLI::App* mkimage =
      tape_command->add_subcommand("mkimage", "Make a blank .tap image of a given capacity");
  mkimage->add_option("--device", args->device, "Image file to create (FILE.tap)")->required();
  mkimage->add_option("--capacity", args->capacity, "Capacity, e.g. 2.5T or 64M")->required();
  mkimage->add_option("--early-warning", args->early_warning,
                      "Early-warning zone before the end (default: capacity / 64)");
  mkimage->callback([args] {
    tape::ImageGeometry geometry;
    geometry.capacity = parse_size(args->capacity);
    geometry.early_warning = args->early_warning.empty() ? 0 : parse_size(args->early_warning);
    const tape::ImageGeometry made = tape::create_image(args->device, geometry);
    std::cout << "created " << args->device << ": capacity " << format_size(made.capacity)
              << ", early warning " << format_size(made.early_warning) << "\n";
  });
}

}  // namespace

void add_tape_commands(CLI::App& app) {
  CLI::App* tape_command = app.add_subcommand(
      "tape",
      "One tape: look at it directly (info, cat, mkimage: no catalog needed); where it is kept");
  tape_command->require_subcommand(1);
  add_info(tape_command);
  add_cat(tape_command);
  add_mkimage(tape_command);
  add_tape_location_command(tape_command);
}

}  // namespace mixtape::cli
