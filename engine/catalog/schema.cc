// The catalog schema as numbered migrations, and the runner that applies them.
//
// Rules for adding a step: append, never edit a released step; end it by
// setting config 'schema_version' to its number (indexes carry that value, so
// a merge knows which layout their catalog_* tables have); keep
// `CREATE TABLE name (` on one line (copy_into renames tables by that text);
// comments inside CREATE TABLE are kept by SQLite and shown by `.schema` in
// every on-tape index, so they are written for a reader in 2040.
#include <sys/random.h>

#include <cerrno>
#include <chrono>

#include "engine/catalog/internal.h"

namespace mixtape::catalog::internal {
namespace {

constexpr const char* kSchemaV1 = R"sql(
PRAGMA application_id = 1297634384;

CREATE TABLE config (  -- settings of the catalog, one value per key
  key   TEXT PRIMARY KEY NOT NULL,  -- catalog_id, schema_version, encryption, recipients, record_size
  value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE runs (  -- every scan or backup run; a backup run is a snapshot
  id             INTEGER PRIMARY KEY,
  kind           TEXT NOT NULL CHECK (kind IN ('scan', 'backup')),
  started_at_ns  INTEGER NOT NULL,  -- Unix time in nanoseconds, increasing with id
  finished_at_ns INTEGER            -- NULL while running or if interrupted
);
CREATE INDEX runs_by_start ON runs(started_at_ns);

CREATE TABLE run_roots (  -- the source paths a run covered
  run_id INTEGER NOT NULL REFERENCES runs(id),
  root   TEXT NOT NULL,  -- absolute path, bytes as on disk
  PRIMARY KEY (run_id, root)
) WITHOUT ROWID;

CREATE TABLE dirs (  -- every directory ever seen; id 1 is "/"
  id             INTEGER PRIMARY KEY,
  parent         INTEGER REFERENCES dirs(id),  -- NULL only for "/"
  name           TEXT NOT NULL,                -- last component; '' for "/"
  path           TEXT NOT NULL UNIQUE,         -- full absolute path
  mode           INTEGER NOT NULL,             -- st_mode including S_IFDIR
  uid            INTEGER NOT NULL,
  gid            INTEGER NOT NULL,
  uname          TEXT NOT NULL,
  gname          TEXT NOT NULL,
  mtime_ns       INTEGER NOT NULL,
  first_seen_run INTEGER REFERENCES runs(id),  -- NULL if only made as an ancestor
  last_seen_run  INTEGER REFERENCES runs(id),
  UNIQUE (parent, name)
);
INSERT INTO dirs (id, parent, name, path, mode, uid, gid, uname, gname, mtime_ns)
  VALUES (1, NULL, '', '/', 16877, 0, 0, '', '', 0);

CREATE TABLE files (  -- every non-directory path ever seen (regular file or symlink)
  id   INTEGER PRIMARY KEY,
  dir  INTEGER NOT NULL REFERENCES dirs(id),
  name TEXT NOT NULL,
  UNIQUE (dir, name)
);

CREATE TABLE scan_state (  -- what the last scan saw of each path still on disk (local only)
  file_id  INTEGER PRIMARY KEY REFERENCES files(id),
  size     INTEGER NOT NULL,
  mtime_ns INTEGER NOT NULL,
  ctime_ns INTEGER NOT NULL,
  dev      INTEGER NOT NULL,
  ino      INTEGER NOT NULL,
  readable INTEGER NOT NULL,  -- 0 if it could not be opened
  dirty    INTEGER NOT NULL,  -- 1 if changed since its last version was hashed
  seen_run INTEGER REFERENCES runs(id)
);
CREATE INDEX scan_state_dirty ON scan_state(file_id) WHERE dirty = 1;

CREATE TABLE versions (  -- every distinct content and metadata a file has had
  id             INTEGER PRIMARY KEY,
  file_id        INTEGER NOT NULL REFERENCES files(id),
  kind           TEXT NOT NULL CHECK (kind IN ('file', 'symlink')),
  size           INTEGER NOT NULL CHECK (size >= 0),
  hash           BLOB NOT NULL CHECK (length(hash) = 32),  -- BLAKE2b-256 (of the target for a symlink)
  mtime_ns       INTEGER NOT NULL,
  mode           INTEGER NOT NULL,  -- st_mode including the file type bits
  uid            INTEGER NOT NULL,
  gid            INTEGER NOT NULL,
  uname          TEXT NOT NULL,
  gname          TEXT NOT NULL,
  symlink_target TEXT,              -- NULL unless kind = 'symlink'
  first_seen_run INTEGER NOT NULL REFERENCES runs(id),
  last_seen_run  INTEGER NOT NULL REFERENCES runs(id),  -- the version was on disk in runs first..last
  copies         INTEGER NOT NULL DEFAULT 0,  -- distinct non-retired tapes holding a copy
  goal           INTEGER NOT NULL             -- copies wanted (copy_goals, longest prefix)
);
CREATE INDEX versions_by_file ON versions(file_id, id);
CREATE INDEX versions_below_goal ON versions(file_id) WHERE copies < goal;

CREATE TABLE gaps (  -- runs that covered a file's path but did not see it, inside a version's range
  file_id  INTEGER NOT NULL REFERENCES files(id),
  from_run INTEGER NOT NULL REFERENCES runs(id),
  to_run   INTEGER NOT NULL REFERENCES runs(id),
  PRIMARY KEY (file_id, from_run)
) WITHOUT ROWID;

CREATE TABLE tapes (  -- every labelled tape
  id             INTEGER PRIMARY KEY,
  serial         TEXT NOT NULL UNIQUE,
  capacity       INTEGER NOT NULL,  -- bytes
  record_size    INTEGER NOT NULL,  -- bytes per tape record
  encrypted      INTEGER NOT NULL,  -- 1 if indexes and archives are age-encrypted
  state          TEXT NOT NULL CHECK (state IN ('labelled', 'open', 'full', 'retired')),
  bytes_used     INTEGER NOT NULL DEFAULT 0,
  append_file    INTEGER NOT NULL DEFAULT 1,  -- tape file where the next session writes (the trailing index)
  append_block   INTEGER,                     -- its first logical block, if known
  labelled_at_ns INTEGER NOT NULL,
  written_at_ns  INTEGER                      -- NULL if never written
);

CREATE TABLE archives (  -- every archive on tape: tape files index_file (SQLite) and archive_file (tar)
  id             INTEGER PRIMARY KEY,
  tape_id        INTEGER NOT NULL REFERENCES tapes(id),
  index_file     INTEGER NOT NULL,
  index_block    INTEGER NOT NULL,  -- first logical block of the index
  archive_file   INTEGER NOT NULL,
  first_block    INTEGER NOT NULL,  -- first logical block of the archive (B0)
  encrypted      INTEGER NOT NULL,
  age_header_len INTEGER NOT NULL,  -- H: bytes of the age header; 0 if not encrypted
  cipher_bytes   INTEGER NOT NULL,
  plain_bytes    INTEGER NOT NULL,
  members        INTEGER NOT NULL,
  written_at_ns  INTEGER NOT NULL,
  run_id         INTEGER REFERENCES runs(id),
  UNIQUE (tape_id, archive_file)
);

CREATE TABLE copies (  -- a version stored in an archive; offsets are in the plaintext tar
  id            INTEGER PRIMARY KEY,
  archive_id    INTEGER NOT NULL REFERENCES archives(id),
  version_id    INTEGER NOT NULL REFERENCES versions(id),
  header_offset INTEGER NOT NULL,
  data_offset   INTEGER NOT NULL,  -- block = B0 + (H + 16 + (data_offset / 65536) * 65552) / record_size
  UNIQUE (archive_id, version_id)
);
CREATE INDEX copies_by_version ON copies(version_id);
CREATE INDEX copies_by_offset ON copies(archive_id, data_offset);

CREATE TABLE tape_dirs (  -- directories holding something on a tape (derived from copies; local only)
  tape_id INTEGER NOT NULL REFERENCES tapes(id),
  dir_id  INTEGER NOT NULL REFERENCES dirs(id),
  PRIMARY KEY (tape_id, dir_id)
) WITHOUT ROWID;

CREATE TABLE copy_goals (  -- copies wanted per path prefix; '/' is the default
  prefix TEXT PRIMARY KEY NOT NULL,
  copies INTEGER NOT NULL CHECK (copies >= 1)
) WITHOUT ROWID;

CREATE TABLE verifications (  -- results of re-reading archives
  id            INTEGER PRIMARY KEY,
  archive_id    INTEGER NOT NULL REFERENCES archives(id),
  version_id    INTEGER REFERENCES versions(id),  -- NULL: the archive as a whole
  checked_at_ns INTEGER NOT NULL,
  result        TEXT NOT NULL CHECK (result IN ('ok', 'mismatch', 'unreadable', 'missing')),
  detail        TEXT NOT NULL DEFAULT '',
  run_id        INTEGER REFERENCES runs(id)
);
CREATE INDEX verifications_by_copy ON verifications(archive_id, version_id, checked_at_ns);

-- versions.copies: raised by the catalog as it inserts each copy (one
-- keyed check, cheaper than a trigger recount per copy), recounted by the
-- triggers below when a copy is deleted or a tape enters or leaves the
-- retired state.
CREATE TRIGGER copies_removed AFTER DELETE ON copies BEGIN
  UPDATE versions SET copies = (
    SELECT count(DISTINCT a.tape_id) FROM copies c CROSS JOIN archives a CROSS JOIN tapes t
    WHERE c.version_id = OLD.version_id AND a.id = c.archive_id AND t.id = a.tape_id
      AND t.state <> 'retired')
  WHERE id = OLD.version_id;
END;
CREATE TRIGGER tapes_retired AFTER UPDATE OF state ON tapes
WHEN (OLD.state = 'retired') <> (NEW.state = 'retired') BEGIN
  UPDATE versions SET copies = (
    SELECT count(DISTINCT a2.tape_id) FROM copies c2 CROSS JOIN archives a2 CROSS JOIN tapes t2
    WHERE c2.version_id = versions.id AND a2.id = c2.archive_id AND t2.id = a2.tape_id
      AND t2.state <> 'retired')
  WHERE id IN (SELECT c.version_id FROM archives a CROSS JOIN copies c
               WHERE a.tape_id = NEW.id AND c.archive_id = a.id);
END;

INSERT INTO config (key, value) VALUES ('schema_version', '1');
)sql";

// Version 2: backups that cost what changed (format 2).
//  - A version or directory still on disk has last_seen_run NULL ("open"):
//    an unchanged scan writes nothing, where version 1 extended every row to
//    every run. The scan closes a version when it finds the file changed or
//    gone, at the last run that saw it.
//  - Rows of dirs, versions and gaps carry the change epoch of their last
//    write (`changed`), so an on-tape index can hold only what changed since
//    the previous index on its tape (index_marks says what that one held).
//  - scan_state loses seen_run (open versions say the same).
// Tables are rebuilt by renaming the old one away (legacy_alter_table keeps
// other tables' references and triggers pointing at the name), creating the
// new one under the name, copying and dropping the old.
constexpr const char* kSchemaV2 = R"sql(
PRAGMA legacy_alter_table = ON;
DROP TRIGGER copies_removed;
DROP TRIGGER tapes_retired;

CREATE TABLE change_epoch (  -- the catalog's change counter (local only); see index_marks
  epoch INTEGER NOT NULL  -- rows written now carry this value in their `changed` column
);
INSERT INTO change_epoch (epoch) VALUES (1);

CREATE TABLE index_marks (  -- per tape: what the last archive index on it holds (local only)
  tape_id       INTEGER PRIMARY KEY REFERENCES tapes(id),
  index_file    INTEGER NOT NULL,  -- its tape file
  epoch         INTEGER NOT NULL,  -- dirs, versions, gaps changed at this epoch or later are new to it
  files         INTEGER NOT NULL,  -- files, archives, copies, verifications (never updated):
  archives      INTEGER NOT NULL,  --   rows with ids above these are new to it
  copies        INTEGER NOT NULL,
  verifications INTEGER NOT NULL
) WITHOUT ROWID;

DROP INDEX versions_by_file;
DROP INDEX versions_below_goal;
ALTER TABLE versions RENAME TO versions_v1;
CREATE TABLE versions (  -- every distinct content and metadata a file has had
  id             INTEGER PRIMARY KEY,
  file_id        INTEGER NOT NULL REFERENCES files(id),
  kind           TEXT NOT NULL CHECK (kind IN ('file', 'symlink')),
  size           INTEGER NOT NULL CHECK (size >= 0),
  hash           BLOB NOT NULL CHECK (length(hash) = 32),  -- BLAKE2b-256 (of the target for a symlink)
  mtime_ns       INTEGER NOT NULL,
  mode           INTEGER NOT NULL,  -- st_mode including the file type bits
  uid            INTEGER NOT NULL,
  gid            INTEGER NOT NULL,
  uname          TEXT NOT NULL,
  gname          TEXT NOT NULL,
  symlink_target TEXT,              -- NULL unless kind = 'symlink'
  first_seen_run INTEGER NOT NULL REFERENCES runs(id),
  last_seen_run  INTEGER REFERENCES runs(id),  -- the version was on disk in runs first..last; NULL: still is
  copies         INTEGER NOT NULL DEFAULT 0,  -- distinct non-retired tapes holding a copy (derived)
  goal           INTEGER NOT NULL,            -- copies wanted (copy_goals, longest prefix; derived)
  changed        INTEGER NOT NULL DEFAULT 0   -- change_epoch of the last write (local only)
);
INSERT INTO versions (id, file_id, kind, size, hash, mtime_ns, mode, uid, gid, uname, gname,
                      symlink_target, first_seen_run, last_seen_run, copies, goal)
  SELECT id, file_id, kind, size, hash, mtime_ns, mode, uid, gid, uname, gname,
         symlink_target, first_seen_run, last_seen_run, copies, goal FROM versions_v1;
-- Open: the latest version of a file the last scan saw unchanged in that
-- version's last run.
UPDATE versions SET last_seen_run = NULL WHERE id IN (
  SELECT v.id FROM scan_state s CROSS JOIN versions v
  WHERE s.dirty = 0 AND v.file_id = s.file_id AND v.last_seen_run = s.seen_run
    AND v.id = (SELECT max(x.id) FROM versions x WHERE x.file_id = s.file_id));
DROP TABLE versions_v1;
CREATE INDEX versions_by_file ON versions(file_id, id);
CREATE INDEX versions_below_goal ON versions(file_id) WHERE copies < goal;
CREATE INDEX versions_changed ON versions(changed);

DROP INDEX scan_state_dirty;
ALTER TABLE scan_state RENAME TO scan_state_v1;
CREATE TABLE scan_state (  -- what the last scan saw of each path still on disk (local only)
  file_id  INTEGER PRIMARY KEY REFERENCES files(id),
  size     INTEGER NOT NULL,
  mtime_ns INTEGER NOT NULL,
  ctime_ns INTEGER NOT NULL,
  dev      INTEGER NOT NULL,
  ino      INTEGER NOT NULL,
  readable INTEGER NOT NULL,  -- 0 if it could not be opened
  dirty    INTEGER NOT NULL   -- 1 if changed since its last version was hashed
);
INSERT INTO scan_state SELECT file_id, size, mtime_ns, ctime_ns, dev, ino, readable, dirty
  FROM scan_state_v1;
DROP TABLE scan_state_v1;
CREATE INDEX scan_state_dirty ON scan_state(file_id) WHERE dirty = 1;

ALTER TABLE dirs RENAME TO dirs_v1;
CREATE TABLE dirs (  -- every directory ever seen; id 1 is "/"
  id             INTEGER PRIMARY KEY,
  parent         INTEGER REFERENCES dirs(id),  -- NULL only for "/"
  name           TEXT NOT NULL,                -- last component; '' for "/"
  path           TEXT NOT NULL UNIQUE,         -- full absolute path
  mode           INTEGER NOT NULL,             -- st_mode including S_IFDIR
  uid            INTEGER NOT NULL,
  gid            INTEGER NOT NULL,
  uname          TEXT NOT NULL,
  gname          TEXT NOT NULL,
  mtime_ns       INTEGER NOT NULL,
  first_seen_run INTEGER REFERENCES runs(id),  -- NULL if only made as an ancestor
  last_seen_run  INTEGER REFERENCES runs(id),  -- NULL while it is still there (or never seen)
  changed        INTEGER NOT NULL DEFAULT 0,   -- change_epoch of the last write (local only)
  UNIQUE (parent, name)
);
INSERT INTO dirs (id, parent, name, path, mode, uid, gid, uname, gname, mtime_ns,
                  first_seen_run, last_seen_run)
  SELECT id, parent, name, path, mode, uid, gid, uname, gname, mtime_ns,
         first_seen_run, last_seen_run FROM dirs_v1;
-- Open: no run after its last one covered it.
UPDATE dirs SET last_seen_run = NULL WHERE last_seen_run IS NOT NULL AND NOT EXISTS (
  SELECT 1 FROM run_roots r WHERE r.run_id > dirs.last_seen_run
    AND (r.root = '/' OR dirs.path = r.root
         OR (dirs.path > r.root || '/' AND dirs.path < r.root || '0')));
DROP TABLE dirs_v1;
CREATE INDEX dirs_changed ON dirs(changed);

ALTER TABLE gaps ADD COLUMN changed INTEGER NOT NULL DEFAULT 0;
CREATE INDEX gaps_changed ON gaps(changed);

CREATE TRIGGER copies_removed AFTER DELETE ON copies BEGIN
  UPDATE versions SET copies = (
    SELECT count(DISTINCT a.tape_id) FROM copies c CROSS JOIN archives a CROSS JOIN tapes t
    WHERE c.version_id = OLD.version_id AND a.id = c.archive_id AND t.id = a.tape_id
      AND t.state <> 'retired')
  WHERE id = OLD.version_id;
END;
CREATE TRIGGER tapes_retired AFTER UPDATE OF state ON tapes
WHEN (OLD.state = 'retired') <> (NEW.state = 'retired') BEGIN
  UPDATE versions SET copies = (
    SELECT count(DISTINCT a2.tape_id) FROM copies c2 CROSS JOIN archives a2 CROSS JOIN tapes t2
    WHERE c2.version_id = versions.id AND a2.id = c2.archive_id AND t2.id = a2.tape_id
      AND t2.state <> 'retired')
  WHERE id IN (SELECT c.version_id FROM archives a CROSS JOIN copies c
               WHERE a.tape_id = NEW.id AND c.archive_id = a.id);
END;

PRAGMA legacy_alter_table = OFF;
UPDATE config SET value = '2' WHERE key = 'schema_version';
)sql";

// Version 3: what the operator says of tapes and what runs found (mixtape
// retire, mixtape tape location, mixtape snapshots), and the indexes that
// keep mixtape diff and mixtape find keyed at any size.
//  - tapes: location (free text, '' when not said), and once retired the
//    reason and the time. On tape as catalog_tape_notes (index_copy.cc).
//  - runs: the regular files and symlinks a run found under its roots, and
//    their bytes (NULL for runs before this version). On tape as
//    catalog_run_totals.
//  - files by name (find); versions by the runs they begin and end in, gaps
//    by theirs (what changed between two runs); local only, like every
//    secondary index.
constexpr const char* kSchemaV3 = R"sql(
ALTER TABLE tapes ADD COLUMN location TEXT NOT NULL DEFAULT '';
ALTER TABLE tapes ADD COLUMN retired_reason TEXT
  CHECK (retired_reason IN ('lost', 'destroyed', 'bad', 'worn'));
ALTER TABLE tapes ADD COLUMN retired_at_ns INTEGER;
ALTER TABLE runs ADD COLUMN files INTEGER;
ALTER TABLE runs ADD COLUMN bytes INTEGER;
CREATE INDEX files_by_name ON files(name);
CREATE INDEX versions_by_first_run ON versions(first_seen_run);
CREATE INDEX versions_by_last_run ON versions(last_seen_run) WHERE last_seen_run IS NOT NULL;
CREATE INDEX gaps_by_from_run ON gaps(from_run);
CREATE INDEX gaps_by_to_run ON gaps(to_run);
UPDATE config SET value = '3' WHERE key = 'schema_version';
)sql";

