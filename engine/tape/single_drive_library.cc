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
  if (!drive_->status().loaded) return std::nullopt;
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

std::unique_ptr<Library> open_library(const LibrarySpec& spec, SerialReader read_serial) {
  if (!spec.changer.empty()) {
    if (spec.device.empty())
      throw TapeError(TapeErrorKind::kInvalidArgument, "a changer needs its drive's device too");
    std::vector<std::unique_ptr<Drive>> drives;
    OpenDriveOptions options;
    options.read_only = spec.read_only;
    drives.push_back(open_drive(spec.device, options));
    return std::make_unique<MtxChanger>(spec.changer, std::move(drives));
  }
  if (spec.device.empty() == spec.library.empty())
    throw TapeError(TapeErrorKind::kInvalidArgument,
                    "name exactly one of a device (--device) or a library (--library)");
  if (!spec.library.empty()) {
    std::filesystem::create_directories(spec.library);
    return std::make_unique<ImageLibrary>(spec.library, spec.drives, spec.blank_geometry);
  }
  OpenDriveOptions options;
  options.read_only = spec.read_only;
  options.create_if_missing = !spec.read_only;
  options.geometry = spec.blank_geometry;
  return std::make_unique<SingleDriveLibrary>(open_drive(spec.device, options),
                                              std::move(read_serial));
}

}  // namespace mixtape::tape
