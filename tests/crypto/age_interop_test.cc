// Interoperability with the real age CLI (age 1.1.1, age-keygen), both ways:
// what mixtape encrypts, age decrypts; what age encrypts, mixtape decrypts.
// X25519 and passphrase (age reads passphrases only from a terminal, so those
// runs go through a pty), binary and armored, at chunk-edge sizes. Keys come
// from both `mixtape keygen` (the built binary) and age-keygen.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <random>

#include "engine/crypto/crypto.h"
#include "tests/support/test_support.h"

namespace mixtape::crypto {
namespace {

namespace fs = std::filesystem;

const std::string kMixtape = std::string(MIXTAPE_BINARY_DIR) + "/cli/mixtape";
constexpr char kPassphrase[] = "correct horse battery staple";

using Result = test_support::CommandResult;

std::vector<char*> c_args(std::vector<std::string>& args) {
  std::vector<char*> out;
  for (std::string& a : args) out.push_back(a.data());
  out.push_back(nullptr);
  return out;
}

int wait_status(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Runs a command with stdout and stderr captured (through files: no pipe deadlocks).
Result run(std::vector<std::string> args, const fs::path& scratch) {
  std::string out_path = scratch / "stdout", err_path = scratch / "stderr";
  pid_t pid = ::fork();
  if (pid == 0) {
    int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int in = ::open("/dev/null", O_RDONLY);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    auto argv = c_args(args);
    ::execvp(argv[0], argv.data());
    ::_exit(127);
  }
  Result r;
  r.status = wait_status(pid);
  r.out = test_support::read_file(out_path);
  r.err = test_support::read_file(err_path);
  return r;
}

// Runs a command on a pseudo-terminal, typing `passphrase` at each passphrase
// prompt ("Enter passphrase...: ", "Confirm passphrase: ").
Result run_on_pty(std::vector<std::string> args, const std::string& passphrase) {
  int master = -1;
  pid_t pid = ::forkpty(&master, nullptr, nullptr, nullptr);
  if (pid == 0) {
    auto argv = c_args(args);
    ::execvp(argv[0], argv.data());
    ::_exit(127);
  }
  Result r;
  std::size_t answered_up_to = 0;
  for (;;) {
    pollfd pfd{master, POLLIN, 0};
    if (::poll(&pfd, 1, 120000) <= 0) {
      ::kill(pid, SIGKILL);
      r.err += "\n[timed out waiting for the pty]";
      break;
    }
    char buffer[4096];
    ssize_t n = ::read(master, buffer, sizeof buffer);
    if (n <= 0) break;  // EIO: the child closed the terminal
    r.out.append(buffer, static_cast<std::size_t>(n));
    for (;;) {
      std::size_t prompt = r.out.find("passphrase", answered_up_to);
      if (prompt == std::string::npos) break;
      std::size_t colon = r.out.find(": ", prompt);
      if (colon == std::string::npos) break;
      std::string answer = passphrase + "\n";
      EXPECT_EQ(::write(master, answer.data(), answer.size()), static_cast<ssize_t>(answer.size()));
      answered_up_to = colon + 2;
    }
  }
  ::close(master);
  r.status = wait_status(pid);
  return r;
}

Bytes pseudo_random(std::size_t size, std::uint64_t seed) {
  Bytes data(size);
  std::mt19937_64 rng(seed);
  for (auto& b : data) b = static_cast<std::uint8_t>(rng());
  return data;
}

using test_support::write_file;

// A file that does not exist reads as empty: `age -o FILE` creates FILE only
// when it has a byte to write.
Bytes read_file(const std::string& path) {
  if (!fs::exists(path)) return {};
  std::string s = test_support::read_file(path);
  return Bytes(s.begin(), s.end());
}

template <typename MakeEncryptor>
void encrypt_file(const std::string& in, const std::string& out, MakeEncryptor make) {
  UniqueFd fd = open_file(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  FdSink sink(fd.get(), out);
  auto encryptor = make(sink);
  Bytes data = read_file(in);
  encryptor->write(data);
  encryptor->close();
}

Bytes decrypt_file(const std::string& in, const AgeDecryptKeys& keys) {
  UniqueFd fd = open_file(in, O_RDONLY);
  FdSource source(fd.get(), in);
  AgeDecryptor decryptor(source, keys);
  Bytes out, buffer(1 << 20);
  for (std::size_t n; (n = decryptor.read(buffer)) > 0;)
    out.insert(out.end(), buffer.begin(), buffer.begin() + n);
  return out;
}

// One identity from each generator, each used by the other side; made once
// for the suite's tests by the first of them (a failure fails each test).
struct SharedKeys {
  fs::path dir = fs::temp_directory_path() / ("mixtape-interop-" + std::to_string(::getpid()));
  std::string mixtape_public_key;  // what `mixtape keygen` printed

  SharedKeys() {
    fs::create_directories(dir);
    Result mixtape = run({kMixtape, "keygen", "-o", (dir / "mixtape-id.txt").string()}, dir);
    if (mixtape.status != 0)
      throw Error("mixtape keygen failed (status " + std::to_string(mixtape.status) +
                  "): " + mixtape.err);
    mixtape_public_key = mixtape.err;
    Result age = run({"age-keygen", "-o", (dir / "age-id.txt").string()}, dir);
    if (age.status != 0)
      throw Error("age-keygen failed (status " + std::to_string(age.status) +
                  "; scripts/install-deps.sh installs it): " + age.err);
  }
  SharedKeys(const SharedKeys&) = delete;
  SharedKeys& operator=(const SharedKeys&) = delete;
  ~SharedKeys() {
    std::error_code ignored;
    fs::remove_all(dir, ignored);
  }
};

class Interop : public ::testing::TestWithParam<std::size_t> {
 protected:
  static void TearDownTestSuite() { shared_.reset(); }

  void SetUp() override {
    ASSERT_TRUE(fs::exists("/usr/bin/age")) << "age CLI missing (scripts/install-deps.sh)";
    keys_ = &shared_.get([] { return std::make_unique<SharedKeys>(); });
    plain_ = pseudo_random(GetParam(), GetParam() + 1);
    std::string name = std::to_string(GetParam());
    plain_path_ = path("plain-" + name);
    cipher_path_ = path("cipher-" + name);
    out_path_ = path("out-" + name);
    write_file(plain_path_, plain_);
  }
  void TearDown() override {
    if (!keys_) return;
    fs::remove(plain_path_);
    fs::remove(cipher_path_);
    fs::remove(out_path_);
  }

  std::string path(const std::string& name) const { return (keys_->dir / name).string(); }
  const fs::path& dir() const { return keys_->dir; }
  void expect_out_is_plain() {
    Bytes out = read_file(out_path_);
    EXPECT_EQ(out.size(), plain_.size());
    EXPECT_TRUE(out == plain_);
  }

  static inline test_support::SharedSetup<SharedKeys> shared_;
  const SharedKeys* keys_ = nullptr;
  Bytes plain_;
  std::string plain_path_, cipher_path_, out_path_;
};

TEST_P(Interop, AgeDecryptsMixtapeX25519WithMixtapeKeygenIdentity) {
  auto identities = load_identities(path("mixtape-id.txt"));
  std::vector<X25519Recipient> recipients{identities[0].recipient()};
  EXPECT_EQ(keys_->mixtape_public_key, "Public key: " + recipients[0].to_string() + "\n");
  encrypt_file(plain_path_, cipher_path_,
               [&](ByteSink& sink) { return std::make_unique<AgeEncryptor>(sink, recipients); });
  Result r = run({"age", "-d", "-i", path("mixtape-id.txt"), "-o", out_path_, cipher_path_}, dir());
  ASSERT_EQ(r.status, 0) << r.err;
  expect_out_is_plain();
}

TEST_P(Interop, MixtapeDecryptsAgeX25519WithAgeKeygenIdentity) {
  AgeDecryptKeys keys;
  keys.identities = load_identities(path("age-id.txt"));
  Result r = run(
      {"age", "-r", keys.identities[0].recipient().to_string(), "-o", cipher_path_, plain_path_},
      dir());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(decrypt_file(cipher_path_, keys) == plain_);

  // Random access over what age wrote, at the chunk edges.
  FileRandomAccess file(cipher_path_);
  AgeRandomAccessDecryptor random(file, keys);
  ASSERT_EQ(random.size(), plain_.size());
  for (std::uint64_t offset :
       {0ul, 65535ul, 65536ul, plain_.size() - std::min<std::size_t>(1, plain_.size())}) {
    Bytes got(1000);
    got.resize(random.read_at(offset, got));
    std::size_t end = std::min<std::size_t>(plain_.size(), offset + 1000);
    std::size_t begin = std::min<std::size_t>(offset, end);
    EXPECT_TRUE(std::equal(got.begin(), got.end(), plain_.begin() + begin, plain_.begin() + end))
        << offset;
    EXPECT_EQ(got.size(), end - begin);
  }
}

TEST_P(Interop, ArmoredBothWays) {
  AgeDecryptKeys keys;
  keys.identities = load_identities(path("age-id.txt"));
  Result r = run({"age", "-a", "-r", keys.identities[0].recipient().to_string(), "-o", cipher_path_,
                  plain_path_},
                 dir());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(decrypt_file(cipher_path_, keys) == plain_);

  std::vector<X25519Recipient> recipients{keys.identities[0].recipient()};
  encrypt_file(plain_path_, cipher_path_, [&](ByteSink& sink) {
    AgeEncryptOptions options;
    options.armor = true;
    return std::make_unique<AgeEncryptor>(sink, recipients, options);
  });
  EXPECT_TRUE(
      test_support::read_file(cipher_path_).starts_with("-----BEGIN AGE ENCRYPTED FILE-----\n"));
  r = run({"age", "-d", "-i", path("age-id.txt"), "-o", out_path_, cipher_path_}, dir());
  ASSERT_EQ(r.status, 0) << r.err;
  expect_out_is_plain();
}

TEST_P(Interop, AgeDecryptsMixtapePassphrase) {
  encrypt_file(plain_path_, cipher_path_, [&](ByteSink& sink) {
    return std::make_unique<AgeEncryptor>(sink, Passphrase(kPassphrase));  // work factor 18
  });
  Result r = run_on_pty({"age", "-d", "-o", out_path_, cipher_path_}, kPassphrase);
  ASSERT_EQ(r.status, 0) << r.out;
  expect_out_is_plain();
}

TEST_P(Interop, MixtapeDecryptsAgePassphrase) {
  Result r = run_on_pty({"age", "-p", "-o", cipher_path_, plain_path_}, kPassphrase);
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("Confirm passphrase"), std::string::npos) << r.out;
  EXPECT_TRUE(decrypt_file(cipher_path_, AgeDecryptKeys{{}, Passphrase(kPassphrase)}) == plain_);
  AgeError e = [&] {
    try {
      decrypt_file(cipher_path_, AgeDecryptKeys{{}, Passphrase("not it")});
    } catch (const AgeError& e) {
      return e;
    }
    return AgeError(AgeErrorKind::HeaderMalformed, "no error");
  }();
  EXPECT_EQ(e.kind(), AgeErrorKind::WrongPassphrase) << e.what();
}

INSTANTIATE_TEST_SUITE_P(Sizes, Interop,
                         ::testing::Values(0, 1, 65535, 65536, 65537, 3 * 1048576 + 7),
                         [](const auto& info) { return "bytes_" + std::to_string(info.param); });

// ------------------------------------------------------------ mixtape keygen

class Keygen : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("mixtape-keygen-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(Keygen, WritesAFile0600AndPrintsThePublicKeyLikeAgeKeygen) {
  std::string file = dir_ / "id.txt";
  ::umask(022);
  Result r = run({kMixtape, "keygen", "-o", file}, dir_);
  ASSERT_EQ(r.status, 0) << r.err;
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto identities = load_identities(file);
  ASSERT_EQ(identities.size(), 1u);
  EXPECT_EQ(r.err, "Public key: " + identities[0].recipient().to_string() + "\n");
  EXPECT_TRUE(r.out.empty());
  // age-keygen -y agrees on the public key.
  Result y = run({"age-keygen", "-y", file}, dir_);
  EXPECT_EQ(y.out, identities[0].recipient().to_string() + "\n");
}

TEST_F(Keygen, RefusesToOverwrite) {
  std::string file = dir_ / "id.txt";
  ASSERT_EQ(run({kMixtape, "keygen", "-o", file}, dir_).status, 0);
  std::string before = test_support::read_file(file);
  Result again = run({kMixtape, "keygen", "-o", file}, dir_);
  EXPECT_NE(again.status, 0);
  EXPECT_NE(again.err.find("already exists"), std::string::npos) << again.err;
  EXPECT_EQ(test_support::read_file(file), before);
}

TEST_F(Keygen, PrintsTheIdentityOnStdout) {
  Result r = run({kMixtape, "keygen"}, dir_);
  ASSERT_EQ(r.status, 0) << r.err;
  auto identities = parse_identities(r.out, "stdout");
  ASSERT_EQ(identities.size(), 1u);
  EXPECT_TRUE(r.out.starts_with("# created: "));
  EXPECT_NE(r.out.find("\n# public key: " + identities[0].recipient().to_string() + "\n"),
            std::string::npos);
  // Not a terminal, so the public key also goes to stderr, as age-keygen does.
  EXPECT_NE(r.err.find("Public key: " + identities[0].recipient().to_string()), std::string::npos);
}

}  // namespace
}  // namespace mixtape::crypto
