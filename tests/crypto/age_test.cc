// age v1 in engine/crypto, without external tools: primitives against their
// RFCs, keys against the spec's example, identity files, streaming and
// random-access round trips, and one named test per kind of damage.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <regex>
#include <thread>

#include "engine/crypto/crypto.h"
#include "engine/crypto/internal.h"
#include "tests/support/test_support.h"

namespace mixtape::crypto {
namespace {

namespace fs = std::filesystem;
constexpr std::size_t kChunk = kAgeChunkSize;

Bytes pseudo_random(std::size_t size, std::uint64_t seed) {
  Bytes data(size);
  std::mt19937_64 rng(seed);
  for (std::size_t i = 0; i < size; i += 8) {
    std::uint64_t v = rng();
    for (std::size_t j = 0; j < 8 && i + j < size; ++j)
      data[i + j] = static_cast<std::uint8_t>(v >> (8 * j));
  }
  return data;
}

// Feeds data in pieces of varying size, so batch and chunk edges fall anywhere.
void write_in_pieces(ByteSink& sink, const Bytes& data, bool uneven) {
  if (!uneven) {
    sink.write(data);
    return;
  }
  static constexpr std::size_t kSteps[] = {1, 7, 4096, 65535, 2, 65537, 300000, 13, 5 << 20};
  std::size_t pos = 0;
  for (std::size_t i = 0; pos < data.size(); ++i) {
    std::size_t n = std::min(kSteps[i % std::size(kSteps)], data.size() - pos);
    sink.write(ByteSpan(data).subspan(pos, n));
    pos += n;
  }
}

Bytes encrypt_to(const std::vector<X25519Recipient>& recipients, const Bytes& plain,
                 AgeEncryptOptions options = {}, bool uneven = false,
                 std::uint64_t* header_length = nullptr) {
  MemorySink sink;
  AgeEncryptor encryptor(sink, recipients, options);
  write_in_pieces(encryptor, plain, uneven);
  encryptor.close();
  EXPECT_TRUE(sink.closed());
  if (header_length) *header_length = encryptor.header_length();
  return sink.bytes();
}

Bytes encrypt_with(const Passphrase& passphrase, const Bytes& plain, int work_factor = 10) {
  MemorySink sink;
  AgeEncryptOptions options;
  options.work_factor = work_factor;
  AgeEncryptor encryptor(sink, passphrase, options);
  encryptor.write(plain);
  encryptor.close();
  return sink.bytes();
}

AgeDecryptKeys keys_for(const X25519Identity& identity) {
  AgeDecryptKeys keys;
  keys.identities.push_back(identity);
  return keys;
}

AgeDecryptKeys keys_for(std::string_view passphrase) {
  AgeDecryptKeys keys;
  keys.passphrase.emplace(passphrase);
  return keys;
}

// Decrypts everything; `released` gets every byte handed out before an error.
Bytes decrypt_all(const Bytes& cipher, const AgeDecryptKeys& keys, Bytes* released = nullptr,
                  AgeDecryptOptions options = {}, std::size_t read_size = 1 << 20) {
  MemorySource source(cipher);
  Bytes out, buffer(read_size);
  Bytes& sink = released ? *released : out;
  AgeDecryptor decryptor(source, keys, options);
  for (std::size_t n; (n = decryptor.read(buffer)) > 0;)
    sink.insert(sink.end(), buffer.begin(), buffer.begin() + n);
  return sink;
}

template <typename F>
AgeError expect_age_error(F f) {
  try {
    f();
  } catch (const AgeError& e) {
    return e;
  }
  ADD_FAILURE() << "expected an AgeError";
  return AgeError(AgeErrorKind::HeaderMalformed, "none");
}

using test_support::TempDir;

using test_support::write_file;

// ------------------------------------------------------------ primitives

TEST(Base64, EncodesAndDecodesCanonically) {
  EXPECT_EQ(internal::base64_encode(as_bytes("foob"), false), "Zm9vYg");
  EXPECT_EQ(internal::base64_encode(as_bytes("foob"), true), "Zm9vYg==");
  EXPECT_EQ(internal::base64_encode(as_bytes("fooba"), true), "Zm9vYmE=");
  EXPECT_EQ(internal::base64_encode(as_bytes("foobar"), true), "Zm9vYmFy");
  auto decoded = internal::base64_decode("Zm9vYmE", false);
  ASSERT_TRUE(decoded);
  EXPECT_EQ(as_chars(*decoded), "fooba");
  EXPECT_TRUE(internal::base64_decode("", false));
}

TEST(Base64, RejectsEverythingNotCanonical) {
  EXPECT_FALSE(internal::base64_decode("Zm9vYg==", false)) << "padding in unpadded base64";
  EXPECT_FALSE(internal::base64_decode("Zm9vYh", false)) << "non-zero trailing bits";
  EXPECT_FALSE(internal::base64_decode("Zm9vY", false)) << "impossible length";
  EXPECT_FALSE(internal::base64_decode("Zm9v Yg", false)) << "whitespace";
  EXPECT_FALSE(internal::base64_decode("Zm9v\nYg", false)) << "newline";
  EXPECT_FALSE(internal::base64_decode("Zm9vYg", true)) << "missing padding";
  EXPECT_FALSE(internal::base64_decode("Zm9vYg=", true)) << "short padding";
  EXPECT_FALSE(internal::base64_decode("Zm9vYh==", true)) << "non-zero bits before padding";
  EXPECT_FALSE(internal::base64_decode("Zm=vYg==", true)) << "padding in the middle";
  EXPECT_FALSE(internal::base64_decode("Zm9vYmFy====", true)) << "padding after a full group";
}

// RFC 5869 appendix A, test cases 1 and 3 (the latter: empty salt and info).
TEST(Hkdf, MatchesRfc5869) {
  Bytes ikm(22, 0x0b);
  Bytes salt = from_hex("000102030405060708090a0b0c");
  Bytes info = from_hex("f0f1f2f3f4f5f6f7f8f9");
  auto okm = internal::hkdf_sha256(ikm, salt, as_chars(info));
  EXPECT_EQ(to_hex(okm.span()), "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf");
  auto okm3 = internal::hkdf_sha256(ikm, {}, "");
  EXPECT_EQ(to_hex(okm3.span()),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d");
}

TEST(Stream, ChunkNonceIsCounterThenLastFlag) {
  EXPECT_EQ(to_hex(internal::chunk_nonce(0, false)), "000000000000000000000000");
  EXPECT_EQ(to_hex(internal::chunk_nonce(1, true)), "000000000000000000000101");
  EXPECT_EQ(to_hex(internal::chunk_nonce(0x0102030405060708, false)), "000000010203040506070800");
}

TEST(Geometry, FollowsTheFormatDocument) {
  static_assert(age_chunk_index(0) == 0);
  static_assert(age_chunk_index(65535) == 0);
  static_assert(age_chunk_index(65536) == 1);
  static_assert(age_chunk_offset(200, 0) == 216);
  static_assert(age_chunk_offset(200, 3) == 200 + 16 + 3 * 65552);
  static_assert(age_ciphertext_size(200, 0) == 200 + 16 + 16);
  static_assert(age_ciphertext_size(200, 65536) == 200 + 16 + 65552);
  static_assert(age_ciphertext_size(200, 65537) == 200 + 16 + 65552 + 17);
  for (std::uint64_t size : {0ull, 1ull, 65535ull, 65536ull, 65537ull, 10ull << 30})
    EXPECT_EQ(age_plaintext_size(200, age_ciphertext_size(200, size)), size) << size;
  EXPECT_EQ(expect_age_error([] { age_plaintext_size(200, 216); }).kind(), AgeErrorKind::Truncated);
  EXPECT_EQ(expect_age_error([] { age_plaintext_size(200, 216 + 65552 + 5); }).kind(),
            AgeErrorKind::Truncated);
  EXPECT_EQ(expect_age_error([] { age_plaintext_size(200, 216 + 65552 + 16); }).kind(),
            AgeErrorKind::PayloadCorrupt);
}

// ------------------------------------------------------------ keys

// The example key pair from the age specification.
constexpr char kSpecIdentity[] =
    "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX";
constexpr char kSpecRecipient[] = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj";

TEST(Keys, SpecExampleIdentityGivesSpecRecipient) {
  X25519Identity identity = X25519Identity::parse(kSpecIdentity);
  EXPECT_EQ(identity.recipient().to_string(), kSpecRecipient);
  EXPECT_EQ(identity.to_string(), kSpecIdentity);
  EXPECT_EQ(X25519Recipient::parse(kSpecRecipient), identity.recipient());
  EXPECT_EQ(X25519Recipient::parse(kSpecRecipient).to_string(), kSpecRecipient);
}

TEST(Keys, GeneratedKeysRoundTripAndDiffer) {
  X25519Identity a = X25519Identity::generate(), b = X25519Identity::generate();
  EXPECT_NE(a.to_string(), b.to_string());
  EXPECT_EQ(X25519Identity::parse(a.to_string()).recipient(), a.recipient());
  EXPECT_TRUE(a.to_string().starts_with("AGE-SECRET-KEY-1"));
  EXPECT_TRUE(a.recipient().to_string().starts_with("age1"));
  EXPECT_EQ(a.recipient().to_string().size(), 62u);
}

TEST(Keys, RejectsMalformedStringsWithoutQuotingThem) {
  std::string identity = kSpecIdentity;
  std::string recipient = kSpecRecipient;
  std::string mixed = identity;
  mixed[20] = static_cast<char>(std::tolower(mixed[20]));
  std::string flipped = identity;
  flipped[30] = flipped[30] == 'Q' ? 'P' : 'Q';
  std::string lower = identity;
  for (char& c : lower) c = static_cast<char>(std::tolower(c));
  std::string upper_recipient = recipient;
  for (char& c : upper_recipient) c = static_cast<char>(std::toupper(c));
  for (const std::string& bad :
       {mixed, flipped, lower, identity.substr(0, 40), std::string("AGE-SECRET-KEY-1")}) {
    AgeError e = expect_age_error([&] { X25519Identity::parse(bad); });
    EXPECT_EQ(e.kind(), AgeErrorKind::KeyMalformed) << bad;
    if (bad.size() >= 36) {
      EXPECT_EQ(std::string(e.what()).find(bad.substr(16, 20)), std::string::npos) << e.what();
    }
  }
  for (const std::string& bad :
       {upper_recipient, recipient.substr(0, 61) + "q", identity, std::string("age1pq1abc")}) {
    EXPECT_EQ(expect_age_error([&] { X25519Recipient::parse(bad); }).kind(),
              AgeErrorKind::KeyMalformed)
        << bad;
  }
}

TEST(IdentityFile, ParsesCommentsBlankLinesCrlfAndSeveralKeys) {
  X25519Identity a = X25519Identity::generate(), b = X25519Identity::generate();
  std::string text =
      "# created: 2024-01-01T00:00:00Z\r\n# public key: " + a.recipient().to_string() + "\r\n" +
      a.to_string() + "\r\n\n# another\n" + b.to_string();
  auto identities = parse_identities(text, "keys.txt");
  ASSERT_EQ(identities.size(), 2u);
  EXPECT_EQ(identities[0].recipient(), a.recipient());
  EXPECT_EQ(identities[1].recipient(), b.recipient());
}

TEST(IdentityFile, NamesTheBadLineButNotItsContent) {
  X25519Identity a = X25519Identity::generate();
  std::string secret = a.to_string();
  std::string damaged = secret;
  damaged[25] = damaged[25] == 'A' ? 'C' : 'A';
  AgeError e = expect_age_error(
      [&] { parse_identities("# comment\n" + secret + "\n" + damaged + "\n", "keys.txt"); });
  EXPECT_EQ(e.kind(), AgeErrorKind::KeyMalformed);
  EXPECT_NE(std::string(e.what()).find("keys.txt, line 3"), std::string::npos) << e.what();
  EXPECT_EQ(std::string(e.what()).find(damaged.substr(16)), std::string::npos) << e.what();
  EXPECT_EQ(expect_age_error([] { parse_identities("# nothing\n\n", "empty.txt"); }).kind(),
            AgeErrorKind::KeyMalformed);
}

TEST(IdentityFile, IsWrittenWithMode0600InAgeKeygenFormat) {
  TempDir dir;
  std::string path = dir / "identity.txt";
  mode_t old_umask = ::umask(0);  // a permissive umask must not widen the mode
  X25519Identity identity = X25519Identity::generate();
  write_identity_file(path, identity);
  ::umask(old_umask);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  std::ifstream in(path);
  std::string created, public_key, secret, extra;
  std::getline(in, created);
  std::getline(in, public_key);
  std::getline(in, secret);
  EXPECT_FALSE(std::getline(in, extra));
  EXPECT_TRUE(std::regex_match(
      created, std::regex(R"(# created: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d))")))
      << created;
  EXPECT_EQ(public_key, "# public key: " + identity.recipient().to_string());
  EXPECT_EQ(secret, identity.to_string());
  auto loaded = load_identities(path);
  ASSERT_EQ(loaded.size(), 1u);
  EXPECT_EQ(loaded[0].recipient(), identity.recipient());
}

TEST(IdentityFile, RefusesToOverwrite) {
  TempDir dir;
  std::string path = dir / "identity.txt";
  write_file(path, "precious\n");
  try {
    write_identity_file(path, X25519Identity::generate());
    FAIL() << "overwrote an existing file";
  } catch (const SystemError& e) {
    EXPECT_EQ(e.code(), EEXIST);
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos);
  }
  std::ifstream in(path);
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(content, "precious\n");
}

TEST(RecipientsFile, ParsesLikeAgeR) {
  TempDir dir;
  X25519Identity a = X25519Identity::generate(), b = X25519Identity::generate();
  write_file(dir / "r.txt",
             "# team\n" + a.recipient().to_string() + "\n\n" + b.recipient().to_string() + "\n");
  auto recipients = load_recipients(dir / "r.txt");
  ASSERT_EQ(recipients.size(), 2u);
  EXPECT_EQ(recipients[1], b.recipient());
  EXPECT_EQ(expect_age_error([] { parse_recipients("age1nope\n", "r"); }).kind(),
            AgeErrorKind::KeyMalformed);
}

TEST(PassphraseFile, UsesTheFirstLine) {
  TempDir dir;
  write_file(dir / "p", "correct horse\r\nignored\n");
  Passphrase p = load_passphrase_file(dir / "p");
  EXPECT_EQ(as_chars(p.bytes()), "correct horse");
  write_file(dir / "empty", "\n");
  EXPECT_EQ(expect_age_error([&] { load_passphrase_file(dir / "empty"); }).kind(),
            AgeErrorKind::KeyMalformed);
}

// ------------------------------------------------------------ round trips

struct RoundTripCase {
  std::size_t size;
  unsigned threads;
  bool armor;
  bool uneven;
};

class RoundTrip : public ::testing::TestWithParam<RoundTripCase> {};

TEST_P(RoundTrip, DecryptsToThePlaintextWithConsistentSizes) {
  auto [size, threads, armor, uneven] = GetParam();
  X25519Identity identity = X25519Identity::generate();
  Bytes plain = pseudo_random(size, size + threads);
  AgeEncryptOptions options;
  options.threads = threads;
  options.armor = armor;
  std::uint64_t header_length = 0;
  Bytes cipher = encrypt_to({identity.recipient()}, plain, options, uneven, &header_length);
  if (!armor) {
    EXPECT_EQ(cipher.size(), age_ciphertext_size(header_length, size));
    MemorySource source(cipher);
    EXPECT_EQ(age_header_length(source), header_length);
  } else {
    EXPECT_TRUE(as_chars(cipher).starts_with("-----BEGIN AGE ENCRYPTED FILE-----\n"));
    EXPECT_TRUE(as_chars(cipher).ends_with("\n-----END AGE ENCRYPTED FILE-----\n"));
  }
  MemorySource source(cipher);
  AgeDecryptor decryptor(source, keys_for(identity), {AgeArmor::Auto, threads});
  EXPECT_EQ(decryptor.header_length(), header_length);
  EXPECT_EQ(decryptor.armored(), armor);
  Bytes out, buffer(uneven ? 1000 : 1 << 20);
  for (std::size_t n; (n = decryptor.read(buffer)) > 0;)
    out.insert(out.end(), buffer.begin(), buffer.begin() + n);
  EXPECT_TRUE(out == plain);
  EXPECT_EQ(decryptor.read(buffer), 0u) << "end is sticky";
}

std::vector<RoundTripCase> round_trip_cases() {
  std::vector<RoundTripCase> cases;
  for (std::size_t size : {0ul, 1ul, 65535ul, 65536ul, 65537ul, 2ul << 20, (2ul << 20) + 1,
                           (3ul << 20) + 7, 9ul << 20})
    for (unsigned threads : {1u, 2u})
      for (bool armor : {false, true})
        for (bool uneven : {false, true})
          if (!(armor && size > (3ul << 20))) cases.push_back({size, threads, armor, uneven});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Sizes, RoundTrip, ::testing::ValuesIn(round_trip_cases()),
                         [](const auto& info) {
                           const RoundTripCase& c = info.param;
                           return std::to_string(c.size) + "_t" + std::to_string(c.threads) +
                                  (c.armor ? "_armor" : "") + (c.uneven ? "_uneven" : "");
                         });

TEST(Encrypt, EveryRecipientCanDecrypt) {
  X25519Identity a = X25519Identity::generate(), b = X25519Identity::generate();
  Bytes plain = pseudo_random(100000, 1);
  Bytes cipher = encrypt_to({a.recipient(), b.recipient()}, plain);
  EXPECT_EQ(decrypt_all(cipher, keys_for(a)), plain);
  EXPECT_EQ(decrypt_all(cipher, keys_for(b)), plain);
  AgeDecryptKeys both;
  both.identities = {X25519Identity::generate(), b};
  EXPECT_EQ(decrypt_all(cipher, both), plain);
}

TEST(Encrypt, PassphraseRoundTrips) {
  Bytes plain = pseudo_random(70000, 2);
  Bytes cipher = encrypt_with(Passphrase("hunter2"), plain);
  EXPECT_TRUE(as_chars(cipher).starts_with("age-encryption.org/v1\n-> scrypt "));
  EXPECT_EQ(decrypt_all(cipher, keys_for("hunter2")), plain);
}

TEST(Encrypt, DefaultWorkFactorIs18) {
  MemorySink sink;
  AgeEncryptor encryptor(sink, Passphrase("p"));
  encryptor.close();
  std::string header(as_chars(sink.bytes()).substr(0, 80));
  EXPECT_NE(header.find("-> scrypt "), std::string::npos);
  EXPECT_NE(header.find(" 18\n"), std::string::npos) << header;
}

TEST(Encrypt, RefusesEmptyRecipientsAndWritesAfterClose) {
  MemorySink sink;
  EXPECT_THROW_MESSAGE(AgeEncryptor(sink, std::vector<X25519Recipient>{}), Error,
                       "age encryption needs at least one recipient");
  X25519Identity identity = X25519Identity::generate();
  std::vector<X25519Recipient> recipients{identity.recipient()};
  AgeEncryptor encryptor(sink, recipients);
  encryptor.close();
  EXPECT_THROW_MESSAGE(encryptor.write(as_bytes("late")), Error, "write after close");
}

TEST(Encrypt, WithoutCloseTheOutputIsNeverComplete) {
  X25519Identity identity = X25519Identity::generate();
  MemorySink sink;
  {
    std::vector<X25519Recipient> recipients{identity.recipient()};
    AgeEncryptor encryptor(sink, recipients);
    encryptor.write(pseudo_random(5 << 20, 3));
  }
  EXPECT_FALSE(sink.closed());
  Bytes released;
  AgeError e = expect_age_error([&] { decrypt_all(sink.bytes(), keys_for(identity), &released); });
  EXPECT_EQ(e.kind(), AgeErrorKind::Truncated) << e.what();
}

// buffer()/commit() (the writer reads files straight into the encryptor's
// batch) mixed with write(): the same stream, over several batches.
TEST(Encrypt, BufferAndCommitMakeTheSameStreamAsWrite) {
  X25519Identity identity = X25519Identity::generate();
  std::vector<X25519Recipient> recipients{identity.recipient()};
  Bytes plain = pseudo_random((5 << 20) + 12345, 9);
  MemorySink sink;
  AgeEncryptor encryptor(sink, recipients);
  std::size_t pos = 0;
  for (bool direct = true; pos < plain.size(); direct = !direct) {
    std::size_t n = std::min<std::size_t>(direct ? 300000 : 1000, plain.size() - pos);
    if (direct) {
      MutableByteSpan room = encryptor.buffer();
      ASSERT_FALSE(room.empty());
      n = std::min(n, room.size());
      std::copy_n(plain.begin() + static_cast<std::ptrdiff_t>(pos), n, room.begin());
      encryptor.commit(n);
    } else {
      encryptor.write(ByteSpan(plain).subspan(pos, n));
    }
    pos += n;
  }
  encryptor.close();
  EXPECT_EQ(encryptor.plaintext_size(), plain.size());
  EXPECT_EQ(sink.bytes().size(), age_ciphertext_size(encryptor.header_length(), plain.size()));
  EXPECT_EQ(decrypt_all(sink.bytes(), keys_for(identity)), plain);
}

TEST(Encrypt, BufferRefusesOverlongCommitsAndABrokenPromise) {
  X25519Identity identity = X25519Identity::generate();
  std::vector<X25519Recipient> recipients{identity.recipient()};
  MemorySink sink;
  AgeEncryptor encryptor(sink, recipients);
  MutableByteSpan room = encryptor.buffer();
  EXPECT_THROW_MESSAGE(encryptor.commit(room.size() + 1), Error, "beyond the buffer handed out");
  // Fill the first batch exactly (buffer() hands out all of it), then ask for
  // more room: that seals the batch as a middle one, so closing without a
  // byte more would end the file without a final chunk.
  encryptor.commit(room.size());
  MutableByteSpan next = encryptor.buffer();
  ASSERT_FALSE(next.empty());
  encryptor.commit(0);
  EXPECT_THROW_MESSAGE(encryptor.close(), Error,
                       "closed with no bytes after a buffer() that sealed");
}

// The streaming code's cipher (OpenSSL) against the reference (libsodium):
// the same bytes sealed, each opens the other's, in place too, and a chunk
// that fails is wiped.
TEST(Stream, ChunkCipherMatchesLibsodium) {
  internal::Key32 key;
  internal::random_bytes(key.span());
  internal::ChunkCipher cipher;
  for (std::size_t size : {0ul, 1ul, 17ul, kChunk - 1, kChunk}) {
    for (bool last : {false, true}) {
      SCOPED_TRACE(std::to_string(size) + (last ? " last" : ""));
      Bytes plain = pseudo_random(size, size);
      Bytes ours(size + kAgeTagSize), reference(size + kAgeTagSize);
      cipher.seal(key, 7, last, plain, ours.data());
      internal::seal_chunk(key, 7, last, plain, reference.data());
      EXPECT_TRUE(ours == reference);
      Bytes opened(size);
      ASSERT_TRUE(cipher.open(key, 7, last, reference, opened.data()));
      EXPECT_TRUE(opened == plain);
      ASSERT_TRUE(internal::open_chunk(key, 7, last, ours, opened.data()));
      EXPECT_TRUE(opened == plain);
      Bytes in_place = plain;
      in_place.resize(size + kAgeTagSize);
      cipher.seal(key, 7, last, ByteSpan(in_place.data(), size), in_place.data());
      EXPECT_TRUE(in_place == reference);
      EXPECT_FALSE(cipher.open(key, 7, !last, ours, opened.data())) << "wrong last flag";
      EXPECT_FALSE(cipher.open(key, 8, last, ours, opened.data())) << "wrong counter";
      Bytes tampered = ours;
      tampered[size / 2] ^= 1;
      std::fill(opened.begin(), opened.end(), 0xee);
      EXPECT_FALSE(cipher.open(key, 7, last, tampered, opened.data()));
      EXPECT_TRUE(std::all_of(opened.begin(), opened.end(), [](std::uint8_t b) { return b == 0; }))
          << "unauthenticated plaintext left in the output";
    }
  }
  Bytes too_short(kAgeTagSize - 1);
  EXPECT_FALSE(cipher.open(key, 0, true, too_short, nullptr));
}

// A sink that fails after `limit` bytes, like a full disk or a dead drive.
class FailingSink final : public ByteSink {
 public:
  explicit FailingSink(std::size_t limit) : limit_(limit) {}
  void write(ByteSpan data) override {
    written_ += data.size();
    if (written_ > limit_) throw SystemError("cannot write tape", ENOSPC);
  }
  void close() override {}

