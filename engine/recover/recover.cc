// Recovering a catalog from a tape: the trailing index, or a walk over the
// indexes (engine/recover/recover.h has the design).
#include "engine/recover/recover.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>

namespace mixtape::recover {
namespace {

// The tape has nothing to walk either: blank, or only its label.
class NothingToRecover : public RecoverError {
 public:
  using RecoverError::RecoverError;
};

bool is_key_error(const crypto::AgeError& e) {
  return e.kind() == crypto::AgeErrorKind::NoIdentityMatched ||
         e.kind() == crypto::AgeErrorKind::WrongPassphrase ||
         e.kind() == crypto::AgeErrorKind::WorkFactorTooHigh;
}

[[noreturn]] void key_failure(const tape::Drive& drive, const crypto::AgeError& e) {
  // A work factor above the maximum is refused before scrypt runs; no other
  // key would help, so no key is blamed.
  const bool wrong_key = e.kind() != crypto::AgeErrorKind::WorkFactorTooHigh;
  throw RecoverError(drive.name() + ": cannot decrypt the tape's index: " + e.what() +
                     (wrong_key ? " (wrong --identity or --passphrase-file?)" : ""));
}

// A catalog that is not empty only takes tapes of its own (or, forced, any).
void check_catalog(catalog::Catalog& catalog, const std::string& theirs, const std::string& serial,
                   bool force) {
  std::string ours = catalog.catalog_id();
  if (ours == theirs || force) return;
  if (catalog.runs().empty() && catalog.tapes().empty()) return;  // adopts the tape's id
  throw RecoverError("tape " + serial + " belongs to catalog " + theirs +
                     ", not to this catalog (" + ours +
                     "); recover it into a new catalog, or use --force to merge the two");
}

// ------------------------------------------------------------ the walk

struct WalkedArchive {
  format::IndexHeader header;
  format::ArchiveRecord archive;
  std::uint64_t index_block = 0;
  std::uint64_t end_block = 0;  // after the archive's filemark
  std::vector<format::IndexedMember> members;
  bool complete = false;
};

std::optional<catalog::Id> matching_version(catalog::Catalog& catalog,
                                            const format::IndexedMember& member) {
  const format::MemberInfo& m = member.info;
  if (m.type != format::MemberType::kFile && m.type != format::MemberType::kSymlink)
    return std::nullopt;
  auto file_id = catalog.file_by_path("/" + m.path);
  if (!file_id) return std::nullopt;
  auto versions = catalog.versions_of(*file_id);
  for (auto it = versions.rbegin(); it != versions.rend(); ++it) {
    const catalog::VersionRow& v = *it;
    const bool link = m.type == format::MemberType::kSymlink;
    if (link != (v.kind == catalog::VersionKind::kSymlink)) continue;
    if (link ? v.symlink_target != m.linkpath : v.size != m.size || to_hex(v.hash) != m.blake2b256)
      continue;
    if ((v.attrs.mode & 07777) != m.mode || v.attrs.uid != m.uid || v.attrs.gid != m.gid ||
        v.attrs.mtime_ns != m.mtime_ns)
      continue;
    return v.id;
  }
  return std::nullopt;
}

// Archives the merged catalog copy cannot know: add them from the indexes'
// member tables, and move the tape's append point past them.
void add_walked_archives(catalog::Catalog& catalog, const std::string& serial,
                         const std::vector<WalkedArchive>& walked, RecoverReport& report) {
  auto transaction = catalog.transaction();
  auto tape = catalog.tape_by_serial(serial);
  if (!tape) throw RecoverError("the indexes of tape " + serial + " do not list the tape itself");
  const WalkedArchive* last = nullptr;
  for (const auto& w : walked) {
    if (!w.complete ||
        catalog.archive_by_file(tape->id, static_cast<std::int64_t>(w.archive.tape_file)))
      continue;
    catalog::ArchiveRow row;
    row.tape_id = tape->id;
    row.index_file = static_cast<std::int64_t>(w.header.index_file);
    row.index_block = w.index_block;
    row.archive_file = static_cast<std::int64_t>(w.archive.tape_file);
    row.first_block = w.archive.first_block;
    row.encrypted = w.header.encrypted;
    row.age_header_len = w.archive.age_header_length;
    row.cipher_bytes = w.archive.ciphertext_size;
    row.plain_bytes = w.archive.plaintext_size;
    row.members = w.archive.member_count;
    if (auto created = format::parse_utc(w.header.created))
      row.written_at_ns = *created * 1000000000;
    catalog::Id archive_id = catalog.add_archive(row);
    ++report.archives_added;
    for (const auto& member : w.members) {
      auto version = matching_version(catalog, member);
      if (!version) {
        report.warnings.push_back("archive file " + std::to_string(row.archive_file) +
                                  ": no version in the catalog matches member '" +
                                  member.info.path + "'; its copy is not recovered");
        continue;
      }
      catalog::CopyRow copy;
      copy.archive_id = archive_id;
      copy.version_id = *version;
      copy.header_offset = member.offsets.header_offset;
      copy.data_offset = member.offsets.data_offset;
      catalog.add_copy(copy);
      ++report.copies_added;
    }
    last = &w;
  }
  if (last && tape->append_file <= static_cast<std::int64_t>(last->archive.tape_file)) {
    catalog::TapeRow updated = *tape;
    updated.append_file = static_cast<std::int64_t>(last->archive.tape_file) + 1;
    updated.append_block = last->end_block;
    for (const auto& w : walked)
      if (w.complete && w.archive.tape_file >= static_cast<std::uint64_t>(tape->append_file))
        updated.bytes_used += w.archive.ciphertext_size;
    if (updated.state == catalog::TapeState::kLabelled) updated.state = catalog::TapeState::kOpen;
    catalog.update_tape(updated);
    report.warnings.push_back("tape " + serial + " has no trailing index; the next backup to it " +
                              "appends after tape file " + std::to_string(last->archive.tape_file));
  }
  transaction.commit();
}

// A tape file read as progress: its bytes as they come, and its total,
// estimated from its length in blocks once the first record was read.
class ProgressSource final : public ByteSource {
 public:
  ProgressSource(tape::TapeFileReader& reader, Progress* progress, std::uint64_t blocks)
      : reader_(reader), progress_(progress), blocks_(blocks) {}
  std::size_t read(MutableByteSpan out) override {
    const std::size_t n = reader_.read(out);
    if (!progress_) return n;
    if (!estimated_ && reader_.records_read() > 0) {
      estimated_ = true;
      progress_->totals(reader_.bytes_read() / reader_.records_read() * blocks_, 0);
    }
    progress_->advance(n, 0, "trailing index");
    return n;
  }

