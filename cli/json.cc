#include "cli/json.h"

#include <ctime>

namespace mixtape::cli {
namespace {

// The length of the UTF-8 sequence at `s` (1 to 4), or 0 if it is not one
// (overlong forms, surrogates and code points above U+10FFFF included).
std::size_t utf8_length(std::string_view s) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char b0 = byte(0);
  if (b0 < 0x80) return 1;
  std::size_t n = 0;
  std::uint32_t cp = 0;
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    n = 2;
    cp = b0 & 0x1f;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    n = 3;
    cp = b0 & 0x0f;
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    n = 4;
    cp = b0 & 0x07;
  } else {
    return 0;
  }
  if (s.size() < n) return 0;
  for (std::size_t i = 1; i < n; ++i) {
    if ((byte(i) & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i) & 0x3f);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
      (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return n;
}

}  // namespace

std::string json_string(std::string_view bytes) {
  std::string out = "\"";
  char escaped[8];
  for (std::size_t i = 0; i < bytes.size();) {
    const unsigned char c = static_cast<unsigned char>(bytes[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
      ++i;
    } else if (c == '\n') {
      out += "\\n";
      ++i;
    } else if (c == '\t') {
      out += "\\t";
      ++i;
    } else if (c < 0x20 || c == 0x7f) {
      std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
      out += escaped;
      ++i;
    } else if (std::size_t n = utf8_length(bytes.substr(i)); n > 0) {
      out.append(bytes.substr(i, n));
      i += n;
    } else {
      std::snprintf(escaped, sizeof escaped, "\\udc%02x", c);  // surrogateescape
      out += escaped;
      ++i;
    }
  }
  return out + "\"";
}

std::string rfc3339_ns(std::int64_t ns) {
  std::int64_t seconds = ns / 1000000000;
  std::int64_t fraction = ns % 1000000000;
  if (fraction < 0) {
    fraction += 1000000000;
    --seconds;
  }
  const std::time_t t = static_cast<std::time_t>(seconds);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%09lldZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<long long>(fraction));
  return buf;
}

JsonWriter::~JsonWriter() {
  if (started_ && first_.empty()) put("\n");
  std::fflush(out_);
}

void JsonWriter::put(std::string_view text) {
  std::fwrite(text.data(), 1, text.size(), out_);
}

void JsonWriter::before_value() {
  started_ = true;
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (!first_.empty()) {
    if (!first_.back()) put(",");
    first_.back() = false;
  }
}

JsonWriter& JsonWriter::open(std::string_view bracket) {
  scalar(bracket);
  first_.push_back(true);
  return *this;
}

JsonWriter& JsonWriter::close(std::string_view bracket) {
  put(bracket);
  first_.pop_back();
  return *this;
}

JsonWriter& JsonWriter::begin_object() {
  return open("{");
}
JsonWriter& JsonWriter::end_object() {
  return close("}");
}
JsonWriter& JsonWriter::begin_array() {
  return open("[");
}
JsonWriter& JsonWriter::end_array() {
  return close("]");
}

JsonWriter& JsonWriter::key(std::string_view name) {
  before_value();
  put(json_string(name));
  put(":");
  after_key_ = true;
  return *this;
}

JsonWriter& JsonWriter::scalar(std::string_view text) {
  before_value();
  put(text);
  return *this;
}

JsonWriter& JsonWriter::value(std::string_view text) {
  return scalar(json_string(text));
}
JsonWriter& JsonWriter::value(std::uint64_t number) {
  return scalar(std::to_string(number));
}
JsonWriter& JsonWriter::value(std::int64_t number) {
  return scalar(std::to_string(number));
}
JsonWriter& JsonWriter::value(bool flag) {
  return scalar(flag ? "true" : "false");
}
JsonWriter& JsonWriter::null() {
  return scalar("null");
}

JsonWriter& JsonWriter::time(std::int64_t ns) {
  return ns ? value(rfc3339_ns(ns)) : null();
}

JsonWriter& JsonWriter::strings(const std::vector<std::string>& texts) {
  begin_array();
  for (const auto& t : texts) value(t);
  return end_array();
}

}  // namespace mixtape::cli
