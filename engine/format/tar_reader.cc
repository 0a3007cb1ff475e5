// The tar reader. Archives come from tape and may be damaged or hostile, so
// every field is checked, every extended header is bounded before anything
// is allocated for it, and no size is believed until the bytes arrive.
#include <algorithm>
#include <array>
#include <cstring>

#include "engine/format/format.h"
#include "engine/format/tar_header.h"

namespace mixtape::format {
namespace {

// Effective pax values for one member: local ('x') records override global
// ('g') ones; an empty value deletes, so the ustar field applies again.
class PaxValues {
 public:
  PaxValues(const std::vector<std::pair<std::string, std::string>>& global,
            const std::vector<std::pair<std::string, std::string>>& local)
      : global_(global), local_(local) {}

  std::optional<std::string_view> get(std::string_view key) const {
    for (const auto* records : {&local_, &global_}) {
      for (auto it = records->rbegin(); it != records->rend(); ++it) {
        if (it->first != key) continue;
        if (it->second.empty()) return std::nullopt;
        return std::string_view(it->second);
      }
    }
    return std::nullopt;
  }

 private:
  const std::vector<std::pair<std::string, std::string>>& global_;
  const std::vector<std::pair<std::string, std::string>>& local_;
};

// Appends the records of an extended header, refusing what we cannot honour.
// Records accumulate over repeated headers ('g' for the whole archive, 'x'
// before one member), so their total is bounded like a single header.
void parse_records(std::string_view data, std::vector<std::pair<std::string, std::string>>& out) {
  std::uint64_t total = data.size();
  for (const auto& [key, value] : out) total += key.size() + value.size();
  if (total > tar::kMaxExtendedHeaderSize) {
    throw Error("extended headers total more than " + std::to_string(tar::kMaxExtendedHeaderSize) +
                " bytes");
  }
  tar::PaxRecordParser parser(data);
  while (auto record = parser.next()) {
    auto [key, value] = *record;
    if (key.starts_with("GNU.sparse.")) {
      throw Error("sparse members (" + std::string(key) + ") are not supported");
    }
    out.emplace_back(key, value);
  }
}

bool is_header_only(char typeflag) {
  // POSIX: no data records follow links, devices, directories and fifos,
  // whatever the size field says.
  return typeflag >= '1' && typeflag <= '6';
}

MemberType type_of(char typeflag) {
  switch (typeflag) {
    case '0':
    case '\0':
    case '7':  // contiguous file: a regular file everywhere that matters
      return MemberType::kFile;
    case '1':
      return MemberType::kHardlink;
    case '2':
      return MemberType::kSymlink;
    case '5':
    case 'D':  // GNU dumpdir: a directory followed by a listing we skip
      return MemberType::kDirectory;
    default:
      return MemberType::kOther;
  }
}

std::uint64_t non_negative(std::optional<std::int64_t> value, const char* what) {
  if (!value) throw Error(std::string("malformed ") + what + " field");
  if (*value < 0) throw Error(std::string("negative ") + what + " " + std::to_string(*value));
  return static_cast<std::uint64_t>(*value);
}

std::uint64_t pax_or_header(const PaxValues& pax, std::string_view key, const tar::Block& block,
                            tar::Field field) {
  if (auto text = pax.get(key)) {
    auto value = tar::parse_pax_integer(*text);
    if (!value || *value < 0) {
      throw Error("malformed pax " + std::string(key) + " '" + tar::printable(*text) + "'");
    }
    return static_cast<std::uint64_t>(*value);
  }
  return non_negative(tar::get_number(block, field), std::string(key).c_str());
}

std::int64_t mtime_ns(const PaxValues& pax, const tar::Block& block) {
  if (auto text = pax.get("mtime")) {
    auto ns = tar::parse_pax_time_ns(*text);
    if (!ns) throw Error("malformed or out-of-range pax mtime '" + tar::printable(*text) + "'");
    return *ns;
  }
  auto seconds = tar::get_number(block, tar::kMtime);
  constexpr std::int64_t kLimit = INT64_MAX / 1000000000;
  if (!seconds || *seconds > kLimit || *seconds < -kLimit) {
    throw Error("malformed or out-of-range mtime field");
  }
  return *seconds * 1000000000;
}

// The name as the header gives it: pax path, else GNU long name, else the
// ustar prefix and name.
std::string raw_name(const PaxValues& pax, const std::optional<std::string>& long_name,
                     const tar::Block& block, bool posix) {
  if (auto path = pax.get("path")) return std::string(*path);
  if (long_name) return *long_name;
  std::string name(tar::get_string(block, tar::kName));
  std::string_view prefix = posix ? tar::get_string(block, tar::kPrefix) : "";
  return prefix.empty() ? name : std::string(prefix) + "/" + name;
}

std::string raw_linkpath(const PaxValues& pax, const std::optional<std::string>& long_link,
                         const tar::Block& block) {
  if (auto link = pax.get("linkpath")) return std::string(*link);
  if (long_link) return *long_link;
  return std::string(tar::get_string(block, tar::kLinkname));
}

}  // namespace

TarReader::TarReader(ByteSource& source, std::string name, std::uint64_t start_offset)
    : source_(source), name_(std::move(name)), position_(start_offset) {}

void TarReader::fail(std::uint64_t offset, const std::string& message) const {
  std::string where = name_ + ": ";
  if (!current_.empty()) where += "member '" + tar::printable(current_) + "': ";
  throw FormatError(where + "offset " + std::to_string(offset) + ": " + message);
}

bool TarReader::read_block(Block& block) {
  std::size_t n = read_full(source_, block);
  if (n == 0) return false;
  if (n < block.size()) {
    fail(position_,
         "truncated: the archive ends " + std::to_string(n) + " bytes into a header block");
  }
  position_ += n;
  return true;
}

std::string TarReader::read_extended(std::uint64_t size, std::uint64_t header_offset) {
  if (size > tar::kMaxExtendedHeaderSize) {
    fail(header_offset, "extended header of " + std::to_string(size) +
                            " bytes exceeds the limit of " +
                            std::to_string(tar::kMaxExtendedHeaderSize));
  }
  std::string data(size, '\0');
  std::size_t n = read_full(
      source_, MutableByteSpan(reinterpret_cast<std::uint8_t*>(data.data()), data.size()));
  position_ += n;
  if (n < size) {
    fail(position_, "truncated: extended header ends after " + std::to_string(n) + " of " +
                        std::to_string(size) + " bytes");
  }
  skip_bytes(tar::padded(size) - size);
  return data;
}

void TarReader::skip_bytes(std::uint64_t count) {
  std::array<std::uint8_t, 64 * 1024> scratch;
  std::uint64_t total = count;
  while (count > 0) {
    std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(count, scratch.size()));
    std::size_t n = source_.read(MutableByteSpan(scratch.data(), want));
    if (n == 0) {
      fail(position_, "truncated: the archive ends " + std::to_string(count) + " bytes before " +
                          "the end of the member (" + std::to_string(total - count) + " of " +
                          std::to_string(total) + " bytes present)");
    }
    position_ += n;
    count -= n;
  }
}

