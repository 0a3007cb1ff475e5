// The MIXTAPE label: its exact shape, strict parsing, and read_label on
// tape file 0 (good, foreign, damaged).
#include <gtest/gtest.h>

#include "engine/format/format.h"
#include "engine/format/tar_header.h"
#include "tests/format/test_util.h"

namespace mixtape::format {
namespace {

using testing::TempDir;

LabelInfo sample_label() {
  LabelInfo label;
  label.serial = "L00042";
  label.record_size = 524288;
  label.labelled = "2026-11-21T10:00:00Z";
  label.encryption = Encryption::kAgeRecipients;
  label.recipients = {"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p",
                      "age1lggyhqrw2nlhcxprm67z43rta597azn8gknawjehu9d9dl0jq3yqqvfafg"};
  label.catalog_id = "9f86d081884c7d65";
  return label;
}

TEST(Label, HasTheDocumentedShape) {
  EXPECT_EQ(format_label(sample_label()),
            "mixtape tape format 2\n"
            "serial: L00042\n"
            "record size: 524288\n"
            "labelled: 2026-11-21T10:00:00Z\n"
            "encryption: age (recipients: "
            "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p, "
            "age1lggyhqrw2nlhcxprm67z43rta597azn8gknawjehu9d9dl0jq3yqqvfafg)\n"
            "hash: blake2b-256\n"
            "catalog: 9f86d081884c7d65\n");
}

TEST(Label, RoundTripsEveryEncryption) {
  LabelInfo label = sample_label();
  EXPECT_EQ(parse_label(format_label(label)), label);
  label.encryption = Encryption::kAgePassphrase;
  label.recipients.clear();
  EXPECT_NE(format_label(label).find("encryption: age (passphrase)\n"), std::string::npos);
  EXPECT_EQ(parse_label(format_label(label)), label);
  label.encryption = Encryption::kNone;
  EXPECT_NE(format_label(label).find("encryption: none\n"), std::string::npos);
  EXPECT_EQ(parse_label(format_label(label)), label);
}

TEST(Label, FormatRefusesLabelsThatWouldNotReadBack) {
  LabelInfo label = sample_label();
  label.serial = "has space";
  EXPECT_THROW(format_label(label), FormatError);
  label = sample_label();
  label.recipients.clear();  // recipients promised, none given
  EXPECT_THROW(format_label(label), FormatError);
  label = sample_label();
  label.labelled = "yesterday";
  EXPECT_THROW(format_label(label), FormatError);
  label = sample_label();
  label.record_size = 1000;  // not a multiple of 512
  EXPECT_THROW(format_label(label), FormatError);
}

TEST(Label, IgnoresUnknownLinesOfFormat1) {
  std::string text = format_label(sample_label()) + "future: something\n";
  EXPECT_EQ(parse_label(text), sample_label());
}

TEST(Label, RefusesMalformedLabels) {
  const std::string good = format_label(sample_label());
  auto replace = [&](std::string_view from, std::string_view to) {
    std::string text = good;
    text.replace(text.find(from), from.size(), to);
    return text;
  };
  const std::pair<std::string, std::string> cases[] = {
      {replace("serial: L00042\n", ""), "no 'serial'"},
      {replace("hash: blake2b-256\n", ""), "no 'hash'"},
      {good + "serial: L00043\n", "appears twice"},
      {replace("524288", "abc"), "bad record size"},
      {replace("524288", "33554432"), "bad record size"},
      {replace("524288", "0"), "bad record size"},
      {replace("2026-11-21T10:00:00Z", "2026-02-30T10:00:00Z"), "malformed time"},
      {replace("2026-11-21T10:00:00Z", "2026-11-21 10:00:00"), "malformed time"},
      {replace("blake2b-256", "sha256"), "unknown hash"},
      {replace("age (recipients: ", "rot13 ("), "unknown encryption"},
      {replace("age1ql3z", "AGE1QL3Z"), "malformed recipient"},
      {replace("9f86d081884c7d65", "not hex"), "malformed catalog id"},
      {replace("serial: ", "serial:"), "malformed line"},
      {replace("mixtape tape format 2", "mixtape tape format one"), "malformed format version"},
  };
  for (const auto& [text, want] : cases) {
    try {
      parse_label(text);
      ADD_FAILURE() << "accepted: " << text;
    } catch (const NotMixtapeTape& e) {
      ADD_FAILURE() << "not-a-tape instead of a damaged label: " << e.what();
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos)
          << e.what() << " (want " << want << ")";
    }
  }
}

TEST(Label, NewerFormatIsNotSupportedButIsAMixtapeTape) {
  std::string text = format_label(sample_label());
  text.replace(0, 21, "mixtape tape format 3");
  try {
    parse_label(text);
    FAIL();
  } catch (const NotMixtapeTape&) {
    FAIL() << "a format-3 tape is still a mixtape tape";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("tape format 3 is not supported"), std::string::npos)
        << e.what();
  }
}

TEST(Label, AFormatOneLabelIsRead) {
  std::string text = format_label(sample_label());
  text.replace(0, 21, "mixtape tape format 1");
  EXPECT_EQ(parse_label(text).format_version, 1);
}

