// Faults of the tape while it is read back: a tape that ends early
// (premature end of data, through the drive wrapper and as a cut image) and
// an image cut while a restore is reading it. Every test states its
// invariant; all of them come down to two: nothing already on tape is lost
// (what some copy still holds comes back, whole), and the catalog never
// claims what is not there.
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <set>

#include "engine/recover/recover.h"
#include "engine/restore/restore.h"
#include "engine/tape/image_drive.h"
#include "engine/tape/libraries.h"
#include "tests/faults/faults_test_util.h"

namespace mixtape::faults::testing {
namespace {

namespace fs = std::filesystem;

class TapeFaultTest : public restore::testing::TreeTest {
 protected:
  CommandResult restore(const std::string& what, const std::string& to = "out") {
    return restore_into(shell_quote(what), to);
  }
  crypto::AgeDecryptKeys keys() {
    crypto::AgeDecryptKeys k;
    k.identities = crypto::load_identities(f_.identity());
    return k;
  }
  // The block where the tape is made to end: the middle of the middle
  // archive on `serial`, so archives before it are whole and after it gone.
  std::uint64_t break_block(const std::string& serial) {
    auto catalog = catalog::Catalog::open_read_only(f_.catalog());
    auto tape = catalog.tape_by_serial(serial);
    auto archives = catalog.archives_of_tape(tape->id);
    EXPECT_GE(archives.size(), 3u);
    const auto& a = archives.at(archives.size() / 2);
    return a.first_block + format::record_count(a.cipher_bytes, tape->record_size) / 2;
  }
  // Whether a file's copy on `serial` can be read whole from a tape that
  // ends at `block`: its last byte's age chunk, and the start of the next
  // one (which tells the decryptor that chunk is not the last), lie before.
  bool wholly_before(const std::string& path, const std::string& serial, std::uint64_t block) {
    auto r = replica_on(f_, path, serial);
    const std::uint64_t last =
        r.copy.data_offset + std::max<std::uintmax_t>(fs::file_size(path), 1);
    const std::uint64_t next_chunk = (last / format::kAgeChunkSize + 1) * format::kAgeChunkSize;
    return block_of(r, next_chunk) < block;
  }

  // A one-copy backup whose tape, L00001, then ends early: a drive wrapper
  // reports end of data at cut_ (break_block), and is the one drive of the
  // library returned.
  tape::SingleDriveLibrary& backed_up_tape_ending_early() {
    f_.init(1);
    f_.backup();
    cut_ = break_block("L00001");
    image_ = tape::ImageDrive::open(f_.image("L00001"), /*write_protected=*/true);
    auto faulty = std::make_unique<tape::FaultInjectingDrive>(*image_);
    faulty->set_end_of_data(cut_);
    faulty_ = faulty.get();
    return library_.emplace(std::move(faulty), format::label_serial_reader());
  }

