// Tape file 0: the label and everything a stranger needs to read the tape
// (docs/FORMAT.md "File 0"). A plain tar, never encrypted.
#include <sys/utsname.h>

#include <algorithm>
#include <filesystem>

#include "engine/crypto/crypto.h"
#include "engine/format/embedded.h"
#include "engine/format/format.h"

namespace mixtape::format {
namespace {

// Members of file 0 are owned by root and dated when the tape was labelled.
MemberInfo archaeology_member(std::string path, std::uint64_t size, std::uint32_t mode,
                              std::int64_t mtime_ns) {
  MemberInfo info;
  info.path = std::move(path);
  info.size = size;
  info.mode = mode;
  info.uname = "root";
  info.gname = "root";
  info.mtime_ns = mtime_ns;
  return info;
}

void add_bytes(PaxWriter& tar, MemberInfo info, ByteSpan data) {
  info.blake2b256 = to_hex(crypto::blake2b256(data));
  tar.begin_file(info);
  tar.write_data(data);
  tar.end_file();
}

// Streams a file from disk: hashed in one pass, written in a second (the
// binary can be tens of megabytes).
void add_file(PaxWriter& tar, MemberInfo info, const std::string& path) {
  FileRandomAccess file(path);
  Bytes buffer(1 << 20);
  auto for_each_chunk = [&](auto&& fn) {
    for (std::uint64_t offset = 0; offset < file.size();) {
      std::size_t n = file.read_at(offset, buffer);
      if (n == 0) throw FormatError(path + ": shrank while being written to tape file 0");
      fn(ByteSpan(buffer.data(), n));
      offset += n;
    }
  };
  crypto::Blake2b256 hasher;
  for_each_chunk([&](ByteSpan chunk) { hasher.update(chunk); });
  info.size = file.size();
  info.blake2b256 = to_hex(hasher.finish());
  tar.begin_file(info);
  for_each_chunk([&](ByteSpan chunk) { tar.write_data(chunk); });
  tar.end_file();
}

std::string machine_name() {
  struct utsname name {};
  if (::uname(&name) != 0) throw_errno("uname");
  return name.machine;
}

}  // namespace

void write_archaeology(ByteSink& out, const LabelInfo& label, const ArchaeologyExtras& extras) {
  std::string text = format_label(label);  // validates the label
  auto labelled = parse_utc(label.labelled);
  std::int64_t mtime_ns = *labelled * 1000000000;
  std::string version = extras.version;
  std::string arch = extras.arch.empty() ? machine_name() : extras.arch;
  // Names become member paths: keep them single components.
  for (const std::string& part : {version, arch}) {
    if (part.empty() || part.find('/') != std::string::npos || part.starts_with(".")) {
      throw FormatError("archaeology: bad version or architecture name '" + part + "'");
    }
  }

  PaxWriter tar(out);
  add_bytes(tar, archaeology_member(std::string(kLabelMemberName), text.size(), 0644, mtime_ns),
            as_bytes(text));
  for (const auto& file : embedded::archaeology_texts()) {
    add_bytes(tar, archaeology_member(std::string(file.name), file.data.size(), 0644, mtime_ns),
              file.data);
  }
  std::string tarball_name = "source/mixtape-" + version + ".tar.gz";
  if (extras.source_tarball_path.empty()) {
    ByteSpan tarball = embedded::source_tarball();
    add_bytes(tar, archaeology_member(tarball_name, tarball.size(), 0644, mtime_ns), tarball);
  } else {
    add_file(tar, archaeology_member(tarball_name, 0, 0644, mtime_ns), extras.source_tarball_path);
  }
  std::string binary = extras.binary_path.empty() ? "/proc/self/exe" : extras.binary_path;
  // The sources of the libraries linked into the binary, when they lie
  // beside it (mixtape-static.sources/, cli/CMakeLists.txt): a dynamically
  // linked program carries none of them, and needs none.
  const std::string sources =
      extras.library_sources_dir.empty() ? binary + ".sources" : extras.library_sources_dir;
  std::error_code error;
  if (std::filesystem::is_directory(sources, error)) {
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(sources, error))
      if (entry.is_regular_file(error)) names.push_back(entry.path().filename().string());
    std::sort(names.begin(), names.end());
    for (const auto& name : names) {
      if (name.find('/') != std::string::npos || name.starts_with(".")) continue;
      add_file(tar, archaeology_member("source/" + name, 0, 0644, mtime_ns), sources + "/" + name);
    }
  }
  add_file(tar, archaeology_member("bin/mixtape-" + version + "-" + arch, 0, 0755, mtime_ns),
           binary);
  tar.finish();
}

}  // namespace mixtape::format
