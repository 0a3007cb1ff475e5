// mixtape restore | verify | recover: reading tapes back.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "cli/commands.h"
#include "cli/context.h"
#include "cli/foreign.h"
#include "cli/json.h"
#include "cli/tape_report.h"
#include "engine/format/format.h"
#include "engine/recover/recover.h"
#include "engine/restore/restore.h"

namespace mixtape::cli {
namespace {

// Reading commands never make tapes: a missing image is an error, not a
// blank tape made on demand.
void check_drive_flags(const DriveFlags& flags) {
  if (!flags.device.empty() && flags.changer.empty() && !flags.device.starts_with("/dev/") &&
      !std::filesystem::exists(flags.device))
    throw Error("no tape image at " + flags.device);
  if (!flags.library.empty() && !std::filesystem::is_directory(flags.library))
    throw Error("no tape library at " + flags.library);
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
  bool json = false;
  ProgressFlags progress;
  KeyFlags keys;
  DriveFlags drive;
};

void print_restore_json(const restore::RestoreReport& report, const std::string& destination) {
  JsonWriter json;
  json.begin_object()
      .field("destination", destination)
      .key("snapshot")
      .object_or_null(report.snapshot.has_value(),
                      [&](JsonWriter& snapshot) {
                        snapshot.field("id", report.snapshot->id)
                            .time_field("started_at", report.snapshot->started_at_ns);
                      })
      .field("files", report.files)
      .field("bytes", report.bytes)
      .field("symlinks", report.symlinks)
      .field("directories", report.directories)
      .key("failures")
      .begin_array();
  for (const auto& f : report.failures)
    json.begin_object().field("path", f.path).field("error", f.error).end_object();
  json.end_array().end_object();
}

void run_restore(RestoreArgs& args) {
  apply_settings(args.catalog);
  apply_settings(args.drive);
  // A tape mixtape did not write, in --device: restored from its own index.
  std::string catalog_path = foreign_tape_catalog(args.catalog, args.drive, args.progress);
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
  auto progress = make_progress(args.progress);
  auto report = restore::restore(catalog_path, opened.library(), keys, options, *progress);
  progress.reset();
  for (const auto& f : report.failures)
    std::fprintf(stderr, "mixtape: not restored: %s: %s\n", f.path.c_str(), f.error.c_str());
  if (args.json) {
    print_restore_json(report, args.to);
  } else {
    if (report.snapshot)
      std::printf("snapshot of the backup run of %s\n",
                  format_time_ns(report.snapshot->started_at_ns).c_str());
    std::printf("restored %llu files (%s), %llu symlinks, %llu directories to %s\n",
                static_cast<unsigned long long>(report.files), format_size(report.bytes).c_str(),
                static_cast<unsigned long long>(report.symlinks),
                static_cast<unsigned long long>(report.directories), args.to.c_str());
  }
  if (const std::size_t n = report.failures.size(); n > 0)
    throw Error(std::to_string(n) + (n == 1 ? " path" : " paths") +
                " could not be restored (see above); everything else was");
}

// ------------------------------------------------------------ verify

struct VerifyArgs {
  std::string catalog;
  std::string read_ahead;
  std::string serial;
  std::optional<std::size_t> oldest;
  std::optional<double> insert_wait;
  bool quick = false;
  bool json = false;
  ProgressFlags progress;
  KeyFlags keys;
  DriveFlags drive;
};

// The n tapes whose last full verification is oldest (never verified
// first; then by serial): what a weekly verify in rotation reads. Retired
// tapes and tapes with nothing on them are left out.
std::vector<std::string> oldest_verified(catalog::Catalog& catalog, std::size_t n) {
  std::vector<std::pair<std::int64_t, std::string>> order;
  for (const auto& tape : catalog.tapes()) {
    if (tape.state == catalog::TapeState::kRetired) continue;
    const TapeVerification v = verification_of(catalog, tape);
    if (v.archives == 0) continue;
    order.emplace_back(v.verified_at_ns, tape.serial);
  }
  std::sort(order.begin(), order.end());
  std::vector<std::string> serials;
  for (std::size_t i = 0; i < order.size() && i < n; ++i) serials.push_back(order[i].second);
  return serials;
}

// Asks for a tape the library does not hold, then waits for it to be
// there: the drive is unloaded (a single drive is released, so that its
// tape, or image, can be swapped) and the library asked again each second.
// How long: --insert-wait, else for as long as it takes when someone is at
// the terminal and not at all otherwise (a cron job).
class TapeAsker {
 public:
  TapeAsker(tape::Library& library, const DriveFlags& drive, std::optional<double> wait,
            ProgressLine& progress)
      : library_(library), progress_(progress) {
    where_ = !drive.library.empty()   ? "the library " + drive.library
             : !drive.changer.empty() ? "the changer " + drive.changer
                                      : drive.device;
    seconds_ = wait ? *wait : (::isatty(STDIN_FILENO) ? -1.0 : 0.0);
  }

