#include "cli/context.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "engine/format/format.h"

namespace mixtape::cli {
namespace {

// One drive holding one tape: `--device`. Its serial is read from the label;
// a blank tape takes whatever serial the writer gives it.
class SingleDriveLibrary final : public tape::Library {
 public:
  explicit SingleDriveLibrary(std::unique_ptr<tape::Drive> drive) : drive_(std::move(drive)) {}

  std::size_t drive_count() const override { return 1; }
  tape::Drive& drive(std::size_t) override { return *drive_; }
  std::vector<std::string> serials() override {
    auto serial = label_serial();
    if (serial) return {*serial};
    return {};
  }
  tape::Drive& load(const std::string& serial, std::size_t) override {
    auto current = label_serial();
    if (current && *current != serial)
      throw Error("the tape in " + drive_->name() + " is " + *current + "; insert tape " + serial);
    drive_->rewind();
    return *drive_;
  }
  void unload(std::size_t) override {}
  std::optional<std::string> loaded_serial(std::size_t) const override { return cached_; }
  tape::DriveStats stats() const override { return drive_->stats(); }

 private:
  std::optional<std::string> label_serial() {
    drive_->rewind();
    Bytes probe(tape::kReadBufferSize);
    auto first = drive_->read_record(probe);
    drive_->rewind();
    if (first.kind != tape::ReadKind::kData) return std::nullopt;  // blank
    tape::TapeFileReader reader(*drive_);
    format::LabelInfo label = format::read_label(reader);
    drive_->rewind();
    cached_ = label.serial;
    return label.serial;
  }

  std::unique_ptr<tape::Drive> drive_;
  std::optional<std::string> cached_;
};

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

std::string default_catalog_path() {
  if (const char* env = std::getenv("MIXTAPE_CATALOG"); env && *env) return env;
  if (const char* data = std::getenv("XDG_DATA_HOME"); data && *data)
    return std::string(data) + "/mixtape/catalog.db";
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : "/root") + "/.local/share/mixtape/catalog.db";
}

void add_catalog_option(CLI::App* command, std::string& path) {
  path = default_catalog_path();
  command->add_option("--catalog", path, "Catalog database (env MIXTAPE_CATALOG)");
}

catalog::Catalog open_catalog(const std::string& path) {
  if (!std::filesystem::exists(path))
    throw Error("no catalog at " + path + "; create one with `mixtape init`");
  return catalog::Catalog::open(path);
}

void add_drive_options(CLI::App* command, DriveFlags& flags) {
  command->add_option("--device", flags.device, "Tape device (/dev/nst0) or .tap image");
  command->add_option("--library", flags.library, "Folder of <serial>.tap images");
  command->add_option("--changer", flags.changer, "SCSI changer (/dev/sgN), driven with mtx");
  command->add_option("--capacity", flags.capacity, "Capacity of new tapes (e.g. 2.5T, 64M)");
  command->add_option("--early-warning", flags.early_warning,
                      "Early-warning zone of new image tapes (default capacity/64)");
  command->add_option("--drives", flags.drives, "Drives of an image library");
  command->add_option("--stats-json", flags.stats_json,
                      "Write drive counters and tape_seconds to FILE at exit");
}

OpenedLibrary::OpenedLibrary(const DriveFlags& flags) : stats_json_(flags.stats_json) {
  capacity_ = parse_size(flags.capacity);
  tape::ImageGeometry geometry;
  geometry.capacity = capacity_;
  if (!flags.early_warning.empty()) geometry.early_warning = parse_size(flags.early_warning);
  int given = !flags.device.empty() + !flags.library.empty();
  if (!flags.changer.empty()) {
    if (flags.device.empty()) throw Error("--changer needs --device for the drive");
    std::vector<std::unique_ptr<tape::Drive>> drives;
    drives.push_back(tape::open_drive(flags.device));
    library_ = std::make_unique<tape::MtxChanger>(flags.changer, std::move(drives));
    return;
  }
  if (given != 1) throw Error("name exactly one of --device DEV or --library DIR");
  if (!flags.library.empty()) {
    std::filesystem::create_directories(flags.library);
    library_ = std::make_unique<tape::ImageLibrary>(flags.library, flags.drives, geometry);
    return;
  }
  tape::OpenDriveOptions options;
  options.create_if_missing = true;
  options.geometry = geometry;
  library_ = std::make_unique<SingleDriveLibrary>(tape::open_drive(flags.device, options));
}

OpenedLibrary::~OpenedLibrary() {
  if (stats_json_.empty() || !library_) return;
  std::ofstream out(stats_json_, std::ios::trunc);
  out << library_->stats().to_json() << "\n";
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
