// verify(): re-read tapes and check them against the catalog.
//
// Full: for each tape one pass in tape order. Every copy of every archive is
// read with the restore's MemberReader (tar header checked against the
// catalog, data hashed), then the archive's end-of-archive blocks and, on
// encrypted tapes, the authenticated end of the age stream. Copies lie back
// to back, so the decryptor and the drive stream: one locate at most per
// tape (none when the archives follow the label closely). A damaged chunk
// costs the members in it; the next member restarts at its own chunk.
//
// Both check each archive's index (the file before it) and the trailing
// index: read, decrypted, opened with format::IndexReader and compared with
// the catalog's archive and copy rows. Quick reads only those (one locate
// each); full reads them on its way, as they lie between the archives.
//
// What is recorded: one row per archive (its members, its index, and for the
// tape's last archive the trailing index), and one per copy that is not ok.
// A key that cannot open the tapes is not damage: verify() says so, fails,
// and records nothing about the tape.
#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <set>

#include "engine/restore/internal.h"

namespace mixtape::restore {
namespace {

using catalog::VerifyResult;

// Where a verified copy's bytes go: nowhere, counted as progress.
class NullSink final : public RecallSink {
 public:
  explicit NullSink(Progress& progress) : progress_(progress) {}
  void set_path(const std::string& path) { path_ = &path; }
  void begin(const catalog::VersionRow&) override {}
  void write(ByteSpan data) override { progress_.advance(data.size(), 0, *path_); }
  void commit() override {}
  void abort() noexcept override {}

 private:
  Progress& progress_;
  const std::string* path_ = nullptr;
};

VerifyResult result_of(detail::MemberError::Kind kind) {
  switch (kind) {
    case detail::MemberError::Kind::kMismatch:
      return VerifyResult::kMismatch;
    case detail::MemberError::Kind::kMissing:
      return VerifyResult::kMissing;
    case detail::MemberError::Kind::kUnreadable:
      break;
  }
  return VerifyResult::kUnreadable;
}

// A result to record, checked now (version 0: the archive as a whole).
catalog::VerificationRow verification(catalog::Id archive, catalog::Id version, VerifyResult result,
                                      const std::string& detail) {
  catalog::VerificationRow row;
  row.archive_id = archive;
  row.version_id = version;
  row.checked_at_ns = now_ns();
  row.result = result;
  row.detail = detail;
  return row;
}

// Worse results win: ok < mismatch < missing < unreadable.
int severity(VerifyResult r) {
  switch (r) {
    case VerifyResult::kOk:
      return 0;
    case VerifyResult::kMismatch:
      return 1;
    case VerifyResult::kMissing:
      return 2;
    case VerifyResult::kUnreadable:
      return 3;
  }
  return 3;
}

// What a check of an index found: ok, or a problem and how bad it is
// (unreadable: it could not be read or decrypted; mismatch: it reads, but
// says something else than the catalog).
struct Finding {
  VerifyResult result = VerifyResult::kOk;
  std::string problem;
  bool ok() const { return result == VerifyResult::kOk; }
};

// The check's verdict from its outcome: a returned problem is a mismatch,
// an exception is unreadable.
template <typename Check>
Finding finding_of(Check check) {
  try {
    std::string problem = check();
    if (problem.empty()) return {};
    return {VerifyResult::kMismatch, std::move(problem)};
  } catch (const std::exception& e) {
    return {VerifyResult::kUnreadable, e.what()};
  }
}

class TapeVerifier {
 public:
  TapeVerifier(catalog::Catalog& catalog, tape::Drive& drive, const catalog::TapeRow& tape,
               const crypto::AgeDecryptKeys& keys, const VerifyOptions& options,
               detail::KeyCache& key_cache, VerifyReport& report, Progress& progress)
      : catalog_(catalog),
        tape_(tape),
        keys_(keys),
        options_(options),
        report_(report),
        progress_(progress),
        cursor_(drive, options.recall.forward_read_limit),
        reader_(cursor_, key_cache, keys, options.recall) {}

  std::vector<catalog::VerificationRow> full(const std::vector<catalog::ArchiveRow>& archives) {
    std::map<std::int64_t, std::vector<catalog::CopyWithVersion>> copies;
    catalog_.for_each_copy_on_tape(
        tape_.id, [&](const catalog::CopyWithVersion& c) { copies[c.archive_file].push_back(c); });
    for (const auto& archive : archives) {
      auto& list = copies[archive.archive_file];
      std::sort(list.begin(), list.end(), [](const auto& a, const auto& b) {
        return a.copy.header_offset < b.copy.header_offset;
      });
      // The index lies just before its archive: read on the way.
      const Finding index = index_finding(archive, list);
      if (!index.ok()) report_.problems.push_back(index_problem_line(archive, index));
      verify_archive(archive, list, index);
    }
    note_trailing(archives);
    return std::move(rows_);
  }

