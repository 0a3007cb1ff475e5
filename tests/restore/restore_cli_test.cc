// `mixtape restore` and `mixtape verify`, run as a user runs the built
// binary against tapes the real writer made. The --stats-json counters are
// the proof of the seek promises: every bound is stated where it is checked.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <random>
#include <set>
#include <thread>

#include "tests/restore/test_util.h"

namespace mixtape::restore::testing {
namespace {

namespace fs = std::filesystem;

class RestoreCliTest : public TreeTest {
 protected:
  // Restores args into DIR; the --stats-json counters land in stats_.
  CommandResult restore(const std::string& args, const std::string& to = "out") {
    CommandResult r = restore_into(args, to);
    stats_ = read_stats(f_.file("stats.json"));
    return r;
  }
  std::vector<std::string> regular_files() {
    std::vector<std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(f_.src()))
      if (e.is_regular_file() && !e.is_symlink()) out.push_back(e.path().string());
    std::sort(out.begin(), out.end());
    return out;
  }

  std::map<std::string, double> stats_;
};

TEST_F(RestoreCliTest, OneFileCostsAtMostTwoLocates) {
  f_.init(1);
  f_.backup("4M");
  // A file whose member starts two records or more into its archive, so
  // reaching it from the age header is a skip, not the next record.
  std::string file;
  for (const auto& candidate : regular_files()) {
    if (fs::file_size(candidate) == 0) continue;
    auto c = f_.replicas(candidate).at(0);
    format::ArchiveGeometry g{c.archive.first_block, c.tape.record_size, true,
                              c.archive.age_header_len};
    if (format::locate(g, c.copy.header_offset).block >= c.archive.first_block + 2)
      file = candidate;
  }
  ASSERT_FALSE(file.empty());
  CommandResult r = restore(shell_quote(file));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(same(file));
  // Default read-ahead: the archive lies within 1 GiB of the label, so the
  // drive streams to it: no locate at all (the bound is 2).
  EXPECT_LE(stats_["locates"], 2);
  EXPECT_EQ(stats_["locates"], 0) << "measured with the default read-ahead";

  // Without read-ahead: one locate to B0 for the age header, one to the
  // member's chunk (which is in a later record of the archive). Exactly 2.
  r = restore(shell_quote(file) + " --read-ahead 0", "out0");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(same(file, "out0"));
  EXPECT_EQ(stats_["locates"], 2);
}

TEST_F(RestoreCliTest, WholeTapeIsOneSequentialPass) {
  f_.init(1);
  f_.backup();
  auto catalog = catalog::Catalog::open_read_only(f_.catalog());
  const std::size_t archives =
      catalog.archives_of_tape(catalog.tape_by_serial("L00001")->id).size();
  ASSERT_GE(archives, 4u);
  CommandResult r = restore(shell_quote(f_.src()));
  ASSERT_EQ(r.status, 0) << r.err;
  for (const auto& file : regular_files()) EXPECT_TRUE(same(file)) << file;
  // Default read-ahead: one pass, reading through the small indexes between
  // archives: no locate (bound: 1 per tape).
  EXPECT_LE(stats_["locates"], 1);
  EXPECT_EQ(stats_["loads"], 1);
  // Without read-ahead the drive locates only between archives: one locate
  // to each archive's first block, never inside an archive. Bound:
  // locates <= archives (+0).
  r = restore(shell_quote(f_.src()) + " --read-ahead 0", "out0");
  ASSERT_EQ(r.status, 0) << r.err;
  for (const auto& file : regular_files()) EXPECT_TRUE(same(file, "out0")) << file;
  EXPECT_LE(stats_["locates"], static_cast<double>(archives));
  EXPECT_GE(stats_["locates"], 1);
}

TEST_F(RestoreCliTest, TwoHundredRandomFilesCostOneLocatePerArchiveTouched) {
  Fixture& f = f_;
  // 300 more small files in the fixture's tree.
  for (int i = 0; i < 300; ++i)
    write_file(f.src() + "/many/g" + std::to_string(i % 10) + "/x" + std::to_string(i),
               random_text(1000 + (i * 131) % 9000, 5000 + i));
  f.init(1);
  f.backup();
  std::vector<std::string> all = regular_files();
  std::erase_if(all, [&](const std::string& p) { return fs::file_size(p) == 0; });
  std::mt19937 rng(7);
  std::shuffle(all.begin(), all.end(), rng);
  all.resize(200);
  std::set<std::int64_t> touched;
  std::string args;
  for (const auto& p : all) {
    args += shell_quote(p) + " ";
    touched.insert(f.replicas(p).at(0).archive.archive_file);
  }
  ASSERT_GE(touched.size(), 3u);

  CommandResult r = restore(args);
  ASSERT_EQ(r.status, 0) << r.err;
  for (const auto& p : all) EXPECT_TRUE(same(p)) << p;
  // Bound with the default read-ahead: at most one locate per archive
  // touched (to its first block, for the age header); every member of it is
  // then reached by streaming forward. Measured: the archives are close
  // enough together that the drive streams from one to the next.
  EXPECT_LE(stats_["locates"], static_cast<double>(touched.size()));

  // Bound without read-ahead: per archive touched, one locate to B0 (the age
  // header, read once and cached) and one to the first requested member's
  // chunk; later members of the archive stream (the decryptor skips small
  // gaps). So locates <= 2 x archives touched, never one per file.
  r = restore(args + " --read-ahead 0", "out0");
  ASSERT_EQ(r.status, 0) << r.err;
  for (const auto& p : all) EXPECT_TRUE(same(p, "out0")) << p;
  EXPECT_LE(stats_["locates"], 2.0 * static_cast<double>(touched.size()));
  EXPECT_LT(stats_["locates"], 200);
}

TEST_F(RestoreCliTest, RestoresMetadataSymlinksAndEmptyDirectories) {
  f_.init(1);
  f_.backup();
  CommandResult r = restore(shell_quote(f_.src()));
  ASSERT_EQ(r.status, 0) << r.err;
  struct stat a {
  }, b{};
  ASSERT_EQ(::stat((f_.src() + "/private.txt").c_str(), &a), 0);
  ASSERT_EQ(::stat(restored(f_.src() + "/private.txt").c_str(), &b), 0);
  EXPECT_EQ(b.st_mode & 07777, 0600u);
  EXPECT_EQ(a.st_mtim.tv_sec, b.st_mtim.tv_sec);
  EXPECT_EQ(a.st_mtim.tv_nsec, b.st_mtim.tv_nsec);
  EXPECT_TRUE(fs::is_symlink(restored(f_.src() + "/link")));
  EXPECT_EQ(fs::read_symlink(restored(f_.src() + "/link")), "big.bin");
  EXPECT_TRUE(fs::is_directory(restored(f_.src() + "/empty-dir")));
  EXPECT_TRUE(fs::is_empty(restored(f_.src() + "/empty-dir")));
  EXPECT_TRUE(fs::exists(restored(f_.src() + "/empty.txt")));
  EXPECT_EQ(fs::file_size(restored(f_.src() + "/empty.txt")), 0u);
  ASSERT_EQ(::stat((f_.src() + "/d1").c_str(), &a), 0);
  ASSERT_EQ(::stat(restored(f_.src() + "/d1").c_str(), &b), 0);
  EXPECT_EQ(a.st_mtim.tv_sec, b.st_mtim.tv_sec) << "directory mtimes are set last";
}

TEST_F(RestoreCliTest, FlippedByteFailsThatFileAloneAndNamesIt) {
  f_.init(1);
  f_.backup();
  const std::string big = f_.src() + "/big.bin";
  auto replica = f_.replicas(big).at(0);
  f_.flip(replica, replica.copy.data_offset + 1'500'000);
  CommandResult r = restore(shell_quote(f_.src()));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find(big), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("tape L00001"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("block"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(restored(big))) << "nothing unverified is left in place";
  for (const auto& file : regular_files()) {
    if (file != big) {
      EXPECT_TRUE(same(file)) << file;
    }
  }
  for (const auto& e : fs::recursive_directory_iterator(f_.file("out")))
    EXPECT_EQ(e.path().filename().string().find(".mixtape-"), std::string::npos) << e.path();
}

TEST_F(RestoreCliTest, FlippedByteComesBackFromTheOtherCopy) {
  f_.init(2);
  f_.backup();
  const std::string big = f_.src() + "/big.bin";
  auto replicas = f_.replicas(big);
  ASSERT_EQ(replicas.size(), 2u);
  f_.flip(replicas[0], replicas[0].copy.data_offset + 1'500'000);  // L00001
  CommandResult r = restore(shell_quote(f_.src()));
  ASSERT_EQ(r.status, 0) << r.err;
  for (const auto& file : regular_files()) EXPECT_TRUE(same(file)) << file;
  EXPECT_EQ(stats_["loads"], 2) << "L00001 for everything, then L00002 for big.bin";
}

TEST_F(RestoreCliTest, WrongIdentityIsAClearErrorNotAPartialSuccess) {
  f_.init(1);
  f_.backup();
  ASSERT_EQ(f_.mixtape("keygen -o " + shell_quote(f_.file("other.txt"))).status, 0);
  CommandResult r =
      restore(shell_quote(f_.src() + "/big.bin") + " -i " + shell_quote(f_.file("other.txt")));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("wrong --identity"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(restored(f_.src() + "/big.bin")));
}

TEST_F(RestoreCliTest, TruncatedTapeLosesOnlyWhatIsGone) {
  f_.init(1);
  f_.backup();
  // Cut the image one record into the tape's last archive.
  auto catalog = catalog::Catalog::open_read_only(f_.catalog());
  auto archives = catalog.archives_of_tape(catalog.tape_by_serial("L00001")->id);
  const catalog::ArchiveRow last = archives.back();
  auto blocks = parse_image(f_.image("L00001"));
  fs::resize_file(f_.image("L00001"), blocks[last.first_block + 1].data_offset + 100);
  CommandResult r = restore(shell_quote(f_.src()));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("truncated"), std::string::npos) << r.err;
  std::size_t lost = 0, kept = 0;
  for (const auto& file : regular_files()) {
    if (fs::file_size(file) == 0) continue;
    if (f_.replicas(file).at(0).archive.archive_file < last.archive_file) {
      EXPECT_TRUE(same(file)) << file;
      ++kept;
    } else if (fs::exists(restored(file))) {
      EXPECT_TRUE(same(file)) << file << ": what is restored is whole";
    } else {
      EXPECT_NE(r.err.find(file + ": "), std::string::npos) << file << " failed silently";
      ++lost;
    }
  }
  EXPECT_GT(kept, 0u);
  EXPECT_GT(lost, 0u);
}

TEST_F(RestoreCliTest, TapeOfAnotherCatalogIsRefusedAndTheOtherCopyUsed) {
  f_.init(2);
  f_.backup();
  Fixture other;
  other.make_tree();
  other.init(1);
  other.backup();
  fs::copy_file(other.image("L00001"), f_.image("L00001"), fs::copy_options::overwrite_existing);
  fs::remove(f_.image("L00001") + ".idx");
  CommandResult r = restore(shell_quote(f_.src()));
  ASSERT_EQ(r.status, 0) << r.err;
  for (const auto& file : regular_files()) EXPECT_TRUE(same(file)) << file;

  fs::remove(f_.image("L00002"));  // now only the foreign tape is left
  r = restore(shell_quote(f_.src() + "/big.bin"), "out2");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("belongs to catalog"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("L00002 is not in the library"), std::string::npos) << r.err;
}

TEST_F(RestoreCliTest, NeverOverwritesUnlessAsked) {
  f_.init(1);
  f_.backup();
  const std::string file = f_.src() + "/d0/f0";
  write_file(restored(file), "mine");
  CommandResult r = restore(shell_quote(file));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("exists (use --overwrite"), std::string::npos) << r.err;
  EXPECT_EQ(read_file(restored(file)), "mine");
  r = restore(shell_quote(file) + " --overwrite");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(same(file));
}

