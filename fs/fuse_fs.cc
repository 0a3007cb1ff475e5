#define FUSE_USE_VERSION 314
#include "fs/fuse_fs.h"

#include <fuse_lowlevel.h>
#include <sys/statvfs.h>

#include <cerrno>
#include <cstring>
#include <mutex>

namespace mixtape::fs {
namespace {

struct Session {
  Tree& tree;
  ContentSource& content;
  ControlFiles& control;
  MountOptions options;
};

Session& session_of(fuse_req_t req) {
  return *static_cast<Session*>(fuse_req_userdata(req));
}

struct stat to_stat(const Attr& attr) {
  struct stat st {};
  st.st_ino = attr.ino;
  st.st_mode = attr.mode;
  st.st_nlink = attr.nlink;
  st.st_uid = attr.uid;
  st.st_gid = attr.gid;
  st.st_size = static_cast<off_t>(attr.size);
  st.st_blksize = 1 << 20;
  st.st_blocks = static_cast<blkcnt_t>((attr.size + 511) / 512);
  st.st_mtim.tv_sec = attr.mtime_ns / 1000000000;
  st.st_mtim.tv_nsec = attr.mtime_ns % 1000000000;
  if (st.st_mtim.tv_nsec < 0) {
    st.st_mtim.tv_nsec += 1000000000;
    st.st_mtim.tv_sec -= 1;
  }
  st.st_atim = st.st_ctim = st.st_mtim;
  return st;
}

int error_of(const std::exception& e) {
  if (auto* fs = dynamic_cast<const FsError*>(&e)) return fs->error();
  if (auto* sys = dynamic_cast<const SystemError*>(&e)) return sys->code();
  return EIO;
}

// Runs work; any exception becomes an error reply.
template <typename Work>
void guarded(fuse_req_t req, Work work) {
  try {
    work();
  } catch (const std::exception& e) {
    fuse_reply_err(req, error_of(e));
  }
}

fuse_entry_param entry_of(Session& s, const Attr& attr) {
  fuse_entry_param e{};
  e.ino = attr.ino;
  e.attr = to_stat(attr);
  e.attr_timeout = s.options.timeout_seconds;
  e.entry_timeout = s.options.timeout_seconds;
  return e;
}

// Generated files (.mixtape/status, stats) are rendered at open and served
// from the handle; recall collects what is written and queues it at release.
struct Handle {
  std::unique_ptr<OpenContent> content;
  std::string text;
  std::string written;
  bool recall = false;
};

Handle* handle_of(fuse_file_info* fi) {
  return reinterpret_cast<Handle*>(fi->fh);
}

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Session& s = session_of(req);
  guarded(req, [&] {
    auto entry = s.tree.lookup(parent, name);
    if (!entry) {
      // A zero-inode reply is a cached negative lookup (for entry_timeout).
      fuse_entry_param negative{};
      negative.entry_timeout = s.options.timeout_seconds;
      fuse_reply_entry(req, &negative);
      return;
    }
    fuse_entry_param e = entry_of(s, entry->attr);
    fuse_reply_entry(req, &e);
  });
}

void op_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  Session& s = session_of(req);
  guarded(req, [&] {
    struct stat st = to_stat(s.tree.getattr(ino));
    fuse_reply_attr(req, &st, s.options.timeout_seconds);
  });
}

void op_readlink(fuse_req_t req, fuse_ino_t ino) {
  Session& s = session_of(req);
  guarded(req, [&] { fuse_reply_readlink(req, s.tree.readlink(ino).c_str()); });
}

void reply_dir(fuse_req_t req, fuse_ino_t ino, std::size_t size, off_t offset, bool plus,
               fuse_file_info* fi) {
  Session& s = session_of(req);
  auto* cursor = reinterpret_cast<Tree::ListCursor*>(fi->fh);
  guarded(req, [&] {
    std::vector<char> buffer(size);
    std::size_t used = 0;
    s.tree.list(
        ino, static_cast<std::uint64_t>(offset),
        [&](const DirEntry& e, std::uint64_t next) {
          std::size_t need;
          if (plus) {
            fuse_entry_param param = entry_of(s, e.attr);
            need = fuse_add_direntry_plus(req, buffer.data() + used, size - used, e.name.c_str(),
                                          &param, static_cast<off_t>(next));
          } else {
            struct stat st = to_stat(e.attr);
            need = fuse_add_direntry(req, buffer.data() + used, size - used, e.name.c_str(), &st,
                                     static_cast<off_t>(next));
          }
          // An entry that did not fit is not counted: with readdirplus the kernel
          // takes a lookup reference only for the entries it received.
          if (need > size - used) return false;
          used += need;
          return true;
        },
        cursor);
    fuse_reply_buf(req, buffer.data(), used);
  });
}

void op_opendir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  auto cursor = std::make_unique<Tree::ListCursor>();
  fi->fh = reinterpret_cast<std::uint64_t>(cursor.get());
  fi->cache_readdir = 1;  // listings never change under a mount
  if (fuse_reply_open(req, fi) == 0) cursor.release();
}

