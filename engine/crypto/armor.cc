// ASCII armor: strict PEM (RFC 7468) with label "AGE ENCRYPTED FILE", padded
// base64 in 64-column lines. Armor is malleable unless parsed strictly, so
// the reader accepts one encoding per file: whitespace only around the block,
// LF or CRLF line ends, every line but the last exactly 64 columns, the last
// 1 to 64, canonical base64 with padding only at the very end.
#include <algorithm>
#include <cstring>

#include "engine/crypto/internal.h"

namespace mixtape::crypto {

using internal::kArmorBegin;
using internal::kArmorEnd;
using internal::kBytesPerLine;
using internal::kColumnsPerLine;

// ------------------------------------------------------------ writer

class AgeArmorWriter::Impl {
 public:
  explicit Impl(ByteSink& next) : next_(next) { out_ = std::string(kArmorBegin) + "\n"; }

  void write(ByteSpan data) {
    if (carry_size_ > 0) {
      std::size_t n = std::min(kBytesPerLine - carry_size_, data.size());
      std::memcpy(carry_.data() + carry_size_, data.data(), n);
      carry_size_ += n;
      data = data.subspan(n);
      if (carry_size_ < kBytesPerLine) return;
      line(carry_);
      carry_size_ = 0;
    }
    while (data.size() >= kBytesPerLine) {
      line(data.first(kBytesPerLine));
      data = data.subspan(kBytesPerLine);
    }
    if (!data.empty()) std::memcpy(carry_.data(), data.data(), data.size());
    carry_size_ = data.size();
  }

  void close() {
    if (carry_size_ > 0) line(ByteSpan(carry_).first(carry_size_));
    out_ += kArmorEnd;
    out_ += '\n';
    flush();
    next_.close();
  }

 private:
  void line(ByteSpan bytes) {
    out_ += internal::base64_encode(bytes, true);
    out_ += '\n';
    if (out_.size() >= (1 << 16)) flush();
  }
  void flush() {
    next_.write(as_bytes(out_));
    out_.clear();
  }

  ByteSink& next_;
  std::string out_;
  std::array<std::uint8_t, kBytesPerLine> carry_{};
  std::size_t carry_size_ = 0;
};

AgeArmorWriter::AgeArmorWriter(ByteSink& next) : impl_(std::make_unique<Impl>(next)) {}
AgeArmorWriter::~AgeArmorWriter() = default;
void AgeArmorWriter::write(ByteSpan data) {
  impl_->write(data);
}
void AgeArmorWriter::close() {
  impl_->close();
}

// ------------------------------------------------------------ reader

namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

[[noreturn]] void malformed(const std::string& why) {
  internal::fail(AgeErrorKind::ArmorMalformed, "invalid age armor: " + why);
}

}  // namespace

class AgeArmorReader::Impl {
 public:
  explicit Impl(ByteSource& source) : in_(source, 1 << 16) {}

  std::size_t read(MutableByteSpan out) {
    if (out.empty()) return 0;
    while (pending_begin_ == pending_.size()) {
      if (finished_) return 0;
      pending_.clear();
      pending_begin_ = 0;
      decode_lines();
    }
    std::size_t n = std::min(out.size(), pending_.size() - pending_begin_);
    std::memcpy(out.data(), pending_.data() + pending_begin_, n);
    pending_begin_ += n;
    return n;
  }

 private:
  // One line without its LF or CRLF; false at the end of the input.
  bool next_line(std::string& line) {
    line.clear();
    auto status = in_.read_line(line, 4 * kColumnsPerLine);
    if (status == internal::BufferedReader::Line::TooLong) malformed("line too long");
    if (status == internal::BufferedReader::Line::End && line.empty()) return false;
    if (!line.empty() && line.back() == '\n') line.pop_back();
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return true;
  }

  void begin() {
    std::string line;
    std::size_t whitespace = 0;
    for (;;) {
      if (!next_line(line)) malformed("no -----BEGIN AGE ENCRYPTED FILE----- line");
      if (std::all_of(line.begin(), line.end(), is_space)) {
        whitespace += line.size() + 1;
        if (whitespace > internal::kMaxArmorWhitespace) malformed("too much leading whitespace");
        continue;
      }
      if (line != kArmorBegin) malformed("first line is not -----BEGIN AGE ENCRYPTED FILE-----");
      started_ = true;
      return;
    }
  }

  void decode_lines() {
    if (!started_) begin();
    std::string line;
    // Up to ~64 KiB per call: large reads without unbounded buffering.
    while (pending_.size() < (1 << 16)) {
      if (!next_line(line)) malformed("no -----END AGE ENCRYPTED FILE----- line");
      if (line == kArmorEnd) {
        end();
        return;
      }
      if (saw_short_line_) malformed("data after the last (short) line");
      if (line.empty() || line.size() > kColumnsPerLine || line.size() % 4 != 0)
        malformed("line is not 4 to 64 columns of padded base64");
      std::optional<Bytes> bytes = internal::base64_decode(line, true);
      if (!bytes) malformed("invalid or non-canonical base64");
      if (bytes->size() < kBytesPerLine) saw_short_line_ = true;
      pending_.insert(pending_.end(), bytes->begin(), bytes->end());
    }
  }

  void end() {
    finished_ = true;
    std::size_t trailing = 0;
    for (;;) {
      ByteSpan rest = in_.peek(1);
      if (rest.empty()) return;
      if (!std::all_of(rest.begin(), rest.end(),
                       [](std::uint8_t c) { return is_space(static_cast<char>(c)); }))
        malformed("data after -----END AGE ENCRYPTED FILE-----");
      trailing += rest.size();
      if (trailing >= internal::kMaxArmorWhitespace) malformed("too much trailing whitespace");
      in_.consume(rest.size());
    }
  }

  internal::BufferedReader in_;
  Bytes pending_;
  std::size_t pending_begin_ = 0;
  bool started_ = false;
  bool saw_short_line_ = false;
  bool finished_ = false;
};

AgeArmorReader::AgeArmorReader(ByteSource& armored) : impl_(std::make_unique<Impl>(armored)) {}
AgeArmorReader::~AgeArmorReader() = default;
std::size_t AgeArmorReader::read(MutableByteSpan out) {
  return impl_->read(out);
}

}  // namespace mixtape::crypto
