// merge_from_index: an index from tape merged into the catalog.
//
// The index is hostile input: it came from a tape that anyone could have
// written. It is opened read-only with SQLite's defensive settings (no
// triggers, no views, bounded lengths), each catalog_* table is read with
// explicit columns, and every value is checked for its storage class and
// range before use; paths must be absolute and normalised. Rows are matched
// by natural keys (runs by start time and kind, tapes by serial, directories
// and files by path, versions by file, content, metadata and first run,
// archives by tape and file number, copies by archive and version) and ids
// are remapped, so merging twice adds nothing and two tapes give the union.
#include <sys/stat.h>

#include <algorithm>
#include <limits>
#include <unordered_map>

#include "engine/catalog/internal.h"
#include "engine/catalog/queries.h"

namespace mixtape::catalog {
namespace {

using internal::bind_attributes;
using internal::bind_id;
using internal::bind_tape_insert;
using internal::bind_tape_update;
using internal::quote;

constexpr std::int64_t kMaxInt = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t kMinInt = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t kMaxU32 = 0xffffffffLL;
constexpr std::int64_t kMaxSize = std::int64_t{1} << 62;
constexpr std::size_t kMaxText = 4096;

// Source ids to catalog ids. Sources are read in id order, so a sorted
// vector (16 bytes a row) does, even for ten million versions.
class IdMap {
 public:
  bool add(Id from, Id to) {
    if (!pairs_.empty() && from <= pairs_.back().first) return false;
    pairs_.emplace_back(from, to);
    return true;
  }
  std::optional<Id> find(Id from) const {
    auto it = std::lower_bound(pairs_.begin(), pairs_.end(), std::pair<Id, Id>(from, kMinInt));
    if (it == pairs_.end() || it->first != from) return std::nullopt;
    return it->second;
  }

 private:
  std::vector<std::pair<Id, Id>> pairs_;
};

// One catalog_* table of the index, read row by row with every value checked.
class TableReader {
 public:
  TableReader(sqlite::Database& index, const std::string& index_path, std::string table,
              const std::string& columns, const std::string& order)
      : index_path_(index_path), table_("catalog_" + std::move(table)) {
    try {
      stmt_.emplace(index.prepare("SELECT " + columns + " FROM " + table_ + " ORDER BY " + order));
    } catch (const sqlite::SqliteError& e) {
      throw CatalogError("index " + index_path_ + " is not a usable mixtape index (" + table_ +
                         "): " + e.what());
    }
  }

  bool next() {
    try {
      if (!stmt_->step()) return false;
    } catch (const sqlite::SqliteError& e) {
      throw CatalogError("index " + index_path_ + ": cannot read " + table_ + ": " + e.what());
    }
    ++row_;
    return true;
  }

  [[noreturn]] void fail(int column, const std::string& problem) const {
    throw CatalogError("index " + index_path_ + ": " + table_ + " row " + std::to_string(row_) +
                       ", column " + stmt_->column_name(column) + ": " + problem);
  }

  std::int64_t integer(int column, std::int64_t min = 0, std::int64_t max = kMaxInt) const {
    if (stmt_->column_type(column) != SQLITE_INTEGER) fail(column, "not an integer");
    std::int64_t v = stmt_->column_int(column);
    if (v < min || v > max) fail(column, "out of range (" + std::to_string(v) + ")");
    return v;
  }
  std::optional<std::int64_t> optional_integer(int column, std::int64_t min = 0,
                                               std::int64_t max = kMaxInt) const {
    if (stmt_->column_type(column) == SQLITE_NULL) return std::nullopt;
    return integer(column, min, max);
  }
  std::string text(int column, std::size_t max_bytes = kMaxText) const {
    if (stmt_->column_type(column) != SQLITE_TEXT) fail(column, "not text");
    if (stmt_->column_bytes(column) > max_bytes) fail(column, "too long");
    std::string v = stmt_->column_text(column);
    if (v.find('\0') != std::string::npos) fail(column, "contains NUL");
    return v;
  }
  std::optional<std::string> optional_text(int column, std::size_t max_bytes = kMaxText) const {
    if (stmt_->column_type(column) == SQLITE_NULL) return std::nullopt;
    return text(column, max_bytes);
  }
  std::string path(int column) const {
    std::string p = text(column, internal::kMaxPathBytes);
    if (!internal::is_valid_path(p)) fail(column, quote(p) + " is not an absolute normalised path");
    return p;
  }
  std::string name(int column) const {
    std::string n = text(column, internal::kMaxNameBytes);
    if (!internal::is_valid_name(n)) fail(column, quote(n) + " is not a valid file name");
    return n;
  }
  Hash hash(int column) const {
    if (stmt_->column_type(column) != SQLITE_BLOB || stmt_->column_bytes(column) != 32) {
      fail(column, "not a 32-byte hash");
    }
    Hash h{};
    Bytes b = stmt_->column_blob(column);
    std::copy(b.begin(), b.end(), h.begin());
    return h;
  }
  Id mapped(int column, const IdMap& map, bool optional = false) const {
    if (optional && stmt_->column_type(column) == SQLITE_NULL) return 0;
    auto id = map.find(integer(column, 1));
    if (!id) fail(column, "refers to a row the index does not have");
    return *id;
  }
  void check_map(IdMap& map, Id from, Id to) const {
    if (!map.add(from, to)) fail(0, "duplicate or unordered id " + std::to_string(from));
  }

