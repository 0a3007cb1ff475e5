// PaxWriter, PaxLayout and TarReader: round trips, libarchive as an
// independent reader, and one test per kind of damage or hostility.
#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>

#include <clocale>
#include <random>

#include "engine/format/format.h"
#include "engine/format/tar_header.h"
#include "tests/format/test_util.h"

namespace mixtape::format {
namespace {

using namespace testing;

std::vector<Sample> samples() {
  std::vector<Sample> out;
  auto add_file = [&](std::string path, std::string data) {
    MemberInfo info = file_info(std::move(path), data);
    out.push_back({info, std::move(data)});
  };
  add_file("plain.txt", "hello\n");
  add_file("dir with spaces/file name.txt", "spaces\n");
  add_file("new\nline", "newline in name\n");
  add_file("bad\xff\xfeutf8", "not UTF-8\n");
  add_file(long_path(), "deep\n");
  add_file("zero", "");
  add_file("exactly-one-block", std::string(512, 'x'));
  add_file("random.bin", random_text(70000, 1));
  {
    Sample s{file_info("\xc3\xbcnic\xc3\xb6"
                       "de/\xc3\xa4.txt",
                       "umlaut\n"),
             "umlaut\n"};
    s.info.uname = "j\xc3\xbcrgen";
    s.info.gname = "gruppe-\xc3\x9f-with-a-rather-long-group-name";
    out.push_back(s);
  }
  {
    Sample s{file_info("old", "before 1970\n"), "before 1970\n"};
    s.info.mtime_ns = -1500000000;  // 1969-12-31T23:59:58.5Z
    out.push_back(s);
  }
  {
    Sample s{file_info("big-ids", "ids\n"), "ids\n"};
    s.info.uid = 3000000;  // beyond 7 octal digits: needs a pax record
    s.info.gid = 4000000;
    s.info.mode = 04755;
    out.push_back(s);
  }
  add_symlinks(out, 1700000001000000000);
  out.push_back(empty_dir());
  return out;
}

struct Written {
  Bytes archive;
  std::vector<MemberOffsets> offsets;
};

Written write_archive(const std::vector<Sample>& members) {
  MemorySink sink;
  PaxWriter writer(sink);
  Written result;
  for (const auto& m : members) {
    switch (m.info.type) {
      case MemberType::kFile: {
        result.offsets.push_back(writer.begin_file(m.info));
        // In uneven pieces, as a pipeline would.
        ByteSpan data = as_bytes(m.data);
        for (std::size_t i = 0; i < data.size(); i += 1000) {
          writer.write_data(data.subspan(i, std::min<std::size_t>(1000, data.size() - i)));
        }
        writer.end_file();
        break;
      }
      case MemberType::kSymlink:
        result.offsets.push_back(writer.add_symlink(m.info));
        break;
      default:
        result.offsets.push_back(writer.add_directory(m.info));
        break;
    }
    EXPECT_EQ(writer.position() % 512, 0u);
  }
  writer.finish();
  EXPECT_EQ(writer.position(), sink.bytes().size());
  result.archive = sink.bytes();
  return result;
}

std::string read_all(TarReader& reader) {
  std::string data;
  std::array<std::uint8_t, 4096> buf;
  while (std::size_t n = reader.read_data(buf)) data.append(as_chars(ByteSpan(buf.data(), n)));
  return data;
}

// ------------------------------------------------------------ round trips

TEST(PaxWriter, RoundTripsThroughTarReader) {
  auto members = samples();
  Written written = write_archive(members);
  MemorySource source(written.archive);
  TarReader reader(source, "test archive");
  for (std::size_t i = 0; i < members.size(); ++i) {
    auto member = reader.next();
    ASSERT_TRUE(member) << i;
    EXPECT_EQ(member->info, members[i].info) << members[i].info.path;
    EXPECT_EQ(member->offsets, written.offsets[i]);
    EXPECT_EQ(read_all(reader), members[i].data);
  }
  EXPECT_FALSE(reader.next());
  EXPECT_FALSE(reader.next());
  EXPECT_EQ(reader.position(), written.archive.size());
}

TEST(PaxWriter, DataOffsetPointsAtTheData) {
  auto members = samples();
  Written written = write_archive(members);
  for (std::size_t i = 0; i < members.size(); ++i) {
    const auto& data = members[i].data;
    const auto& o = written.offsets[i];
    EXPECT_EQ(o.header_offset % 512, 0u);
    EXPECT_EQ(o.data_offset % 512, 0u);
    ASSERT_LE(o.data_offset + data.size(), written.archive.size());
    EXPECT_EQ(as_chars(ByteSpan(written.archive).subspan(o.data_offset, data.size())), data);
  }
}

TEST(PaxLayout, PredictsWriterOffsetsAndSize) {
  auto members = samples();
  Written written = write_archive(members);
  PaxLayout layout;
  for (std::size_t i = 0; i < members.size(); ++i) {
    EXPECT_EQ(layout.add(members[i].info), written.offsets[i]);
  }
  EXPECT_EQ(layout.finished_size(), written.archive.size());
}

TEST(PaxWriter, HeadersCarryPaxRecords) {
  Sample s = samples()[0];
  std::string headers(as_chars(write_archive({s}).archive).substr(0, 1536));
  EXPECT_NE(headers.find(" path=plain.txt\n"), std::string::npos);
  EXPECT_NE(headers.find(" mtime=1700000000.123456789\n"), std::string::npos);
  // Format 2's keyword, which GNU tar and bsdtar pass over silently.
  EXPECT_NE(headers.find(" SCHILY.xattr.user.mixtape.blake2b256=" + hash_hex("hello\n") + "\n"),
            std::string::npos);
  EXPECT_EQ(headers.find("MIXTAPE.blake2b256"), std::string::npos);
  EXPECT_EQ(headers.find("hdrcharset"), std::string::npos);  // only for non-UTF-8 names
}

TEST(PaxWriter, FlagsBinaryNames) {
  Sample s = samples()[3];
  std::string headers(as_chars(write_archive({s}).archive).substr(0, 1536));
  EXPECT_NE(headers.find("hdrcharset=BINARY\n"), std::string::npos);
}

TEST(PaxWriter, HugeSizeGoesToPaxAndBase256) {
  // A header for a 9 GB file; its data is never written.
  MemberInfo info = file_info("huge", "");
  info.size = 9000000000;
  info.blake2b256 = std::string(64, 'a');
  MemorySink sink;
  PaxWriter writer(sink);
  MemberOffsets offsets = writer.begin_file(info);
  std::string headers(as_chars(sink.bytes()));
  ASSERT_EQ(headers.size(), offsets.data_offset);
  EXPECT_NE(headers.find(" size=9000000000\n"), std::string::npos);
  // The ustar size field: base-256, 0x80 then big-endian 9000000000.
  std::string_view field = std::string_view(headers).substr(offsets.data_offset - 512 + 124, 12);
  EXPECT_EQ(static_cast<unsigned char>(field[0]), 0x80u);
  std::uint64_t value = 0;
  for (std::size_t i = 1; i < 12; ++i) value = (value << 8) | static_cast<unsigned char>(field[i]);
  EXPECT_EQ(value, 9000000000u);
  EXPECT_EQ(pax_header_size(info), offsets.data_offset);

  // Our reader sees the size and then runs out of data, clearly.
  MemorySource source(sink.bytes());
  TarReader reader(source, "huge archive");
  auto member = reader.next();
  ASSERT_TRUE(member);
  EXPECT_EQ(member->info.size, 9000000000u);
  try {
    reader.skip_data();
    FAIL() << "no error";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("huge"), std::string::npos) << e.what();
  }

