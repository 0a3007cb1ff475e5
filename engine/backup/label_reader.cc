#include "engine/backup/backup.h"
#include "engine/format/format.h"

namespace mixtape::backup {

tape::SerialReader label_serial_reader() {
  return [](tape::Drive& drive) -> std::optional<std::string> {
    drive.rewind();
    Bytes probe(tape::kReadBufferSize);
    auto first = drive.read_record(probe);
    drive.rewind();
    if (first.kind != tape::ReadKind::kData) return std::nullopt;  // blank
    tape::TapeFileReader reader(drive);
    std::string serial = format::read_label(reader).serial;
    drive.rewind();
    return serial;
  };
}

}  // namespace mixtape::backup
