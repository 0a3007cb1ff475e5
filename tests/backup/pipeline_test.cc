// backup(): copies on distinct tapes, versions, rolling onto new tapes at the
// planned end, at early warning and at the physical end, files that change
// or vanish under the writer, failed sessions, and reusing a tape whose
// labelling was interrupted. Every test reads the copies back from the tape
// images (decrypting them) rather than trusting the catalog.
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <functional>

#include "engine/backup/hash_stage.h"
#include "engine/tape/image_drive.h"
#include "engine/tape/libraries.h"
#include "tests/backup/backup_test_util.h"
#include "tests/support/test_support.h"

namespace mixtape::backup::testing {
namespace {

using catalog::Catalog;

// A library of image tapes whose drive can be given faults per tape.
class FaultyLibrary final : public tape::Library {
 public:
  FaultyLibrary(const std::string& dir, const tape::ImageGeometry& geometry)
      : inner_(dir, 1, geometry) {}
  std::function<void(const std::string& serial, tape::FaultInjectingDrive&)> on_load;

  std::size_t drive_count() const override { return 1; }
  tape::Drive& drive(std::size_t) override { return *wrapper_; }
  std::vector<std::string> serials() override { return inner_.serials(); }
  tape::Drive& load(const std::string& serial, std::size_t) override {
    wrapper_ = std::make_unique<tape::FaultInjectingDrive>(inner_.load(serial));
    if (on_load) on_load(serial, *wrapper_);
    return *wrapper_;
  }
  void unload(std::size_t) override { inner_.unload(); }
  std::optional<std::string> loaded_serial(std::size_t) const override {
    return inner_.loaded_serial();
  }
  tape::DriveStats stats() const override { return inner_.stats(); }

 private:
  tape::ImageLibrary inner_;
  std::unique_ptr<tape::FaultInjectingDrive> wrapper_;
};

// Records the phases and lets a test act at chosen moments.
class HookProgress final : public Progress {
 public:
  std::function<void(const std::string& phase, const std::string& path)> on_advance;
  std::function<void(const std::string& path)> on_hashed;
  std::vector<std::string> warnings;

  void phase(const std::string& name, std::uint64_t, std::uint64_t) override { phase_ = name; }
  // Once per entry scanned and per file written (not per chunk of one).
  void advance(std::uint64_t, std::uint64_t items, const std::string& current) override {
    if (on_advance && items > 0) on_advance(phase_, current);
  }
  void file_hashed(const std::string& path, std::uint64_t) override {
    if (on_hashed) on_hashed(path);
  }
  void warning(const std::string& message) override { warnings.push_back(message); }

 private:
  std::string phase_;
};

class PipelineTest : public ImageBackupTest {
 protected:
  PipelineTest() : ImageBackupTest(256 << 10) {}

  BackupReport run(Progress& progress) {
    FaultyLibrary library(library_, geometry_);
    library.on_load = on_load_;
    return backup(*catalog_, library, options_, {}, progress);
  }
  BackupReport run() {
    SilentProgress progress;
    return run(progress);
  }

  // Every version of every file under src has `copies` copies on distinct
  // tapes, each read back from tape; every tape ends in a trailing index.
  void expect_all_copied(int copies, bool latest_only = false) {
    std::size_t versions = 0;
    std::size_t others = 0;  // older versions, when only the latest count
    catalog_->walk(
        src_, catalog::View::latest(), [&](const std::string& path, const catalog::Entry& e) {
          if (e.is_dir) return;
          auto all = catalog_->versions_of(e.file_id);
          for (const auto& v : all) {
            if (latest_only && v.id != all.back().id) {
              others += catalog_->copies_of(v.id).size();
              continue;
            }
            ++versions;
            auto replicas = catalog_->copies_of(v.id);
            EXPECT_EQ(static_cast<int>(replicas.size()), copies) << path;
            std::set<std::string> tapes;
            for (const auto& r : replicas) tapes.insert(r.tape.serial);
            EXPECT_EQ(tapes.size(), replicas.size()) << path << ": two copies on one tape";
          }
        });
    EXPECT_EQ(verify_catalog_against_tapes(*catalog_, library_, identity_),
              versions * static_cast<std::size_t>(copies) + others);
    expect_trailing_indexes(*catalog_, library_, identity_, dir_.path());
  }