TEST_F(RestoreCliTest, NeverWritesThroughASymlinkPlantedInTheDestination) {
  f_.init(1);
  f_.backup();
  // DIR/<first component of the source path> -> elsewhere
  fs::create_directories(f_.file("out"));
  fs::create_directories(f_.file("elsewhere"));
  const std::string first = std::next(fs::path(f_.src()).begin())->string();  // after "/"
  fs::create_directory_symlink(f_.file("elsewhere"), f_.file("out") + "/" + first);
  CommandResult r = restore(shell_quote(f_.src()) + " --overwrite");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("symbolic link; refusing to follow it"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::is_empty(f_.file("elsewhere")));
}

TEST_F(RestoreCliTest, AtSelectsTheSnapshot) {
  f_.init(1);
  f_.backup();
  const std::string file = f_.src() + "/d0/f0";
  const std::string old_content = read_file(file);
  // --at takes whole seconds: a second that began after the first run and
  // ended before the second began (waited for on the clock).
  const auto next_second = [] {
    const std::time_t now = std::time(nullptr);
    EXPECT_TRUE(test_support::poll_until([&] { return std::time(nullptr) > now; }));
    return std::time(nullptr);
  };
  const std::string between = format::format_utc(next_second());
  next_second();
  write_file(file, "a newer version\n");
  f_.backup();
  CommandResult r = restore(shell_quote(file) + " --at " + between, "old");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(read_file(restored(file, "old")), old_content);
  r = restore(shell_quote(file), "new");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(read_file(restored(file, "new")), "a newer version\n");
  r = restore(shell_quote(file) + " --at 2000-01-01T00:00:00Z", "none");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("no backup run"), std::string::npos) << r.err;
}

