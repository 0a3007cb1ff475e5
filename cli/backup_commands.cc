// mixtape init | label | scan | backup: making a catalog and filling tapes.
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "cli/commands.h"
#include "cli/context.h"
#include "cli/dry_run.h"
#include "cli/settings.h"
#include "engine/backup/backup.h"
#include "engine/crypto/crypto.h"

namespace mixtape::cli {
namespace {

std::vector<std::string> absolute_roots(const std::vector<std::string>& roots) {
  std::vector<std::string> out;
  for (const auto& root : roots) {
    std::error_code error;
    auto absolute = std::filesystem::absolute(root, error).lexically_normal().string();
    if (error) throw Error("cannot resolve " + root + ": " + error.message());
    while (absolute.size() > 1 && absolute.back() == '/') absolute.pop_back();
    out.push_back(absolute);
  }
  return out;
}

// --exclude-from FILE: one pattern a line; blank lines and lines starting
// with '#' are skipped.
std::vector<std::string> excludes_of(const std::vector<std::string>& patterns,
                                     const std::vector<std::string>& files) {
  std::vector<std::string> out = patterns;
  for (const auto& file : files) {
    std::ifstream in(file);
    if (!in) throw SystemError("cannot read the exclude file " + file, errno);
    for (std::string line; std::getline(in, line);) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty() || line[0] == '#') continue;
      out.push_back(line);
    }
    if (in.bad()) throw Error("cannot read the exclude file " + file);
  }
  return out;
}

void add_exclude_options(CLI::App* command, std::vector<std::string>& excludes,
                         std::vector<std::string>& files) {
  command->add_option("--exclude", excludes, "fnmatch pattern to skip");
  command->add_option("--exclude-from", files, "File of patterns to skip, one a line (# comments)");
}

struct InitArgs {
  std::string catalog;
  std::vector<std::string> recipients;
  std::string passphrase_file;
  bool no_encryption = false;
  std::string identity_out;
  std::optional<int> copies;
  std::string record_size = "512K";
};

// What a failed init made, removed again (newest first) unless commit() is
// called: a key without its catalog, or a catalog naming a key that was
// never written, would mislead the next init or backup.
class InitRollback {
 public:
  InitRollback() = default;
  InitRollback(const InitRollback&) = delete;
  InitRollback& operator=(const InitRollback&) = delete;
  ~InitRollback() {
    if (committed_) return;
    for (auto it = made_.rbegin(); it != made_.rend(); ++it) {
      std::error_code ignored;
      std::filesystem::remove(*it, ignored);
    }
  }
  void made(const std::string& path) { made_.push_back(path); }
  void commit() { committed_ = true; }

 private:
  std::vector<std::string> made_;
  bool committed_ = false;
};

bool nothing_at(const std::string& path) {
  std::error_code error;
  return std::filesystem::symlink_status(path, error).type() ==
         std::filesystem::file_type::not_found;
}

// The missing directories above `file`, outermost first, each recorded for
// the rollback. A bare file name needs none (it goes in the working
// directory).
void make_parents(const std::string& file, mode_t mode, InitRollback& rollback) {
  std::vector<std::filesystem::path> missing;
  for (auto dir = std::filesystem::path(file).parent_path();
       !dir.empty() && dir != dir.root_path() && nothing_at(dir.string()); dir = dir.parent_path())
    missing.push_back(dir);
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    if (::mkdir(it->c_str(), mode) != 0)
      throw SystemError("cannot create directory " + it->string() + " for " + file, errno);
    rollback.made(it->string());
  }
}