 private:
  std::size_t limit_;
  std::size_t written_ = 0;
};

// Keeps what it is given by reference, as the tape fan-out does, and reads
// it only at the end: had the encryptor reused a batch still held here, the
// early bytes would have been overwritten and the file would not decrypt.
class HoldingSink final : public ByteSink {
 public:
  void write(ByteSpan data) override {
    pieces_.push_back({std::make_shared<Bytes>(data.begin(), data.end()), {}});
  }
  void write_shared(ByteSpan data, const std::shared_ptr<const void>& owner) override {
    pieces_.push_back({owner, data});
    ++shared_;
  }
  void close() override {}
  Bytes joined() const {
    Bytes all;
    for (const auto& [owner, span] : pieces_) {
      ByteSpan bytes = span.empty() ? ByteSpan(*static_cast<const Bytes*>(owner.get())) : span;
      all.insert(all.end(), bytes.begin(), bytes.end());
    }
    return all;
  }
  void release() { pieces_.clear(); }
  std::size_t shared() const { return shared_; }

 private:
  std::vector<std::pair<std::shared_ptr<const void>, ByteSpan>> pieces_;
  std::size_t shared_ = 0;
};

TEST(Encrypt, SealedBatchesAreHandedOverNotReusedWhileHeld) {
  X25519Identity identity = X25519Identity::generate();
  std::vector<X25519Recipient> recipients{identity.recipient()};
  BufferPool pool;
  AgeEncryptOptions options;
  options.buffers = &pool;
  const Bytes plain = pseudo_random(9 << 20, 7);  // 4.5 batches
  HoldingSink sink;
  {
    AgeEncryptor encryptor(sink, recipients, options);
    write_in_pieces(encryptor, plain, true);
    encryptor.close();
  }
  EXPECT_EQ(sink.shared(), 5u) << "every sealed batch by reference";
  const std::size_t made = pool.buffers();
  EXPECT_GE(made, 5u + 2u) << "five held batches and two plaintext batches";
  Bytes cipher = sink.joined();
  EXPECT_EQ(decrypt_all(cipher, keys_for(identity)), plain);

  // Released, the same buffers serve the next file: nothing new is made.
  sink.release();
  HoldingSink next;
  {
    AgeEncryptor encryptor(next, recipients, options);
    write_in_pieces(encryptor, plain, false);
    encryptor.close();
  }
  EXPECT_EQ(pool.buffers(), made);
  EXPECT_EQ(decrypt_all(next.joined(), keys_for(identity)), plain);
}

TEST(Encrypt, DownstreamErrorPropagatesCleanly) {
  X25519Identity identity = X25519Identity::generate();
  std::vector<X25519Recipient> recipients{identity.recipient()};
  for (std::size_t limit : {100ul, 3ul << 20}) {
    FailingSink sink(limit);
    std::optional<AgeEncryptor> encryptor;
    try {
      encryptor.emplace(sink, recipients);
      // The helpers may be sealing when the error comes; ASan and TSan runs
      // of this test check that nothing outlives what it uses.
      for (int i = 0; i < 4; ++i) encryptor->write(pseudo_random(9 << 20, i));
      encryptor->close();
      FAIL() << "no error";
    } catch (const SystemError& e) {
      EXPECT_EQ(e.code(), ENOSPC);
    }
  }
}

TEST(Header, ReadAgeHeaderConsumesExactlyHeaderAndNonce) {
  X25519Identity identity = X25519Identity::generate();
  Bytes plain = pseudo_random(200000, 4);
  std::uint64_t header_length = 0;
  Bytes cipher = encrypt_to({identity.recipient()}, plain, {}, false, &header_length);
  MemorySource source(cipher);
  AgeFileKeys keys = read_age_header(source, keys_for(identity));
  EXPECT_EQ(keys.header_length, header_length);
  // The source now stands at chunk 0: the payload reader takes it from there.
  AgePayloadDecryptor payload(source, keys.payload_key);
  Bytes out(plain.size() + 10);
  EXPECT_EQ(read_full(payload, out), plain.size());
  out.resize(plain.size());
  EXPECT_EQ(out, plain);
}

// The restore path: header once, then straight to the chunk holding offset o.
TEST(Header, PayloadDecryptorStartsAtAnyChunk) {
  X25519Identity identity = X25519Identity::generate();
  Bytes plain = pseudo_random(5 * kChunk + 1234, 5);
  std::uint64_t header_length = 0;
  Bytes cipher = encrypt_to({identity.recipient()}, plain, {}, false, &header_length);
  MemorySource head(cipher);
  AgeFileKeys keys = read_age_header(head, keys_for(identity));
  for (std::uint64_t offset : {0ul, 65535ul, 65536ul, 3 * kChunk + 17, plain.size() - 1}) {
    std::uint64_t chunk = age_chunk_index(offset);
    std::uint64_t at = age_chunk_offset(header_length, chunk);
    MemorySource tail(ByteSpan(cipher).subspan(at));
    AgePayloadDecryptor payload(tail, keys.payload_key, chunk);
    Bytes out(plain.size());
    std::size_t n = read_full(payload, out);
    ASSERT_EQ(n, plain.size() - chunk * kChunk) << offset;
    EXPECT_TRUE(std::equal(out.begin(), out.begin() + n, plain.begin() + chunk * kChunk)) << offset;
  }
}

// ------------------------------------------------------------ random access

class RandomAccess : public ::testing::Test {
 protected:
  void SetUp() override {
    plain_ = pseudo_random(4 * kChunk + 777, 6);
    cipher_ = encrypt_to({identity_.recipient()}, plain_, {}, false, &header_length_);
  }
  Bytes read(AgeRandomAccessDecryptor& d, std::uint64_t offset, std::size_t size) {
    Bytes out(size);
    out.resize(d.read_at(offset, out));
    return out;
  }
  Bytes slice(std::uint64_t offset, std::size_t size) {
    std::size_t end = std::min<std::size_t>(plain_.size(), offset + size);
    return Bytes(plain_.begin() + std::min<std::size_t>(offset, end), plain_.begin() + end);
  }
  X25519Identity identity_ = X25519Identity::generate();
  Bytes plain_, cipher_;
  std::uint64_t header_length_ = 0;
};

TEST_F(RandomAccess, ReadsAnyOffset) {
  MemorySource source(cipher_);
  AgeRandomAccessDecryptor d(source, keys_for(identity_));
  EXPECT_EQ(d.size(), plain_.size());
  EXPECT_EQ(d.header_length(), header_length_);
  std::uint64_t last = plain_.size() - 1;
  for (std::uint64_t offset : {0ul, 65535ul, 65536ul, 65537ul, 3 * kChunk - 5, last}) {
    for (std::size_t size : {1ul, 100ul, 65536ul, 200000ul})
      EXPECT_EQ(read(d, offset, size), slice(offset, size)) << offset << "+" << size;
  }
  EXPECT_TRUE(read(d, plain_.size(), 10).empty()) << "EOF";
  EXPECT_TRUE(read(d, plain_.size() + 100, 10).empty()) << "past EOF";
  EXPECT_EQ(read(d, 0, plain_.size() + 50), plain_);
}

TEST_F(RandomAccess, WorksWithKeysFromTheHeaderAndFromSeveralThreads) {
  MemorySource head(cipher_);
  AgeFileKeys keys = read_age_header(head, keys_for(identity_));
  MemorySource source(cipher_);
  AgeRandomAccessDecryptor d(source, keys);
  std::vector<std::jthread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      for (int i = 0; i < 200; ++i) {
        std::uint64_t offset = rng() % plain_.size();
        std::size_t size = rng() % 100000;
        Bytes out(size);
        out.resize(d.read_at(offset, out));
        if (out != slice(offset, size)) ++mismatches;
      }
    });
  threads.clear();
  EXPECT_EQ(mismatches, 0);
}

