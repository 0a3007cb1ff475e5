// What the writer's and reader's commands share: where the catalog is, how
// drives and libraries are opened from flags, keys, progress on a terminal,
// and --stats-json written at exit.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/backup/backup.h"
#include "engine/catalog/catalog.h"
#include "engine/tape/tape.h"

namespace mixtape::cli {

// --catalog PATH, else $MIXTAPE_CATALOG, else $XDG_DATA_HOME/mixtape/catalog.db
// (~/.local/share/mixtape/catalog.db).
std::string default_catalog_path();
// $XDG_CONFIG_HOME/mixtape/identity.txt, else ~/.config/mixtape/identity.txt:
// where `init` writes a new identity and restores look for one.
std::string default_identity_path();
void add_catalog_option(CLI::App* command, std::string& path);
catalog::Catalog open_catalog(const std::string& path);

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

 private:
  std::string stats_json_;
  std::vector<std::pair<std::string, std::uint64_t>> extra_stats_;
  std::uint64_t capacity_ = 0;
  std::unique_ptr<tape::Library> library_;
};

// --passphrase-file F.
backup::WriterKeys writer_keys(const std::string& passphrase_file);

// Progress on stderr when it is a terminal; warnings always.
std::unique_ptr<backup::Progress> make_progress(bool quiet = false);

// "2026-11-21T10:00:00Z" (with nanoseconds dropped).
std::string format_time_ns(std::int64_t ns);

}  // namespace mixtape::cli