  std::vector<catalog::VerificationRow> quick(const std::vector<catalog::ArchiveRow>& archives) {
    std::map<std::int64_t, std::vector<catalog::CopyWithVersion>> copies;
    catalog_.for_each_copy_on_tape(
        tape_.id, [&](const catalog::CopyWithVersion& c) { copies[c.archive_file].push_back(c); });
    for (const auto& archive : archives) {
      const Finding index = index_finding(archive, copies[archive.archive_file]);
      record(archive.id, 0, index.result,
             index.ok() ? "index ok (quick)" : "index: " + index.problem);
      ++report_.archives;
      if (index.ok()) {
        ++report_.indexes_ok;
      } else {
        report_.problems.push_back(index_problem_line(archive, index));
      }
    }
    if (note_trailing(archives)) ++report_.indexes_ok;
    progress_.advance(0, archives.size(), "");
    return std::move(rows_);
  }

 private:
  void record(catalog::Id archive, catalog::Id version, VerifyResult result,
              const std::string& detail) {
    rows_.push_back(verification(archive, version, result, detail));
  }

  void verify_archive(const catalog::ArchiveRow& archive,
                      const std::vector<catalog::CopyWithVersion>& list, const Finding& index) {
    NullSink sink(progress_);
    std::uint64_t ok = 0, bad = 0;
    VerifyResult worst = index.result;
    std::string first_problem = index.ok() ? "" : "index: " + index.problem;
    auto problem = [&](catalog::Id version, VerifyResult result, const std::string& text) {
      ++bad;
      if (severity(result) > severity(worst)) worst = result;
      if (first_problem.empty()) first_problem = text;
      if (version) record(archive.id, version, result, text);
      report_.problems.push_back(text);
    };
    for (const auto& c : list) {
      catalog::LocatedCopy copy{c.copy, archive, tape_};
      sink.set_path(c.path);
      try {
        reader_.read(copy, c.version, c.path, sink);
        ++ok;
      } catch (const detail::MemberError& e) {
        problem(c.version.id, result_of(e.kind()), c.path + ": " + e.what());
      }
      progress_.advance(0, 1, c.path);
    }
    try {
      check_end(archive);
    } catch (const std::exception& e) {
      --bad;  // not a file
      problem(0, VerifyResult::kUnreadable,
              "the end of " + detail::where(tape_, archive, std::nullopt) + ": " + e.what());
    }
    report_.files_ok += ok;
    report_.files_bad += bad;
    ++report_.archives;
    std::string summary = std::to_string(ok) + " files ok";
    if (bad) summary += ", " + std::to_string(bad) + " bad";
    if (!first_problem.empty()) summary += ": " + first_problem;
    record(archive.id, 0, worst, summary);
  }

  Finding index_finding(const catalog::ArchiveRow& archive,
                        const std::vector<catalog::CopyWithVersion>& list) {
    return finding_of([&] { return check_index(archive, list); });
  }

  std::string index_problem_line(const catalog::ArchiveRow& archive, const Finding& index) const {
    return "tape " + tape_.serial + ", index of archive file " +
           std::to_string(archive.archive_file) + ": " + index.problem;
  }

  // The trailing index, checked and its problem recorded against the tape's
  // last archive (its row for the archive as a whole: the tape then shows
  // as not ok). Returns whether it is ok.
  bool note_trailing(const std::vector<catalog::ArchiveRow>& archives) {
    const Finding trailing = finding_of([&] { return check_trailing(archives); });
    if (trailing.ok()) return true;
    const std::string text = "trailing index: " + trailing.problem;
    report_.problems.push_back("tape " + tape_.serial + ", " + text);
    if (archives.empty()) return false;
    const catalog::Id last = archives.back().id;
    for (auto& row : rows_) {
      if (row.archive_id != last || row.version_id != 0) continue;
      if (severity(trailing.result) > severity(row.result)) row.result = trailing.result;
      row.detail += "; " + text;
      return false;
    }
    record(last, 0, trailing.result, text);
    return false;
  }