TEST_F(RandomAccess, CorruptChunkFailsOnlyReadsTouchingIt) {
  cipher_[age_chunk_offset(header_length_, 2) + 100] ^= 1;
  MemorySource source(cipher_);
  AgeRandomAccessDecryptor d(source, keys_for(identity_));
  EXPECT_EQ(read(d, 0, 2 * kChunk), slice(0, 2 * kChunk));
  EXPECT_EQ(read(d, 3 * kChunk, 5000), slice(3 * kChunk, 5000));
  AgeError e = expect_age_error([&] { read(d, 2 * kChunk + 10, 10); });
  EXPECT_EQ(e.kind(), AgeErrorKind::PayloadCorrupt);
  EXPECT_EQ(e.chunk(), 2u);
  EXPECT_NE(std::string(e.what()).find("chunk 2"), std::string::npos);
  EXPECT_EQ(expect_age_error([&] { read(d, kChunk, 2 * kChunk); }).chunk(), 2u);
  EXPECT_EQ(read(d, 4 * kChunk, 777), slice(4 * kChunk, 777)) << "still fine after the error";
}

TEST_F(RandomAccess, TruncationIsFoundUpFront) {
  struct Cut {
    std::size_t keep;
    std::set<AgeErrorKind> kinds;
  };
  std::size_t h = header_length_;
  for (const Cut& cut : std::vector<Cut>{
           {h + 16, {AgeErrorKind::Truncated}},                             // no chunks at all
           {age_chunk_offset(h, 4), {AgeErrorKind::Truncated}},             // at a chunk boundary
           {age_chunk_offset(h, 4) + 5, {AgeErrorKind::Truncated}},         // shorter than a tag
           {age_chunk_offset(h, 4) + 300, {AgeErrorKind::PayloadCorrupt}},  // inside the last chunk
           {age_chunk_offset(h, 2) + 30000,
            {AgeErrorKind::PayloadCorrupt}},  // inside a middle chunk
       }) {
    Bytes cut_cipher(cipher_.begin(), cipher_.begin() + cut.keep);
    MemorySource source(cut_cipher);
    AgeError e = expect_age_error([&] { AgeRandomAccessDecryptor d(source, keys_for(identity_)); });
    EXPECT_TRUE(cut.kinds.contains(e.kind())) << cut.keep << ": " << e.what();
  }
}

