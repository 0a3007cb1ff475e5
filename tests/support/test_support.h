// What every test folder needs: a temporary directory, files in and out,
// seeded random content, running shell commands, what a suite's tests
// share, waiting for a condition instead of sleeping, and expecting one
// failure by its type and message. Folder headers (tests/<module>/*util.h)
// add what is particular to their module.
#pragma once

#include <cxxabi.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <typeinfo>

#include "engine/common/common.h"
#include "engine/crypto/crypto.h"

namespace mixtape::test_support {

// A fresh directory under $TMPDIR, removed with everything in it. Modes are
// restored first, so what a test made unreadable goes too.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "mixtape-test-XXXXXX");
    if (!::mkdtemp(pattern.data())) throw_errno("mkdtemp");
    path_ = pattern;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ignored;
    for (auto it = std::filesystem::recursive_directory_iterator(
             path_, std::filesystem::directory_options::skip_permission_denied, ignored);
         it != std::filesystem::recursive_directory_iterator(); it.increment(ignored)) {
      if (!it->is_symlink(ignored)) ::chmod(it->path().c_str(), 0700);
    }
    std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  std::string operator/(const std::string& name) const { return file(name); }

 private:
  std::string path_;
};

// Writes `data` to `path`, creating the parent directories.
inline void write_file(const std::string& path, std::string_view data) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  UniqueFd fd = open_file(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  write_all(fd.get(), as_bytes(data), path);
}

inline void write_file(const std::string& path, ByteSpan data) {
  write_file(path, as_chars(data));
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read " + path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Incompressible content, the same for the same seed.
inline std::string random_text(std::size_t size, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::string out(size, '\0');
  for (auto& c : out) c = static_cast<char>(rng());
  return out;
}

inline std::string hash_hex(std::string_view data) {
  return to_hex(crypto::blake2b256(as_bytes(data)));
}

// Single-quotes text for the shell.
inline std::string shell_quote(const std::string& text) {
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// "key": number pairs of a --stats-json file or .mixtape/stats.
inline std::map<std::string, double> read_stats_text(const std::string& text) {
  std::map<std::string, double> stats;
  std::size_t pos = 0;
  while ((pos = text.find('"', pos)) != std::string::npos) {
    std::size_t end = text.find('"', pos + 1);
    std::string key = text.substr(pos + 1, end - pos - 1);
    std::size_t colon = text.find(':', end);
    stats[key] = std::strtod(text.c_str() + colon + 1, nullptr);
    pos = text.find_first_of(",}", colon);
  }
  return stats;
}

// The counters of a --stats-json file.
inline std::map<std::string, double> read_stats(const std::string& path) {
  return read_stats_text(read_file(path));
}

struct CommandResult {
  int status = -1;  // exit status; -1 if killed by a signal
  std::string out;
  std::string err;
};

// Runs a shell command, capturing stdout and stderr (through files in
// $TMPDIR, so output of any size and binary output are fine).
inline CommandResult run_shell(const std::string& command) {
  TempDir scratch;
  const std::string out = scratch.file("stdout"), err = scratch.file("stderr");
  // A subshell, so that redirections inside `command` keep their meaning.
  int rc = std::system(
      ("( " + command + " ) > " + shell_quote(out) + " 2> " + shell_quote(err)).c_str());
  CommandResult result;
  result.status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  result.out = read_file(out);
  result.err = read_file(err);
  return result;
}

// Polls `ready` every `pause` until it holds (true) or `limit` passes
// (false). What tests wait on instead of sleeping: the limit is far beyond
// what the wait takes even under the sanitizers on a loaded machine, so
// only a hang reaches it.
template <typename Ready>
bool poll_until(Ready ready, std::chrono::milliseconds limit = std::chrono::seconds(300),
                std::chrono::milliseconds pause = std::chrono::milliseconds(1)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!ready()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(pause);
  }
  return true;
}

// The calling thread's id, for thread_asleep().
inline pid_t this_thread_id() {
  return static_cast<pid_t>(::gettid());
}

// Whether thread `tid` of this process is asleep (blocked in a wait, a
// sleep, a read), by its state in /proc: how a test knows that another
// thread waits before it does what should wake it, with no pause.
inline bool thread_asleep(pid_t tid) {
  std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/stat");
  std::string stat;
  std::getline(in, stat);
  const auto close = stat.rfind(')');  // after the command name, which may hold anything
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] == 'S';
}

inline bool have_tool(const std::string& name) {
  return std::system(("command -v " + name + " >/dev/null 2>&1").c_str()) == 0;
}

// What the tests of a suite share (a backed-up tape, keys made once), made
// by the first test that asks, in its SetUp. Not in SetUpTestSuite: when
// that fails, GoogleTest marks the suite's tests skipped, not failed. Here
// a failure to make it fails every test that needs it, with the reason (it
// is made once: a second test gets the first one's reason).
template <typename T>
class SharedSetup {
 public:
  // The shared value, made by `make` (returning a std::unique_ptr<T>) the
  // first time.
  template <typename Make>
  T& get(Make make) {
    if (!value_ && error_.empty()) {
      try {
        value_ = make();
        if (!value_) error_ = "nothing was made";
      } catch (const std::exception& e) {
        error_ = e.what();
      }
    }
    if (!value_) throw Error("the suite's shared setup failed: " + error_);
    return *value_;
  }
  void reset() {
    value_.reset();
    error_.clear();
  }

 private:
  std::unique_ptr<T> value_;
  std::string error_;
};

// What a statement threw: whether it was the expected type (or derived from
// it), and its message, or what else happened.
struct Thrown {
  bool expected = false;
  std::string text;
};

inline std::string type_name(const std::type_info& type) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name(
      abi::__cxa_demangle(type.name(), nullptr, nullptr, &status), std::free);
  return name ? name.get() : type.name();
}

template <typename E, typename Statement>
Thrown thrown_by(Statement&& statement) {
  try {
    statement();
  } catch (const E& e) {
    return {true, e.what()};
  } catch (const std::exception& e) {
    return {false, "it threw " + type_name(typeid(e)) + ": " + e.what()};
  }
  return {false, "it threw nothing"};
}

}  // namespace mixtape::test_support

// EXPECT_THROW_MESSAGE(statement, Type, needle): `statement` throws a Type
// (or a class derived from it) whose message holds `needle`. Where
// EXPECT_THROW(statement, Error) takes any failure at all, this names the
// one meant.
#define EXPECT_THROW_MESSAGE(statement, Type, needle)                                   \
  do {                                                                                  \
    const ::mixtape::test_support::Thrown thrown_ =                                     \
        ::mixtape::test_support::thrown_by<Type>([&] { statement; });                   \
    EXPECT_TRUE(thrown_.expected&& thrown_.text.find(needle) != std::string::npos)      \
        << "expected " #statement " to throw " #Type " saying \"" << (needle) << "\"; " \
        << (thrown_.expected ? "it said: " : "") << thrown_.text;                       \
  } while (0)
