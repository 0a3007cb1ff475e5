// The foreign-tape indexer (engine/foreign): the input is a whole tape image
// of a tape mixtape did not write, as found: tar archives of any dialect,
// compressed or not, damaged, hostile or no tar at all, in records of any
// size. It is indexed in one pass into a new catalog (index_tape, through
// libarchive), then every file indexed is restored from the image through
// the recall queue's ForeignReader.
//
// Checked besides crashes:
//  - the index pass ends with a catalog or a mixtape::Error (a blank tape,
//    a drive error), never anything else;
//  - every file it indexed restores, byte for byte as hashed in the pass
//    (the restore checks each BLAKE2b-256 against the catalog): the pass
//    and the reader agree on where each member is, whatever the tar;
//  - nothing is written outside the destination.
#include <filesystem>
#include <string>

#include "engine/foreign/foreign.h"
#include "engine/restore/restore.h"
#include "fuzz/fuzz_util.h"

namespace mixtape::foreign {
namespace {

constexpr std::size_t kMaxInput = 1 << 20;

void run(const std::uint8_t* data, std::size_t size) {
  const auto& dir = fuzz::scratch();
  std::error_code ignored;
  const std::string image = dir.file("tape.tap");
  const std::string catalog_path = dir.file("index.db");
  const std::string out = dir.file("out");
  for (const std::string& path : {image, image + ".idx", catalog_path, catalog_path + "-wal",
                                  catalog_path + "-shm", catalog_path + "-journal"})
    std::filesystem::remove(path, ignored);
  std::filesystem::remove_all(out, ignored);
  {
    UniqueFd fd = open_file(image, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    write_all(fd.get(), ByteSpan(data, size), image);
  }
  catalog::CatalogConfig config;
  config.encryption = catalog::Encryption::kNone;
  std::vector<std::string> paths;
  try {
    auto catalog = catalog::Catalog::create(catalog_path, config);
    tape::OpenDriveOptions options;
    options.read_only = true;
    auto drive = tape::open_drive(image, options);
    index_tape(catalog, *drive);
    catalog.walk("/", catalog::View::latest(),
                 [&](const std::string& path, const catalog::Entry& e) {
                   if (!e.is_dir && path.rfind('/') == 0) paths.push_back(path);  // fileN.bin
                   if (e.is_dir && path.rfind('/') == 0 && path != "/")
                     paths.push_back(path);  // fileN/
                 });
  } catch (const Error&) {
    return;  // no tape, or a drive error: said in words
  }
  if (paths.empty()) return;
  tape::OpenDriveOptions options;
  options.read_only = true;
  auto library = tape::single_drive_library(tape::open_drive(image, options), serial_reader());
  restore::RestoreOptions restore_options;
  restore_options.paths = paths;
  restore_options.destination = out;
  SilentProgress progress;
  auto report = restore::restore(catalog_path, *library, {}, restore_options, progress);
  for (const auto& f : report.failures) {
    // A member the pass hashed must read back the same; only what cannot be
    // made on disk (a name the file system refuses) may fail.
    const bool made_on_disk = f.error.find("hash mismatch") == std::string::npos &&
                              f.error.find("does not match") == std::string::npos &&
                              f.error.find("ends early") == std::string::npos;
    if (!made_on_disk) std::fprintf(stderr, "%s: %s\n", f.path.c_str(), f.error.c_str());
    FUZZ_CHECK(made_on_disk);
  }
  // Nothing outside the destination: the scratch directory holds only
  // what this run made.
  for (const auto& e : std::filesystem::directory_iterator(dir.file("")))
    FUZZ_CHECK(e.path() == image || e.path() == image + ".idx" ||
               e.path().string().starts_with(catalog_path) || e.path() == out);
}

}  // namespace
}  // namespace mixtape::foreign

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > mixtape::foreign::kMaxInput) return 0;
  mixtape::foreign::run(data, size);
  return 0;
}
