// Destination: writing restored files below a directory and nowhere else.
//
// Every name is split into components after format::safe_relative_path()
// vetted it (no absolute names, no ".."); each directory on the way is
// opened with openat(O_DIRECTORY | O_NOFOLLOW) from the one before, so a
// symlink anywhere on the way (planted before or during the restore) stops
// the file instead of redirecting it. Files are written under a hidden
// temporary name created with O_EXCL and renamed into place only when
// complete (RENAME_NOREPLACE unless overwriting).
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <vector>

#include "engine/format/format.h"
#include "engine/restore/restore.h"

namespace mixtape::restore {
namespace {

timespec to_timespec(std::int64_t ns) {
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(ns / 1000000000);
  ts.tv_nsec = static_cast<long>(ns % 1000000000);
  if (ts.tv_nsec < 0) {
    ts.tv_nsec += 1000000000;
    --ts.tv_sec;
  }
  return ts;
}

struct Components {
  std::vector<std::string> parts;
  std::string path;  // normalised, for messages
};

Components split(std::string_view name, const std::string& directory) {
  std::optional<std::string> safe = format::safe_relative_path(name);
  if (!safe) {
    throw RestoreError("refusing to restore '" + printable(name) +
                       "': the name would lead out of " + directory);
  }
  Components c;
  c.path = *safe;
  std::size_t start = 0;
  while (start <= safe->size()) {
    std::size_t end = safe->find('/', start);
    if (end == std::string::npos) end = safe->size();
    std::string part = safe->substr(start, end - start);
    if (part.empty() || part == "." || part == "..")
      throw RestoreError("refusing to restore '" + printable(name) + "'");
    c.parts.push_back(std::move(part));
    start = end + 1;
  }
  return c;
}

// Opens directory parts[0..count) below root; nullopt if one is missing and
// create is false. Never follows a symlink.
std::optional<UniqueFd> open_dir(int root, const Components& c, std::size_t count, bool create,
                                 const std::string& directory) {
  UniqueFd fd(::fcntl(root, F_DUPFD_CLOEXEC, 0));
  if (!fd.valid()) throw_errno("cannot use " + directory);
  std::string walked = directory;
  for (std::size_t i = 0; i < count; ++i) {
    const std::string& part = c.parts[i];
    walked += "/" + printable(part);
    int next = ::openat(fd.get(), part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0 && errno == ENOENT) {
      if (!create) return std::nullopt;
      if (::mkdirat(fd.get(), part.c_str(), 0755) != 0 && errno != EEXIST)
        throw_errno("cannot create directory " + walked);
      next = ::openat(fd.get(), part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (next < 0) {
      int code = errno;
      struct stat st {};
      if (::fstatat(fd.get(), part.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
        throw RestoreError(walked + " is a symbolic link; refusing to follow it");
      if (code == ENOTDIR || code == ELOOP) throw RestoreError(walked + " is not a directory");
      throw SystemError("cannot open directory " + walked, code);
    }
    fd = UniqueFd(next);
  }
  return fd;
}

}  // namespace

Destination::Destination(const std::string& directory, DestinationOptions options)
    : directory_(directory), options_(options) {
  std::error_code error;
  std::filesystem::create_directories(directory, error);
  if (error) throw RestoreError("cannot create " + directory + ": " + error.message());
  root_ = open_file(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

Destination::~Destination() = default;

void Destination::make_directory(std::string_view name) {
  Components c = split(name, directory_);
  open_dir(root_.get(), c, c.parts.size(), true, directory_);
}

void Destination::set_directory_attributes(std::string_view name,
                                           const catalog::Attributes& attrs) {
  Components c = split(name, directory_);
  auto fd = open_dir(root_.get(), c, c.parts.size(), false, directory_);
  if (!fd) throw RestoreError(directory_ + "/" + printable(c.path) + " is missing");
  const std::string where = directory_ + "/" + printable(c.path);
  if (options_.restore_owner && ::fchown(fd->get(), attrs.uid, attrs.gid) != 0)
    throw_errno("cannot set the owner of " + where);
  if (::fchmod(fd->get(), attrs.mode & 07777) != 0) throw_errno("cannot set the mode of " + where);
  timespec times[2] = {{0, UTIME_OMIT}, to_timespec(attrs.mtime_ns)};
  if (::futimens(fd->get(), times) != 0) throw_errno("cannot set the time of " + where);
}

void Destination::make_symlink(std::string_view name, std::string_view target,
                               const catalog::Attributes& attrs) {
  Components c = split(name, directory_);
  auto parent = open_dir(root_.get(), c, c.parts.size() - 1, true, directory_);
  const std::string& leaf = c.parts.back();
  const std::string where = directory_ + "/" + printable(c.path);
  const std::string link(target);
  if (::symlinkat(link.c_str(), parent->get(), leaf.c_str()) != 0) {
    if (errno != EEXIST) throw_errno("cannot create symlink " + where);
    if (!options_.overwrite) throw RestoreError(where + " exists (use --overwrite to replace it)");
    std::string temp =
        ".mixtape-" + std::to_string(::getpid()) + "-" + std::to_string(++temp_counter_);
    if (::symlinkat(link.c_str(), parent->get(), temp.c_str()) != 0)
      throw_errno("cannot create symlink " + where);
    if (::renameat(parent->get(), temp.c_str(), parent->get(), leaf.c_str()) != 0) {
      int code = errno;
      ::unlinkat(parent->get(), temp.c_str(), 0);
      throw SystemError("cannot replace " + where, code);
    }
  }
  if (options_.restore_owner &&
      ::fchownat(parent->get(), leaf.c_str(), attrs.uid, attrs.gid, AT_SYMLINK_NOFOLLOW) != 0)
    throw_errno("cannot set the owner of " + where);
  timespec times[2] = {{0, UTIME_OMIT}, to_timespec(attrs.mtime_ns)};
  if (::utimensat(parent->get(), leaf.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0)
    throw_errno("cannot set the time of " + where);
}

bool Destination::exists(std::string_view name) {
  Components c = split(name, directory_);
  auto parent = open_dir(root_.get(), c, c.parts.size() - 1, false, directory_);
  if (!parent) return false;
  struct stat st {};
  return ::fstatat(parent->get(), c.parts.back().c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
}

namespace {

// The pid in a temporary's name ".mixtape-<pid>-<n>", or 0.
pid_t temporary_owner(std::string_view name) {
  constexpr std::string_view kPrefix = ".mixtape-";
  if (!name.starts_with(kPrefix)) return 0;
  name.remove_prefix(kPrefix.size());
  const auto dash = name.find('-');
  if (dash == 0 || dash == std::string_view::npos || dash + 1 == name.size()) return 0;
  if (name.find_first_not_of("0123456789-") != std::string_view::npos ||
      name.find('-', dash + 1) != std::string_view::npos)
    return 0;
  return static_cast<pid_t>(std::strtol(std::string(name.substr(0, dash)).c_str(), nullptr, 10));
}

}  // namespace

// A restore that was killed leaves its temporaries behind; whichever restore
// next writes into that directory removes those whose process is gone.
void Destination::sweep_temporaries(int parent, const std::string& path) {
  {
    std::lock_guard lock(swept_mutex_);
    if (!swept_.insert(path).second) return;
  }
  int fd = ::openat(parent, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::fdopendir(fd), ::closedir);
  if (!dir) {
    ::close(fd);
    return;
  }
  std::vector<std::string> stale;
  while (const dirent* e = ::readdir(dir.get())) {
    const pid_t owner = temporary_owner(e->d_name);
    if (owner > 0 && owner != ::getpid() && !process_exists(owner)) stale.emplace_back(e->d_name);
  }
  for (const auto& name : stale) {
    struct stat st {};
    if (::fstatat(parent, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        (S_ISREG(st.st_mode) || S_ISLNK(st.st_mode)))
      ::unlinkat(parent, name.c_str(), 0);
  }
}

std::unique_ptr<Destination::PendingFile> Destination::begin_file(
    std::string_view name, const catalog::Attributes& attrs) {
  Components c = split(name, directory_);
  auto parent = open_dir(root_.get(), c, c.parts.size() - 1, true, directory_);
  sweep_temporaries(parent->get(), c.parts.size() > 1 ? c.path.substr(0, c.path.rfind('/')) : "");
  std::string temp =
      ".mixtape-" + std::to_string(::getpid()) + "-" + std::to_string(++temp_counter_);
  int fd = ::openat(parent->get(), temp.c_str(),
                    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) throw_errno("cannot create a file in " + directory_ + "/" + printable(c.path));
  return std::make_unique<PendingFile>(PendingFile::Key(), *this, std::move(*parent),
                                       c.parts.back(), std::move(temp), UniqueFd(fd), attrs);
}

Destination::PendingFile::PendingFile(Key, const Destination& owner, UniqueFd parent,
                                      std::string name, std::string temp, UniqueFd file,
                                      catalog::Attributes attrs)
    : owner_(owner),
      parent_(std::move(parent)),
      name_(std::move(name)),
      temp_(std::move(temp)),
      file_(std::move(file)),
      attrs_(std::move(attrs)) {}

Destination::PendingFile::~PendingFile() {
  if (!committed_) ::unlinkat(parent_.get(), temp_.c_str(), 0);
}

void Destination::PendingFile::write(ByteSpan data) {
  write_all(file_.get(), data, owner_.directory_ + "/.../" + printable(name_));
}

void Destination::PendingFile::commit() {
  const std::string where = owner_.directory_ + "/.../" + printable(name_);
  // chown before chmod: chown clears set-id bits.
  if (owner_.options_.restore_owner && ::fchown(file_.get(), attrs_.uid, attrs_.gid) != 0)
    throw_errno("cannot set the owner of " + where);
  if (::fchmod(file_.get(), attrs_.mode & 07777) != 0)
    throw_errno("cannot set the mode of " + where);
  timespec times[2] = {{0, UTIME_OMIT}, to_timespec(attrs_.mtime_ns)};
  if (::futimens(file_.get(), times) != 0) throw_errno("cannot set the time of " + where);
  if (::close(file_.release()) != 0) throw_errno("cannot write " + where);
  int rc;
  if (owner_.options_.overwrite) {
    rc = ::renameat(parent_.get(), temp_.c_str(), parent_.get(), name_.c_str());
  } else {
    rc = ::renameat2(parent_.get(), temp_.c_str(), parent_.get(), name_.c_str(), RENAME_NOREPLACE);
    if (rc != 0 && (errno == EINVAL || errno == ENOSYS)) {
      // A filesystem without RENAME_NOREPLACE: link(2) refuses to replace too.
      rc = ::linkat(parent_.get(), temp_.c_str(), parent_.get(), name_.c_str(), 0);
      if (rc == 0) ::unlinkat(parent_.get(), temp_.c_str(), 0);
    }
  }
  if (rc != 0) {
    if (errno == EEXIST) throw RestoreError(where + " exists (use --overwrite to replace it)");
    throw_errno("cannot put " + where + " in place");
  }
  committed_ = true;
}

// ------------------------------------------------------------ sinks

namespace {

class FileSink final : public RecallSink {
 public:
  FileSink(Destination& destination, std::string name, catalog::Attributes attrs)
      : destination_(destination), name_(std::move(name)), attrs_(std::move(attrs)) {}

  void begin(const catalog::VersionRow&) override {
    file_ = destination_.begin_file(name_, attrs_);
  }
  void write(ByteSpan data) override { file_->write(data); }
  void commit() override {
    file_->commit();
    file_.reset();
  }
  void abort() noexcept override { file_.reset(); }

 private:
  Destination& destination_;
  std::string name_;
  catalog::Attributes attrs_;
  std::unique_ptr<Destination::PendingFile> file_;
};

catalog::Attributes attributes_of(const format::MemberInfo& info) {
  catalog::Attributes attrs;
  attrs.mode = info.mode;
  attrs.uid = static_cast<std::uint32_t>(info.uid);
  attrs.gid = static_cast<std::uint32_t>(info.gid);
  attrs.uname = info.uname;
  attrs.gname = info.gname;
  attrs.mtime_ns = info.mtime_ns;
  return attrs;
}

}  // namespace

std::shared_ptr<RecallSink> file_sink(Destination& destination, std::string name,
                                      const catalog::Attributes& attrs) {
  return std::make_shared<FileSink>(destination, std::move(name), attrs);
}

std::vector<std::string> Destination::extract_tar(ByteSource& tar, const std::string& name) {
  std::vector<std::string> failures;
  format::TarReader reader(tar, name);
  std::vector<std::pair<std::string, catalog::Attributes>> directories;
  Bytes buffer(1 << 20);
  for (;;) {
    std::optional<format::TarMember> member;
    try {
      member = reader.next();
    } catch (const format::FormatError& e) {
      failures.push_back(e.what());
      if (std::string_view(e.what()).ends_with("member skipped")) continue;
      break;  // the tar structure itself is damaged
    }
    if (!member) break;
    const format::MemberInfo& info = member->info;
    try {
      switch (info.type) {
        case format::MemberType::kDirectory:
          make_directory(info.path);
          directories.emplace_back(info.path, attributes_of(info));
          break;
        case format::MemberType::kSymlink:
          make_symlink(info.path, info.linkpath, attributes_of(info));
          break;
        case format::MemberType::kFile: {
          auto file = begin_file(info.path, attributes_of(info));
          crypto::Blake2b256 hasher;
          for (std::size_t n; (n = reader.read_data(buffer)) > 0;) {
            hasher.update({buffer.data(), n});
            file->write({buffer.data(), n});
          }
          if (!info.blake2b256.empty() && to_hex(hasher.finish()) != info.blake2b256)
            throw RestoreError(printable(info.path) + ": hash mismatch");
          file->commit();
          break;
        }
        default:
          throw RestoreError(printable(info.path) + ": " +
                             std::string(format::member_type_name(info.type)) +
                             " members are not restored");
      }
    } catch (const Error& e) {
      failures.push_back(e.what());
    }
  }
  for (auto it = directories.rbegin(); it != directories.rend(); ++it) {
    try {
      set_directory_attributes(it->first, it->second);
    } catch (const Error& e) {
      failures.push_back(e.what());
    }
  }
  return failures;
}

}  // namespace mixtape::restore
