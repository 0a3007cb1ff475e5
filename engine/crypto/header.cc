// The age header: strict parsing per the spec's ABNF, serialisation, the MAC,
// and finding the file key. Parsing is strict so that there is exactly one
// byte string per header: re-serialising a parsed header gives the same bytes,
// and the MAC over the bytes read is the MAC over what was understood.
#include <sodium.h>

#include <algorithm>
#include <cstring>

#include "engine/crypto/internal.h"

namespace mixtape::crypto {
namespace internal {

// ------------------------------------------------------------ BufferedReader

BufferedReader::BufferedReader(ByteSource& source, std::size_t capacity)
    : source_(source), capacity_(std::max<std::size_t>(capacity, 1)) {}

bool BufferedReader::fill(std::size_t want) {
  if (eof_) return false;
  if (begin_ > 0) {
    std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  std::size_t needed = std::max({want, capacity_, end_ + 1});
  if (buffer_.size() < needed) buffer_.resize(needed);
  std::size_t n = source_.read(MutableByteSpan(buffer_).subspan(end_));
  if (n == 0) {
    eof_ = true;
    return false;
  }
  end_ += n;
  return true;
}

ByteSpan BufferedReader::peek(std::size_t n) {
  while (end_ - begin_ < n && fill(n)) {
  }
  return ByteSpan(buffer_).subspan(begin_, end_ - begin_);
}

void BufferedReader::consume(std::size_t n) {
  begin_ += std::min(n, end_ - begin_);
}

BufferedReader::Line BufferedReader::read_line(std::string& line, std::size_t max_length) {
  std::size_t start = line.size();
  for (;;) {
    const std::uint8_t* data = buffer_.data() + begin_;
    const void* lf = begin_ < end_ ? std::memchr(data, '\n', end_ - begin_) : nullptr;
    std::size_t take = lf ? static_cast<const std::uint8_t*>(lf) - data + 1 : end_ - begin_;
    line.append(reinterpret_cast<const char*>(data), take);
    begin_ += take;
    if (lf) return Line::Complete;
    if (line.size() - start > max_length) return Line::TooLong;
    if (!fill(1)) return Line::End;
  }
}

std::size_t BufferedReader::read(MutableByteSpan out) {
  if (out.empty()) return 0;
  if (begin_ == end_) {
    // Large reads bypass the buffer: no copy on the payload's hot path.
    if (out.size() >= capacity_) return eof_ ? 0 : source_.read(out);
    if (!fill(1)) return 0;
  }
  std::size_t n = std::min(out.size(), end_ - begin_);
  std::memcpy(out.data(), buffer_.data() + begin_, n);
  begin_ += n;
  return n;
}

// ------------------------------------------------------------ parsing

namespace {

[[noreturn]] void malformed(const std::string& why) {
  fail(AgeErrorKind::HeaderMalformed, "malformed age header: " + why);
}

bool is_vchar_string(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= 33 && c <= 126; });
}

// Reads one LF-terminated line into `raw` and returns it without the LF.
std::string_view next_line(BufferedReader& in, std::string& raw, const char* what) {
  std::size_t start = raw.size();
  BufferedReader::Line status = in.read_line(raw, kMaxHeaderSize);
  if (raw.size() > kMaxHeaderSize || status == BufferedReader::Line::TooLong)
    malformed("header is larger than 1 MiB");
  if (status == BufferedReader::Line::End) {
    if (raw.size() == 0) malformed("the file is empty");
    malformed(std::string("the file ends inside the header (") + what + ")");
  }
  return std::string_view(raw).substr(start, raw.size() - start - 1);
}

std::vector<std::string> split_args(std::string_view text) {
  std::vector<std::string> args;
  for (;;) {
    std::size_t sp = text.find(' ');
    args.emplace_back(text.substr(0, sp));
    if (sp == std::string_view::npos) return args;
    text.remove_prefix(sp + 1);
  }
}

void read_stanza_body(BufferedReader& in, std::string& raw, Stanza& stanza) {
  // Full 64-column lines, then one shorter (possibly empty) line ends the body.
  for (;;) {
    std::string_view line = next_line(in, raw, "stanza body");
    if (line.size() > kColumnsPerLine) malformed("stanza body line longer than 64 columns");
    std::optional<Bytes> bytes = base64_decode(line, false);
    if (!bytes) malformed("stanza body is not canonical unpadded base64");
    stanza.body.insert(stanza.body.end(), bytes->begin(), bytes->end());
    if (line.size() < kColumnsPerLine) return;
  }
}

}  // namespace

Header parse_header(BufferedReader& in) {
  Header header;
  std::string_view intro = next_line(in, header.raw, "version line");
  if (intro != kIntro.substr(0, kIntro.size() - 1)) {
    if (intro == "age-encryption.org/v1\r")
      malformed("lines end with CRLF (was the file converted to DOS line endings?)");
    if (intro.starts_with(kVersionPrefix))
      malformed("unsupported age format version (only age-encryption.org/v1 is known)");
    malformed("not an age file (no age-encryption.org/v1 line)");
  }
  for (;;) {
    std::string_view line = next_line(in, header.raw, "stanza or MAC line");
    if (line.starts_with(kMacPrefix)) {
      // "--- " and 43 characters of canonical base64: a 32-byte MAC.
      if (line.size() < 4 || line[3] != ' ') malformed("MAC line must be \"--- \" and the MAC");
      std::optional<Bytes> mac = base64_decode(line.substr(4), false);
      if (!mac || mac->size() != kMacSize) malformed("MAC is not 32 bytes of canonical base64");
      std::memcpy(header.mac.data(), mac->data(), kMacSize);
      break;
    }
    if (!line.starts_with(kStanzaPrefix)) malformed("expected a stanza (->) or the MAC line (---)");
    Stanza stanza;
    std::vector<std::string> args = split_args(line.substr(kStanzaPrefix.size()));
    for (const std::string& arg : args)
      if (!is_vchar_string(arg)) malformed("stanza argument empty or not printable ASCII");
    stanza.type = std::move(args.front());
    stanza.args.assign(std::make_move_iterator(args.begin() + 1),
                       std::make_move_iterator(args.end()));
    read_stanza_body(in, header.raw, stanza);
    header.stanzas.push_back(std::move(stanza));
  }
  if (header.stanzas.empty()) malformed("no recipient stanzas");
  return header;
}

std::string serialize_header_without_mac(const std::vector<Stanza>& stanzas) {
  std::string out(kIntro);
  for (const Stanza& stanza : stanzas) {
    out += "->";
    out += ' ';
    out += stanza.type;
    for (const std::string& arg : stanza.args) {
      out += ' ';
      out += arg;
    }
    out += '\n';
    std::string body = base64_encode(stanza.body, false);
    // Every full line is followed by another; the last is short, maybe empty.
    for (std::size_t pos = 0;; pos += kColumnsPerLine) {
      std::size_t n = std::min(kColumnsPerLine, body.size() - pos);
      out.append(body, pos, n);
      out += '\n';
      if (n < kColumnsPerLine) break;
    }
  }
  out += kMacPrefix;
  return out;
}

std::string serialize_header(const std::vector<Stanza>& stanzas, const Mac& mac) {
  return serialize_header_without_mac(stanzas) + " " + base64_encode(mac, false) + "\n";
}

Mac header_mac(const FileKey& file_key, std::string_view header_without_mac) {
  Key32 key = hkdf_sha256(file_key.span(), {}, kHeaderInfo);
  return hmac_sha256(key.span(), as_bytes(header_without_mac));
}

// ------------------------------------------------------------ file key

FileKey open_file_key(const Header& header, const AgeDecryptKeys& keys) {
  bool has_scrypt = std::any_of(header.stanzas.begin(), header.stanzas.end(),
                                [](const Stanza& s) { return s.type == kScryptType; });
  // Passphrase encryption implies only those who know it wrote the file; a
  // second stanza would let anyone else have written it.
  if (has_scrypt && header.stanzas.size() != 1)
    malformed("an scrypt stanza must be the only stanza in the header");

  std::optional<FileKey> file_key;
  if (has_scrypt) {
    if (!keys.passphrase)
      fail(AgeErrorKind::NoIdentityMatched,
           "the age file is encrypted with a passphrase, and no passphrase was given");
    bool wrong = false;
    file_key = scrypt_unwrap(*keys.passphrase, keys.max_work_factor, header.stanzas[0], &wrong);
    if (!file_key) fail(AgeErrorKind::WrongPassphrase, "wrong passphrase for the age file");
  } else {
    // Identity by identity, stanza by stanza, as age does; a malformed X25519
    // stanza is fatal when reached.
    for (const X25519Identity& identity : keys.identities) {
      for (const Stanza& stanza : header.stanzas)
        if ((file_key = x25519_unwrap(identity, stanza))) break;
      if (file_key) break;
    }
    if (!file_key) {
      if (keys.identities.empty())
        fail(AgeErrorKind::NoIdentityMatched,
             "the age file is not encrypted with a passphrase, and no identity was given");
      fail(AgeErrorKind::NoIdentityMatched, "no identity matched any of the age file's recipients");
    }
  }
  Mac mac = header_mac(*file_key, header.mac_input());
  if (sodium_memcmp(mac.data(), header.mac.data(), kMacSize) != 0)
    fail(AgeErrorKind::HmacMismatch,
         "age header MAC mismatch: the header was modified or is damaged");
  return *file_key;
}

AgeFileKeys open_header(BufferedReader& in, const AgeDecryptKeys& keys) {
  Header header = parse_header(in);
  FileKey file_key = open_file_key(header, keys);
  std::array<std::uint8_t, kAgeNonceSize> nonce;
  ByteSpan got = in.peek(nonce.size());
  if (got.size() < nonce.size()) malformed("the file ends before the payload nonce (truncated)");
  std::memcpy(nonce.data(), got.data(), nonce.size());
  in.consume(nonce.size());
  return AgeFileKeys{header.raw.size(), payload_key(file_key, nonce)};
}

}  // namespace internal

AgeFileKeys read_age_header(ByteSource& ciphertext, const AgeDecryptKeys& keys) {
  // Capacity 1: never reads past the nonce, so the caller's source is left
  // exactly at chunk 0.
  internal::BufferedReader in(ciphertext, 1);
  return internal::open_header(in, keys);
}

std::uint64_t age_header_length(ByteSource& ciphertext) {
  internal::BufferedReader in(ciphertext, 1);
  return internal::parse_header(in).raw.size();
}

}  // namespace mixtape::crypto
