// MtxChanger: a SCSI media changer through mtx(1). Every decision is made
// from a fresh `mtx status`, since the operator may have moved tapes through
// the mail slot in the meantime.
#include <cctype>
#include <regex>
#include <sstream>

#include "engine/tape/libraries.h"
#include "engine/tape/tape.h"

namespace mixtape::tape {
namespace {

std::string trim(std::string s) {
  s.erase(0, s.find_first_not_of(" \t\r"));
  s.erase(s.find_last_not_of(" \t\r") + 1);
  return s;
}

// ":VolumeTag = L00001L6" (drives) or ":VolumeTag=L00002L6" (slots).
std::string volume_tag(const std::string& rest) {
  static const std::regex tag(R"(:VolumeTag\s*=\s*([^:]*))");
  std::smatch m;
  if (!std::regex_search(rest, m, tag)) return {};
  return trim(m[1]);
}

// The serial a barcode names: LTO barcodes are the volume serial followed by
// a two-character media id ("L00042L6").
std::string serial_of(const std::string& tag) {
  if (tag.size() == 8 && std::isupper(static_cast<unsigned char>(tag[6])) &&
      std::isalnum(static_cast<unsigned char>(tag[7]))) {
    return tag.substr(0, 6);
  }
  return tag;
}

}  // namespace

bool volume_tag_matches(std::string_view volume_tag, std::string_view serial) {
  if (serial.empty()) return false;
  if (volume_tag == serial) return true;
  return volume_tag.size() == serial.size() + 2 && volume_tag.starts_with(serial) &&
         std::isupper(static_cast<unsigned char>(volume_tag[serial.size()])) &&
         std::isalnum(static_cast<unsigned char>(volume_tag[serial.size() + 1]));
}

MtxStatus parse_mtx_status(std::string_view text) {
  static const std::regex header(
      R"(^Storage Changer (.*):(\d+) Drives?, (\d+) Slots? \( (\d+) Import/Export \))");
  static const std::regex drive(
      R"(^Data Transfer Element (\d+):(Empty|Full)(?: \((?:Storage Element (\d+)|Unknown Storage Element) Loaded\))?(.*)$)");
  static const std::regex slot(R"(^Storage Element (\d+)( IMPORT/EXPORT)?:(Empty|Full)(.*)$)");

  MtxStatus status;
  bool seen_header = false;
  std::istringstream lines{std::string(text)};
  std::string line;
  while (std::getline(lines, line)) {
    line = trim(line);
    std::smatch m;
    if (std::regex_search(line, m, header)) {
      seen_header = true;
      status.drive_count = std::stoi(m[2]);
      status.slot_count = std::stoi(m[3]);
      status.import_export_count = std::stoi(m[4]);
    } else if (std::regex_match(line, m, drive)) {
      MtxElement e;
      e.number = std::stoi(m[1]);
      e.full = m[2] == "Full";
      if (m[3].matched) e.source_slot = std::stoi(m[3]);
      e.volume_tag = volume_tag(m[4]);
      status.drives.push_back(e);
    } else if (std::regex_match(line, m, slot)) {
      MtxElement e;
      e.number = std::stoi(m[1]);
      e.import_export = m[2].matched;
      e.full = m[3] == "Full";
      e.volume_tag = volume_tag(m[4]);
      status.slots.push_back(e);
    }
  }
  if (!seen_header) {
    throw TapeError(TapeErrorKind::kDeviceError,
                    "unexpected output from mtx status: " + std::string(text.substr(0, 200)));
  }
  return status;
}

MtxChanger::MtxChanger(std::string changer_device, std::vector<std::unique_ptr<Drive>> drives,
                       CommandRunner runner, SerialReader read_serial)
    : changer_device_(std::move(changer_device)),
      drives_(std::move(drives)),
      runner_(std::move(runner)),
      read_serial_(std::move(read_serial)),
      loaded_(drives_.size()) {
  if (drives_.empty()) {
    throw TapeError(TapeErrorKind::kInvalidArgument, changer_device_ + ": no drives given");
  }
}

std::string MtxChanger::mtx(const std::vector<std::string>& arguments) {
  std::vector<std::string> argv = {"mtx", "-f", changer_device_};
  argv.insert(argv.end(), arguments.begin(), arguments.end());
  CommandResult result = runner_(argv);
  if (result.exit_status != 0) {
    std::string command;
    for (const std::string& a : argv) command += (command.empty() ? "" : " ") + a;
    throw TapeError(TapeErrorKind::kDeviceError, command + " failed (exit status " +
                                                     std::to_string(result.exit_status) +
                                                     "): " + trim(result.output));
  }
  return result.output;
}

MtxStatus MtxChanger::status() {
  return parse_mtx_status(mtx({"status"}));
}

Drive& MtxChanger::drive(std::size_t index) {
  if (index >= drives_.size()) {
    throw TapeError(TapeErrorKind::kInvalidArgument,
                    changer_device_ + " has no drive " + std::to_string(index));
  }
  return *drives_[index];
}

std::vector<std::string> MtxChanger::serials() {
  std::vector<std::string> out;
  MtxStatus s = status();
  for (const auto* elements : {&s.drives, &s.slots}) {
    for (const MtxElement& e : *elements) {
      if (e.full && !e.volume_tag.empty()) out.push_back(serial_of(e.volume_tag));
    }
  }
  return out;
}

void MtxChanger::unload_to_slot(const MtxStatus& status, std::size_t index) {
  std::optional<int> slot;
  if (index < status.drives.size()) slot = status.drives[index].source_slot;
  if (!slot) {
    // mtx cannot know where the tape came from: use the first empty slot.
    for (const MtxElement& e : status.slots) {
      if (!e.full && !e.import_export) {
        slot = e.number;
        break;
      }
    }
  }
  if (!slot) {
    throw TapeError(TapeErrorKind::kDeviceError,
                    changer_device_ + ": no empty slot to unload drive " + std::to_string(index));
  }
  // Most changers move a cartridge only once the drive has ejected it.
  drives_[index]->unload();
  mtx({"unload", std::to_string(*slot), std::to_string(index)});
  loaded_[index].reset();
}

Drive& MtxChanger::load(const std::string& serial, std::size_t index) {
  check_serial(serial);
  Drive& target = drive(index);
  MtxStatus s = status();
  if (index >= s.drives.size()) {
    throw TapeError(TapeErrorKind::kDeviceError,
                    changer_device_ + ": mtx reports no drive " + std::to_string(index));
  }
  if (s.drives[index].full && volume_tag_matches(s.drives[index].volume_tag, serial)) {
    target.load();
    target.rewind();
    return verified(index, serial);
  }
  for (std::size_t other = 0; other < s.drives.size(); ++other) {
    if (other != index && s.drives[other].full &&
        volume_tag_matches(s.drives[other].volume_tag, serial)) {
      // A drive no device was given for cannot be told to eject it.
      if (other >= drives_.size())
        throw TapeError(TapeErrorKind::kInvalidArgument,
                        "tape " + serial + " is in drive " + std::to_string(other) + " of " +
                            changer_device_ + ", whose device was not given (--device names " +
                            std::to_string(drives_.size()) +
                            "): give every drive's device, in the changer's drive order, or "
                            "move the tape to a slot first (mtx -f " +
                            changer_device_ + " unload)");
      unload_to_slot(s, other);
      s = status();
    }
  }
  if (s.drives[index].full) {
    unload_to_slot(s, index);
    s = status();
  }
  for (const MtxElement& e : s.slots) {
    if (e.full && volume_tag_matches(e.volume_tag, serial)) {
      mtx({"load", std::to_string(e.number), std::to_string(index)});
      ++robot_loads_;
      target.load();
      return verified(index, serial);
    }
  }
  throw TapeError(TapeErrorKind::kNotLoaded,
                  "tape " + serial + " is not in the library " + changer_device_);
}

// The robot put the cartridge with `serial`'s barcode into data transfer
// element `index`; the device given for that element must hold it. A blank
// tape cannot say, and a foreign one is refused later by whoever would write
// to it; a label with another serial means the devices are in another order
// than the changer's drives.
Drive& MtxChanger::verified(std::size_t index, const std::string& serial) {
  Drive& target = *drives_[index];
  loaded_[index].reset();
  if (read_serial_) {
    std::optional<std::string> found;
    try {
      found = read_serial_(target);
    } catch (const TapeError&) {
      throw;
    } catch (const Error&) {
      // Not a mixtape label: nothing to compare.
    }
    if (found && *found != serial) {
      throw TapeError(TapeErrorKind::kDeviceError,
                      target.name() + " holds tape " + *found + ", but " + changer_device_ +
                          " loaded tape " + serial + " into its drive " + std::to_string(index) +
                          ": list the drives' devices in the changer's drive order (mtx status: "
                          "Data Transfer Element 0, 1, ...)");
    }
  }
  loaded_[index] = serial;
  return target;
}

void MtxChanger::unload(std::size_t index) {
  drive(index);
  MtxStatus s = status();
  if (index < s.drives.size() && s.drives[index].full) unload_to_slot(s, index);
  loaded_[index].reset();
}

std::optional<std::string> MtxChanger::loaded_serial(std::size_t index) const {
  return index < loaded_.size() ? loaded_[index] : std::nullopt;
}

DriveStats MtxChanger::stats() const {
  DriveStats total;
  for (const auto& d : drives_) total += d->stats();
  // The drive loads a cartridge the robot pushes in without being asked.
  total.loads = std::max(total.loads, robot_loads_);
  return total;
}

}  // namespace mixtape::tape
