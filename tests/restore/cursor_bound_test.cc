// Single-file restore against the timing model's lower bound
// (benchmarks.md: at most 2 locates, tape_seconds within 10% of the bound),
// for files at many distances from BOT. The image drive's model is scaled
// down 50 times in its fixed costs (load, locate start) so that its
// break-even between reading forward and locating is 32 MB instead of
// 1.6 GB, and a tape of 96 MB has files on both sides of it; rates, and so
// the shape of every choice, are LTO-6's. (Not further: the decryptor reads
// up to two 2 MiB batches ahead, 26 ms of tape, which must stay small
// against the scaled load and locate, as it is against 12 s and 10 s.)
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <set>

#include "engine/backup/backup.h"
#include "engine/crypto/crypto.h"
#include "engine/restore/restore.h"
#include "engine/tape/libraries.h"
#include "tests/restore/test_util.h"

namespace mixtape::restore::testing {
namespace {

constexpr double kScale = 50;

tape::TimingModel scaled_model() {
  tape::TimingModel model;
  model.load_seconds /= kScale;
  model.locate_base_seconds /= kScale;
  return model;
}

// Where a copy lies on its tape, in blocks of the image.
struct Placement {
  std::string path;
  std::uint64_t archive_block = 0;  // B0: the age header's record
  std::uint64_t first_block = 0;    // the record with the member's first chunk
  std::uint64_t last_block = 0;     // the record with its last chunk's end
};

// The model's cost of what must be read, from the image's real layout.
class TapeModel {
 public:
  TapeModel(const std::string& image, const tape::TimingModel& model)
      : blocks_(parse_image(image)), model_(model) {}

  // Cheaper of reading forward and locating, from `from` to `to`.
  double reach(std::uint64_t from, std::uint64_t to) const {
    if (to <= from) return 0;
    const double locate = model_.locate_seconds(offset(to) - offset(from));
    return std::min(locate, model_.stream_seconds(payload(from, to)));
  }
  // Streaming the records [from, to].
  double stream(std::uint64_t from, std::uint64_t to) const {
    return model_.stream_seconds(payload(from, to + 1));
  }
  // benchmarks.md's bound: load, reach the member's first record from BOT,
  // stream its records.
  double direct_bound(const Placement& p) const {
    return model_.load_seconds + reach(0, p.first_block) + stream(p.first_block, p.last_block);
  }
  // The same, through the archive's first record on the way: its age header
  // holds the key without which nothing after it can be decrypted.
  double header_bound(const Placement& p) const {
    if (p.first_block == p.archive_block) return direct_bound(p);
    return model_.load_seconds + reach(0, p.archive_block) +
           stream(p.archive_block, p.archive_block) + reach(p.archive_block + 1, p.first_block) +
           stream(p.first_block, p.last_block);
  }
  // Image byte offset of a block: what the drive's locate distances count.
  std::uint64_t offset(std::uint64_t block) const {
    if (block >= blocks_.size()) throw Error("no block " + std::to_string(block));
    return blocks_[block].filemark ? blocks_[block].data_offset : blocks_[block].data_offset - 4;
  }

 private:
  std::uint64_t payload(std::uint64_t from, std::uint64_t to) const {
    std::uint64_t bytes = 0;
    for (std::uint64_t b = from; b < to && b < blocks_.size(); ++b) bytes += blocks_[b].size;
    return bytes;
  }

  std::vector<ImageBlock> blocks_;
  tape::TimingModel model_;
};

struct Measured {
  double tape_seconds = 0;
  std::uint64_t locates = 0;
  std::uint64_t loads = 0;
};

// One tape for every test (backing up ~90 MB is the slow part): run 1, in
// src/near, 52 files of 1 MiB in 4 MiB archives, like bench/restore's 1 MiB
// files in archives far shorter than the break-even; run 2, in src/deep, 40
// files of 1 MiB in one archive (48 MiB at most), longer than the break-even.
class Tape {
 public:
  static constexpr char kSerial[] = "L00001";

  Tape() {
    write_files("near", 52);
    CommandResult r = f_.mixtape("init --copies 1 --record-size 16K --identity-out " +
                                 shell_quote(f_.identity()));
    if (r.status != 0) throw Error("init failed: " + r.err);
    back_up("4M");
    write_files("deep", 40);
    back_up("48M");
    keys_.identities = crypto::load_identities(f_.identity());
  }

  Fixture& fixture() { return f_; }
  const crypto::AgeDecryptKeys& keys() const { return keys_; }

  Placement place(const std::string& path) {
    const catalog::LocatedCopy c = f_.replicas(path).at(0);
    const catalog::VersionRow v = f_.version(path);
    format::ArchiveGeometry g;
    g.first_block = c.archive.first_block;
    g.record_size = c.tape.record_size;
    g.encrypted = c.archive.encrypted;
    g.age_header_length = c.archive.age_header_len;
    if (!g.encrypted) throw Error(path + " is not encrypted on tape");
    Placement p;
    p.path = path;
    p.archive_block = c.archive.first_block;
    p.first_block = format::locate(g, c.copy.header_offset).block;
    // The last data byte's chunk must be read to its end (its tag).
    const format::TapePosition last = format::locate(g, c.copy.data_offset + v.size - 1);
    const std::uint64_t chunk_end =
        std::min<std::uint64_t>(last.stored_offset + format::kAgeChunkSize + 16,
                                c.archive.cipher_bytes) -
        1;
    p.last_block = c.archive.first_block + chunk_end / c.tape.record_size;
    return p;
  }