  bool operator()(const std::string& serial) {
    if (seconds_ == 0) return false;
    progress_.clear();
    std::fprintf(stderr, "mixtape: insert tape %s into %s; waiting for it%s\n", serial.c_str(),
                 where_.c_str(),
                 seconds_ > 0
                     ? (" (up to " + std::to_string(static_cast<long>(seconds_)) + " s)").c_str()
                     : "");
    try {
      library_.unload(0);
    } catch (const tape::TapeError&) {
      // Nothing in the drive, or a drive already gone: asking goes on.
    }
    const auto deadline =
        std::chrono::steady_clock::now() +
        std::chrono::milliseconds(static_cast<long>(std::max(seconds_, 0.0) * 1000));
    for (;;) {
      std::vector<std::string> serials;
      try {
        serials = library_.serials();
      } catch (const tape::TapeError&) {
        // No tape in the drive yet.
      }
      if (std::find(serials.begin(), serials.end(), serial) != serials.end()) return true;
      if (seconds_ > 0 && std::chrono::steady_clock::now() >= deadline) {
        progress_.clear();
        std::fprintf(stderr, "mixtape: tape %s did not come; not verified\n", serial.c_str());
        return false;
      }
      std::this_thread::sleep_for(std::chrono::seconds(1));
    }
  }