void op_releasedir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  std::unique_ptr<Tree::ListCursor> cursor(reinterpret_cast<Tree::ListCursor*>(fi->fh));
  fuse_reply_err(req, 0);
}

void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  reply_dir(req, ino, size, off, false, fi);
}

void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  reply_dir(req, ino, size, off, true, fi);
}

void op_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Session& s = session_of(req);
  guarded(req, [&] {
    Node node = decode(ino);
    auto handle = std::make_unique<Handle>();
    bool writing = (fi->flags & O_ACCMODE) != O_RDONLY;
    if (node.kind == NodeKind::kRecallFile) {
      handle->recall = true;
      fi->direct_io = 1;
    } else if (writing) {
      throw FsError(EROFS, "read-only file system");
    } else if (node.kind == NodeKind::kStatusFile) {
      handle->text = s.control.status();
      fi->direct_io = 1;
    } else if (node.kind == NodeKind::kStatsFile) {
      handle->text = s.control.stats_json();
      fi->direct_io = 1;
    } else {
      handle->content = s.content.open(s.tree.content(ino));
      fi->keep_cache = 1;  // the bytes of a version never change
    }
    fi->fh = reinterpret_cast<std::uint64_t>(handle.release());
    if (fuse_reply_open(req, fi) == -ENOENT) {
      // The request was interrupted: nobody will release this handle.
      std::unique_ptr<Handle> drop(handle_of(fi));
    }
  });
}

void op_read(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  guarded(req, [&] {
    Handle* h = handle_of(fi);
    if (h->content) {
      // Not zero-filled: every byte replied is one the reader wrote.
      auto buffer = std::make_unique_for_overwrite<std::uint8_t[]>(size);
      std::size_t n = h->content->read(static_cast<std::uint64_t>(off), {buffer.get(), size});
      fuse_reply_buf(req, reinterpret_cast<const char*>(buffer.get()), n);
      return;
    }
    std::size_t begin = std::min<std::size_t>(static_cast<std::size_t>(off), h->text.size());
    std::size_t n = std::min(size, h->text.size() - begin);
    fuse_reply_buf(req, h->text.data() + begin, n);
  });
}

void op_write(fuse_req_t req, fuse_ino_t, const char* data, size_t size, off_t,
              fuse_file_info* fi) {
  Handle* h = handle_of(fi);
  if (!h->recall) {
    fuse_reply_err(req, EROFS);
    return;
  }
  h->written.append(data, size);
  fuse_reply_write(req, size);
}

void op_release(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  Session& s = session_of(req);
  std::unique_ptr<Handle> h(handle_of(fi));
  int error = 0;
  if (h->recall && !h->written.empty()) {
    try {
      std::vector<Content> contents;
      std::size_t start = 0;
      while (start < h->written.size()) {
        std::size_t end = h->written.find('\n', start);
        if (end == std::string::npos) end = h->written.size();
        std::string path = h->written.substr(start, end - start);
        start = end + 1;
        if (path.empty()) continue;
        auto entry = s.tree.catalog().resolve(path);
        if (!entry || entry->is_dir) continue;
        auto versions = s.tree.catalog().version(entry->version.id);
        if (!versions || versions->kind != catalog::VersionKind::kFile) continue;
        Content c;
        c.version = *versions;
        c.path = path;
        contents.push_back(std::move(c));
      }
      s.content.recall(contents);
    } catch (const std::exception& e) {
      error = error_of(e);
    }
  }
  fuse_reply_err(req, error);
}

void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  Session& s = session_of(req);
  guarded(req, [&] {
    std::string state;
    if (std::strcmp(name, "user.mixtape.state") == 0) {
      Node node = decode(ino);
      if (node.kind == NodeKind::kFile || node.kind == NodeKind::kVersion ||
          node.kind == NodeKind::kReplica) {
        Content c = s.tree.content(ino);
        state = s.content.state(c.version);
      }
    }
    auto attrs = s.tree.xattrs(ino, state);
    auto it = attrs.find(name);
    if (it == attrs.end()) {
      fuse_reply_err(req, ENODATA);
    } else if (size == 0) {
      fuse_reply_xattr(req, it->second.size());
    } else if (size < it->second.size()) {
      fuse_reply_err(req, ERANGE);
    } else {
      fuse_reply_buf(req, it->second.data(), it->second.size());
    }
  });
}

void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  Session& s = session_of(req);
  guarded(req, [&] {
    std::string names;
    for (const auto& [name, value] : s.tree.xattrs(ino, "staged")) names += name + '\0';
    if (size == 0) {
      fuse_reply_xattr(req, names.size());
    } else if (size < names.size()) {
      fuse_reply_err(req, ERANGE);
    } else {
      fuse_reply_buf(req, names.data(), names.size());
    }
  });
}

void op_statfs(fuse_req_t req, fuse_ino_t) {
  struct statvfs st {};
  st.f_bsize = st.f_frsize = 1 << 20;
  st.f_namemax = 255;
  st.f_flag = ST_RDONLY;
  fuse_reply_statfs(req, &st);
}