TEST_F(RandomAccess, TrailingDataIsFoundUpFront) {
  // A whole extra chunk's worth of garbage after the final chunk.
  Bytes longer = cipher_;
  Bytes extra = pseudo_random(kAgeEncryptedChunkSize - 777 - 16 + 100, 9);
  longer.insert(longer.end(), extra.begin(), extra.end());
  MemorySource source(longer);
  AgeError e = expect_age_error([&] { AgeRandomAccessDecryptor d(source, keys_for(identity_)); });
  EXPECT_TRUE(e.kind() == AgeErrorKind::TrailingData || e.kind() == AgeErrorKind::PayloadCorrupt)
      << e.what();
}

// ------------------------------------------------------------ damage, one test each

class Damage : public ::testing::Test {
 protected:
  void SetUp() override {
    plain_ = pseudo_random(5 * kChunk + 100, 7);
    cipher_ = encrypt_to({identity_.recipient()}, plain_, {}, false, &header_length_);
  }
  X25519Identity identity_ = X25519Identity::generate();
  Bytes plain_, cipher_;
  std::uint64_t header_length_ = 0;
};

TEST_F(Damage, WrongIdentity) {
  AgeError e =
      expect_age_error([&] { decrypt_all(cipher_, keys_for(X25519Identity::generate())); });
  EXPECT_EQ(e.kind(), AgeErrorKind::NoIdentityMatched);
}