  // So does libarchive.
  archive* a = archive_read_new();
  archive_read_support_format_tar(a);
  ASSERT_EQ(archive_read_open_memory(a, sink.bytes().data(), sink.bytes().size()), ARCHIVE_OK);
  archive_entry* entry = nullptr;
  ASSERT_EQ(archive_read_next_header(a, &entry), ARCHIVE_OK) << archive_error_string(a);
  EXPECT_EQ(archive_entry_size(entry), 9000000000);
  archive_read_free(a);
}

TEST(PaxWriter, NineDigitFractionsAndNegativeTimes) {
  EXPECT_EQ(tar::format_pax_time_ns(1700000000000000001), "1700000000.000000001");
  EXPECT_EQ(tar::format_pax_time_ns(-1500000000), "-1.500000000");
  EXPECT_EQ(tar::format_pax_time_ns(0), "0.000000000");
  EXPECT_EQ(tar::parse_pax_time_ns("-1.5"), -1500000000);
  EXPECT_EQ(tar::parse_pax_time_ns("12"), 12000000000);
  EXPECT_EQ(tar::parse_pax_time_ns("1.1234567899"), 1123456789);
  EXPECT_FALSE(tar::parse_pax_time_ns("1e9"));
  EXPECT_FALSE(tar::parse_pax_time_ns("99999999999999999999"));
  EXPECT_FALSE(tar::parse_pax_time_ns(""));
}

TEST(PaxRecord, LengthCountsItself) {
  EXPECT_EQ(tar::pax_record("a", "b"), "6 a=b\n");
  // 97 bytes of body + 2 digits = 99.
  EXPECT_EQ(tar::pax_record("path", std::string(90, 'x')),
            "99 path=" + std::string(90, 'x') + "\n");
  // 98 bytes of body + 2 digits would be 100, which has 3 digits: 101.
  std::string record = tar::pax_record("path", std::string(91, 'x'));
  EXPECT_EQ(record.size(), 101u);
  EXPECT_TRUE(record.starts_with("101 path="));
}

// The write pipeline streams gigabytes: data must reach the sink as the very
// spans the caller passed, not copies.
class SpanRecordingSink final : public ByteSink {
 public:
  void write(ByteSpan data) override { spans.push_back(data); }
  void close() override {}
  std::vector<ByteSpan> spans;
};

TEST(PaxWriter, PassesDataStraightThrough) {
  Bytes big(8 << 20, 0x42);
  MemberInfo info = file_info("big", "");
  info.size = big.size();
  info.blake2b256 = std::string(64, '0');
  SpanRecordingSink sink;
  PaxWriter writer(sink);
  writer.begin_file(info);
  writer.write_data(big);
  writer.end_file();
  ASSERT_EQ(sink.spans.size(), 3u);  // headers, data, padding
  EXPECT_EQ(sink.spans[1].data(), big.data());
  EXPECT_EQ(sink.spans[1].size(), big.size());
  EXPECT_TRUE(sink.spans[2].empty());  // 8 MiB needs no padding
}

// The writer's zero-copy path: data the caller puts into the sink itself
// and declares with data_written_directly() gives the same tar as write_data.
TEST(PaxWriter, DataWrittenDirectlyMakesTheSameTarAsWriteData) {
  const std::string data = random_text(70000, 5);
  MemorySink through;
  {
    PaxWriter writer(through);
    writer.begin_file(file_info("f", data));
    writer.write_data(as_bytes(data));
    writer.end_file();
    writer.finish();
  }
  MemorySink direct;
  PaxWriter writer(direct);
  writer.begin_file(file_info("f", data));
  for (std::size_t pos = 0; pos < data.size(); pos += 30000) {
    ByteSpan piece = as_bytes(data).subspan(pos, std::min<std::size_t>(30000, data.size() - pos));
    writer.data_written_directly(piece.size());
    direct.write(piece);
  }
  writer.end_file();
  writer.finish();
  EXPECT_EQ(writer.position(), direct.bytes().size());
  EXPECT_TRUE(direct.bytes() == through.bytes());
}

TEST(PaxWriter, DataWrittenDirectlyRefusesMoreThanDeclared) {
  MemorySink sink;
  PaxWriter writer(sink);
  writer.begin_file(file_info("a", "abc"));
  writer.data_written_directly(2);
  EXPECT_THROW(writer.data_written_directly(2), FormatError);
  EXPECT_THROW(writer.finish(), FormatError);
}

// ------------------------------------------------------------ writer misuse

TEST(PaxWriter, RefusesMoreDataThanDeclared) {
  MemorySink sink;
  PaxWriter writer(sink);
  writer.begin_file(file_info("a", "abc"));
  writer.write_data(as_bytes("ab"));
  EXPECT_THROW(writer.write_data(as_bytes("cd")), FormatError);
  // Failed for good: the stream is no longer a tar.
  EXPECT_THROW(writer.finish(), FormatError);
}

TEST(PaxWriter, RefusesShortData) {
  MemorySink sink;
  PaxWriter writer(sink);
  writer.begin_file(file_info("a", "abc"));
  writer.write_data(as_bytes("ab"));
  EXPECT_THROW(writer.end_file(), FormatError);
}

TEST(PaxWriter, RefusesMisorderedCalls) {
  MemorySink sink;
  PaxWriter writer(sink);
  EXPECT_THROW(writer.end_file(), FormatError);
  MemorySink sink2;
  PaxWriter writer2(sink2);
  writer2.begin_file(file_info("a", "abc"));
  EXPECT_THROW(writer2.begin_file(file_info("b", "abc")), FormatError);
}

TEST(PaxWriter, RefusesUnnormalisedOrUnhashedMembers) {
  for (std::string path : {"/abs", "../up", "a/../b", "a//b", "./a", "a/", "", "a/."}) {
    MemorySink sink;
    PaxWriter writer(sink);
    EXPECT_THROW(writer.begin_file(file_info(path, "x")), FormatError) << path;
    EXPECT_TRUE(sink.bytes().empty());
    // Nothing was written, so the writer is still usable.
    writer.begin_file(file_info("ok", "x"));
  }
  MemorySink sink;
  PaxWriter writer(sink);
  MemberInfo info = file_info("a", "x");
  info.blake2b256 = "ABC";
  EXPECT_THROW(writer.begin_file(info), FormatError);
  info.blake2b256 = std::string(64, 'A');  // upper case is not what b2sum prints
  EXPECT_THROW(writer.begin_file(info), FormatError);
  MemberInfo link;
  link.path = "l";
  link.type = MemberType::kSymlink;
  EXPECT_THROW(writer.add_symlink(link), FormatError);  // no target
}

// ------------------------------------------------------------ libarchive

TEST(PaxWriter, LibarchiveReadsItIdentically) {
  // Pathnames are bytes; a UTF-8 locale lets libarchive pass them through.
  const char* old = std::setlocale(LC_CTYPE, nullptr);
  std::string saved = old ? old : "C";
  std::setlocale(LC_CTYPE, "C.UTF-8");

  auto members = samples();
  Written written = write_archive(members);
  archive* a = archive_read_new();
  archive_read_support_format_tar(a);
  ASSERT_EQ(archive_read_open_memory(a, written.archive.data(), written.archive.size()),
            ARCHIVE_OK);
  archive_entry* entry = nullptr;
  for (const auto& m : members) {
    ASSERT_EQ(archive_read_next_header(a, &entry), ARCHIVE_OK)
        << m.info.path << ": " << archive_error_string(a);
    std::string name = archive_entry_pathname(entry);
    if (m.info.type == MemberType::kDirectory) {
      EXPECT_EQ(name, m.info.path + "/");
      EXPECT_EQ(archive_entry_filetype(entry), static_cast<unsigned>(AE_IFDIR));
    } else {
      EXPECT_EQ(name, m.info.path);
    }
    EXPECT_EQ(archive_entry_perm(entry), m.info.mode);
    EXPECT_EQ(archive_entry_uid(entry), static_cast<la_int64_t>(m.info.uid));
    EXPECT_EQ(archive_entry_gid(entry), static_cast<la_int64_t>(m.info.gid));
    EXPECT_EQ(std::string(archive_entry_uname(entry)), m.info.uname);
    EXPECT_EQ(std::string(archive_entry_gname(entry)), m.info.gname);
    std::int64_t ns = static_cast<std::int64_t>(archive_entry_mtime(entry)) * 1000000000 +
                      archive_entry_mtime_nsec(entry);
    // libarchive 3.6 reads a negative pax time "-1.5" as -1 s + 0.5 s; POSIX
    // (and GNU tar) mean -1.5 s. Only that case is exempt.
    if (m.info.mtime_ns >= 0 || m.info.mtime_ns % 1000000000 == 0) {
      EXPECT_EQ(ns, m.info.mtime_ns) << m.info.path;
    }
    if (m.info.type == MemberType::kSymlink) {
      EXPECT_EQ(std::string(archive_entry_symlink(entry)), m.info.linkpath);
    }
    EXPECT_EQ(archive_entry_size(entry), static_cast<la_int64_t>(m.data.size()));
    std::string data(m.data.size() + 1, '\0');
    la_ssize_t n = archive_read_data(a, data.data(), data.size());
    ASSERT_GE(n, 0) << archive_error_string(a);
    data.resize(static_cast<std::size_t>(n));
    // archive_read_data may return less than everything; loop for the rest.
    while (data.size() < m.data.size()) {
      std::string more(m.data.size() - data.size(), '\0');
      la_ssize_t k = archive_read_data(a, more.data(), more.size());
      ASSERT_GT(k, 0);
      data.append(more.data(), static_cast<std::size_t>(k));
    }
    EXPECT_EQ(data, m.data) << m.info.path;
  }
  EXPECT_EQ(archive_read_next_header(a, &entry), ARCHIVE_EOF);
  archive_read_free(a);
  std::setlocale(LC_CTYPE, saved.c_str());
}

// ------------------------------------------------------------ read_member_at

TEST(ReadMemberAt, ParsesEachMemberAtItsRecordedOffset) {
  auto members = samples();
  Written written = write_archive(members);
  MemorySource archive(written.archive);
  for (std::size_t i = 0; i < members.size(); ++i) {
    TarMember m = read_member_at(archive, written.offsets[i].header_offset, "archive");
    EXPECT_EQ(m.info, members[i].info);
    EXPECT_EQ(m.offsets, written.offsets[i]);
  }
}

TEST(ReadMemberAt, RefusesOffsetsThatAreNotHeaders) {
  auto members = samples();
  Written written = write_archive(members);
  MemorySource archive(written.archive);
  // The data of random.bin is not a header.
  EXPECT_THROW(read_member_at(archive, written.offsets[7].data_offset, "archive"), FormatError);
  EXPECT_THROW(read_member_at(archive, 100, "archive"), FormatError);
  EXPECT_THROW(read_member_at(archive, written.archive.size(), "archive"), FormatError);
  // The end-of-archive marker.
  EXPECT_THROW(read_member_at(archive, written.archive.size() - 1024, "archive"), FormatError);
}

// ------------------------------------------------------------ hostile input

// Reads every member and its data; returns the error message, or "" if none.
std::string read_error(const Bytes& bytes) {
  MemorySource source(bytes);
  TarReader reader(source, "hostile.tar");
  try {
    while (reader.next()) read_all(reader);
  } catch (const FormatError& e) {
    return e.what();
  }
  return "";
}

#define EXPECT_ERROR_HAS(bytes, text)                    \
  do {                                                   \
    std::string error = read_error(bytes);               \
    EXPECT_NE(error.find(text), std::string::npos)       \
        << "error: '" << error << "', want: " << (text); \
  } while (0)

// The first member of `bytes` is refused with an error holding each of
// `needles`, and the reader goes on to member "good" (holding "fine") and
// the end: a hostile member costs only itself.
void expect_first_refused_then_good(const Bytes& bytes,
                                    std::initializer_list<std::string_view> needles) {
  MemorySource source(bytes);
  TarReader reader(source, "hostile.tar");
  try {
    reader.next();
    FAIL() << "no error";
  } catch (const FormatError& e) {
    const std::string what = e.what();
    for (std::string_view needle : needles) {
      EXPECT_NE(what.find(needle), std::string::npos) << what;
    }
  }
  auto good = reader.next();
  ASSERT_TRUE(good);
  EXPECT_EQ(good->info.path, "good");
  EXPECT_EQ(read_all(reader), "fine");
  EXPECT_FALSE(reader.next());
}

TEST(TarReaderHostile, WellFormedRawArchiveReads) {
  RawTar t;
  t.member("a", "alpha").member("b", "beta").end();
  EXPECT_EQ(read_error(t.bytes()), "");
}

TEST(TarReaderHostile, BadChecksum) {
  RawTar t;
  t.member("a", "alpha").end();
  t.bytes()[0] = 'b';
  EXPECT_ERROR_HAS(t.bytes(), "checksum");
  EXPECT_ERROR_HAS(t.bytes(), "hostile.tar: offset 0");
}

TEST(TarReaderHostile, GarbageIsNotATar) {
  Bytes garbage(4096);
  std::mt19937 rng(7);
  for (auto& b : garbage) b = static_cast<std::uint8_t>(rng());
  EXPECT_ERROR_HAS(garbage, "checksum");
}

TEST(TarReaderHostile, TruncatedHeader) {
  RawTar t;
  t.member("a", "alpha").member("b", "beta");
  t.bytes().resize(512 + 512 + 100);
  EXPECT_ERROR_HAS(t.bytes(), "truncated");
  EXPECT_ERROR_HAS(t.bytes(), "offset 1024");
}

TEST(TarReaderHostile, TruncatedData) {
  RawTar t;
  t.member("first", "x").member("victim", std::string(5000, 'v')).end();
  t.bytes().resize(1024 + 512 + 3000);
  EXPECT_ERROR_HAS(t.bytes(), "member 'victim'");
  EXPECT_ERROR_HAS(t.bytes(), "truncated");
}

TEST(TarReaderHostile, MissingEndOfArchive) {
  RawTar t;
  t.member("a", "alpha");
  EXPECT_ERROR_HAS(t.bytes(), "without an end-of-archive marker");
}

TEST(TarReaderHostile, LoneZeroBlockAtEndIsAccepted) {
  RawTar t;
  t.member("a", "alpha");
  t.bytes().resize(t.bytes().size() + 512, 0);
  EXPECT_EQ(read_error(t.bytes()), "");
}

TEST(TarReaderHostile, ZeroBlockFollowedByData) {
  RawTar t;
  t.member("a", "alpha");
  t.bytes().resize(t.bytes().size() + 512, 0);
  t.member("b", "beta").end();
  EXPECT_ERROR_HAS(t.bytes(), "lone zero block");
}

TEST(TarReaderHostile, HugeSizeEndsAsTruncatedNotAllocation) {
  // An exbibyte in base-256; a few bytes of data follow.
  RawTar t;
  t.block(RawTar::header("huge", '0', std::int64_t{1} << 60)).data("tiny");
  MemorySource source(t.bytes());
  TarReader reader(source, "hostile.tar");
  auto member = reader.next();
  ASSERT_TRUE(member);
  EXPECT_EQ(member->info.size, std::uint64_t{1} << 60);
  EXPECT_ERROR_HAS(t.bytes(), "truncated");
}

TEST(TarReaderHostile, HugePaxSize) {
  RawTar t;
  t.pax(tar::pax_record("size", "1152921504606846976")).member("huge", "tiny");
  EXPECT_ERROR_HAS(t.bytes(), "truncated");
}

TEST(TarReaderHostile, NegativeSize) {
  RawTar t;
  t.block(RawTar::header("neg", '0', -5)).end();
  EXPECT_ERROR_HAS(t.bytes(), "negative size");
  RawTar p;
  p.pax("12 size=-10\n").member("neg", "").end();
  EXPECT_ERROR_HAS(p.bytes(), "malformed pax size");
}

TEST(TarReaderHostile, MalformedOctal) {
  RawTar t;
  t.block(with_field(RawTar::header("a", '0', 5), tar::kSize, "0000000009x")).data("alpha").end();
  EXPECT_ERROR_HAS(t.bytes(), "size field");
}

TEST(TarReaderHostile, ExtendedHeaderTooLarge) {
  RawTar t;
  t.block(RawTar::header("PaxHeaders/x", 'x', 2 << 20)).data("10 a=bbbb\n");
  EXPECT_ERROR_HAS(t.bytes(), "exceeds the limit");
  RawTar g;
  g.block(RawTar::header("././@LongLink", 'L', 2 << 20)).data("name");
  EXPECT_ERROR_HAS(g.bytes(), "exceeds the limit");
}

TEST(TarReaderHostile, ManyGlobalHeadersAreBounded) {
  // Each header is small; together they would grow without bound.
  std::string record = tar::pax_record("comment", std::string(100000, 'c'));
  RawTar t;
  for (int i = 0; i < 20; ++i) {
    t.block(RawTar::header("g", 'g', static_cast<std::int64_t>(record.size()))).data(record);
  }
  t.member("a", "x").end();
  EXPECT_ERROR_HAS(t.bytes(), "extended headers total more than");
}

TEST(TarReaderHostile, ExtendedHeaderWithoutMember) {
  RawTar t;
  t.pax("10 path=a\n").end();
  EXPECT_ERROR_HAS(t.bytes(), "extended header");
}

// A pax header the reader must refuse, before a member of one byte, and
// what the refusal must say.
struct HostilePax {
  const char* name;  // the test's
  std::string records;
  const char* error;
  const char* member = "a";
};

// By name: ctest lists each case with its parameter.
void PrintTo(const HostilePax& pax, std::ostream* out) {
  *out << pax.name;
}

class TarReaderHostilePax : public ::testing::TestWithParam<HostilePax> {};

TEST_P(TarReaderHostilePax, IsRefused) {
  RawTar t;
  t.pax(GetParam().records).member(GetParam().member, "x").end();
  EXPECT_ERROR_HAS(t.bytes(), GetParam().error);
}

const std::string kHashA(64, 'a'), kHashB(64, 'b');

INSTANTIATE_TEST_SUITE_P(
    TarReaderHostile, TarReaderHostilePax,
    ::testing::Values(HostilePax{"PaxLengthLongerThanHeader", "99 path=a\n", "does not fit"},
                      HostilePax{"PaxLengthShorterThanRecord", "9 path=abc\n", "newline"},
                      HostilePax{"PaxLengthNotANumber", "1x path=abc\n", "bad length"},
                      HostilePax{"PaxRecordWithoutKeyword", "7 =abc\n", "no keyword"},
                      HostilePax{"AbsolutePathViaPax", "20 path=/etc/shadow\n",
                                 "unsafe member name", "innocent"},
                      HostilePax{"MalformedHash", "33 MIXTAPE.blake2b256=not-a-hash\n",
                                 "malformed MIXTAPE.blake2b256"},
                      HostilePax{"MalformedHashInFormatTwosKeyword",
                                 "51 SCHILY.xattr.user.mixtape.blake2b256=not-a-hash\n",
                                 "malformed SCHILY.xattr.user.mixtape.blake2b256"},
                      HostilePax{"TwoDifferentHashesAreRefused",
                                 "106 SCHILY.xattr.user.mixtape.blake2b256=" + kHashA +
                                     "\n87 MIXTAPE.blake2b256=" + kHashB + "\n",
                                 "two different BLAKE2b-256 hashes"},
                      HostilePax{"SparseIsUnsupported", "22 GNU.sparse.major=1\n", "sparse"}),
    [](const ::testing::TestParamInfo<HostilePax>& info) { return std::string(info.param.name); });

TEST(TarReaderHostile, DotDotPathIsRefusedButReadingContinues) {
  RawTar t;
  t.member("../../etc/passwd", "root::0:0::/:/bin/sh\n").member("good", "fine").end();
  expect_first_refused_then_good(t.bytes(), {"unsafe member name", "../../etc/passwd"});
}

TEST(TarReaderHostile, DotDotViaGnuLongName) {
  RawTar t;
  t.block(RawTar::header("././@LongLink", 'L', 10)).data("a/../../b").member("x", "").end();
  EXPECT_ERROR_HAS(t.bytes(), "unsafe member name");
}

TEST(TarReaderHostile, HardlinkToUnsafeTarget) {
  RawTar t;
  t.block(with_field(RawTar::header("link", '1', 0), tar::kLinkname, "../../etc/passwd")).end();
  EXPECT_ERROR_HAS(t.bytes(), "hard link to an unsafe name");
}

// Format-1 archives carry the hash under the old keyword.
TEST(TarReader, ReadsFormatOnesHashKeyword) {
  const std::string hash = std::string(64, 'c');
  RawTar t;
  t.pax("87 MIXTAPE.blake2b256=" + hash + "\n").member("a", "x").end();
  MemorySource source(t.bytes());
  TarReader reader(source, "format1.tar");
  auto member = reader.next();
  ASSERT_TRUE(member);
  EXPECT_EQ(member->info.blake2b256, hash);
}

TEST(TarReaderHostile, MalformedHashLosesOnlyThatMember) {
  RawTar t;
  t.pax("33 MIXTAPE.blake2b256=not-a-hash\n").member("bad", "x").member("good", "fine").end();
  expect_first_refused_then_good(t.bytes(), {"member skipped"});
}

TEST(TarReaderHostile, UnknownMagic) {
  RawTar t;
  t.block(with_field(RawTar::header("a", '0', 0), tar::kMagic, "xxxxx")).end();
  EXPECT_ERROR_HAS(t.bytes(), "magic");
}

TEST(TarReaderHostile, NamesInErrorsAreEscaped) {
  RawTar t;
  t.member("evil\nname/../../x", "").end();
  std::string error = read_error(t.bytes());
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;
  EXPECT_NE(error.find("evil\\x0aname"), std::string::npos) << error;
}

TEST(TarReaderHostile, RandomDamageOnlyEverGivesFormatErrors) {
  // Flip bytes and cut archives at random: reading must end normally or
  // with a FormatError, never crash, hang or throw anything else.
  auto members = samples();
  Bytes original = write_archive(members).archive;
  std::mt19937 rng(2026);
  int errors = 0;
  for (int round = 0; round < 3000; ++round) {
    Bytes damaged = original;
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < flips; ++i) {
      // Mostly in headers, where the parsing is.
      std::size_t at = rng() % 2 ? rng() % 4096 : rng() % damaged.size();
      damaged[at] = static_cast<std::uint8_t>(rng());
    }
    if (rng() % 4 == 0) damaged.resize(rng() % damaged.size());
    MemorySource source(damaged);
    TarReader reader(source, "damaged.tar");
    try {
      for (int n = 0; n < 1000; ++n) {
        try {
          if (!reader.next()) break;
          read_all(reader);
        } catch (const FormatError& e) {
          // A refused member is skipped; structural damage ends the read.
          if (std::string(e.what()).find("member skipped") == std::string::npos) throw;
        }
      }
    } catch (const FormatError&) {
      ++errors;
    }
  }
  EXPECT_GT(errors, 0);
}