  std::uint64_t cut_ = 0;
  std::unique_ptr<tape::ImageDrive> image_;
  tape::FaultInjectingDrive* faulty_ = nullptr;
  std::optional<tape::SingleDriveLibrary> library_;
};

// Invariant: a tape that ends early (the image cut at a record boundary in
// the middle of an archive) loses only what lies past the break: files
// before it restore whole, every file after it is reported by name, and
// with a second copy on another tape every file comes back. Reading never
// changes the catalog.
TEST_F(TapeFaultTest, PrematureEndOfDataLosesOnlyWhatIsPastItAndTheOtherCopyServes) {
  f_.init(2);
  f_.backup();
  const std::string before = listing(f_);
  const std::string status_before = f_.mixtape("status").out;
  const std::uint64_t cut = break_block("L00001");
  end_image_before(f_.image("L00001"), cut);

  // Only the damaged tape in the library: what is past the break fails.
  fs::rename(f_.image("L00002"), f_.file("L00002.tap"));
  fs::remove(f_.image("L00002") + ".idx");
  CommandResult r = restore(f_.src(), "out1");
  EXPECT_EQ(r.status, 1) << r.err;
  std::size_t kept = 0, lost = 0;
  for (const auto& file : regular_files(f_.src())) {
    if (fs::file_size(file) == 0) continue;
    if (wholly_before(file, "L00001", cut)) {
      EXPECT_TRUE(same(file, "out1")) << file << " lies before the break";
      ++kept;
    } else if (!fs::exists(restored(file, "out1"))) {
      EXPECT_NE(r.err.find("not restored: " + file + ": "), std::string::npos)
          << file << " failed silently:\n"
          << r.err;
      ++lost;
    } else {
      EXPECT_TRUE(same(file, "out1")) << file << ": what is restored is whole";
    }
  }
  EXPECT_GT(kept, 0u);
  EXPECT_GT(lost, 0u);
  EXPECT_NE(r.err.find("L00002 is not in the library"), std::string::npos) << r.err;
  EXPECT_TRUE(leftovers(f_.file("out1")).empty());

  // Both tapes: everything comes back, the lost part from L00002.
  fs::rename(f_.file("L00002.tap"), f_.image("L00002"));
  r = restore(f_.src(), "out2");
  ASSERT_EQ(r.status, 0) << r.err;
  for (const auto& file : regular_files(f_.src())) EXPECT_TRUE(same(file, "out2")) << file;
  EXPECT_EQ(listing(f_), before);
  EXPECT_EQ(f_.mixtape("status").out, status_before);
}

// Invariant: through the drive wrapper, a drive that reports end of data in
// the middle of an archive makes restore() fail exactly the files whose
// bytes lie past it, naming tape and block, and restore every other file
// whole; nothing half-written stays in the destination.
TEST_F(TapeFaultTest, PrematureEndOfDataThroughTheDriveWrapper) {
  tape::SingleDriveLibrary& library = backed_up_tape_ending_early();
  const std::uint64_t cut = cut_;
  restore::RestoreOptions options;
  options.paths = {f_.src()};
  options.destination = f_.file("out");
  SilentProgress quiet;
  auto report = restore::restore(f_.catalog(), library, keys(), options, quiet);

  std::set<std::string> failed;
  for (const auto& failure : report.failures) {
    failed.insert(failure.path);
    EXPECT_NE(failure.error.find("L00001"), std::string::npos) << failure.error;
    EXPECT_NE(failure.error.find("block"), std::string::npos) << failure.error;
  }
  for (const auto& file : regular_files(f_.src())) {
    if (fs::file_size(file) == 0) continue;
    if (wholly_before(file, "L00001", cut)) {
      EXPECT_TRUE(same(file)) << file;
      EXPECT_EQ(failed.count(file), 0u) << file;
    } else {
      EXPECT_FALSE(fs::exists(restored(file))) << file << " lies past the end of data";
      EXPECT_EQ(failed.count(file), 1u) << file << " failed silently";
    }
  }
  EXPECT_FALSE(failed.empty());
  EXPECT_TRUE(leftovers(f_.file("out")).empty());
}

// Invariant: a catalog recovered from a tape that ends early (end of data
// injected in the middle of an archive) claims no copy the tape does not
// hold whole: every archive it lists ends before the break, and every copy
// it claims restores through the same faulty drive with its hash checked.
TEST_F(TapeFaultTest, RecoverFromATapeThatEndsEarlyClaimsOnlyWhatIsWhole) {
  tape::SingleDriveLibrary& library = backed_up_tape_ending_early();
  tape::FaultInjectingDrive* drive = faulty_;
  const std::uint64_t cut = cut_;

  const std::string recovered = f_.file("recovered.db");
  {
    catalog::CatalogConfig config;
    config.encryption = catalog::Encryption::kNone;
    auto catalog = catalog::Catalog::create(recovered, config);
    auto report = recover::recover_tape(catalog, *drive, keys());
    EXPECT_EQ(report.source, recover::RecoverSource::kIndexWalk);
    EXPECT_FALSE(report.warnings.empty());
  }
  auto catalog = catalog::Catalog::open_read_only(recovered);
  auto tape = catalog.tape_by_serial("L00001");
  ASSERT_TRUE(tape);
  std::size_t archives = 0;
  for (const auto& a : catalog.archives_of_tape(tape->id)) {
    EXPECT_LE(a.first_block + format::record_count(a.cipher_bytes, tape->record_size), cut)
        << "archive file " << a.archive_file << " runs past the end of data";
    ++archives;
  }
  EXPECT_GT(archives, 0u);

  std::set<std::string> claimed;
  catalog.walk(f_.src(), catalog::View::latest(),
               [&](const std::string& path, const catalog::Entry& e) {
                 if (!e.is_dir && e.version.kind == catalog::VersionKind::kFile &&
                     e.version.size > 0 && !catalog.copies_of(e.version.id).empty())
                   claimed.insert(path);
               });
  ASSERT_FALSE(claimed.empty());
  std::size_t lost = 0;
  for (const auto& file : regular_files(f_.src()))
    if (fs::file_size(file) > 0 && !wholly_before(file, "L00001", cut)) {
      EXPECT_EQ(claimed.count(file), 0u) << file << " lies past the end of data";
      ++lost;
    }
  EXPECT_GT(lost, 0u);
  restore::RestoreOptions options;
  options.paths.assign(claimed.begin(), claimed.end());
  options.destination = f_.file("out");
  SilentProgress quiet;
  auto report = restore::restore(recovered, library, keys(), options, quiet);
  for (const auto& failure : report.failures)
    ADD_FAILURE() << "claimed but unreadable: " << failure.path << ": " << failure.error;
  for (const auto& path : claimed) EXPECT_TRUE(same(path)) << path;
}

// Invariant: `mixtape recover` of a library whose first tape was cut short
// gives a catalog whose copies on the cut tape are all on it (each is read
// back and hashed), and a restore through that catalog brings every file
// back (what the cut tape lost comes from the other copy).
TEST_F(TapeFaultTest, RecoveredLibraryWithACutTapeNeverClaimsWhatIsGone) {
  f_.init(2);
  f_.backup();
  const std::uint64_t cut = break_block("L00001");
  end_image_before(f_.image("L00001"), cut);
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(f_.catalog() + suffix);

  CommandResult r =
      f_.mixtape("recover --library " + shell_quote(f_.library()) + " --serial L00001");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("from a walk over"), std::string::npos) << r.out;
  {
    auto catalog = catalog::Catalog::open_read_only(f_.catalog());
    auto identity = crypto::load_identities(f_.identity()).at(0);
    EXPECT_GT(backup::testing::verify_catalog_against_tapes(catalog, f_.library(), identity), 0u);
  }
  // What the cut tape lost, the recovered catalog does not claim: those
  // files are listed without a copy, and a restore brings back the rest and
  // names each of them as not restored (exit status 1).
  r = restore(f_.src(), "out1");
  EXPECT_EQ(r.status, 1) << r.err;
  const std::string recovered = listing(f_);
  std::size_t without_copy = 0;
  for (const auto& file : regular_files(f_.src())) {
    if (fs::file_size(file) == 0 || same(file, "out1")) continue;
    auto at = recovered.find(" " + file + "\n");
    ASSERT_NE(at, std::string::npos) << file;
    EXPECT_EQ(recovered.compare(recovered.find("copies ", at), 10, "copies 0/2"), 0)
        << file << " is claimed but was not restored";
    EXPECT_NE(r.err.find("mixtape: not restored: " + file + ": no copy on any tape"),
              std::string::npos)
        << file << " was neither restored nor named";
    ++without_copy;
  }
  EXPECT_GT(without_copy, 0u);

