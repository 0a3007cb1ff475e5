// Helpers shared by the engine/format tests.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "engine/common/common.h"
#include "engine/crypto/crypto.h"
#include "engine/format/format.h"
#include "engine/format/tar_header.h"
#include "tests/support/test_support.h"

namespace mixtape::format::testing {

using namespace mixtape::test_support;

// A member to write and the data it should read back with.
struct Sample {
  MemberInfo info;
  std::string data;
};

// A file's metadata with owner names, ids and a mode that a reader must
// carry through unchanged (none of them the defaults).
inline MemberInfo file_info(std::string path, const std::string& data,
                            std::int64_t mtime_ns = 1700000000123456789) {
  MemberInfo info;
  info.path = std::move(path);
  info.size = data.size();
  info.mode = 0640;
  info.uid = 1000;
  info.gid = 100;
  info.uname = "alice";
  info.gname = "users";
  info.mtime_ns = mtime_ns;
  info.blake2b256 = hash_hex(data);
  return info;
}

// A 4000-byte path of 250-byte components (each within NAME_MAX).
inline std::string long_path() {
  std::string path;
  for (int i = 0; path.size() < 3700; ++i) {
    path += std::string(249, static_cast<char>('a' + i)) + "/";
  }
  path += std::string(4000 - path.size(), 'z');
  return path;
}

// A short symlink and one whose target needs more than the ustar field.
inline void add_symlinks(std::vector<Sample>& out, std::int64_t mtime_ns) {
  MemberInfo link;
  link.path = "link";
  link.type = MemberType::kSymlink;
  link.linkpath = "plain.txt";
  link.mode = 0777;
  link.mtime_ns = mtime_ns;
  link.uname = link.gname = "root";
  out.push_back({link, ""});
  link.path = "long-link";
  link.linkpath = std::string(300, 'q') + "/target";
  out.push_back({link, ""});
}

inline Sample empty_dir() {
  MemberInfo dir;
  dir.path = "empty dir";
  dir.type = MemberType::kDirectory;
  dir.mode = 0750;
  dir.mtime_ns = 1600000000500000000;
  dir.uname = dir.gname = "root";
  return {dir, ""};
}

// Builds raw tar bytes, hostile ones too: what no writer would make.
class RawTar {
 public:
  // A ustar header with the given fields, checksummed.
  static tar::Block header(std::string_view name, char type, std::int64_t size) {
    tar::Block b{};
    tar::put_string(b, tar::kName, name);
    tar::put_number(b, tar::kMode, 0644);
    tar::put_number(b, tar::kUid, 0);
    tar::put_number(b, tar::kGid, 0);
    tar::put_number(b, tar::kSize, size);
    tar::put_number(b, tar::kMtime, 1700000000);
    b[tar::kTypeflag.offset] = static_cast<std::uint8_t>(type);
    tar::put_string(b, tar::kMagic, std::string_view("ustar\0", 6));
    tar::put_string(b, tar::kVersion, "00");
    tar::put_checksum(b);
    return b;
  }
  RawTar& block(const tar::Block& b) {
    bytes_.insert(bytes_.end(), b.begin(), b.end());
    return *this;
  }
  RawTar& data(std::string_view d) {
    bytes_.insert(bytes_.end(), d.begin(), d.end());
    bytes_.resize(tar::padded(bytes_.size()), 0);
    return *this;
  }
  RawTar& member(std::string_view name, std::string_view d, char type = '0') {
    return block(header(name, type, static_cast<std::int64_t>(d.size()))).data(d);
  }
  RawTar& pax(std::string_view records) {
    return block(header("PaxHeaders/x", 'x', static_cast<std::int64_t>(records.size())))
        .data(records);
  }
  RawTar& end() {
    bytes_.resize(bytes_.size() + 1024, 0);
    return *this;
  }
  Bytes& bytes() { return bytes_; }

 private:
  Bytes bytes_;
};

// A header with one field overwritten and its checksum made right again,
// so that the field alone is hostile.
inline tar::Block with_field(tar::Block b, tar::Field field, std::string_view value) {
  tar::put_string(b, field, value);
  tar::put_checksum(b);
  return b;
}

}  // namespace mixtape::format::testing
