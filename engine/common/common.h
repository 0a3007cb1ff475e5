// engine/common: the vocabulary every engine module shares.
//
// Errors are exceptions deriving from mixtape::Error; each carries a message
// that already names its context (file, tape, block), so a front end can print
// what() as its one line. Modules derive their own error types when callers
// must tell kinds apart (see crypto::AgeError).
//
// Byte streams are the three small interfaces below. Pipelines are built by
// composing them: tar writer -> age encryptor -> record writer -> drive, each
// stage a ByteSink writing into the next, so no stage holds a whole file.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace mixtape {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// An operating-system failure; code() is the errno value.
class SystemError : public Error {
 public:
  SystemError(const std::string& context, int code);
  int code() const { return code_; }

 private:
  int code_;
};

// Throws SystemError for the current errno, prefixed by context.
[[noreturn]] void throw_errno(const std::string& context);

using Bytes = std::vector<std::uint8_t>;
using ByteSpan = std::span<const std::uint8_t>;
using MutableByteSpan = std::span<std::uint8_t>;

inline ByteSpan as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}
inline std::string_view as_chars(ByteSpan b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// A consumer of a byte stream. write() may be called any number of times;
// close() marks the end of the stream (flushing, finalising trailers) and must
// be called exactly once for the output to be complete. A sink destroyed
// without close() leaves its output incomplete, never silently "finished".
class ByteSink {
 public:
  virtual ~ByteSink() = default;
  virtual void write(ByteSpan data) = 0;
  virtual void close() = 0;
  // write() of bytes that stay valid and unchanged while `owner` is held: a
  // sink that hands data to another thread may keep `owner` instead of
  // copying (the producer reuses the memory once it holds the only
  // reference). By default, a plain write().
  virtual void write_shared(ByteSpan data, const std::shared_ptr<const void>& owner) {
    (void)owner;
    write(data);
  }
};

// Memory kept from one job to the next, so that a run of archives or files
// does not fault in fresh pages for each. A buffer taken may go to other
// threads by shared_ptr (ByteSink::write_shared); it is handed out again
// once the pool holds the only reference. One thread at a time takes from a
// pool.
class BufferPool {
 public:
  struct Buffer {
    explicit Buffer(std::size_t size);
    std::unique_ptr<std::uint8_t[]> data;
    std::size_t size;
  };

  BufferPool() = default;
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  // A buffer of `size` bytes nobody else holds (contents undefined).
  std::shared_ptr<Buffer> take(std::size_t size);
  std::size_t buffers() const { return buffers_.size(); }  // ever made

 private:
  std::vector<std::shared_ptr<Buffer>> buffers_;
};

// A producer of a byte stream. read() fills up to out.size() bytes and returns
// how many; 0 means end of stream. Short reads are allowed before the end.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual std::size_t read(MutableByteSpan out) = 0;
};

// Reads exactly out.size() bytes unless the source ends first; returns count.
std::size_t read_full(ByteSource& source, MutableByteSpan out);

// Bytes addressable by offset (a file, a tape archive seen through a reader).
// read_at returns fewer bytes than asked only at the end of the data.
class RandomAccessSource {
 public:
  virtual ~RandomAccessSource() = default;
  virtual std::uint64_t size() const = 0;
  virtual std::size_t read_at(std::uint64_t offset, MutableByteSpan out) = 0;
};

// Sequential reading of a RandomAccessSource from an offset on.
class OffsetReader final : public ByteSource {
 public:
  OffsetReader(RandomAccessSource& source, std::uint64_t offset)
      : source_(source), offset_(offset) {}
  std::size_t read(MutableByteSpan out) override {
    std::size_t n = source_.read_at(offset_, out);
    offset_ += n;
    return n;
  }

 private:
  RandomAccessSource& source_;
  std::uint64_t offset_;
};

// Owns a file descriptor; closes it on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd();

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// open(2) that throws SystemError naming the path.
UniqueFd open_file(const std::string& path, int flags, unsigned mode = 0);

// Writes all of data to fd (retrying short writes and EINTR); throws naming `what`.
void write_all(int fd, ByteSpan data, const std::string& what);

// A sink writing to a file descriptor it does not own.
class FdSink final : public ByteSink {
 public:
  FdSink(int fd, std::string name) : fd_(fd), name_(std::move(name)) {}
  void write(ByteSpan data) override { write_all(fd_, data, name_); }
  void close() override {}

