#include "cli/context.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "cli/settings.h"
#include "engine/foreign/foreign.h"
#include "engine/format/format.h"
#include "engine/restore/restore.h"

namespace mixtape::cli {

void print_drive_notice(const std::string& line) {
  std::fprintf(stderr, "mixtape: %s\n", line.c_str());
}

std::string default_catalog_path() {
  return user_path_or_root(UserDir::kData, "mixtape/catalog.db");
}

std::string default_identity_path() {
  return user_path_or_root(UserDir::kConfig, "mixtape/identity.txt");
}

void add_catalog_option(CLI::App* command, std::string& path) {
  command->add_option("--catalog", path,
                      "Catalog database (default: MIXTAPE_CATALOG, the config file, or "
                      "~/.local/share/mixtape/catalog.db)");
}

catalog::Catalog open_catalog(const std::string& path) {
  if (!std::filesystem::exists(path))
    throw Error("no catalog at " + path + "; create one with `mixtape init`");
  return catalog::Catalog::open(path, catalog::integrity_stamp_dir());
}

catalog::Catalog open_checked(const std::string& path) {
  using catalog::Catalog;
  if (!std::filesystem::exists(path))
    throw Error("no catalog at " + path + "; create one with `mixtape init`");
  if (Catalog::file_schema_version(path) < Catalog::schema_version() &&
      ::access(path.c_str(), W_OK) == 0)
    Catalog::open(path, catalog::integrity_stamp_dir());
  auto catalog = Catalog::open_read_only(path);
  catalog.check_integrity(catalog::integrity_stamp_dir());
  return catalog;
}

void apply_settings(std::string& catalog) {
  if (!catalog.empty()) return;
  auto setting = Settings::load().get("catalog");
  catalog = setting ? setting->value : default_catalog_path();
}

void apply_settings(DriveFlags& drive) {
  const Settings settings = Settings::load();
  if (drive.device.empty() && drive.library.empty() && drive.changer.empty()) {
    auto named = settings.drive();
    if (named.device) drive.device = named.device->value;
    if (named.library) drive.library = named.library->value;
    if (named.changer) drive.changer = named.changer->value;
  }
  if (drive.capacity.empty())
    if (auto capacity = settings.get("capacity")) drive.capacity = capacity->value;
}

catalog::WriterLock lock_catalog(const std::string& path) {
  return catalog::WriterLock(path);
}

namespace {

// The path as the walker meets it below a root (absolute, normalised), and
// through symlinks resolved, when that differs.
void add_own(std::vector<std::string>& out, const std::string& path) {
  std::error_code error;
  std::string absolute = std::filesystem::absolute(path, error).lexically_normal().string();
  if (error) return;
  while (absolute.size() > 1 && absolute.back() == '/') absolute.pop_back();
  out.push_back(absolute);
  std::string canonical = std::filesystem::weakly_canonical(absolute, error).string();
  if (!error && canonical != absolute) out.push_back(canonical);
}

}  // namespace

std::vector<std::string> own_files(const std::string& catalog_path, const DriveFlags* drive) {
  std::vector<std::string> out;
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) add_own(out, catalog_path + suffix);
  add_own(out, catalog::WriterLock::path_for(catalog_path));
  add_own(out, catalog_path + ".tapecopy");  // the last copy on tape (engine/catalog/last_copy.cc)
  if (const std::string stamps = catalog::integrity_stamp_dir(); !stamps.empty())
    add_own(out, stamps);
  if (drive && !drive->library.empty()) add_own(out, drive->library);
  if (drive && !drive->device.empty() && drive->changer.empty() &&
      !drive->device.starts_with("/dev/"))
    for (const char* suffix : {"", ".idx", ".meta"}) add_own(out, drive->device + suffix);
  return out;
}

void add_drive_options(CLI::App* command, DriveFlags& flags) {
  command->add_option("--device", flags.device,
                      "Tape device (/dev/nst0) or .tap image; with --changer, its drives' "
                      "devices, comma separated");
  command->add_option("--library", flags.library, "Folder of <serial>.tap images");
  command->add_option("--changer", flags.changer, "SCSI changer (/dev/sgN), driven with mtx");
  command->add_option("--capacity", flags.capacity,
                      "Capacity of new tapes (e.g. 2.5T, 64M; default 2500000000000, LTO-6)");
  command->add_option("--early-warning", flags.early_warning,
                      "Early-warning zone of new image tapes (default capacity/64)");
  command->add_option("--drives", flags.drives,
                      "Drives of an image library (a changer's come from mtx status)");
  command->add_option("--stats-json", flags.stats_json,
                      "Write drive counters and tape_seconds to FILE at exit");
}

