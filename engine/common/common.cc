#include "engine/common/common.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace mixtape {

SystemError::SystemError(const std::string& context, int code)
    : Error(context + ": " + std::strerror(code)), code_(code) {}

void throw_errno(const std::string& context) {
  throw SystemError(context, errno);
}

std::size_t read_full(ByteSource& source, MutableByteSpan out) {
  std::size_t done = 0;
  while (done < out.size()) {
    std::size_t n = source.read(out.subspan(done));
    if (n == 0) break;
    done += n;
  }
  return done;
}

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) reset(other.release());
  return *this;
}

UniqueFd::~UniqueFd() {
  reset();
}

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

UniqueFd open_file(const std::string& path, int flags, unsigned mode) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  if (fd < 0) throw_errno("cannot open " + path);
  return UniqueFd(fd);
}

void write_all(int fd, ByteSpan data, const std::string& what) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("cannot write " + what);
    }
    data = data.subspan(static_cast<std::size_t>(n));
  }
}

std::size_t FdSource::read(MutableByteSpan out) {
  for (;;) {
    ssize_t n = ::read(fd_, out.data(), out.size());
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno != EINTR) throw_errno("cannot read " + name_);
  }
}

FileRandomAccess::FileRandomAccess(const std::string& path)
    : path_(path), fd_(open_file(path, O_RDONLY)) {
  struct stat st {};
  if (::fstat(fd_.get(), &st) != 0) throw_errno("cannot stat " + path);
  size_ = static_cast<std::uint64_t>(st.st_size);
}

std::size_t FileRandomAccess::read_at(std::uint64_t offset, MutableByteSpan out) {
  std::size_t done = 0;
  while (done < out.size()) {
    ssize_t n =
        ::pread(fd_.get(), out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("cannot read " + path_);
    }
    if (n == 0) break;
    done += static_cast<std::size_t>(n);
  }
  return done;
}

std::size_t MemorySource::read(MutableByteSpan out) {
  std::size_t n = read_at(pos_, out);
  pos_ += n;
  return n;
}

std::size_t MemorySource::read_at(std::uint64_t offset, MutableByteSpan out) {
  if (offset >= data_.size()) return 0;
  std::size_t n = std::min<std::uint64_t>(out.size(), data_.size() - offset);
  std::memcpy(out.data(), data_.data() + offset, n);
  return n;
}

std::string to_hex(ByteSpan bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(bytes.size() * 2, '\0');
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    out[2 * i] = kDigits[bytes[i] >> 4];
    out[2 * i + 1] = kDigits[bytes[i] & 0xf];
  }
  return out;
}

namespace {
int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

Bytes from_hex(std::string_view hex) {
  if (hex.size() % 2 != 0) throw Error("hex string has odd length");
  Bytes out(hex.size() / 2);
  for (std::size_t i = 0; i < out.size(); ++i) {
    int hi = hex_digit(hex[2 * i]);
    int lo = hex_digit(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) throw Error("invalid hex digit in '" + std::string(hex) + "'");
    out[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  return out;
}

std::uint64_t parse_size(std::string_view text) {
  const std::string original(text);
  if (text.empty()) throw Error("empty size");
  std::uint64_t multiplier = 1;
  char unit = text.back();
  if (unit == 'B' || unit == 'b') {
    text.remove_suffix(1);
    if (text.empty()) throw Error("invalid size '" + original + "'");
    unit = text.back();
  }
  static constexpr std::string_view kUnits = "KMGTP";
  if (auto pos = kUnits.find(static_cast<char>(std::toupper(static_cast<unsigned char>(unit))));
      pos != std::string_view::npos) {
    multiplier = 1ULL << (10 * (pos + 1));
    text.remove_suffix(1);
  }
  std::string number(text);
  char* end = nullptr;
  errno = 0;
  double value = std::strtod(number.c_str(), &end);
  if (number.empty() || end != number.c_str() + number.size() || errno != 0 || value < 0 ||
      !std::isfinite(value) || value * static_cast<double>(multiplier) > 1.8e19) {
    throw Error("invalid size '" + original + "' (expected e.g. 4096, 512K, 64M, 2.5T)");
  }
  return static_cast<std::uint64_t>(std::llround(value * static_cast<double>(multiplier)));
}

std::string format_size(std::uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 5) {
    value /= 1024;
    ++unit;
  }
  char buf[32];
  if (unit == 0)
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  else
    std::snprintf(buf, sizeof buf, "%.1f %s", value, kUnits[unit]);
  return buf;
}

namespace {

struct UserDirNames {
  const char* variable;
  const char* under_home;
};

UserDirNames names_of(UserDir dir) {
  switch (dir) {
    case UserDir::kConfig:
      return {"XDG_CONFIG_HOME", "/.config"};
    case UserDir::kData:
      return {"XDG_DATA_HOME", "/.local/share"};
    case UserDir::kCache:
      return {"XDG_CACHE_HOME", "/.cache"};
  }
  return {"XDG_CONFIG_HOME", "/.config"};
}

std::string user_path_in(UserDir dir, std::string_view leaf, const char* home_fallback) {
  const UserDirNames names = names_of(dir);
  std::string base;
  if (const char* set = std::getenv(names.variable); set && *set) {
    base = set;
  } else {
    const char* home = std::getenv("HOME");
    if (!home || !*home) home = home_fallback;
    if (!home) return {};
    base = std::string(home) + names.under_home;
  }
  return base + "/" + std::string(leaf);
}

}  // namespace

std::string user_path(UserDir dir, std::string_view leaf) {
  return user_path_in(dir, leaf, nullptr);
}

std::string user_path_or_root(UserDir dir, std::string_view leaf) {
  return user_path_in(dir, leaf, "/root");
}

// ---------------------------------------------------------------- buffers

// Not zero-filled first: untouched pages of a small file's batch never get
// committed.
BufferPool::Buffer::Buffer(std::size_t size)
    : data(std::make_unique_for_overwrite<std::uint8_t[]>(size)), size(size) {}

std::shared_ptr<BufferPool::Buffer> BufferPool::take(std::size_t size) {
  for (auto& buffer : buffers_) {
    if (buffer->size == size && buffer.use_count() == 1) {
      // Pairs with the release of the last other reference, so that
      // holder's accesses to the old bytes come before ours.
      std::atomic_thread_fence(std::memory_order_acquire);
      return buffer;
    }
  }
  buffers_.push_back(std::make_shared<Buffer>(size));
  return buffers_.back();
}

std::string printable(std::string_view bytes, std::size_t limit) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  const std::string_view shown = bytes.substr(0, limit);
  out.reserve(shown.size());
  for (char ch : shown) {
    auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f || c == '\\') {
      out.append("\\x").push_back(kDigits[c >> 4]);
      out.push_back(kDigits[c & 15]);
    } else {
      out.push_back(ch);
    }
  }
  if (bytes.size() > shown.size()) out += "...";
  return out;
}

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string temp_directory(const std::string& configured) {
  if (!configured.empty()) return configured;
  const char* tmp = std::getenv("TMPDIR");
  return tmp && *tmp ? tmp : "/tmp";
}

ScratchFile::ScratchFile(const std::string& dir, const std::string& stem)
    : path_(dir + "/mixtape-" + stem + "-" + std::to_string(::getpid()) + "-" +
            std::to_string(now_ns()) + ".db") {}

ScratchFile::~ScratchFile() {
  std::error_code ignored;
  for (const char* suffix : {"", "-journal", "-wal", "-shm"})
    std::filesystem::remove(path_ + suffix, ignored);
}

}  // namespace mixtape
