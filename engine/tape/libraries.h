// The Library implementations: ImageLibrary (a folder of images),
// MtxChanger (a SCSI changer through mtx, and its CommandRunner seam),
// ManualChanger (an operator and one drive), SingleDriveLibrary (one drive
// and whatever tape is in it) and FaultInjectingLibrary. Private to
// engine/tape and its tests: front ends get a library from open_library() or
// single_drive_library() (engine/tape/tape.h).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/tape/image_drive.h"
#include "engine/tape/tape.h"

namespace mixtape::tape {

// ------------------------------------------------------------- ImageLibrary

struct ImageLibraryOptions {
  // Reading only: images go into drives write-protected (a read-only file
  // system or 0444 images then read fine), none is ever made, and the
  // folder must exist.
  bool read_only = false;
  // How long load() waits for an image another process holds (a mount
  // that has the tape loaded) before it fails naming that process; 0:
  // fail at once. on_wait, if set, is told once per load that waits.
  std::chrono::milliseconds busy_wait{0};
  std::function<void(const std::string&)> on_wait;
};

// A folder of "<serial>.tap" images with `drives` image drives. Loading a
// serial that has no image makes a blank one with blank_geometry (unless
// read-only). Unloading a drive closes its image, so other processes can
// use that tape.
class ImageLibrary final : public Library {
 public:
  explicit ImageLibrary(std::string directory, std::size_t drives = 1,
                        ImageGeometry blank_geometry = {}, TimingModel timing = {},
                        ImageLibraryOptions options = {});

  std::string image_path(const std::string& serial) const;
  // Loads that took the tape out of another drive first. A robot cannot do
  // that while the other drive is in use, so callers that share a library
  // between drives (the recall queue, the writer) keep this at 0.
  std::uint64_t moves() const { return moves_; }

  std::size_t drive_count() const override { return drives_.size(); }
  Drive& drive(std::size_t index) override;
  std::vector<std::string> serials() override;
  Drive& load(const std::string& serial, std::size_t index = 0) override;
  void unload(std::size_t index = 0) override;
  std::optional<std::string> loaded_serial(std::size_t index = 0) const override;
  DriveStats stats() const override;

 private:
  void insert(std::size_t index, const std::string& path);

  std::string directory_;
  ImageGeometry blank_geometry_;
  ImageLibraryOptions options_;
  std::vector<std::unique_ptr<ImageDrive>> drives_;
  std::vector<std::optional<std::string>> loaded_;
  std::uint64_t moves_ = 0;
};

// --------------------------------------------------------------- MtxChanger

// Runs argv[0] with arguments, returning exit status and stdout+stderr. The
// seam between MtxChanger and the real mtx.
struct CommandResult {
  int exit_status = 0;
  std::string output;
};
using CommandRunner = std::function<CommandResult(const std::vector<std::string>& argv)>;
// fork/exec without a shell (PATH lookup); exit_status 127 if not found.
CommandResult run_command(const std::vector<std::string>& argv);

// `mtx status` parsed. Drives are numbered from 0, slots from 1 (mtx's own
// numbering, as its load/unload arguments expect).
struct MtxElement {
  int number = 0;
  bool full = false;
  bool import_export = false;
  std::string volume_tag;          // barcode, e.g. "L00042L6"; empty if none
  std::optional<int> source_slot;  // drives: the slot the tape came from
};
struct MtxStatus {
  int drive_count = 0;
  int slot_count = 0;
  int import_export_count = 0;
  std::vector<MtxElement> drives;
  std::vector<MtxElement> slots;
};
// Throws kDeviceError on text that is not mtx status output.
MtxStatus parse_mtx_status(std::string_view text);
// Barcode "L00042L6" (or "L00042") names serial "L00042".
bool volume_tag_matches(std::string_view volume_tag, std::string_view serial);

// A SCSI media changer driven with `mtx -f /dev/sgN status|load|unload`;
// drives[i] is data transfer element i. Tapes are found by barcode. With
// read_serial, every load reads the label of the tape in the drive it hands
// out, and one labelled with another serial is refused (kDeviceError): the
// devices were given in another order than the changer's drives, and
// writing would overwrite another cartridge.
class MtxChanger final : public Library {
 public:
  MtxChanger(std::string changer_device, std::vector<std::unique_ptr<Drive>> drives,
             CommandRunner runner = run_command, SerialReader read_serial = {});

  MtxStatus status();

