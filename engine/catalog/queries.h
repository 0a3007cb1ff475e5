// The catalog's SQL, in one place so tests/catalog/scale_test.cc can check
// that every query is keyed (EXPLAIN QUERY PLAN). CROSS JOIN fixes the join
// order where SQLite's planner, without statistics, might otherwise start
// from the wrong table, and INDEXED BY names the partial indexes that hold
// just the rows wanted (with statistics, SQLite may otherwise prefer a scan
// when most rows qualify, as on a first backup). A unary + on a column
// (+a.tape_id) keeps SQLite from reaching a row through that column's index
// when the row's primary key is at hand. "Below P" is written as path = P OR (P/ < path <
// P0) ('0' follows '/'): a range on the path index, in byte order, for any
// bytes (see subtree_bounds()).
#pragma once

#include "engine/catalog/internal.h"

namespace mixtape::catalog::sql {

// The catalog's change epoch, read inside the writing statement's own
// transaction: every write to dirs, versions and gaps stamps `changed` with
// it, so an index bumping the epoch before its snapshot knows which rows are
// new to the next one (see index_copy.cc).
#define MIXTAPE_EPOCH "(SELECT epoch FROM change_epoch)"

// ---------------------------------------------------------------- config
inline constexpr char kGetConfig[] = "SELECT value FROM config WHERE key = ?1";
inline constexpr char kSetConfig[] =
    "INSERT INTO config (key, value) VALUES (?1, ?2) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value";

// ---------------------------------------------------------------- runs
inline constexpr char kLastRunStart[] = "SELECT max(started_at_ns) FROM runs";
inline constexpr char kInsertRun[] =
    "INSERT INTO runs (id, kind, started_at_ns, finished_at_ns) VALUES (?1, ?2, ?3, ?4)";
inline constexpr char kInsertRunRoot[] =
    "INSERT OR IGNORE INTO run_roots (run_id, root) VALUES (?1, ?2)";
inline constexpr char kFinishRun[] = "UPDATE runs SET finished_at_ns = ?2 WHERE id = ?1";
inline constexpr char kRunById[] =
    "SELECT id, kind, started_at_ns, finished_at_ns, files, bytes FROM runs WHERE id = ?1";
inline constexpr char kSetRunTotals[] = "UPDATE runs SET files = ?2, bytes = ?3 WHERE id = ?1";
inline constexpr char kRunRoots[] = "SELECT root FROM run_roots WHERE run_id = ?1 ORDER BY root";
inline constexpr char kAllRuns[] =
    "SELECT id, kind, started_at_ns, finished_at_ns FROM runs ORDER BY id";
inline constexpr char kRunAt[] =
    "SELECT id FROM runs WHERE started_at_ns <= ?1 ORDER BY started_at_ns DESC LIMIT 1";
inline constexpr char kRootsBetween[] =
    "SELECT root FROM run_roots WHERE run_id > ?1 AND run_id < ?2";

// ---------------------------------------------------------------- namespace
inline constexpr char kDirIdByPath[] = "SELECT id FROM dirs WHERE path = ?1";
inline constexpr char kDirById[] = "SELECT " MIXTAPE_DIR_COLUMNS " FROM dirs d WHERE d.id = ?1";
inline constexpr char kDirByPath[] = "SELECT " MIXTAPE_DIR_COLUMNS " FROM dirs d WHERE d.path = ?1";
inline constexpr char kInsertDir[] =
    "INSERT INTO dirs (id, parent, name, path, mode, uid, gid, uname, gname, mtime_ns, changed) "
    "VALUES (?1, ?2, ?3, ?4, 16877, 0, 0, '', '', 0, " MIXTAPE_EPOCH ")";
inline constexpr char kIdTakenDir[] = "SELECT 1 FROM dirs WHERE id = ?1";
inline constexpr char kFileIdByName[] = "SELECT id FROM files WHERE dir = ?1 AND name = ?2";
inline constexpr char kInsertFile[] = "INSERT INTO files (id, dir, name) VALUES (?1, ?2, ?3)";
inline constexpr char kIdTakenFile[] = "SELECT 1 FROM files WHERE id = ?1";
inline constexpr char kFileById[] = "SELECT id, dir, name FROM files WHERE id = ?1";
inline constexpr char kFilePath[] =
    "SELECT d.path, f.name FROM files f CROSS JOIN dirs d WHERE f.id = ?1 AND d.id = f.dir";
inline constexpr char kDirParent[] = "SELECT parent FROM dirs WHERE id = ?1";

// ---------------------------------------------------------------- scan
// Writes only what differs: an unchanged directory costs a keyed read.
inline constexpr char kTouchDir[] =
    "UPDATE dirs SET mode = ?2, uid = ?3, gid = ?4, uname = ?5, gname = ?6, mtime_ns = ?7, "
    "first_seen_run = coalesce(first_seen_run, ?8), last_seen_run = NULL, "
    "changed = " MIXTAPE_EPOCH
    " WHERE id = ?1 AND (mode <> ?2 OR uid <> ?3 OR gid <> ?4 OR uname <> ?5 OR gname <> ?6 "
    "OR mtime_ns <> ?7 OR first_seen_run IS NULL OR last_seen_run IS NOT NULL)";
inline constexpr char kScanEntries[] =
    "SELECT f.id, f.name, s.file_id IS NOT NULL, s.size, s.mtime_ns, s.ctime_ns, s.dev, s.ino, "
    "s.readable, s.dirty "
    "FROM files f LEFT JOIN scan_state s ON s.file_id = f.id WHERE f.dir = ?1 ORDER BY f.name";
inline constexpr char kUpsertScanState[] =
    "INSERT INTO scan_state (file_id, size, mtime_ns, ctime_ns, dev, ino, readable, dirty) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (file_id) DO UPDATE SET "
    "size = excluded.size, mtime_ns = excluded.mtime_ns, ctime_ns = excluded.ctime_ns, "
    "dev = excluded.dev, ino = excluded.ino, readable = excluded.readable, "
    "dirty = excluded.dirty";
inline constexpr char kMarkDirty[] = "UPDATE scan_state SET dirty = 1 WHERE file_id = ?1";
inline constexpr char kClearDirty[] = "UPDATE scan_state SET dirty = 0 WHERE file_id = ?1";
// Closing: the version (or directory) was last seen in run ?2 (never before
// it was first seen). Only open rows are touched.
inline constexpr char kCloseLatest[] =
    "UPDATE versions SET last_seen_run = max(first_seen_run, ?2), changed = " MIXTAPE_EPOCH
    " WHERE id = (SELECT max(x.id) FROM versions x WHERE x.file_id = ?1) "
    "AND last_seen_run IS NULL";
// ?1..?3: the directory as a subtree (P, P/, P0); ?4: the last run that saw it.
inline constexpr char kCloseVersionsBelow[] =
    "UPDATE versions SET last_seen_run = max(first_seen_run, ?4), changed = " MIXTAPE_EPOCH
    " WHERE last_seen_run IS NULL AND file_id IN (SELECT f.id FROM dirs d CROSS JOIN files f "
    "WHERE (d.path = ?1 OR (d.path > ?2 AND d.path < ?3)) AND f.dir = d.id)";
inline constexpr char kCloseDirsBelow[] =
    "UPDATE dirs SET last_seen_run = max(first_seen_run, ?4), changed = " MIXTAPE_EPOCH
    " WHERE (path = ?1 OR (path > ?2 AND path < ?3)) AND first_seen_run IS NOT NULL "
    "AND last_seen_run IS NULL";
inline constexpr char kPreviousRun[] = "SELECT max(id) FROM runs WHERE id < ?1";
inline constexpr char kDeleteScanState[] = "DELETE FROM scan_state WHERE file_id = ?1";
inline constexpr char kDeleteScanStatesBelow[] =
    "DELETE FROM scan_state WHERE file_id IN (SELECT f.id FROM dirs d CROSS JOIN files f "
    "WHERE (d.path = ?1 OR (d.path > ?2 AND d.path < ?3)) AND f.dir = d.id)";
inline constexpr char kDirtyFiles[] =
    "SELECT s.file_id, d.path, f.name, s.size FROM scan_state s INDEXED BY scan_state_dirty "
    "CROSS JOIN files f CROSS JOIN dirs d "
    "WHERE s.dirty = 1 AND f.id = s.file_id AND d.id = f.dir ORDER BY d.path, f.name";
inline constexpr char kDirtyCount[] =
    "SELECT count(*) FROM scan_state INDEXED BY scan_state_dirty WHERE dirty = 1";

// ---------------------------------------------------------------- versions
inline constexpr char kLatestVersion[] =
    "SELECT " MIXTAPE_VERSION_COLUMNS
    " FROM versions v WHERE v.file_id = ?1 ORDER BY v.id DESC LIMIT 1";
inline constexpr char kVersionById[] =
    "SELECT " MIXTAPE_VERSION_COLUMNS " FROM versions v WHERE v.id = ?1";
inline constexpr char kVersionsOf[] =
    "SELECT " MIXTAPE_VERSION_COLUMNS " FROM versions v WHERE v.file_id = ?1 ORDER BY v.id";
inline constexpr char kInsertVersion[] =
    "INSERT INTO versions (id, file_id, kind, size, hash, mtime_ns, mode, uid, gid, uname, "
    "gname, symlink_target, first_seen_run, last_seen_run, goal, changed) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, " MIXTAPE_EPOCH ")";
inline constexpr char kIdTakenVersion[] = "SELECT 1 FROM versions WHERE id = ?1";
// ?3 NULL: open.
inline constexpr char kSetVersionRuns[] =
    "UPDATE versions SET first_seen_run = ?2, last_seen_run = ?3, changed = " MIXTAPE_EPOCH
    " WHERE id = ?1";
inline constexpr char kInsertGap[] =
    "INSERT INTO gaps (file_id, from_run, to_run, changed) VALUES (?1, ?2, ?3, " MIXTAPE_EPOCH
    ") ON CONFLICT (file_id, from_run) DO UPDATE SET to_run = max(to_run, excluded.to_run), "
    "changed = excluded.changed";

// ---------------------------------------------------------------- copy goals
inline constexpr char kGoalFor[] =
    "SELECT copies FROM copy_goals WHERE prefix = '/' OR prefix = ?1 "
    "OR (?1 > prefix || '/' AND ?1 < prefix || '0') ORDER BY prefix DESC LIMIT 1";
inline constexpr char kGoalOf[] = "SELECT copies FROM copy_goals WHERE prefix = ?1";
inline constexpr char kUpsertGoal[] =
    "INSERT INTO copy_goals (prefix, copies) VALUES (?1, ?2) "
    "ON CONFLICT (prefix) DO UPDATE SET copies = excluded.copies";
inline constexpr char kDeleteGoal[] = "DELETE FROM copy_goals WHERE prefix = ?1";
inline constexpr char kAllGoals[] = "SELECT prefix, copies FROM copy_goals ORDER BY prefix";
// Files at or below a prefix: ?1..?3 as a directory (P, P/, P0); ?4, ?5 as
// a file (parent, name).
inline constexpr char kFilesBelow[] =
    "SELECT f.id, d.path, f.name FROM dirs d CROSS JOIN files f "
    "WHERE ((d.path = ?1 OR (d.path > ?2 AND d.path < ?3)) OR (d.path = ?4 AND f.name = ?5)) "
    "AND f.dir = d.id";
inline constexpr char kSetFileGoal[] =
    "UPDATE versions SET goal = ?2 WHERE file_id = ?1 AND goal <> ?2";

// ---------------------------------------------------------------- planning
// ?1: the tape to exclude (0: none); ?2: only versions still on disk.
inline constexpr char kPending[] =
    "SELECT " MIXTAPE_VERSION_COLUMNS
    ", d.path, f.name "
    "FROM versions v INDEXED BY versions_below_goal CROSS JOIN files f CROSS JOIN dirs d "
    "WHERE v.copies < v.goal AND f.id = v.file_id AND d.id = f.dir "
    "AND NOT EXISTS (SELECT 1 FROM copies c CROSS JOIN archives a "
    "WHERE c.version_id = v.id AND a.id = c.archive_id AND +a.tape_id = ?1) "
    "AND (?2 = 0 OR (v.last_seen_run IS NULL "
    "AND EXISTS (SELECT 1 FROM scan_state s WHERE s.file_id = v.file_id AND s.dirty = 0 "
    "AND s.readable = 1))) "
    "ORDER BY d.path, f.name, v.id";

// ---------------------------------------------------------------- tapes
inline constexpr char kInsertTape[] =
    "INSERT INTO tapes (id, serial, capacity, record_size, encrypted, state, bytes_used, "
    "append_file, append_block, labelled_at_ns, written_at_ns, foreign_id) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";
inline constexpr char kUpdateTape[] =
    "UPDATE tapes SET capacity = ?2, state = ?3, bytes_used = ?4, append_file = ?5, "
    "append_block = ?6, written_at_ns = ?7 WHERE id = ?1";
inline constexpr char kSetTapeState[] = "UPDATE tapes SET state = ?2 WHERE id = ?1";
inline constexpr char kSetTapeLocation[] = "UPDATE tapes SET location = ?2 WHERE id = ?1";
inline constexpr char kRetireTape[] =
    "UPDATE tapes SET state = 'retired', retired_reason = ?2, retired_at_ns = ?3 WHERE id = ?1";
inline constexpr char kTapeById[] = "SELECT " MIXTAPE_TAPE_COLUMNS " FROM tapes t WHERE t.id = ?1";
inline constexpr char kTapeBySerial[] =
    "SELECT " MIXTAPE_TAPE_COLUMNS " FROM tapes t WHERE t.serial = ?1";
inline constexpr char kTapeByForeignId[] =
    "SELECT " MIXTAPE_TAPE_COLUMNS " FROM tapes t WHERE t.foreign_id = ?1";
inline constexpr char kAllTapes[] =
    "SELECT " MIXTAPE_TAPE_COLUMNS " FROM tapes t ORDER BY t.serial";

// ---------------------------------------------------------------- archives, copies
inline constexpr char kInsertArchive[] =
    "INSERT INTO archives (id, tape_id, index_file, index_block, archive_file, first_block, "
    "encrypted, age_header_len, cipher_bytes, plain_bytes, members, written_at_ns, run_id, "
    "foreign_format, record_size) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)";
inline constexpr char kArchiveById[] =
    "SELECT " MIXTAPE_ARCHIVE_COLUMNS " FROM archives a WHERE a.id = ?1";
inline constexpr char kArchiveByFile[] =
    "SELECT " MIXTAPE_ARCHIVE_COLUMNS
    " FROM archives a WHERE a.tape_id = ?1 AND a.archive_file = ?2";
inline constexpr char kArchivesOfTape[] =
    "SELECT " MIXTAPE_ARCHIVE_COLUMNS
    " FROM archives a WHERE a.tape_id = ?1 ORDER BY a.archive_file";
inline constexpr char kInsertCopy[] =
    "INSERT INTO copies (id, archive_id, version_id, header_offset, data_offset) "
    "VALUES (?1, ?2, ?3, ?4, ?5)";
inline constexpr char kCopyExists[] =
    "SELECT id FROM copies WHERE archive_id = ?1 AND version_id = ?2";
// Where a new copy goes (?1 archive, ?2 version): its tape, the file's
// directory, whether the tape counts, whether the version is on it already.
inline constexpr char kCopyPlace[] =
    "SELECT a.tape_id, f.dir, t.state <> 'retired', EXISTS (SELECT 1 FROM copies c "
    "CROSS JOIN archives o WHERE c.version_id = ?2 AND o.id = c.archive_id "
    "AND +o.tape_id = a.tape_id) "
    "FROM archives a CROSS JOIN tapes t CROSS JOIN versions v CROSS JOIN files f "
    "WHERE a.id = ?1 AND t.id = a.tape_id AND v.id = ?2 AND f.id = v.file_id";
inline constexpr char kCountCopy[] = "UPDATE versions SET copies = copies + 1 WHERE id = ?1";
inline constexpr char kInsertTapeDir[] =
    "INSERT OR IGNORE INTO tape_dirs (tape_id, dir_id) VALUES (?1, ?2)";
inline constexpr char kCopiesOf[] =
    "SELECT " MIXTAPE_COPY_COLUMNS ", " MIXTAPE_ARCHIVE_COLUMNS ", " MIXTAPE_TAPE_COLUMNS
    " FROM copies c CROSS JOIN archives a CROSS JOIN tapes t "
    "WHERE c.version_id = ?1 AND a.id = c.archive_id AND t.id = a.tape_id";
inline constexpr char kCopiesOnTape[] =
    "SELECT " MIXTAPE_COPY_COLUMNS ", a.archive_file, " MIXTAPE_VERSION_COLUMNS
    ", d.path, f.name "
    "FROM archives a CROSS JOIN copies c CROSS JOIN versions v CROSS JOIN files f "
    "CROSS JOIN dirs d WHERE a.tape_id = ?1 AND c.archive_id = a.id AND v.id = c.version_id "
    "AND f.id = v.file_id AND d.id = f.dir ORDER BY a.archive_file, c.data_offset";

inline constexpr char kCopiesInArchive[] =
    "SELECT " MIXTAPE_COPY_COLUMNS ", a.archive_file, " MIXTAPE_VERSION_COLUMNS
    ", d.path, f.name "
    "FROM archives a CROSS JOIN copies c CROSS JOIN versions v CROSS JOIN files f "
    "CROSS JOIN dirs d WHERE a.id = ?1 AND c.archive_id = a.id AND v.id = c.version_id "
    "AND f.id = v.file_id AND d.id = f.dir ORDER BY c.data_offset";

// ---------------------------------------------------------------- views
// Directories: ?1 parent, ?2 after (or the name, for lookups), ?3 view key, ?4 limit.
inline constexpr char kDirsLatest[] =
    "SELECT " MIXTAPE_DIR_COLUMNS
    " FROM dirs d WHERE d.parent = ?1 AND d.name > ?2 ORDER BY d.name LIMIT ?4";
inline constexpr char kDirLatest[] =
    "SELECT " MIXTAPE_DIR_COLUMNS " FROM dirs d WHERE d.parent = ?1 AND d.name = ?2";
inline constexpr char kDirsSnapshot[] =
    "SELECT " MIXTAPE_DIR_COLUMNS
    " FROM dirs d WHERE d.parent = ?1 AND d.name > ?2 "
    "AND d.first_seen_run <= ?3 AND (d.last_seen_run IS NULL OR d.last_seen_run >= ?3) "
    "ORDER BY d.name LIMIT ?4";
inline constexpr char kDirSnapshot[] = "SELECT " MIXTAPE_DIR_COLUMNS
                                       " FROM dirs d WHERE d.parent = ?1 AND d.name = ?2 "
                                       "AND d.first_seen_run <= ?3 "
                                       "AND (d.last_seen_run IS NULL OR d.last_seen_run >= ?3)";
inline constexpr char kDirsTape[] =
    "SELECT " MIXTAPE_DIR_COLUMNS
    " FROM dirs d WHERE d.parent = ?1 AND d.name > ?2 "
    "AND EXISTS (SELECT 1 FROM tape_dirs t WHERE t.tape_id = ?3 AND t.dir_id = d.id) "
    "ORDER BY d.name LIMIT ?4";
inline constexpr char kDirTape[] =
    "SELECT " MIXTAPE_DIR_COLUMNS
    " FROM dirs d WHERE d.parent = ?1 AND d.name = ?2 "
    "AND EXISTS (SELECT 1 FROM tape_dirs t WHERE t.tape_id = ?3 AND t.dir_id = d.id)";

// Files: ?1 dir, ?2 after (or the name), ?3 view key, ?4 limit. The version
// shown is picked per file by a keyed subquery on versions_by_file.
#define MIXTAPE_FILES_LATEST(NAME_TERM, TAIL)                             \
  "SELECT f.id, f.name, " MIXTAPE_VERSION_COLUMNS                         \
  " FROM files f CROSS JOIN versions v WHERE f.dir = ?1 AND " NAME_TERM   \
  " AND v.id = (SELECT max(x.id) FROM versions x WHERE x.file_id = f.id " \
  "AND (?3 = 0 OR x.copies > 0))" TAIL
inline constexpr char kFilesLatest[] =
    MIXTAPE_FILES_LATEST("f.name > ?2", " ORDER BY f.name LIMIT ?4");
inline constexpr char kFileLatest[] = MIXTAPE_FILES_LATEST("f.name = ?2", "");
#define MIXTAPE_FILES_SNAPSHOT(NAME_TERM, TAIL)                                         \
  "SELECT f.id, f.name, " MIXTAPE_VERSION_COLUMNS                                       \
  " FROM files f CROSS JOIN versions v WHERE f.dir = ?1 AND " NAME_TERM                 \
  " AND v.id = (SELECT max(x.id) FROM versions x WHERE x.file_id = f.id "               \
  "AND x.first_seen_run <= ?3 AND (x.last_seen_run IS NULL OR x.last_seen_run >= ?3)) " \
  "AND NOT EXISTS (SELECT 1 FROM gaps g WHERE g.file_id = f.id AND g.from_run <= ?3 "   \
  "AND g.to_run >= ?3)" TAIL
inline constexpr char kFilesSnapshot[] =
    MIXTAPE_FILES_SNAPSHOT("f.name > ?2", " ORDER BY f.name LIMIT ?4");
inline constexpr char kFileSnapshot[] = MIXTAPE_FILES_SNAPSHOT("f.name = ?2", "");
#define MIXTAPE_FILES_TAPE(NAME_TERM, TAIL)                                                  \
  "SELECT f.id, f.name, " MIXTAPE_VERSION_COLUMNS                                            \
  " FROM files f CROSS JOIN versions v WHERE f.dir = ?1 AND " NAME_TERM                      \
  " AND v.id = (SELECT max(x.id) FROM versions x CROSS JOIN copies c CROSS JOIN archives a " \
  "WHERE x.file_id = f.id AND c.version_id = x.id AND a.id = c.archive_id "                  \
  "AND +a.tape_id = ?3)" TAIL
inline constexpr char kFilesTape[] = MIXTAPE_FILES_TAPE("f.name > ?2", " ORDER BY f.name LIMIT ?4");
inline constexpr char kFileTape[] = MIXTAPE_FILES_TAPE("f.name = ?2", "");

// ---------------------------------------------------------------- history
// The version snapshot ?2 shows of file ?1 (its scope, the run's roots, is
// checked apart).
inline constexpr char kVersionInSnapshot[] =
    "SELECT " MIXTAPE_VERSION_COLUMNS
    " FROM versions v WHERE v.id = (SELECT max(x.id) FROM versions x WHERE x.file_id = ?1 "
    "AND x.first_seen_run <= ?2 AND (x.last_seen_run IS NULL OR x.last_seen_run >= ?2)) "
    "AND NOT EXISTS (SELECT 1 FROM gaps g WHERE g.file_id = ?1 AND g.from_run <= ?2 "
    "AND g.to_run >= ?2)";
// Files whose versions or gaps begin or end between runs ?1 and ?2 (?1 < ?2).
inline constexpr char kVersionsBeginning[] =
    "SELECT file_id FROM versions WHERE first_seen_run > ?1 AND first_seen_run <= ?2";
inline constexpr char kVersionsEnding[] =
    "SELECT file_id FROM versions WHERE last_seen_run >= ?1 AND last_seen_run < ?2";
inline constexpr char kGapsBeginning[] =
    "SELECT file_id FROM gaps WHERE from_run > ?1 AND from_run <= ?2";
inline constexpr char kGapsEnding[] = "SELECT file_id FROM gaps WHERE to_run >= ?1 AND to_run < ?2";
// Files by name: a range of the name index (?1 <= name < ?2), and all of it.
inline constexpr char kFilesNamedBetween[] =
    "SELECT id, name FROM files INDEXED BY files_by_name WHERE name >= ?1 AND name < ?2";
inline constexpr char kFilesNamedFrom[] =
    "SELECT id, name FROM files INDEXED BY files_by_name WHERE name >= ?1";

// ---------------------------------------------------------------- status, verification
inline constexpr char kCountDirs[] = "SELECT count(*) FROM dirs";
inline constexpr char kCountFiles[] = "SELECT count(*) FROM files";
inline constexpr char kVersionTotals[] = "SELECT count(*), coalesce(sum(size), 0) FROM versions";
inline constexpr char kCountCopies[] = "SELECT count(*) FROM copies";
inline constexpr char kBelowGoalTotals[] =
    "SELECT count(*), coalesce(sum(size), 0) FROM versions INDEXED BY versions_below_goal "
    "WHERE copies < goal";
inline constexpr char kTapeArchiveTotals[] =
    "SELECT count(*), coalesce(sum(members), 0), coalesce(sum(plain_bytes), 0) "
    "FROM archives WHERE tape_id = ?1";
inline constexpr char kInsertVerification[] =
    "INSERT INTO verifications (id, archive_id, version_id, checked_at_ns, result, detail, "
    "run_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
#define MIXTAPE_VERIFICATION_COLUMNS \
  "id, archive_id, version_id, checked_at_ns, result, detail, run_id"
inline constexpr char kLastVerification[] =
    "SELECT " MIXTAPE_VERIFICATION_COLUMNS
    " FROM verifications WHERE archive_id = ?1 AND version_id IS ?2 "
    "ORDER BY checked_at_ns DESC, id DESC LIMIT 1";
inline constexpr char kVerificationsOfArchive[] =
    "SELECT " MIXTAPE_VERIFICATION_COLUMNS
    " FROM verifications WHERE archive_id = ?1 ORDER BY checked_at_ns DESC, id DESC";
inline constexpr char kVerificationExists[] =
    "SELECT 1 FROM verifications WHERE archive_id = ?1 AND version_id IS ?2 "
    "AND checked_at_ns = ?3 AND result = ?4";

}  // namespace mixtape::catalog::sql