 private:
  const std::string& index_path_;
  std::string table_;
  std::optional<sqlite::Statement> stmt_;
  std::uint64_t row_ = 0;
};

int tape_state_rank(TapeState s) {
  switch (s) {
    case TapeState::kLabelled:
      return 0;
    case TapeState::kOpen:
      return 1;
    case TapeState::kFull:
      return 2;
    case TapeState::kRetired:
      return 3;
  }
  return 0;
}

bool exists(sqlite::Database& db, const char* query) {
  auto s = db.prepare(query);
  return s.step();
}

}  // namespace

// Merges one index, in the order rows depend on each other.
class IndexMerger {
 public:
  IndexMerger(StatementCache& stmts, sqlite::Database& index, const std::string& index_path,
              const MergeOptions& options)
      : stmts_(stmts), db_(stmts.db()), index_(index), index_path_(index_path), options_(options) {}

  MergeStats run() {
    sqlite::WriteScope scope(db_);
    check_identity();
    merge_runs();
    merge_run_totals();
    merge_goals();
    merge_tapes();
    merge_tape_notes();
    merge_dirs();
    merge_files();
    merge_versions();
    merge_gaps();
    merge_archives();
    merge_copies();
    merge_verifications();
    scope.commit();
    return stats_;
  }

 private:
  TableReader reader(const char* table, const std::string& columns, const char* order = "id") {
    return TableReader(index_, index_path_, table, columns, order);
  }

  bool has_column(const char* table, const char* column) {
    auto info = index_.prepare("SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2");
    info.bind(1, table).bind(2, column);
    return info.step();
  }

  // An id the row may keep (an empty catalog keeps the index's ids, so
  // inode numbers of a recovered catalog match the original's), or 0.
  Id keep_id(const char* taken_query, Id id) {
    if (!preserve_ids_) return 0;
    auto s = stmts_.get(taken_query);
    s->bind(1, id);
    return s->step() ? 0 : id;
  }

  std::int64_t start_of(Id run) const {
    auto it = run_start_.find(run);
    return it == run_start_.end() ? 0 : it->second;
  }
  // The earlier / later of two runs (0 = none), by start time.
  Id earlier(Id a, Id b) const {
    if (!a || !b) return a ? a : b;
    return start_of(b) < start_of(a) ? b : a;
  }
  Id later(Id a, Id b) const {
    if (!a || !b) return a ? a : b;
    return start_of(b) > start_of(a) ? b : a;
  }
  // Whether the index's last_seen_run (0: still there) replaces ours: the
  // later of two ends, or, where one copy says "still there" and the other
  // names an end, the newer catalog's word.
  bool theirs_seen_later(Id ours, Id theirs) const {
    if (ours && theirs) return later(ours, theirs) != ours;
    if (!ours && !theirs) return false;
    return theirs_newer_;
  }