void init(InitArgs args) {
  apply_settings(args.catalog);
  if (!args.copies) {
    if (auto copies = Settings::load().get("copies")) {
      try {
        args.copies = std::stoi(copies->value);
      } catch (const std::exception&) {
        throw Error("copies = " + copies->value + " (" + copies->source + "): not a number");
      }
    }
  }
  const int copies = args.copies.value_or(2);
  if (std::filesystem::exists(args.catalog))
    throw Error("a catalog already exists at " + args.catalog);
  int modes = !args.recipients.empty() + !args.passphrase_file.empty() + args.no_encryption;
  if (modes > 1) throw Error("choose one of --recipient, --passphrase-file and --no-encryption");
  catalog::CatalogConfig config;
  config.default_copies = copies;
  config.record_size = parse_size(args.record_size);
  if (config.record_size < 512 || config.record_size > tape::kMaxWriteRecordSize ||
      config.record_size % 512)
    throw Error(
        "--record-size must be a multiple of 512 between 512 and 1M (every drive and HBA "
        "takes records of 1 MiB; see docs/TAPE.md, \"Record size\")");
  if (copies < 1) throw Error("--copies must be at least 1");
  InitRollback rollback;
  std::string identity_path;
  if (args.no_encryption) {
    config.encryption = catalog::Encryption::kNone;
  } else if (!args.passphrase_file.empty()) {
    crypto::load_passphrase_file(args.passphrase_file);  // readable and non-empty
    config.encryption = catalog::Encryption::kPassphrase;
  } else if (!args.recipients.empty()) {
    for (const auto& r : args.recipients) crypto::X25519Recipient::parse(r);
    config.recipients = args.recipients;
  } else {
    identity_path = args.identity_out.empty() ? default_identity_path() : args.identity_out;
    if (!nothing_at(identity_path))
      throw Error(identity_path +
                  " already exists; not overwriting it (an identity file is never replaced)");
    // The key before the catalog: a crash in between leaves a spare key,
    // never a catalog encrypting to a key that was not saved.
    make_parents(identity_path, 0700, rollback);
    auto identity = crypto::X25519Identity::generate();
    crypto::write_identity_file(identity_path, identity);  // mode 0600 whatever the umask
    rollback.made(identity_path);
    config.recipients = {identity.recipient().to_string()};
  }
  make_parents(args.catalog, 0777, rollback);
  // SQLite's side files too, should it fail after making them.
  for (const char* suffix : {"-journal", "-wal", "-shm", ""})
    if (nothing_at(args.catalog + suffix)) rollback.made(args.catalog + suffix);
  catalog::Catalog::create(args.catalog, config);
  rollback.commit();
  if (!identity_path.empty())
    std::fprintf(stderr,
                 "mixtape: wrote identity %s (keep it safe: tapes cannot be read without it)\n",
                 identity_path.c_str());
  for (const auto& r : config.recipients) std::printf("%s\n", r.c_str());
  std::fprintf(stderr, "mixtape: created catalog %s (%d %s of every file)\n", args.catalog.c_str(),
               copies, copies == 1 ? "copy" : "copies");
}

struct LabelArgs {
  std::string catalog;
  std::string serial;
  std::string passphrase_file;
  bool force = false;
  DriveFlags drive;
};

// The program file 0 carries: this one, unless MIXTAPE_ARCHAEOLOGY_BINARY
// names another. A sanitizer build's program is over 100 MB, more than the
// small tapes its tests label; scripts/test-sanitize.sh names a Release build.
// Else mixtape-static beside this program (the self-contained build,
// cli/CMakeLists.txt), whose library sources lie beside it too; else this
// program itself.
std::string archaeology_binary() {
  const char* path = std::getenv("MIXTAPE_ARCHAEOLOGY_BINARY");
  if (path && *path) return path;
  std::error_code error;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", error);
  if (error) return "";
  const auto rescue = self.parent_path() / "mixtape-static";
  return std::filesystem::is_regular_file(rescue, error) ? rescue.string() : "";
}

void label(LabelArgs& args) {
  apply_settings(args.catalog);
  apply_settings(args.drive);
  auto lock = lock_catalog(args.catalog);
  auto catalog = open_catalog(args.catalog);
  OpenedLibrary opened(args.drive, TapeAccess::kWrite);
  tape::Drive& drive = opened.library().load(args.serial);
  backup::LabelOptions options;
  options.capacity = opened.capacity();
  options.binary_path = archaeology_binary();
  options.overwrite = args.force;
  auto tape =
      backup::label_tape(catalog, drive, args.serial, options, writer_keys(args.passphrase_file));
  std::printf("labelled %s (%s, record size %s)\n", tape.serial.c_str(),
              format_size(tape.capacity).c_str(), format_size(tape.record_size).c_str());
}

