// Private to engine/format: files embedded in the library at build time
// (see CMakeLists.txt here): the archaeology texts and the source tarball.
#pragma once

#include <span>
#include <string_view>

#include "engine/common/common.h"

namespace mixtape::format::embedded {

struct File {
  std::string_view name;  // as written to tape file 0: "README.txt", "specs/age.txt", ...
  ByteSpan data;
};

// README.txt, FORMAT.txt (docs/FORMAT.md), then specs/*.txt by name.
std::span<const File> archaeology_texts();

// source/mixtape-<version>.tar.gz, packed from the source tree at build time.
ByteSpan source_tarball();

}  // namespace mixtape::format::embedded