  void check_identity() {
    std::unordered_map<std::string, std::string> config;
    auto r = reader("config", "key, value", "key");
    while (r.next()) config[r.text(0, 256)] = r.text(1, 65536);
    const std::string theirs = config["catalog_id"];
    if (theirs.size() != 32 || theirs.find_first_not_of("0123456789abcdef") != std::string::npos) {
      throw CatalogError("index " + index_path_ + " has no valid catalog_id: not a mixtape index");
    }
    int version = 0;
    try {
      version = std::stoi(config["schema_version"]);
    } catch (const std::exception&) {
      throw CatalogError("index " + index_path_ + " has no valid schema_version");
    }
    if (version < 1 || version > Catalog::schema_version()) {
      throw CatalogError("index " + index_path_ + " holds a catalog of schema version " +
                         std::to_string(version) + ", newer than this mixtape (" +
                         std::to_string(Catalog::schema_version()) + "); upgrade mixtape");
    }
    const bool empty = !exists(db_, "SELECT 1 FROM runs") && !exists(db_, "SELECT 1 FROM tapes") &&
                       !exists(db_, "SELECT 1 FROM files");
    preserve_ids_ = empty;
    {
      auto s = stmts_.get(sql::kGetConfig);
      s->bind(1, "catalog_id");
      if (s->step() && s->column_text(0) == theirs) return;
    }
    if (empty) {
      // A new catalog recovered from tape becomes the catalog the tape was
      // written from: its id and settings.
      for (const char* key : {"catalog_id", "encryption", "recipients", "record_size"}) {
        auto it = config.find(key);
        if (it == config.end()) continue;
        auto s = stmts_.get(sql::kSetConfig);
        s->bind(1, key).bind(2, it->second);
        s->run();
      }
      stats_.adopted_catalog_id = true;
      adopting_ = true;
      return;
    }
    if (!options_.force) {
      auto s = stmts_.get(sql::kGetConfig);
      s->bind(1, "catalog_id");
      std::string ours = s->step() ? s->column_text(0) : "";
      throw CatalogError("index " + index_path_ + " belongs to catalog " + theirs +
                         ", not to this catalog (" + ours + "); merge it with force to combine " +
                         "the two catalogs");
    }
  }

  void merge_runs() {
    std::int64_t our_latest = kMinInt;
    {
      auto s = db_.prepare("SELECT id, started_at_ns FROM runs");
      while (s.step()) {
        run_start_[s.column_int(0)] = s.column_int(1);
        our_latest = std::max(our_latest, s.column_int(1));
      }
    }
    std::int64_t their_latest = kMinInt;
    auto r = reader("runs", "id, kind, started_at_ns, finished_at_ns");
    while (r.next()) {
      const Id from = r.integer(0, 1);
      const std::string kind_text = r.text(1, 16);
      if (!internal::parse_run_kind(kind_text)) r.fail(1, "unknown run kind");
      const std::int64_t started = r.integer(2, kMinInt);
      their_latest = std::max(their_latest, started);
      const auto finished = r.optional_integer(3, kMinInt);
      Id to = 0;
      {
        auto s = stmts_.get("SELECT id FROM runs WHERE started_at_ns = ?1 AND kind = ?2");
        s->bind(1, started).bind(2, kind_text);
        if (s->step()) to = s->column_int(0);
      }
      if (to) {
        if (finished) {
          auto s = stmts_.get(
              "UPDATE runs SET finished_at_ns = ?2 WHERE id = ?1 AND finished_at_ns IS NULL");
          s->bind(1, to).bind(2, *finished);
          s->run();
        }
      } else {
        auto s = stmts_.get(sql::kInsertRun);
        Id keep = keep_id("SELECT 1 FROM runs WHERE id = ?1", from);
        (keep ? s->bind(1, keep) : s->bind_null(1)).bind(2, kind_text).bind(3, started);
        s->bind(4, finished);
        s->run();
        to = db_.last_insert_rowid();
        run_start_[to] = started;
        ++stats_.runs;
      }
      r.check_map(runs_, from, to);
    }
    theirs_newer_ = their_latest > our_latest;
    auto roots = reader("run_roots", "run_id, root", "run_id, root");
    while (roots.next()) {
      auto s = stmts_.get(sql::kInsertRunRoot);
      s->bind(1, roots.mapped(0, runs_)).bind(2, roots.path(1));
      s->run();
    }
  }

  void merge_goals() {
    auto r = reader("copy_goals", "prefix, copies", "prefix");
    while (r.next()) {
      const std::string prefix = r.path(0);
      const auto copies = r.integer(1, 1, 1000);
      bool have = false;
      {
        auto s = stmts_.get(sql::kGoalOf);
        s->bind(1, prefix);
        have = s->step();
      }
      if (have && !adopting_) continue;  // this catalog's own goal wins
      {
        auto s = stmts_.get(sql::kUpsertGoal);
        s->bind(1, prefix).bind(2, copies);
        s->run();
      }
      internal::refresh_goals_below(stmts_, prefix);
    }
  }

