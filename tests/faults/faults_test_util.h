// Helpers of the fault-injection tests: a small real filesystem that fills
// up (tmpfs), surgery on tape images (cutting them short, rebuilding one
// with a file replaced), a mixtape run in the background that can be held
// still while a fault is made, and the checks every fault test ends with:
// what restores is whole, nothing is left half-written, the catalog claims
// only what the tapes hold.
#pragma once

#include <signal.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "tests/backup/backup_test_util.h"
#include "tests/restore/test_util.h"
#include "tests/support/test_support.h"

namespace mixtape::faults::testing {

using restore::testing::Fixture;
using restore::testing::ImageBlock;
using restore::testing::parse_image;
using namespace mixtape::test_support;

// A tmpfs of a fixed size on a fresh directory: a disk that fills up. Needs
// root (the tests run as root); unmounted (lazily) when destroyed.
class SmallDisk {
 public:
  SmallDisk(std::string path, std::uint64_t bytes) : path_(std::move(path)) {
    std::filesystem::create_directories(path_);
    if (::mount("tmpfs", path_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, options(bytes).c_str()) != 0)
      throw_errno("cannot mount a tmpfs on " + path_);
  }
  SmallDisk(const SmallDisk&) = delete;
  SmallDisk& operator=(const SmallDisk&) = delete;
  ~SmallDisk() { ::umount2(path_.c_str(), MNT_DETACH); }

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

  // Grows (or shrinks, down to what is used) the filesystem in place.
  void resize(std::uint64_t bytes) {
    if (::mount("tmpfs", path_.c_str(), "tmpfs", MS_REMOUNT | MS_NOSUID | MS_NODEV,
                options(bytes).c_str()) != 0)
      throw_errno("cannot resize the tmpfs on " + path_);
  }
  std::uint64_t free_bytes() const {
    struct statvfs st {};
    if (::statvfs(path_.c_str(), &st) != 0) throw_errno("statvfs " + path_);
    return static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
  }
  // Fills the disk with a file until only `leave` bytes are free.
  void fill(std::uint64_t leave) {
    const std::uint64_t free = free_bytes();
    if (free <= leave) return;
    UniqueFd fd = open_file(file(".filler"), O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (::posix_fallocate(fd.get(), 0, static_cast<off_t>(free - leave)) != 0)
      throw Error("cannot fill " + path_);
  }
  void unfill() { std::filesystem::remove(file(".filler")); }

 private:
  static std::string options(std::uint64_t bytes) {
    return "size=" + std::to_string(bytes) + ",mode=0755";
  }
  std::string path_;
};

// A read-only view of a folder (a bind mount made read-only): tapes on a
// write-protected medium. Needs root; detached when destroyed.
class ReadOnlyView {
 public:
  ReadOnlyView(const std::string& source, std::string path) : path_(std::move(path)) {
    std::filesystem::create_directories(path_);
    if (::mount(source.c_str(), path_.c_str(), nullptr, MS_BIND, nullptr) != 0)
      throw_errno("cannot bind " + source + " to " + path_);
    if (::mount(nullptr, path_.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY, nullptr) != 0) {
      ::umount2(path_.c_str(), MNT_DETACH);
      throw_errno("cannot make " + path_ + " read-only");
    }
  }
  ReadOnlyView(const ReadOnlyView&) = delete;
  ReadOnlyView& operator=(const ReadOnlyView&) = delete;
  ~ReadOnlyView() { ::umount2(path_.c_str(), MNT_DETACH); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// ------------------------------------------------------------ results

// Files a restore left under a temporary name (".mixtape-<pid>-<n>").
inline std::vector<std::string> leftovers(const std::string& dir) {
  std::vector<std::string> found;
  std::error_code ignored;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ignored);
       it != std::filesystem::recursive_directory_iterator(); it.increment(ignored)) {
    if (it->path().filename().string().starts_with(".mixtape-"))
      found.push_back(it->path().string());
  }
  return found;
}

// Regular files of a tree, sorted.
inline std::vector<std::string> regular_files(const std::string& root) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(root))
    if (e.is_regular_file() && !e.is_symlink()) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

// Regular files of a tree, or none if there is no tree.
inline std::vector<std::string> regular_files_or_none(const std::string& root) {
  return std::filesystem::exists(root) ? regular_files(root) : std::vector<std::string>{};
}

// What `diff -r` finds between a fixture's source tree and its restore
// into f.file(to) (a restore puts path P at DIR + P): "" when every file,
// symlink and directory came back with its bytes.
inline std::string tree_differences(const Fixture& f, const std::string& to) {
  CommandResult d = run_shell("diff -r --no-dereference " + shell_quote(f.src()) + " " +
                              shell_quote(f.file(to) + f.src()));
  return d.status == 0 ? "" : "diff -r: " + d.out + d.err;
}

inline std::size_t count_lines(const std::string& text) {
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

// `mixtape ls -R --versions --replicas`: everything the catalog claims.
inline std::string listing(Fixture& f, const std::string& extra = "") {
  CommandResult r = f.mixtape("ls -R --versions --replicas" + extra);
  EXPECT_EQ(r.status, 0) << r.err;
  return r.out;
}

// ------------------------------------------------------------ tape images

// The tape block holding plaintext byte `offset` of a replica's archive.
inline std::uint64_t block_of(const catalog::LocatedCopy& replica, std::uint64_t offset) {
  format::ArchiveGeometry geometry;
  geometry.first_block = replica.archive.first_block;
  geometry.record_size = replica.tape.record_size;
  geometry.encrypted = replica.archive.encrypted;
  geometry.age_header_length = replica.archive.age_header_len;
  return format::locate(geometry, offset).block;
}

// The replica of `path` on tape `serial`.
inline catalog::LocatedCopy replica_on(Fixture& f, const std::string& path,
                                       const std::string& serial) {
  for (const auto& r : f.replicas(path))
    if (r.tape.serial == serial) return r;
  throw Error(path + " has no copy on " + serial);
}

// Cuts an image right before `block`: the tape now ends there (end of
// data), as a tape whose last writes never happened. The drive's sidecar
// index goes too, so the drive rebuilds it from what is left.
inline void end_image_before(const std::string& image, std::uint64_t block) {
  auto blocks = parse_image(image);
  if (block >= blocks.size()) throw Error("no block " + std::to_string(block) + " in " + image);
  const std::uint64_t at =
      blocks[block].filemark ? blocks[block].data_offset : blocks[block].data_offset - 4;
  std::filesystem::resize_file(image, at);
  std::filesystem::remove(image + ".idx");
}

// Tape files of an image (bytes of their records), and an image rebuilt
// from files through the image drive: records of `record_size`, a filemark
// after each file. Replacing one file by another of the same length keeps
// every block where the catalog and the indexes say it is.
inline std::vector<std::string> image_files(const std::string& image) {
  return backup::testing::tape_files(image);
}

inline void write_image(const std::string& image, const std::vector<std::string>& files,
                        std::uint64_t record_size) {
  std::filesystem::remove(image);
  std::filesystem::remove(image + ".idx");
  tape::OpenDriveOptions options;
  options.create_if_missing = true;
  options.geometry.capacity = 1ULL << 30;
  auto drive = tape::open_drive(image, options);
  for (const auto& file : files) {
    for (std::size_t at = 0; at < file.size(); at += record_size) {
      std::string_view record(file.data() + at,
                              std::min<std::size_t>(record_size, file.size() - at));
      drive->write_record(as_bytes(record));
    }
    drive->write_filemarks(1);
  }
}

// ------------------------------------------------------------ processes

// A mixtape run in the background (its own process), which a test can
// hold still (SIGSTOP) while it makes a fault, and then let go.
class BackgroundRun {
 public:
  BackgroundRun(Fixture& f, const std::vector<std::string>& args)
      : out_(f.file("bg.out")), err_(f.file("bg.err")) {
    backup::testing::MixtapeEnv env;
    env.catalog = f.catalog();
    env.home = f.file("home");
    pid_ = backup::testing::spawn_mixtape(env, args, out_, err_);
  }
  BackgroundRun(const BackgroundRun&) = delete;
  BackgroundRun& operator=(const BackgroundRun&) = delete;
  ~BackgroundRun() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::kill(pid_, SIGCONT);
      wait();
    }
  }
  pid_t pid() const { return pid_; }
  bool running() {
    int status = 0;
    return pid_ > 0 && ::waitpid(pid_, &status, WNOHANG) == 0;
  }
  void stop() { ::kill(pid_, SIGSTOP); }
  void resume() { ::kill(pid_, SIGCONT); }
  CommandResult wait() {
    CommandResult r = backup::testing::wait_mixtape(pid_, out_, err_);
    pid_ = 0;
    return r;
  }