TEST_F(Damage, PassphraseGivenForARecipientFile) {
  EXPECT_EQ(expect_age_error([&] { decrypt_all(cipher_, keys_for("secret")); }).kind(),
            AgeErrorKind::NoIdentityMatched);
}

TEST(PassphraseDamage, WrongPassphrase) {
  Bytes cipher = encrypt_with(Passphrase("right"), pseudo_random(1000, 8));
  AgeError e = expect_age_error([&] { decrypt_all(cipher, keys_for("wrong")); });
  EXPECT_EQ(e.kind(), AgeErrorKind::WrongPassphrase);
  EXPECT_NE(std::string(e.what()).find("wrong passphrase"), std::string::npos) << e.what();
  EXPECT_EQ(std::string(e.what()).find("right"), std::string::npos);
  EXPECT_EQ(
      expect_age_error([&] { decrypt_all(cipher, keys_for(X25519Identity::generate())); }).kind(),
      AgeErrorKind::NoIdentityMatched);
}

TEST(PassphraseDamage, WorkFactor23IsRefusedWithoutRunningScrypt) {
  Bytes cipher = encrypt_with(Passphrase("p"), pseudo_random(10, 8), 10);
  std::string text(cipher.begin(), cipher.end());
  std::size_t at = text.find(" 10\n");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 4, " 23\n");
  Bytes raised(text.begin(), text.end());
  AgeError e = expect_age_error([&] { decrypt_all(raised, keys_for("p")); });
  EXPECT_EQ(e.kind(), AgeErrorKind::WorkFactorTooHigh);
  EXPECT_NE(std::string(e.what()).find("23"), std::string::npos);
}