TEST_F(RestoreCliTest, MissingPathsAreReported) {
  f_.init(1);
  f_.backup();
  CommandResult r =
      restore(shell_quote(f_.src() + "/nope") + " " + shell_quote(f_.src() + "/d0/f0"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("nope: not in the catalog"), std::string::npos) << r.err;
  EXPECT_TRUE(same(f_.src() + "/d0/f0"));
}

// ------------------------------------------------------------ verify

class VerifyCliTest : public RestoreCliTest {
 protected:
  CommandResult verify(const std::string& args = "") {
    CommandResult r =
        f_.mixtape("verify --library " + shell_quote(f_.library()) + " --stats-json " +
                   shell_quote(f_.file("stats.json")) + " " + args);
    stats_ = read_stats(f_.file("stats.json"));
    return r;
  }
};

TEST_F(VerifyCliTest, ReadsEveryTapeInOnePassAndRecordsTheResult) {
  f_.init(2);
  f_.backup();
  CommandResult r = verify();
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("verified 2 tapes"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" 0 bad"), std::string::npos) << r.out;
  // Sequential: at most one locate per tape (measured: none, the archives
  // follow the label closely enough to stream there).
  EXPECT_LE(stats_["locates"], 2);
  CommandResult s = f_.mixtape("status");
  EXPECT_NE(s.out.find("last verify ok"), std::string::npos) << s.out;
}