// Version 4: tapes mixtape did not write (found tar tapes, `mixtape import`).
//  - tapes.foreign_id: such a tape's fingerprint (it has no label); NULL for
//    mixtape's own tapes. Such a tape is never written: its state is 'full'.
//  - archives.foreign_format: how such a tape file reads; NULL for mixtape's
//    archives. archives.record_size: its own record size, when it is not
//    the tape's (tar -b 20 and tar -b 256 files on one tape); 0 when its
//    records vary, so it is read from its start.
constexpr const char* kSchemaV4 = R"sql(
ALTER TABLE tapes ADD COLUMN foreign_id TEXT;  -- a tape mixtape did not write: BLAKE2b-256 (hex) of its first record; NULL for mixtape's tapes
CREATE INDEX tapes_by_foreign_id ON tapes(foreign_id) WHERE foreign_id IS NOT NULL;
ALTER TABLE archives ADD COLUMN foreign_format TEXT;  -- NULL: a mixtape archive; else 'tar', 'tar.gz', 'tar.bz2', 'tar.xz', 'tar.zst', 'tar.Z', 'tar.lz' or 'raw' (not a tar)
ALTER TABLE archives ADD COLUMN record_size INTEGER;  -- bytes per record of this tape file; NULL: the tape's; 0: records vary
UPDATE config SET value = '4' WHERE key = 'schema_version';
)sql";

