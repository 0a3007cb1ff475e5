#define FUSE_USE_VERSION 314
#include "fs/fuse_fs.h"

#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

namespace mixtape::fs {
namespace {

struct Handle;

struct Session {
  Tree& tree;
  ContentSource& content;
  ControlFiles& control;
  MountOptions options;
  std::atomic<bool> no_opendir{false};  // the kernel handles opendir itself
  // The INIT exchange, watched by the session's I/O (direct_io_mmap below).
  std::atomic<std::uint64_t> init_unique{0};
  std::atomic<bool> kernel_offers_mmap{false};
  std::atomic<bool> direct_io_mmap{false};  // FUSE_DIRECT_IO_ALLOW_MMAP agreed
  // Files opened and not yet released. A mount that ends with files still
  // open (a lazy unmount) gets no release for them: they go with the
  // session instead of leaking.
  std::mutex open_mutex{};
  std::map<Handle*, std::unique_ptr<Handle>> open_files{};
};

// The largest read request: a reply is spliced through a pipe, which holds
// at most /proc/sys/fs/pipe-max-size (1 MiB by default) including the
// reply's header; a larger request falls back to a copy through a freshly
// allocated buffer (with read_ahead_kb raised to 1 MiB, 1 MiB requests ran
// at half the speed of 128 KiB ones).
constexpr unsigned kMaxRead = 512u << 10;

Session& session_of(fuse_req_t req) {
  return *static_cast<Session*>(fuse_req_userdata(req));
}

// The request a handler thread is serving, for request_interrupted().
thread_local fuse_req_t current_request = nullptr;

// Marks the request the thread serves for as long as it lives.
class Serving {
 public:
  explicit Serving(fuse_req_t req) : previous_(current_request) { current_request = req; }
  ~Serving() { current_request = previous_; }
  Serving(const Serving&) = delete;
  Serving& operator=(const Serving&) = delete;

 private:
  fuse_req_t previous_;
};

struct stat to_stat(const Attr& attr) {
  struct stat st {};
  st.st_ino = attr.ino;
  st.st_mode = attr.mode;
  st.st_nlink = attr.nlink;
  st.st_uid = attr.uid;
  st.st_gid = attr.gid;
  st.st_size = static_cast<off_t>(attr.size);
  // glibc sizes a directory stream's getdents buffer by st_blksize, and the
  // kernel allocates that much for every readdir request: 1 MiB per
  // directory was a third of find's system time. Files keep 1 MiB, the size
  // cp reads in.
  st.st_blksize = S_ISDIR(attr.mode) ? 32 << 10 : 1 << 20;
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

// Takes an open file's handle back from the session, to free it.
std::unique_ptr<Handle> take_handle(Session& s, fuse_file_info* fi) {
  std::lock_guard lock(s.open_mutex);
  auto node = s.open_files.extract(handle_of(fi));
  return node.empty() ? nullptr : std::move(node.mapped());
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

// How long the kernel may answer stat of the mount point itself without
// asking: briefly, so that once the daemon is gone the mount point reports
// ENOTCONN (how scripts tell a dead mount) instead of cached attributes.
constexpr double kRootAttrTimeout = 1;

void op_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  Session& s = session_of(req);
  guarded(req, [&] {
    struct stat st = to_stat(s.tree.getattr(ino));
    fuse_reply_attr(req, &st,
                    ino == FUSE_ROOT_ID ? std::min(kRootAttrTimeout, s.options.timeout_seconds)
                                        : s.options.timeout_seconds);
  });
}

void op_readlink(fuse_req_t req, fuse_ino_t ino) {
  Session& s = session_of(req);
  guarded(req, [&] { fuse_reply_readlink(req, s.tree.readlink(ino).c_str()); });
}

void reply_dir(fuse_req_t req, fuse_ino_t ino, std::size_t size, off_t offset, bool plus) {
  Session& s = session_of(req);
  guarded(req, [&] {
    // The kernel offers up to 1 MiB per call; the buffer starts at a page,
    // enough for a small directory in one allocation, and grows with what
    // is added (zeroing the whole offer per call was half of find's time).
    std::vector<char> buffer(std::min<std::size_t>(size, 4096));
    std::size_t used = 0;
    s.tree.list(ino, static_cast<std::uint64_t>(offset),
                [&](const DirEntry& e, std::uint64_t next) {
                  fuse_entry_param param{};
                  struct stat st {};
                  if (plus)
                    param = entry_of(s, e.attr);
                  else
                    st = to_stat(e.attr);
                  auto add = [&](char* at, std::size_t room) {
                    return plus ? fuse_add_direntry_plus(req, at, room, e.name.c_str(), &param,
                                                         static_cast<off_t>(next))
                                : fuse_add_direntry(req, at, room, e.name.c_str(), &st,
                                                    static_cast<off_t>(next));
                  };
                  // An entry that does not fit is not added: with readdirplus
                  // the kernel takes a lookup reference only for the entries
                  // it received.
                  std::size_t need = add(nullptr, 0);
                  if (need > size - used) return false;
                  if (used + need > buffer.size())
                    buffer.resize(std::min(size, std::max(used + need, 2 * buffer.size())));
                  used += add(buffer.data() + used, need);
                  return true;
                });
    fuse_reply_buf(req, buffer.data(), used);
  });
}

// With the kernel's consent opendir is not answered at all (ENOSYS: the
// kernel stops sending opendir and releasedir, and caches listings): a
// listing keeps no state, so each directory costs two requests, not four.
void op_opendir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  if (session_of(req).no_opendir.load(std::memory_order_relaxed)) {
    fuse_reply_err(req, ENOSYS);
    return;
  }
  fi->cache_readdir = 1;  // listings never change under a mount
  fuse_reply_open(req, fi);
}

void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  reply_dir(req, ino, size, off, false);
}

void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  reply_dir(req, ino, size, off, true);
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
      // Paths only for the mounting user and root: with allow_other, others
      // would learn names from folders they may not look into.
      const fuse_ctx* ctx = fuse_req_ctx(req);
      const bool owner = ctx->uid == 0 || ctx->uid == ::getuid();
      handle->text = s.control.status(!s.options.allow_other || owner);
      fi->direct_io = 1;
    } else if (node.kind == NodeKind::kStatsFile) {
      handle->text = s.control.stats_json();
      fi->direct_io = 1;
    } else {
      handle->content = s.content.open(s.tree.content(ino));
      // direct_io only where a shared mmap of such a file still works (the
      // kernel then maps through the page cache): a kernel without
      // FUSE_DIRECT_IO_ALLOW_MMAP (before 6.6) would refuse it (ENODEV).
      if (handle->content->read_once() && s.direct_io_mmap.load(std::memory_order_relaxed))
        fi->direct_io = 1;
      else
        fi->keep_cache = 1;  // the bytes of a version never change
    }
    fi->fh = reinterpret_cast<std::uint64_t>(handle.get());
    {
      std::lock_guard lock(s.open_mutex);
      s.open_files.emplace(handle.get(), std::move(handle));
    }
    if (fuse_reply_open(req, fi) == -ENOENT) {
      // The request was interrupted: nobody will release this handle.
      take_handle(s, fi);
    }
  });
}

