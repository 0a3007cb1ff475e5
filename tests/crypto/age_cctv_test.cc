// The C2SP CCTV age test kit (tests/testdata/cctv-age): every vector that is
// not post-quantum, one test case each. A vector passes when decryption
// succeeds exactly when it should, fails with the right kind of error when it
// should not, and the SHA-256 of all plaintext released (also before a
// payload error) matches. Vectors that parse also check that the header
// re-serialises to the same bytes, and success vectors that the STREAM and
// armor encoders reproduce the file.
#include <gtest/gtest.h>
#include <sodium.h>
#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "engine/crypto/crypto.h"
#include "engine/crypto/internal.h"

namespace mixtape::crypto {
namespace {

namespace fs = std::filesystem;

const fs::path kVectorDir = fs::path(MIXTAPE_TESTDATA) / "cctv-age";

struct Vector {
  std::string expect;
  std::string payload;  // hex SHA-256, for success and payload failure
  std::vector<std::string> identities;
  std::vector<std::string> passphrases;
  std::string file_key;
  bool armored = false;
  Bytes body;  // the age file, decompressed
};

Bytes inflate_all(const std::string& compressed) {
  z_stream z{};
  EXPECT_EQ(inflateInit(&z), Z_OK);
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
  z.avail_in = static_cast<uInt>(compressed.size());
  Bytes out;
  std::array<std::uint8_t, 1 << 16> chunk;
  int status = Z_OK;
  while (status != Z_STREAM_END) {
    z.next_out = chunk.data();
    z.avail_out = chunk.size();
    status = inflate(&z, Z_NO_FLUSH);
    if (status != Z_OK && status != Z_STREAM_END) {
      ADD_FAILURE() << "zlib inflate failed: " << status;
      break;
    }
    out.insert(out.end(), chunk.data(), chunk.data() + (chunk.size() - z.avail_out));
  }
  inflateEnd(&z);
  return out;
}

Vector load_vector(const std::string& name, bool with_body = true) {
  std::ifstream in(kVectorDir / name, std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::size_t split = all.find("\n\n");
  EXPECT_NE(split, std::string::npos) << name;
  Vector v;
  bool compressed = false;
  std::istringstream header(all.substr(0, split));
  for (std::string line; std::getline(header, line);) {
    std::size_t colon = line.find(": ");
    std::string key = line.substr(0, colon), value = line.substr(colon + 2);
    if (key == "expect")
      v.expect = value;
    else if (key == "payload")
      v.payload = value;
    else if (key == "identity")
      v.identities.push_back(value);
    else if (key == "passphrase")
      v.passphrases.push_back(value);
    else if (key == "armored")
      v.armored = value == "yes";
    else if (key == "compressed")
      compressed = value == "zlib";
    else if (key == "file key")
      v.file_key = value;
  }
  if (!with_body) return v;
  std::string body = all.substr(split + 2);
  v.body = compressed ? inflate_all(body) : Bytes(body.begin(), body.end());
  return v;
}

std::vector<std::string> all_vector_names() {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(kVectorDir)) {
    std::string name = entry.path().filename();
    if (name != "README.md" && name != "SOURCE.txt") names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

// ML-KEM hybrid recipients are not implemented: their vectors need a
// post-quantum identity (AGE-SECRET-KEY-PQ-1...).
bool is_post_quantum(const std::string& name) {
  Vector v = load_vector(name, false);
  return std::any_of(v.identities.begin(), v.identities.end(),
                     [](const std::string& id) { return id.starts_with("AGE-SECRET-KEY-PQ-"); });
}

// Non-post-quantum vectors whose textual header satisfies `keep`.
template <typename Keep>
std::vector<std::string> classical_vector_names(Keep keep) {
  std::vector<std::string> names;
  for (const std::string& name : all_vector_names())
    if (!is_post_quantum(name) && keep(load_vector(name, false))) names.push_back(name);
  return names;
}

std::vector<std::string> classical_vector_names() {
  return classical_vector_names([](const Vector&) { return true; });
}

struct Outcome {
  std::optional<AgeErrorKind> error;
  std::string message;
  std::string released_sha256;
  bool armored_detected = false;
};

Outcome decrypt(const Vector& v, AgeArmor armor, std::size_t read_size, unsigned threads) {
  AgeDecryptKeys keys;
  for (const std::string& id : v.identities) keys.identities.push_back(X25519Identity::parse(id));
  // The test kit's multi-passphrase vectors are header failures either way.
  if (!v.passphrases.empty()) keys.passphrase.emplace(v.passphrases.front());
  crypto_hash_sha256_state sha;
  crypto_hash_sha256_init(&sha);
  Outcome outcome;
  MemorySource source(v.body);
  try {
    AgeDecryptor decryptor(source, keys, {armor, threads});
    outcome.armored_detected = decryptor.armored();
    Bytes buffer(read_size);
    for (std::size_t n; (n = decryptor.read(buffer)) > 0;)
      crypto_hash_sha256_update(&sha, buffer.data(), n);
  } catch (const AgeError& e) {
    outcome.error = e.kind();
    outcome.message = e.what();
  }
  std::array<std::uint8_t, crypto_hash_sha256_BYTES> digest;
  crypto_hash_sha256_final(&sha, digest.data());
  outcome.released_sha256 = to_hex(digest);
  return outcome;
}

std::set<AgeErrorKind> kinds_for(const std::string& expect) {
  using K = AgeErrorKind;
  if (expect == "no match") return {K::NoIdentityMatched, K::WrongPassphrase};
  if (expect == "HMAC failure") return {K::HmacMismatch};
  if (expect == "header failure") return {K::HeaderMalformed, K::WorkFactorTooHigh};
  if (expect == "payload failure") return {K::PayloadCorrupt, K::Truncated, K::TrailingData};
  if (expect == "armor failure") return {K::ArmorMalformed};
  ADD_FAILURE() << "unknown expectation " << expect;
  return {};
}

Bytes dearmor(const Bytes& armored) {
  MemorySource source(armored);
  AgeArmorReader reader(source);
  Bytes out, buffer(4096);
  for (std::size_t n; (n = reader.read(buffer)) > 0;)
    out.insert(out.end(), buffer.begin(), buffer.begin() + n);
  return out;
}

class Cctv : public ::testing::TestWithParam<std::string> {};
// Subsets: success vectors; vectors whose header parses; valid armor.
class CctvSuccess : public ::testing::TestWithParam<std::string> {};
class CctvParses : public ::testing::TestWithParam<std::string> {};
class CctvArmor : public ::testing::TestWithParam<std::string> {};

TEST_P(Cctv, Decrypts) {
  Vector v = load_vector(GetParam());
  AgeArmor armor = v.armored ? AgeArmor::Armored : AgeArmor::Binary;
  Outcome outcome = decrypt(v, armor, 65536, 2);
  if (std::getenv("CCTV_VERBOSE"))
    std::fprintf(stderr, "%-45s %-16s -> %s: %s\n", GetParam().c_str(), v.expect.c_str(),
                 outcome.error ? to_string(*outcome.error) : "ok", outcome.message.c_str());
  if (v.expect == "success") {
    EXPECT_FALSE(outcome.error) << "unexpected error: " << outcome.message;
  } else {
    ASSERT_TRUE(outcome.error) << "expected " << v.expect << ", but decryption succeeded";
    EXPECT_TRUE(kinds_for(v.expect).contains(*outcome.error))
        << "expected " << v.expect << ", got " << to_string(*outcome.error) << ": "
        << outcome.message;
    EXPECT_EQ(outcome.message.find('\n'), std::string::npos) << "error messages are one line";
  }
  if (v.expect == "success" || v.expect == "payload failure") {
    EXPECT_EQ(outcome.released_sha256, v.payload) << "released plaintext differs";
  }
}

TEST_P(Cctv, SameResultWithOddReadSizesAndOneThread) {
  Vector v = load_vector(GetParam());
  AgeArmor armor = v.armored ? AgeArmor::Armored : AgeArmor::Binary;
  Outcome a = decrypt(v, armor, 65536, 2);
  Outcome b = decrypt(v, armor, 1000, 1);
  EXPECT_EQ(a.error, b.error);
  EXPECT_EQ(a.released_sha256, b.released_sha256);
}

TEST_P(CctvSuccess, ArmorIsDetectedAutomatically) {
  Vector v = load_vector(GetParam());
  Outcome outcome = decrypt(v, AgeArmor::Auto, 65536, 2);
  EXPECT_FALSE(outcome.error) << outcome.message;
  EXPECT_EQ(outcome.armored_detected, v.armored);
  EXPECT_EQ(outcome.released_sha256, v.payload);
}

TEST_P(CctvParses, HeaderRoundTrips) {
  Vector v = load_vector(GetParam());
  Bytes binary = v.armored ? dearmor(v.body) : v.body;
  MemorySource source(binary);
  internal::BufferedReader in(source, 4096);
  internal::Header header = internal::parse_header(in);
  EXPECT_EQ(internal::serialize_header(header.stanzas, header.mac), header.raw);
  EXPECT_EQ(internal::serialize_header_without_mac(header.stanzas), header.mac_input());
  MemorySource again(binary);
  EXPECT_EQ(age_header_length(again), header.raw.size());
}

// With the file key and nonce from the vector, sealing the released plaintext
// chunk by chunk must give back the payload byte for byte.
TEST_P(CctvSuccess, StreamRoundTrips) {
  Vector v = load_vector(GetParam());
  Bytes binary = v.armored ? dearmor(v.body) : v.body;
  MemorySource source(binary);
  std::uint64_t header_length = age_header_length(source);
  ByteSpan nonce = ByteSpan(binary).subspan(header_length, kAgeNonceSize);
  ByteSpan payload = ByteSpan(binary).subspan(header_length + kAgeNonceSize);
  Bytes file_key_bytes = from_hex(v.file_key);
  ASSERT_EQ(file_key_bytes.size(), internal::kFileKeySize);
  internal::FileKey file_key;
  std::copy(file_key_bytes.begin(), file_key_bytes.end(), file_key.data());
  internal::Key32 key = internal::payload_key(file_key, nonce);

  AgeDecryptKeys keys;
  for (const std::string& id : v.identities) keys.identities.push_back(X25519Identity::parse(id));
  if (!v.passphrases.empty()) keys.passphrase.emplace(v.passphrases.front());
  MemorySource ciphertext(binary);
  AgeDecryptor decryptor(ciphertext, keys, {AgeArmor::Binary, 1});
  Bytes plain, buffer(1 << 16);
  for (std::size_t n; (n = decryptor.read(buffer)) > 0;)
    plain.insert(plain.end(), buffer.begin(), buffer.begin() + n);

  Bytes resealed;
  std::uint64_t chunks = age_chunk_count(plain.size());
  for (std::uint64_t i = 0; i < chunks; ++i) {
    std::size_t begin = i * kAgeChunkSize;
    std::size_t size = std::min<std::size_t>(kAgeChunkSize, plain.size() - begin);
    Bytes sealed(size + kAgeTagSize);
    internal::seal_chunk(key, i, i + 1 == chunks, ByteSpan(plain).subspan(begin, size),
                         sealed.data());
    resealed.insert(resealed.end(), sealed.begin(), sealed.end());
  }
  EXPECT_TRUE(std::equal(resealed.begin(), resealed.end(), payload.begin(), payload.end()));
}

// Armor decodes and re-encodes to the same text, up to the whitespace and
// CRLF the spec tolerates.
TEST_P(CctvArmor, ArmorRoundTrips) {
  Vector v = load_vector(GetParam());
  std::string text(v.body.begin(), v.body.end());
  std::string normal;
  for (char c : text)
    if (c != '\r') normal += c;
  std::size_t first = normal.find_first_not_of(" \t\n\v\f");
  std::size_t last = normal.find_last_not_of(" \t\n\v\f");
  normal = normal.substr(first, last - first + 1) + "\n";
  MemorySink sink;
  AgeArmorWriter writer(sink);
  writer.write(dearmor(v.body));
  writer.close();
  EXPECT_EQ(std::string(sink.bytes().begin(), sink.bytes().end()), normal);
  EXPECT_TRUE(sink.closed());
}

std::string sanitize(const ::testing::TestParamInfo<std::string>& info) {
  std::string name = info.param;
  for (char& c : name)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return name;
}

INSTANTIATE_TEST_SUITE_P(Vectors, Cctv, ::testing::ValuesIn(classical_vector_names()), sanitize);
INSTANTIATE_TEST_SUITE_P(Vectors, CctvSuccess,
                         ::testing::ValuesIn(classical_vector_names([](const Vector& v) {
                           return v.expect == "success";
                         })),
                         sanitize);
INSTANTIATE_TEST_SUITE_P(Vectors, CctvParses,
                         ::testing::ValuesIn(classical_vector_names([](const Vector& v) {
                           return v.expect != "header failure" && v.expect != "armor failure";
                         })),
                         sanitize);
INSTANTIATE_TEST_SUITE_P(Vectors, CctvArmor,
                         ::testing::ValuesIn(classical_vector_names([](const Vector& v) {
                           return v.armored && v.expect != "armor failure";
                         })),
                         sanitize);

// Only post-quantum vectors may be left out, and the kit must be complete.
TEST(CctvKit, OnlyPostQuantumVectorsAreSkipped) {
  std::vector<std::string> all = all_vector_names();
  std::vector<std::string> classical = classical_vector_names();
  EXPECT_EQ(all.size(), 143u);
  EXPECT_EQ(classical.size(), 124u);
  for (const std::string& name : all) {
    bool skipped = std::find(classical.begin(), classical.end(), name) == classical.end();
    bool hybrid_name = name.starts_with("hybrid") || name == "armor_hybrid";
    EXPECT_EQ(skipped, hybrid_name) << name;
  }
}

}  // namespace
}  // namespace mixtape::crypto