  void merge_tapes() {
    // Format 2 added foreign_id later (imported tapes): older indexes lack it.
    const bool foreign = has_column("catalog_tapes", "foreign_id");
    auto r = reader("tapes", std::string("id, serial, capacity, record_size, encrypted, state, "
                                         "bytes_used, append_file, append_block, labelled_at_ns, "
                                         "written_at_ns") +
                                 (foreign ? ", foreign_id" : ""));
    while (r.next()) {
      const Id from = r.integer(0, 1);
      TapeRow t;
      t.serial = r.text(1, 64);
      if (!internal::is_valid_serial(t.serial)) r.fail(1, "invalid serial " + quote(t.serial));
      t.capacity = static_cast<std::uint64_t>(r.integer(2, 0, kMaxSize));
      t.record_size = static_cast<std::uint64_t>(r.integer(3, 1, std::int64_t{1} << 30));
      t.encrypted = r.integer(4, 0, 1) != 0;
      auto state = internal::parse_tape_state(r.text(5, 16));
      if (!state) r.fail(5, "unknown tape state");
      t.state = *state;
      t.bytes_used = static_cast<std::uint64_t>(r.integer(6, 0, kMaxSize));
      t.append_file = r.integer(7, 1, kMaxU32);
      if (auto b = r.optional_integer(8, 0, kMaxSize))
        t.append_block = static_cast<std::uint64_t>(*b);
      t.labelled_at_ns = r.integer(9, kMinInt);
      t.written_at_ns = r.optional_integer(10, kMinInt).value_or(0);
      if (foreign) t.foreign_id = r.optional_text(11, 64).value_or("");

      Id to = 0;
      std::optional<TapeRow> ours;
      {
        auto s = stmts_.get(sql::kTapeBySerial);
        s->bind(1, t.serial);
        if (s->step()) ours = internal::read_tape(*s, 0);
      }
      if (ours) {
        to = ours->id;
        TapeRow m = *ours;
        m.bytes_used = std::max(m.bytes_used, t.bytes_used);
        if (t.append_file > m.append_file) {
          m.append_file = t.append_file;
          m.append_block = t.append_block;
        }
        if (tape_state_rank(t.state) > tape_state_rank(m.state)) m.state = t.state;
        m.written_at_ns = std::max(m.written_at_ns, t.written_at_ns);
        if (m.bytes_used != ours->bytes_used || m.append_file != ours->append_file ||
            m.state != ours->state || m.written_at_ns != ours->written_at_ns) {
          auto s = stmts_.get(sql::kUpdateTape);
          bind_tape_update(*s, m).run();
        }
      } else {
        auto s = stmts_.get(sql::kInsertTape);
        Id keep = keep_id("SELECT 1 FROM tapes WHERE id = ?1", from);
        bind_tape_insert(*s, keep, t).run();
        to = db_.last_insert_rowid();
        ++stats_.tapes;
      }
      r.check_map(tapes_, from, to);
    }
  }

  // Whether the index has a table that came after its first indexes
  // (schema 3): an older index has none of its rows.
  bool index_has(const char* table) {
    auto s = index_.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1");
    s.bind(1, std::string("catalog_") + table);
    return s.step();
  }

  // What runs found, where this catalog does not know it yet.
  void merge_run_totals() {
    if (!index_has("run_totals")) return;
    auto r = reader("run_totals", "run_id, files, bytes", "run_id");
    while (r.next()) {
      const Id run = r.mapped(0, runs_);
      auto s = stmts_.get("UPDATE runs SET files = ?2, bytes = ?3 WHERE id = ?1 AND files IS NULL");
      s->bind(1, run).bind(2, r.integer(1, 0, kMaxSize)).bind(3, r.integer(2, 0, kMaxSize));
      s->run();
    }
  }

