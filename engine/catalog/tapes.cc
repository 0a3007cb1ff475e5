// Catalog: planning, tapes, archives and copies, status and verification.
#include "engine/catalog/catalog.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <exception>
#include <tuple>

#include "engine/catalog/internal.h"
#include "engine/catalog/queries.h"

namespace mixtape::catalog {

using internal::bind_id;
using internal::bind_tape_insert;
using internal::bind_tape_update;
using internal::quote;

// ---------------------------------------------------------------- planning

void Catalog::for_each_pending(Id tape_id, const std::function<void(const PendingVersion&)>& fn,
                               bool only_present) {
  auto s = db_->prepare(sql::kPending);
  s.bind(1, tape_id).bind(2, only_present ? 1 : 0);
  while (s.step()) {
    PendingVersion p;
    p.version = internal::read_version(s, 0);
    p.path = internal::join_path(s.column_text(internal::kVersionColumns),
                                 s.column_text(internal::kVersionColumns + 1));
    fn(p);
  }
}

// ---------------------------------------------------------------- tapes

Id Catalog::add_tape(const TapeRow& tape) {
  if (!internal::is_valid_serial(tape.serial)) {
    throw CatalogError("invalid tape serial " + quote(tape.serial) +
                       " (1 to 32 letters, digits, '-', '_' or '.')");
  }
  if (tape.record_size == 0) throw CatalogError("tape " + tape.serial + ": record size 0");
  if (tape_by_serial(tape.serial)) {
    throw CatalogError("tape " + tape.serial + " is already in the catalog");
  }
  TapeRow row = tape;
  if (row.labelled_at_ns == 0) row.labelled_at_ns = now_ns();
  auto s = stmts_->get(sql::kInsertTape);
  bind_tape_insert(*s, 0, row).run();
  return db_->last_insert_rowid();
}

void Catalog::update_tape(const TapeRow& tape) {
  auto s = stmts_->get(sql::kUpdateTape);
  bind_tape_update(*s, tape).run();
  if (db_->changes() == 0) throw CatalogError("no tape with id " + std::to_string(tape.id));
}

void Catalog::set_tape_state(Id tape_id, TapeState state) {
  auto s = stmts_->get(sql::kSetTapeState);
  s->bind(1, tape_id).bind(2, to_string(state));
  s->run();
}

void Catalog::set_tape_location(Id tape_id, std::string_view location) {
  if (location.size() > 1024 || location.find('\0') != std::string_view::npos ||
      location.find('\n') != std::string_view::npos)
    throw CatalogError("a tape's location is one line of at most 1024 bytes");
  auto s = stmts_->get(sql::kSetTapeLocation);
  s->bind(1, tape_id).bind(2, location);
  s->run();
  if (db_->changes() == 0) throw CatalogError("no tape with id " + std::to_string(tape_id));
}

bool is_retire_reason(std::string_view reason) {
  return reason == "lost" || reason == "destroyed" || reason == "bad" || reason == "worn";
}

void Catalog::retire_tape(Id tape_id, std::string_view reason) {
  if (!is_retire_reason(reason))
    throw CatalogError("a tape is retired as lost, destroyed, bad or worn, not " + quote(reason));
  sqlite::WriteScope scope(*db_);
  auto t = tape(tape_id);
  if (!t) throw CatalogError("no tape with id " + std::to_string(tape_id));
  if (t->state == TapeState::kRetired)
    throw CatalogError("tape " + t->serial + " is already retired (" + t->retired_reason + ")");
  auto s = stmts_->get(sql::kRetireTape);
  s->bind(1, tape_id).bind(2, reason).bind(3, now_ns());
  s->run();  // the tapes_retired trigger recounts the copies of its versions
  scope.commit();
}

std::optional<TapeRow> Catalog::tape(Id tape_id) {
  return internal::first_row(*stmts_, sql::kTapeById, internal::read_tape, tape_id);
}

std::optional<TapeRow> Catalog::tape_by_serial(std::string_view serial) {
  return internal::first_row(*stmts_, sql::kTapeBySerial, internal::read_tape, serial);
}

std::optional<TapeRow> Catalog::tape_by_foreign_id(std::string_view foreign_id) {
  return internal::first_row(*stmts_, sql::kTapeByForeignId, internal::read_tape, foreign_id);
}

std::vector<TapeRow> Catalog::tapes() {
  std::vector<TapeRow> rows;
  auto s = stmts_->get(sql::kAllTapes);
  while (s->step()) rows.push_back(internal::read_tape(*s, 0));
  return rows;
}

// ---------------------------------------------------------------- archives, copies

Id Catalog::add_archive(const ArchiveRow& archive) {
  ArchiveRow a = archive;
  if (a.written_at_ns == 0) a.written_at_ns = now_ns();
  return internal::insert_archive(*stmts_, a, 0);
}

std::optional<ArchiveRow> Catalog::archive(Id archive_id) {
  return internal::first_row(*stmts_, sql::kArchiveById, internal::read_archive, archive_id);
}

std::optional<ArchiveRow> Catalog::archive_by_file(Id tape_id, std::int64_t archive_file) {
  return internal::first_row(*stmts_, sql::kArchiveByFile, internal::read_archive, tape_id,
                             archive_file);
}

std::vector<ArchiveRow> Catalog::archives_of_tape(Id tape_id) {
  std::vector<ArchiveRow> rows;
  auto s = stmts_->get(sql::kArchivesOfTape);
  s->bind(1, tape_id);
  while (s->step()) rows.push_back(internal::read_archive(*s, 0));
  return rows;
}

Id Catalog::add_copy(const CopyRow& copy) {
  sqlite::WriteScope scope(*db_);
  const Id id = internal::insert_copy(*stmts_, copy, 0);
  scope.commit();
  return id;
}

std::vector<LocatedCopy> Catalog::copies_of(Id version_id) {
  using internal::kArchiveColumns;
  using internal::kCopyColumns;
  std::vector<LocatedCopy> rows;
  auto s = stmts_->get(sql::kCopiesOf);
  s->bind(1, version_id);
  while (s->step()) {
    rows.push_back({internal::read_copy(*s, 0), internal::read_archive(*s, kCopyColumns),
                    internal::read_tape(*s, kCopyColumns + kArchiveColumns)});
  }
  // Sorted here, not by SQL: a version has a few copies, and an ORDER BY on
  // tapes let the planner prefer scanning the serial index.
  std::sort(rows.begin(), rows.end(), [](const LocatedCopy& a, const LocatedCopy& b) {
    return std::tie(a.tape.serial, a.archive.archive_file) <
           std::tie(b.tape.serial, b.archive.archive_file);
  });
  return rows;
}

void Catalog::for_each_copy_on_tape(Id tape_id,
                                    const std::function<void(const CopyWithVersion&)>& fn) {
  auto s = db_->prepare(sql::kCopiesOnTape);
  s.bind(1, tape_id);
  while (s.step()) {
    const CopyWithVersion c = internal::read_copy_with_version(s);
    fn(c);
  }
}

void Catalog::for_each_copy_in_archive(Id archive_id,
                                       const std::function<bool(const CopyWithVersion&)>& fn) {
  auto s = db_->prepare(sql::kCopiesInArchive);
  s.bind(1, archive_id);
  while (s.step()) {
    const CopyWithVersion c = internal::read_copy_with_version(s);
    if (!fn(c)) return;
  }
}

// ---------------------------------------------------------------- status, verification

CatalogStatus Catalog::status() {
  sqlite::ReadScope snapshot(*db_);
  CatalogStatus st;
  auto count = [&](const char* query) {
    auto s = stmts_->get(query);
    s->step();
    return static_cast<std::uint64_t>(s->column_int(0));
  };
  st.dirs = count(sql::kCountDirs);
  st.files = count(sql::kCountFiles);
  st.copies = count(sql::kCountCopies);
  st.dirty_files = count(sql::kDirtyCount);
  {
    auto s = stmts_->get(sql::kVersionTotals);
    s->step();
    st.versions = static_cast<std::uint64_t>(s->column_int(0));
    st.version_bytes = static_cast<std::uint64_t>(s->column_int(1));
  }
  {
    auto s = stmts_->get(sql::kBelowGoalTotals);
    s->step();
    st.below_goal_versions = static_cast<std::uint64_t>(s->column_int(0));
    st.below_goal_bytes = static_cast<std::uint64_t>(s->column_int(1));
  }
  for (auto& t : tapes()) {
    TapeUsage u{t};
    auto s = stmts_->get(sql::kTapeArchiveTotals);
    s->bind(1, t.id);
    s->step();
    u.archives = static_cast<std::uint64_t>(s->column_int(0));
    u.members = static_cast<std::uint64_t>(s->column_int(1));
    u.plain_bytes = static_cast<std::uint64_t>(s->column_int(2));
    st.tapes.push_back(std::move(u));
  }
  return st;
}

std::pair<std::uint64_t, std::uint64_t> Catalog::below_goal() {
  auto s = stmts_->get(sql::kBelowGoalTotals);
  s->step();
  return {static_cast<std::uint64_t>(s->column_int(0)),
          static_cast<std::uint64_t>(s->column_int(1))};
}

Id Catalog::record_verification(const VerificationRow& row) {
  auto s = stmts_->get(sql::kInsertVerification);
  s->bind_null(1).bind(2, row.archive_id);
  bind_id(*s, 3, row.version_id)
      .bind(4, row.checked_at_ns ? row.checked_at_ns : now_ns())
      .bind(5, to_string(row.result))
      .bind(6, row.detail);
  bind_id(*s, 7, row.run_id);
  s->run();
  return db_->last_insert_rowid();
}

namespace {

VerificationRow read_verification(const sqlite::Statement& s) {
  VerificationRow v;
  v.id = s.column_int(0);
  v.archive_id = s.column_int(1);
  v.version_id = s.is_null(2) ? 0 : s.column_int(2);
  v.checked_at_ns = s.column_int(3);
  v.result = internal::parse_verify_result(s.column_text(4)).value_or(VerifyResult::kMismatch);
  v.detail = s.column_text(5);
  v.run_id = s.is_null(6) ? 0 : s.column_int(6);
  return v;
}

}  // namespace

std::optional<VerificationRow> Catalog::last_verification(Id archive_id, Id version_id) {
  auto s = stmts_->get(sql::kLastVerification);
  s->bind(1, archive_id);
  bind_id(*s, 2, version_id);
  if (!s->step()) return std::nullopt;
  return read_verification(*s);
}

std::vector<VerificationRow> Catalog::verifications_of_archive(Id archive_id) {
  std::vector<VerificationRow> rows;
  auto s = stmts_->get(sql::kVerificationsOfArchive);
  s->bind(1, archive_id);
  while (s->step()) rows.push_back(read_verification(*s));
  return rows;
}

}  // namespace mixtape::catalog