TEST(PassphraseDamage, MaximumWorkFactorIsConfigurable) {
  Bytes cipher = encrypt_with(Passphrase("p"), pseudo_random(10, 8), 12);
  AgeDecryptKeys keys = keys_for("p");
  keys.max_work_factor = 11;
  EXPECT_EQ(expect_age_error([&] { decrypt_all(cipher, keys); }).kind(),
            AgeErrorKind::WorkFactorTooHigh);
  keys.max_work_factor = 12;
  EXPECT_EQ(decrypt_all(cipher, keys).size(), 10u);
}

TEST_F(Damage, HeaderMacMismatch) {
  // Change the MAC to another canonical value: the header still parses.
  std::string text(cipher_.begin(), cipher_.begin() + header_length_);
  std::size_t at = text.rfind("--- ") + 4;
  auto mac = internal::base64_decode(text.substr(at, 43), false);
  (*mac)[0] ^= 1;
  text.replace(at, 43, internal::base64_encode(*mac, false));
  Bytes damaged(text.begin(), text.end());
  damaged.insert(damaged.end(), cipher_.begin() + header_length_, cipher_.end());
  EXPECT_EQ(expect_age_error([&] { decrypt_all(damaged, keys_for(identity_)); }).kind(),
            AgeErrorKind::HmacMismatch);
}