// Version 5: the catalog's last full copy on tape, kept beside it.
//  - last_tape_copy: the trailing index this catalog last wrote, kept as the
//    file <catalog>.tapecopy/<token>.db, and what of the catalog it holds; the
//    next full copy starts from that file and adds what changed since
//    (docs/DECISIONS.md, "A full copy costs what changed"). Local only: a
//    file without its row, or a row without its file, is not used.
constexpr const char* kSchemaV5 = R"sql(
CREATE TABLE last_tape_copy (  -- at most one row (local only)
  id            INTEGER PRIMARY KEY CHECK (id = 1),
  token         TEXT NOT NULL,     -- the file's name ends in it
  epoch         INTEGER NOT NULL,  -- dirs, versions, gaps changed at this epoch or later are new to it
  files         INTEGER NOT NULL,  -- the largest ids it holds of these tables
  archives      INTEGER NOT NULL,
  copies        INTEGER NOT NULL,
  verifications INTEGER NOT NULL
);
UPDATE config SET value = '5' WHERE key = 'schema_version';
)sql";

constexpr Migration kMigrations[] = {
    {"initial schema", kSchemaV1},
    {"open versions, change epochs (format 2)", kSchemaV2},
    {"tape locations and retirement, run totals, diff and find indexes", kSchemaV3},
    {"tapes mixtape did not write (foreign tar tapes)", kSchemaV4},
    {"the last full copy on tape, kept beside the catalog", kSchemaV5},
};

}  // namespace

