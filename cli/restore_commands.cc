// mixtape restore | verify | recover: reading tapes back.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "cli/context.h"
#include "cli/foreign.h"
#include "engine/format/format.h"
#include "engine/recover/recover.h"
#include "engine/restore/restore.h"

namespace mixtape::cli {
namespace {

struct KeyFlags {
  std::vector<std::string> identities;
  std::string passphrase_file;
};

void add_key_options(CLI::App* command, KeyFlags& flags) {
  command->add_option("-i,--identity", flags.identities,
                      "age identity file (default ~/.config/mixtape/identity.txt)");
  command->add_option("--passphrase-file", flags.passphrase_file, "Passphrase file");
}

// The keys named on the command line; with none, the default identity
// file when it exists (what `mixtape init` generated). Warnings about key
// files others can read go to stderr.
crypto::AgeDecryptKeys decrypt_keys(const KeyFlags& flags) {
  restore::KeyFiles files;
  files.identities = flags.identities;
  files.passphrase_file = flags.passphrase_file;
  files.default_identity = default_identity_path();
  return restore::load_keys(files, [](const std::string& warning) {
    std::fprintf(stderr, "mixtape: warning: %s\n", warning.c_str());
  });
}

// Reading commands never make tapes: a missing image is an error, not a
// blank tape made on demand.
void check_drive_flags(const DriveFlags& flags) {
  if (!flags.device.empty() && flags.changer.empty() && !flags.device.starts_with("/dev/") &&
      !std::filesystem::exists(flags.device))
    throw Error("no tape image at " + flags.device);
  if (!flags.library.empty() && !std::filesystem::is_directory(flags.library))
    throw Error("no tape library at " + flags.library);
}

std::string absolute_path(const std::string& path) {
  std::error_code error;
  auto absolute = std::filesystem::absolute(path, error).lexically_normal().string();
  if (error) throw Error("cannot resolve " + path + ": " + error.message());
  while (absolute.size() > 1 && absolute.back() == '/') absolute.pop_back();
  return absolute;
}

// ------------------------------------------------------------ restore

void add_read_ahead_option(CLI::App* command, std::string& read_ahead) {
  command->add_option("--read-ahead", read_ahead,
                      "Read forward instead of locating up to SIZE ahead (default: where "
                      "the drive's timing model breaks even, ~1.6G for LTO-6; 0: always locate)");
}

restore::RecallOptions recall_options(const std::string& read_ahead) {
  restore::RecallOptions options;
  if (!read_ahead.empty()) options.forward_read_limit = parse_size(read_ahead);
  return options;
}

struct RestoreArgs {
  std::string catalog;
  std::string read_ahead;
  std::vector<std::string> paths;
  std::string to;
  std::string at;
  bool overwrite = false;
  KeyFlags keys;
  DriveFlags drive;
};

void run_restore(const RestoreArgs& args) {
  // A tape mixtape did not write, in --device: restored from its own index.
  std::string catalog_path = foreign_tape_catalog(args.catalog, args.drive);
  if (catalog_path.empty()) catalog_path = args.catalog;
  if (!std::filesystem::exists(catalog_path))
    throw Error("no catalog at " + catalog_path + "; recover one with `mixtape recover`");
  // Once, up front: a damaged catalog is one clear line, not one per file.
  catalog::Catalog::open_read_only(catalog_path).check_integrity(catalog::integrity_stamp_dir());
  check_drive_flags(args.drive);
  restore::RestoreOptions options;
  for (const auto& p : args.paths) options.paths.push_back(absolute_path(p));
  options.destination = args.to;
  if (!args.at.empty()) {
    options.at_ns = restore::parse_time(args.at);
    if (!options.at_ns)
      throw Error("--at " + args.at + ": expected a UTC time like 2026-11-21T10:00:00Z");
  }
  options.recall = recall_options(args.read_ahead);
  options.destination_options.overwrite = args.overwrite;
  options.destination_options.restore_owner = ::geteuid() == 0;
  auto keys = decrypt_keys(args.keys);
  OpenedLibrary opened(args.drive, TapeAccess::kRead);
  auto progress = make_progress();
  auto report = restore::restore(catalog_path, opened.library(), keys, options, *progress);
  progress.reset();
  for (const auto& f : report.failures)
    std::fprintf(stderr, "mixtape: not restored: %s: %s\n", f.path.c_str(), f.error.c_str());
  if (report.snapshot)
    std::printf("snapshot of the backup run of %s\n",
                format_time_ns(report.snapshot->started_at_ns).c_str());
  std::printf("restored %llu files (%s), %llu symlinks, %llu directories to %s\n",
              static_cast<unsigned long long>(report.files), format_size(report.bytes).c_str(),
              static_cast<unsigned long long>(report.symlinks),
              static_cast<unsigned long long>(report.directories), args.to.c_str());
  if (const std::size_t n = report.failures.size(); n > 0)
    throw Error(std::to_string(n) + (n == 1 ? " path" : " paths") +
                " could not be restored (see above); everything else was");
}

// ------------------------------------------------------------ verify

struct VerifyArgs {
  std::string catalog;
  std::string read_ahead;
  std::string serial;
  bool quick = false;
  KeyFlags keys;
  DriveFlags drive;
};

void run_verify(const VerifyArgs& args) {
  auto lock = lock_catalog(args.catalog);
  auto catalog = open_catalog(args.catalog);
  check_drive_flags(args.drive);
  restore::VerifyOptions options;
  if (!args.serial.empty()) options.serial = args.serial;
  options.quick = args.quick;
  options.recall = recall_options(args.read_ahead);
  auto keys = decrypt_keys(args.keys);
  OpenedLibrary opened(args.drive, TapeAccess::kRead);
  auto progress = make_progress();
  auto report = restore::verify(catalog, opened.library(), keys, options, *progress);
  progress.reset();
  for (const auto& p : report.problems) std::fprintf(stderr, "mixtape: verify: %s\n", p.c_str());
  for (const auto& p : report.key_problems)
    std::fprintf(stderr, "mixtape: verify: %s\n", p.c_str());
  for (const auto& s : report.skipped_tapes)
    std::fprintf(stderr, "mixtape: tape %s is not in the library; not verified\n", s.c_str());
  if (args.quick) {
    std::printf("verified %llu tapes (quick): %llu indexes ok, %zu problems\n",
                static_cast<unsigned long long>(report.tapes),
                static_cast<unsigned long long>(report.indexes_ok), report.problems.size());
  } else {
    std::printf("verified %llu tapes, %llu archives: %llu files ok, %llu bad\n",
                static_cast<unsigned long long>(report.tapes),
                static_cast<unsigned long long>(report.archives),
                static_cast<unsigned long long>(report.files_ok),
                static_cast<unsigned long long>(report.files_bad));
  }
  if (!report.problems.empty())
    throw Error("verification found problems (recorded in the catalog)");
  if (!report.key_problems.empty())
    throw Error(std::to_string(report.key_problems.size()) +
                (report.key_problems.size() == 1 ? " tape" : " tapes") +
                " could not be verified with the keys given (see above); nothing was recorded "
                "about them");
}

// ------------------------------------------------------------ recover

struct RecoverArgs {
  std::string catalog;
  std::string serial;
  bool force = false;
  bool walk = false;
  std::string temp_dir;
  KeyFlags keys;
  DriveFlags drive;
};

void print_recovered(const recover::RecoverReport& r) {
  for (const auto& w : r.warnings) std::fprintf(stderr, "mixtape: warning: %s\n", w.c_str());
  const auto& m = r.merged;
  std::printf(
      "recovered tape %s from %s: added %llu runs, %llu tapes, %llu directories, %llu files, "
      "%llu versions, %llu archives, %llu copies\n",
      r.serial.c_str(),
      r.source == recover::RecoverSource::kTrailingIndex
          ? "its trailing index"
          : ("a walk over " + std::to_string(r.indexes_read) + " indexes").c_str(),
      static_cast<unsigned long long>(m.runs), static_cast<unsigned long long>(m.tapes),
      static_cast<unsigned long long>(m.dirs), static_cast<unsigned long long>(m.files),
      static_cast<unsigned long long>(m.versions),
      static_cast<unsigned long long>(m.archives + r.archives_added),
      static_cast<unsigned long long>(m.copies + r.copies_added));
}

// Whether the tape in the drive ends after its label (or is blank): a tape
// labelled and never written, or whose first session never finished, has
// no catalog copy to recover, and that is no failure. (The drive's block
// index answers this without reading the label's records.)
bool nothing_after_label(tape::Drive& drive) {
  Bytes buffer(tape::kProbeReadSize);
  bool nothing = false;
  try {
    drive.rewind();
    if (drive.read_record(buffer).kind == tape::ReadKind::kEndOfData) {
      nothing = true;
    } else {
      drive.rewind();
      drive.space_filemarks_forward(1);
      nothing = drive.read_record(buffer).kind == tape::ReadKind::kEndOfData;
    }
  } catch (const tape::TapeError& e) {
    nothing = e.kind() == tape::TapeErrorKind::kEndOfData;  // file 0 never ended
  }
  drive.rewind();
  return nothing;
}

void run_recover(const RecoverArgs& args) {
  check_drive_flags(args.drive);
  auto keys = decrypt_keys(args.keys);
  bool created = false;
  if (!std::filesystem::exists(args.catalog)) {
    auto parent = std::filesystem::path(args.catalog).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent);
    // Settings are placeholders: the first merge adopts the tape's catalog.
    catalog::CatalogConfig config;
    config.encryption = catalog::Encryption::kNone;
    catalog::Catalog::create(args.catalog, config);
    created = true;
  }
  bool merged_any = false;
  try {
    auto lock = lock_catalog(args.catalog);
    auto catalog = catalog::Catalog::open(args.catalog, catalog::integrity_stamp_dir());
    recover::RecoverOptions options;
    options.force = args.force;
    options.walk_indexes = args.walk;
    options.temp_dir = args.temp_dir;
    auto progress = make_progress();
    options.progress = progress.get();
    OpenedLibrary opened(args.drive, TapeAccess::kRead);
    tape::Library& library = opened.library();
    if (!args.drive.library.empty() || !args.drive.changer.empty()) {
      std::vector<std::string> serials;
      if (!args.serial.empty()) {
        auto listed = library.serials();
        if (std::find(listed.begin(), listed.end(), args.serial) == listed.end())
          throw Error("tape " + args.serial + " is not in the library");
        serials.push_back(args.serial);
      } else {
        serials = library.serials();
        if (serials.empty()) throw Error("the library holds no tape");
      }
      for (const auto& serial : serials) {
        tape::Drive& drive = library.load(serial);
        if (args.serial.empty() && nothing_after_label(drive)) {
          std::fprintf(stderr,
                       "mixtape: tape %s holds nothing after its label; nothing to recover\n",
                       serial.c_str());
          continue;
        }
        auto report = recover::recover_tape(catalog, drive, keys, options);
        merged_any = true;
        print_recovered(report);
      }
    } else {
      // A found tape in a drive: used as it is, nothing read but its end.
      auto report = recover::recover_tape(catalog, library.drive(0), keys, options);
      merged_any = true;
      if (!args.serial.empty() && report.serial != args.serial)
        std::fprintf(stderr, "mixtape: warning: the tape in the drive is %s, not %s\n",
                     report.serial.c_str(), args.serial.c_str());
      print_recovered(report);
    }
  } catch (...) {
    if (created && !merged_any) {
      std::error_code ignored;
      for (const char* suffix : {"", "-wal", "-shm", "-journal", ".lock"})
        std::filesystem::remove(args.catalog + suffix, ignored);
    }
    throw;
  }
  if (created) std::fprintf(stderr, "mixtape: created catalog %s\n", args.catalog.c_str());
}

}  // namespace

