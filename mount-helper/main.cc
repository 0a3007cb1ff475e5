// mount.mixtape SOURCE DIR [-sfnv] [-o options]: mounts a catalog (or a
// found tape) read-only. Without -o foreground it returns once the mount is
// ready, or fails with the reason, as mount(8) expects of a helper.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "engine/foreign/foreign.h"
#include "engine/recover/recover.h"
#include "engine/restore/restore.h"
#include "fs/recall_content.h"
#include "mount-helper/options.h"

namespace mixtape::mount {
namespace {

// Whether mount(8) started us (it passes "rw" unless told "ro").
bool called_by_mount() {
  std::ifstream comm("/proc/" + std::to_string(::getppid()) + "/comm");
  std::string name;
  std::getline(comm, name);
  return name == "mount";
}

bool is_sqlite_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char header[16] = {};
  in.read(header, sizeof header);
  return in && std::memcmp(header, "SQLite format 3", 16) == 0;
}

// A tape is a character device or a .tap image (what tape::open_drive
// opens); anything else is taken for a catalog, so that a catalog whose
// header is destroyed is reported as a damaged catalog, not misread as a
// tape.
bool is_tape(const std::string& path) {
  if (is_sqlite_file(path)) return false;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISCHR(st.st_mode)) return true;
  return path.ends_with(".tap") || path.starts_with("/dev/");
}

// Where a found tape's block index is kept: in the cache folder, named by
// the hash of the tape's canonical path.
std::string found_index_path(const std::string& cache_dir, const std::string& source) {
  std::error_code error;
  std::string canonical = std::filesystem::weakly_canonical(source, error).string();
  if (error) canonical = source;
  const auto digest = crypto::blake2b256(as_bytes(canonical));
  return cache_dir + "/tape-" + to_hex(ByteSpan(digest.data(), 8)) + ".idx";
}

// What a tape drive says while it works (waiting for it to become ready,
// st options that look wrong): on stderr, the caller's terminal until the
// daemon is ready.
void print_drive_notice(const std::string& line) {
  std::fprintf(stderr, "mount.mixtape: %s\n", line.c_str());
}

// The progress of a found tape's first pass (the caller's terminal until
// the daemon is ready): the front ends' one line, with the whole pass's
// totals, on a terminal; in a pipe only what it is doing and its warnings,
// at most kShown of those (a damaged tar can have thousands).
class FoundTapeProgress final : public Progress {
 public:
  FoundTapeProgress()
      : line_([] {
          ProgressLine::Options options;
          options.draw = ::isatty(STDERR_FILENO);
          options.program = "mount.mixtape";
          return options;
        }()) {}
  ~FoundTapeProgress() override {
    if (warnings_ > kShown) {
      line_.clear();
      std::fprintf(stderr, "mount.mixtape: %llu more warnings\n",
                   static_cast<unsigned long long>(warnings_ - kShown));
    }
  }
  FoundTapeProgress(const FoundTapeProgress&) = delete;
  FoundTapeProgress& operator=(const FoundTapeProgress&) = delete;

  // A tar tape's index pass says what it is doing once, line or not.
  void announce_one_pass() { announce_ = true; }

  void phase(const std::string& name, std::uint64_t total_bytes,
             std::uint64_t total_items) override {
    if (announce_) {
      line_.clear();
      std::fprintf(stderr, "mount.mixtape: %s: one pass over the tape (later mounts read none)\n",
                   name.c_str());
    }
    line_.phase(name, total_bytes, total_items);
  }
  void totals(std::uint64_t bytes, std::uint64_t items) override { line_.totals(bytes, items); }
  void tape(const std::string& serial) override { line_.tape(serial); }
  void advance(std::uint64_t bytes, std::uint64_t items, const std::string& current) override {
    line_.advance(bytes, items, current);
  }
  void warning(const std::string& message) override {
    if (++warnings_ <= kShown) line_.warning(message);
  }

 private:
  static constexpr std::uint64_t kShown = 20;
  ProgressLine line_;
  bool announce_ = false;
  std::uint64_t warnings_ = 0;
};

crypto::AgeDecryptKeys keys_from(const Options& options) {
  restore::KeyFiles files;
  if (!options.identity.empty()) files.identities.push_back(options.identity);
  files.passphrase_file = options.passphrase_file;
  files.default_identity = user_path_or_root(UserDir::kConfig, "mixtape/identity.txt");
  // Before the daemon is ready its stderr is still the caller's terminal.
  return restore::load_keys(files, [](const std::string& warning) {
    std::fprintf(stderr, "mount.mixtape: warning: %s\n", warning.c_str());
  });
}

