// run_command: the real CommandRunner. No shell, so arguments are never
// reinterpreted; stdout and stderr are captured together, as a person
// running the command would see them.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "engine/tape/libraries.h"
#include "engine/tape/tape.h"

extern char** environ;

namespace mixtape::tape {
namespace {

// posix_spawn's file actions, released on every path.
class FileActions {
 public:
  FileActions() { posix_spawn_file_actions_init(&actions_); }
  FileActions(const FileActions&) = delete;
  FileActions& operator=(const FileActions&) = delete;
  ~FileActions() { posix_spawn_file_actions_destroy(&actions_); }
  posix_spawn_file_actions_t* get() { return &actions_; }

 private:
  posix_spawn_file_actions_t actions_;
};

}  // namespace

CommandResult run_command(const std::vector<std::string>& argv) {
  if (argv.empty()) throw TapeError(TapeErrorKind::kInvalidArgument, "run_command: empty argv");
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw_errno("cannot create pipe");
  UniqueFd read_end(fds[0]);
  UniqueFd write_end(fds[1]);

  FileActions actions;
  posix_spawn_file_actions_adddup2(actions.get(), write_end.get(), STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(actions.get(), write_end.get(), STDERR_FILENO);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  pid_t pid = 0;
  int rc = ::posix_spawnp(&pid, argv[0].c_str(), actions.get(), nullptr, args.data(), environ);
  write_end.reset();
  if (rc != 0) return {127, "cannot run " + argv[0] + ": " + std::strerror(rc)};

  CommandResult result;
  FdSource source(read_end.get(), argv[0]);
  std::uint8_t buffer[4096];
  for (;;) {
    std::size_t n = source.read(buffer);
    if (n == 0) break;
    result.output.append(reinterpret_cast<const char*>(buffer), n);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw_errno("cannot wait for " + argv[0]);
  }
  result.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

}  // namespace mixtape::tape