  std::size_t drive_count() const override { return drives_.size(); }
  Drive& drive(std::size_t index) override;
  std::vector<std::string> serials() override;
  Drive& load(const std::string& serial, std::size_t index = 0) override;
  void unload(std::size_t index = 0) override;
  std::optional<std::string> loaded_serial(std::size_t index = 0) const override;
  DriveStats stats() const override;

 private:
  std::string mtx(const std::vector<std::string>& arguments);
  void unload_to_slot(const MtxStatus& status, std::size_t index);
  Drive& verified(std::size_t index, const std::string& serial);

  std::string changer_device_;
  std::vector<std::unique_ptr<Drive>> drives_;
  CommandRunner runner_;
  SerialReader read_serial_;
  std::vector<std::optional<std::string>> loaded_;
  std::uint64_t robot_loads_ = 0;  // the drive loads on insertion, unseen by it
};

struct ManualChangerOptions {
  std::chrono::milliseconds poll_interval{2000};
  std::chrono::milliseconds timeout{std::chrono::hours(1)};
};

// One drive and a person: load() writes which tape to insert to `prompt`,
// then polls the drive until it holds a tape whose label names the serial
// (ejecting wrong tapes), or throws kTimeout when no tape came within the
// timeout. A tape that is in the drive but not ready yet is waited for by
// the drive (Drive::load), not by this timeout; a tape whose label cannot
// be read is not taken for a wrong one: the error is thrown, the tape stays.
class ManualChanger final : public Library {
 public:
  ManualChanger(Drive& drive, std::ostream& prompt, SerialReader read_serial,
                ManualChangerOptions options = {});

  std::size_t drive_count() const override { return 1; }
  Drive& drive(std::size_t index) override;
  std::vector<std::string> serials() override;
  Drive& load(const std::string& serial, std::size_t index = 0) override;
  void unload(std::size_t index = 0) override;
  std::optional<std::string> loaded_serial(std::size_t index = 0) const override;
  DriveStats stats() const override;

 private:
  std::optional<std::string> serial_in_drive();

  Drive& drive_;
  std::ostream& prompt_;
  SerialReader read_serial_;
  ManualChangerOptions options_;
  std::optional<std::string> loaded_;
};

// ------------------------------------------------------- SingleDriveLibrary

// One drive and whatever tape is in it: what single_drive_library() and
// open_library() with a device make (engine/tape/tape.h says how it behaves).
class SingleDriveLibrary final : public Library {
 public:
  using Opener = DriveOpener;
  SingleDriveLibrary(std::unique_ptr<Drive> drive, SerialReader read_serial, Opener reopen = {});

  std::size_t drive_count() const override { return 1; }
  Drive& drive(std::size_t index) override;
  std::vector<std::string> serials() override;
  Drive& load(const std::string& serial, std::size_t index = 0) override;
  void unload(std::size_t index = 0) override;
  std::optional<std::string> loaded_serial(std::size_t index = 0) const override;
  DriveStats stats() const override;

 private:
  std::optional<std::string> serial_in_drive();
  Drive& opened();

  std::unique_ptr<Drive> drive_;  // null while released
  SerialReader read_serial_;
  Opener reopen_;
  DriveStats released_stats_;  // of the drive objects closed so far
  std::optional<std::string> known_;
};

// ---------------------------------------------------- FaultInjectingLibrary

// Any library whose drives inject faults: drive i is inner's drive i inside
// a FaultInjectingDrive that stays with the drive across tape swaps (a bad
// drive, not a bad tape; on_load can set faults per tape).
class FaultInjectingLibrary final : public Library {
 public:
  explicit FaultInjectingLibrary(Library& inner);

  FaultInjectingDrive& faults(std::size_t index);
  // Called after every load, with the serial and the drive index.
  std::function<void(const std::string& serial, std::size_t index, FaultInjectingDrive&)> on_load;

  std::size_t drive_count() const override { return drives_.size(); }
  Drive& drive(std::size_t index) override { return faults(index); }
  std::vector<std::string> serials() override { return inner_.serials(); }
  Drive& load(const std::string& serial, std::size_t index = 0) override;
  void unload(std::size_t index = 0) override;
  std::optional<std::string> loaded_serial(std::size_t index = 0) const override {
    return inner_.loaded_serial(index);
  }
  DriveStats stats() const override { return inner_.stats(); }

 private:
  Library& inner_;
  std::vector<std::unique_ptr<FaultInjectingDrive>> drives_;
};

}  // namespace mixtape::tape