// What scan and backup both walk, and how.
struct TreeArgs {
  std::string catalog;
  std::vector<std::string> roots;
  std::vector<std::string> excludes;
  std::vector<std::string> exclude_files;
  bool cross = false;
  ProgressFlags progress_flags;
};

struct ScanArgs : TreeArgs {
  bool hash = true;
};

void scan(ScanArgs& args) {
  apply_settings(args.catalog);
  const auto excludes = excludes_of(args.excludes, args.exclude_files);
  auto lock = lock_catalog(args.catalog);
  auto catalog = open_catalog(args.catalog);
  auto progress = make_progress(args.progress_flags);
  auto roots = absolute_roots(args.roots);
  for (const auto& root : roots) {
    struct stat st {};
    if (::lstat(root.c_str(), &st) != 0) throw SystemError("cannot scan " + root, errno);
  }
  auto run = catalog.begin_run(catalog::RunKind::kScan, roots);
  backup::WalkOptions walk{args.cross, excludes, own_files(args.catalog, nullptr)};
  auto report = backup::scan(catalog, roots, walk, run, *progress);
  backup::HashReport hashed;
  if (args.hash) hashed = backup::hash_dirty(catalog, run, *progress);
  catalog.finish_run(run);
  catalog.set_run_totals(run, report.files, report.bytes);
  progress.reset();
  std::printf(
      "scanned %llu directories, %llu files: %llu new, %llu changed, %llu vanished, "
      "%llu skipped, %llu problems\n",
      static_cast<unsigned long long>(report.dirs), static_cast<unsigned long long>(report.files),
      static_cast<unsigned long long>(report.new_files),
      static_cast<unsigned long long>(report.changed),
      static_cast<unsigned long long>(report.vanished),
      static_cast<unsigned long long>(report.skipped),
      static_cast<unsigned long long>(report.problems));
  if (args.hash)
    std::printf(
        "hashed %llu files (%s): %llu new versions, %llu vanished, %llu unreadable, "
        "%llu unstable\n",
        static_cast<unsigned long long>(hashed.files), format_size(hashed.bytes).c_str(),
        static_cast<unsigned long long>(hashed.new_versions),
        static_cast<unsigned long long>(hashed.vanished),
        static_cast<unsigned long long>(hashed.unreadable),
        static_cast<unsigned long long>(hashed.unstable));
  if (std::uint64_t failures = hashed.unreadable + hashed.unstable; failures > 0)
    throw Error(std::to_string(failures) + (failures == 1 ? " file" : " files") +
                " could not be hashed (see the warnings above); run scan again");
}

