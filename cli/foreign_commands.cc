// mixtape import: a tape mixtape did not write (tar archives) into the
// catalog; and the index restore --device uses for such a tape.
#include <filesystem>

#include "cli/commands.h"
#include "cli/foreign.h"
#include "engine/crypto/crypto.h"
#include "engine/foreign/foreign.h"

namespace mixtape::cli {
namespace {

// Where found tapes' indexes go: the mount's cache folder, so a tape the
// mount indexed is not read again (and the other way round).
std::string cache_dir() {
  return user_path_or_root(UserDir::kCache, "mixtape/stage");
}

// A .tap image's block index goes to the cache folder too, never beside
// the image (it may be read-only).
std::unique_ptr<tape::Drive> open_found_drive(const std::string& device) {
  tape::OpenDriveOptions options;
  options.read_only = true;
  options.notice = print_drive_notice;
  std::error_code error;
  std::filesystem::create_directories(cache_dir(), error);
  std::string canonical = std::filesystem::weakly_canonical(device, error).string();
  if (error) canonical = device;
  const auto digest = crypto::blake2b256(as_bytes(canonical));
  options.index_path = cache_dir() + "/tape-" + to_hex(ByteSpan(digest.data(), 8)) + ".idx";
  return tape::open_drive(device, options);
}

struct ImportArgs {
  std::string catalog;
  std::string serial;
  DriveFlags drive;
  ProgressFlags progress;
};

void print_imported(const foreign::ImportReport& r) {
  if (r.already) {
    std::printf("tape %s is in the catalog already, under %s; nothing changed\n", r.serial.c_str(),
                r.prefix.c_str());
    return;
  }
  std::printf("imported tape %s: %llu files (%s) and %llu directories under %s\n", r.serial.c_str(),
              static_cast<unsigned long long>(r.files), format_size(r.bytes).c_str(),
              static_cast<unsigned long long>(r.directories), r.prefix.c_str());
}

void print_warnings(const foreign::IndexReport& report) {
  for (const auto& w : report.warnings) std::fprintf(stderr, "mixtape: warning: %s\n", w.c_str());
}

void import_tape(const std::string& catalog_path, tape::Drive& drive, const std::string& serial,
                 const ProgressFlags& flags) {
  switch (foreign::identify(drive)) {
    case foreign::TapeKind::kBlank:
      throw Error(drive.name() + ": the tape is blank");
    case foreign::TapeKind::kMixtape:
      throw Error(drive.name() + ": a mixtape tape; bring its catalog back with `mixtape recover`");
    case foreign::TapeKind::kForeign:
      break;
  }
  auto progress = make_progress(flags);
  foreign::IndexOptions options;
  options.serial = serial;
  options.progress = progress.get();
  auto found = foreign::catalog_for_foreign_tape(drive, cache_dir(), options);
  progress.reset();
  if (found.indexed_now) print_warnings(found.report);
  auto catalog = open_catalog(catalog_path);
  print_imported(foreign::import_into(catalog, found.catalog_path, found.serial));
}

void run_import(ImportArgs& args) {
  apply_settings(args.catalog);
  apply_settings(args.drive);
  if (!std::filesystem::exists(args.catalog))
    throw Error("no catalog at " + args.catalog + "; make one with `mixtape init`");
  auto lock = lock_catalog(args.catalog);
  if (!args.drive.device.empty() && args.drive.changer.empty()) {
    if (!args.drive.library.empty())
      throw Error("name exactly one of --device DEV or --library DIR");
    if (!args.drive.device.starts_with("/dev/") && !std::filesystem::exists(args.drive.device))
      throw Error("no tape image at " + args.drive.device);
    auto drive = open_found_drive(args.drive.device);
    import_tape(args.catalog, *drive, args.serial, args.progress);
    return;
  }
  // A library: each tape answers to its name there (or only --serial).
  OpenedLibrary opened(args.drive, TapeAccess::kRead);
  std::vector<std::string> serials = opened.library().serials();
  if (!args.serial.empty()) serials = {args.serial};
  std::size_t failed = 0;
  for (const auto& serial : serials) {
    try {
      tape::Drive& drive = opened.library().load(serial);
      if (foreign::identify(drive) == foreign::TapeKind::kMixtape && args.serial.empty()) {
        std::printf("tape %s is a mixtape tape: not imported (see `mixtape recover`)\n",
                    serial.c_str());
        continue;
      }
      import_tape(args.catalog, drive, serial, args.progress);
    } catch (const std::exception& e) {
      ++failed;
      std::fprintf(stderr, "mixtape: tape %s not imported: %s\n", serial.c_str(), e.what());
    }
  }
  if (failed)
    throw Error(std::to_string(failed) + " of " + std::to_string(serials.size()) +
                " tapes not imported (see above); the others were");
}

}  // namespace

std::string foreign_tape_catalog(const std::string& catalog_path, const DriveFlags& flags,
                                 const ProgressFlags& progress_flags) {
  if (flags.device.empty() || !flags.changer.empty() || !flags.library.empty()) return {};
  if (!flags.device.starts_with("/dev/") && !std::filesystem::exists(flags.device)) return {};
  auto drive = open_found_drive(flags.device);
  if (foreign::identify(*drive) != foreign::TapeKind::kForeign) return {};
  if (std::filesystem::exists(catalog_path)) {
    auto catalog = catalog::Catalog::open_read_only(catalog_path);
    if (catalog.tape_by_foreign_id(foreign::fingerprint(*drive))) return {};
  }
  auto progress = make_progress(progress_flags);
  foreign::IndexOptions options;
  options.progress = progress.get();
  auto found = foreign::catalog_for_foreign_tape(*drive, cache_dir(), options);
  progress.reset();
  if (found.indexed_now) print_warnings(found.report);
  return found.catalog_path;
}

void add_import_command(CLI::App& app) {
  auto [cmd, args] = add_catalog_command<ImportArgs>(
      app, "import",
      "Add a tape mixtape did not write (tar archives) to the catalog as a read-only source",
      run_import);
  cmd->add_option("--serial", args->serial,
                  "The tape's serial (default: its name in the library, or tar-<fingerprint> "
                  "in a single drive); with --library, import only this tape");
  add_drive_options(cmd, args->drive);
  add_progress_options(cmd, args->progress);
}

}  // namespace mixtape::cli