  // The files of src/<dir>, in tape order.
  std::vector<Placement> placements(const std::string& dir) {
    std::vector<Placement> all;
    for (const auto& e : std::filesystem::directory_iterator(f_.src() + "/" + dir))
      all.push_back(place(e.path().string()));
    std::sort(all.begin(), all.end(),
              [](const Placement& a, const Placement& b) { return a.first_block < b.first_block; });
    return all;
  }

  // `mixtape restore PATH` in-process, from a library whose drive has just
  // had the tape put in (so the restore pays the load, as the CLI's does).
  Measured restore_one(const std::string& path, const tape::TimingModel& model) {
    tape::ImageLibrary library(f_.library(), 1, {}, model);
    const std::string out = f_.file("out" + std::to_string(outputs_++));
    RestoreOptions options;
    options.paths = {path};
    options.destination = out;
    SilentProgress quiet;
    RestoreReport report = restore(f_.catalog(), library, keys_, options, quiet);
    EXPECT_TRUE(report.failures.empty()) << path << ": " << report.failures.at(0).error;
    EXPECT_EQ(report.files, 1u) << path;
    EXPECT_TRUE(std::filesystem::exists(out + path)) << path;
    if (std::filesystem::exists(out + path)) {
      EXPECT_EQ(read_file(out + path), read_file(path));
    }
    std::filesystem::remove_all(out);
    const tape::DriveStats stats = library.stats();
    return {stats.tape_seconds, stats.locates, stats.loads};
  }

 private:
  // All on one tape (Fixture::backup's 64M capacity would not hold both).
  void back_up(const std::string& archive_size) {
    CommandResult r =
        f_.mixtape("backup " + shell_quote(f_.src()) + " --library " + shell_quote(f_.library()) +
                   " --new-library --capacity 256M --archive-size " + archive_size);
    if (r.status != 0) throw Error("backup failed: " + r.err + r.out);
  }

  void write_files(const std::string& dir, int count) {
    for (int i = 0; i < count; ++i) {
      char name[16];
      std::snprintf(name, sizeof name, "/%c%03d", dir[0], i);
      write_file(f_.src() + "/" + dir + name, random_text(1 << 20, 7000 + dir[0] * 100 + i));
    }
  }

  Fixture f_;
  crypto::AgeDecryptKeys keys_;
  int outputs_ = 0;
};

class CursorBoundTest : public ::testing::Test {
 protected:
  // The tape is made once, by the first test; a failure to make it fails
  // every test (tests/support SharedSetup).
  static void TearDownTestSuite() { shared_.reset(); }
  void SetUp() override {
    tape_ = &shared_.get([] { return std::make_unique<Tape>(); });
  }

  // The file of `all` whose member starts closest to `bytes` from BOT.
  static const Placement& nearest(const std::vector<Placement>& all, const TapeModel& model,
                                  double bytes) {
    return *std::min_element(all.begin(), all.end(), [&](const auto& a, const auto& b) {
      return std::abs(static_cast<double>(model.offset(a.first_block)) - bytes) <
             std::abs(static_cast<double>(model.offset(b.first_block)) - bytes);
    });
  }