  // Every archive on every tape decrypts and is a complete tar with as many
  // members as its row says; returns how many archives there are.
  std::size_t expect_archives_whole() {
    std::size_t archives = 0;
    for (const auto& tape : catalog_->tapes()) {
      auto files = tape_files(library_ + "/" + tape.serial + ".tap");
      for (const auto& archive : catalog_->archives_of_tape(tape.id)) {
        ++archives;
        SCOPED_TRACE(tape.serial + " archive file " + std::to_string(archive.archive_file));
        if (static_cast<std::size_t>(archive.archive_file) >= files.size()) {
          ADD_FAILURE() << "no such tape file";
          continue;
        }
        const std::string& sealed = files[static_cast<std::size_t>(archive.archive_file)];
        EXPECT_EQ(sealed.size(), archive.cipher_bytes);
        std::string tar = decrypt(sealed, identity_);
        EXPECT_EQ(tar.size(), archive.plain_bytes);
        MemorySource source(as_bytes(tar));
        format::TarReader reader(source, "archive");
        std::uint64_t members = 0;
        while (auto member = reader.next()) ++members;  // throws if truncated
        EXPECT_EQ(members, archive.members);
      }
    }
    return archives;
  }

  std::vector<catalog::TapeRow> tapes() { return catalog_->tapes(); }

  std::function<void(const std::string&, tape::FaultInjectingDrive&)> on_load_;
};

TEST_F(PipelineTest, TwoCopiesGoToTwoDifferentTapes) {
  for (int i = 0; i < 12; ++i)
    write_file(src_ + "/d" + std::to_string(i % 3) + "/f" + std::to_string(i),
               random_text(30000 * i + 1, i));
  ::symlink("d0/f0", (src_ + "/link").c_str());
  BackupReport report = run();
  EXPECT_EQ(report.copies, 26u);  // 13 versions, twice
  EXPECT_EQ(report.failures(), 0u);
  EXPECT_EQ(report.below_goal, 0u);
  EXPECT_EQ(report.tapes, (std::vector<std::string>{"L00001", "L00002"}));
  ASSERT_EQ(tapes().size(), 2u);
  expect_all_copied(2);
  EXPECT_GE(expect_archives_whole(), 2u);
}

TEST_F(PipelineTest, AChangedFileGetsASecondVersionAndADeletedFileKeepsItsVersions) {
  write_file(src_ + "/changes", "first content");
  write_file(src_ + "/deleted", "soon gone");
  write_file(src_ + "/stays", "constant");
  run();
  write_file(src_ + "/changes", "second content, longer");
  ASSERT_EQ(::unlink((src_ + "/deleted").c_str()), 0);
  BackupReport report = run();
  EXPECT_EQ(report.copies, 2u);  // only the new version, twice
  auto changes = catalog_->versions_of(*catalog_->file_by_path(src_ + "/changes"));
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_EQ(to_hex(changes[0].hash), hash_hex("first content"));
  EXPECT_EQ(to_hex(changes[1].hash), hash_hex("second content, longer"));
  auto deleted = catalog_->versions_of(*catalog_->file_by_path(src_ + "/deleted"));
  ASSERT_EQ(deleted.size(), 1u);
  EXPECT_EQ(catalog_->copies_of(deleted[0].id).size(), 2u);
  EXPECT_TRUE(catalog_->resolve(src_ + "/deleted"));  // still listed
  expect_all_copied(2);
}

// The names of the files opened in a directory, in the order the kernel
// saw the opens (inotify), as far as they have happened.
class OpenWatch {
 public:
  explicit OpenWatch(const std::string& dir) : fd_(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) {
    if (!fd_.valid() || ::inotify_add_watch(fd_.get(), dir.c_str(), IN_OPEN) < 0)
      throw SystemError("inotify on " + dir, errno);
  }
  // The opens since the last call.
  std::vector<std::string> opened() {
    std::vector<std::string> names;
    alignas(inotify_event) char buffer[64 << 10];
    for (;;) {
      ssize_t n = ::read(fd_.get(), buffer, sizeof buffer);
      if (n <= 0) break;
      for (char* at = buffer; at < buffer + n;) {
        auto* event = reinterpret_cast<inotify_event*>(at);
        if (event->len > 0 && !(event->mask & IN_ISDIR)) names.emplace_back(event->name);
        at += sizeof(inotify_event) + event->len;
      }
    }
    return names;
  }

