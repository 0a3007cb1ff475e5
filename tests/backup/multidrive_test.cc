// Libraries with two drives: a copies=2 backup writes both tapes in one
// pass from one read of the files, and each tape restores on its own; a
// drive that dies mid-run is dropped while the other carries on, and the
// catalog claims exactly what is on tape; a media error while writing
// abandons the archive, the tape still ends in a trailing index, and the
// files go to the next tape. Every copy is read back from the images.
#include <sys/stat.h>

#include <algorithm>
#include <map>
#include <set>

#include "engine/restore/restore.h"
#include "engine/tape/image_drive.h"
#include "engine/tape/libraries.h"
#include "tests/backup/backup_test_util.h"

namespace mixtape::backup::testing {
namespace {

using catalog::Catalog;

// Keeps the warnings; reports nothing else.
class WarningLog final : public Progress {
 public:
  void warning(const std::string& message) override { warnings.push_back(message); }
  bool any(const std::string& text) const {
    return std::any_of(warnings.begin(), warnings.end(),
                       [&](const std::string& w) { return w.find(text) != std::string::npos; });
  }
  std::vector<std::string> warnings;
};

class MultiDriveTest : public ImageBackupTest {
 protected:
  MultiDriveTest() : ImageBackupTest(1 << 20) {}

  // `count` files of 150-450 KB under a few directories; returns their bytes.
  std::uint64_t make_files(int first, int count) {
    std::uint64_t total = 0;
    for (int i = first; i < first + count; ++i) {
      std::string data = random_text(150000 + (i * 7919) % 300000, static_cast<std::uint32_t>(i));
      write_file(src_ + "/d" + std::to_string(i % 3) + "/f" + std::to_string(i), data);
      total += data.size();
    }
    return total;
  }

  BackupReport run(tape::Library& library, Progress& progress) {
    return backup(*catalog_, library, options_, {}, progress);
  }
  BackupReport run(std::size_t drives = 2) {
    tape::ImageLibrary library(library_, drives, geometry_);
    WarningLog log;
    return run(library, log);
  }

  // Every version under src has `copies` copies, on distinct tapes.
  std::size_t expect_copies(int copies) {
    std::size_t versions = 0;
    catalog_->walk(src_, catalog::View::latest(),
                   [&](const std::string& path, const catalog::Entry& e) {
                     if (e.is_dir) return;
                     ++versions;
                     auto replicas = catalog_->copies_of(e.version.id);
                     EXPECT_EQ(static_cast<int>(replicas.size()), copies) << path;
                     std::set<std::string> tapes;
                     for (const auto& r : replicas) tapes.insert(r.tape.serial);
                     EXPECT_EQ(tapes.size(), replicas.size()) << path << ": two copies on one tape";
                   });
    return versions;
  }

  // The catalog claims exactly what the images hold: every copy is read
  // back and hashed; returns how many there are.
  std::size_t exact() { return verify_catalog_against_tapes(*catalog_, library_, identity_); }

  // Each index on the tape names this tape and the archive after it where
  // the catalog has it: its own serial, file numbers and first block.
  void expect_indexes_describe(const catalog::TapeRow& tape) {
    auto files = tape_files(library_ + "/" + tape.serial + ".tap");
    for (const auto& archive : catalog_->archives_of_tape(tape.id)) {
      SCOPED_TRACE(tape.serial + " index file " + std::to_string(archive.index_file));
      ASSERT_LT(static_cast<std::size_t>(archive.index_file), files.size());
      std::string db = dir_.file("index-" + tape.serial + ".db");
      write_file(db, decrypt(files[static_cast<std::size_t>(archive.index_file)], identity_));
      EXPECT_EQ(index_format_value(db, "serial"), tape.serial);
      EXPECT_EQ(index_format_value(db, "index_file"), std::to_string(archive.index_file));
      EXPECT_EQ(index_format_value(db, "archive_file"), std::to_string(archive.archive_file));
      format::IndexReader index(db);
      ASSERT_TRUE(index.archive());
      EXPECT_EQ(index.archive()->first_block, archive.first_block);
      EXPECT_EQ(index.archive()->age_header_length, archive.age_header_len);
      EXPECT_EQ(index.archive()->ciphertext_size, archive.cipher_bytes);
      ::unlink(db.c_str());
    }
  }