void add_restore_commands(CLI::App& app) {
  auto restore_args = std::make_shared<RestoreArgs>();
  auto* restore_cmd =
      app.add_subcommand("restore", "Restore files from tape in tape order, verifying every hash");
  add_catalog_option(restore_cmd, restore_args->catalog);
  restore_cmd->add_option("paths", restore_args->paths, "Paths to restore (files or folders)")
      ->required();
  restore_cmd->add_option("--to", restore_args->to, "Directory to restore into")->required();
  restore_cmd->add_option("--at", restore_args->at,
                          "Restore the snapshot as of this UTC time (2026-11-21T10:00:00Z)");
  restore_cmd->add_flag("--overwrite", restore_args->overwrite, "Replace existing files");
  add_read_ahead_option(restore_cmd, restore_args->read_ahead);
  add_key_options(restore_cmd, restore_args->keys);
  add_drive_options(restore_cmd, restore_args->drive);
  restore_cmd->callback([restore_args] { run_restore(*restore_args); });

  auto verify_args = std::make_shared<VerifyArgs>();
  auto* verify_cmd =
      app.add_subcommand("verify", "Re-read tapes and check every file against the catalog");
  add_catalog_option(verify_cmd, verify_args->catalog);
  verify_cmd->add_option("--serial", verify_args->serial, "Verify this tape only");
  verify_cmd->add_flag("--quick", verify_args->quick, "Check the indexes only");
  add_read_ahead_option(verify_cmd, verify_args->read_ahead);
  add_key_options(verify_cmd, verify_args->keys);
  add_drive_options(verify_cmd, verify_args->drive);
  verify_cmd->callback([verify_args] { run_verify(*verify_args); });

  auto recover_args = std::make_shared<RecoverArgs>();
  auto* recover_cmd = app.add_subcommand(
      "recover", "Rebuild the catalog from a tape's trailing index (or its indexes)");
  add_catalog_option(recover_cmd, recover_args->catalog);
  recover_cmd->add_option("--serial", recover_args->serial,
                          "Tape of the library to recover (default: every tape)");
  recover_cmd->add_flag("--force", recover_args->force,
                        "Merge a tape of another catalog into this one");
  recover_cmd->add_flag("--walk-indexes", recover_args->walk,
                        "Ignore the trailing index and walk the tape's indexes");
  recover_cmd->add_option("--temp-dir", recover_args->temp_dir,
                          "Where decrypted indexes are kept while merging");
  add_key_options(recover_cmd, recover_args->keys);
  add_drive_options(recover_cmd, recover_args->drive);
  recover_cmd->callback([recover_args] { run_recover(*recover_args); });
}

}  // namespace mixtape::cli
