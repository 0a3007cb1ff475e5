// The label: the MIXTAPE member, first in tape file 0 (docs/FORMAT.md
// "File 0"). A few "key: value" lines a person can read with `tar -xOf`.
#include <charconv>
#include <ctime>

#include "engine/crypto/crypto.h"
#include "engine/format/format.h"
#include "engine/format/tar_header.h"

namespace mixtape::format {
namespace {

constexpr std::string_view kFirstLinePrefix = "mixtape tape format ";
// The label is a few hundred bytes; anything much larger is not one.
constexpr std::uint64_t kMaxLabelSize = 64 * 1024;

bool all_of(std::string_view text, bool (*pred)(char)) {
  for (char c : text) {
    if (!pred(c)) return false;
  }
  return true;
}

bool is_serial_char(char c) {
  return c > ' ' && c < 0x7f;
}
bool is_hex_char(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}
bool is_bech32_char(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z');
}

std::vector<std::string> parse_recipients(std::string_view list) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    std::size_t comma = list.find(", ", start);
    std::string_view item = list.substr(start, comma - start);
    if (!item.starts_with("age1") || item.size() < 8 || !all_of(item, is_bech32_char)) {
      throw FormatError("label: malformed recipient '" + tar::printable(item) + "'");
    }
    out.emplace_back(item);
    if (comma == std::string_view::npos) return out;
    start = comma + 2;
  }
}

std::string encryption_text(const LabelInfo& label) {
  switch (label.encryption) {
    case Encryption::kNone:
      return "none";
    case Encryption::kAgePassphrase:
      return "age (passphrase)";
    case Encryption::kAgeRecipients:
      break;
  }
  std::string text = "age (recipients: ";
  for (std::size_t i = 0; i < label.recipients.size(); ++i) {
    if (i > 0) text += ", ";
    text += label.recipients[i];
  }
  return text + ")";
}

void parse_encryption(std::string_view value, LabelInfo& label) {
  constexpr std::string_view kRecipients = "age (recipients: ";
  if (value == "none") {
    label.encryption = Encryption::kNone;
  } else if (value == "age (passphrase)") {
    label.encryption = Encryption::kAgePassphrase;
  } else if (value.starts_with(kRecipients) && value.ends_with(")")) {
    label.encryption = Encryption::kAgeRecipients;
    value.remove_prefix(kRecipients.size());
    value.remove_suffix(1);
    label.recipients = parse_recipients(value);
  } else {
    throw FormatError("label: unknown encryption '" + tar::printable(value) + "'");
  }
}

}  // namespace

std::string format_utc(std::int64_t unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  if (!gmtime_r(&t, &tm)) throw FormatError("time out of range: " + std::to_string(unix_seconds));
  char buf[64];
  std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return std::string(buf, n);
}

std::optional<std::int64_t> parse_utc(std::string_view text) {
  // Exactly YYYY-MM-DDTHH:MM:SSZ; validated by formatting it back.
  if (text.size() != 20) return std::nullopt;
  std::tm tm{};
  auto field = [&](std::size_t pos, std::size_t len, int& out) {
    auto [end, ec] = std::from_chars(text.data() + pos, text.data() + pos + len, out);
    return ec == std::errc() && end == text.data() + pos + len;
  };
  int year, month, day, hour, minute, second;
  if (!field(0, 4, year) || text[4] != '-' || !field(5, 2, month) || text[7] != '-' ||
      !field(8, 2, day) || text[10] != 'T' || !field(11, 2, hour) || text[13] != ':' ||
      !field(14, 2, minute) || text[16] != ':' || !field(17, 2, second) || text[19] != 'Z') {
    return std::nullopt;
  }
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  std::int64_t seconds = timegm(&tm);
  if (format_utc(seconds) != text) return std::nullopt;  // 2026-02-30 and the like
  return seconds;
}

std::string format_label(const LabelInfo& label) {
  std::string text = std::string(kFirstLinePrefix) + std::to_string(label.format_version) + "\n";
  text += "serial: " + label.serial + "\n";
  text += "record size: " + std::to_string(label.record_size) + "\n";
  text += "labelled: " + label.labelled + "\n";
  text += "encryption: " + encryption_text(label) + "\n";
  text += "hash: " + label.hash + "\n";
  text += "catalog: " + label.catalog_id + "\n";
  // Whatever is written must read back identically, or a tape would be
  // labelled with something that cannot be identified later.
  if (parse_label(text) != label) {
    throw FormatError("label for tape '" + tar::printable(label.serial) + "' does not round-trip");
  }
  return text;
}

