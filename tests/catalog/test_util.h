// Helpers shared by the catalog tests.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "engine/catalog/catalog.h"
#include "tests/support/test_support.h"

namespace mixtape::catalog::testing {

using test_support::TempDir;

inline CatalogConfig test_config() {
  CatalogConfig c;
  c.encryption = Encryption::kRecipients;
  c.recipients = {"age1testrecipientxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"};
  c.default_copies = 2;
  return c;
}

inline Hash hash_of(std::string_view content) {
  return crypto::blake2b256(as_bytes(content));
}

// A regular-file version whose content is `content` (size and hash follow).
inline VersionRow file_version(std::string_view content, std::int64_t mtime_ns = 1000,
                               std::uint32_t mode = 0644) {
  VersionRow v;
  v.kind = VersionKind::kFile;
  v.size = content.size();
  v.hash = hash_of(content);
  v.attrs.mode = mode;
  v.attrs.uid = 1000;
  v.attrs.gid = 1000;
  v.attrs.uname = "me";
  v.attrs.gname = "me";
  v.attrs.mtime_ns = mtime_ns;
  return v;
}

// A test with a new catalog of its own, `c` (test_config(), in a
// temporary folder).
class NewCatalogTest : public ::testing::Test {
 protected:
  TempDir tmp_;
  Catalog c = Catalog::create(tmp_.file("c.db"), test_config());
};

// Ensures the file at `path` (and its directory) and returns its id.
inline Id make_file(Catalog& c, std::string_view path) {
  auto slash = path.rfind('/');
  std::string dir = slash == 0 ? "/" : std::string(path.substr(0, slash));
  return c.ensure_file(c.ensure_dir(dir), path.substr(slash + 1));
}

// A tape with an archive on it, ready for copies.
struct TapeWithArchive {
  Id tape = 0;
  Id archive = 0;
};

inline TapeWithArchive add_tape_with_archive(Catalog& c, const std::string& serial,
                                             std::int64_t archive_file = 2, Id run = 0) {
  TapeRow t;
  t.serial = serial;
  t.capacity = 1ull << 40;
  t.record_size = 512 * 1024;
  t.state = TapeState::kOpen;
  TapeWithArchive out;
  out.tape = c.tape_by_serial(serial) ? c.tape_by_serial(serial)->id : c.add_tape(t);
  ArchiveRow a;
  a.tape_id = out.tape;
  a.index_file = archive_file - 1;
  a.index_block = 100;
  a.archive_file = archive_file;
  a.first_block = 200;
  a.age_header_len = 200;
  a.cipher_bytes = 1 << 20;
  a.plain_bytes = 1 << 20;
  a.members = 1;
  a.run_id = run;
  out.archive = c.add_archive(a);
  return out;
}

inline Id add_copy(Catalog& c, Id archive, Id version, std::uint64_t offset = 512) {
  CopyRow row;
  row.archive_id = archive;
  row.version_id = version;
  row.header_offset = offset;
  row.data_offset = offset + 512;
  return c.add_copy(row);
}

}  // namespace mixtape::catalog::testing
