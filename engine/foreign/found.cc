// A foreign tape as found: its fingerprint, what kind of tape it is, its
// serial, and its index kept in the cache folder.
#include <unistd.h>

#include <filesystem>

#include "engine/crypto/crypto.h"
#include "engine/foreign/foreign.h"
#include "engine/format/format.h"

namespace mixtape::foreign {
namespace {

constexpr std::uint64_t kFingerprintBytes = 1 << 20;
constexpr int kFingerprintRecords = 8;

}  // namespace

std::string fingerprint(tape::Drive& drive) {
  drive.rewind();
  tape::RecordBuffer buffer(tape::kProbeReadSize);
  crypto::Blake2b256 hasher;
  hasher.update(as_bytes("mixtape foreign tape fingerprint 1\n"));
  std::uint64_t bytes = 0;
  int records = 0;
  bool any = false;
  while (records < kFingerprintRecords && bytes < kFingerprintBytes) {
    tape::ReadResult r = drive.read_record(buffer.span());
    if (r.kind == tape::ReadKind::kEndOfData) break;
    const std::string mark = r.kind == tape::ReadKind::kFilemark
                                 ? std::string("filemark\n")
                                 : "record " + std::to_string(r.size) + "\n";
    hasher.update(as_bytes(mark));
    if (r.kind == tape::ReadKind::kData) {
      hasher.update(ByteSpan(buffer.data(), r.size));
      bytes += r.size;
      any = true;
    }
    ++records;
  }
  drive.rewind();
  if (!any) throw ForeignError(drive.name() + ": the tape is blank");
  return to_hex(hasher.finish());
}

std::string serial_for(const std::string& fingerprint) {
  return "tar-" + fingerprint.substr(0, 12);
}

TapeKind identify(tape::Drive& drive) {
  if (tape::tape_is_blank(drive)) return TapeKind::kBlank;
  TapeKind kind = TapeKind::kMixtape;
  {
    tape::TapeFileReader file0(drive);
    try {
      format::read_label(file0);
    } catch (const format::NotMixtapeTape&) {
      kind = TapeKind::kForeign;
    }
  }
  drive.rewind();
  return kind;
}

tape::SerialReader serial_reader() {
  return [](tape::Drive& drive) -> std::optional<std::string> {
    if (tape::tape_is_blank(drive)) return std::nullopt;
    std::optional<std::string> serial;
    {
      tape::TapeFileReader file0(drive);
      try {
        serial = format::read_label(file0).serial;
      } catch (const format::NotMixtapeTape&) {
      }
    }
    if (!serial) serial = serial_for(fingerprint(drive));
    drive.rewind();
    return serial;
  };
}

FoundForeignTape catalog_for_foreign_tape(tape::Drive& drive, const std::string& cache_dir,
                                          const IndexOptions& options) {
  std::error_code error;
  std::filesystem::create_directories(cache_dir, error);
  if (error) throw ForeignError("cannot create " + cache_dir + ": " + error.message());
  FoundForeignTape found;
  const std::string print = fingerprint(drive);
  found.catalog_path = cache_dir + "/foreign-" + print + ".db";
  found.serial = options.serial.empty() ? serial_for(print) : options.serial;
  if (std::filesystem::exists(found.catalog_path)) {
    // Made by an earlier pass over this tape: nothing more to read, unless
    // it was made under another serial.
    try {
      auto catalog = catalog::Catalog::open_read_only(found.catalog_path);
      auto tape = catalog.tape_by_foreign_id(print);
      if (tape && tape->serial == found.serial) return found;
    } catch (const Error&) {
      // Unreadable or from an older mixtape: made again below.
    }
  }
  ScratchFile building(cache_dir, "foreign");
  {
    catalog::CatalogConfig config;
    config.encryption = catalog::Encryption::kNone;
    catalog::Catalog catalog = catalog::Catalog::create(building.path(), config);
    IndexOptions indexing = options;
    indexing.serial = found.serial;
    found.report = index_tape(catalog, drive, indexing);
  }
  found.indexed_now = true;
  for (const char* suffix : {"-wal", "-shm", "-journal"})
    std::filesystem::remove(found.catalog_path + suffix, error);
  if (::rename(building.path().c_str(), found.catalog_path.c_str()) != 0)
    throw_errno("cannot put " + found.catalog_path + " in place");
  return found;
}

}  // namespace mixtape::foreign
