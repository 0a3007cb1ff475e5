// Small shared pieces of the tape module: error kinds, counters, the timing
// model, serial checks and the open_drive factory.
#include <sys/stat.h>

#include <cstdio>
#include <limits>

#include "engine/tape/image_drive.h"
#include "engine/tape/st_drive.h"
#include "engine/tape/tape.h"

namespace mixtape::tape {

namespace {

constexpr EnumNames<TapeErrorKind, 11> kTapeErrorKinds{
    {{TapeErrorKind::kMediaError, "media error"},
     {TapeErrorKind::kEndOfData, "end of data"},
     {TapeErrorKind::kBeginningOfTape, "beginning of tape"},
     {TapeErrorKind::kPhysicalEnd, "physical end of medium"},
     {TapeErrorKind::kRecordTooLarge, "record too large"},
     {TapeErrorKind::kWriteProtected, "write protected"},
     {TapeErrorKind::kNotLoaded, "no tape loaded"},
     {TapeErrorKind::kInvalidArgument, "invalid argument"},
     {TapeErrorKind::kTimeout, "timeout"},
     {TapeErrorKind::kPositionLost, "position lost"},
     {TapeErrorKind::kDeviceError, "device error"}}};

}  // namespace

std::string_view to_string(TapeErrorKind kind) {
  return kTapeErrorKinds.name(kind);
}

WriteResult Drive::write_record_gathered(std::span<const ByteSpan> pieces) {
  Bytes record;
  for (ByteSpan piece : pieces) record.insert(record.end(), piece.begin(), piece.end());
  return write_record(record);
}

DriveStats& DriveStats::operator+=(const DriveStats& other) {
  loads += other.loads;
  unloads += other.unloads;
  locates += other.locates;
  filemark_spaces += other.filemark_spaces;
  eod_spaces += other.eod_spaces;
  rewinds += other.rewinds;
  records_read += other.records_read;
  records_written += other.records_written;
  bytes_read += other.bytes_read;
  bytes_written += other.bytes_written;
  filemarks_read += other.filemarks_read;
  filemarks_written += other.filemarks_written;
  media_errors += other.media_errors;
  tape_seconds += other.tape_seconds;
  return *this;
}

std::string DriveStats::to_json() const {
  std::string out = "{";
  auto field = [&out](const char* key, std::uint64_t value) {
    out += "\"";
    out += key;
    out += "\": ";
    out += std::to_string(value);
    out += ", ";
  };
  field("loads", loads);
  field("unloads", unloads);
  field("locates", locates);
  field("filemark_spaces", filemark_spaces);
  field("eod_spaces", eod_spaces);
  field("rewinds", rewinds);
  field("records_read", records_read);
  field("records_written", records_written);
  field("bytes_read", bytes_read);
  field("bytes_written", bytes_written);
  field("filemarks_read", filemarks_read);
  field("filemarks_written", filemarks_written);
  field("media_errors", media_errors);
  // %.17g round-trips a double; JSON has no inf/nan, and neither occurs here.
  char seconds[32];
  std::snprintf(seconds, sizeof seconds, "%.17g", tape_seconds);
  out += "\"tape_seconds\": ";
  out += seconds;
  out += "}";
  return out;
}

double TimingModel::stream_seconds(std::uint64_t bytes) const {
  return static_cast<double>(bytes) / stream_bytes_per_second;
}

double TimingModel::locate_seconds(std::uint64_t distance_bytes) const {
  if (distance_bytes == 0) return 0;
  return locate_base_seconds + static_cast<double>(distance_bytes) / locate_bytes_per_second;
}

std::uint64_t TimingModel::read_forward_break_even() const {
  // d / stream <= base + d / locate  <=>  d <= base / (1 / stream - 1 / locate).
  const double per_byte = 1 / stream_bytes_per_second - 1 / locate_bytes_per_second;
  if (per_byte <= 0) return std::numeric_limits<std::uint64_t>::max();
  const double limit = locate_base_seconds / per_byte;
  if (limit >= 1.8e19) return std::numeric_limits<std::uint64_t>::max();
  return static_cast<std::uint64_t>(limit);
}

double TimingModel::rewind_seconds(std::uint64_t position_bytes) const {
  return full_rewind_seconds * static_cast<double>(position_bytes) /
         static_cast<double>(tape_bytes);
}

void check_serial(std::string_view serial) {
  bool ok = !serial.empty() && serial.size() <= 32;
  for (char c : serial) {
    bool allowed = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                   c == '_' || c == '-';
    ok = ok && allowed;
  }
  if (!ok) {
    throw TapeError(TapeErrorKind::kInvalidArgument,
                    "invalid tape serial '" + std::string(serial) +
                        "': use 1 to 32 letters, digits, '_' or '-'");
  }
}

std::unique_ptr<Drive> open_drive(const std::string& device, const OpenDriveOptions& options) {
  struct stat st {};
  const bool exists = ::stat(device.c_str(), &st) == 0;
  const bool looks_like_device = device.starts_with("/dev/") && !device.ends_with(".tap");
  if ((exists && S_ISCHR(st.st_mode)) || (!exists && looks_like_device)) {
    StDriveOptions st;
    st.read_only = options.read_only;
    st.notice = options.notice;
    return std::make_unique<StDrive>(device, std::move(st));
  }
  if (!exists) {
    if (!options.create_if_missing) {
      throw TapeError(TapeErrorKind::kNotLoaded, device + ": no such tape image");
    }
    ImageDrive::create(device, options.geometry);
  }
  return ImageDrive::open(device, options.read_only, options.timing, options.index_path);
}

}  // namespace mixtape::tape