void add_writer_options(CLI::App* command, DriveFlags& flags) {
  command->add_flag("--new-library", flags.new_library,
                    "Make the --library folder if it does not exist (needs --capacity)");
  command->add_option("--drive-wait", flags.drive_wait_seconds,
                      "Seconds to wait for a tape another process (a mount) holds (default 120)");
}

OpenedLibrary::OpenedLibrary(const DriveFlags& flags, TapeAccess access)
    : print_([](const std::string& message) {
        std::fprintf(stderr, "mixtape: %s\n", message.c_str());
      }),
      stats_json_(flags.stats_json) {
  capacity_ = flags.capacity.empty() ? tape::kLto6NativeBytes : parse_size(flags.capacity);
  if (!flags.changer.empty() && flags.device.empty())
    throw Error("--changer needs --device for its drives (/dev/nst0,/dev/nst1,...)");
  const int given = !flags.device.empty() + !flags.library.empty();
  if (flags.changer.empty() && given != 1)
    throw Error("name exactly one of --device DEV or --library DIR");
  if (flags.drives < 1) throw Error("--drives must be at least 1");
  if (access == TapeAccess::kWrite && !flags.library.empty() &&
      !std::filesystem::exists(flags.library)) {
    // A mistyped --library would otherwise become a new library of blank
    // tapes the catalog then counts on.
    if (!flags.new_library)
      throw Error("no tape library at " + flags.library +
                  "; to start a new one there, add --new-library and --capacity SIZE (the size "
                  "of its tapes)");
    if (flags.capacity.empty())
      throw Error(
          "a new library needs --capacity SIZE, the size of its tapes (e.g. 2328G for "
          "LTO-6, 64M to try things out)");
  }
  if (flags.drive_wait_seconds < 0 || flags.drive_wait_seconds > 366.0 * 24 * 3600)
    throw Error("--drive-wait takes seconds, at most a year");
  tape::LibrarySpec spec;
  spec.device = flags.device;
  spec.library = flags.library;
  spec.changer = flags.changer;
  spec.drives = flags.drives;
  spec.blank_geometry.capacity = capacity_;
  if (!flags.early_warning.empty())
    spec.blank_geometry.early_warning = parse_size(flags.early_warning);
  spec.read_only = access == TapeAccess::kRead;
  if (access == TapeAccess::kWrite) {
    spec.busy_wait = std::chrono::milliseconds(static_cast<long>(flags.drive_wait_seconds * 1000));
    spec.on_wait = [this](const std::string& message) { print_(message); };
  }
  spec.notice = print_drive_notice;
  // Serials from labels; a reader also knows a tape mixtape did not write,
  // by its first records (engine/foreign). A writer refuses such a tape as
  // someone else's (format::NotMixtapeTape).
  library_ = tape::open_library(
      spec, access == TapeAccess::kRead ? foreign::serial_reader() : format::label_serial_reader());
}

void OpenedLibrary::add_stat(const std::string& key, std::uint64_t value) {
  extra_stats_.emplace_back(key, value);
}

OpenedLibrary::~OpenedLibrary() {
  if (stats_json_.empty() || !library_) return;
  // One flat object: the library's counters summed over its drives, this
  // command's own counters, and with several drives each drive's as
  // "drive<N>_<counter>" (flat, so that simple readers need no nesting).
  std::string json = library_->stats().to_json();
  json.pop_back();  // the closing brace
  for (const auto& [key, value] : extra_stats_)
    json += ", \"" + key + "\": " + std::to_string(value);
  if (library_->drive_count() > 1) {
    for (std::size_t d = 0; d < library_->drive_count(); ++d) {
      std::string fields = library_->drive(d).stats().to_json();
      fields = fields.substr(1, fields.size() - 2);
      const std::string prefix = "\"drive" + std::to_string(d) + "_";
      for (std::size_t at = 0; (at = fields.find('"', at)) != std::string::npos;) {
        fields.replace(at, 1, prefix);
        at = fields.find('"', at + prefix.size()) + 1;  // past the key's closing quote
      }
      json += ", " + fields;
    }
  }
  json += "}";
  std::ofstream out(stats_json_, std::ios::trunc);
  out << json << "\n";
  if (!out) std::fprintf(stderr, "mixtape: cannot write %s\n", stats_json_.c_str());
}

