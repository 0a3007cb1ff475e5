// engine/backup: scan, hash, plan and write.
//
// scan() walks the roots and compares every path with its stored scan state
// (size, mtime, ctime, dev, inode); only changed paths are marked dirty, so a
// rescan of an unchanged tree reads no file data. Hashing reads each dirty
// file once in large sequential reads and records a version when the content
// or metadata changed; a file that changes while it is read is retried, then
// skipped with a warning, never recorded with a wrong hash.
//
// backup() is scan + the write pipeline (see pipeline.cc for its design):
// a hash stage prepares archive k+1 while the write stage streams archive k
// (index, then pax tar -> age -> records -> drive, or several drives at once),
// joined by a bounded queue.
// Copies are committed to the catalog only after the tape holds the archives
// and the trailing index, so a crash at any instant leaves a catalog that
// describes only what is on tape. Files that vanish are dropped, files that
// cannot be read or keep changing are reported and left for the next run;
// neither stops the run. docs/BACKUP.md has the whole design.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "engine/catalog/catalog.h"
#include "engine/common/common.h"
#include "engine/crypto/crypto.h"
#include "engine/format/format.h"
#include "engine/tape/tape.h"

namespace mixtape::backup {

struct WalkOptions {
  bool cross_filesystems = false;
  // fnmatch(3) patterns; a pattern containing '/' is matched against the
  // whole path, otherwise against the entry's name.
  std::vector<std::string> excludes;
  // Absolute paths never backed up, with everything below them: mixtape's
  // own files when they lie under a root (the catalog and its side files,
  // the library's images), which change with every run.
  std::vector<std::string> skip_paths;
};

// Progress (engine/common) is what scan, hash and backup report to.
using mixtape::Progress;
using mixtape::SilentProgress;

struct ScanReport {
  std::uint64_t dirs = 0;
  std::uint64_t files = 0;      // regular files and symlinks seen
  std::uint64_t bytes = 0;      // their sizes (a symlink's: its target's length)
  std::uint64_t new_files = 0;  // never seen before
  std::uint64_t changed = 0;    // seen before, different now
  std::uint64_t vanished = 0;   // in the catalog's scan state, gone from disk
  std::uint64_t skipped = 0;    // special files (fifos, sockets, devices)
  std::uint64_t problems = 0;   // unreadable directories, vanished entries
  // Regular files that are dirty after the scan (new, changed, or left
  // dirty by an earlier run): their bytes, and the largest of them.
  std::uint64_t dirty_bytes = 0;
  std::string largest_dirty_path;
  std::uint64_t largest_dirty_size = 0;
};

// Walks roots (absolute paths) and updates scan states; run_id is the run
// the paths are seen in. Marks changed paths dirty.
ScanReport scan(catalog::Writer& catalog, const std::vector<std::string>& roots,
                const WalkOptions& options, catalog::Id run_id, Progress& progress);

struct HashReport {
  std::uint64_t files = 0;
  std::uint64_t bytes = 0;       // of the files hashed
  std::uint64_t bytes_read = 0;  // read from source files to hash them, retries included
  std::uint64_t new_versions = 0;
  std::uint64_t vanished = 0;    // gone since the scan (before it was read or written):
                                 // recorded as absent, not a failure
  std::uint64_t unreadable = 0;  // reported and left dirty
  std::uint64_t unstable = 0;    // changed while being read; left dirty
};

// Hashes every dirty file and records its version in run_id.
HashReport hash_dirty(catalog::Writer& catalog, catalog::Id run_id, Progress& progress);

// The attributes and content hash of one path as it is now. nullopt (with
// `why` set) when it is gone, cannot be read, or kept changing while it was
// read. Paths longer than PATH_MAX work.
struct HashedFile {
  catalog::VersionRow version;  // kind, size, hash, attrs, symlink target
  // What the file looked like when it was read: if any of it differs when
  // the file is read again to be written, the content may differ too.
  catalog::FileIdentity identity;
};
std::optional<HashedFile> hash_path(const std::string& path, std::string& why);

// ------------------------------------------------------------ writing

// Keys the writer seals tape files with, from the catalog's settings; a
// passphrase catalog needs the passphrase.
struct WriterKeys {
  std::optional<crypto::Passphrase> passphrase;
};

struct LabelOptions {
  std::uint64_t capacity = 0;  // bytes; 0: ask nothing, use the default
  // Paths for the archaeology tar; empty: the defaults (running binary,
  // embedded source tarball).
  std::string binary_path;
  std::string source_tarball_path;
  // Label a tape that holds data (another catalog's tape, another
  // program's): what is on it is lost.
  bool overwrite = false;
};

// Writes file 0 (archaeology) and an initial trailing index to the tape in
// `drive`, and registers the tape. Refuses a serial the catalog knows, and
// unless options.overwrite a tape that is not blank (an interrupted labelling
// of this catalog counts as blank; a first record the drive cannot read does
// not). Runs tape::first_contact_test first.
catalog::TapeRow label_tape(catalog::Writer& catalog, tape::Drive& drive, const std::string& serial,
                            const LabelOptions& options, const WriterKeys& keys);

// --commit-every's default: at LTO-6 speed about 10 minutes of tape work,
// while a checkpoint's locate and full catalog copy (1M files) cost about
// 1% of that (docs/BACKUP.md, "Checkpoints").
inline constexpr std::uint64_t kDefaultCommitEvery = std::uint64_t{96} << 30;

struct BackupOptions {
  std::vector<std::string> roots;
  WalkOptions walk;
  // Sets the copy goal of each root (kept in the catalog) before planning.
  std::optional<int> copies;
  // Plaintext bytes per archive; 0: a few GiB, bounded by available memory
  // so that the write stage re-reads files from the page cache.
  std::uint64_t archive_size = 0;
  // Re-hash every file while writing it and compare with the hash stage.
  bool paranoid = false;
  // New tapes: serial prefix (serials are <prefix><5 digits>) and the options
  // they are labelled with.
  std::string serial_prefix = "L";
  LabelOptions label;
  // Where index files are built before they go to tape.
  std::string temp_dir;
  // A checkpoint every this many bytes written to a tape (0: none): the
  // archive ends, a trailing index is written and the catalog committed,
  // and the session goes on over that trailing index. A crash loses at
  // most this much tape work. docs/BACKUP.md explains the default.
  std::uint64_t commit_every = kDefaultCommitEvery;
};

struct BackupReport {
  ScanReport scan;
  HashReport hash;
  std::uint64_t archives = 0;      // on tape and committed, counted per tape
  std::uint64_t copies = 0;        // file copies committed
  std::uint64_t bytes = 0;         // plaintext bytes of those copies
  std::uint64_t not_copied = 0;    // changed between hashing and writing (left dirty)
  std::vector<std::string> tapes;  // serials written, in order
  std::uint64_t below_goal = 0;    // versions still below their goal after the run
  // Bytes read from source files by the write stage. Each archive's files
  // are read once however many tapes it goes to (one read, N writes), so
  // with N drives this is the data written once, not N times. Reading to
  // hash (hash.bytes_read) comes on top.
  std::uint64_t source_bytes_written = 0;
  std::uint64_t source_bytes_read() const { return hash.bytes_read + source_bytes_written; }
  // Sessions that wrote to several tapes at once (one per drive).
  std::uint64_t multi_drive_sessions = 0;
  // Drives dropped from the run after a failure, one line each ("drive 1
  // (/srv/tapes/L00002.tap): ..."). Their uncommitted archives were given up;
  // the copies they were to hold went to other tapes, or are below_goal.
  std::vector<std::string> failed_drives;
  // Files no tape can hold, one error line each; given up, the rest backed up.
  std::vector<std::string> too_large;
  // Commits before the end of a session (BackupOptions::commit_every).
  std::uint64_t checkpoints = 0;
  // Files that could not be backed up in this run (unreadable, changing,
  // too large); the next run tries them again. Vanished files are not
  // failures.
  std::uint64_t failures() const {
    return hash.unreadable + hash.unstable + not_copied + too_large.size();
  }
};

// Scans the roots, then writes every version below its copy goal to tapes of
// the library (never two copies on one tape), labelling new tapes as needed.
// With several drives, versions that need several more copies are written to
// as many tapes at once, one per drive, from one read of the files
// (docs/BACKUP.md, "Several drives"). A drive that fails is dropped and the
// others carry on; a tape that reports a media error while being written
// keeps what was committed, ends in a trailing index if one can still be
// written, and takes no more writes (docs/BACKUP.md, "Media errors").
BackupReport backup(catalog::Writer& catalog, tape::Library& library, const BackupOptions& options,
                    const WriterKeys& keys, Progress& progress);

// Before the first write of every session: the tape in `drive` must be the
// catalog's `tape` (its label names that serial and record size). Else
// TapeError(kDeviceError) naming both serials: the drive holds another
// cartridge (devices listed out of the changer's order, a tape swapped by
// hand), and appending would overwrite it. Errors reading the label are
// thrown as they are. Leaves the drive in file 0: the caller then locates to
// the append point.
void check_tape_identity(tape::Drive& drive, const catalog::TapeRow& tape);

}  // namespace mixtape::backup