std::size_t TarReader::read_data(MutableByteSpan out) {
  if (remaining_ == 0 || out.empty()) return 0;
  std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(out.size(), remaining_));
  std::size_t n = source_.read(out.first(want));
  if (n == 0) {
    fail(position_, "truncated: the archive ends with " + std::to_string(remaining_) +
                        " bytes of member data still to come");
  }
  position_ += n;
  remaining_ -= n;
  return n;
}

void TarReader::skip_data() {
  std::uint64_t count = remaining_ + padding_;
  remaining_ = 0;
  padding_ = 0;
  skip_bytes(count);
}

std::optional<TarMember> TarReader::next() {
  // An entry for the archive root itself ("./", as `tar -C dir -cf x .`
  // writes) has nothing to restore; the reader passes over it.
  for (;;) {
    auto member = read_member();
    if (!member || !member->info.path.empty()) return member;
  }
}

std::optional<TarMember> TarReader::read_member() {
  if (ended_) return std::nullopt;
  skip_data();
  current_.clear();

  const std::uint64_t first_header = position_;
  std::vector<std::pair<std::string, std::string>> local;
  std::optional<std::string> long_name;
  std::optional<std::string> long_link;
  bool extended = false;
  Block block;
  std::uint64_t at = position_;
  bool posix = false;
  for (;;) {
    at = position_;
    if (!read_block(block)) {
      fail(at, extended ? "truncated: an extended header is not followed by its member"
                        : "truncated: the archive ends without an end-of-archive marker");
    }
    if (tar::is_zero(block)) {
      if (extended) fail(at, "an extended header is followed by the end-of-archive marker");
      // The marker is two zero blocks; a lone one at the very end (a
      // truncated marker) is accepted, as GNU tar does, but not data.
      if (read_block(block) && !tar::is_zero(block)) {
        fail(at, "a lone zero block followed by more data (damaged archive?)");
      }
      ended_ = true;
      return std::nullopt;
    }
    if (!tar::checksum_matches(block)) {
      fail(at, "header checksum mismatch: not a tar header, or a damaged one");
    }
    std::string_view magic(reinterpret_cast<const char*>(block.data() + tar::kMagic.offset), 8);
    posix = magic.substr(0, 6) == std::string_view("ustar\0", 6);
    if (!posix && magic != std::string_view("ustar  \0", 8)) {
      fail(at, "not a ustar/pax/GNU tar header (unknown magic)");
    }
    auto size_field = tar::get_number(block, tar::kSize);
    if (!size_field || *size_field < 0) fail(at, "malformed or negative size field");
    char typeflag = static_cast<char>(block[tar::kTypeflag.offset]);
    auto size = static_cast<std::uint64_t>(*size_field);
    try {
      switch (typeflag) {
        case tar::kTypePaxLocal:
          parse_records(read_extended(size, at), local);
          extended = true;
          continue;
        case tar::kTypePaxGlobal:
          parse_records(read_extended(size, at), global_);
          continue;
        case tar::kTypeGnuLongName:
        case tar::kTypeGnuLongLink: {
          std::string data = read_extended(size, at);
          data.resize(strnlen(data.c_str(), data.size()));  // NUL-terminated
          (typeflag == tar::kTypeGnuLongName ? long_name : long_link) = std::move(data);
          extended = true;
          continue;
        }
        case 'S':
        case 'M':
          fail(at, std::string("GNU ") + (typeflag == 'S' ? "sparse" : "multi-volume") +
                       " members are not supported");
        default:
          break;
      }
    } catch (const FormatError&) {
      throw;
    } catch (const Error& e) {
      fail(at, e.what());
    }
    break;
  }

  // The member's own header. Sizes and types first: if the member is
  // refused below, its data is still skipped and the next one readable.
  PaxValues pax(global_, local);
  TarMember member;
  member.typeflag = static_cast<char>(block[tar::kTypeflag.offset]);
  member.offsets = {first_header, position_};
  member.info.type = type_of(member.typeflag);
  std::string name = raw_name(pax, long_name, block, posix);
  current_ = name;
  bool sized = false;  // once the data size is known, the member can be stepped over
  try {
    std::uint64_t size = pax_or_header(pax, "size", block, tar::kSize);
    if (size > static_cast<std::uint64_t>(INT64_MAX)) throw Error("size out of range");
    std::uint64_t data_size = is_header_only(member.typeflag) ? 0 : size;
    remaining_ = data_size;
    padding_ = tar::padded(data_size) - data_size;
    member.info.size = data_size;
    sized = true;
    auto mode = tar::get_number(block, tar::kMode);
    if (!mode || *mode < 0) throw Error("malformed mode field");
    member.info.mode = static_cast<std::uint32_t>(*mode & 07777);
    member.info.uid = pax_or_header(pax, "uid", block, tar::kUid);
    member.info.gid = pax_or_header(pax, "gid", block, tar::kGid);
    auto uname = pax.get("uname");
    auto gname = pax.get("gname");
    member.info.uname = uname ? *uname : tar::get_string(block, tar::kUname);
    member.info.gname = gname ? *gname : tar::get_string(block, tar::kGname);
    member.info.mtime_ns = mtime_ns(pax, block);
    if (member.info.type == MemberType::kSymlink || member.info.type == MemberType::kHardlink) {
      member.info.linkpath = raw_linkpath(pax, long_link, block);
      if (member.info.linkpath.empty()) throw Error("link without a target");
    }
    for (std::string_view keyword : {kHashKeyword, kHashKeywordV1}) {
      auto hash = pax.get(keyword);
      if (!hash) continue;
      if (!tar::is_hash_hex(*hash)) {
        throw Error("malformed " + std::string(keyword) + " '" + tar::printable(*hash) +
                    "' (want 64 lower-case hex digits)");
      }
      if (!member.info.blake2b256.empty() && member.info.blake2b256 != *hash)
        throw Error("two different BLAKE2b-256 hashes");
      member.info.blake2b256 = *hash;
    }
  } catch (const Error& e) {
    fail(at, std::string(e.what()) + (sized ? "; member skipped" : ""));
  }

  auto safe = safe_relative_path(name);
  bool root = member.info.type == MemberType::kDirectory && !name.empty() && name[0] != '/' &&
              name.find_first_not_of("./") == std::string::npos &&
              name.find("..") == std::string::npos;
  if (root) {
    member.info.path.clear();
    return member;
  }
  if (!safe) {
    fail(at, "unsafe member name (empty, absolute, NUL or '..'); member skipped");
  }
  if (member.info.type == MemberType::kHardlink && !safe_relative_path(member.info.linkpath)) {
    fail(at, "hard link to an unsafe name '" + tar::printable(member.info.linkpath) +
                 "'; member skipped");
  }
  member.info.path = std::move(*safe);
  return member;
}

TarMember read_member_at(RandomAccessSource& archive, std::uint64_t header_offset,
                         std::string_view archive_name) {
  if (header_offset % kTarBlockSize != 0 || header_offset >= archive.size()) {
    throw FormatError(std::string(archive_name) + ": no member header can start at offset " +
                      std::to_string(header_offset));
  }
  OffsetReader source(archive, header_offset);
  TarReader reader(source, std::string(archive_name), header_offset);
  auto member = reader.next();
  if (!member) {
    throw FormatError(std::string(archive_name) + ": offset " + std::to_string(header_offset) +
                      ": end-of-archive marker where a member was expected");
  }
  return *member;
}

}  // namespace mixtape::format