std::string count(std::uint64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

// A backup did what it was asked only if every version is at its copy goal
// and every file it saw is backed up; otherwise the exit status is 1 and
// one line says what is left (a cron job's mail). A drive that failed (a
// tape another process held past --drive-wait, a dead drive) is named in
// the warnings above; files that vanished were deleted, not left.
void throw_unless_done(const backup::BackupReport& report, std::uint64_t dirty_files) {
  const std::uint64_t failures = report.failures();
  if (report.failed_drives.empty() && failures > 0)
    throw Error(count(failures, "file", "files") +
                " could not be backed up (see the warnings above); run backup again");
  if (report.failed_drives.empty() && report.below_goal == 0 && dirty_files == 0) return;
  std::vector<std::string> left;
  if (report.below_goal > 0)
    left.push_back(count(report.below_goal, "version is", "versions are") + " below its copy goal");
  if (dirty_files > 0)
    left.push_back(count(dirty_files, "file is", "files are") + " not backed up yet");
  std::string line;
  if (!report.failed_drives.empty()) {
    line =
        count(report.failed_drives.size(), "drive", "drives") + " failed (see the warnings above)";
    if (left.empty()) throw Error(line + "; everything was backed up on the others");
    line += "; ";
  }
  for (std::size_t i = 0; i < left.size(); ++i) line += (i ? " and " : "") + left[i];
  throw Error(line + "; run backup again");
}

struct BackupArgs : TreeArgs {
  bool dry_run = false;
  std::optional<int> copies;
  std::string archive_size;
  bool paranoid = false;
  std::string passphrase_file;
  std::string serial_prefix = "L";
  std::string temp_dir;
  std::string commit_every;
  DriveFlags drive;
};

void run_backup(BackupArgs& args) {
  apply_settings(args.catalog);
  apply_settings(args.drive);
  const auto excludes = excludes_of(args.excludes, args.exclude_files);
  if (args.dry_run) {
    DryRun run;
    run.catalog = args.catalog;
    run.roots = absolute_roots(args.roots);
    run.walk = {args.cross, excludes, own_files(args.catalog, &args.drive)};
    run.copies = args.copies;
    run.serial_prefix = args.serial_prefix;
    run.temp_dir = args.temp_dir;
    run.drive = args.drive;
    run.progress = args.progress_flags;
    dry_run_backup(run);
    return;
  }
  auto lock = lock_catalog(args.catalog);
  auto catalog = open_catalog(args.catalog);
  OpenedLibrary opened(args.drive, TapeAccess::kWrite);
  backup::BackupOptions options;
  options.roots = absolute_roots(args.roots);
  options.walk = {args.cross, excludes, own_files(args.catalog, &args.drive)};
  options.copies = args.copies;
  if (!args.archive_size.empty()) options.archive_size = parse_size(args.archive_size);
  options.paranoid = args.paranoid;
  options.serial_prefix = args.serial_prefix;
  options.label.capacity = opened.capacity();
  options.label.binary_path = archaeology_binary();
  options.temp_dir = args.temp_dir;
  if (!args.commit_every.empty())
    options.commit_every = args.commit_every == "0" ? 0 : parse_size(args.commit_every);
  auto progress = make_progress(args.progress_flags);
  opened.on_message([&progress](const std::string& message) {
    progress->clear();
    std::fprintf(stderr, "mixtape: %s\n", message.c_str());
  });
  auto report = backup::backup(catalog, opened.library(), options,
                               writer_keys(args.passphrase_file), *progress);
  progress.reset();
  opened.add_stat("source_bytes_read", report.source_bytes_read());
  opened.add_stat("source_bytes_hashed", report.hash.bytes_read);
  opened.add_stat("source_bytes_written", report.source_bytes_written);
  opened.add_stat("multi_drive_sessions", report.multi_drive_sessions);
  std::string tapes;
  for (const auto& serial : report.tapes) tapes += (tapes.empty() ? "" : " ") + serial;
  std::printf(
      "backed up %llu file %s (%s) in %llu %s to %s\n",
      static_cast<unsigned long long>(report.copies), report.copies == 1 ? "copy" : "copies",
      format_size(report.bytes).c_str(), static_cast<unsigned long long>(report.archives),
      report.archives == 1 ? "archive" : "archives", tapes.empty() ? "no tape" : tapes.c_str());
  std::printf("scan: %llu files, %llu new, %llu changed, %llu vanished; hashed %s\n",
              static_cast<unsigned long long>(report.scan.files),
              static_cast<unsigned long long>(report.scan.new_files),
              static_cast<unsigned long long>(report.scan.changed),
              static_cast<unsigned long long>(report.scan.vanished + report.hash.vanished),
              format_size(report.hash.bytes).c_str());
  std::printf("read %s from source files: %s to hash, %s to write\n",
              format_size(report.source_bytes_read()).c_str(),
              format_size(report.hash.bytes_read).c_str(),
              format_size(report.source_bytes_written).c_str());
  if (report.checkpoints > 0)
    std::printf("committed to the catalog at %llu checkpoints on the way\n",
                static_cast<unsigned long long>(report.checkpoints));
  if (report.below_goal > 0)
    std::printf("%llu versions are still below their copy goal\n",
                static_cast<unsigned long long>(report.below_goal));
  throw_unless_done(report, catalog.dirty_count());
}

}  // namespace

