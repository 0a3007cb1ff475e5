// Sizes for planning: what an archive, its index and a tape's reserve take
// on tape.
#include <sys/sysinfo.h>

#include <filesystem>
#include <limits>

#include "engine/backup/pipeline.h"

namespace mixtape::backup {
namespace {

constexpr std::uint64_t kMaxArchiveSize = 4ULL << 30;
constexpr std::uint64_t kMinArchiveSize = 64ULL << 20;
// Archives per run the default size aims for: enough that hashing archive
// k+1 overlaps writing archive k for most of the run.
constexpr std::uint64_t kArchivesPerRun = 8;
// SIMH images spend 8 bytes of length words per record (and a filemark 4);
// tape capacity is counted in image bytes, so planning counts them too.
constexpr std::uint64_t kRecordOverhead = 9;
// An index without members or catalog rows: its schema and small tables.
constexpr std::uint64_t kIndexOverhead = 64 << 10;

// Room kept free at the end of a tape: its trailing index (a catalog copy)
// with slack for the catalog growing during the session, a few records, and
// 1% for everything estimated.
std::uint64_t safety_margin(std::uint64_t catalog_size, std::uint64_t capacity,
                            std::uint64_t record_size) {
  return capacity / 100 + 2 * catalog_size + 8 * record_size + (1 << 20);
}

std::uint64_t file_size_or_zero(const std::string& path) {
  std::error_code ignored;
  std::uint64_t size = std::filesystem::file_size(path, ignored);
  return ignored ? 0 : size;
}

}  // namespace

format::MemberInfo member_info(const catalog::VersionRow& version, const std::string& path) {
  format::MemberInfo info;
  info.path = path.substr(1);
  info.type = version.kind == catalog::VersionKind::kSymlink ? format::MemberType::kSymlink
                                                             : format::MemberType::kFile;
  info.size = version.kind == catalog::VersionKind::kFile ? version.size : 0;
  info.mode = version.attrs.mode & 07777;
  info.uid = version.attrs.uid;
  info.gid = version.attrs.gid;
  info.uname = version.attrs.uname;
  info.gname = version.attrs.gname;
  info.mtime_ns = version.attrs.mtime_ns;
  info.linkpath = version.symlink_target;
  if (version.kind == catalog::VersionKind::kFile) info.blake2b256 = to_hex(version.hash);
  return info;
}

std::uint64_t tape_bytes(std::uint64_t bytes, std::uint64_t record_size) {
  return bytes + format::record_count(bytes, record_size) * kRecordOverhead + kRecordOverhead;
}

std::uint64_t catalog_bytes(catalog::Writer& catalog) {
  const std::uint64_t logical = catalog.logical_size();
  return logical ? logical : file_size_or_zero(catalog.path());
}

std::uint64_t page_cache_share() {
  struct sysinfo info {};
  if (::sysinfo(&info) != 0) return std::numeric_limits<std::uint64_t>::max();
  return static_cast<std::uint64_t>(info.totalram) * info.mem_unit / 8;
}

std::uint64_t default_archive_size(std::uint64_t work_bytes) {
  // The write stage re-reads each file from the page cache, which must hold
  // the archive being written and the ones hashed ahead of it.
  std::uint64_t largest = std::min(kMaxArchiveSize, page_cache_share());
  largest = std::max(largest, kMinArchiveSize);
  return std::clamp(work_bytes / kArchivesPerRun, kMinArchiveSize, largest);
}

std::uint64_t Room::footprint(std::uint64_t plain_size, std::uint64_t index_member_bytes,
                              bool first_of_session) const {
  const std::uint64_t base = first_of_session ? first_index_base : index_base;
  const std::uint64_t index = sealing->sealed_size(age_header_length, base + index_member_bytes);
  return tape_bytes(sealing->sealed_size(age_header_length, plain_size), record_size) +
         tape_bytes(index, record_size);
}

Room room_for(std::uint64_t capacity, std::uint64_t bytes_used, std::uint64_t record_size,
              std::uint64_t catalog_size, std::uint64_t label_bytes, const Sealing& sealing,
              std::uint64_t age_header_length) {
  std::uint64_t margin = safety_margin(catalog_size, capacity, record_size);
  Room room;
  room.record_size = record_size;
  room.first_index_base = catalog_size + kIndexOverhead;
  room.index_base = kIndexOverhead;
  room.age_header_length = age_header_length;
  room.sealing = &sealing;
  room.session = capacity > bytes_used + margin ? capacity - bytes_used - margin : 0;
  std::uint64_t empty_used = margin + label_bytes;
  room.empty_tape = capacity > empty_used ? capacity - empty_used : 0;
  return room;
}

std::uint64_t index_member_bytes(const std::string& path) {
  // The member row, and the file's rows in the catalog changes (files,
  // versions, copies; a directory now and then).
  return 2 * path.size() + 512;
}

bool fits_empty_tape(const Room& room, std::uint64_t size, const std::string& path) {
  std::uint64_t member = 3 * format::kTarBlockSize + size + format::kTarBlockSize;
  return room.footprint(member + format::kTarEndOfArchiveSize, index_member_bytes(path),
                        /*first_of_session=*/true) <= room.empty_tape;
}

bool drive_failure(tape::TapeErrorKind kind) {
  return kind == tape::TapeErrorKind::kDeviceError || kind == tape::TapeErrorKind::kNotLoaded ||
         kind == tape::TapeErrorKind::kTimeout;
}

}  // namespace mixtape::backup
