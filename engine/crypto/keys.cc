// X25519 keys, their Bech32 text forms, and identity / recipient files in the
// formats age-keygen writes and age reads.
#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "engine/crypto/internal.h"

namespace mixtape::crypto {

using internal::ensure_sodium;
using internal::fail;
using internal::WipeOnExit;

namespace {

// Identity and recipient files are small; this only bounds hostile input.
constexpr std::size_t kMaxKeyFileSize = 16 << 20;

std::string read_small_file(const std::string& path, const std::string& what) {
  UniqueFd fd = open_file(path, O_RDONLY);
  FdSource source(fd.get(), path);
  std::string text;
  text.reserve(4096);
  char buffer[4096];
  for (;;) {
    std::size_t n = source.read({reinterpret_cast<std::uint8_t*>(buffer), sizeof buffer});
    if (n == 0) break;
    if (text.size() + n > kMaxKeyFileSize) {
      wipe(text);
      wipe(buffer, sizeof buffer);
      fail(AgeErrorKind::KeyMalformed, what + " " + path + " is larger than 16 MiB");
    }
    // Grow by hand so a reallocation never leaves an unwiped copy behind.
    if (text.size() + n > text.capacity()) {
      std::string bigger;
      bigger.reserve(text.capacity() * 2 + n);
      bigger = text;
      wipe(text);
      text.swap(bigger);
    }
    text.append(buffer, n);
  }
  wipe(buffer, sizeof buffer);
  return text;
}

// Calls f(line, number) for each line that is not blank or a comment, as
// age's parsers do: LF or CRLF line ends, '#' only at the start of a line.
template <typename F>
void for_each_key_line(std::string_view text, F f) {
  std::size_t number = 0;
  while (!text.empty()) {
    std::size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
    ++number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line.front() == '#') continue;
    f(line, number);
  }
}

std::string rfc3339_local(std::time_t when) {
  std::tm tm{};
  localtime_r(&when, &tm);
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
  long offset = tm.tm_gmtoff;
  if (offset == 0) return std::string(date) + "Z";
  char sign = offset < 0 ? '-' : '+';
  if (offset < 0) offset = -offset;
  int hours = static_cast<int>(offset / 3600 % 100);
  int minutes = static_cast<int>(offset / 60 % 60);
  char zone[16];
  std::snprintf(zone, sizeof zone, "%c%02d:%02d", sign, hours, minutes);
  return std::string(date) + zone;
}

}  // namespace

X25519Recipient X25519Recipient::parse(std::string_view text) {
  if (text.starts_with("age1pq1"))
    fail(AgeErrorKind::KeyMalformed, "post-quantum (age1pq1...) recipients are not supported");
  internal::Bech32 decoded = internal::bech32_decode(text);
  if (decoded.hrp != internal::kRecipientHrp)
    fail(AgeErrorKind::KeyMalformed, "not an age X25519 recipient (age1...)");
  if (decoded.data.size() != kX25519KeySize)
    fail(AgeErrorKind::KeyMalformed, "age recipient has the wrong length");
  std::array<std::uint8_t, kX25519KeySize> key;
  std::memcpy(key.data(), decoded.data.data(), key.size());
  return X25519Recipient(key);
}

std::string X25519Recipient::to_string() const {
  return internal::bech32_encode(internal::kRecipientHrp, public_key_);
}

X25519Identity::X25519Identity(const SecretArray<kX25519KeySize>& secret) : secret_(secret) {
  ensure_sodium();
  if (crypto_scalarmult_curve25519_base(public_key_.data(), secret_.data()) != 0)
    fail(AgeErrorKind::KeyMalformed, "X25519 identity has no valid public key");
}

X25519Identity X25519Identity::generate() {
  SecretArray<kX25519KeySize> secret;
  internal::random_bytes(secret.span());
  return X25519Identity(secret);
}

