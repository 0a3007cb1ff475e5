// The index database opened from tape (engine/format index.cc IndexReader,
// engine/catalog merge.cc merge_from_index, engine/sqlite's untrusted
// mode): the input is the SQLite file recover, verify and mount read after
// decrypting an index off a tape anyone could have written.
//
// The file is opened as IndexReader opens it (read-only, immutable, SQLite's
// defensive settings), validated, its members walked and looked up, and its
// catalog copy merged into an empty catalog, twice, inside a transaction the
// fuzzer rolls back (so the catalog is made once per process).
//
// Checked besides crashes: only mixtape::Error escapes (SQLite and format
// errors both are); a validated archive row and its members describe bytes
// that lie inside the archive on tape; merging leaves the catalog's foreign
// keys intact; and merging the same index again adds nothing.
#include <string>

#include "engine/catalog/catalog.h"
#include "engine/format/format.h"
#include "fuzz/fuzz_util.h"

namespace mixtape {
namespace {

catalog::Catalog& empty_catalog() {
  static catalog::Catalog c = [] {
    catalog::CatalogConfig config;
    config.encryption = catalog::Encryption::kNone;
    return catalog::Catalog::create(fuzz::scratch().file("catalog.db"), config);
  }();
  return c;
}

void read_index(const std::string& path) {
  try {
    format::IndexReader index(path);
    const auto& archive = index.archive();
    FUZZ_CHECK(archive.has_value() == (index.header().kind == format::IndexKind::kArchive));
    std::string first_path;
    auto members = index.members();
    while (auto m = members.next()) {
      if (first_path.empty()) first_path = m->info.path;
      if (!archive) continue;
      // Where a restore would locate to must be inside the archive's file.
      format::TapePosition p = format::locate(index.geometry(), m->offsets.data_offset);
      FUZZ_CHECK(p.stored_offset < archive->ciphertext_size);
      FUZZ_CHECK(p.block >= archive->first_block);
      FUZZ_CHECK(m->offsets.data_offset + m->info.size <= archive->plaintext_size);
    }
    if (!first_path.empty()) FUZZ_CHECK(index.find(first_path).has_value());
  } catch (const Error&) {
  }
}

void merge_index(const std::string& path) {
  catalog::Catalog& c = empty_catalog();
  auto rollback = c.transaction();
  try {
    c.merge_from_index(path);
  } catch (const Error&) {
    return;
  }
  auto check = c.database().prepare("PRAGMA foreign_key_check");
  FUZZ_CHECK(!check.step());
  catalog::MergeStats again = c.merge_from_index(path);
  FUZZ_CHECK(again.runs == 0 && again.tapes == 0 && again.dirs == 0 && again.files == 0 &&
             again.versions == 0 && again.archives == 0 && again.copies == 0 &&
             again.verifications == 0);
}

}  // namespace
}  // namespace mixtape

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace mixtape;
  const std::string path = fuzz::scratch().file("index.db");
  fuzz::remove_with_sidecars(path);
  fuzz::write_file(path, ByteSpan(data, size));
  read_index(path);
  merge_index(path);
  return 0;
}
