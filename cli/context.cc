#include "cli/context.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

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

void add_drive_options(CLI::App* command, DriveFlags& flags) {
  command->add_option("--device", flags.device,
                      "Tape device (/dev/nst0) or .tap image; with --changer, its drives' "
                      "devices, comma separated");
  command->add_option("--library", flags.library, "Folder of <serial>.tap images");
  command->add_option("--changer", flags.changer, "SCSI changer (/dev/sgN), driven with mtx");
  command->add_option("--capacity", flags.capacity, "Capacity of new tapes (e.g. 2.5T, 64M)");
  command->add_option("--early-warning", flags.early_warning,
                      "Early-warning zone of new image tapes (default capacity/64)");
  command->add_option("--drives", flags.drives,
                      "Drives of an image library (a changer's come from mtx status)");
  command->add_option("--stats-json", flags.stats_json,
                      "Write drive counters and tape_seconds to FILE at exit");
}

OpenedLibrary::OpenedLibrary(const DriveFlags& flags) : stats_json_(flags.stats_json) {
  capacity_ = parse_size(flags.capacity);
  if (!flags.changer.empty() && flags.device.empty())
    throw Error("--changer needs --device for its drives (/dev/nst0,/dev/nst1,...)");
  const int given = !flags.device.empty() + !flags.library.empty();
  if (flags.changer.empty() && given != 1)
    throw Error("name exactly one of --device DEV or --library DIR");
  if (flags.drives < 1) throw Error("--drives must be at least 1");
  tape::LibrarySpec spec;
  spec.device = flags.device;
  spec.library = flags.library;
  spec.changer = flags.changer;
  spec.drives = flags.drives;
  spec.blank_geometry.capacity = capacity_;
  if (!flags.early_warning.empty())
    spec.blank_geometry.early_warning = parse_size(flags.early_warning);
  spec.notice = print_drive_notice;
  library_ = tape::open_library(spec, backup::label_serial_reader());
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