TEST_F(Damage, FlippedByteInChunkNNamesChunkNAndReleasesOnlyWhatCameBefore) {
  for (std::uint64_t n : {0ul, 1ul, 3ul, 5ul}) {
    Bytes damaged = cipher_;
    damaged[age_chunk_offset(header_length_, n) + 40] ^= 0x80;
    for (unsigned threads : {1u, 2u}) {
      Bytes released;
      AgeError e = expect_age_error([&] {
        decrypt_all(damaged, keys_for(identity_), &released, {AgeArmor::Auto, threads}, 4096);
      });
      EXPECT_EQ(e.kind(), AgeErrorKind::PayloadCorrupt) << e.what();
      EXPECT_EQ(e.chunk(), n);
      EXPECT_NE(std::string(e.what()).find("age payload is corrupt at chunk " + std::to_string(n)),
                std::string::npos)
          << e.what();
      ASSERT_EQ(released.size(), n * kChunk);
      EXPECT_TRUE(std::equal(released.begin(), released.end(), plain_.begin()));
    }
  }
}

TEST_F(Damage, TruncatedFile) {
  struct Cut {
    std::size_t keep;
    AgeErrorKind kind;
    std::size_t released;
  };
  std::size_t h = header_length_;
  for (const Cut& cut : std::vector<Cut>{
           {h + 16, AgeErrorKind::Truncated, 0},
           {age_chunk_offset(h, 3), AgeErrorKind::Truncated, 3 * kChunk},
           {age_chunk_offset(h, 5), AgeErrorKind::Truncated, 5 * kChunk},
           {age_chunk_offset(h, 3) + 1000, AgeErrorKind::PayloadCorrupt, 3 * kChunk},
           {h + 10, AgeErrorKind::HeaderMalformed, 0},
           {h - 10, AgeErrorKind::HeaderMalformed, 0},
       }) {
    Bytes cut_cipher(cipher_.begin(), cipher_.begin() + cut.keep);
    Bytes released;
    AgeError e = expect_age_error([&] { decrypt_all(cut_cipher, keys_for(identity_), &released); });
    EXPECT_EQ(e.kind(), cut.kind) << cut.keep << ": " << e.what();
    EXPECT_EQ(released.size(), cut.released) << cut.keep;
    if (cut.kind == AgeErrorKind::Truncated) {
      EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
    }
  }
}