  // Where tapes are and why they were retired: the index's word where this
  // catalog has none (its own location, set later, wins).
  void merge_tape_notes() {
    if (!index_has("tape_notes")) return;
    auto r = reader("tape_notes", "tape_id, location, retired_reason, retired_at_ns", "tape_id");
    while (r.next()) {
      const Id tape = r.mapped(0, tapes_);
      const std::string location = r.text(1, 1024);
      if (location.find('\n') != std::string::npos) r.fail(1, "more than one line");
      const auto reason = r.optional_text(2, 16);
      if (reason && !is_retire_reason(*reason)) r.fail(2, "unknown retire reason");
      const auto retired_at = r.optional_integer(3, kMinInt);
      if (!location.empty()) {
        auto s = stmts_.get(adopting_
                                ? "UPDATE tapes SET location = ?2 WHERE id = ?1"
                                : "UPDATE tapes SET location = ?2 WHERE id = ?1 AND location = ''");
        s->bind(1, tape).bind(2, location);
        s->run();
      }
      if (reason) {
        auto s = stmts_.get(
            "UPDATE tapes SET retired_reason = ?2, retired_at_ns = ?3 WHERE id = ?1 "
            "AND state = 'retired' AND retired_reason IS NULL");
        s->bind(1, tape).bind(2, *reason);
        retired_at ? s->bind(3, *retired_at) : s->bind_null(3);
        s->run();
      }
    }
  }

  void merge_dirs() {
    auto r = reader("dirs",
                    "id, path, name, mode, uid, gid, uname, gname, mtime_ns, first_seen_run, "
                    "last_seen_run");
    while (r.next()) {
      const Id from = r.integer(0, 1);
      const std::string path = r.path(1);
      const std::string name = r.text(2, internal::kMaxNameBytes);
      if (path == "/" ? !name.empty() : name != internal::split_path(path).second) {
        r.fail(2, "does not match the path");
      }
      Attributes a;
      a.mode = static_cast<std::uint32_t>(r.integer(3, 0, kMaxU32));
      if ((a.mode & S_IFMT) != S_IFDIR) r.fail(3, "not a directory mode");
      a.uid = static_cast<std::uint32_t>(r.integer(4, 0, kMaxU32));
      a.gid = static_cast<std::uint32_t>(r.integer(5, 0, kMaxU32));
      a.uname = r.text(6);
      a.gname = r.text(7);
      a.mtime_ns = r.integer(8, kMinInt);
      const Id first = r.mapped(9, runs_, true);
      const Id last = r.mapped(10, runs_, true);

      if (!first && last) r.fail(10, "set for a directory never seen");
      const bool existed = internal::dir_id_by_path(stmts_, path).has_value();
      const Id to = internal::ensure_dir(stmts_, path, preserve_ids_ ? from : 0);
      if (!existed) ++stats_.dirs;
      r.check_map(dirs_, from, to);
      if (!first) continue;  // only made as an ancestor there

      DirRow ours;
      {
        auto s = stmts_.get(sql::kDirById);
        s->bind(1, to);
        s->step();
        ours = internal::read_dir(*s, 0);
      }
      DirRow m = ours;
      m.first_seen_run = earlier(ours.first_seen_run, first);
      if (!ours.first_seen_run || theirs_seen_later(ours.last_seen_run, last)) {
        m.attrs = a;
        m.last_seen_run = last;
      }
      if (m.attrs == ours.attrs && m.first_seen_run == ours.first_seen_run &&
          m.last_seen_run == ours.last_seen_run) {
        continue;
      }
      auto s = stmts_.get(
          "UPDATE dirs SET mode = ?2, uid = ?3, gid = ?4, uname = ?5, gname = ?6, mtime_ns = ?7, "
          "first_seen_run = ?8, last_seen_run = ?9, changed = " MIXTAPE_EPOCH " WHERE id = ?1");
      bind_attributes(s->bind(1, to), 2, m.attrs);
      bind_id(*s, 8, m.first_seen_run);
      bind_id(*s, 9, m.last_seen_run).run();
    }
  }

  void merge_files() {
    auto r = reader("files", "id, dir, name");
    while (r.next()) {
      const Id from = r.integer(0, 1);
      const Id dir = r.mapped(1, dirs_);
      const std::string name = r.name(2);
      bool existed = false;
      {
        auto s = stmts_.get(sql::kFileIdByName);
        s->bind(1, dir).bind(2, name);
        existed = s->step();
      }
      const Id to = internal::ensure_file(stmts_, dir, name, preserve_ids_ ? from : 0);
      if (!existed) ++stats_.files;
      r.check_map(files_, from, to);
    }
  }