  // The end-of-archive blocks, then the end of the stored stream (for age,
  // its authenticated final chunk).
  void check_end(const catalog::ArchiveRow& archive) {
    detail::ArchiveStream& stream = reader_.stream();
    if (archive.plain_bytes < format::kTarEndOfArchiveSize)
      throw RestoreError("the archive is shorter than its end-of-archive blocks");
    stream.seek(tape_, archive, archive.plain_bytes - format::kTarEndOfArchiveSize);
    Bytes end(format::kTarEndOfArchiveSize + 1);
    std::size_t n = read_full(stream, end);
    if (n != format::kTarEndOfArchiveSize)
      throw RestoreError(n < format::kTarEndOfArchiveSize ? "truncated" : "data after its end");
    if (std::any_of(end.begin(), end.begin() + static_cast<std::ptrdiff_t>(n),
                    [](std::uint8_t b) { return b != 0; }))
      throw RestoreError("no end-of-archive marker");
    stream.reset();
  }

  std::string check_index(const catalog::ArchiveRow& archive,
                          const std::vector<catalog::CopyWithVersion>& list) {
    if (archive.index_block == 0) return "the catalog does not know where the index is";
    cursor_.seek(archive.index_block, tape_.record_size, 0);
    reader_.stream().reset();
    ScratchFile path(temp_directory(), "verify");
    format::read_index_from_tape(cursor_, keys_, path.path());
    format::IndexReader index(path.path());
    const format::IndexHeader& h = index.header();
    if (h.kind != format::IndexKind::kArchive) return "not an archive index";
    if (h.serial != tape_.serial) return "it names tape " + h.serial;
    if (h.catalog_id != catalog_.catalog_id()) return "it belongs to catalog " + h.catalog_id;
    if (static_cast<std::int64_t>(h.archive_file) != archive.archive_file)
      return "it describes tape file " + std::to_string(h.archive_file);
    const format::ArchiveRecord& a = *index.archive();
    if (a.first_block != archive.first_block || a.age_header_length != archive.age_header_len ||
        a.ciphertext_size != archive.cipher_bytes || a.plaintext_size != archive.plain_bytes ||
        a.member_count != archive.members)
      return "its archive row differs from the catalog's";
    std::map<std::uint64_t, const catalog::CopyWithVersion*> by_offset;
    for (const auto& c : list) by_offset[c.copy.header_offset] = &c;
    std::size_t matched = 0;
    auto members = index.members();
    while (auto m = members.next()) {
      auto it = by_offset.find(m->offsets.header_offset);
      if (it == by_offset.end()) continue;  // written but not committed: not a copy
      const catalog::CopyWithVersion& c = *it->second;
      const bool link = c.version.kind == catalog::VersionKind::kSymlink;
      if (m->info.path != c.path.substr(1) || m->offsets.data_offset != c.copy.data_offset ||
          (!link &&
           (m->info.size != c.version.size || m->info.blake2b256 != to_hex(c.version.hash))) ||
          (link && m->info.linkpath != c.version.symlink_target))
        return "member '" + m->info.path + "' differs from the catalog's copy of " + c.path;
      ++matched;
    }
    if (matched != list.size())
      return std::to_string(list.size() - matched) + " of the catalog's copies are not in it";
    return {};
  }

  std::string check_trailing(const std::vector<catalog::ArchiveRow>& archives) {
    if (!tape_.append_block) return "the catalog does not know where it is";
    cursor_.seek(*tape_.append_block, tape_.record_size, 0);
    reader_.stream().reset();
    ScratchFile path(temp_directory(), "verify");
    format::read_index_from_tape(cursor_, keys_, path.path());
    format::IndexReader index(path.path());
    const format::IndexHeader& h = index.header();
    if (h.kind != format::IndexKind::kTrailing) return "not a trailing index";
    if (h.serial != tape_.serial) return "it names tape " + h.serial;
    if (h.catalog_id != catalog_.catalog_id()) return "it belongs to catalog " + h.catalog_id;
    auto count = index.database().prepare(
        "SELECT count(*) FROM catalog_archives a JOIN catalog_tapes t ON t.id = a.tape_id "
        "WHERE t.serial = ?");
    count.bind(1, tape_.serial);
    if (!count.step() || static_cast<std::size_t>(count.column_int(0)) < archives.size())
      return "it lists fewer archives of this tape than the catalog";
    return {};
  }