TEST(TarReader, RootDirectoryEntryIsPassedOver) {
  RawTar t;
  t.member("./", "", '5').member("./a", "alpha").end();
  MemorySource source(t.bytes());
  TarReader reader(source, "dot.tar");
  auto member = reader.next();
  ASSERT_TRUE(member);
  EXPECT_EQ(member->info.path, "a");
  EXPECT_FALSE(reader.next());
}

TEST(TarReader, GlobalHeaderAppliesAndLocalOverrides) {
  RawTar t;
  std::string global = tar::pax_record("uname", "gg");
  t.block(RawTar::header("global", 'g', static_cast<std::int64_t>(global.size()))).data(global);
  t.member("a", "1").pax("12 uname=ll\n").member("b", "2").end();
  MemorySource source(t.bytes());
  TarReader reader(source, "g.tar");
  EXPECT_EQ(reader.next()->info.uname, "gg");
  EXPECT_EQ(reader.next()->info.uname, "ll");
}

TEST(TarReader, UstarPrefixIsJoined) {
  RawTar t;
  t.block(with_field(RawTar::header("name.txt", '0', 1), tar::kPrefix, "some/prefix"))
      .data("x")
      .end();
  MemorySource source(t.bytes());
  TarReader reader(source, "prefix.tar");
  EXPECT_EQ(reader.next()->info.path, "some/prefix/name.txt");
}