 private:
  UniqueFd fd_;
};

TEST(LookaheadTest, HashesTheArchiveBeingPackedAndTheNextOneOnly) {
  const std::uint64_t mib = 1 << 20;
  // 2 threads of four lanes (AVX2), archives of 128 MiB (a run of 1 GiB),
  // memory to spare.
  const Lookahead ahead = Lookahead::for_stage(2, 4, 128 * mib, 3072 * mib);
  EXPECT_EQ(ahead.most_bytes, 256 * mib);  // two archives
  EXPECT_EQ(ahead.most_files, 2 * 2 * FileHasher::kLanes);
  // How many files of one size it takes in: as many as lanes take, for
  // small files; a group of four per thread for 64 MiB files (half the
  // run, not all of it) and 256 MiB files (one thread's four lanes in a
  // run of 1 GiB); one per thread for files over 1 GiB.
  auto files_of = [&](const Lookahead& l, std::uint64_t size) {
    std::size_t files = 0;
    while (l.admits(files, files * size)) ++files;
    return files;
  };
  EXPECT_EQ(files_of(ahead, 1 * mib), ahead.most_files);
  EXPECT_EQ(files_of(ahead, 64 * mib), 8u);
  EXPECT_EQ(files_of(ahead, 256 * mib), 8u);
  EXPECT_EQ(files_of(ahead, 1024 * mib), 2u);
  EXPECT_EQ(files_of(ahead, 4096 * mib), 2u);  // one per thread, whatever its size
  // Small archives: a group per thread still, then two archives' bytes.
  const Lookahead small = Lookahead::for_stage(2, 4, 256 << 10, 3072 * mib);
  EXPECT_EQ(files_of(small, 64 << 10), 8u);
  EXPECT_EQ(files_of(small, 20 << 10), 26u);  // 512 KiB: two archives
  // Large archives: at most 1 GiB per thread, and what the page cache is
  // trusted to keep for the write stage's second read.
  EXPECT_EQ(Lookahead::for_stage(2, 4, 4096 * mib, 8192 * mib).most_bytes, 2048 * mib);
  EXPECT_EQ(Lookahead::for_stage(2, 4, 4096 * mib, 1024 * mib).most_bytes, 1024 * mib);
  EXPECT_EQ(Lookahead::for_stage(4, 4, 4096 * mib, 8192 * mib).most_bytes, 4096 * mib);
  EXPECT_EQ(files_of(Lookahead::for_stage(2, 4, 4096 * mib, 8192 * mib), 64 * mib), 32u);
  EXPECT_EQ(files_of(Lookahead::for_stage(2, 4, 128 * mib, 512 * mib), 256 * mib), 2u);
  // Eight lanes to a pass (AVX-512): a group of eight per thread.
  EXPECT_EQ(files_of(Lookahead::for_stage(2, 8, 128 * mib, 3072 * mib), 64 * mib), 16u);
  EXPECT_EQ(files_of(Lookahead::for_stage(2, 8, 128 * mib, 3072 * mib), 1 * mib), 32u);
}

// An archive's index (its members' hashes) precedes it on tape: archive 1
// can be written only once its files are hashed. The look-ahead keeps
// hashing about one archive ahead of packing, so the writer writes archive
// 1 before the last files are even opened for hashing, rather than after
// everything is hashed.
TEST_F(PipelineTest, TheFirstArchiveIsWrittenBeforeTheLastFilesAreHashed) {
  options_.copies = 1;
  // 64 KiB each: three to an archive of 256 KiB. When the writer has written
  // the first member, the hash stage has packed at most three archives (one
  // being written, one queued, one waiting to be: nine files) and hashes at
  // most `ahead` files beyond them (a group per thread, on this machine).
  // Ten more must not have been opened yet (with two threads, the look-ahead
  // before this one took 32 files in at once, some of these among them).
  std::size_t ahead = 0;
  const Lookahead lookahead =
      Lookahead::for_stage(hash_threads(), hash_group(), options_.archive_size, page_cache_share());
  while (lookahead.admits(ahead, ahead * (64 << 10))) ++ahead;
  const int first_unopened = static_cast<int>(9 + ahead + 1);
  const int kFiles = first_unopened + 10;
  for (int i = 0; i < kFiles; ++i)
    write_file(src_ + "/f" + std::to_string(100 + i), random_text(64 << 10, i));
  OpenWatch watch(src_);
  HookProgress progress;
  std::vector<std::string> opened_before_first_write;
  bool first = true;
  progress.on_advance = [&](const std::string& phase, const std::string& path) {
    if (phase != "backup" || !first) return;
    first = false;
    EXPECT_EQ(path, src_ + "/f100");
    opened_before_first_write = watch.opened();
  };
  BackupReport report = run(progress);
  EXPECT_EQ(report.copies, static_cast<std::uint64_t>(kFiles));
  EXPECT_EQ(report.archives, static_cast<std::uint64_t>((kFiles + 2) / 3));
  const std::set<std::string> early(opened_before_first_write.begin(),
                                    opened_before_first_write.end());
  EXPECT_TRUE(early.count("f100"));  // hashed, then read again to be written
  for (int i = first_unopened; i < kFiles; ++i)
    EXPECT_FALSE(early.count("f" + std::to_string(100 + i))) << "f" << 100 + i;
  // Every file was opened in the end (hashed, then written).
  std::set<std::string> all = early;
  for (auto& name : watch.opened()) all.insert(name);
  EXPECT_EQ(all.size(), static_cast<std::size_t>(kFiles));
  expect_all_copied(1);
}

TEST_F(PipelineTest, AnUnchangedTreeWritesNothing) {
  write_file(src_ + "/a", "a");
  run();
  auto size = std::filesystem::file_size(library_ + "/L00001.tap");
  BackupReport report = run();
  EXPECT_EQ(report.archives, 0u);
  EXPECT_EQ(report.hash.files, 0u);
  EXPECT_EQ(std::filesystem::file_size(library_ + "/L00001.tap"), size);
  EXPECT_EQ(tapes().size(), 2u);
}

TEST_F(PipelineTest, ABackupBiggerThanATapeRollsOntoNewTapesWithEveryArchiveWhole) {
  geometry_ = {6 << 20, 0};
  options_.label.capacity = geometry_.capacity;
  options_.copies = 1;
  for (int i = 0; i < 40; ++i)
    write_file(src_ + "/f" + std::to_string(100 + i), random_text(200000 + 997 * i, i));
  BackupReport report = run();
  EXPECT_EQ(report.failures(), 0u);
  EXPECT_EQ(report.copies, 40u);
  auto all = tapes();
  ASSERT_GE(all.size(), 3u);
  for (std::size_t i = 0; i + 1 < all.size(); ++i)
    EXPECT_EQ(all[i].state, catalog::TapeState::kFull) << all[i].serial;
  for (const auto& tape : all) {
    EXPECT_LE(std::filesystem::file_size(library_ + "/" + tape.serial + ".tap"),
              geometry_.capacity);
    EXPECT_LE(tape.bytes_used, tape.capacity);
  }
  EXPECT_GE(expect_archives_whole(), 10u);
  expect_all_copied(1);
}

TEST_F(PipelineTest, SmallerFilesFillTheRoomABigOneLeaves) {
  geometry_ = {8 << 20, 0};
  options_.label.capacity = geometry_.capacity;
  options_.copies = 1;
  write_file(src_ + "/a", random_text(2500000, 1));
  write_file(src_ + "/b", random_text(2500000, 2));
  write_file(src_ + "/c-big", random_text(3000000, 3));  // does not fit after a and b
  write_file(src_ + "/d", random_text(100000, 4));
  write_file(src_ + "/e", random_text(100000, 5));
  BackupReport report = run();
  EXPECT_EQ(report.copies, 5u);
  auto tape_of = [&](const std::string& name) {
    auto v = catalog_->latest_version(*catalog_->file_by_path(src_ + name));
    auto replicas = catalog_->copies_of(v->id);
    return replicas.size() == 1 ? replicas[0].tape.serial : std::string("?");
  };
  EXPECT_EQ(tape_of("/a"), "L00001");
  EXPECT_EQ(tape_of("/b"), "L00001");
  EXPECT_EQ(tape_of("/c-big"), "L00002");
  EXPECT_EQ(tape_of("/d"), "L00001");
  EXPECT_EQ(tape_of("/e"), "L00001");
  EXPECT_EQ(catalog_->tape_by_serial("L00001")->state, catalog::TapeState::kFull);
  expect_archives_whole();
  expect_all_copied(1);
}

TEST_F(PipelineTest, EarlyWarningEndsATapeAfterTheArchiveInProgress) {
  // The planner would fill 64 MiB; the drive warns after 8 MiB.
  geometry_ = {64 << 20, 56 << 20};
  options_.label.capacity = geometry_.capacity;
  options_.copies = 1;
  options_.archive_size = 1 << 20;
  for (int i = 0; i < 30; ++i)
    write_file(src_ + "/f" + std::to_string(10 + i), random_text(900000, i));
  BackupReport report = run();
  EXPECT_EQ(report.failures(), 0u);
  EXPECT_EQ(report.copies, 30u);
  auto all = tapes();
  ASSERT_GE(all.size(), 3u);
  for (std::size_t i = 0; i + 1 < all.size(); ++i) {
    const auto& tape = all[i];
    EXPECT_EQ(tape.state, catalog::TapeState::kFull) << tape.serial;
    // Past the warning: at most the archive that crossed it, and the
    // trailing index.
    auto size = std::filesystem::file_size(library_ + "/" + tape.serial + ".tap");
    EXPECT_GT(size, 8u << 20) << tape.serial;
    EXPECT_LT(size, (8u << 20) + (3u << 20)) << tape.serial;
  }
  expect_archives_whole();
  expect_all_copied(1);
}

// The tape ends, unannounced, at a block somewhere in the session: in an
// archive (abandoned: the trailing index goes where its index began), in an
// index, or where the trailing index would go (then the archive before it
// is given up too).
class PhysicalEndTest : public PipelineTest, public ::testing::WithParamInterface<int> {};

INSTANTIATE_TEST_SUITE_P(AtBlocks, PhysicalEndTest, ::testing::Range(41, 100, 8));

TEST_P(PhysicalEndTest, AbandonsWhatDoesNotFitForTheNextTape) {
  options_.copies = 1;
  options_.archive_size = 1 << 20;
  for (int i = 0; i < 12; ++i)
    write_file(src_ + "/f" + std::to_string(10 + i), random_text(700000, i));
  const std::uint64_t end = static_cast<std::uint64_t>(GetParam());
  on_load_ = [end](const std::string& serial, tape::FaultInjectingDrive& drive) {
    if (serial == "L00001") drive.set_physical_end_at(end);
  };
  HookProgress progress;
  BackupReport report = run(progress);
  EXPECT_EQ(report.failures(), 0u);
  EXPECT_EQ(report.copies, 12u);
  ASSERT_EQ(tapes().size(), 2u);
  EXPECT_EQ(tapes()[0].state, catalog::TapeState::kFull);
  bool warned = false;
  for (const auto& w : progress.warnings) warned |= w.find("next tape") != std::string::npos;
  EXPECT_TRUE(warned);
  EXPECT_LE(tapes()[0].append_block.value_or(0), end);
  expect_archives_whole();
  expect_all_copied(1);
}

TEST_F(PipelineTest, AWriterThatDiesMidSessionCommitsNothingAndTheNextRunCarriesOn) {
  options_.copies = 1;
  options_.archive_size = 1 << 20;
  for (int i = 0; i < 6; ++i) write_file(src_ + "/f" + std::to_string(i), random_text(600000, i));
  run();
  const auto first = tapes().at(0);
  for (int i = 6; i < 14; ++i) write_file(src_ + "/f" + std::to_string(i), random_text(600000, i));
  // The write stage fails after a few archives of the second session
  // (tape files written, nothing committed).
  HookProgress progress;
  int written = 0;
  progress.on_advance = [&](const std::string& phase, const std::string&) {
    if (phase == "backup" && ++written == 5) throw Error("simulated crash");
  };
  EXPECT_THROW_MESSAGE(run(progress), Error, "simulated crash");
  auto after = tapes().at(0);
  EXPECT_EQ(after.append_block, first.append_block);
  EXPECT_EQ(after.append_file, first.append_file);
  EXPECT_EQ(catalog_->archives_of_tape(after.id).size(),
            catalog_->archives_of_tape(first.id).size());
  EXPECT_EQ(verify_catalog_against_tapes(*catalog_, library_, identity_), 6u);
  // The tape now ends in the dead session's files, not a trailing index;
  // the next run overwrites them from the old append point.
  BackupReport report = run();
  EXPECT_EQ(report.failures(), 0u);
  EXPECT_EQ(report.copies, 8u);
  expect_archives_whole();
  expect_all_copied(1);
}

TEST_F(PipelineTest, AHashStageThatDiesMidSessionKeepsWhatWasWritten) {
  options_.copies = 1;
  options_.archive_size = 1 << 20;
  for (int i = 0; i < 12; ++i)
    write_file(src_ + "/f" + std::to_string(10 + i), random_text(600000, i));
  HookProgress progress;
  progress.on_hashed = [&](const std::string& path) {
    if (path == src_ + "/f18") throw Error("simulated hash stage failure");
  };
  try {
    run(progress);
    FAIL() << "the failure was swallowed";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "simulated hash stage failure");
  }
  // The archives written before it are committed, readable, and named.
  auto copied = verify_catalog_against_tapes(*catalog_, library_, identity_);
  EXPECT_GE(copied, 2u);
  EXPECT_LT(copied, 12u);
  expect_trailing_indexes(*catalog_, library_, identity_, dir_.path());
  BackupReport report = run();
  EXPECT_EQ(report.copies, 12u - copied);
  expect_all_copied(1);
}

TEST_F(PipelineTest, AFileLargerThanATapeIsGivenUpAndTheRestIsBackedUp) {
  geometry_ = {16 << 20, 0};
  options_.label.capacity = geometry_.capacity;
  write_file(src_ + "/small", "small");
  write_file(src_ + "/huge", random_text(20 << 20, 1));
  write_file(src_ + "/zz-after", "after it in path order");
  BackupReport report = run();
  ASSERT_EQ(report.too_large.size(), 1u);
  EXPECT_NE(report.too_large[0].find(src_ + "/huge"), std::string::npos) << report.too_large[0];
  EXPECT_NE(report.too_large[0].find("larger than a tape"), std::string::npos);
  EXPECT_EQ(report.failures(), 1u);
  EXPECT_EQ(report.copies, 4u);   // the two others, on two tapes each
  EXPECT_EQ(tapes().size(), 2u);  // no tape labelled in vain for it
  // It stays dirty, so the next run says so again.
  std::vector<std::string> dirty;
  catalog_->for_each_dirty([&](const catalog::FileRef& f) { dirty.push_back(f.path); });
  EXPECT_EQ(dirty, std::vector<std::string>{src_ + "/huge"});
  EXPECT_EQ(run().too_large.size(), 1u);
}

TEST_F(PipelineTest, AFileVanishingBetweenScanAndWriteIsReportedAndTheOthersAreCopied) {
  write_file(src_ + "/a-goes", "gone before it is read");
  write_file(src_ + "/b", "b");
  write_file(src_ + "/c", "c");
  HookProgress progress;
  // The scan visits a, b, c in order: once it reaches c, a is in the catalog
  // as dirty, and is removed from disk before the hash stage reads it.
  progress.on_advance = [&](const std::string& phase, const std::string& path) {
    if (phase == "scan" && path == src_ + "/c") ::unlink((src_ + "/a-goes").c_str());
  };
  BackupReport report = run(progress);
  EXPECT_EQ(report.hash.vanished, 1u);
  EXPECT_EQ(report.failures(), 0u);
  EXPECT_EQ(report.copies, 4u);
  bool warned = false;
  for (const auto& w : progress.warnings) warned |= w.find(src_ + "/a-goes") != std::string::npos;
  EXPECT_TRUE(warned);
  EXPECT_FALSE(catalog_->latest_version(*catalog_->file_by_path(src_ + "/a-goes")));
  EXPECT_EQ(catalog_->dirty_count(), 0u);
  expect_all_copied(2);
}

TEST_F(PipelineTest, AFileChangedBetweenHashingAndWritingIsNotRecordedAsCopied) {
  write_file(src_ + "/appended", "original");
  write_file(src_ + "/replaced", "same size A");
  write_file(src_ + "/steady", "steady");
  const std::string replaced = src_ + "/replaced";
  HookProgress progress;
  int changes = 0;
  // Right after the hash stage has read them (the write stage reads them
  // again later): one grows; the other is replaced by a file of the same
  // size and mtime (as rsync -t would), which only its inode and ctime give
  // away.
  progress.on_hashed = [&](const std::string& path) {
    if (changes >= 2) return;
    if (path == src_ + "/appended") {
      UniqueFd fd = open_file(path, O_WRONLY | O_APPEND);
      write_all(fd.get(), as_bytes(" and more"), path);
      ++changes;
    } else if (path == replaced) {
      struct stat st {};
      ::stat(replaced.c_str(), &st);
      write_file(replaced + ".tmp", "same size B");
      struct timespec times[2] = {st.st_atim, st.st_mtim};
      ::utimensat(AT_FDCWD, (replaced + ".tmp").c_str(), times, 0);
      ::rename((replaced + ".tmp").c_str(), replaced.c_str());
      ++changes;
    }
  };
  BackupReport report = run(progress);
  EXPECT_EQ(changes, 2);
  EXPECT_EQ(report.not_copied, 2u);
  EXPECT_EQ(report.failures(), 2u);
  // Both are dirty again; the steady file has its copies.
  EXPECT_EQ(catalog_->dirty_count(), 2u);
  auto steady = catalog_->latest_version(*catalog_->file_by_path(src_ + "/steady"));
  EXPECT_EQ(catalog_->copies_of(steady->id).size(), 2u);
  // No copy of the old contents claims to be on tape.
  verify_catalog_against_tapes(*catalog_, library_, identity_);
  for (const char* name : {"/appended", "/replaced"}) {
    auto v = catalog_->latest_version(*catalog_->file_by_path(src_ + name));
    EXPECT_TRUE(catalog_->copies_of(v->id).empty()) << name;
  }
  // The next run copies what they hold now.
  report = run();
  EXPECT_EQ(report.failures(), 0u);
  EXPECT_EQ(to_hex(catalog_->latest_version(*catalog_->file_by_path(replaced))->hash),
            hash_hex("same size B"));
  expect_all_copied(2, /*latest_only=*/true);
}

TEST_F(PipelineTest, AnInterruptedLabellingIsReusedAndAForeignTapeIsNot) {
  // L00001: our label, registered nowhere (the run died before committing).
  // L00002: another catalog's tape.
  auto write_label = [&](const std::string& serial, const std::string& catalog_id) {
    tape::ImageDrive::create(library_ + "/" + serial + ".tap", geometry_);
    auto drive = tape::ImageDrive::open(library_ + "/" + serial + ".tap");
    format::LabelInfo label;
    label.serial = serial;
    label.record_size = 64 << 10;
    label.labelled = "2026-01-01T00:00:00Z";
    label.recipients = {identity_.recipient().to_string()};
    label.catalog_id = catalog_id;
    format::ArchaeologyExtras extras;
    extras.binary_path = options_.label.binary_path;
    extras.source_tarball_path = options_.label.source_tarball_path;
    tape::RecordWriter records(*drive, 64 << 10);
    format::write_archaeology(records, label, extras);
    records.close();
  };
  write_label("L00001", catalog_->catalog_id());
  write_label("L00002", "0123456789abcdef");
  auto foreign = read_file(library_ + "/L00002.tap");
  write_file(src_ + "/a", "a");
  HookProgress progress;
  BackupReport report = run(progress);
  EXPECT_EQ(report.tapes, (std::vector<std::string>{"L00001", "L00003"}));
  EXPECT_EQ(read_file(library_ + "/L00002.tap"), foreign);
  EXPECT_FALSE(catalog_->tape_by_serial("L00002"));
  expect_all_copied(2);
}

}  // namespace
}  // namespace mixtape::backup::testing
