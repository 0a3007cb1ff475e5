// SingleDriveLibrary, single_drive_library and open_library: libraries as
// the command line names them.
#include <filesystem>

#include "engine/tape/libraries.h"
#include "engine/tape/tape.h"

namespace mixtape::tape {

SingleDriveLibrary::SingleDriveLibrary(std::unique_ptr<Drive> drive, SerialReader read_serial,
                                       Opener reopen)
    : drive_(std::move(drive)), read_serial_(std::move(read_serial)), reopen_(std::move(reopen)) {}

Drive& SingleDriveLibrary::opened() {
  if (!drive_) drive_ = reopen_();
  return *drive_;
}

Drive& SingleDriveLibrary::drive(std::size_t index) {
  if (index != 0) throw TapeError(TapeErrorKind::kInvalidArgument, "there is only drive 0");
  return opened();
}

std::optional<std::string> SingleDriveLibrary::serial_in_drive() {
  Drive& drive = opened();
  DriveStatus status = drive.status();
  if (status.becoming_ready) {
    drive.load();  // a cartridge just inserted: wait until the drive can read it
    status = drive.status();
  }
  if (!status.loaded) return std::nullopt;
  drive.rewind();
  known_ = read_serial_(drive);
  drive.rewind();
  return known_;
}

std::vector<std::string> SingleDriveLibrary::serials() {
  // Asking what is in a released drive opens it only for as long as that
  // takes: a listing must not take the drive back from whoever uses it now.
  const bool released = !drive_;
  std::optional<std::string> serial;
  try {
    serial = serial_in_drive();
  } catch (const TapeError&) {
    if (!released) throw;
    return {};  // another process has it now: nothing can be loaded
  }
  if (released) unload(0);
  if (serial) return {*serial};
  return {};
}

Drive& SingleDriveLibrary::load(const std::string& serial, std::size_t index) {
  drive(index);
  auto current = serial_in_drive();
  if (current && *current != serial)
    throw TapeError(TapeErrorKind::kInvalidArgument, "the tape in " + drive_->name() + " is " +
                                                         *current + "; insert tape " + serial);
  return *drive_;
}

// The tape stays where it is; only the device (or image) is closed.
void SingleDriveLibrary::unload(std::size_t index) {
  if (index != 0) throw TapeError(TapeErrorKind::kInvalidArgument, "there is only drive 0");
  if (!reopen_ || !drive_) return;
  released_stats_ += drive_->stats();
  drive_.reset();
  known_.reset();
}

DriveStats SingleDriveLibrary::stats() const {
  DriveStats total = released_stats_;
  if (drive_) total += drive_->stats();
  return total;
}

std::optional<std::string> SingleDriveLibrary::loaded_serial(std::size_t) const {
  return known_;
}

std::unique_ptr<Library> single_drive_library(std::unique_ptr<Drive> drive,
                                              SerialReader read_serial, DriveOpener reopen) {
  return std::make_unique<SingleDriveLibrary>(std::move(drive), std::move(read_serial),
                                              std::move(reopen));
}

namespace {

std::vector<std::string> split_devices(const std::string& list) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    std::size_t comma = list.find(',', start);
    std::string device = list.substr(start, comma - start);
    if (device.empty())
      throw TapeError(TapeErrorKind::kInvalidArgument, "empty device name in '" + list + "'");
    out.push_back(device);
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

// The changer's drives are its data transfer elements, as many as mtx
// status lists; the devices name them in order. Fewer devices than drives
// leave the rest unused; more is a mistake.
std::unique_ptr<Library> open_changer(const LibrarySpec& spec, SerialReader read_serial) {
  if (spec.device.empty())
    throw TapeError(TapeErrorKind::kInvalidArgument, "a changer needs its drives' devices too");
  std::vector<std::unique_ptr<Drive>> drives;
  OpenDriveOptions options;
  options.read_only = spec.read_only;
  options.notice = spec.notice;
  for (const auto& device : split_devices(spec.device))
    drives.push_back(open_drive(device, options));
  const std::size_t given = drives.size();
  // Every load checks the label: /dev/nstN need not follow the changer's
  // drive order, and a list in the wrong order would write on the wrong tape.
  auto changer = std::make_unique<MtxChanger>(spec.changer, std::move(drives), run_command,
                                              std::move(read_serial));
  if (given > 1) {
    const MtxStatus status = changer->status();
    if (static_cast<std::size_t>(status.drive_count) < given)
      throw TapeError(TapeErrorKind::kInvalidArgument,
                      spec.changer + " has " + std::to_string(status.drive_count) +
                          " drive(s) according to mtx status, but " + std::to_string(given) +
                          " devices were given");
  }
  return changer;
}

}  // namespace

std::unique_ptr<Library> open_library(const LibrarySpec& spec, SerialReader read_serial) {
  if (!spec.changer.empty()) return open_changer(spec, std::move(read_serial));
  if (spec.device.empty() == spec.library.empty())
    throw TapeError(TapeErrorKind::kInvalidArgument,
                    "name exactly one of a device (--device) or a library (--library)");
  if (!spec.library.empty()) {
    if (!spec.read_only) std::filesystem::create_directories(spec.library);
    ImageLibraryOptions options;
    options.read_only = spec.read_only;
    options.busy_wait = spec.busy_wait;
    options.on_wait = spec.on_wait;
    return std::make_unique<ImageLibrary>(spec.library, spec.drives, spec.blank_geometry,
                                          TimingModel{}, std::move(options));
  }
  OpenDriveOptions options;
  options.read_only = spec.read_only;
  options.notice = spec.notice;
  options.create_if_missing = !spec.read_only;
  options.geometry = spec.blank_geometry;
  // Opened again after a release: never made anew (it exists by then).
  OpenDriveOptions again = options;
  again.create_if_missing = false;
  return std::make_unique<SingleDriveLibrary>(
      open_drive(spec.device, options), std::move(read_serial),
      [device = spec.device, again] { return open_drive(device, again); });
}

}  // namespace mixtape::tape