  catalog::Catalog& catalog_;
  const catalog::TapeRow& tape_;
  const crypto::AgeDecryptKeys& keys_;
  const VerifyOptions& options_;
  VerifyReport& report_;
  Progress& progress_;
  detail::TapeCursor cursor_;
  detail::MemberReader reader_;
  std::vector<catalog::VerificationRow> rows_;
};

// A tape mixtape did not write (engine/foreign): no indexes to check, its
// identity is its fingerprint (checked at load); full reads every copy
// through the ForeignReader in tape order, quick records the identity.
std::vector<catalog::VerificationRow> verify_foreign_tape(
    catalog::Catalog& catalog, tape::Drive& drive, const catalog::TapeRow& tape,
    const std::vector<catalog::ArchiveRow>& archives, const VerifyOptions& options,
    VerifyReport& report, Progress& progress) {
  std::vector<catalog::VerificationRow> rows;
  auto record = [&](catalog::Id archive, catalog::Id version, VerifyResult result,
                    const std::string& detail) {
    rows.push_back(verification(archive, version, result, detail));
  };
  if (options.quick) {
    for (const auto& archive : archives) {
      record(archive.id, 0, VerifyResult::kOk,
             "tape identity ok (quick; a foreign tape has no index)");
      ++report.archives;
      progress.advance(0, 1, "");
    }
    return rows;
  }
  std::map<std::int64_t, std::vector<catalog::CopyWithVersion>> copies;
  catalog.for_each_copy_on_tape(
      tape.id, [&](const catalog::CopyWithVersion& c) { copies[c.archive_file].push_back(c); });
  detail::TapeCursor cursor(drive, options.recall.forward_read_limit);
  detail::ForeignReader reader(cursor, options.recall);
  NullSink sink(progress);
  for (const auto& archive : archives) {
    auto& list = copies[archive.archive_file];
    std::sort(list.begin(), list.end(), [](const auto& a, const auto& b) {
      return a.copy.header_offset < b.copy.header_offset;
    });
    std::uint64_t ok = 0, bad = 0;
    VerifyResult worst = VerifyResult::kOk;
    std::string first_problem;
    std::set<catalog::Id> seen;
    for (const auto& c : list) {
      if (c.version.kind != catalog::VersionKind::kFile || !seen.insert(c.version.id).second)
        continue;
      catalog::LocatedCopy copy{c.copy, archive, tape};
      sink.set_path(c.path);
      try {
        reader.read(copy, c.version, sink);
        ++ok;
      } catch (const detail::MemberError& e) {
        ++bad;
        const VerifyResult result = result_of(e.kind());
        if (severity(result) > severity(worst)) worst = result;
        const std::string text = c.path + ": " + e.what();
        if (first_problem.empty()) first_problem = text;
        record(archive.id, c.version.id, result, text);
        report.problems.push_back(text);
      }
      progress.advance(0, 1, c.path);
    }
    report.files_ok += ok;
    report.files_bad += bad;
    ++report.archives;
    std::string summary = std::to_string(ok) + " files ok";
    if (bad) summary += ", " + std::to_string(bad) + " bad: " + first_problem;
    record(archive.id, 0, worst, summary);
  }
  return rows;
}

}  // namespace

// Whether the keys open the tape's first encrypted archive: its age header,
// read and unwrapped. A passphrase that does not open it is returned (it
// cannot be told from a damaged header there, and either way nothing should
// be recorded against the tape on its word); damage of any other kind is
// left for the verification to find and record.
std::optional<std::string> passphrase_problem(tape::Drive& drive, const catalog::TapeRow& tape,
                                              const std::vector<catalog::ArchiveRow>& archives,
                                              const crypto::AgeDecryptKeys& keys,
                                              const VerifyOptions& options) {
  auto first = std::find_if(archives.begin(), archives.end(),
                            [](const catalog::ArchiveRow& a) { return a.encrypted; });
  if (first == archives.end()) return std::nullopt;
  try {
    detail::TapeCursor cursor(drive, options.recall.forward_read_limit);
    cursor.seek(first->first_block, tape.record_size, 0);
    detail::LimitedSource window(cursor, first->cipher_bytes);
    crypto::read_age_header(window, keys);
  } catch (const crypto::AgeError& e) {
    if (e.kind() == crypto::AgeErrorKind::WrongPassphrase ||
        e.kind() == crypto::AgeErrorKind::NoIdentityMatched)
      return std::string(e.what());
  } catch (const std::exception&) {
    // Damage: the verification proper finds it and records it.
  }
  return std::nullopt;
}

VerifyReport verify(catalog::Catalog& catalog, tape::Library& library,
                    const crypto::AgeDecryptKeys& keys, const VerifyOptions& options,
                    Progress& progress) {
  VerifyReport report;
  const std::string catalog_id = catalog.catalog_id();
  const catalog::CatalogConfig config = catalog.config();
  // A key that cannot read the tapes would make every tape look damaged.
  if (std::string problem = key_problem(config, keys); !problem.empty())
    throw RestoreError(problem + "; nothing was verified, nothing recorded");
  // The tapes named (retired ones too: reading them stays possible), else
  // every tape that counts.
  std::vector<std::string> named = options.serials;
  if (named.empty() && options.serial) named.push_back(*options.serial);
  std::vector<catalog::TapeRow> tapes;
  if (named.empty()) {
    for (const auto& t : catalog.tapes())
      if (t.state != catalog::TapeState::kRetired) tapes.push_back(t);
  }
  for (const auto& serial : named) {
    auto t = catalog.tape_by_serial(serial);
    if (!t) throw RestoreError("tape " + serial + " is not in the catalog");
    tapes.push_back(*t);
  }
  auto serials = library.serials();
  std::set<std::string> listed(serials.begin(), serials.end());
  // The whole run's work, for one progress stage: what the tapes that are
  // here (or can be asked for) hold.
  std::uint64_t total_bytes = 0, total_items = 0;
  for (const auto& tape : tapes) {
    if (!listed.count(tape.serial) && !(options.await_tape && !options.serials.empty())) continue;
    for (const auto& archive : catalog.archives_of_tape(tape.id)) {
      total_bytes += archive.plain_bytes;
      total_items += options.quick ? 1 : archive.members;
    }
  }
  progress.phase("verify", options.quick ? 0 : total_bytes, total_items);
  detail::KeyCache key_cache;
  for (const auto& tape : tapes) {
    auto archives = catalog.archives_of_tape(tape.id);
    if (archives.empty() && named.empty()) continue;  // labelled, never written
    if (!listed.count(tape.serial) && options.await_tape && !options.serials.empty() &&
        options.await_tape(tape.serial)) {
      listed.insert(tape.serial);
    }
    if (!listed.count(tape.serial)) {
      report.skipped_tapes.push_back(tape.serial);
      if (!named.empty())
        report.problems.push_back("tape " + tape.serial + " is not in the library");
      continue;
    }
    progress.tape(tape.serial);
    // Until the tape is loaded and its label shows it is this catalog's
    // tape, a failure says nothing about the tape itself (a drive in use,
    // another tape in the slot): it is reported, not recorded.
    tape::Drive* drive = nullptr;
    try {
      drive = &library.load(tape.serial);
      if (options.recall.check_labels) {
        if (tape.is_foreign()) {
          detail::check_foreign_tape(*drive, tape.serial, tape.foreign_id);
        } else {
          detail::check_label(*drive, tape.serial, catalog_id);
        }
      }
    } catch (const std::exception& e) {
      report.problems.push_back("tape " + tape.serial + ": " + e.what() +
                                "; not verified, nothing recorded");
      continue;
    }
    if (config.encryption == catalog::Encryption::kPassphrase && !tape.is_foreign()) {
      if (auto problem = passphrase_problem(*drive, tape, archives, keys, options)) {
        report.key_problems.push_back(
            "tape " + tape.serial + ": " + *problem +
            " (the wrong --passphrase-file, or a damaged header there); not verified, nothing "
            "recorded");
        continue;
      }
    }
    ++report.tapes;
    std::vector<catalog::VerificationRow> rows;
    try {
      if (tape.is_foreign()) {
        rows = verify_foreign_tape(catalog, *drive, tape, archives, options, report, progress);
      } else {
        TapeVerifier verifier(catalog, *drive, tape, keys, options, key_cache, report, progress);
        rows = options.quick ? verifier.quick(archives) : verifier.full(archives);
      }
    } catch (const std::exception& e) {
      report.problems.push_back("tape " + tape.serial + ": " + e.what());
      for (const auto& archive : archives) {
        catalog::VerificationRow row;
        row.archive_id = archive.id;
        row.checked_at_ns = now_ns();
        row.result = VerifyResult::kUnreadable;
        row.detail = e.what();
        rows.push_back(row);
      }
    }
    auto transaction = catalog.transaction();
    for (const auto& row : rows) catalog.record_verification(row);
    transaction.commit();
  }
  return report;
}

}  // namespace mixtape::restore
