#include "fs/tree.h"

#include <cerrno>
#include <chrono>
#include <ctime>

#include "engine/format/format.h"

namespace mixtape::fs {
namespace {

constexpr Ino kRootIno = 1;

// "2026-11-21T101500Z": sortable, and free of ':' for tools that dislike it.
std::string compact_utc(std::int64_t ns) {
  std::time_t seconds = static_cast<std::time_t>(ns / 1000000000);
  if (ns < 0 && ns % 1000000000) --seconds;
  std::tm tm{};
  ::gmtime_r(&seconds, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H%M%SZ", &tm);
  return buf;
}

std::string extension_of(const std::string& name) {
  auto dot = name.rfind('.');
  if (dot == std::string::npos || dot == 0) return {};
  return name.substr(dot);
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() > suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The tape block holding the first byte of a copy's data.
std::uint64_t member_block(const catalog::LocatedCopy& r) {
  if (r.archive.is_foreign()) {
    // engine/foreign: only a "tar" of one record size is found by
    // arithmetic; the others are read from their first block.
    const std::uint64_t record = r.archive.record_size ? r.archive.record_size : r.tape.record_size;
    return r.archive.foreign_format == "tar" && record
               ? r.archive.first_block + r.copy.data_offset / record
               : r.archive.first_block;
  }
  format::ArchiveGeometry geometry;
  geometry.first_block = r.archive.first_block;
  geometry.record_size = r.tape.record_size;
  geometry.encrypted = r.archive.encrypted;
  geometry.age_header_length = r.archive.age_header_len;
  return format::locate(geometry, r.copy.data_offset).block;
}

constexpr std::string_view kVersionsSuffix = ".versions";
constexpr std::string_view kReplicasSuffix = ".replicas";

// A catalog directory's entry cookies: the entry's row, bit 40 telling a
// directory row from a file row (both ids are at least 1, so never 0), bit
// 41 marking the directory's last entry, so the readdir call that only
// confirms the end (one per directory) runs no query.
constexpr std::uint64_t kDirCookie = 1ULL << 40;
constexpr std::uint64_t kEndCookie = 1ULL << 41;

}  // namespace

Ino encode(const Node& node) {
  if (node.kind == NodeKind::kRoot) return kRootIno;
  return static_cast<Ino>(node.kind) << 59 | static_cast<Ino>(node.view & ((1u << 19) - 1)) << 40 |
         (node.id & kIdMask);
}

Node decode(Ino ino) {
  if (ino == kRootIno) return {};
  Node node;
  node.kind = static_cast<NodeKind>(ino >> 59);
  node.view = static_cast<std::uint32_t>((ino >> 40) & ((1u << 19) - 1));
  node.id = ino & kIdMask;
  if (node.kind == NodeKind::kRoot || node.kind > NodeKind::kRecallFile)
    throw FsError(ENOENT, "no such inode");
  return node;
}

Tree::Tree(std::string catalog_path, bool tape_at_root)
    : catalog_path_(std::move(catalog_path)),
      mount_time_ns_(now_ns()),
      tape_at_root_(tape_at_root) {
  // Fail now, not at the first request, if it cannot be opened.
  idle_.push_back(
      std::make_unique<catalog::Catalog>(catalog::Catalog::open_read_only(catalog_path_)));
}

Tree::Lease Tree::borrow() {
  std::unique_ptr<catalog::Reader> connection;
  {
    std::lock_guard lock(mutex_);
    if (!idle_.empty()) {
      connection = std::move(idle_.back());
      idle_.pop_back();
    }
  }
  if (!connection)
    connection =
        std::make_unique<catalog::Catalog>(catalog::Catalog::open_read_only(catalog_path_));
  return Lease(*this, std::move(connection));
}

Tree::Lease::~Lease() {
  std::lock_guard lock(tree_.mutex_);
  tree_.idle_.push_back(std::move(connection_));
}

catalog::Reader& Tree::catalog() {
  std::lock_guard lock(mutex_);
  auto& slot = connections_[std::this_thread::get_id()];
  if (!slot)
    slot = std::make_unique<catalog::Catalog>(catalog::Catalog::open_read_only(catalog_path_));
  return *slot;
}

std::uint32_t Tree::view_for_run(catalog::Id run) const {
  return static_cast<std::uint32_t>(1 + run);
}
std::uint32_t Tree::view_for_tape(catalog::Id tape) const {
  return kTapeViewBase + static_cast<std::uint32_t>(tape);
}

catalog::View Tree::view_of(std::uint32_t view) {
  if (view == 0) return catalog::View::latest();
  if (view >= kTapeViewBase) return catalog::View::tape(view - kTapeViewBase);
  return catalog::View::snapshot(view - 1);
}

Attr Tree::synthetic_dir(Ino ino) {
  Attr attr;
  attr.ino = ino;
  attr.mode = S_IFDIR | 0555;
  attr.nlink = 2;
  attr.mtime_ns = mount_time_ns_;
  return attr;
}

Attr Tree::dir_attr(Ino ino, const catalog::DirRow& dir) {
  Attr attr;
  attr.ino = ino;
  attr.mode = S_IFDIR | (dir.attrs.mode & 07777);
  attr.nlink = 2;
  attr.uid = dir.attrs.uid;
  attr.gid = dir.attrs.gid;
  attr.mtime_ns = dir.attrs.mtime_ns;
  return attr;
}

Attr Tree::file_attr(Ino ino, const catalog::VersionRow& version) {
  Attr attr;
  attr.ino = ino;
  bool link = version.kind == catalog::VersionKind::kSymlink;
  attr.mode = (link ? S_IFLNK : S_IFREG) | (version.attrs.mode & 07777);
  attr.uid = version.attrs.uid;
  attr.gid = version.attrs.gid;
  attr.size = link ? version.symlink_target.size() : version.size;
  attr.mtime_ns = version.attrs.mtime_ns;
  return attr;
}

catalog::Id Tree::dir_of_node(const Node& node) {
  switch (node.kind) {
    case NodeKind::kLatestRoot:
    case NodeKind::kSnapshotRoot:
    case NodeKind::kTapeRoot:
      return catalog::kRootDirId;
    case NodeKind::kDir:
      return static_cast<catalog::Id>(node.id);
    default:
      return 0;
  }
}

std::uint32_t view_of_root(const Node& node) {
  if (node.kind == NodeKind::kSnapshotRoot) return static_cast<std::uint32_t>(1 + node.id);
  if (node.kind == NodeKind::kTapeRoot) return kTapeViewBase + static_cast<std::uint32_t>(node.id);
  return node.view;
}

std::optional<catalog::Entry> Tree::file_entry(catalog::Reader& cat, const Node& node) {
  auto file = cat.file(static_cast<catalog::Id>(node.id));
  if (!file) return std::nullopt;
  auto entry = cat.lookup(file->dir, file->name, view_of(node.view));
  if (!entry || entry->is_dir) return std::nullopt;
  return entry;
}

std::string Tree::snapshot_name(const catalog::RunRow& run) {
  return compact_utc(run.started_at_ns) + "_" + std::to_string(run.id);
}

std::string Tree::version_name(const catalog::FileRow& file, const catalog::VersionRow& v, int n) {
  char number[16];
  std::snprintf(number, sizeof number, "%04d_", n);
  return number + compact_utc(v.attrs.mtime_ns) + extension_of(file.name);
}

Attr Tree::getattr(Ino ino) {
  auto connection = borrow();
  return attr_of(*connection, ino);
}

Attr Tree::attr_of(catalog::Reader& cat, Ino ino) {
  Node node = decode(ino);
  switch (node.kind) {
    case NodeKind::kRoot:
    case NodeKind::kLatestRoot:
    case NodeKind::kSnapshotsRoot:
    case NodeKind::kTapesRoot:
    case NodeKind::kControlDir:
    case NodeKind::kVersionsDir:
    case NodeKind::kReplicasDir:
      return synthetic_dir(ino);
    case NodeKind::kSnapshotRoot: {
      auto run = cat.run(static_cast<catalog::Id>(node.id));
      if (!run) throw FsError(ENOENT, "no such snapshot");
      Attr attr = synthetic_dir(ino);
      attr.mtime_ns = run->started_at_ns;
      return attr;
    }
    case NodeKind::kTapeRoot: {
      auto tape = cat.tape(static_cast<catalog::Id>(node.id));
      if (!tape) throw FsError(ENOENT, "no such tape");
      Attr attr = synthetic_dir(ino);
      attr.mtime_ns = tape->written_at_ns ? tape->written_at_ns : tape->labelled_at_ns;
      return attr;
    }
    case NodeKind::kSnapshotsLatest: {
      Attr attr;
      attr.ino = ino;
      attr.mode = S_IFLNK | 0777;
      attr.size = link_target(cat, ino).size();
      attr.mtime_ns = mount_time_ns_;
      return attr;
    }
    case NodeKind::kDir: {
      auto dir = cat.dir(static_cast<catalog::Id>(node.id));
      if (!dir) throw FsError(ENOENT, "no such directory");
      return dir_attr(ino, *dir);
    }
    case NodeKind::kFile: {
      auto entry = file_entry(cat, node);
      if (!entry) throw FsError(ENOENT, "no such file");
      return file_attr(ino, entry->version);
    }
    case NodeKind::kVersion:
    case NodeKind::kReplica: {
      auto version = cat.version(static_cast<catalog::Id>(node.id));
      if (!version) throw FsError(ENOENT, "no such version");
      return file_attr(ino, *version);
    }
    case NodeKind::kStatusFile:
    case NodeKind::kStatsFile: {
      Attr attr;
      attr.ino = ino;
      attr.mode = S_IFREG | 0444;
      attr.mtime_ns = now_ns();
      return attr;
    }
    case NodeKind::kRecallFile: {
      Attr attr;
      attr.ino = ino;
      attr.mode = S_IFREG | 0644;
      attr.mtime_ns = mount_time_ns_;
      return attr;
    }
  }
  throw FsError(ENOENT, "no such inode");
}

std::vector<DirEntry> Tree::special_children(catalog::Reader& cat, const Node& node) {
  std::vector<DirEntry> out;
  auto add = [&](std::string name, Node child) {
    Ino ino = encode(child);
    out.push_back({std::move(name), attr_of(cat, ino)});
  };
  switch (node.kind) {
    case NodeKind::kRoot:
      add(".mixtape", {NodeKind::kControlDir, 0, 0});
      if (tape_at_root_) {
        // A foreign tape: its files, few (one entry per tape file).
        for (auto& e : cat.list_dir(catalog::kRootDirId, catalog::View::latest(), {}, 1 << 20)) {
          Node child = e.is_dir ? Node{NodeKind::kDir, 0, static_cast<std::uint64_t>(e.dir.id)}
                                : Node{NodeKind::kFile, 0, static_cast<std::uint64_t>(e.file_id)};
          Ino ino = encode(child);
          out.push_back({e.name, e.is_dir ? dir_attr(ino, e.dir) : file_attr(ino, e.version)});
        }
        break;
      }
      add("latest", {NodeKind::kLatestRoot, 0, 0});
      add("snapshots", {NodeKind::kSnapshotsRoot, 0, 0});
      add("tapes", {NodeKind::kTapesRoot, 0, 0});
      break;
    case NodeKind::kControlDir:
      add("recall", {NodeKind::kRecallFile, 0, 0});
      add("stats", {NodeKind::kStatsFile, 0, 0});
      add("status", {NodeKind::kStatusFile, 0, 0});
      break;
    case NodeKind::kSnapshotsRoot: {
      bool any = false;
      for (const auto& run : cat.runs()) {
        if (run.kind != catalog::RunKind::kBackup) continue;
        add(snapshot_name(run), {NodeKind::kSnapshotRoot, 0, static_cast<std::uint64_t>(run.id)});
        any = true;
      }
      if (any) add("latest", {NodeKind::kSnapshotsLatest, 0, 0});
      break;
    }
    case NodeKind::kTapesRoot:
      for (const auto& tape : cat.tapes())
        add(tape.serial, {NodeKind::kTapeRoot, 0, static_cast<std::uint64_t>(tape.id)});
      break;
    default:
      break;
  }
  return out;
}

std::vector<DirEntry> Tree::version_entries(catalog::Reader& cat, const Node& node) {
  auto file = cat.file(static_cast<catalog::Id>(node.id));
  if (!file) throw FsError(ENOENT, "no such file");
  std::vector<DirEntry> out;
  int n = 0;
  for (const auto& v : cat.versions_of(file->id)) {
    Ino ino = encode({NodeKind::kVersion, node.view, static_cast<std::uint64_t>(v.id)});
    out.push_back({version_name(*file, v, ++n), file_attr(ino, v)});
  }
  return out;
}

std::vector<DirEntry> Tree::replica_entries(catalog::Reader& cat, const Node& node) {
  auto entry = file_entry(cat, {NodeKind::kFile, node.view, node.id});
  if (!entry) throw FsError(ENOENT, "no such file");
  std::vector<DirEntry> out;
  for (const auto& r : cat.copies_of(entry->version.id)) {
    Ino ino = encode({NodeKind::kReplica, view_for_tape(r.tape.id),
                      static_cast<std::uint64_t>(entry->version.id)});
    out.push_back({r.tape.serial, file_attr(ino, entry->version)});
  }
  return out;
}

std::optional<DirEntry> Tree::lookup(Ino parent, const std::string& name) {
  Node node = decode(parent);
  if (name == "." || name == "..") return std::nullopt;
  auto connection = borrow();
  catalog::Reader& cat = *connection;
  catalog::Id dir_id = dir_of_node(node);
  if (dir_id != 0) {
    std::uint32_t view = view_of_root(node);
    auto entry = cat.lookup(dir_id, name, view_of(view));
    if (entry) {
      Node child = entry->is_dir
                       ? Node{NodeKind::kDir, view, static_cast<std::uint64_t>(entry->dir.id)}
                       : Node{NodeKind::kFile, view, static_cast<std::uint64_t>(entry->file_id)};
      Ino ino = encode(child);
      return DirEntry{name,
                      entry->is_dir ? dir_attr(ino, entry->dir) : file_attr(ino, entry->version)};
    }
    for (auto [suffix, kind] : {std::pair{kVersionsSuffix, NodeKind::kVersionsDir},
                                std::pair{kReplicasSuffix, NodeKind::kReplicasDir}}) {
      if (!ends_with(name, suffix)) continue;
      auto base = cat.lookup(dir_id, name.substr(0, name.size() - suffix.size()), view_of(view));
      if (!base || base->is_dir) continue;
      Ino ino = encode({kind, view, static_cast<std::uint64_t>(base->file_id)});
      return DirEntry{name, synthetic_dir(ino)};
    }
    return std::nullopt;
  }
  for (auto& child : small_dir_children(cat, node))
    if (child.name == name) return child;
  return std::nullopt;
}

std::vector<DirEntry> Tree::small_dir_children(catalog::Reader& cat, const Node& node) {
  switch (node.kind) {
    case NodeKind::kVersionsDir:
      return version_entries(cat, node);
    case NodeKind::kReplicasDir:
      return replica_entries(cat, node);
    case NodeKind::kRoot:
    case NodeKind::kControlDir:
    case NodeKind::kSnapshotsRoot:
    case NodeKind::kTapesRoot:
      return special_children(cat, node);
    default:
      throw FsError(ENOTDIR, "not a directory");
  }
}

std::string Tree::resume_after(catalog::Reader& cat, catalog::Id dir_id, std::uint64_t cookie) {
  const auto id = static_cast<catalog::Id>(cookie & kIdMask);
  if (cookie >> 40 == 1) {
    auto dir = cat.dir(id);
    if (dir && dir->parent == dir_id) return dir->name;
  } else if (cookie >> 40 == 0) {
    auto file = cat.file(id);
    if (file && file->dir == dir_id) return file->name;
  }
  throw FsError(EINVAL, "directory offset " + std::to_string(cookie) + " is not of directory " +
                            std::to_string(dir_id));
}

void Tree::list(Ino dir, std::uint64_t cookie,
                const std::function<bool(const DirEntry&, std::uint64_t)>& fn) {
  Node node = decode(dir);
  catalog::Id dir_id = dir_of_node(node);
  // The call that only confirms the end: one per directory, no query.
  if (dir_id != 0 && (cookie & kEndCookie)) return;
  auto connection = borrow();
  catalog::Reader& cat = *connection;
  if (dir_id == 0) {
    // Few entries, computed whole: the cookie is an index.
    std::vector<DirEntry> children = small_dir_children(cat, node);
    for (std::uint64_t i = cookie; i < children.size(); ++i)
      if (!fn(children[i], i + 1)) return;
    return;
  }
  std::uint32_t view = view_of_root(node);
  std::string after = cookie == 0 ? std::string() : resume_after(cat, dir_id, cookie);
  // A readdir reply holds a few thousand entries at most; pages of 256 keep
  // each query short without many of them per reply.
  constexpr std::size_t kPage = 256;
  for (;;) {
    auto page = cat.list_dir(dir_id, view_of(view), after, kPage);
    const bool last_page = page.size() < kPage;  // list_dir: short means the end
    if (!last_page) after = page.back().name;
    for (std::size_t i = 0; i < page.size(); ++i) {
      auto& e = page[i];
      Node child = e.is_dir ? Node{NodeKind::kDir, view, static_cast<std::uint64_t>(e.dir.id)}
                            : Node{NodeKind::kFile, view, static_cast<std::uint64_t>(e.file_id)};
      Ino ino = encode(child);
      DirEntry entry{std::move(e.name),
                     e.is_dir ? dir_attr(ino, e.dir) : file_attr(ino, e.version)};
      std::uint64_t next = e.is_dir ? kDirCookie | static_cast<std::uint64_t>(e.dir.id)
                                    : static_cast<std::uint64_t>(e.file_id);
      if (last_page && i + 1 == page.size()) next |= kEndCookie;
      if (!fn(entry, next)) return;
    }
    if (last_page) return;
  }
}

std::string Tree::readlink(Ino ino) {
  auto connection = borrow();
  return link_target(*connection, ino);
}

std::string Tree::link_target(catalog::Reader& cat, Ino ino) {
  Node node = decode(ino);
  if (node.kind == NodeKind::kSnapshotsLatest) {
    std::optional<catalog::RunRow> newest;
    for (const auto& run : cat.runs())
      if (run.kind == catalog::RunKind::kBackup) newest = run;
    if (!newest) throw FsError(ENOENT, "no snapshot yet");
    return snapshot_name(*newest);
  }
  std::optional<catalog::VersionRow> version;
  if (node.kind == NodeKind::kFile) {
    if (auto entry = file_entry(cat, node)) version = entry->version;
  } else if (node.kind == NodeKind::kVersion || node.kind == NodeKind::kReplica) {
    version = cat.version(static_cast<catalog::Id>(node.id));
  }
  if (!version || version->kind != catalog::VersionKind::kSymlink)
    throw FsError(EINVAL, "not a symlink");
  return version->symlink_target;
}

Content Tree::content(Ino ino) {
  Node node = decode(ino);
  auto connection = borrow();
  catalog::Reader& cat = *connection;
  Content out;
  switch (node.kind) {
    case NodeKind::kFile: {
      auto entry = file_entry(cat, node);
      if (!entry) throw FsError(ENOENT, "no such file");
      out.version = entry->version;
      out.path = cat.file_path(entry->file_id);
      if (node.view >= kTapeViewBase) out.tape_id = node.view - kTapeViewBase;
      break;
    }
    case NodeKind::kVersion:
    case NodeKind::kReplica: {
      auto version = cat.version(static_cast<catalog::Id>(node.id));
      if (!version) throw FsError(ENOENT, "no such version");
      out.version = *version;
      out.path = cat.file_path(version->file_id);
      if (node.kind == NodeKind::kReplica) out.tape_id = node.view - kTapeViewBase;
      break;
    }
    default:
      throw FsError(EISDIR, "not a regular file");
  }
  if (out.version.kind != catalog::VersionKind::kFile) throw FsError(EINVAL, "a symlink");
  return out;
}

std::map<std::string, std::string> Tree::xattrs(Ino ino, const std::string& state) {
  Node node = decode(ino);
  if (node.kind != NodeKind::kFile && node.kind != NodeKind::kVersion &&
      node.kind != NodeKind::kReplica)
    return {};
  auto connection = borrow();
  catalog::Reader& cat = *connection;
  std::optional<catalog::VersionRow> version;
  if (node.kind == NodeKind::kFile) {
    if (auto entry = file_entry(cat, node)) version = entry->version;
  } else {
    version = cat.version(static_cast<catalog::Id>(node.id));
  }
  if (!version) throw FsError(ENOENT, "no such file");
  std::map<std::string, std::string> out;
  out["user.mixtape.hash"] = to_hex(version->hash);
  out["user.mixtape.versions"] = std::to_string(cat.versions_of(version->file_id).size());
  std::string replicas;
  for (const auto& r : cat.copies_of(version->id)) {
    if (!replicas.empty()) replicas += ' ';
    replicas += r.tape.serial + ":" + std::to_string(r.archive.archive_file) + ":" +
                std::to_string(member_block(r));
  }
  out["user.mixtape.replicas"] = replicas;
  if (!state.empty()) out["user.mixtape.state"] = state;
  return out;
}

}  // namespace mixtape::fs
