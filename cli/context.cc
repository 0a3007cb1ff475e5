#include "cli/context.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "engine/foreign/foreign.h"
#include "engine/format/format.h"

namespace mixtape::cli {
namespace {

class TerminalProgress final : public backup::Progress {
 public:
  explicit TerminalProgress(bool draw) : draw_(draw) {}
  ~TerminalProgress() override { clear(); }

  void phase(const std::string& name, std::uint64_t total_bytes,
             std::uint64_t total_items) override {
    clear();
    phase_ = name;
    total_bytes_ = total_bytes;
    total_items_ = total_items;
    bytes_ = items_ = 0;
    start_ = std::chrono::steady_clock::now();
  }
  void advance(std::uint64_t bytes, std::uint64_t items, const std::string& current) override {
    bytes_ += bytes;
    items_ += items;
    if (!draw_) return;
    auto now = std::chrono::steady_clock::now();
    if (now - last_draw_ < std::chrono::milliseconds(200)) return;
    last_draw_ = now;
    double seconds = std::chrono::duration<double>(now - start_).count();
    double rate = seconds > 0 ? static_cast<double>(bytes_) / seconds : 0;
    std::string line = phase_ + ": " + std::to_string(items_) + " files, " + format_size(bytes_);
    if (rate > 0) line += ", " + format_size(static_cast<std::uint64_t>(rate)) + "/s";
    if (total_bytes_ > bytes_ && rate > 0) {
      line += ", ETA " + std::to_string(static_cast<long>((total_bytes_ - bytes_) / rate)) + " s";
    }
    std::string shown = current.size() > 50 ? "..." + current.substr(current.size() - 47) : current;
    line += "  " + shown;
    std::fprintf(stderr, "\r\033[K%s", line.c_str());
    drawn_ = true;
  }
  void warning(const std::string& message) override {
    clear();
    std::fprintf(stderr, "mixtape: warning: %s\n", message.c_str());
  }

 private:
  void clear() {
    if (drawn_) std::fprintf(stderr, "\r\033[K");
    drawn_ = false;
  }

  bool draw_;
  bool drawn_ = false;
  std::string phase_;
  std::uint64_t total_bytes_ = 0, total_items_ = 0, bytes_ = 0, items_ = 0;
  std::chrono::steady_clock::time_point start_{}, last_draw_{};
};

}  // namespace

void print_drive_notice(const std::string& line) {
  std::fprintf(stderr, "mixtape: %s\n", line.c_str());
}

std::string default_catalog_path() {
  if (const char* env = std::getenv("MIXTAPE_CATALOG"); env && *env) return env;
  return user_path_or_root(UserDir::kData, "mixtape/catalog.db");
}

std::string default_identity_path() {
  return user_path_or_root(UserDir::kConfig, "mixtape/identity.txt");
}

void add_catalog_option(CLI::App* command, std::string& path) {
  path = default_catalog_path();
  command->add_option("--catalog", path, "Catalog database (env MIXTAPE_CATALOG)");
}

catalog::Catalog open_catalog(const std::string& path) {
  if (!std::filesystem::exists(path))
    throw Error("no catalog at " + path + "; create one with `mixtape init`");
  return catalog::Catalog::open(path, catalog::integrity_stamp_dir());
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
    : stats_json_(flags.stats_json) {
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
    spec.on_wait = [](const std::string& message) {
      std::fprintf(stderr, "mixtape: %s\n", message.c_str());
    };
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

std::unique_ptr<backup::Progress> make_progress(bool quiet) {
  return std::make_unique<TerminalProgress>(!quiet && ::isatty(STDERR_FILENO));
}

std::string format_time_ns(std::int64_t ns) {
  std::int64_t seconds = ns / 1000000000;
  if (ns < 0 && ns % 1000000000) --seconds;
  return format::format_utc(seconds);
}

}  // namespace mixtape::cli
