// Statement cache and the readers that turn result rows into row structs.
#include <sys/stat.h>

#include <algorithm>
#include <limits>
#include <stdexcept>

#include "engine/catalog/internal.h"

namespace mixtape::catalog {

StatementCache::Lease::~Lease() {
  if (!entry_) return;
  // Reset releases the statement's read snapshot; bindings are cleared so a
  // later use cannot silently inherit a stale parameter.
  entry_->stmt.reset();
  entry_->stmt.clear_bindings();
  entry_->leased = false;
}

StatementCache::Lease StatementCache::get(std::string_view sql) {
  auto it = entries_.find(sql);
  if (it == entries_.end()) {
    auto entry = std::make_unique<CachedStatement>(CachedStatement{db_.prepare(sql), false});
    it = entries_.emplace(sql, std::move(entry)).first;
  }
  CachedStatement* entry = it->second.get();
  if (entry->leased) {
    throw std::logic_error("catalog statement used re-entrantly: " +
                           std::string(sql.substr(0, 80)));
  }
  entry->leased = true;
  return Lease(entry);
}

namespace internal {

sqlite::Statement& bind_id(sqlite::Statement& s, int index, Id id) {
  return id ? s.bind(index, id) : s.bind_null(index);
}

sqlite::Statement& bind_attributes(sqlite::Statement& s, int first, const Attributes& a) {
  return s.bind(first, a.mode)
      .bind(first + 1, a.uid)
      .bind(first + 2, a.gid)
      .bind(first + 3, a.uname)
      .bind(first + 4, a.gname)
      .bind(first + 5, a.mtime_ns);
}

sqlite::Statement& bind_tape_insert(sqlite::Statement& s, Id id, const TapeRow& t) {
  bind_id(s, 1, id)
      .bind(2, t.serial)
      .bind(3, t.capacity)
      .bind(4, t.record_size)
      .bind(5, t.encrypted ? 1 : 0)
      .bind(6, to_string(t.state))
      .bind(7, t.bytes_used)
      .bind(8, t.append_file)
      .bind(9, t.append_block)
      .bind(10, t.labelled_at_ns);
  bind_id(s, 11, t.written_at_ns);
  return t.foreign_id.empty() ? s.bind_null(12) : s.bind(12, t.foreign_id);
}

sqlite::Statement& bind_tape_update(sqlite::Statement& s, const TapeRow& t) {
  s.bind(1, t.id)
      .bind(2, t.capacity)
      .bind(3, to_string(t.state))
      .bind(4, t.bytes_used)
      .bind(5, t.append_file)
      .bind(6, t.append_block);
  return bind_id(s, 7, t.written_at_ns);
}

namespace {

Id optional_id(const sqlite::Statement& s, int column) {
  return s.is_null(column) ? 0 : s.column_int(column);
}

Hash read_hash(const sqlite::Statement& s, int column) {
  Hash hash{};
  Bytes blob = s.column_blob(column);
  std::copy_n(blob.begin(), std::min(blob.size(), hash.size()), hash.begin());
  return hash;
}

Attributes read_attributes(const sqlite::Statement& s, int mode_column, int mtime_column) {
  Attributes a;
  a.mode = static_cast<std::uint32_t>(s.column_int(mode_column));
  a.uid = static_cast<std::uint32_t>(s.column_int(mode_column + 1));
  a.gid = static_cast<std::uint32_t>(s.column_int(mode_column + 2));
  a.uname = s.column_text(mode_column + 3);
  a.gname = s.column_text(mode_column + 4);
  a.mtime_ns = s.column_int(mtime_column);
  return a;
}

}  // namespace

DirRow read_dir(const sqlite::Statement& s, int first) {
  DirRow d;
  d.id = s.column_int(first);
  d.parent = optional_id(s, first + 1);
  d.name = s.column_text(first + 2);
  d.path = s.column_text(first + 3);
  d.attrs = read_attributes(s, first + 4, first + 9);
  d.first_seen_run = optional_id(s, first + 10);
  d.last_seen_run = optional_id(s, first + 11);
  return d;
}

VersionRow read_version(const sqlite::Statement& s, int first) {
  VersionRow v;
  v.id = s.column_int(first);
  v.file_id = s.column_int(first + 1);
  v.kind = parse_version_kind(s.column_text(first + 2)).value_or(VersionKind::kFile);
  v.size = static_cast<std::uint64_t>(s.column_int(first + 3));
  v.hash = read_hash(s, first + 4);
  v.attrs = read_attributes(s, first + 6, first + 5);
  v.symlink_target = s.column_text(first + 11);
  v.first_seen_run = s.column_int(first + 12);
  v.last_seen_run = optional_id(s, first + 13);
  v.copies = static_cast<int>(s.column_int(first + 14));
  v.goal = static_cast<int>(s.column_int(first + 15));
  return v;
}

TapeRow read_tape(const sqlite::Statement& s, int first) {
  TapeRow t;
  t.id = s.column_int(first);
  t.serial = s.column_text(first + 1);
  t.capacity = static_cast<std::uint64_t>(s.column_int(first + 2));
  t.record_size = static_cast<std::uint64_t>(s.column_int(first + 3));
  t.encrypted = s.column_int(first + 4) != 0;
  t.state = parse_tape_state(s.column_text(first + 5)).value_or(TapeState::kLabelled);
  t.bytes_used = static_cast<std::uint64_t>(s.column_int(first + 6));
  t.append_file = s.column_int(first + 7);
  if (!s.is_null(first + 8)) t.append_block = static_cast<std::uint64_t>(s.column_int(first + 8));
  t.labelled_at_ns = s.column_int(first + 9);
  t.written_at_ns = optional_id(s, first + 10);
  if (!s.is_null(first + 11)) t.foreign_id = s.column_text(first + 11);
  t.location = s.column_text(first + 12);
  if (!s.is_null(first + 13)) t.retired_reason = s.column_text(first + 13);
  t.retired_at_ns = optional_id(s, first + 14);
  return t;
}

ArchiveRow read_archive(const sqlite::Statement& s, int first) {
  ArchiveRow a;
  a.id = s.column_int(first);
  a.tape_id = s.column_int(first + 1);
  a.index_file = s.column_int(first + 2);
  a.index_block = static_cast<std::uint64_t>(s.column_int(first + 3));
  a.archive_file = s.column_int(first + 4);
  a.first_block = static_cast<std::uint64_t>(s.column_int(first + 5));
  a.encrypted = s.column_int(first + 6) != 0;
  a.age_header_len = static_cast<std::uint64_t>(s.column_int(first + 7));
  a.cipher_bytes = static_cast<std::uint64_t>(s.column_int(first + 8));
  a.plain_bytes = static_cast<std::uint64_t>(s.column_int(first + 9));
  a.members = static_cast<std::uint64_t>(s.column_int(first + 10));
  a.written_at_ns = s.column_int(first + 11);
  a.run_id = optional_id(s, first + 12);
  if (!s.is_null(first + 13)) a.foreign_format = s.column_text(first + 13);
  if (!s.is_null(first + 14)) a.record_size = static_cast<std::uint64_t>(s.column_int(first + 14));
  return a;
}

CopyRow read_copy(const sqlite::Statement& s, int first) {
  CopyRow c;
  c.id = s.column_int(first);
  c.archive_id = s.column_int(first + 1);
  c.version_id = s.column_int(first + 2);
  c.header_offset = static_cast<std::uint64_t>(s.column_int(first + 3));
  c.data_offset = static_cast<std::uint64_t>(s.column_int(first + 4));
  return c;
}

VersionRow normalised_version(const VersionRow& version) {
  VersionRow v = version;
  const std::uint32_t type = v.kind == VersionKind::kFile ? S_IFREG : S_IFLNK;
  if ((v.attrs.mode & S_IFMT) == 0) v.attrs.mode |= type;
  if ((v.attrs.mode & S_IFMT) != type) {
    throw CatalogError(std::string("version of kind ") + to_string(v.kind) + " has mode " +
                       std::to_string(v.attrs.mode) + " of another file type");
  }
  if (v.size > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    throw CatalogError("version size " + std::to_string(v.size) + " is out of range");
  }
  if (v.kind == VersionKind::kSymlink) {
    if (v.symlink_target.empty() || v.symlink_target.find('\0') != std::string::npos) {
      throw CatalogError("symlink version with an invalid target " + quote(v.symlink_target));
    }
    // A symlink's content is its target: size and hash follow from it, so
    // two scans of the same link always give the same version.
    v.size = v.symlink_target.size();
    v.hash = crypto::blake2b256(as_bytes(v.symlink_target));
  } else if (!v.symlink_target.empty()) {
    throw CatalogError("regular file version with a symlink target");
  }
  return v;
}

CopyWithVersion read_copy_with_version(const sqlite::Statement& s) {
  CopyWithVersion c;
  c.copy = read_copy(s, 0);
  c.archive_file = s.column_int(kCopyColumns);
  c.version = read_version(s, kCopyColumns + 1);
  c.path = join_path(s.column_text(kCopyColumns + 1 + kVersionColumns),
                     s.column_text(kCopyColumns + 2 + kVersionColumns));
  return c;
}

bool same_content(const VersionRow& a, const VersionRow& b) {
  return a.kind == b.kind && a.size == b.size && a.hash == b.hash && a.attrs == b.attrs &&
         a.symlink_target == b.symlink_target;
}

}  // namespace internal
}  // namespace mixtape::catalog