void op_read(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  Serving serving(req);
  guarded(req, [&] {
    Handle* h = handle_of(fi);
    if (h->content) {
      if (auto range = h->content->read_range(static_cast<std::uint64_t>(off), size)) {
        if (range->length == 0) {
          fuse_reply_buf(req, nullptr, 0);
          return;
        }
        // Spliced from the staged file: the kernel moves its page-cache
        // pages into the reply; no read into, and no copy out of, a buffer
        // here (together a third of the CPU of a staged read).
        fuse_bufvec data = FUSE_BUFVEC_INIT(range->length);
        data.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
        data.buf[0].fd = range->fd->get();
        data.buf[0].pos = static_cast<off_t>(range->offset);
        fuse_reply_data(req, &data, static_cast<fuse_buf_copy_flags>(0));
        return;
      }
      // Not zero-filled: every byte replied is one the reader wrote.
      auto buffer = std::make_unique_for_overwrite<std::uint8_t[]>(size);
      std::size_t n = h->content->read(static_cast<std::uint64_t>(off), {buffer.get(), size});
      fuse_reply_buf(req, reinterpret_cast<const char*>(buffer.get()), n);
      return;
    }
    std::size_t begin = std::min<std::size_t>(static_cast<std::size_t>(off), h->text.size());
    std::size_t n = std::min(size, h->text.size() - begin);
    // Replied from a copy: the kernel may complete this read, and the reader
    // close the file (its release freeing the handle on another thread),
    // before the reply's write returns here.
    const std::string reply = h->text.substr(begin, n);
    fuse_reply_buf(req, reply.data(), reply.size());
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
  std::unique_ptr<Handle> h = take_handle(s, fi);
  if (!h) {
    fuse_reply_err(req, 0);
    return;
  }
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
  // Only user.* attributes exist here. Other namespaces (security.selinux,
  // system.posix_acl_access: ls -l asks for both, per file) are not
  // supported, and saying so (ENOTSUP, not ENODATA) lets ls stop asking
  // after the first file instead of costing two round trips per entry.
  const std::string_view wanted(name);
  if (wanted.rfind("user.", 0) != 0) {
    fuse_reply_err(req, ENOTSUP);
    return;
  }
  if (wanted.rfind("user.mixtape.", 0) != 0) {
    fuse_reply_err(req, ENODATA);
    return;
  }
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

// Everything that would change the tree, but for `> .mixtape/recall`: the
// shell's O_TRUNC arrives as a truncation, which empties nothing there.
void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat*, int to_set, fuse_file_info*) {
  Session& s = session_of(req);
  guarded(req, [&] {
    constexpr int kTimes = FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW | FUSE_SET_ATTR_CTIME;
    const bool truncation =
        (to_set & FUSE_SET_ATTR_SIZE) && (to_set & ~(FUSE_SET_ATTR_SIZE | kTimes)) == 0;
    if (!truncation || decode(ino).kind != NodeKind::kRecallFile)
      throw FsError(EROFS, "read-only file system");
    struct stat st = to_stat(s.tree.getattr(ino));
    fuse_reply_attr(req, &st, 0);
  });
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

void op_init(void* userdata, fuse_conn_info* conn) {
  conn->max_read = kMaxRead;
  static_cast<Session*>(userdata)->no_opendir = (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT) != 0;
  // Staged files are read sequentially: let the kernel read ahead far.
  conn->max_readahead = 4u << 20;
  if (conn->capable & FUSE_CAP_SPLICE_WRITE) conn->want |= FUSE_CAP_SPLICE_WRITE;
  // Every readdir call returns attributes (readdirplus), not only a
  // directory's first: a listing continued by plain readdir leaves its later
  // entries without dentries, and `ls -l` then costs a lookup per entry.
  conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
}

fuse_lowlevel_ops make_ops() {
  fuse_lowlevel_ops ops{};
  ops.init = op_init;
  ops.lookup = op_lookup;
  ops.getattr = op_getattr;
  ops.readlink = op_readlink;
  ops.opendir = op_opendir;
  ops.readdir = op_readdir;
  ops.readdirplus = op_readdirplus;
  ops.open = op_open;
  ops.read = op_read;
  ops.write = op_write;
  ops.release = op_release;
  ops.getxattr = op_getxattr;
  ops.listxattr = op_listxattr;
  ops.statfs = op_statfs;
  ops.setattr = op_setattr;
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

// The kernel caps a FUSE mount's read-ahead at its 128 KiB default,
// whatever init() asks for (max_readahead). Staged files are read
// sequentially, and 1 MiB of read-ahead nearly doubles a cold read
// (docs/PERFORMANCE.md), so root raises it through the mount's own bdi,
// found in mountinfo (stat() of the mount point would wait for this very
// process). Without the rights it stays as it was.
void raise_read_ahead(const std::string& mountpoint) {
  std::error_code error;
  const std::string path = std::filesystem::canonical(mountpoint, error).string();
  if (error) return;
  std::string target;  // as mountinfo writes it: space, tab, newline, backslash in octal
  for (char c : path) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\\') {
      char octal[8];
      std::snprintf(octal, sizeof octal, "\\%03o", static_cast<unsigned char>(c));
      target += octal;
    } else {
      target += c;
    }
  }
  std::ifstream mountinfo("/proc/self/mountinfo");
  std::string line, device;
  while (std::getline(mountinfo, line)) {
    // "36 35 0:52 / /mount/point rw,... - fuse.mixtape ...": the last match
    // is the newest mount there.
    std::istringstream fields(line);
    std::string id, parent, dev, root, point;
    if (fields >> id >> parent >> dev >> root >> point && point == target) device = dev;
  }
  if (device.empty()) return;
  std::ofstream("/sys/class/bdi/" + device + "/read_ahead_kb") << (2 * kMaxRead >> 10) << '\n';
}

// The session's I/O: the plain system calls, and the INIT exchange watched.
// libfuse 3.14 cannot ask for FUSE_DIRECT_IO_ALLOW_MMAP (kernel 6.6+;
// libfuse 3.16 can): without it a shared mmap of a file opened with
// direct_io fails with ENODEV. When the kernel offers it (flags2 of its
// INIT request), the INIT reply accepts it.
constexpr std::uint64_t kDirectIoAllowMmap = std::uint64_t{1} << 36;  // FUSE_DIRECT_IO_ALLOW_MMAP

ssize_t io_read(int fd, void* buf, size_t len, void* userdata) {
  const ssize_t n = ::read(fd, buf, len);
  auto& s = *static_cast<Session*>(userdata);
  if (n >= static_cast<ssize_t>(sizeof(fuse_in_header) + sizeof(fuse_init_in)) &&
      s.init_unique.load(std::memory_order_relaxed) == 0) {
    fuse_in_header header;
    std::memcpy(&header, buf, sizeof header);
    if (header.opcode == FUSE_INIT) {
      fuse_init_in init;
      std::memcpy(&init, static_cast<const char*>(buf) + sizeof header, sizeof init);
      const bool offered = (init.flags & FUSE_INIT_EXT) != 0 && init.major == FUSE_KERNEL_VERSION &&
                           (init.flags2 & (kDirectIoAllowMmap >> 32)) != 0;
      s.kernel_offers_mmap = offered;
      s.init_unique = header.unique;
    }
  }
  return n;
}

ssize_t io_writev(int fd, struct iovec* iov, int count, void* userdata) {
  auto& s = *static_cast<Session*>(userdata);
  const std::uint64_t init = s.init_unique.load(std::memory_order_relaxed);
  if (init != 0 && s.kernel_offers_mmap.load(std::memory_order_relaxed) &&
      !s.direct_io_mmap.load(std::memory_order_relaxed) && count >= 2 &&
      iov[0].iov_len == sizeof(fuse_out_header) && iov[1].iov_len >= sizeof(fuse_init_out)) {
    auto* header = static_cast<fuse_out_header*>(iov[0].iov_base);
    auto* reply = static_cast<fuse_init_out*>(iov[1].iov_base);
    if (header->unique == init && header->error == 0 && (reply->flags & FUSE_INIT_EXT) != 0) {
      reply->flags2 |= static_cast<std::uint32_t>(kDirectIoAllowMmap >> 32);
      s.direct_io_mmap = true;
    }
  }
  return ::writev(fd, iov, count);
}

ssize_t io_splice(int fd_in, off_t* off_in, int fd_out, off_t* off_out, size_t len,
                  unsigned int flags, void*) {
  return ::splice(fd_in, off_in, fd_out, off_out, len, flags);
}

struct SessionDeleter {
  void operator()(fuse_session* se) const { fuse_session_destroy(se); }
};
struct LoopConfigDeleter {
  void operator()(fuse_loop_config* c) const { fuse_loop_cfg_destroy(c); }
};

}  // namespace

bool request_interrupted() {
  return current_request != nullptr && fuse_req_interrupted(current_request) != 0;
}

int serve(Tree& tree, ContentSource& content, ControlFiles& control, const MountOptions& options,
          const std::function<void()>& ready) {
  Session session{tree, content, control, options};
  // Not mounted "ro": the kernel would then refuse to open .mixtape/recall
  // for writing before asking us. Every handler that would change the tree
  // answers EROFS instead, and statfs reports ST_RDONLY.
  std::vector<std::string> args = {
      "mount.mixtape", "-o",
      "default_permissions,fsname=mixtape,max_read=" + std::to_string(kMaxRead), "-o",
      "subtype=mixtape"};
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
  // The same I/O as libfuse's own (splice included), with the INIT
  // exchange watched (io_read, io_writev).
  fuse_custom_io io{};
  io.read = io_read;
  io.writev = io_writev;
  io.splice_receive = io_splice;
  io.splice_send = io_splice;
  if (fuse_session_custom_io(se.get(), &io, fuse_session_fd(se.get())) != 0) {
    fuse_session_unmount(se.get());
    fuse_remove_signal_handlers(se.get());
    throw Error("cannot set the FUSE session's I/O on " + options.mountpoint);
  }
  raise_read_ahead(options.mountpoint);
  ready();
  std::unique_ptr<fuse_loop_config, LoopConfigDeleter> config(fuse_loop_cfg_create());
  fuse_loop_cfg_set_clone_fd(config.get(), 0);
  fuse_loop_cfg_set_max_threads(config.get(), 16);
  // The loop returns only once every handler has; a read waiting for a tape
  // would keep it (and the daemon, its tape and its cache) for ever after an
  // unmount or a SIGTERM. libfuse has no hook for the session's end, so it
  // is watched for, and the waits are then cancelled.
  std::mutex watch_mutex;
  std::condition_variable watch_changed;
  bool loop_done = false;
  std::thread watcher([&] {
    std::unique_lock lock(watch_mutex);
    while (!loop_done) {
      if (fuse_session_exited(se.get())) {
        content.cancel_waits();
        return;
      }
      watch_changed.wait_for(lock, std::chrono::milliseconds(100));
    }
  });
  int rc = fuse_session_loop_mt(se.get(), config.get());
  {
    std::lock_guard lock(watch_mutex);
    loop_done = true;
  }
  watch_changed.notify_all();
  watcher.join();
  fuse_session_unmount(se.get());
  fuse_remove_signal_handlers(se.get());
  return rc;
}

}  // namespace mixtape::fs