  static inline test_support::SharedSetup<Tape> shared_;
  Tape* tape_ = nullptr;
};

TEST(TimingModelTest, LtoSixBreaksEvenAtAboutOnePointSixGigabytes) {
  const tape::TimingModel lto6;
  const std::uint64_t even = lto6.read_forward_break_even();
  EXPECT_GT(even, 1'600'000'000u);
  EXPECT_LT(even, 1'620'000'000u);
  // At the break-even both ways cost the same; a byte less and reading wins.
  EXPECT_NEAR(lto6.stream_seconds(even), lto6.locate_seconds(even), 1e-6);
  EXPECT_LT(lto6.stream_seconds(even - 1'000'000), lto6.locate_seconds(even - 1'000'000));
  EXPECT_GT(lto6.stream_seconds(even + 1'000'000), lto6.locate_seconds(even + 1'000'000));
  // A drive whose locate is no faster than streaming never locates ahead.
  tape::TimingModel crawl = lto6;
  crawl.locate_bytes_per_second = crawl.stream_bytes_per_second;
  EXPECT_EQ(crawl.read_forward_break_even(), std::numeric_limits<std::uint64_t>::max());
  EXPECT_NEAR(static_cast<double>(scaled_model().read_forward_break_even()),
              static_cast<double>(even) / kScale, 2);
}

// The drive tells restore what moving costs: the same member is read
// forward to under the scaled LTO-6 model, and located to on a drive whose
// reading is so slow that a locate wins past 20 KB.
TEST_F(CursorBoundTest, TheCursorFollowsTheDrivesModel) {
  const std::vector<Placement> all = tape_->placements("near");
  const TapeModel tape(tape_->fixture().image(Tape::kSerial), scaled_model());
  const double even = static_cast<double>(scaled_model().read_forward_break_even());
  // A member well inside its archive, half the break-even from BOT.
  const auto mid = std::find_if(all.begin(), all.end(), [&](const Placement& p) {
    return p.first_block >= p.archive_block + 3 &&
           static_cast<double>(tape.offset(p.first_block)) > 0.5 * even;
  });
  ASSERT_NE(mid, all.end());

  const Measured lto = tape_->restore_one(mid->path, scaled_model());
  EXPECT_EQ(lto.locates, 0u);
  EXPECT_EQ(lto.loads, 1u);

  tape::TimingModel slow_reads = scaled_model();
  slow_reads.stream_bytes_per_second = 1e5;
  ASSERT_LT(slow_reads.read_forward_break_even(), 2u * 16 * 1024);
  // A locate to the age header, then one to the member: exactly 2.
  EXPECT_EQ(tape_->restore_one(mid->path, slow_reads).locates, 2u);
}

// benchmarks.md's bound (load + the cheaper way from BOT to the member's
// first record + its records) for members from the first to 1.6 times the
// break-even from BOT, in archives far shorter than the break-even (as in
// bench/restore: 256 MiB against 1.6 GB).
TEST_F(CursorBoundTest, EveryDistanceFromBotIsWithinTenPercentOfTheBound) {
  const tape::TimingModel model = scaled_model();
  const TapeModel tape(tape_->fixture().image(Tape::kSerial), model);
  const std::vector<Placement> all = tape_->placements("near");
  const double even = static_cast<double>(model.read_forward_break_even());
  ASSERT_GT(tape.offset(all.back().first_block), 1.6 * even) << "the tape is too short";

  std::set<std::string> done;
  for (double at : {0.0, 0.3, 0.6, 0.78, 0.9, 0.98, 1.02, 1.1, 1.3, 1.6}) {
    const Placement& p = nearest(all, tape, at * even);
    if (!done.insert(p.path).second) continue;
    const Measured m = tape_->restore_one(p.path, model);
    const double bound = tape.direct_bound(p);
    EXPECT_EQ(m.loads, 1u);
    EXPECT_LE(m.locates, 2u) << p.path << " at " << at << " x break-even";
    EXPECT_LE(m.tape_seconds, 1.10 * bound)
        << p.path << " at " << at << " x break-even (" << tape.offset(p.first_block)
        << " bytes from BOT, its archive at " << tape.offset(p.archive_block)
        << "): " << m.tape_seconds << " s against a bound of " << bound << " s";
    // A lower bound: nothing reads less.
    EXPECT_GE(m.tape_seconds, bound - 1e-9) << p.path;
  }
  EXPECT_GE(done.size(), 9u);
}

// In an archive longer than the break-even (the writer makes them up to
// 4 GiB) and far from BOT, a member deep inside needs its archive's age
// header first, and two locates can be the least any reader does. The
// bound goes through the header's record: every member is within 10% of
// it, with at most 2 locates.
TEST_F(CursorBoundTest, DeepInALargeArchiveTheBoundGoesThroughItsAgeHeader) {
  const tape::TimingModel model = scaled_model();
  const TapeModel tape(tape_->fixture().image(Tape::kSerial), model);
  const std::vector<Placement> all = tape_->placements("deep");
  const double even = static_cast<double>(model.read_forward_break_even());
  ASSERT_EQ(all.front().archive_block, all.back().archive_block) << "one archive expected";
  const double start = static_cast<double>(tape.offset(all.front().archive_block));
  ASSERT_GT(start, even) << "the archive starts too early";
  ASSERT_GT(static_cast<double>(tape.offset(all.back().first_block)) - start, 1.1 * even)
      << "the archive is too short";

  std::set<std::string> done;
  int two_locates = 0;
  for (double into : {0.0, 0.2, 0.6, 0.9, 1.0, 1.1}) {
    const Placement& p = nearest(all, tape, start + into * even);
    if (!done.insert(p.path).second) continue;
    const Measured m = tape_->restore_one(p.path, model);
    const double bound = tape.header_bound(p);
    EXPECT_LE(m.locates, 2u) << p.path;
    if (m.locates == 2) ++two_locates;
    EXPECT_LE(m.tape_seconds, 1.10 * bound)
        << p.path << " at " << into << " x break-even into its archive: " << m.tape_seconds
        << " s against a bound of " << bound << " s";
    EXPECT_GE(m.tape_seconds, bound - 1e-9) << p.path;
  }
  EXPECT_GE(done.size(), 5u);
  // Past the break-even into the archive, both hops are longer than it.
  EXPECT_GE(two_locates, 1);
}

}  // namespace
}  // namespace mixtape::restore::testing