 private:
  tape::Library& library_;
  ProgressLine& progress_;
  std::string where_;
  double seconds_ = 0;  // < 0: no limit
};

void print_verify_json(const restore::VerifyReport& report, const VerifyArgs& args,
                       const std::vector<std::string>& asked) {
  JsonWriter json;
  json.begin_object()
      .field("quick", args.quick)
      .field("asked", asked)
      .field("tapes", report.tapes)
      .field("archives", report.archives)
      .field("files_ok", report.files_ok)
      .field("files_bad", report.files_bad)
      .field("indexes_ok", report.indexes_ok)
      .field("problems", report.problems)
      .field("skipped_tapes", report.skipped_tapes)
      .field("key_problems", report.key_problems)
      .field("ok", report.ok())
      .end_object();
}

void run_verify(VerifyArgs& args) {
  apply_settings(args.catalog);
  apply_settings(args.drive);
  if (args.oldest && !args.serial.empty()) throw Error("give --serial or --oldest, not both");
  if (args.oldest && *args.oldest == 0) throw Error("--oldest takes a number of tapes, at least 1");
  auto lock = lock_catalog(args.catalog);
  auto catalog = open_catalog(args.catalog);
  check_drive_flags(args.drive);
  restore::VerifyOptions options;
  std::vector<std::string> asked;
  if (!args.serial.empty()) {
    options.serial = args.serial;
    asked.push_back(args.serial);
  }
  if (args.oldest) {
    options.serials = oldest_verified(catalog, *args.oldest);
    if (options.serials.empty()) throw Error("no tape holds anything to verify");
    asked = options.serials;
  }
  options.quick = args.quick;
  options.recall = recall_options(args.read_ahead);
  auto keys = decrypt_keys(args.keys);
  OpenedLibrary opened(args.drive, TapeAccess::kRead);
  auto progress = make_progress(args.progress);
  TapeAsker asker(opened.library(), args.drive, args.insert_wait, *progress);
  options.await_tape = [&asker](const std::string& serial) { return asker(serial); };
  if (args.oldest) {
    progress->clear();
    std::string list;
    for (const auto& s : options.serials) list += (list.empty() ? "" : " ") + s;
    if (options.serials.size() == 1)
      std::fprintf(stderr, "mixtape: verifying the tape verified longest ago: %s\n", list.c_str());
    else
      std::fprintf(stderr, "mixtape: verifying the %zu tapes verified longest ago: %s\n",
                   options.serials.size(), list.c_str());
  }
  auto report = restore::verify(catalog, opened.library(), keys, options, *progress);
  progress.reset();
  for (const auto& p : report.problems) std::fprintf(stderr, "mixtape: verify: %s\n", p.c_str());
  for (const auto& p : report.key_problems)
    std::fprintf(stderr, "mixtape: verify: %s\n", p.c_str());
  if (options.serials.empty())
    for (const auto& s : report.skipped_tapes)
      std::fprintf(stderr, "mixtape: tape %s is not in the library; not verified\n", s.c_str());
  if (args.json) {
    print_verify_json(report, args, asked);
  } else if (args.quick) {
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
  ProgressFlags progress;
  KeyFlags keys;
  DriveFlags drive;
};

// The tapes of one recover as one stage: recover_tape() starts a stage per
// tape (or two, when it falls back to walking the indexes); here the later
// ones go on counting from where the run is, their totals added to what
// was done before them.
class WholeRunProgress final : public Progress {
 public:
  explicit WholeRunProgress(ProgressLine& line) : line_(line) {}
  void phase(const std::string& name, std::uint64_t total_bytes,
             std::uint64_t total_items) override {
    if (!started_) {
      started_ = true;
      line_.phase(name, total_bytes, total_items);
    }
    base_bytes_ = done_bytes_;
    totals(total_bytes, total_items);
  }
  void totals(std::uint64_t total_bytes, std::uint64_t total_items) override {
    line_.totals(total_bytes ? base_bytes_ + total_bytes : 0, total_items);
  }
  void tape(const std::string& serial) override { line_.tape(serial); }
  void advance(std::uint64_t bytes, std::uint64_t items, const std::string& current) override {
    done_bytes_ += bytes;
    line_.advance(bytes, items, current);
  }
  void warning(const std::string& message) override { line_.warning(message); }

 private:
  ProgressLine& line_;
  bool started_ = false;
  std::uint64_t base_bytes_ = 0, done_bytes_ = 0;
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

void run_recover(RecoverArgs& args) {
  apply_settings(args.catalog);
  apply_settings(args.drive);
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
    auto line = make_progress(args.progress);
    WholeRunProgress progress(*line);
    options.progress = &progress;
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
          line->clear();
          std::fprintf(stderr,
                       "mixtape: tape %s holds nothing after its label; nothing to recover\n",
                       serial.c_str());
          continue;
        }
        progress.tape(serial);
        auto report = recover::recover_tape(catalog, drive, keys, options);
        merged_any = true;
        line->clear();
        print_recovered(report);
      }
    } else {
      // A found tape in a drive: used as it is, nothing read but its end.
      auto report = recover::recover_tape(catalog, library.drive(0), keys, options);
      merged_any = true;
      line->clear();
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

// The options restore and verify share as readers of tapes.
template <typename Args>
void add_reader_options(CLI::App* command, Args& args) {
  add_json_option(command, args.json);
  add_progress_options(command, args.progress);
  add_read_ahead_option(command, args.read_ahead);
  add_key_options(command, args.keys);
  add_drive_options(command, args.drive);
}

}  // namespace

void add_restore_commands(CLI::App& app) {
  auto [restore_cmd, restore_args] = add_catalog_command<RestoreArgs>(
      app, "restore", "Restore files from tape in tape order, verifying every hash", run_restore);
  restore_cmd->add_option("paths", restore_args->paths, "Paths to restore (files or folders)")
      ->required();
  restore_cmd->add_option("--to", restore_args->to, "Directory to restore into")->required();
  restore_cmd->add_option("--at", restore_args->at,
                          "Restore the snapshot as of this UTC time (2026-11-21T10:00:00Z)");
  restore_cmd->add_flag("--overwrite", restore_args->overwrite, "Replace existing files");
  add_reader_options(restore_cmd, *restore_args);

  auto [verify_cmd, verify_args] = add_catalog_command<VerifyArgs>(
      app, "verify", "Re-read tapes and check every file against the catalog", run_verify);
  verify_cmd->add_option("--serial", verify_args->serial,
                         "Verify this tape only (a retired one too)");
  verify_cmd
      ->add_option("--oldest", verify_args->oldest,
                   "Verify the N tapes verified longest ago (default 1), asking for each in turn")
      ->expected(0, 1)
      ->default_str("1");
  verify_cmd->add_option("--insert-wait", verify_args->insert_wait,
                         "With --oldest: seconds to wait for each tape asked for (default: as "
                         "long as it takes on a terminal, not at all otherwise)");
  verify_cmd->add_flag("--quick", verify_args->quick, "Check the indexes only");
  add_reader_options(verify_cmd, *verify_args);

  auto [recover_cmd, recover_args] = add_catalog_command<RecoverArgs>(
      app, "recover", "Rebuild the catalog from a tape's trailing index (or its indexes)",
      run_recover);
  recover_cmd->add_option("--serial", recover_args->serial,
                          "Tape of the library to recover (default: every tape)");
  recover_cmd->add_flag("--force", recover_args->force,
                        "Merge a tape of another catalog into this one");
  recover_cmd->add_flag("--walk-indexes", recover_args->walk,
                        "Ignore the trailing index and walk the tape's indexes");
  recover_cmd->add_option("--temp-dir", recover_args->temp_dir,
                          "Where decrypted indexes are kept while merging");
  add_progress_options(recover_cmd, recover_args->progress);
  add_key_options(recover_cmd, recover_args->keys);
  add_drive_options(recover_cmd, recover_args->drive);
}

}  // namespace mixtape::cli