std::span<const Migration> migrations() {
  return kMigrations;
}

int user_version(sqlite::Database& db) {
  auto s = db.prepare("PRAGMA user_version");
  return s.step() ? static_cast<int>(s.column_int(0)) : 0;
}

void migrate(sqlite::Database& db, std::span<const Migration> steps, const std::string& path) {
  const int known = static_cast<int>(steps.size());
  auto refuse_newer = [&](int current) {
    if (current > known) {
      throw CatalogError("catalog " + path + " has schema version " + std::to_string(current) +
                         ", newer than this mixtape (" + std::to_string(known) +
                         "); upgrade mixtape");
    }
  };
  // The common case reads one header field and takes no lock, so opening a
  // current catalog never waits for a writer.
  int current = user_version(db);
  refuse_newer(current);
  if (current == known) return;
  // A step that rebuilds a table renames the old one away; with foreign keys
  // enforced SQLite would point other tables' references at the old name.
  // They are checked as a whole before the steps commit instead. (The pragma
  // is a no-op inside a transaction, hence here.)
  const bool enforced = [&] {
    auto s = db.prepare("PRAGMA foreign_keys");
    return s.step() && s.column_int(0) != 0;
  }();
  if (enforced) db.exec("PRAGMA foreign_keys = OFF");
  try {
    // Re-read inside the write transaction: two processes opening an old
    // catalog at once must not both apply a step.
    sqlite::Transaction tx(db);
    current = user_version(db);
    refuse_newer(current);
    for (int i = current; i < known; ++i) {
      const Migration& step = steps[static_cast<std::size_t>(i)];
      try {
        db.exec(step.sql);
      } catch (const Error& e) {
        throw CatalogError("catalog " + path + ": migration " + std::to_string(i + 1) + " (" +
                           step.description + ") failed: " + e.what());
      }
    }
    if (db.prepare("PRAGMA foreign_key_check").step()) {
      throw CatalogError("catalog " + path +
                         ": the schema upgrade would break references "
                         "between rows; nothing was changed");
    }
    db.exec("PRAGMA user_version = " + std::to_string(known));
    tx.commit();
  } catch (...) {
    if (enforced) db.exec("PRAGMA foreign_keys = ON");
    throw;
  }
  if (enforced) db.exec("PRAGMA foreign_keys = ON");
}

std::optional<RunKind> parse_run_kind(std::string_view text) {
  return kRunKinds.parse(text);
}

std::optional<VersionKind> parse_version_kind(std::string_view text) {
  return kVersionKinds.parse(text);
}

std::optional<TapeState> parse_tape_state(std::string_view text) {
  return kTapeStates.parse(text);
}

std::optional<VerifyResult> parse_verify_result(std::string_view text) {
  return kVerifyResults.parse(text);
}

std::string random_catalog_id() {
  std::uint8_t bytes[16];
  std::size_t got = 0;
  while (got < sizeof bytes) {
    ssize_t n = getrandom(bytes + got, sizeof bytes - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("getrandom");
    }
    got += static_cast<std::size_t>(n);
  }
  return to_hex(bytes);
}

}  // namespace mixtape::catalog::internal

namespace mixtape::catalog {

const char* to_string(RunKind kind) {
  return internal::kRunKinds.name(kind);
}

const char* to_string(VersionKind kind) {
  return internal::kVersionKinds.name(kind);
}

const char* to_string(TapeState state) {
  return internal::kTapeStates.name(state);
}

const char* to_string(VerifyResult result) {
  return internal::kVerifyResults.name(result);
}

}  // namespace mixtape::catalog
