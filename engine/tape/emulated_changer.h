// A SCSI media changer behind `mtx`, emulated for tests of MtxChanger: it
// answers `mtx -f DEVICE status` in mtx's format, moves cartridges between
// its slots and EmulatedStDevice drives on `load SLOT DRIVE` / `unload SLOT
// DRIVE`, and, like real robots, refuses to pull a tape out of a drive that
// has not ejected it. drives[i] is data transfer element i; a test can give
// MtxChanger the devices in another order, as an operator listing /dev/nstN
// might. Private to engine/tape (tests include it; front ends never do).
#pragma once

#include <cstddef>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "engine/tape/emulated_st_device.h"
#include "engine/tape/libraries.h"
#include "engine/tape/tape.h"

namespace mixtape::tape {

class EmulatedChanger {
 public:
  // `slots` storage elements, numbered from 1; the last is the import/export
  // (mail) slot.
  EmulatedChanger(std::string device, std::vector<EmulatedStDevice*> drives, std::size_t slots);

  // The operator puts a cartridge with a barcode into a slot (1-based).
  void put(std::size_t slot, const std::string& volume_tag, EmulatedCartridge cartridge);
  // Runs one mtx command line (argv[0] == "mtx"): the CommandRunner seam.
  CommandResult operator()(const std::vector<std::string>& argv);
  // A runner for MtxChanger that calls this changer (which must outlive it).
  CommandRunner runner();
  // The command lines run so far, joined with spaces.
  std::vector<std::string> calls() const;
  void clear_calls();

 private:
  std::string render() const;

  mutable std::mutex mutex_;
  std::string device_;
  std::vector<EmulatedStDevice*> drives_;
  std::vector<std::string> drive_tag_;                   // "" = empty
  std::vector<int> drive_source_;                        // the slot a drive's tape came from
  std::vector<std::string> slots_;                       // "" = empty
  std::map<std::string, EmulatedCartridge> cartridges_;  // out of any drive
  std::vector<std::string> calls_;
};

}  // namespace mixtape::tape