// Everything that would change the tree.
void op_erofs_setattr(fuse_req_t req, fuse_ino_t, struct stat*, int, fuse_file_info*) {
  fuse_reply_err(req, EROFS);
}
void op_erofs_mknod(fuse_req_t req, fuse_ino_t, const char*, mode_t, dev_t) {
  fuse_reply_err(req, EROFS);
}
void op_erofs_mkdir(fuse_req_t req, fuse_ino_t, const char*, mode_t) {
  fuse_reply_err(req, EROFS);
}
void op_erofs_unlink(fuse_req_t req, fuse_ino_t, const char*) {
  fuse_reply_err(req, EROFS);
}
void op_erofs_symlink(fuse_req_t req, const char*, fuse_ino_t, const char*) {
  fuse_reply_err(req, EROFS);
}
void op_erofs_rename(fuse_req_t req, fuse_ino_t, const char*, fuse_ino_t, const char*,
                     unsigned int) {
  fuse_reply_err(req, EROFS);
}
void op_erofs_link(fuse_req_t req, fuse_ino_t, fuse_ino_t, const char*) {
  fuse_reply_err(req, EROFS);
}
void op_erofs_create(fuse_req_t req, fuse_ino_t, const char*, mode_t, fuse_file_info*) {
  fuse_reply_err(req, EROFS);
}
void op_erofs_setxattr(fuse_req_t req, fuse_ino_t, const char*, const char*, size_t, int) {
  fuse_reply_err(req, EROFS);
}
void op_erofs_removexattr(fuse_req_t req, fuse_ino_t, const char*) {
  fuse_reply_err(req, EROFS);
}

void op_init(void*, fuse_conn_info* conn) {
  // Staged files are read sequentially: let the kernel read ahead far.
  conn->max_readahead = 4u << 20;
  if (conn->capable & FUSE_CAP_SPLICE_WRITE) conn->want |= FUSE_CAP_SPLICE_WRITE;
}

fuse_lowlevel_ops make_ops() {
  fuse_lowlevel_ops ops{};
  ops.init = op_init;
  ops.lookup = op_lookup;
  ops.getattr = op_getattr;
  ops.readlink = op_readlink;
  ops.opendir = op_opendir;
  ops.releasedir = op_releasedir;
  ops.readdir = op_readdir;
  ops.readdirplus = op_readdirplus;
  ops.open = op_open;
  ops.read = op_read;
  ops.write = op_write;
  ops.release = op_release;
  ops.getxattr = op_getxattr;
  ops.listxattr = op_listxattr;
  ops.statfs = op_statfs;
  ops.setattr = op_erofs_setattr;
  ops.mknod = op_erofs_mknod;
  ops.mkdir = op_erofs_mkdir;
  ops.unlink = op_erofs_unlink;
  ops.rmdir = op_erofs_unlink;
  ops.symlink = op_erofs_symlink;
  ops.rename = op_erofs_rename;
  ops.link = op_erofs_link;
  ops.create = op_erofs_create;
  ops.setxattr = op_erofs_setxattr;
  ops.removexattr = op_erofs_removexattr;
  return ops;
}

struct SessionDeleter {
  void operator()(fuse_session* se) const { fuse_session_destroy(se); }
};
struct LoopConfigDeleter {
  void operator()(fuse_loop_config* c) const { fuse_loop_cfg_destroy(c); }
};

}  // namespace

int serve(Tree& tree, ContentSource& content, ControlFiles& control, const MountOptions& options,
          const std::function<void()>& ready) {
  Session session{tree, content, control, options};
  std::vector<std::string> args = {"mount.mixtape", "-o", "ro,default_permissions,fsname=mixtape",
                                   "-o", "subtype=mixtape"};
  if (options.allow_other) args.insert(args.end(), {"-o", "allow_other"});
  if (options.debug) args.push_back("-d");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  fuse_args fargs = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  fuse_lowlevel_ops ops = make_ops();
  std::unique_ptr<fuse_session, SessionDeleter> se(
      fuse_session_new(&fargs, &ops, sizeof ops, &session));
  fuse_opt_free_args(&fargs);
  if (!se) throw Error("cannot create the FUSE session");
  if (fuse_set_signal_handlers(se.get()) != 0) throw Error("cannot set signal handlers");
  if (fuse_session_mount(se.get(), options.mountpoint.c_str()) != 0) {
    fuse_remove_signal_handlers(se.get());
    throw Error("cannot mount on " + options.mountpoint);
  }
  ready();
  std::unique_ptr<fuse_loop_config, LoopConfigDeleter> config(fuse_loop_cfg_create());
  fuse_loop_cfg_set_clone_fd(config.get(), 0);
  fuse_loop_cfg_set_max_threads(config.get(), 16);
  int rc = fuse_session_loop_mt(se.get(), config.get());
  fuse_session_unmount(se.get());
  fuse_remove_signal_handlers(se.get());
  return rc;
}

}  // namespace mixtape::fs