X25519Identity X25519Identity::parse(std::string_view text) {
  if (text.starts_with("AGE-SECRET-KEY-PQ-1"))
    fail(AgeErrorKind::KeyMalformed,
         "post-quantum (AGE-SECRET-KEY-PQ-1...) identities are not supported");
  if (text.starts_with("AGE-PLUGIN-"))
    fail(AgeErrorKind::KeyMalformed, "age plugin identities are not supported");
  internal::Bech32 decoded = internal::bech32_decode(text);
  WipeOnExit wipe_data(decoded.data);
  if (decoded.hrp != internal::kIdentityHrp)
    fail(AgeErrorKind::KeyMalformed, "not an age X25519 identity (AGE-SECRET-KEY-1...)");
  if (decoded.data.size() != kX25519KeySize)
    fail(AgeErrorKind::KeyMalformed, "age identity has the wrong length");
  SecretArray<kX25519KeySize> secret;
  std::memcpy(secret.data(), decoded.data.data(), secret.size());
  return X25519Identity(secret);
}

std::string X25519Identity::to_string() const {
  std::string lower = internal::bech32_encode(internal::kIdentityHrp, secret_.span());
  for (char& c : lower)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return lower;
}

std::vector<X25519Identity> parse_identities(std::string_view text, const std::string& name) {
  std::vector<X25519Identity> identities;
  for_each_key_line(text, [&](std::string_view line, std::size_t number) {
    try {
      identities.push_back(X25519Identity::parse(line));
    } catch (const AgeError& e) {
      fail(AgeErrorKind::KeyMalformed,
           "identity file " + name + ", line " + std::to_string(number) + ": " + e.what());
    }
  });
  if (identities.empty())
    fail(AgeErrorKind::KeyMalformed, "identity file " + name + " contains no identities");
  return identities;
}

std::vector<X25519Identity> load_identities(const std::string& path) {
  std::string text = read_small_file(path, "identity file");
  WipeOnExit wipe_text(text);
  return parse_identities(text, path);
}

std::vector<X25519Recipient> parse_recipients(std::string_view text, const std::string& name) {
  std::vector<X25519Recipient> recipients;
  for_each_key_line(text, [&](std::string_view line, std::size_t number) {
    try {
      recipients.push_back(X25519Recipient::parse(line));
    } catch (const AgeError& e) {
      fail(AgeErrorKind::KeyMalformed,
           "recipients file " + name + ", line " + std::to_string(number) + ": " + e.what());
    }
  });
  if (recipients.empty())
    fail(AgeErrorKind::KeyMalformed, "recipients file " + name + " contains no recipients");
  return recipients;
}

std::vector<X25519Recipient> load_recipients(const std::string& path) {
  return parse_recipients(read_small_file(path, "recipients file"), path);
}

std::string identity_file_text(const X25519Identity& identity, std::time_t created) {
  std::string secret = identity.to_string();
  WipeOnExit wipe_secret(secret);
  std::string text = "# created: " + rfc3339_local(created) + "\n";
  text += "# public key: " + identity.recipient().to_string() + "\n";
  text.reserve(text.size() + secret.size() + 1);
  text += secret;
  text += '\n';
  return text;
}

void write_identity_file(const std::string& path, const X25519Identity& identity) {
  // O_EXCL: never replace a key file, not even through a planted symlink.
  UniqueFd fd = open_file(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
  std::string text = identity_file_text(identity, std::time(nullptr));
  WipeOnExit wipe_text(text);
  try {
    // The umask can only take bits away; make the mode exactly 0600.
    if (::fchmod(fd.get(), 0600) != 0) throw_errno("cannot set mode of " + path);
    write_all(fd.get(), as_bytes(text), path);
    // A key lost to a crash right after "keygen" loses every backup made with it.
    if (::fsync(fd.get()) != 0) throw_errno("cannot sync " + path);
  } catch (...) {
    ::unlink(path.c_str());
    throw;
  }
}

Passphrase load_passphrase_file(const std::string& path) {
  std::string text = read_small_file(path, "passphrase file");
  WipeOnExit wipe_text(text);
  std::string_view line(text);
  line = line.substr(0, line.find('\n'));
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.empty()) fail(AgeErrorKind::KeyMalformed, "passphrase file " + path + " is empty");
  return Passphrase(line);
}

}  // namespace mixtape::crypto