  r = f_.mixtape("recover --library " + shell_quote(f_.library()) + " --serial L00002");
  ASSERT_EQ(r.status, 0) << r.err;
  r = restore(f_.src(), "out2");
  ASSERT_EQ(r.status, 0) << r.err;
  for (const auto& file : regular_files(f_.src())) EXPECT_TRUE(same(file, "out2")) << file;
}

// ------------------------------------------------------------ cut mid-read

// A restore of a tree with one big file, held still (SIGSTOP) once the big
// file's first bytes landed, while the test cuts the tape image far ahead
// of what was read: the drive runs into the cut as a real tape runs into
// unreadable media.
class CutWhileReadingTest : public TapeFaultTest {
 protected:
  static constexpr std::size_t kHuge = 40'000'000;

  void SetUp() override {
    TapeFaultTest::SetUp();
    write_file(f_.src() + "/huge.bin", random_text(kHuge, 9));
  }

  // Runs the restore and cuts the tape it is reading 30 MB into huge.bin's
  // data; returns the restore's result, and the serial of the cut tape.
  std::pair<CommandResult, std::string> restore_with_cut() {
    const std::string dir = f_.file("out") + f_.src();
    BackgroundRun run(f_, {"restore", f_.src(), "--to", f_.file("out"), "--library", f_.library()});
    auto landed = [&] {
      for (const auto& t : leftovers(dir)) {
        // A file committed meanwhile is renamed away: no size, not landing.
        std::error_code gone;
        const std::uintmax_t size = fs::file_size(t, gone);
        if (!gone && size >= 1'000'000) return size;
      }
      return std::uintmax_t{0};
    };
    EXPECT_TRUE(poll_until([&] { return landed() > 0 || !run.running(); }));
    run.stop();
    const std::uintmax_t at_stop = landed();
    EXPECT_GT(at_stop, 0u) << "the restore ended before huge.bin was under way";
    EXPECT_LT(at_stop, 20'000'000u) << "huge.bin was read too far to cut ahead of the reader";
    std::vector<std::string> images = open_images(run.pid());
    EXPECT_EQ(images.size(), 1u);
    std::string serial = images.empty() ? "L00001" : fs::path(images[0]).stem().string();
    cut_ = cut_block(serial);
    fs::resize_file(f_.image(serial), parse_image(f_.image(serial))[cut_].data_offset + 100);
    run.resume();
    return {run.wait(), serial};
  }
  std::uint64_t cut_block(const std::string& serial) {
    auto r = replica_on(f_, f_.src() + "/huge.bin", serial);
    return block_of(r, r.copy.data_offset + 30'000'000);
  }