  void merge_versions() {
    auto r = reader("versions",
                    "id, file_id, kind, size, hash, mtime_ns, mode, uid, gid, uname, gname, "
                    "symlink_target, first_seen_run, last_seen_run");
    while (r.next()) {
      const Id from = r.integer(0, 1);
      VersionRow v;
      v.file_id = r.mapped(1, files_);
      auto kind = internal::parse_version_kind(r.text(2, 16));
      if (!kind) r.fail(2, "unknown version kind");
      v.kind = *kind;
      v.size = static_cast<std::uint64_t>(r.integer(3, 0, kMaxSize));
      v.hash = r.hash(4);
      v.attrs.mtime_ns = r.integer(5, kMinInt);
      v.attrs.mode = static_cast<std::uint32_t>(r.integer(6, 0, kMaxU32));
      v.attrs.uid = static_cast<std::uint32_t>(r.integer(7, 0, kMaxU32));
      v.attrs.gid = static_cast<std::uint32_t>(r.integer(8, 0, kMaxU32));
      v.attrs.uname = r.text(9);
      v.attrs.gname = r.text(10);
      auto target = r.optional_text(11, internal::kMaxPathBytes);
      if (target.has_value() != (v.kind == VersionKind::kSymlink)) {
        r.fail(11, "does not match the version kind");
      }
      v.symlink_target = target.value_or("");
      v.first_seen_run = r.mapped(12, runs_);
      v.last_seen_run = r.mapped(13, runs_, true);  // format 2: NULL while on disk
      if (v.last_seen_run && start_of(v.first_seen_run) > start_of(v.last_seen_run))
        r.fail(13, "before first_seen_run");
      try {
        v = internal::normalised_version(v);
      } catch (const CatalogError& e) {
        r.fail(0, e.what());
      }

      Id to = 0;
      bool update = false;
      {
        auto s = stmts_.get(sql::kVersionsOf);
        s->bind(1, v.file_id);
        while (s->step() && !to) {
          VersionRow ours = internal::read_version(*s, 0);
          if (internal::same_content(ours, v) && ours.first_seen_run == v.first_seen_run) {
            to = ours.id;
            update = theirs_seen_later(ours.last_seen_run, v.last_seen_run);
          }
        }
      }
      if (to && update) {
        auto s = stmts_.get(sql::kSetVersionRuns);
        s->bind(1, to).bind(2, v.first_seen_run);
        v.last_seen_run ? s->bind(3, v.last_seen_run) : s->bind_null(3);
        s->run();
      } else if (!to) {
        std::string path;
        {
          auto s = stmts_.get(sql::kFilePath);
          s->bind(1, v.file_id);
          s->step();
          path = internal::join_path(s->column_text(0), s->column_text(1));
        }
        to = internal::insert_version(stmts_, v, path, preserve_ids_ ? from : 0);
        ++stats_.versions;
      }
      r.check_map(versions_, from, to);
    }
  }

  void merge_gaps() {
    auto r = reader("gaps", "file_id, from_run, to_run", "file_id, from_run");
    while (r.next()) {
      auto s = stmts_.get(sql::kInsertGap);
      s->bind(1, r.mapped(0, files_)).bind(2, r.mapped(1, runs_)).bind(3, r.mapped(2, runs_));
      s->run();
    }
  }

  void merge_archives() {
    // Format 2 added the foreign columns later (imported tapes).
    const bool foreign = has_column("catalog_archives", "foreign_format");
    auto r = reader("archives",
                    std::string("id, tape_id, index_file, index_block, archive_file, first_block, "
                                "encrypted, age_header_len, cipher_bytes, plain_bytes, members, "
                                "written_at_ns, run_id") +
                        (foreign ? ", foreign_format, record_size" : ""));
    while (r.next()) {
      const Id from = r.integer(0, 1);
      ArchiveRow a;
      if (foreign) {
        a.foreign_format = r.optional_text(13, 32).value_or("");
        a.record_size = static_cast<std::uint64_t>(
            r.optional_integer(14, 0, std::int64_t{1} << 30).value_or(0));
      }
      // A tape mixtape did not write has no label: its first tar is file 0.
      const std::int64_t first_file = a.is_foreign() ? 0 : 1;
      a.tape_id = r.mapped(1, tapes_);
      a.index_file = r.integer(2, first_file, kMaxU32);
      a.index_block = static_cast<std::uint64_t>(r.integer(3, 0, kMaxSize));
      a.archive_file = r.integer(4, first_file, kMaxU32);
      a.first_block = static_cast<std::uint64_t>(r.integer(5, 0, kMaxSize));
      a.encrypted = r.integer(6, 0, 1) != 0;
      a.age_header_len = static_cast<std::uint64_t>(r.integer(7, 0, 1 << 20));
      a.cipher_bytes = static_cast<std::uint64_t>(r.integer(8, 0, kMaxSize));
      a.plain_bytes = static_cast<std::uint64_t>(r.integer(9, 0, kMaxSize));
      a.members = static_cast<std::uint64_t>(r.integer(10, 0, kMaxSize));
      a.written_at_ns = r.integer(11, kMinInt);
      a.run_id = r.mapped(12, runs_, true);

      Id to = 0;
      {
        auto s = stmts_.get(sql::kArchiveByFile);
        s->bind(1, a.tape_id).bind(2, a.archive_file);
        if (s->step()) to = s->column_int(0);
      }
      if (!to) {
        to = internal::insert_archive(stmts_, a,
                                      keep_id("SELECT 1 FROM archives WHERE id = ?1", from));
        ++stats_.archives;
      }
      r.check_map(archives_, from, to);
    }
  }