 private:
  tape::TapeFileReader& reader_;
  Progress* progress_;
  std::uint64_t blocks_;
  bool estimated_ = false;
};

void drain(ByteSource& source) {
  Bytes buffer(1 << 20);
  while (source.read(buffer) > 0) {
  }
}

// Walks file 1, 3, 5, ...: reads each index, passes over each archive.
// With `trailing_refused`, a trailing index found at the end is passed over:
// it was tried and refused already, and the archives' indexes stand in.
void walk(catalog::Catalog& catalog, tape::Drive& drive, const crypto::AgeDecryptKeys& keys,
          const RecoverOptions& options, bool trailing_refused, RecoverReport& report) {
  report.source = RecoverSource::kIndexWalk;
  const std::string temp_dir = temp_directory(options.temp_dir);
  drive.rewind();
  format::LabelInfo label;
  {
    tape::TapeFileReader file0(drive);
    try {
      label = format::read_label(file0);
    } catch (const format::FormatError& e) {
      throw RecoverError(drive.name() + ": " + e.what());
    }
  }
  report.serial = label.serial;
  check_catalog(catalog, label.catalog_id, label.serial, options.force);
  if (options.progress) options.progress->tape(label.serial);
  try {
    drive.space_filemarks_forward(1);
  } catch (const tape::TapeError& e) {
    if (e.kind() != tape::TapeErrorKind::kEndOfData) throw;
    throw RecoverError(drive.name() + ": tape " + label.serial + " holds no index");
  }
  std::vector<WalkedArchive> walked;
  // The catalog as it stood at each index, rebuilt as the walk goes: a full
  // copy, then each later index's changes, as long as each continues the
  // one before (a damaged index breaks the chain until the next full copy).
  ScratchFile chain_file(temp_dir, "chain");
  catalog::CatalogChain chain(chain_file.path());
  std::optional<std::uint64_t> chained;  // tape file of the last index in the chain
  bool broken = false;
  for (std::uint64_t file = 1;; file += 2) {
    const std::uint64_t start = drive.tell();
    auto scratch = std::make_unique<ScratchFile>(temp_dir, "index");
    tape::TapeFileReader reader(drive);
    std::string problem;
    WalkedArchive w;
    bool trailing = false;
    try {
      report.index_bytes += format::read_index_from_tape(reader, keys, scratch->path());
      format::IndexReader index(scratch->path());
      w.header = index.header();
      if (w.header.serial != label.serial || w.header.catalog_id != label.catalog_id) {
        problem = "it belongs to tape " + w.header.serial + " of catalog " + w.header.catalog_id +
                  ", not to this tape's label";
      } else if (w.header.kind == format::IndexKind::kTrailing) {
        trailing = true;
      } else {
        w.archive = *index.archive();
        auto members = index.members();
        while (auto m = members.next()) w.members.push_back(std::move(*m));
      }
    } catch (const crypto::AgeError& e) {
      if (is_key_error(e)) key_failure(drive, e);
      problem = e.what();
    } catch (const Error& e) {
      problem = e.what();
    }
    if (!problem.empty()) {
      if (reader.bytes_read() == 0 && reader.ended_at_eod()) break;  // the tape ends here
      report.warnings.push_back("the index at tape file " + std::to_string(file) + " (block " +
                                std::to_string(start) + ") is unusable: " + problem +
                                "; the archive after it is not recovered");
      drain(reader);
      if (reader.ended_at_eod()) break;
      try {
        drive.space_filemarks_forward(1);  // over its archive, unread
      } catch (const tape::TapeError& e) {
        if (e.kind() == tape::TapeErrorKind::kEndOfData) break;
        throw;
      }
      continue;
    }
    if (trailing && trailing_refused) break;
    ++report.indexes_read;
    if (options.progress)
      options.progress->advance(reader.bytes_read(), 0,
                                "index at tape file " + std::to_string(file));
    const bool full = w.header.catalog == format::CatalogCopy::kFull;
    if (full || (chained && w.header.catalog_base == *chained)) {
      chain.add(scratch->path(), full);
      chained = file;
      if (full) broken = false;
    } else if (!broken) {
      broken = true;
      report.warnings.push_back(
          "the index at tape file " + std::to_string(file) + " holds the catalog's changes since" +
          " tape file " + std::to_string(w.header.catalog_base) +
          ", which is missing or unusable; the catalog is recovered as it was at tape file " +
          (chained ? std::to_string(*chained) : std::string("(none)")));
    }
    if (trailing) break;
    if (reader.ended_at_eod()) {
      report.warnings.push_back("the tape ends after the index at tape file " +
                                std::to_string(file) + ": its archive was never written");
      break;
    }
    w.index_block = start;
    const std::uint64_t archive_start = drive.tell();
    try {
      drive.space_filemarks_forward(1);  // over the archive, unread
    } catch (const tape::TapeError& e) {
      if (e.kind() != tape::TapeErrorKind::kEndOfData) throw;
      report.warnings.push_back("the archive at tape file " + std::to_string(file + 1) +
                                " is incomplete (the tape ends inside it); its files are not "
                                "recovered from this tape");
      break;
    }
    w.end_block = drive.tell();
    const std::uint64_t expected =
        w.archive.first_block +
        format::record_count(w.archive.ciphertext_size, w.header.record_size) + 1;
    w.complete = archive_start == w.archive.first_block && w.end_block == expected;
    if (!w.complete) {
      report.warnings.push_back("the archive at tape file " + std::to_string(file + 1) +
                                " is not where or as long as its index says; not recovered");
    }
    walked.push_back(std::move(w));
  }
  if (report.indexes_read == 0)
    throw RecoverError(drive.name() + ": no readable index on tape " + label.serial);
  if (!chained) {
    throw RecoverError(drive.name() + ": no readable index on tape " + label.serial +
                       " holds the whole catalog (the first index is damaged), and the later " +
                       "ones hold only changes to it");
  }
  catalog::MergeOptions merge;
  merge.force = options.force;
  report.merged = catalog.merge_from_index(chain.finish(), merge);
  add_walked_archives(catalog, label.serial, walked, report);
}

}  // namespace

TrailingIndex read_trailing_index(tape::Drive& drive, const crypto::AgeDecryptKeys& keys,
                                  const std::string& path, Progress* progress) {
  const std::string name = drive.name();
  drive.space_to_eod();
  const std::uint64_t eod = drive.tell();
  if (eod == 0) throw NothingToRecover(name + ": the tape is blank");
  auto back_one = [&](const char* missing) {
    try {
      drive.space_filemarks_backward(1);
    } catch (const tape::TapeError& e) {
      if (e.kind() != tape::TapeErrorKind::kBeginningOfTape) throw;
      throw NothingToRecover(name + ": " + missing);
    }
  };
  // A complete tape ends "... last file, filemark, EOD".
  back_one("no filemark on the tape: it is blank or not a mixtape tape");
  if (drive.tell() + 1 != eod) {
    throw RecoverError(name + ": the tape does not end with a complete file (an interrupted " +
                       "write or a truncated tape), so it has no trailing index");
  }
  back_one("the tape holds only its label: no index");
  Bytes probe(64 * 1024);
  tape::ReadResult mark;
  try {
    mark = drive.read_record(probe);
  } catch (const tape::TapeError& e) {
    throw RecoverError(name + ": expected a filemark before the last file: " + e.what());
  }
  if (mark.kind != tape::ReadKind::kFilemark)
    throw RecoverError(name + ": expected a filemark before the last file");
  const std::uint64_t start = drive.tell();
  tape::TapeFileReader reader(drive);
  // Its blocks: from here to the filemark before end of data.
  ProgressSource counted(reader, progress, eod - 1 - start);
  TrailingIndex trailing;
  trailing.bytes = format::read_index_from_tape(counted, keys, path);
  if (reader.ended_at_eod() || drive.tell() != eod) {
    throw RecoverError(name + ": the last file (block " + std::to_string(start) +
                       ") does not end at the end of the tape");
  }
  format::IndexReader index(path);
  trailing.header = index.header();
  if (trailing.header.kind != format::IndexKind::kTrailing) {
    throw RecoverError(name + ": the last file on the tape is an archive's index, not a trailing " +
                       "index (an interrupted session?)");
  }
  return trailing;
}

RecoverReport recover_tape(catalog::Catalog& catalog, tape::Drive& drive,
                           const crypto::AgeDecryptKeys& keys, const RecoverOptions& options) {
  RecoverReport report;
  if (options.progress) options.progress->phase("recover", 0, 0);
  if (!options.walk_indexes) {
    ScratchFile index(temp_directory(options.temp_dir), "trailing");
    std::optional<TrailingIndex> trailing;
    std::string problem;
    try {
      trailing = read_trailing_index(drive, keys, index.path(), options.progress);
    } catch (const NothingToRecover&) {
      throw;
    } catch (const crypto::AgeError& e) {
      if (is_key_error(e)) key_failure(drive, e);
      problem = e.what();
    } catch (const tape::TapeError& e) {
      if (e.kind() == tape::TapeErrorKind::kNotLoaded) throw;
      problem = e.what();
    } catch (const Error& e) {
      problem = e.what();
    }
    if (trailing) {
      const format::IndexHeader& header = trailing->header;
      tape::check_serial(header.serial);
      check_catalog(catalog, header.catalog_id, header.serial, options.force);
      report.serial = header.serial;
      if (options.progress) options.progress->tape(header.serial);
      report.indexes_read = 1;
      report.index_bytes = trailing->bytes;
      catalog::MergeOptions merge;
      merge.force = options.force;
      try {
        report.merged = catalog.merge_from_index(index.path(), merge);
        return report;
      } catch (const catalog::CatalogError& e) {
        problem = e.what();
      }
    }
    report.warnings.push_back("the trailing index is not usable (" + problem +
                              "); walking the tape's indexes instead");
    // The walk's bytes are counted from nothing, with no total (how many
    // indexes there are is known only at the end).
    if (options.progress) options.progress->phase("recover", 0, 0);
  }
  walk(catalog, drive, keys, options, /*trailing_refused=*/!options.walk_indexes, report);
  return report;
}

FoundTape catalog_for_found_tape(tape::Drive& drive, const std::string& cache_dir,
                                 const crypto::AgeDecryptKeys& keys,
                                 const RecoverOptions& options) {
  std::error_code error;
  std::filesystem::create_directories(cache_dir, error);
  if (error) throw RecoverError("cannot create " + cache_dir + ": " + error.message());
  ScratchFile building(cache_dir, "found");
  FoundTape found;
  {
    catalog::CatalogConfig config;  // placeholders: the merge adopts the tape's
    config.encryption = catalog::Encryption::kNone;
    catalog::Catalog catalog = catalog::Catalog::create(building.path(), config);
    found.report = recover_tape(catalog, drive, keys, options);
  }
  tape::check_serial(found.report.serial);
  found.catalog_path = cache_dir + "/tape-" + found.report.serial + ".db";
  // An older catalog's WAL must not be applied to the new file.
  for (const char* suffix : {"-wal", "-shm", "-journal"})
    std::filesystem::remove(found.catalog_path + suffix, error);
  if (::rename(building.path().c_str(), found.catalog_path.c_str()) != 0)
    throw_errno("cannot put " + found.catalog_path + " in place");
  return found;
}

}  // namespace mixtape::recover