// ------------------------------------------------------------ safe names

TEST(SafeRelativePath, NormalisesOrRefuses) {
  struct Case {
    std::string_view name;
    std::optional<std::string> expected;
  };
  const Case cases[] = {
      {"a", "a"},
      {"a/b/c", "a/b/c"},
      {"./a", "a"},
      {"a/./b", "a/b"},
      {"a//b", "a/b"},
      {"dir/", "dir"},
      {"dir///", "dir"},
      {"..a/b..", "..a/b.."},  // dots inside names are just names
      {"...", "..."},
      {"a b/ c", "a b/ c"},
      {"back\\slash", "back\\slash"},
      {"\xff\xfe", "\xff\xfe"},
      {"", std::nullopt},
      {".", std::nullopt},
      {"./", std::nullopt},
      {"/", std::nullopt},
      {"//", std::nullopt},
      {"/etc/passwd", std::nullopt},
      {"//etc/passwd", std::nullopt},
      {"..", std::nullopt},
      {"../x", std::nullopt},
      {"../../etc/passwd", std::nullopt},
      {"a/../b", std::nullopt},
      {"a/..", std::nullopt},
      {"a/../../b", std::nullopt},
      {"./../x", std::nullopt},
      {std::string_view("a\0b", 3), std::nullopt},
      {std::string_view("\0", 1), std::nullopt},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(safe_relative_path(c.name), c.expected) << "'" << c.name << "'";
  }
}

}  // namespace
}  // namespace mixtape::format