 private:
  int fd_;
  std::string name_;
};

// A source reading from a file descriptor it does not own.
class FdSource final : public ByteSource {
 public:
  FdSource(int fd, std::string name) : fd_(fd), name_(std::move(name)) {}
  std::size_t read(MutableByteSpan out) override;

 private:
  int fd_;
  std::string name_;
};

// Random access over a regular file (pread).
class FileRandomAccess final : public RandomAccessSource {
 public:
  explicit FileRandomAccess(const std::string& path);
  std::uint64_t size() const override { return size_; }
  std::size_t read_at(std::uint64_t offset, MutableByteSpan out) override;

 private:
  std::string path_;
  UniqueFd fd_;
  std::uint64_t size_ = 0;
};

// Collects everything written into memory (tests, small indexes).
class MemorySink final : public ByteSink {
 public:
  void write(ByteSpan data) override { bytes_.insert(bytes_.end(), data.begin(), data.end()); }
  void close() override { closed_ = true; }
  const Bytes& bytes() const { return bytes_; }
  bool closed() const { return closed_; }

 private:
  Bytes bytes_;
  bool closed_ = false;
};

// Reads from a span the caller keeps alive.
class MemorySource final : public ByteSource, public RandomAccessSource {
 public:
  explicit MemorySource(ByteSpan data) : data_(data) {}
  std::size_t read(MutableByteSpan out) override;
  std::uint64_t size() const override { return data_.size(); }
  std::size_t read_at(std::uint64_t offset, MutableByteSpan out) override;

 private:
  ByteSpan data_;
  std::size_t pos_ = 0;
};

std::string to_hex(ByteSpan bytes);
// Parses lower- or upper-case hex; throws Error on odd length or bad digits.
Bytes from_hex(std::string_view hex);

// "512K", "64M", "2.5T", "1G", "4096" (binary units: K = 1024). Throws Error.
std::uint64_t parse_size(std::string_view text);
// 1536 -> "1.5 KiB"; for progress and status output.
std::string format_size(std::uint64_t bytes);

// Where a user's files go (the XDG base directories): `leaf` under
// $XDG_CONFIG_HOME, $XDG_DATA_HOME or $XDG_CACHE_HOME when set and not
// empty, else under ~/.config, ~/.local/share or ~/.cache. Empty when
// neither the variable nor $HOME is set.
enum class UserDir { kConfig, kData, kCache };
std::string user_path(UserDir dir, std::string_view leaf);
// The same, with root's home standing in for an unset $HOME (the CLI's
// defaults, which must name some file).
std::string user_path_or_root(UserDir dir, std::string_view leaf);

// What long-running work reports (backup, restore, verify, recover, the
// mount's pass over a found tape); the front ends draw it as one line on a
// terminal (ProgressLine). backup() calls it from its hash and write
// threads, but never two calls at once, so implementations need no locking
// of their own.
//
// A run has few stages ("scan", then "backup"; "restore"; "verify"), never
// one per tape or archive: counters start again only at phase(), so a line
// shows the whole run's totals. The tape in use and revised totals are told
// as they change.
class Progress {
 public:
  virtual ~Progress() = default;
  // A new stage of the run with its totals (0: not known); counters restart.
  virtual void phase(const std::string& /*name*/, std::uint64_t /*total_bytes*/,
                     std::uint64_t /*total_items*/) {}
  // The stage's totals as now known (work that turned out not to be needed,
  // a tape that is not there, an estimate made exact); 0: not known.
  virtual void totals(std::uint64_t /*total_bytes*/, std::uint64_t /*total_items*/) {}
  // The tape being read or written now ("L00001", several as "L00001+L00002";
  // "" none).
  virtual void tape(const std::string& /*serial*/) {}
  // Work done: in "scan", one call per entry (bytes 0); in "hash", per file
  // hashed; in "backup", per chunk copied to tape (bytes times the tapes it
  // goes to) and one item per file and tape; elsewhere bytes and files read.
  virtual void advance(std::uint64_t /*bytes*/, std::uint64_t /*items*/,
                       const std::string& /*current*/) {}
  // A file was read and hashed (backup() does this one archive ahead of the
  // write, so it also happens during the "backup" stage).
  virtual void file_hashed(const std::string& /*path*/, std::uint64_t /*bytes*/) {}
  // Something the user should know that does not stop the run.
  virtual void warning(const std::string& /*message*/) {}
};