  void merge_copies() {
    auto r = reader("copies", "id, archive_id, version_id, header_offset, data_offset");
    while (r.next()) {
      const Id from = r.integer(0, 1);
      CopyRow c;
      c.archive_id = r.mapped(1, archives_);
      c.version_id = r.mapped(2, versions_);
      c.header_offset = static_cast<std::uint64_t>(r.integer(3, 0, kMaxSize));
      c.data_offset = static_cast<std::uint64_t>(r.integer(4, 0, kMaxSize));
      if (c.data_offset < c.header_offset) r.fail(4, "before the header");
      {
        auto s = stmts_.get(sql::kCopyExists);
        s->bind(1, c.archive_id).bind(2, c.version_id);
        if (s->step()) continue;
      }
      internal::insert_copy(stmts_, c, keep_id("SELECT 1 FROM copies WHERE id = ?1", from));
      ++stats_.copies;
    }
  }

  void merge_verifications() {
    auto r = reader("verifications",
                    "id, archive_id, version_id, checked_at_ns, result, detail, run_id");
    while (r.next()) {
      const Id from = r.integer(0, 1);
      const Id archive = r.mapped(1, archives_);
      const Id version = r.mapped(2, versions_, true);
      const std::int64_t checked = r.integer(3, kMinInt);
      const std::string result = r.text(4, 16);
      if (!internal::parse_verify_result(result)) r.fail(4, "unknown result");
      const std::string detail = r.text(5, 65536);
      const Id run = r.mapped(6, runs_, true);
      {
        auto s = stmts_.get(sql::kVerificationExists);
        s->bind(1, archive);
        version ? s->bind(2, version) : s->bind_null(2);
        s->bind(3, checked).bind(4, result);
        if (s->step()) continue;
      }
      auto s = stmts_.get(sql::kInsertVerification);
      Id keep = keep_id("SELECT 1 FROM verifications WHERE id = ?1", from);
      (keep ? s->bind(1, keep) : s->bind_null(1)).bind(2, archive);
      version ? s->bind(3, version) : s->bind_null(3);
      s->bind(4, checked).bind(5, result).bind(6, detail);
      run ? s->bind(7, run) : s->bind_null(7);
      s->run();
      ++stats_.verifications;
    }
  }

  StatementCache& stmts_;
  sqlite::Database& db_;
  sqlite::Database& index_;
  const std::string& index_path_;
  const MergeOptions& options_;
  MergeStats stats_;
  bool preserve_ids_ = false;
  bool adopting_ = false;
  bool theirs_newer_ = false;  // the index's newest run is newer than ours
  std::unordered_map<Id, std::int64_t> run_start_;
  IdMap runs_, tapes_, dirs_, files_, versions_, archives_;
};

MergeStats Catalog::merge_from_index(const std::string& index_db_path,
                                     const MergeOptions& options) {
  if (read_only_) throw CatalogError("catalog " + path_ + " is open read-only");
  std::optional<sqlite::Database> index;
  try {
    index.emplace(index_db_path, sqlite::OpenMode::kUntrusted);
    // Reading the schema is the first touch of the file's contents.
    index->exec("SELECT count(*) FROM sqlite_schema");
  } catch (const sqlite::SqliteError& e) {
    throw CatalogError("index " + index_db_path + " cannot be read as a database: " + e.what());
  }
  return IndexMerger(*stmts_, *index, index_db_path, options).run();
}

}  // namespace mixtape::catalog