// Everything a mount holds, in the order it must be torn down (reverse).
class Mount {
 public:
  explicit Mount(const Options& options) {
    if (!std::filesystem::is_directory(options.mountpoint))
      throw Error("mount point " + options.mountpoint + " is not a directory");
    std::string cache_dir =
        options.cache.empty() ? user_path_or_root(UserDir::kCache, "mixtape/stage") : options.cache;
    auto keys = keys_from(options);
    std::unique_ptr<tape::Drive> found_drive;
    bool foreign_tape = false;
    // A found tape's block index goes to the cache folder, never beside the
    // image: the medium may be read-only, and a sidecar found there was made
    // by whoever made the tape.
    tape::OpenDriveOptions drive_options;
    drive_options.read_only = true;
    drive_options.notice = print_drive_notice;
    if (!is_tape(options.source)) {
      catalog_path_ = options.source;
      // Once, before serving: a damaged catalog is refused here, not found
      // out file by file as EIO. Unchanged since a check passed, only the
      // cheap checks run: a mount answers in a second at any catalog size.
      auto catalog = catalog::Catalog::open_read_only(catalog_path_);
      catalog.check_integrity(catalog::integrity_stamp_dir());
      // Keys that cannot read these tapes are refused now, not found out by
      // a read that blocks.
      if (std::string problem = restore::key_problem(catalog.config(), keys); !problem.empty())
        throw Error(problem);
    } else {
      // A tape found in a drawer: its catalog comes from its trailing index
      // (or its indexes), kept in the cache folder; the tape itself is the
      // library unless one was named.
      std::filesystem::create_directories(cache_dir);
      drive_options.index_path = found_index_path(cache_dir, options.source);
      found_drive = tape::open_drive(options.source, drive_options);
      if (foreign::identify(*found_drive) == foreign::TapeKind::kForeign) {
        // A tape mixtape never wrote (tar archives): indexed in one pass
        // into the cache folder the first time, shown as file1/, file2/...
        FoundTapeProgress progress;
        progress.announce_one_pass();
        foreign::IndexOptions indexing;
        indexing.progress = &progress;
        catalog_path_ =
            foreign::catalog_for_foreign_tape(*found_drive, cache_dir, indexing).catalog_path;
        foreign_tape = true;
      } else {
        // Reading the tape's trailing index (or walking its indexes) takes
        // a while on a real drive: its progress, on the caller's terminal.
        FoundTapeProgress progress;
        recover::RecoverOptions recover_options;
        recover_options.progress = &progress;
        catalog_path_ =
            recover::catalog_for_found_tape(*found_drive, cache_dir, keys, recover_options)
                .catalog_path;
      }
    }
    tree_ = std::make_unique<fs::Tree>(catalog_path_, foreign_tape);
    tape::LibrarySpec spec;
    spec.device = options.device;
    spec.library = options.library;
    spec.changer = options.changer;
    spec.read_only = true;
    spec.notice = print_drive_notice;
    found_tape_ = found_drive != nullptr;
    // Nothing named to read from but the found tape itself (or nothing at
    // all): no other tape can come, so a file elsewhere fails at once.
    const bool nothing_named = spec.device.empty() && spec.library.empty() && spec.changer.empty();
    if (found_drive && nothing_named) {
      library_ = tape::single_drive_library(std::move(found_drive), foreign::serial_reader(),
                                            [source = options.source, drive_options] {
                                              return tape::open_drive(source, drive_options);
                                            });
    } else {
      if (spec.device.empty() && spec.library.empty()) {
        // No drive named: nothing can be recalled until one is, and reads of
        // unstaged files time out (ENOMEDIUM) rather than hang forever.
        spec.library = cache_dir + "/no-library";
        std::filesystem::create_directories(spec.library);
      }
      library_ = tape::open_library(spec, foreign::serial_reader());
    }
    restore::StageCacheOptions cache_options;
    cache_options.directory = cache_dir;
    if (options.cache_size) cache_options.capacity = options.cache_size;
    // A mount of the same cache that was just unmounted may still be
    // ending: waited for, rather than failing a remount.
    cache_options.lock_wait = std::chrono::seconds(10);
    cache_options.on_wait = [](const std::string& message) {
      std::fprintf(stderr, "mount.mixtape: %s\n", message.c_str());
    };
    cache_ = std::make_unique<restore::StageCache>(cache_options);
    restore::RecallOptions recall_options;
    recall_options.release_idle_after =
        std::chrono::milliseconds(static_cast<long>(options.idle_seconds * 1000));
    queue_ = std::make_unique<restore::RecallQueue>(catalog_path_, *library_, std::move(keys),
                                                    cache_.get(), recall_options);
    fs::RecallContentOptions content_options;
    content_options.policy = options.recall == RecallPolicy::kOpen   ? fs::RecallPolicy::kOpen
                             : options.recall == RecallPolicy::kRead ? fs::RecallPolicy::kRead
                                                                     : fs::RecallPolicy::kNever;
    if (options.wait_seconds)
      content_options.wait = std::chrono::seconds(static_cast<long>(*options.wait_seconds));
    content_options.tapes_can_arrive = !nothing_named;
    content_ =
        std::make_unique<fs::RecallContent>(*tree_, *library_, *cache_, *queue_, content_options);
  }

