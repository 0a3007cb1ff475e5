// The archive writer: docs/FORMAT.md "Archives". Each member is a pax 'x'
// extended header (path, mtime with nanoseconds, MIXTAPE.blake2b256, and
// whatever does not fit the ustar fields) followed by a complete ustar header,
// so readers without pax support still get a usable archive.
#include <algorithm>
#include <array>

#include "engine/format/format.h"
#include "engine/format/tar_header.h"

namespace mixtape::format {
namespace {

constexpr std::array<std::uint8_t, kTarEndOfArchiveSize> kZeros{};

bool is_ascii(std::string_view text) {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

std::string quoted(std::string_view path) {
  return "'" + std::string(path) + "'";
}

// Refuses what the reader side would refuse, so every archive written here
// restores: names must already be normalised relative paths.
void validate(const MemberInfo& info) {
  auto safe = safe_relative_path(info.path);
  if (!safe || *safe != info.path) {
    throw FormatError("tar member " + quoted(info.path) +
                      ": not a normalised relative path (no leading '/', '..', '.', '//' or "
                      "trailing '/')");
  }
  auto has_nul = [](std::string_view s) { return s.find('\0') != std::string_view::npos; };
  if (has_nul(info.linkpath) || has_nul(info.uname) || has_nul(info.gname)) {
    throw FormatError("tar member " + quoted(info.path) + ": NUL in link target or owner name");
  }
  if (info.mode > 07777) {
    throw FormatError("tar member " + quoted(info.path) + ": mode " + std::to_string(info.mode) +
                      " has bits beyond 07777");
  }
  switch (info.type) {
    case MemberType::kFile:
      if (!tar::is_hash_hex(info.blake2b256)) {
        throw FormatError("tar member " + quoted(info.path) +
                          ": regular files need a BLAKE2b-256 as 64 lower-case hex digits");
      }
      if (info.size > static_cast<std::uint64_t>(INT64_MAX)) {
        throw FormatError("tar member " + quoted(info.path) + ": size too large");
      }
      break;
    case MemberType::kSymlink:
      if (info.linkpath.empty()) {
        throw FormatError("tar member " + quoted(info.path) + ": symlink without a target");
      }
      [[fallthrough]];
    case MemberType::kDirectory:
      if (info.size != 0) {
        throw FormatError("tar member " + quoted(info.path) + ": only regular files have data");
      }
      break;
    default:
      throw FormatError("tar member " + quoted(info.path) + ": cannot write a " +
                        std::string(member_type_name(info.type)) + " member");
  }
}

// Fills name and prefix the ustar way when the path allows it; otherwise the
// name field holds a truncated copy and only the pax `path` is exact.
void put_name(tar::Block& block, std::string_view name) {
  if (name.size() <= tar::kName.size) {
    tar::put_string(block, tar::kName, name);
    return;
  }
  std::size_t first = name.size() - tar::kName.size - 1;
  for (std::size_t p = name.find('/', first); p != std::string_view::npos && p <= tar::kPrefix.size;
       p = name.find('/', p + 1)) {
    if (p > 0 && p + 1 < name.size()) {
      tar::put_string(block, tar::kPrefix, name.substr(0, p));
      tar::put_string(block, tar::kName, name.substr(p + 1));
      return;
    }
  }
  tar::put_string(block, tar::kName, tar::utf8_prefix(name, tar::kName.size));
}

void put_magic(tar::Block& block) {
  tar::put_string(block, tar::kMagic, std::string_view("ustar\0", 6));
  tar::put_string(block, tar::kVersion, "00");
}

std::int64_t floor_seconds(std::int64_t ns) {
  std::int64_t s = ns / 1000000000;
  return (ns % 1000000000 < 0) ? s - 1 : s;
}

char typeflag_of(MemberType type) {
  switch (type) {
    case MemberType::kDirectory:
      return tar::kTypeDirectory;
    case MemberType::kSymlink:
      return tar::kTypeSymlink;
    default:
      return tar::kTypeFile;
  }
}

// The pax extended header and ustar header for a member, ready to write.
std::string encode_headers(const MemberInfo& info) {
  validate(info);
  const std::string name = info.type == MemberType::kDirectory ? info.path + "/" : info.path;
  const std::int64_t mtime = floor_seconds(info.mtime_ns);

  tar::Block ustar{};
  put_name(ustar, name);
  tar::put_number(ustar, tar::kMode, info.mode);
  bool uid_fits = tar::put_number(ustar, tar::kUid, static_cast<std::int64_t>(info.uid));
  bool gid_fits = tar::put_number(ustar, tar::kGid, static_cast<std::int64_t>(info.gid));
  bool size_fits = tar::put_number(ustar, tar::kSize, static_cast<std::int64_t>(info.size));
  tar::put_number(ustar, tar::kMtime, mtime);
  ustar[tar::kTypeflag.offset] = static_cast<std::uint8_t>(typeflag_of(info.type));
  tar::put_string(ustar, tar::kLinkname, tar::utf8_prefix(info.linkpath, tar::kLinkname.size));
  put_magic(ustar);
  // uname/gname are NUL-terminated in ustar: 31 bytes at most.
  bool uname_fits = info.uname.size() < tar::kUname.size && is_ascii(info.uname);
  bool gname_fits = info.gname.size() < tar::kGname.size && is_ascii(info.gname);
  tar::put_string(ustar, tar::kUname, tar::utf8_prefix(info.uname, tar::kUname.size - 1));
  tar::put_string(ustar, tar::kGname, tar::utf8_prefix(info.gname, tar::kGname.size - 1));
  tar::put_number(ustar, tar::kDevmajor, 0);
  tar::put_number(ustar, tar::kDevminor, 0);
  tar::put_checksum(ustar);

  std::string records;
  // Pax values are UTF-8 unless the header says otherwise; file names are
  // bytes, so say so when they are not UTF-8 (as libarchive does).
  if (!tar::is_valid_utf8(name) || !tar::is_valid_utf8(info.linkpath) ||
      !tar::is_valid_utf8(info.uname) || !tar::is_valid_utf8(info.gname)) {
    records += tar::pax_record("hdrcharset", "BINARY");
  }
  records += tar::pax_record("path", name);
  if (info.type == MemberType::kSymlink) records += tar::pax_record("linkpath", info.linkpath);
  if (!size_fits) records += tar::pax_record("size", std::to_string(info.size));
  if (!uid_fits) records += tar::pax_record("uid", std::to_string(info.uid));
  if (!gid_fits) records += tar::pax_record("gid", std::to_string(info.gid));
  if (!uname_fits) records += tar::pax_record("uname", info.uname);
  if (!gname_fits) records += tar::pax_record("gname", info.gname);
  records += tar::pax_record("mtime", tar::format_pax_time_ns(info.mtime_ns));
  if (info.type == MemberType::kFile) records += tar::pax_record(kHashKeyword, info.blake2b256);

  // The extended header's own ustar header. Its name is what a reader
  // without pax support would extract it as, so keep it recognisable.
  tar::Block extended{};
  std::string_view base = std::string_view(info.path).substr(info.path.rfind('/') + 1);
  std::string pax_name = "PaxHeaders/";
  pax_name += tar::utf8_prefix(base, tar::kName.size - pax_name.size());
  tar::put_string(extended, tar::kName, pax_name);
  tar::put_number(extended, tar::kMode, 0644);
  tar::put_number(extended, tar::kUid, 0);
  tar::put_number(extended, tar::kGid, 0);
  tar::put_number(extended, tar::kSize, static_cast<std::int64_t>(records.size()));
  tar::put_number(extended, tar::kMtime, std::clamp<std::int64_t>(mtime, 0, 077777777777));
  extended[tar::kTypeflag.offset] = static_cast<std::uint8_t>(tar::kTypePaxLocal);
  put_magic(extended);
  tar::put_number(extended, tar::kDevmajor, 0);
  tar::put_number(extended, tar::kDevminor, 0);
  tar::put_checksum(extended);

  std::string out;
  out.reserve(2 * tar::kBlockSize + tar::padded(records.size()));
  out.append(as_chars(extended));
  out.append(records);
  out.resize(tar::kBlockSize + tar::padded(records.size()), '\0');
  out.append(as_chars(ustar));
  return out;
}

}  // namespace

std::uint64_t pax_header_size(const MemberInfo& info) {
  return encode_headers(info).size();
}

MemberOffsets PaxLayout::add(const MemberInfo& info) {
  MemberOffsets offsets;
  offsets.header_offset = position_;
  offsets.data_offset = position_ + pax_header_size(info);
  position_ = offsets.data_offset + tar::padded(info.type == MemberType::kFile ? info.size : 0);
  return offsets;
}

void PaxWriter::require(State state, const char* operation) {
  if (state_ == state) return;
  std::string why = state_ == State::kFailed     ? "after an earlier failure"
                    : state_ == State::kFinished ? "after finish()"
                    : state_ == State::kInFile   ? "while member '" + current_ + "' is open"
                                                 : "with no member open";
  state_ = State::kFailed;
  throw FormatError(std::string("tar writer: ") + operation + " called " + why);
}

void PaxWriter::emit(ByteSpan bytes) {
  // If the sink throws, the stream is cut mid-member: stay failed.
  State state = state_;
  state_ = State::kFailed;
  out_.write(bytes);
  position_ += bytes.size();
  state_ = state;
}

void PaxWriter::write_headers(const MemberInfo& info) {
  std::string headers = encode_headers(info);  // validates; nothing written on error
  emit(as_bytes(headers));
}

MemberOffsets PaxWriter::begin_file(const MemberInfo& info) {
  require(State::kBetween, "begin_file");
  if (info.type != MemberType::kFile) {
    throw FormatError("tar member '" + info.path + "': begin_file needs a regular file");
  }
  MemberOffsets offsets{position_, 0};
  write_headers(info);
  offsets.data_offset = position_;
  state_ = State::kInFile;
  remaining_ = info.size;
  file_size_ = info.size;
  current_ = info.path;
  return offsets;
}

void PaxWriter::write_data(ByteSpan data) {
  require(State::kInFile, "write_data");
  if (data.size() > remaining_) {
    state_ = State::kFailed;
    throw FormatError("tar member '" + current_ + "': more data than its declared size " +
                      std::to_string(file_size_) + " (the file grew while being written?)");
  }
  emit(data);
  remaining_ -= data.size();
}

void PaxWriter::data_written_directly(std::size_t bytes) {
  require(State::kInFile, "data_written_directly");
  if (bytes > remaining_) {
    state_ = State::kFailed;
    throw FormatError("tar member '" + current_ + "': more data than its declared size " +
                      std::to_string(file_size_) + " (the file grew while being written?)");
  }
  position_ += bytes;
  remaining_ -= bytes;
}

void PaxWriter::end_file() {
  require(State::kInFile, "end_file");
  if (remaining_ != 0) {
    state_ = State::kFailed;
    throw FormatError("tar member '" + current_ + "': " + std::to_string(remaining_) +
                      " bytes short of its declared size " + std::to_string(file_size_) +
                      " (the file shrank while being written?)");
  }
  std::uint64_t padding = tar::padded(file_size_) - file_size_;
  emit(ByteSpan(kZeros.data(), padding));
  state_ = State::kBetween;
  current_.clear();
}

MemberOffsets PaxWriter::add_header_only(const MemberInfo& info, MemberType expected) {
  require(State::kBetween, expected == MemberType::kSymlink ? "add_symlink" : "add_directory");
  if (info.type != expected) {
    throw FormatError("tar member '" + info.path + "': type is " +
                      std::string(member_type_name(info.type)) + ", expected " +
                      std::string(member_type_name(expected)));
  }
  MemberOffsets offsets{position_, 0};
  write_headers(info);
  offsets.data_offset = position_;
  return offsets;
}

MemberOffsets PaxWriter::add_symlink(const MemberInfo& info) {
  return add_header_only(info, MemberType::kSymlink);
}

MemberOffsets PaxWriter::add_directory(const MemberInfo& info) {
  return add_header_only(info, MemberType::kDirectory);
}

void PaxWriter::finish() {
  require(State::kBetween, "finish");
  emit(kZeros);
  state_ = State::kFinished;
}

}  // namespace mixtape::format