TEST(Label, ForeignTextIsNotAMixtapeTape) {
  EXPECT_THROW(parse_label("hello world\n"), NotMixtapeTape);
  EXPECT_THROW(parse_label(""), NotMixtapeTape);
}

TEST(Utc, FormatsAndParsesStrictly) {
  EXPECT_EQ(format_utc(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(format_utc(1795255200), "2026-11-21T10:00:00Z");
  EXPECT_EQ(parse_utc("2026-11-21T10:00:00Z"), 1795255200);
  EXPECT_EQ(parse_utc("1969-12-31T23:59:59Z"), -1);
  EXPECT_FALSE(parse_utc("2026-11-21T10:00:00+01:00"));
  EXPECT_FALSE(parse_utc("2026-13-01T10:00:00Z"));
  EXPECT_FALSE(parse_utc("2026-1-01T10:00:00Z "));
}

// ------------------------------------------------------------ read_label

class ReadLabel : public ::testing::Test {
 protected:
  ReadLabel() {
    testing::write_file(dir_ / "source.tar.gz", "not really a tarball");
    testing::write_file(dir_ / "mixtape-bin", "#!/bin/sh\necho mixtape\n");
    extras_.source_tarball_path = dir_ / "source.tar.gz";
    extras_.binary_path = dir_ / "mixtape-bin";
    extras_.arch = "x86_64";
  }
  Bytes file0(const LabelInfo& label) {
    MemorySink sink;
    write_archaeology(sink, label, extras_);
    return sink.bytes();
  }
  TempDir dir_;
  ArchaeologyExtras extras_;
};

TEST_F(ReadLabel, RoundTripsThroughFile0) {
  Bytes bytes = file0(sample_label());
  MemorySource source(bytes);
  EXPECT_EQ(read_label(source), sample_label());
}

TEST_F(ReadLabel, File0HasEveryPartInOrder) {
  Bytes bytes = file0(sample_label());
  MemorySource source(bytes);
  TarReader reader(source, "file 0");
  std::vector<std::string> names;
  while (auto member = reader.next()) {
    names.push_back(member->info.path);
    EXPECT_EQ(member->info.mtime_ns, 1795255200ll * 1000000000);
    EXPECT_EQ(member->info.blake2b256.size(), 64u);
  }
  ASSERT_GE(names.size(), 6u);
  EXPECT_EQ(names[0], "MIXTAPE");
  EXPECT_EQ(names[1], "README.txt");
  EXPECT_EQ(names[2], "FORMAT.txt");
  EXPECT_TRUE(names[3].starts_with("specs/"));
  EXPECT_EQ(names[names.size() - 2], "source/mixtape-" MIXTAPE_VERSION ".tar.gz");
  EXPECT_EQ(names.back(), "bin/mixtape-" MIXTAPE_VERSION "-x86_64");
}

TEST_F(ReadLabel, EmptyTapeIsNotAMixtapeTape) {
  MemorySource source(ByteSpan{});
  try {
    read_label(source);
    FAIL();
  } catch (const NotMixtapeTape& e) {
    EXPECT_NE(std::string(e.what()).find("not a mixtape tape"), std::string::npos);
  }
}

TEST_F(ReadLabel, GarbageIsNotAMixtapeTape) {
  Bytes garbage(65536, 0x5a);
  MemorySource source(garbage);
  EXPECT_THROW(read_label(source), NotMixtapeTape);
}

TEST_F(ReadLabel, OtherTarIsNotAMixtapeTape) {
  MemorySink sink;
  PaxWriter writer(sink);
  MemberInfo info;
  info.path = "backup.sql";
  info.size = 3;
  info.blake2b256 = testing::hash_hex("abc");
  writer.begin_file(info);
  writer.write_data(as_bytes("abc"));
  writer.end_file();
  writer.finish();
  MemorySource source(sink.bytes());
  try {
    read_label(source);
    FAIL();
  } catch (const NotMixtapeTape& e) {
    EXPECT_EQ(std::string(e.what()), "not a mixtape tape: file 0 has no MIXTAPE member");
  }
}

TEST_F(ReadLabel, DamagedLabelIsDetected) {
  Bytes bytes = file0(sample_label());
  std::string_view text = as_chars(bytes);
  std::size_t at = text.find("serial: L00042");
  ASSERT_NE(at, std::string_view::npos);
  bytes[at + 13] = '3';  // L00042 -> L00043: still parses, but the hash disagrees
  MemorySource source(bytes);
  try {
    read_label(source);
    FAIL();
  } catch (const NotMixtapeTape&) {
    FAIL() << "damage is not foreignness";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("damaged"), std::string::npos) << e.what();
  }
}

TEST_F(ReadLabel, ReadsOnlyTheFirstMember) {
  // Everything after the label is cut off: read_label does not care.
  Bytes bytes = file0(sample_label());
  bytes.resize(4096);
  MemorySource source(bytes);
  EXPECT_EQ(read_label(source).serial, "L00042");
}

}  // namespace
}  // namespace mixtape::format