 private:
  std::string out_, err_;
  pid_t pid_ = 0;
};

// The tape images a process has open: the tapes in its drives.
inline std::vector<std::string> open_images(pid_t pid) {
  std::vector<std::string> images;
  std::error_code ignored;
  for (const auto& entry :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ignored)) {
    auto target = std::filesystem::read_symlink(entry.path(), ignored).string();
    if (target.ends_with(".tap")) images.push_back(target);
  }
  return images;
}

// The value of an extended attribute ("" if it cannot be read).
inline std::string xattr(const std::string& path, const std::string& name) {
  char buffer[4096];
  ssize_t n = ::getxattr(path.c_str(), name.c_str(), buffer, sizeof buffer);
  return n < 0 ? std::string() : std::string(buffer, static_cast<std::size_t>(n));
}

// ------------------------------------------------------------ secrets

inline constexpr char kPassphrase[] = "Tr0ub4dor&3-zebra-quartz-umbrella";

inline std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

inline unsigned mode_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw_errno("stat " + path);
  return st.st_mode & 07777;
}

// The secret forms of one identity: what must never be printed or stored.
struct Secrets {
  explicit Secrets(const std::string& identity_file) {
    for (std::istringstream in(read_file(identity_file)); std::getline(in, text);)
      if (text.starts_with("AGE-SECRET-KEY-1")) break;
    payload = text.substr(std::string_view("AGE-SECRET-KEY-1").size());
    auto identity = crypto::X25519Identity::parse(text);
    const auto& key = identity.secret_key();
    hex = to_hex(ByteSpan(key.data(), key.size()));
  }
  // The secrets `haystack` shows, in any letter case: any 16 characters in
  // a row of the payload (the key's text is "AGE-SECRET-KEY-1" and the
  // payload, and that prefix is no secret), the hex or the passphrase.
  std::vector<std::string> found_in(const std::string& haystack) const {
    std::vector<std::string> found;
    const std::string h = lower(haystack);
    for (const auto& secret : {lower(payload), hex, lower(kPassphrase)}) {
      for (std::size_t at = 0; at + 16 <= secret.size(); at += 4) {
        if (h.find(secret.substr(at, 16)) != std::string::npos) {
          found.push_back(secret.substr(at, 16));
          break;
        }
      }
    }
    return found;
  }
  std::string text, payload, hex;
};

}  // namespace mixtape::faults::testing