  std::uint64_t cut_ = 0;
};

// Invariant: an image cut while the restore reads it fails the file being
// read (naming tape and block) and the files past the cut, leaves no
// half-written file, and every file before the cut is restored whole.
TEST_F(CutWhileReadingTest, OnlyTheFilesPastTheCutFailAndNothingHalfWrittenStays) {
  f_.init(1);
  f_.backup("64M");
  auto [r, serial] = restore_with_cut();
  EXPECT_EQ(r.status, 1) << r.err;
  const std::string huge = f_.src() + "/huge.bin";
  EXPECT_NE(r.err.find("not restored: " + huge + ": "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("tape " + serial), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("block"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(restored(huge)));
  EXPECT_TRUE(leftovers(f_.file("out")).empty());
  for (const auto& file : regular_files(f_.src())) {
    if (file == huge || fs::file_size(file) == 0) continue;
    if (wholly_before(file, serial, cut_))
      EXPECT_TRUE(same(file)) << file;
    else
      EXPECT_TRUE(same(file) || r.err.find(file + ": ") != std::string::npos) << file;
  }
}

// Invariant: with a second copy, an image cut mid-read costs nothing: the
// file being read comes back whole from the other tape.
TEST_F(CutWhileReadingTest, TheOtherCopyServesWhatTheCutTapeWasReading) {
  f_.init(2);
  f_.backup("64M");
  auto [r, serial] = restore_with_cut();
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(parse_image(f_.image(serial)).size(), cut_) << "the tape was cut";
  for (const auto& file : regular_files(f_.src())) EXPECT_TRUE(same(file)) << file;
  EXPECT_TRUE(leftovers(f_.file("out")).empty());
}

}  // namespace
}  // namespace mixtape::faults::testing