backup::WriterKeys writer_keys(const std::string& passphrase_file) {
  backup::WriterKeys keys;
  if (!passphrase_file.empty()) keys.passphrase = crypto::load_passphrase_file(passphrase_file);
  return keys;
}

void add_key_options(CLI::App* command, KeyFlags& flags) {
  command->add_option("-i,--identity", flags.identities,
                      "age identity file (default: MIXTAPE_IDENTITY, the config file, or "
                      "~/.config/mixtape/identity.txt)");
  command->add_option("--passphrase-file", flags.passphrase_file, "Passphrase file");
}

crypto::AgeDecryptKeys decrypt_keys(const KeyFlags& flags) {
  restore::KeyFiles files;
  files.identities = flags.identities;
  files.passphrase_file = flags.passphrase_file;
  files.default_identity = default_identity_path();
  if (files.identities.empty() && files.passphrase_file.empty()) {
    if (auto identity = Settings::load().get("identity")) {
      // Named: it must be there (the default identity may be missing).
      if (!std::filesystem::exists(identity->value))
        throw Error("no identity file at " + identity->value + " (from " + identity->source + ")");
      files.identities.push_back(identity->value);
    }
  }
  return restore::load_keys(files, [](const std::string& warning) {
    std::fprintf(stderr, "mixtape: warning: %s\n", warning.c_str());
  });
}

void add_progress_options(CLI::App* command, ProgressFlags& flags) {
  command->add_flag("-q,--quiet", flags.quiet,
                    "No progress line, even on a terminal (the summary stays)");
  command->add_flag("--progress", flags.force, "The progress line even when stderr is no terminal");
}

std::unique_ptr<ProgressLine> make_progress(const ProgressFlags& flags) {
  if (flags.quiet && flags.force) throw Error("give --quiet or --progress, not both");
  ProgressLine::Options options;
  options.fd = STDERR_FILENO;
  options.draw = !flags.quiet && (flags.force || ::isatty(STDERR_FILENO));
  return std::make_unique<ProgressLine>(std::move(options));
}

void add_json_option(CLI::App* command, bool& json) {
  command->add_flag("--json", json, "Print the result as JSON (docs/CLI.md has the fields)");
}

std::string absolute_path(const std::string& path) {
  std::error_code error;
  auto absolute = std::filesystem::absolute(path, error).lexically_normal().string();
  if (error) throw Error("cannot resolve " + path + ": " + error.message());
  while (absolute.size() > 1 && absolute.back() == '/') absolute.pop_back();
  return absolute;
}

std::int64_t parse_duration(const std::string& text) {
  std::size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  const std::string unit = text.substr(digits);
  static const std::pair<const char*, std::int64_t> kUnits[] = {
      {"", 1}, {"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}, {"w", 7 * 86400}};
  if (digits > 0 && digits <= 9) {
    for (const auto& [name, seconds] : kUnits)
      if (unit == name) return std::stoll(text.substr(0, digits)) * seconds;
  }
  throw Error("'" + text + "' is not a duration (e.g. 90d, 12h, 2w, 30m, 45s)");
}

std::string format_age(std::int64_t seconds) {
  static const std::pair<const char*, std::int64_t> kUnits[] = {
      {"day", 86400}, {"hour", 3600}, {"minute", 60}};
  for (const auto& [name, length] : kUnits) {
    if (seconds >= length) {
      const std::int64_t n = seconds / length;
      return std::to_string(n) + " " + name + (n == 1 ? "" : "s");
    }
  }
  return std::to_string(seconds) + " seconds";
}

std::string printable(const std::string& path) {
  std::string out;
  for (unsigned char c : path) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string format_time_ns(std::int64_t ns) {
  std::int64_t seconds = ns / 1000000000;
  if (ns < 0 && ns % 1000000000) --seconds;
  return format::format_utc(seconds);
}

}  // namespace mixtape::cli