// Progress that reports nothing (tests, scripts).
class SilentProgress final : public Progress {};

// Bytes (a path, a name, a value from a file) as they may appear in a
// message or a listing line: control bytes, DEL and the backslash as \xNN
// (lower-case hex), everything else as it is (UTF-8 names stay readable).
// At most `limit` bytes of the input are shown, then "...".
std::string printable(std::string_view bytes, std::size_t limit = std::string_view::npos);

// Progress drawn as one line on a terminal (the front ends'): the stage, its
// bytes done of its total, percent, rate, time left (h:mm:ss), files done
// of their total, the tape and the current file, cut to the terminal's
// width. Redrawn at most five times a second as work advances, at once
// when the tape changes, and once a second while nothing advances (the rate and time left stay true
// during a locate or a tape change). The rate and time left count from the stage's first byte, so a
// slow start (loading a tape) or a tiny first file cannot make them absurd; until a stage has run a
// moment the time left shows as
// -:--:--. Warnings always go out, on their own line. Without `draw` (a
// pipe, --quiet) nothing else is shown.
class ProgressLine final : public Progress {
 public:
  using Clock = std::chrono::steady_clock;
  struct Options {
    int fd = 2;                       // where the line goes (stderr)
    bool draw = true;                 // false: warnings only
    std::string program = "mixtape";  // warnings: "<program>: warning: ..."
    std::size_t width = 0;            // 0: the terminal's (80 when unknown)
    bool redraw_thread = true;        // the once-a-second redraw (off in tests)
    // The time (tests give their own); default steady_clock::now.
    std::function<Clock::time_point()> now;
  };
  explicit ProgressLine(Options options);
  ~ProgressLine() override;  // clears the line
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;

  void phase(const std::string& name, std::uint64_t total_bytes,
             std::uint64_t total_items) override;
  void totals(std::uint64_t total_bytes, std::uint64_t total_items) override;
  void tape(const std::string& serial) override;
  void advance(std::uint64_t bytes, std::uint64_t items, const std::string& current) override;
  void warning(const std::string& message) override;

  // Takes the line off the screen until the next draw, for something else
  // to be printed (a prompt, a result).
  void clear();
  // The line as it would be drawn now (without escape sequences).
  std::string line();
  // "0:00:19", "12:03:44": whole seconds as h:mm:ss.
  static std::string format_duration(std::uint64_t seconds);

 private:
  class State;
  std::unique_ptr<State> state_;
};

// Wall-clock time in nanoseconds since the epoch (what the catalog records).
std::int64_t now_ns();

// Where scratch files go: `configured` if not empty, else $TMPDIR, else /tmp.
std::string temp_directory(const std::string& configured = {});

// A scratch file name in a directory ("<dir>/mixtape-<stem>-<pid>-<time>.db"),
// removed with any SQLite side files (-journal, -wal, -shm) when this goes
// out of scope. The file itself is made by whoever uses the name.
class ScratchFile {
 public:
  ScratchFile(const std::string& dir, const std::string& stem);
  ScratchFile(const ScratchFile&) = delete;
  ScratchFile& operator=(const ScratchFile&) = delete;
  ~ScratchFile();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Who holds a flock(2) lock on the file open at fd, for a message saying
// what is in the way: "process 1234 (mount.mixtape /srv/catalog.db /mnt)",
// or "this process" when the lock is held through another descriptor of
// the caller. Found in /proc/locks; empty when it cannot be told.
std::string flock_holder(int fd);
// The command line of a process, arguments separated by spaces and cut at
// about 120 characters; empty if the process is gone.
std::string process_command_line(pid_t pid);
// Whether a process with that id exists (kill(pid, 0)).
bool process_exists(pid_t pid);

// An enum's names, written once for both directions: name() for to_string,
// parse() for reading them back (a catalog column, a setting).
template <typename Enum, std::size_t N>
struct EnumNames {
  struct Name {
    Enum value;
    const char* text;
  };
  Name names[N];

  const char* name(Enum value) const {
    for (const Name& n : names)
      if (n.value == value) return n.text;
    return "?";
  }
  std::optional<Enum> parse(std::string_view text) const {
    for (const Name& n : names)
      if (text == n.text) return n.value;
    return std::nullopt;
  }
};

}  // namespace mixtape
