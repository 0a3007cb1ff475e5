// What the writer's and reader's commands share: where the catalog is, how
// drives and libraries are opened from flags, keys, progress on a terminal,
// and --stats-json written at exit.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/backup/backup.h"
#include "engine/catalog/catalog.h"
#include "engine/crypto/crypto.h"
#include "engine/tape/tape.h"

namespace mixtape::cli {

// The catalog when no setting names one: $XDG_DATA_HOME/mixtape/catalog.db
// (~/.local/share/mixtape/catalog.db).
std::string default_catalog_path();
// $XDG_CONFIG_HOME/mixtape/identity.txt, else ~/.config/mixtape/identity.txt:
// where `init` writes a new identity and restores look for one.
std::string default_identity_path();
// --catalog PATH; left empty when not given (apply_settings fills it in).
void add_catalog_option(CLI::App* command, std::string& path);
catalog::Catalog open_catalog(const std::string& path);
// Read-only, after a check of the whole file (skipped while the file is
// unchanged since one passed): a damaged catalog is refused with one line
// instead of a partial answer. A catalog an older mixtape wrote is upgraded
// first when this user may write it, as a writing command would.
catalog::Catalog open_checked(const std::string& path);

// What the command line left out, from the environment and the config file
// (cli/settings.h): the catalog (else default_catalog_path()), the drive
// (device, library and changer together) and the capacity of new tapes.
void apply_settings(std::string& catalog);
struct DriveFlags;
void apply_settings(DriveFlags& drive);

// The writer lock of the catalog at path (catalog::WriterLock), taken by
// every command that changes the catalog before it opens it.
catalog::WriterLock lock_catalog(const std::string& path);

struct DriveFlags {
  std::string device;
  std::string library;
  std::string changer;
  // Empty: 2500000000000, LTO-6 native (2.5 TB, decimal as tape makers
  // count); a new library needs it given.
  std::string capacity;
  std::string early_warning;
  std::size_t drives = 1;
  std::string stats_json;
  // Writers only (add_writer_options).
  bool new_library = false;
  double drive_wait_seconds = 120;
};

// mixtape's own files under the roots a backup or scan walks, never to be
// backed up: the catalog and its side files, the integrity stamps, and the
// tape library (or image) the command writes to.
std::vector<std::string> own_files(const std::string& catalog_path, const DriveFlags* drive);

// --device | --library | --changer (+ --capacity, --drives, --stats-json).
void add_drive_options(CLI::App* command, DriveFlags& flags);
// --new-library and --drive-wait, for the commands that write tapes.
void add_writer_options(CLI::App* command, DriveFlags& flags);

// Whether a command only reads tapes (images open write-protected, nothing
// is made, a library must exist) or writes them.
enum class TapeAccess { kRead, kWrite };

// What a tape drive says while it works (waiting for a drive to become
// ready, st options that look wrong): one "mixtape: ..." line on stderr.
void print_drive_notice(const std::string& line);

// The library the flags name (tape::open_library). A single --device acts as
// a library of the one tape in it. Writes --stats-json when destroyed,
// whatever happened: the counters summed over the drives, the command's own
// (add_stat), and with several drives each drive's under "drives".
class OpenedLibrary {
 public:
  OpenedLibrary(const DriveFlags& flags, TapeAccess access);
  ~OpenedLibrary();
  OpenedLibrary(const OpenedLibrary&) = delete;
  OpenedLibrary& operator=(const OpenedLibrary&) = delete;
  tape::Library& library() { return *library_; }
  std::uint64_t capacity() const { return capacity_; }
  // A counter of the command itself, written to --stats-json with the
  // drives' (e.g. source_bytes_read).
  void add_stat(const std::string& key, std::uint64_t value);
  // Where the library's messages (a tape it waits for) go: by default a
  // "mixtape: ..." line on stderr; a command with a progress line takes
  // the line away first.
  void on_message(std::function<void(const std::string&)> print) { print_ = std::move(print); }

 private:
  std::function<void(const std::string&)> print_;
  std::string stats_json_;
  std::vector<std::pair<std::string, std::uint64_t>> extra_stats_;
  std::uint64_t capacity_ = 0;
  std::unique_ptr<tape::Library> library_;
};

// --passphrase-file F.
backup::WriterKeys writer_keys(const std::string& passphrase_file);

// The keys of the commands that read tapes: -i/--identity (else
// MIXTAPE_IDENTITY, the config file's identity, or the identity `init`
// made, when it exists) and --passphrase-file.
struct KeyFlags {
  std::vector<std::string> identities;
  std::string passphrase_file;
};
void add_key_options(CLI::App* command, KeyFlags& flags);
crypto::AgeDecryptKeys decrypt_keys(const KeyFlags& flags);

// --quiet and --progress: the progress line, never or always (by default
// when stderr is a terminal).
struct ProgressFlags {
  bool quiet = false;
  bool force = false;
};
void add_progress_options(CLI::App* command, ProgressFlags& flags);
// The progress line on stderr (ProgressLine); warnings always.
std::unique_ptr<ProgressLine> make_progress(const ProgressFlags& flags = {});

// --json: the result as one JSON document on stdout (docs/CLI.md).
void add_json_option(CLI::App* command, bool& json);

// A command on the catalog: NAME under PARENT, --catalog its first option
// (so first in --help), run(ARGS&) its callback. The ARGS the options fill
// live as long as the callback that reads them; the pointer returned is for
// adding the command's other options.
template <typename Args, typename Run>
std::pair<CLI::App*, Args*> add_catalog_command(CLI::App& parent, std::string name,
                                                std::string description, Run run) {
  auto args = std::make_shared<Args>();
  CLI::App* command = parent.add_subcommand(std::move(name), std::move(description));
  add_catalog_option(command, args->catalog);
  command->callback([args, run] { run(*args); });
  return {command, args.get()};
}

// "90d", "12h", "2w", "30m", "45s" or bare seconds, as seconds.
std::int64_t parse_duration(const std::string& text);
// 95 days as "95 days", 3 hours as "3 hours": the largest whole unit.
std::string format_age(std::int64_t seconds);

// A path as the catalog has it: absolute (relative to the working
// directory), normalised, without a trailing slash.
std::string absolute_path(const std::string& path);

// "2026-11-21T10:00:00Z" (with nanoseconds dropped).
std::string format_time_ns(std::int64_t ns);

// A path (bytes) for a terminal or a line of a script: control bytes as
// \xNN and backslashes doubled, so that no path breaks a line.
std::string printable(const std::string& path);

}  // namespace mixtape::cli
