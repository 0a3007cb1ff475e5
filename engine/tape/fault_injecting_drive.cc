// FaultInjectingDrive: the injected faults are checked against the inner
// drive's position, so they follow the tape wherever the caller moves it.
// Fault paths may reposition the inner drive (a locate to the injected end of
// data), which shows in its counters; tests of counters use no faults.
#include "engine/tape/tape.h"

namespace mixtape::tape {

void FaultInjectingDrive::clear_faults() {
  bad_records_.clear();
  end_of_data_.reset();
  early_warning_at_.reset();
  physical_end_at_.reset();
}

void FaultInjectingDrive::check_write(std::uint64_t blocks) {
  if (!physical_end_at_) return;
  const std::uint64_t block = inner_.tell();
  if (block + blocks > *physical_end_at_) {
    throw TapeError(
        TapeErrorKind::kPhysicalEnd,
        name() + ": physical end of medium (injected) writing block " + std::to_string(block),
        block);
  }
}

WriteResult FaultInjectingDrive::with_early_warning(WriteResult result) {
  if (early_warning_at_ && inner_.tell() > *early_warning_at_) result.early_warning = true;
  return result;
}

WriteResult FaultInjectingDrive::write_record(ByteSpan data) {
  check_write(1);
  return with_early_warning(inner_.write_record(data));
}

WriteResult FaultInjectingDrive::write_filemarks(std::uint32_t count) {
  check_write(count);
  return with_early_warning(inner_.write_filemarks(count));
}

ReadResult FaultInjectingDrive::read_record(MutableByteSpan buffer) {
  if (bad_records_.empty() && !end_of_data_) return inner_.read_record(buffer);
  const std::uint64_t block = inner_.tell();
  if (end_of_data_ && block >= *end_of_data_) return {ReadKind::kEndOfData, 0};
  ReadResult result = inner_.read_record(buffer);
  if (result.kind == ReadKind::kData && bad_records_.count(block) != 0) {
    throw TapeError(TapeErrorKind::kMediaError,
                    name() + ": media error reading block " + std::to_string(block) + " (injected)",
                    block);
  }
  return result;
}

void FaultInjectingDrive::space_filemarks_forward(std::uint32_t count) {
  if (!end_of_data_) return inner_.space_filemarks_forward(count);
  bool hit_end = false;
  try {
    inner_.space_filemarks_forward(count);
  } catch (const TapeError& e) {
    if (e.kind() != TapeErrorKind::kEndOfData) throw;
    hit_end = true;
  }
  // The count-th filemark lies beyond the injected end (or there is none).
  if (hit_end || inner_.tell() > *end_of_data_) {
    inner_.locate(*end_of_data_);
    throw TapeError(TapeErrorKind::kEndOfData,
                    name() + ": end of data at block " + std::to_string(*end_of_data_) +
                        " before " + std::to_string(count) + " filemark(s)",
                    *end_of_data_);
  }
}

void FaultInjectingDrive::space_filemarks_backward(std::uint32_t count) {
  inner_.space_filemarks_backward(count);
}

void FaultInjectingDrive::locate(std::uint64_t block) {
  if (!end_of_data_ || block <= *end_of_data_) return inner_.locate(block);
  inner_.locate(*end_of_data_);
  throw TapeError(TapeErrorKind::kEndOfData,
                  name() + ": cannot locate block " + std::to_string(block) +
                      ": end of data is at block " + std::to_string(*end_of_data_),
                  block);
}

void FaultInjectingDrive::space_to_eod() {
  if (!end_of_data_) return inner_.space_to_eod();
  inner_.locate(*end_of_data_);
}

DriveStatus FaultInjectingDrive::status() {
  DriveStatus s = inner_.status();
  if (s.loaded && end_of_data_) s.eod = inner_.tell() == *end_of_data_;
  return s;
}

}  // namespace mixtape::tape