  int serve(const Options& options, const std::function<void()>& ready) {
    fs::MountOptions mount;
    mount.mountpoint = options.mountpoint;
    mount.foreground = options.foreground;
    mount.debug = options.debug;
    mount.allow_other = options.allow_other;
    return fs::serve(*tree_, *content_, *content_, mount, ready);
  }

 private:
  std::string catalog_path_;
  bool found_tape_ = false;
  std::unique_ptr<fs::Tree> tree_;
  std::unique_ptr<tape::Library> library_;
  std::unique_ptr<restore::StageCache> cache_;
  std::unique_ptr<restore::RecallQueue> queue_;
  std::unique_ptr<fs::RecallContent> content_;
};

int run_foreground(const Options& options) {
  Mount mount(options);
  return mount.serve(options, [] {});
}

// The parent waits on a pipe: "ok" once the kernel mount exists, or the
// child's error line.
int run_daemon(const Options& options) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw_errno("pipe");
  UniqueFd read_end(fds[0]), write_end(fds[1]);
  pid_t pid = ::fork();
  if (pid < 0) throw_errno("fork");
  if (pid > 0) {
    write_end.reset();
    std::string message;
    char buf[512];
    for (ssize_t n; (n = ::read(read_end.get(), buf, sizeof buf)) > 0;) message.append(buf, n);
    if (message == "ok") return 0;
    std::fprintf(stderr, "mount.mixtape: %s\n",
                 message.empty() ? "the mount process died before it was ready" : message.c_str());
    return 1;
  }
  read_end.reset();
  ::setsid();
  // The daemon returns from main rather than calling _exit: the mount is
  // torn down by its destructors, and a sanitizer build checks it for leaks.
  int rc = 1;
  try {
    Mount mount(options);
    rc = mount.serve(options, [&] {
      write_all(write_end.get(), as_bytes("ok"), "the mount pipe");
      write_end.reset();
      int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
      if (null >= 0) {
        ::dup2(null, STDIN_FILENO);
        ::dup2(null, STDOUT_FILENO);
        ::dup2(null, STDERR_FILENO);
        ::close(null);
      }
      if (::chdir("/") != 0) {
        // Nothing depends on the working directory; staying is harmless.
      }
    });
  } catch (const std::exception& e) {
    if (write_end.valid()) {
      try {
        write_all(write_end.get(), as_bytes(e.what()), "the mount pipe");
      } catch (const std::exception&) {
      }
    }
    rc = 1;
  }
  return rc == 0 ? 0 : 1;
}

}  // namespace
}  // namespace mixtape::mount

constexpr char kUsage[] =
    "usage: mount.mixtape SOURCE DIR [-sfnv] [-o OPTION[,OPTION]...]\n"
    "Mounts a mixtape catalog (or a tape found without one) read-only at DIR.\n"
    "\n"
    "  -s  ignore options this helper does not know\n"
    "  -f  check the arguments and options, then exit without mounting\n"
    "  -n  accepted and ignored\n"
    "  -v  with -f, say what would be mounted\n"
    "  -V, --version  print the version;  --help  print this\n"
    "\n"
    "Options (-o): identity=FILE passphrase_file=FILE library=DIR device=DEV\n"
    "  changer=/dev/sgN cache=DIR cache_size=SIZE wait=SECONDS idle=SECONDS\n"
    "  recall=open|read|never allow_other foreground debug ro; mount(8)'s and\n"
    "  fstab's (noauto, user, x-systemd.automount, ...) are accepted and ignored.\n"
    "See mount.mixtape(8).\n";

int main(int argc, char** argv) {
  using namespace mixtape::mount;
  try {
    Options options = parse_options(std::vector<std::string>(argv, argv + argc), called_by_mount());
    if (options.help) {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (options.version) {
      std::printf("mount.mixtape %s\n", MIXTAPE_VERSION);
      return 0;
    }
    if (options.fake) {
      if (options.verbose)
        std::fprintf(stderr, "mount.mixtape: fake mount of %s on %s\n", options.source.c_str(),
                     options.mountpoint.c_str());
      return 0;
    }
    return options.foreground ? run_foreground(options) : run_daemon(options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mount.mixtape: %s\n", e.what());
    return 1;
  }
}
