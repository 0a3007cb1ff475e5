// SingleDriveLibrary and open_library: libraries as the command line names them.
#include <filesystem>

#include "engine/tape/tape.h"

namespace mixtape::tape {

SingleDriveLibrary::SingleDriveLibrary(std::unique_ptr<Drive> drive, SerialReader read_serial)
    : drive_(std::move(drive)), read_serial_(std::move(read_serial)) {}

Drive& SingleDriveLibrary::drive(std::size_t index) {
  if (index != 0) throw TapeError(TapeErrorKind::kInvalidArgument, "there is only drive 0");
  return *drive_;
}

std::optional<std::string> SingleDriveLibrary::serial_in_drive() {
  DriveStatus status = drive_->status();
  if (status.becoming_ready) {
    drive_->load();  // a cartridge just inserted: wait until the drive can read it
    status = drive_->status();
  }
  if (!status.loaded) return std::nullopt;
  drive_->rewind();
  known_ = read_serial_(*drive_);
  drive_->rewind();
  return known_;
}

std::vector<std::string> SingleDriveLibrary::serials() {
  auto serial = serial_in_drive();
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

void SingleDriveLibrary::unload(std::size_t index) {
  drive(index);
}

std::optional<std::string> SingleDriveLibrary::loaded_serial(std::size_t) const {
  return known_;
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
    std::filesystem::create_directories(spec.library);
    return std::make_unique<ImageLibrary>(spec.library, spec.drives, spec.blank_geometry);
  }
  OpenDriveOptions options;
  options.read_only = spec.read_only;
  options.notice = spec.notice;
  options.create_if_missing = !spec.read_only;
  options.geometry = spec.blank_geometry;
  return std::make_unique<SingleDriveLibrary>(open_drive(spec.device, options),
                                              std::move(read_serial));
}

}  // namespace mixtape::tape
