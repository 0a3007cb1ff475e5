#include "engine/tape/emulated_changer.h"

#include <sstream>

namespace mixtape::tape {

EmulatedChanger::EmulatedChanger(std::string device, std::vector<EmulatedStDevice*> drives,
                                 std::size_t slots)
    : device_(std::move(device)),
      drives_(std::move(drives)),
      drive_tag_(drives_.size()),
      drive_source_(drives_.size()),
      slots_(slots) {}

void EmulatedChanger::put(std::size_t slot, const std::string& volume_tag,
                          EmulatedCartridge cartridge) {
  std::lock_guard lock(mutex_);
  if (slot < 1 || slot > slots_.size() || !slots_[slot - 1].empty())
    throw Error("emulated changer: slot " + std::to_string(slot) + " is not free");
  slots_[slot - 1] = volume_tag;
  cartridges_[volume_tag] = std::move(cartridge);
}

CommandRunner EmulatedChanger::runner() {
  return [this](const std::vector<std::string>& argv) { return (*this)(argv); };
}

std::vector<std::string> EmulatedChanger::calls() const {
  std::lock_guard lock(mutex_);
  return calls_;
}

void EmulatedChanger::clear_calls() {
  std::lock_guard lock(mutex_);
  calls_.clear();
}

CommandResult EmulatedChanger::operator()(const std::vector<std::string>& argv) {
  std::lock_guard lock(mutex_);
  std::string line;
  for (const std::string& a : argv) line += (line.empty() ? "" : " ") + a;
  calls_.push_back(line);
  if (argv.size() < 4 || argv[0] != "mtx" || argv[1] != "-f" || argv[2] != device_) {
    return {1, "usage"};
  }
  if (argv[3] == "status") return {0, render()};
  if (argv.size() != 6) return {1, "usage"};
  const std::size_t slot = std::stoul(argv[4]) - 1;
  const std::size_t drive = std::stoul(argv[5]);
  if (slot >= slots_.size() || drive >= drives_.size()) return {1, "no such element"};
  if (argv[3] == "load") {
    if (slots_[slot].empty() || !drive_tag_[drive].empty()) return {1, "cannot load"};
    drive_tag_[drive] = slots_[slot];
    drive_source_[drive] = static_cast<int>(slot + 1);
    slots_[slot].clear();
    drives_[drive]->insert(cartridges_.at(drive_tag_[drive]));
    cartridges_.erase(drive_tag_[drive]);
    return {0, "Loading media from Storage Element " + argv[4] + " into drive " + argv[5] +
                   "...done\n"};
  }
  if (argv[3] == "unload") {
    if (drives_[drive]->loaded()) return {1, "Drive needs offline before move\n"};
    if (drive_tag_[drive].empty() || !slots_[slot].empty()) return {1, "cannot unload"};
    cartridges_[drive_tag_[drive]] = *drives_[drive]->remove();
    slots_[slot] = drive_tag_[drive];
    drive_tag_[drive].clear();
    return {0, "Unloading drive " + argv[5] + " into Storage Element " + argv[4] + "...done\n"};
  }
  return {1, "unknown command"};
}

std::string EmulatedChanger::render() const {
  std::ostringstream out;
  out << "  Storage Changer " << device_ << ":" << drives_.size() << " Drives, " << slots_.size()
      << " Slots ( 1 Import/Export )\n";
  for (std::size_t d = 0; d < drives_.size(); ++d) {
    out << "Data Transfer Element " << d << ":";
    if (drive_tag_[d].empty()) {
      out << "Empty\n";
    } else {
      out << "Full (Storage Element " << drive_source_[d]
          << " Loaded):VolumeTag = " << drive_tag_[d] << "\n";
    }
  }
  for (std::size_t s = 0; s < slots_.size(); ++s) {
    out << "      Storage Element " << s + 1 << (s + 1 == slots_.size() ? " IMPORT/EXPORT" : "")
        << ":" << (slots_[s].empty() ? "Empty" : "Full ");
    if (!slots_[s].empty()) out << ":VolumeTag=" << slots_[s];
    out << "\n";
  }
  return out.str();
}

}  // namespace mixtape::tape
