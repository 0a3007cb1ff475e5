// FaultInjectingDrive: the injected faults are checked against the inner
// drive's position, so they follow the tape wherever the caller moves it.
// Fault paths may reposition the inner drive (a locate to the injected end of
// data), which shows in its counters; tests of counters use no faults.
// FaultInjectingLibrary keeps one such wrapper per drive of a library.
#include "engine/tape/libraries.h"
#include "engine/tape/tape.h"

namespace mixtape::tape {

void FaultInjectingDrive::clear_faults() {
  bad_records_.clear();
  bad_writes_.clear();
  end_of_data_.reset();
  early_warning_at_.reset();
  physical_end_at_.reset();
  writes_until_failure_.reset();
  dead_ = false;
}

void FaultInjectingDrive::check_alive() const {
  if (dead_) throw TapeError(TapeErrorKind::kDeviceError, name() + ": drive failed (injected)");
}

void FaultInjectingDrive::check_write(std::uint64_t blocks) {
  check_alive();
  if (writes_until_failure_ && *writes_until_failure_ == 0) {
    dead_ = true;
    check_alive();
  }
  const std::uint64_t block = inner_.tell();
  if (physical_end_at_ && block + blocks > *physical_end_at_) {
    throw TapeError(
        TapeErrorKind::kPhysicalEnd,
        name() + ": physical end of medium (injected) writing block " + std::to_string(block),
        block);
  }
  if (auto bad = bad_writes_.lower_bound(block);
      bad != bad_writes_.end() && *bad < block + blocks) {
    throw TapeError(TapeErrorKind::kMediaError,
                    name() + ": media error writing block " + std::to_string(*bad) + " (injected)",
                    *bad);
  }
}

void FaultInjectingDrive::count_write() {
  if (writes_until_failure_ && *writes_until_failure_ > 0) --*writes_until_failure_;
}

WriteResult FaultInjectingDrive::with_early_warning(WriteResult result) {
  if (early_warning_at_ && inner_.tell() > *early_warning_at_) result.early_warning = true;
  return result;
}

WriteResult FaultInjectingDrive::write_record(ByteSpan data) {
  check_write(1);
  WriteResult result = with_early_warning(inner_.write_record(data));
  count_write();
  return result;
}

WriteResult FaultInjectingDrive::write_filemarks(std::uint32_t count) {
  check_write(count);
  WriteResult result = with_early_warning(inner_.write_filemarks(count));
  count_write();
  return result;
}

std::uint64_t FaultInjectingDrive::tell() {
  check_alive();
  return inner_.tell();
}

void FaultInjectingDrive::rewind() {
  check_alive();
  inner_.rewind();
}

void FaultInjectingDrive::load() {
  check_alive();
  inner_.load();
}

void FaultInjectingDrive::unload() {
  check_alive();
  inner_.unload();
}

ReadResult FaultInjectingDrive::read_record(MutableByteSpan buffer) {
  check_alive();
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
  check_alive();
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
  check_alive();
  inner_.space_filemarks_backward(count);
}

void FaultInjectingDrive::locate(std::uint64_t block) {
  check_alive();
  if (!end_of_data_ || block <= *end_of_data_) return inner_.locate(block);
  inner_.locate(*end_of_data_);
  throw TapeError(TapeErrorKind::kEndOfData,
                  name() + ": cannot locate block " + std::to_string(block) +
                      ": end of data is at block " + std::to_string(*end_of_data_),
                  block);
}

void FaultInjectingDrive::space_to_eod() {
  check_alive();
  if (!end_of_data_) return inner_.space_to_eod();
  inner_.locate(*end_of_data_);
}

DriveStatus FaultInjectingDrive::status() {
  if (dead_) return {};  // a dead drive answers like an empty one
  DriveStatus s = inner_.status();
  if (s.loaded && end_of_data_) s.eod = inner_.tell() == *end_of_data_;
  return s;
}

}  // namespace mixtape::tape

namespace mixtape::tape {

FaultInjectingLibrary::FaultInjectingLibrary(Library& inner) : inner_(inner) {
  for (std::size_t i = 0; i < inner_.drive_count(); ++i)
    drives_.push_back(std::make_unique<FaultInjectingDrive>(inner_.drive(i)));
}

FaultInjectingDrive& FaultInjectingLibrary::faults(std::size_t index) {
  if (index >= drives_.size())
    throw TapeError(TapeErrorKind::kInvalidArgument, "no drive " + std::to_string(index));
  return *drives_[index];
}

Drive& FaultInjectingLibrary::load(const std::string& serial, std::size_t index) {
  FaultInjectingDrive& drive = faults(index);
  if (drive.dead())
    throw TapeError(TapeErrorKind::kDeviceError,
                    drive.name() + ": drive failed (injected); cannot load " + serial);
  inner_.load(serial, index);
  if (on_load) on_load(serial, index, drive);
  return drive;
}

void FaultInjectingLibrary::unload(std::size_t index) {
  faults(index);
  inner_.unload(index);
}

}  // namespace mixtape::tape