  // Restores src from the library as it is (hide tapes first to restore
  // from the others) and compares every file with the source.
  void expect_restores(const std::string& what) {
    SCOPED_TRACE(what);
    const std::string to = dir_.file("restored-" + what);
    tape::ImageLibrary library(library_, 2, geometry_);
    restore::RestoreOptions options;
    options.paths = {src_};
    options.destination = to;
    crypto::AgeDecryptKeys keys;
    keys.identities.push_back(identity_);
    SilentProgress progress;
    auto report = restore::restore(catalog_->path(), library, keys, options, progress);
    for (const auto& failure : report.failures)
      ADD_FAILURE() << failure.path << ": " << failure.error;
    std::size_t compared = 0;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(src_)) {
      if (entry.is_symlink()) {
        EXPECT_EQ(std::filesystem::read_symlink(to + entry.path().string()),
                  std::filesystem::read_symlink(entry.path()));
        continue;
      }
      if (!entry.is_regular_file()) continue;
      EXPECT_EQ(read_file(to + entry.path().string()), read_file(entry.path().string()))
          << entry.path();
      ++compared;
    }
    EXPECT_EQ(report.files, compared);
    EXPECT_GT(compared, 0u);
  }

  catalog::TapeRow tape(const std::string& serial) { return *catalog_->tape_by_serial(serial); }
  std::string image(const std::string& serial) { return library_ + "/" + serial + ".tap"; }
};

TEST_F(MultiDriveTest, TwoCopiesAreWrittenInOnePassFromOneReadAndEachTapeRestoresAlone) {
  const std::uint64_t total = make_files(0, 24);
  ::symlink("d0/f0", (src_ + "/link").c_str());
  BackupReport report;
  {
    tape::ImageLibrary library(library_, 2, geometry_);
    WarningLog log;
    report = run(library, log);
    EXPECT_TRUE(log.warnings.empty()) << log.warnings.front();
    // Each tape was written from its own drive.
    EXPECT_GT(library.drive(0).stats().bytes_written, total);
    EXPECT_GT(library.drive(1).stats().bytes_written, total);
    EXPECT_EQ(library.moves(), 0u);
  }
  EXPECT_EQ(report.failures(), 0u);
  EXPECT_TRUE(report.failed_drives.empty());
  EXPECT_EQ(report.below_goal, 0u);
  EXPECT_EQ(report.copies, 2u * 25);
  EXPECT_EQ(report.tapes, (std::vector<std::string>{"L00001", "L00002"}));
  // One session wrote both tapes ...
  EXPECT_EQ(report.multi_drive_sessions, 1u);
  // ... from one read of the files to hash them and one to write them, not
  // one per tape.
  EXPECT_EQ(report.hash.bytes_read, total);
  EXPECT_EQ(report.source_bytes_written, total);
  EXPECT_EQ(report.source_bytes_read(), 2 * total);
  EXPECT_EQ(report.archives % 2, 0u);
  EXPECT_EQ(catalog_->archives_of_tape(tape("L00001").id).size(), report.archives / 2);
  EXPECT_EQ(catalog_->archives_of_tape(tape("L00002").id).size(), report.archives / 2);
  EXPECT_GE(report.archives / 2, 4u);

  EXPECT_EQ(expect_copies(2), 25u);
  EXPECT_EQ(exact(), 50u);
  expect_trailing_indexes(*catalog_, library_, identity_, dir_.path());
  for (const auto& t : catalog_->tapes()) expect_indexes_describe(t);

  // Each tape on its own holds everything: hide the other and restore.
  expect_restores("both");
  for (const std::string serial : {"L00001", "L00002"}) {
    const std::string other = serial == "L00001" ? "L00002" : "L00001";
    std::filesystem::rename(image(other), dir_.file(other + ".away"));
    expect_restores("from-" + serial);
    std::filesystem::rename(dir_.file(other + ".away"), image(other));
  }
}

TEST_F(MultiDriveTest, ADriveThatDiesMidRunIsDroppedTheOtherTapeIsCompleteAndTheCatalogExact) {
  make_files(0, 3);
  EXPECT_EQ(run().multi_drive_sessions, 1u);  // labels L00001 and L00002
  const catalog::TapeRow before = tape("L00002");
  const std::size_t archives_before = catalog_->archives_of_tape(before.id).size();
  const auto image_before = std::filesystem::file_size(image("L00002"));
  make_files(100, 20);

  // L00002's drive dies in its third archive or so (64 KiB records: an
  // index is a record or two, a 1 MiB archive 17 records with its filemark).
  BackupReport report;
  {
    tape::ImageLibrary images(library_, 2, geometry_);
    tape::FaultInjectingLibrary library(images);
    library.on_load = [](const std::string& serial, std::size_t drive,
                         tape::FaultInjectingDrive& faults) {
      if (serial == "L00002") {
        EXPECT_EQ(drive, 1u);
        faults.fail_after_writes(45);
      }
    };
    WarningLog log;
    report = run(library, log);
    EXPECT_TRUE(library.faults(1).dead());
    EXPECT_FALSE(library.faults(0).dead());
    EXPECT_TRUE(log.any("drive failed (injected)"));
  }
  ASSERT_EQ(report.failed_drives.size(), 1u);
  EXPECT_NE(report.failed_drives[0].find("drive 1"), std::string::npos) << report.failed_drives[0];
  EXPECT_EQ(report.failures(), 0u);
  // It died after writing whole archives of this session to L00002.
  EXPECT_GT(std::filesystem::file_size(image("L00002")), image_before + (2 << 20));

  // L00002 gained nothing: its session is not recorded, its append point
  // is where it was, so the next run overwrites what the dead drive left.
  const catalog::TapeRow after = tape("L00002");
  EXPECT_EQ(catalog_->archives_of_tape(after.id).size(), archives_before);
  EXPECT_EQ(after.append_block, before.append_block);
  EXPECT_EQ(after.append_file, before.append_file);
  // L00001 has every file; the copies L00002 should have held were made up
  // on a new tape by the drive that was left.
  for (int i = 100; i < 120; ++i) {
    auto v = catalog_->latest_version(
        *catalog_->file_by_path(src_ + "/d" + std::to_string(i % 3) + "/f" + std::to_string(i)));
    std::set<std::string> tapes;
    for (const auto& r : catalog_->copies_of(v->id)) tapes.insert(r.tape.serial);
    EXPECT_TRUE(tapes.count("L00001")) << i;
    EXPECT_FALSE(tapes.count("L00002")) << i;
  }
  EXPECT_EQ(report.below_goal, 0u);
  EXPECT_EQ(expect_copies(2), 23u);
  EXPECT_EQ(exact(), 46u);
  for (const auto& t : catalog_->tapes()) {
    if (t.serial == "L00002") continue;  // ends in the dead drive's leftovers
    expect_indexes_describe(t);
  }
  EXPECT_EQ(tape("L00001").state, catalog::TapeState::kOpen);

  // The drive is mended: the next run appends to L00002 at its old append
  // point, and every tape ends in a trailing index again.
  make_files(200, 4);
  BackupReport later = run();
  EXPECT_TRUE(later.failed_drives.empty());
  EXPECT_EQ(later.copies, 8u);
  EXPECT_NE(std::find(later.tapes.begin(), later.tapes.end(), "L00002"), later.tapes.end());
  EXPECT_EQ(expect_copies(2), 27u);
  EXPECT_EQ(exact(), 54u);
  expect_trailing_indexes(*catalog_, library_, identity_, dir_.path());
  expect_restores("after-repair");
}

TEST_F(MultiDriveTest, WhenNoDriveIsLeftTheRunReportsWhatIsMissingAndALaterRunMakesItUp) {
  make_files(0, 3);
  run();
  make_files(100, 12);
  BackupReport report;
  {
    tape::ImageLibrary images(library_, 2, geometry_);
    tape::FaultInjectingLibrary library(images);
    // L00002's drive dies mid-session; the other finishes L00001, then dies
    // labelling the tape that was to take the missing copies.
    library.on_load = [](const std::string& serial, std::size_t,
                         tape::FaultInjectingDrive& faults) {
      if (serial == "L00002") faults.fail_after_writes(30);
      if (serial == "L00003") faults.fail_after_writes(3);
    };
    WarningLog log;
    report = run(library, log);
    EXPECT_TRUE(log.any("no drive left"));
  }
  EXPECT_EQ(report.failed_drives.size(), 2u);
  EXPECT_EQ(report.below_goal, 12u);                 // the new files have one copy of two
  EXPECT_FALSE(catalog_->tape_by_serial("L00003"));  // its labelling never committed
  for (int i = 100; i < 112; ++i) {
    auto v = catalog_->latest_version(
        *catalog_->file_by_path(src_ + "/d" + std::to_string(i % 3) + "/f" + std::to_string(i)));
    auto replicas = catalog_->copies_of(v->id);
    ASSERT_EQ(replicas.size(), 1u) << i;
    EXPECT_EQ(replicas[0].tape.serial, "L00001");
  }
  EXPECT_EQ(exact(), 2u * 3 + 12);

  BackupReport later = run();
  EXPECT_TRUE(later.failed_drives.empty());
  EXPECT_EQ(later.copies, 12u);
  EXPECT_EQ(later.below_goal, 0u);
  EXPECT_EQ(expect_copies(2), 15u);
  EXPECT_EQ(exact(), 30u);
  expect_trailing_indexes(*catalog_, library_, identity_, dir_.path());
}

TEST_F(MultiDriveTest, AMediaErrorWhileWritingAbandonsTheArchiveAndTheFilesGoToTheNextTape) {
  options_.copies = 1;
  make_files(0, 3);
  run(1);
  const catalog::TapeRow before = tape("L00001");
  const std::size_t archives_before = catalog_->archives_of_tape(before.id).size();
  ASSERT_TRUE(before.append_block);
  make_files(100, 16);

  // A bad spot a few dozen blocks past the append point: in the second or
  // third archive of the session.
  const std::uint64_t bad = *before.append_block + 30;
  BackupReport report;
  {
    tape::ImageLibrary images(library_, 1, geometry_);
    tape::FaultInjectingLibrary library(images);
    library.on_load = [bad](const std::string& serial, std::size_t,
                            tape::FaultInjectingDrive& faults) {
      // The drive stays; the bad spot is on this cartridge only.
      faults.clear_faults();
      if (serial == "L00001") faults.add_bad_write(bad);
    };
    WarningLog log;
    report = run(library, log);
    EXPECT_TRUE(log.any("L00001: " + image("L00001") + ": media error writing block " +
                        std::to_string(bad)));
    EXPECT_EQ(log.warnings.size(), 1u);
  }
  EXPECT_TRUE(report.failed_drives.empty());  // the tape failed, not the drive
  EXPECT_EQ(report.failures(), 0u);
  EXPECT_EQ(report.below_goal, 0u);
  EXPECT_EQ(report.copies, 16u);

  // What was on L00001 before is still there; the archives written before
  // the bad spot are committed; the one that met it is not; the tape ends
  // in a trailing index before the bad block and takes no more writes.
  const catalog::TapeRow after = tape("L00001");
  EXPECT_EQ(after.state, catalog::TapeState::kFull);
  ASSERT_TRUE(after.append_block);
  EXPECT_LT(*after.append_block, bad);
  const auto archives = catalog_->archives_of_tape(after.id);
  EXPECT_GT(archives.size(), archives_before);
  for (const auto& a : archives) EXPECT_LT(a.first_block + a.cipher_bytes / (64 << 10), bad);
  // The rest went to the next tape in the same run.
  ASSERT_EQ(catalog_->tapes().size(), 2u);
  EXPECT_EQ(tape("L00002").state, catalog::TapeState::kOpen);
  EXPECT_FALSE(catalog_->archives_of_tape(tape("L00002").id).empty());
  EXPECT_EQ(report.tapes, (std::vector<std::string>{"L00001", "L00002"}));
  EXPECT_EQ(expect_copies(1), 19u);
  EXPECT_EQ(exact(), 19u);
  expect_trailing_indexes(*catalog_, library_, identity_, dir_.path());

  // Later runs leave L00001 alone.
  make_files(300, 2);
  BackupReport later = run(1);
  EXPECT_EQ(later.copies, 2u);
  EXPECT_EQ(std::find(later.tapes.begin(), later.tapes.end(), "L00001"), later.tapes.end());
  EXPECT_EQ(exact(), 21u);
}

// ------------------------------------------------------------ the commands

class MultiDriveCliTest : public MixtapeCliTest {
 protected:
  // A counter from a --stats-json file: the first "key": value in it.
  static double stat(const std::string& json, const std::string& key) {
    auto at = json.find("\"" + key + "\":");
    if (at == std::string::npos) return -1;
    return std::strtod(json.c_str() + at + key.size() + 3, nullptr);
  }
};

TEST_F(MultiDriveCliTest, BackupAndRestoreWithTwoDrives) {
  ASSERT_EQ(mixtape({"init", "--copies", "2"}).status, 0);
  std::uint64_t total = 0;
  for (int i = 0; i < 10; ++i) {
    std::string data = random_text(200000 + 10007 * i, static_cast<std::uint32_t>(i));
    write_file(src_ + "/dir/f" + std::to_string(i), data);
    total += data.size();
  }
  const std::string stats = dir_.file("backup-stats.json");
  CommandResult backup =
      mixtape({"backup", src_, "--library", library_, "--new-library", "--drives", "2",
               "--capacity", "64M", "--archive-size", "512K", "--stats-json", stats});
  ASSERT_EQ(backup.status, 0) << backup.err;
  EXPECT_NE(backup.out.find("backed up 20 file copies"), std::string::npos) << backup.out;
  EXPECT_NE(backup.out.find("to L00001 L00002"), std::string::npos) << backup.out;
  std::string json = read_file(stats);
  EXPECT_EQ(stat(json, "source_bytes_written"), static_cast<double>(total)) << json;
  EXPECT_EQ(stat(json, "source_bytes_hashed"), static_cast<double>(total)) << json;
  EXPECT_EQ(stat(json, "multi_drive_sessions"), 1) << json;
  EXPECT_GT(stat(json, "drive0_bytes_written"), static_cast<double>(total)) << json;
  EXPECT_GT(stat(json, "drive1_bytes_written"), static_cast<double>(total)) << json;

  const std::string restored = dir_.file("restored");
  const std::string restore_stats = dir_.file("restore-stats.json");
  CommandResult restore = mixtape({"restore", src_, "--to", restored, "--library", library_,
                                   "--drives", "2", "--stats-json", restore_stats});
  ASSERT_EQ(restore.status, 0) << restore.err;
  for (int i = 0; i < 10; ++i) {
    const std::string name = "/dir/f" + std::to_string(i);
    EXPECT_EQ(read_file(restored + src_ + name), read_file(src_ + name)) << name;
  }
  json = read_file(restore_stats);
  EXPECT_GT(stat(json, "drive0_records_read") + stat(json, "drive1_records_read"), 0) << json;
}

}  // namespace
}  // namespace mixtape::backup::testing