void add_backup_commands(CLI::App& app) {
  auto [init_cmd, init_args] =
      add_catalog_command<InitArgs>(app, "init", "Create the catalog", init);
  init_cmd->add_option("--recipient", init_args->recipients, "Encrypt to this age1... recipient");
  init_cmd->add_option("--passphrase-file", init_args->passphrase_file,
                       "Encrypt with the passphrase in this file");
  init_cmd->add_flag("--no-encryption", init_args->no_encryption, "Write plain tapes");
  init_cmd->add_option(
      "--identity-out", init_args->identity_out,
      "Where the generated identity goes (default ~/.config/mixtape/identity.txt)");
  init_cmd->add_option("--copies", init_args->copies,
                       "Default copy goal (default: copies in the config file, else 2)");
  init_cmd->add_option("--record-size", init_args->record_size,
                       "Tape record size, a multiple of 512 up to 1M (default 512K)");

  auto [label_cmd, label_args] = add_catalog_command<LabelArgs>(
      app, "label", "Write file 0 to a blank tape and register it", label);
  label_cmd->add_option("--serial", label_args->serial, "Tape serial (e.g. L00042)")->required();
  label_cmd->add_option("--passphrase-file", label_args->passphrase_file, "Passphrase file");
  label_cmd->add_flag("--force", label_args->force,
                      "Label a tape that holds data (it is lost): another catalog's, another "
                      "program's");
  add_drive_options(label_cmd, label_args->drive);
  add_writer_options(label_cmd, label_args->drive);

  auto [scan_cmd, scan_args] =
      add_catalog_command<ScanArgs>(app, "scan", "Update the catalog from disk (no tape)", scan);
  scan_cmd->add_option("roots", scan_args->roots, "Folders to scan")->required();
  add_exclude_options(scan_cmd, scan_args->excludes, scan_args->exclude_files);
  add_progress_options(scan_cmd, scan_args->progress_flags);
  scan_cmd->add_flag("--cross-filesystems", scan_args->cross, "Descend into other filesystems");
  scan_cmd->add_flag("!--no-hash", scan_args->hash, "Only compare metadata, hash nothing");

  auto [backup_cmd, backup_args] =
      add_catalog_command<BackupArgs>(app, "backup", "Scan, hash and write to tape", run_backup);
  backup_cmd->add_option("roots", backup_args->roots, "Folders to back up")->required();
  add_exclude_options(backup_cmd, backup_args->excludes, backup_args->exclude_files);
  backup_cmd->add_flag("-n,--dry-run", backup_args->dry_run,
                       "Say what would be written, how many bytes, to which tapes; write nothing");
  add_progress_options(backup_cmd, backup_args->progress_flags);
  backup_cmd->add_flag("--cross-filesystems", backup_args->cross, "Descend into other filesystems");
  backup_cmd->add_option("--copies", backup_args->copies, "Copy goal for these roots");
  backup_cmd->add_option("--archive-size", backup_args->archive_size,
                         "Plaintext bytes per archive (default: a few GiB)");
  backup_cmd->add_flag("--paranoid", backup_args->paranoid, "Re-hash files while writing them");
  backup_cmd->add_option("--passphrase-file", backup_args->passphrase_file, "Passphrase file");
  backup_cmd->add_option("--serial-prefix", backup_args->serial_prefix,
                         "Prefix of serials for new tapes (default L)");
  backup_cmd->add_option("--temp-dir", backup_args->temp_dir, "Where index files are built");
  backup_cmd->add_option("--commit-every", backup_args->commit_every,
                         "Commit to the catalog every SIZE written to a tape (default 96G; 0: "
                         "only at the end of each tape's session)");
  add_drive_options(backup_cmd, backup_args->drive);
  add_writer_options(backup_cmd, backup_args->drive);
}

}  // namespace mixtape::cli
