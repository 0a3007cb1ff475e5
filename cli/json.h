// JSON for --json: a writer that streams one document to stdout, and the
// conventions docs/CLI.md gives scripts: sizes in bytes (integers), times
// in RFC 3339 UTC with nanoseconds, paths as strings (bytes that are not
// UTF-8 written as \udcXX, Python's surrogateescape).
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace mixtape::cli {

// A JSON string literal of `bytes`, quotes included.
std::string json_string(std::string_view bytes);
// "2026-11-21T10:00:00.123456789Z" (RFC 3339, UTC).
std::string rfc3339_ns(std::int64_t ns);

class JsonWriter {
 public:
  explicit JsonWriter(std::FILE* out = stdout) : out_(out) {}
  ~JsonWriter();  // ends the document with a newline once it is complete
  JsonWriter(const JsonWriter&) = delete;
  JsonWriter& operator=(const JsonWriter&) = delete;

  JsonWriter& begin_object();
  JsonWriter& end_object();
  JsonWriter& begin_array();
  JsonWriter& end_array();
  // Inside an object: the next value's name.
  JsonWriter& key(std::string_view name);
  JsonWriter& value(std::string_view text);
  JsonWriter& value(const char* text) { return value(std::string_view(text)); }
  JsonWriter& value(const std::string& text) { return value(std::string_view(text)); }
  JsonWriter& value(std::uint64_t number);
  JsonWriter& value(std::int64_t number);
  JsonWriter& value(int number) { return value(static_cast<std::int64_t>(number)); }
  JsonWriter& value(bool flag);
  JsonWriter& null();
  // A time in nanoseconds as rfc3339_ns, or null when 0 (never).
  JsonWriter& time(std::int64_t ns);
  JsonWriter& strings(const std::vector<std::string>& texts);
  JsonWriter& value(const std::vector<std::string>& texts) { return strings(texts); }

  // key(name).value(v) in one call.
  template <typename T>
  JsonWriter& field(std::string_view name, const T& v) {
    key(name);
    return value(v);
  }
  // An object whose members members(*this) writes, or null when !present.
  template <typename Members>
  JsonWriter& object_or_null(bool present, Members members) {
    if (!present) return null();
    begin_object();
    members(*this);
    return end_object();
  }
  // key(name).time(ns): a time, where field would write the number.
  JsonWriter& time_field(std::string_view name, std::int64_t ns) {
    key(name);
    return time(ns);
  }

 private:
  void before_value();
  void put(std::string_view text);
  // A value written as it is: a number, a literal, a quoted string, a bracket.
  JsonWriter& scalar(std::string_view text);
  JsonWriter& open(std::string_view bracket);  // an object or array, its first member to come
  JsonWriter& close(std::string_view bracket);

  std::FILE* out_;
  std::vector<bool> first_;  // per open container: no member written yet
  bool after_key_ = false;
  bool started_ = false;
};

}  // namespace mixtape::cli