LabelInfo parse_label(std::string_view text) {
  if (text.size() > kMaxLabelSize) throw FormatError("label: too large");
  std::size_t eol = text.find('\n');
  std::string_view first = text.substr(0, eol);
  if (!first.starts_with(kFirstLinePrefix)) {
    throw NotMixtapeTape("not a mixtape tape: the MIXTAPE member does not start with '" +
                         std::string(kFirstLinePrefix) + "'");
  }
  LabelInfo label;
  std::string_view version = first.substr(kFirstLinePrefix.size());
  auto [vend, vec] =
      std::from_chars(version.data(), version.data() + version.size(), label.format_version);
  if (vec != std::errc() || vend != version.data() + version.size() || version.empty()) {
    throw FormatError("label: malformed format version '" + tar::printable(version) + "'");
  }
  if (label.format_version < kOldestFormatVersion || label.format_version > kFormatVersion) {
    throw FormatError("tape format " + std::to_string(label.format_version) +
                      " is not supported by this mixtape (it reads formats " +
                      std::to_string(kOldestFormatVersion) + " to " +
                      std::to_string(kFormatVersion) + ")");
  }

  std::vector<std::string> seen;
  std::string_view rest = eol == std::string_view::npos ? "" : text.substr(eol + 1);
  while (!rest.empty()) {
    std::size_t end = rest.find('\n');
    std::string_view line = rest.substr(0, end);
    rest = end == std::string_view::npos ? "" : rest.substr(end + 1);
    if (line.empty()) continue;
    std::size_t colon = line.find(": ");
    if (colon == std::string_view::npos || colon == 0) {
      throw FormatError("label: malformed line '" + tar::printable(line) + "'");
    }
    std::string key(line.substr(0, colon));
    std::string_view value = line.substr(colon + 2);
    for (const auto& k : seen) {
      if (k == key) throw FormatError("label: '" + key + "' appears twice");
    }
    seen.push_back(key);
    if (key == "serial") {
      if (value.empty() || value.size() > 64 || !all_of(value, is_serial_char)) {
        throw FormatError("label: malformed serial '" + tar::printable(value) + "'");
      }
      label.serial = value;
    } else if (key == "record size") {
      std::uint64_t size = 0;
      auto [end_ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), size);
      if (ec != std::errc() || end_ptr != value.data() + value.size() || size == 0 ||
          size > kMaxRecordSize || size % kTarBlockSize != 0) {
        throw FormatError("label: bad record size '" + tar::printable(value) +
                          "' (a multiple of 512 up to 16 MiB)");
      }
      label.record_size = size;
    } else if (key == "labelled") {
      if (!parse_utc(value)) {
        throw FormatError("label: malformed time '" + tar::printable(value) + "'");
      }
      label.labelled = value;
    } else if (key == "encryption") {
      parse_encryption(value, label);
    } else if (key == "hash") {
      if (value != kHashName) {
        throw FormatError("label: unknown hash '" + tar::printable(value) + "'");
      }
      label.hash = value;
    } else if (key == "catalog") {
      if (value.empty() || value.size() > 128 || !all_of(value, is_hex_char)) {
        throw FormatError("label: malformed catalog id '" + tar::printable(value) + "'");
      }
      label.catalog_id = value;
    }
    // Other keys: later versions of format 1 may add lines; ignore them.
  }
  for (std::string_view key :
       {"serial", "record size", "labelled", "encryption", "hash", "catalog"}) {
    bool found = false;
    for (const auto& k : seen) found = found || k == key;
    if (!found) throw FormatError("label: no '" + std::string(key) + "' line");
  }
  return label;
}

LabelInfo read_label(ByteSource& tape_file0) {
  TarReader reader(tape_file0, "tape file 0");
  std::optional<TarMember> member;
  try {
    member = reader.next();
  } catch (const FormatError& e) {
    throw NotMixtapeTape(std::string("not a mixtape tape: file 0 is not a readable tar (") +
                         e.what() + ")");
  }
  if (!member || member->info.path != kLabelMemberName || member->info.type != MemberType::kFile) {
    throw NotMixtapeTape("not a mixtape tape: file 0 has no MIXTAPE member");
  }
  if (member->info.size > kMaxLabelSize) {
    throw NotMixtapeTape("not a mixtape tape: its MIXTAPE member is " +
                         std::to_string(member->info.size) + " bytes, too large for a label");
  }
  std::string text(member->info.size, '\0');
  auto* data = reinterpret_cast<std::uint8_t*>(text.data());
  for (std::size_t done = 0; done < text.size();) {
    done += reader.read_data(MutableByteSpan(data + done, text.size() - done));
  }
  if (!member->info.blake2b256.empty() &&
      to_hex(crypto::blake2b256(as_bytes(text))) != member->info.blake2b256) {
    throw FormatError("tape file 0: the MIXTAPE label is damaged (BLAKE2b-256 mismatch)");
  }
  return parse_label(text);
}

LabelInfo read_tape_label(tape::Drive& drive) {
  drive.rewind();
  tape::TapeFileReader file0(drive);
  return read_label(file0);
}

tape::SerialReader label_serial_reader() {
  return [](tape::Drive& drive) -> std::optional<std::string> {
    // Blank only where the drive confirms end of data at block 0: a first
    // record it cannot read is an error, never a blank tape to label.
    if (tape::tape_is_blank(drive)) return std::nullopt;
    std::string serial = read_tape_label(drive).serial;
    drive.rewind();
    return serial;
  };
}

}  // namespace mixtape::format
