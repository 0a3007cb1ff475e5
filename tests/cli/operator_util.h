// What the operator's-tool tests share: a scratch home with a sample tree,
// the built mixtape run as a user would from a shell (a clean environment,
// a working directory), JSON read back with Python's json module, and a
// command run on a terminal of its own (a pty).
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "tests/support/test_support.h"

namespace mixtape::cli::testing {

using namespace mixtape::test_support;

inline constexpr char kMixtape[] = MIXTAPE_BINARY_DIR "/cli/mixtape";
inline constexpr char kMountHelper[] = MIXTAPE_BINARY_DIR "/mount-helper/mount.mixtape";

namespace fs = std::filesystem;

// What a sanitizer run sets for the programs it tests (docs/TESTING.md):
// where reports go, and the (Release) program that tapes carry in file 0.
inline std::map<std::string, std::string> passed_through() {
  std::map<std::string, std::string> out;
  for (const char* name :
       {"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "MIXTAPE_ARCHAEOLOGY_BINARY"})
    if (const char* value = std::getenv(name)) out[name] = value;
  return out;
}

// The same as NAME=value words for `env`.
inline std::string passed_through_words() {
  std::string out;
  for (const auto& [name, value] : passed_through()) out += " " + name + "=" + shell_quote(value);
  return out;
}

// A home folder with a catalog to be, a library of images and a tree:
//   data/photos/a.raw, b.raw (random), data/notes.txt, data/link -> notes.txt
class Operator {
 public:
  Operator() : home_(dir_.file("home")), data_(dir_.file("home/data")) {
    fs::create_directories(home_);
    write_file(data_ + "/photos/a.raw", random_text(200000, 1));
    write_file(data_ + "/photos/b.raw", random_text(300000, 2));
    write_file(data_ + "/notes.txt", "first draft\n");
    fs::create_symlink("notes.txt", data_ + "/link");
  }

  const std::string& home() const { return home_; }
  const std::string& data() const { return data_; }
  std::string library() const { return home_ + "/tapes"; }
  std::string image(const std::string& serial) const { return library() + "/" + serial + ".tap"; }
  std::string path(const std::string& rel) const { return home_ + "/" + rel; }
  std::string catalog() const { return home_ + "/.local/share/mixtape/catalog.db"; }

  // `mixtape ARGS` in `cwd` (default: home), with only HOME, PATH, TMPDIR
  // and `environment` ("NAME=value ...", shell-quoted by the caller) set.
  CommandResult mixtape(const std::string& args, const std::string& environment = "",
                        const std::string& cwd = "") const {
    return run_shell(
        "cd " + shell_quote(cwd.empty() ? home_ : cwd) + " && env -i HOME=" + shell_quote(home_) +
        " PATH=/usr/bin:/bin TMPDIR=" + shell_quote(dir_.path()) + passed_through_words() + " " +
        environment + " " + kMixtape + " " + args + " </dev/null");
  }

  // init --copies N, then a first backup of data to a new library of 64M tapes.
  void init_and_back_up(int copies = 2) const {
    CommandResult r = mixtape("init --copies " + std::to_string(copies));
    ASSERT_EQ(r.status, 0) << r.err;
    r = mixtape("backup data --library tapes --new-library --capacity 64M");
    ASSERT_EQ(r.status, 0) << r.out << r.err;
  }

  std::string env(const std::string& name, const std::string& value) const {
    return name + "=" + shell_quote(value);
  }

 private:
  TempDir dir_;
  std::string home_;
  std::string data_;
};

// The value of a Python expression over the JSON document `json`, bound to
// `j` (e.g. "j['tapes'][0]['serial']"), printed by Python.
inline std::string json_eval(const std::string& json, const std::string& expression) {
  TempDir dir;
  write_file(dir.file("doc.json"), json);
  CommandResult r = run_shell("python3 -c " +
                              shell_quote("import json, sys\nj = json.load(open(sys.argv[1]))\n"
                                          "print(" +
                                          expression + ")") +
                              " " + shell_quote(dir.file("doc.json")));
  if (r.status != 0)
    ADD_FAILURE() << "not JSON, or " << expression << ": " << r.err << "\n" << json;
  while (!r.out.empty() && r.out.back() == '\n') r.out.pop_back();
  return r.out;
}

// What a command wrote on a terminal of its own (stdout and stderr are the
// pty), with its exit status. on_output is called with everything written
// so far after each read and may act on it (release a lock, insert a
// tape); it returns true once it has acted, and is not called again.
struct PtyResult {
  int status = -1;
  std::string output;
};

inline PtyResult run_in_pty(const std::vector<std::string>& argv,
                            const std::map<std::string, std::string>& environment,
                            const std::string& cwd,
                            const std::function<bool(const std::string&)>& on_output = {}) {
  struct winsize size {};
  size.ws_row = 24;
  size.ws_col = 200;
  int master = -1;
  pid_t pid = ::forkpty(&master, nullptr, nullptr, &size);
  if (pid < 0) throw_errno("forkpty");
  if (pid == 0) {
    if (::chdir(cwd.c_str()) != 0) ::_exit(126);
    ::clearenv();
    for (const auto& [name, value] : passed_through()) ::setenv(name.c_str(), value.c_str(), 1);
    for (const auto& [name, value] : environment) ::setenv(name.c_str(), value.c_str(), 1);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  UniqueFd fd(master);
  PtyResult result;
  bool acted = !on_output;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EIO once the child is gone and its output read
    result.output.append(buf, static_cast<std::size_t>(n));
    if (!acted) acted = on_output(result.output);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

}  // namespace mixtape::cli::testing