TEST_F(VerifyCliTest, FindsAFlippedByteAndNamesTheFile) {
  f_.init(1);
  f_.backup();
  const std::string big = f_.src() + "/big.bin";
  auto replica = f_.replicas(big).at(0);
  f_.flip(replica, replica.copy.data_offset + 1'500'000);
  CommandResult r = verify();
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find(big), std::string::npos) << r.err;
  EXPECT_NE(r.out.find(" 1 bad"), std::string::npos) << r.out;
  CommandResult s = f_.mixtape("status");
  EXPECT_NE(s.out.find("tape L00001: open"), std::string::npos) << s.out;
  EXPECT_NE(s.out.find("last verify unreadable"), std::string::npos) << s.out;
  auto catalog = catalog::Catalog::open_read_only(f_.catalog());
  auto file_check = catalog.last_verification(replica.archive.id, replica.copy.version_id);
  ASSERT_TRUE(file_check);
  EXPECT_EQ(file_check->result, catalog::VerifyResult::kUnreadable);
  auto archive_check = catalog.last_verification(replica.archive.id);
  ASSERT_TRUE(archive_check);
  EXPECT_NE(archive_check->result, catalog::VerifyResult::kOk);
  // The other archives verified fine.
  for (const auto& a : catalog.archives_of_tape(replica.tape.id)) {
    if (a.id == replica.archive.id) continue;
    ASSERT_TRUE(catalog.last_verification(a.id));
    EXPECT_EQ(catalog.last_verification(a.id)->result, catalog::VerifyResult::kOk);
  }
}

TEST_F(VerifyCliTest, QuickReadsTheIndexesOnly) {
  f_.init(1);
  f_.backup();
  const std::string big = f_.src() + "/big.bin";
  auto replica = f_.replicas(big).at(0);
  f_.flip(replica, replica.copy.data_offset + 1'500'000);  // in archive data
  CommandResult r = verify("--quick --read-ahead 0");
  ASSERT_EQ(r.status, 0) << r.err << r.out;
  auto catalog = catalog::Catalog::open_read_only(f_.catalog());
  std::size_t archives = catalog.archives_of_tape(replica.tape.id).size();
  EXPECT_NE(r.out.find(std::to_string(archives + 1) + " indexes ok"), std::string::npos) << r.out;
  // One locate per index (archives + the trailing index), and none of the
  // archives' bytes: far less than the tape holds.
  EXPECT_LE(stats_["locates"], static_cast<double>(archives + 1));
  EXPECT_LT(stats_["bytes_read"], static_cast<double>(fs::file_size(f_.image("L00001")) / 2));

  // A damaged index is found.
  auto blocks = parse_image(f_.image("L00001"));
  auto files = tape_files(blocks);
  flip_byte(f_.image("L00001"), blocks[files[3]].data_offset + 300);  // index 2
  r = verify("--quick");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("index of archive file 4"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace mixtape::restore::testing
