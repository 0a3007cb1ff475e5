// load_keys: identity and passphrase files for reading tapes, with the
// checks a key file deserves before its secret is read.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <string_view>

#include "engine/restore/restore.h"

namespace mixtape::restore {
namespace {

// Warns about a key file its group or others may read (ssh refuses such a
// key; refusing would break existing setups, so this only says so).
void check_private(int fd, const std::string& path, const char* what,
                   const std::function<void(const std::string&)>& warn) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw_errno("cannot stat " + path);
  if ((st.st_mode & 077) == 0 || !warn) return;
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
  warn(std::string(what) + " " + path + " can be read by " +
       ((st.st_mode & 007) ? "anyone" : "its group") + " (mode " + mode +
       "); make it private with `chmod 600 " + path + "`");
}

// An identity file that is an age file: age -p (or age -e of a key file)
// made it. Its scrypt stanza may ask for any work factor, so it is refused
// from its first bytes, before anything is decrypted.
void refuse_encrypted_identity(int fd, const std::string& path) {
  char head[40] = {};
  ssize_t n = ::pread(fd, head, sizeof head, 0);
  if (n <= 0) return;
  std::string_view start(head, static_cast<std::size_t>(n));
  if (start.starts_with("age-encryption.org/") ||
      start.starts_with("-----BEGIN AGE ENCRYPTED FILE-----")) {
    throw crypto::AgeError(crypto::AgeErrorKind::KeyMalformed,
                           "identity file " + path +
                               " is itself encrypted with age (a passphrase-protected identity); " +
                               "mixtape reads plain identity files: decrypt it with `age -d -o " +
                               "FILE " + path + "` and keep FILE private");
  }
}

std::vector<crypto::X25519Identity> load_identity_file(
    const std::string& path, const std::function<void(const std::string&)>& warn) {
  // A key pasted where its file's name goes: saying "cannot open <key>"
  // would print the secret.
  std::string head = path.substr(0, 15);
  for (auto& c : head) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (head == "AGE-SECRET-KEY-") {
    throw crypto::AgeError(crypto::AgeErrorKind::KeyMalformed,
                           "an identity was given as a secret key, not as the name of a file "
                           "holding one; put the key in a file (mode 0600) and name that file");
  }
  UniqueFd fd = open_file(path, O_RDONLY | O_CLOEXEC);
  refuse_encrypted_identity(fd.get(), path);
  check_private(fd.get(), path, "identity file", warn);
  return crypto::load_identities(path);
}

}  // namespace

crypto::AgeDecryptKeys load_keys(const KeyFiles& files,
                                 const std::function<void(const std::string&)>& warn) {
  crypto::AgeDecryptKeys keys;
  for (const auto& path : files.identities) {
    auto loaded = load_identity_file(path, warn);
    keys.identities.insert(keys.identities.end(), loaded.begin(), loaded.end());
  }
  if (!files.passphrase_file.empty()) {
    UniqueFd fd = open_file(files.passphrase_file, O_RDONLY | O_CLOEXEC);
    check_private(fd.get(), files.passphrase_file, "passphrase file", warn);
    keys.passphrase = crypto::load_passphrase_file(files.passphrase_file);
  }
  if (keys.identities.empty() && !keys.passphrase && !files.default_identity.empty() &&
      std::filesystem::exists(files.default_identity)) {
    keys.identities = load_identity_file(files.default_identity, warn);
  }
  return keys;
}

std::string key_problem(const catalog::CatalogConfig& config, const crypto::AgeDecryptKeys& keys) {
  switch (config.encryption) {
    case catalog::Encryption::kNone:
      return {};
    case catalog::Encryption::kPassphrase:
      if (keys.passphrase) return {};
      return "this catalog's tapes are encrypted with a passphrase, and none was given "
             "(--passphrase-file, or passphrase_file= for the mount)";
    case catalog::Encryption::kRecipients:
      break;
  }
  if (keys.identities.empty())
    return "this catalog's tapes are encrypted, and no identity was given (-i FILE, or "
           "identity= for the mount; the default, ~/.config/mixtape/identity.txt, is missing)";
  for (const auto& text : config.recipients) {
    try {
      const auto recipient = crypto::X25519Recipient::parse(text);
      for (const auto& identity : keys.identities)
        if (identity.recipient() == recipient) return {};
    } catch (const crypto::AgeError&) {
      // Not an X25519 recipient: none of ours can match it.
    }
  }
  std::string given;
  for (const auto& identity : keys.identities)
    given += (given.empty() ? "" : ", ") + identity.recipient().to_string();
  std::string wanted;
  for (const auto& text : config.recipients) wanted += (wanted.empty() ? "" : ", ") + text;
  return "the identity given (public key " + given +
         ") cannot decrypt this catalog's tapes, which are encrypted to " + wanted +
         " (wrong identity file?)";
}

}  // namespace mixtape::restore
