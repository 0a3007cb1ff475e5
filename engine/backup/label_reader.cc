#include "engine/backup/backup.h"
#include "engine/format/format.h"

namespace mixtape::backup {

tape::SerialReader label_serial_reader() {
  return [](tape::Drive& drive) -> std::optional<std::string> {
    // Blank only where the drive confirms end of data at block 0: a first
    // record it cannot read is an error, never a blank tape to label.
    if (tape::tape_is_blank(drive)) return std::nullopt;
    std::string serial = read_tape_label(drive).serial;
    drive.rewind();
    return serial;
  };
}

}  // namespace mixtape::backup