TEST_F(Damage, TrailingData) {
  for (std::size_t extra : {1ul, 16ul, 70000ul}) {
    Bytes longer = cipher_;
    longer.insert(longer.end(), extra, 0x42);
    Bytes released;
    AgeError e = expect_age_error([&] { decrypt_all(longer, keys_for(identity_), &released); });
    // A short tail cannot be told from a damaged final chunk; a long one can.
    if (extra < 16) {
      EXPECT_EQ(e.kind(), AgeErrorKind::PayloadCorrupt) << e.what();
      EXPECT_EQ(released.size(), 5 * kChunk);
    } else {
      EXPECT_TRUE(e.kind() == AgeErrorKind::TrailingData ||
                  e.kind() == AgeErrorKind::PayloadCorrupt)
          << e.what();
    }
  }
  // When the final chunk is full, data after it is recognisably trailing.
  Bytes full = pseudo_random(2 * kChunk, 10);
  std::uint64_t h = 0;
  Bytes cipher = encrypt_to({identity_.recipient()}, full, {}, false, &h);
  cipher.insert(cipher.end(), 100, 0x42);
  Bytes released;
  AgeError e = expect_age_error([&] { decrypt_all(cipher, keys_for(identity_), &released); });
  EXPECT_EQ(e.kind(), AgeErrorKind::TrailingData) << e.what();
  EXPECT_EQ(released, full) << "the final chunk was authenticated, so it is released";
}

TEST_F(Damage, DamagedFinalChunkReleasesNothingOfIt) {
  Bytes damaged = cipher_;
  damaged[damaged.size() - 20] ^= 1;
  Bytes released;
  EXPECT_EQ(expect_age_error([&] { decrypt_all(damaged, keys_for(identity_), &released); }).chunk(),
            5u);
  EXPECT_EQ(released.size(), 5 * kChunk);
}

TEST_F(Damage, ErrorsAreStickyAndNeverQuoteKeys) {
  Bytes damaged = cipher_;
  damaged[age_chunk_offset(header_length_, 1)] ^= 1;
  MemorySource source(damaged);
  AgeDecryptor decryptor(source, keys_for(identity_));
  Bytes buffer(1 << 20);
  EXPECT_EQ(decryptor.read(buffer), kChunk);
  for (int i = 0; i < 2; ++i) {
    AgeError e = expect_age_error([&] { decryptor.read(buffer); });
    EXPECT_EQ(e.chunk(), 1u);
    std::string message = e.what();
    EXPECT_EQ(message.find(identity_.to_string().substr(16, 12)), std::string::npos);
  }
}

// A ciphertext source whose reads start failing at byte `limit`, like a tape
// with a bad block.
class FailingSource final : public ByteSource {
 public:
  FailingSource(ByteSpan data, std::size_t limit) : data_(data), limit_(limit) {}
  std::size_t read(MutableByteSpan out) override {
    if (pos_ >= limit_) throw SystemError("cannot read tape", EIO);
    std::size_t n = std::min({out.size(), limit_ - pos_, data_.size() - pos_});
    std::copy_n(data_.begin() + pos_, n, out.begin());
    pos_ += n;
    return n;
  }

 private:
  ByteSpan data_;
  std::size_t limit_;
  std::size_t pos_ = 0;
};

TEST_F(Damage, SourceErrorComesAfterEverythingAuthenticatedBeforeIt) {
  Bytes big = pseudo_random(200 * kChunk, 12);
  std::uint64_t h = 0;
  Bytes cipher = encrypt_to({identity_.recipient()}, big, {}, false, &h);
  std::size_t limit = age_chunk_offset(h, 150) + 1000;
  FailingSource source(cipher, limit);
  AgeDecryptor decryptor(source, keys_for(identity_));
  Bytes released, buffer(100000);
  try {
    for (std::size_t n; (n = decryptor.read(buffer)) > 0;)
      released.insert(released.end(), buffer.begin(), buffer.begin() + n);
    FAIL() << "no error";
  } catch (const SystemError& e) {
    EXPECT_EQ(e.code(), EIO);
  }
  EXPECT_EQ(released.size() % kChunk, 0u);
  EXPECT_GE(released.size(), 64 * kChunk) << "batches before the failing read are released";
  EXPECT_LE(released.size(), 150 * kChunk);
  EXPECT_TRUE(std::equal(released.begin(), released.end(), big.begin()));
  EXPECT_THROW(decryptor.read(buffer), SystemError) << "the error is sticky";
}

TEST(Armor, WriterWrapsAt64ColumnsAndReaderIsStrict) {
  Bytes data = pseudo_random(1000, 11);
  MemorySink sink;
  AgeArmorWriter writer(sink);
  write_in_pieces(writer, data, true);
  writer.close();
  std::string text(sink.bytes().begin(), sink.bytes().end());
  std::istringstream lines(text);
  std::vector<std::string> all;
  for (std::string line; std::getline(lines, line);) all.push_back(line);
  ASSERT_GE(all.size(), 3u);
  EXPECT_EQ(all.front(), "-----BEGIN AGE ENCRYPTED FILE-----");
  EXPECT_EQ(all.back(), "-----END AGE ENCRYPTED FILE-----");
  for (std::size_t i = 1; i + 2 < all.size(); ++i) EXPECT_EQ(all[i].size(), 64u);
  MemorySource source(sink.bytes());
  AgeArmorReader reader(source);
  Bytes back(2000);
  back.resize(read_full(reader, back));
  EXPECT_EQ(back, data);

  std::string spaced = text;
  spaced.insert(spaced.find('\n') + 1, " ");
  Bytes spaced_bytes(spaced.begin(), spaced.end());
  MemorySource bad(spaced_bytes);
  AgeArmorReader strict(bad);
  EXPECT_EQ(expect_age_error([&] { read_full(strict, back); }).kind(),
            AgeErrorKind::ArmorMalformed);
}

}  // namespace
}  // namespace mixtape::crypto
