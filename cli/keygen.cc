// mixtape keygen: a new age X25519 identity, behaving like age-keygen so that
// people and scripts used to it get what they expect: the identity file on
// stdout or in -o FILE (created 0600, never overwritten), and "Public key:
// age1..." on stderr whenever the identity does not go to a terminal.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <ctime>
#include <memory>

#include "cli/commands.h"
#include "engine/crypto/crypto.h"

namespace mixtape::cli {
namespace {

void keygen(const std::string& output) {
  crypto::X25519Identity identity = crypto::X25519Identity::generate();
  std::string recipient = identity.recipient().to_string();
  if (!output.empty()) {
    try {
      crypto::write_identity_file(output, identity);
    } catch (const SystemError& e) {
      if (e.code() == EEXIST)
        throw Error(output +
                    " already exists; not overwriting it (an identity file is never replaced)");
      throw;
    }
    std::fprintf(stderr, "Public key: %s\n", recipient.c_str());
    return;
  }
  struct stat st {};
  if (::fstat(STDOUT_FILENO, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & S_IROTH))
    std::fprintf(stderr, "mixtape: warning: writing secret key to a world-readable file\n");
  if (!::isatty(STDOUT_FILENO)) std::fprintf(stderr, "Public key: %s\n", recipient.c_str());
  std::string text = crypto::identity_file_text(identity, std::time(nullptr));
  try {
    write_all(STDOUT_FILENO, as_bytes(text), "standard output");
  } catch (...) {
    crypto::wipe(text);
    throw;
  }
  crypto::wipe(text);
}

}  // namespace

void add_keygen_command(CLI::App& app) {
  CLI::App* command =
      app.add_subcommand("keygen", "Generate an age X25519 identity (same format as age-keygen)");
  auto output = std::make_shared<std::string>();
  command->add_option("-o,--output", *output,
                      "Write the identity to FILE (mode 0600, never overwritten) and print the "
                      "public key on stderr");
  command->callback([output] { keygen(*output); });
}

}  // namespace mixtape::cli
