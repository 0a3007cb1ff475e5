// The writer's commands as a user runs them: init, label, backup, ls,
// status, tapes; errors; hostile source trees; an unprivileged user.
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "tests/backup/backup_test_util.h"

namespace mixtape::backup::testing {
namespace {

class CliTest : public MixtapeCliTest {
 protected:
  CliTest() { std::filesystem::create_directories(src_); }

  CommandResult backup(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"backup",        src_,         "--library", library_,
                                     "--new-library", "--capacity", "64M",       "--archive-size",
                                     "256K"};
    args.insert(args.end(), extra.begin(), extra.end());
    return mixtape(args);
  }
  // The catalog as the test sees it (read-only, as the mount would).
  catalog::Catalog open_catalog() { return catalog::Catalog::open_read_only(env_.catalog); }

  static std::size_t count(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
  }
  static bool one_line(const std::string& err) {
    return !err.empty() && err.back() == '\n' && count(err, "\n") == 1 &&
           err.rfind("mixtape: ", 0) == 0;
  }
};

TEST_F(CliTest, RecordSizesAboveOneMebibyteAreRefused) {
  // Not every drive and HBA takes larger records (docs/TAPE.md, "Record size").
  for (const char* size : {"2M", "1536K", "16M"}) {
    CommandResult r = mixtape({"init", "--no-encryption", "--record-size", size});
    EXPECT_NE(r.status, 0) << size;
    EXPECT_TRUE(one_line(r.err)) << r.err;
    EXPECT_NE(r.err.find("--record-size must be a multiple of 512 between 512 and 1M"),
              std::string::npos)
        << r.err;
    EXPECT_FALSE(std::filesystem::exists(env_.catalog)) << size;
  }
  CommandResult ok = mixtape({"init", "--no-encryption", "--record-size", "1M"});
  ASSERT_EQ(ok.status, 0) << ok.err;
  EXPECT_EQ(open_catalog().config().record_size, 1u << 20);
}

TEST_F(CliTest, VersionsCopiesAndDeletedFilesThroughTheCommands) {
  CommandResult init = mixtape({"init", "--copies", "2"});
  ASSERT_EQ(init.status, 0) << init.err;
  EXPECT_EQ(init.out.rfind("age1", 0), 0u) << "init prints the recipient";
  write_file(src_ + "/doc.txt", "version one");
  write_file(src_ + "/gone.txt", "deleted later");
  write_file(src_ + "/sub/keep.bin", random_text(300000, 1));

  CommandResult first = backup({"--stats-json", dir_.file("stats.json")});
  ASSERT_EQ(first.status, 0) << first.err;
  EXPECT_NE(first.out.find("backed up 6 file copies"), std::string::npos) << first.out;
  EXPECT_NE(first.out.find("L00001 L00002"), std::string::npos) << first.out;
  EXPECT_NE(read_file(dir_.file("stats.json")).find("\"records_written\": "), std::string::npos);

  CommandResult ls = mixtape({"ls", "--versions", "--replicas", src_ + "/doc.txt"});
  ASSERT_EQ(ls.status, 0) << ls.err;
  EXPECT_EQ(count(ls.out, "  version "), 1u) << ls.out;
  EXPECT_NE(ls.out.find("copies 2/2"), std::string::npos) << ls.out;
  EXPECT_NE(ls.out.find("replica L00001:"), std::string::npos) << ls.out;
  EXPECT_NE(ls.out.find("replica L00002:"), std::string::npos) << ls.out;

  write_file(src_ + "/doc.txt", "version two, longer");
  ASSERT_EQ(::unlink((src_ + "/gone.txt").c_str()), 0);
  CommandResult second = backup();
  ASSERT_EQ(second.status, 0) << second.err;
  EXPECT_NE(second.out.find("backed up 2 file copies"), std::string::npos) << second.out;

  ls = mixtape({"ls", "-R", "--versions", src_});
  ASSERT_EQ(ls.status, 0) << ls.err;
  // doc.txt: both versions, each with its two copies; gone.txt still listed.
  auto doc = ls.out.find(src_ + "/doc.txt\n");
  ASSERT_NE(doc, std::string::npos) << ls.out;
  auto gone = ls.out.find(src_ + "/gone.txt\n");
  ASSERT_NE(gone, std::string::npos) << ls.out;
  std::string doc_block = ls.out.substr(doc, gone - doc);
  EXPECT_EQ(count(doc_block, "  version "), 2u) << doc_block;
  EXPECT_EQ(count(doc_block, "copies 2/2"), 2u) << doc_block;
  EXPECT_NE(doc_block.find(hash_hex("version one")), std::string::npos);
  EXPECT_NE(doc_block.find(hash_hex("version two, longer")), std::string::npos);
  EXPECT_NE(ls.out.find(hash_hex("deleted later") + " copies 2/2"), std::string::npos) << ls.out;

  CommandResult status = mixtape({"status"});
  ASSERT_EQ(status.status, 0) << status.err;
  EXPECT_NE(status.out.find("below copy goal: 0 versions"), std::string::npos) << status.out;
  CommandResult tapes = mixtape({"tapes"});
  ASSERT_EQ(tapes.status, 0) << tapes.err;
  EXPECT_NE(tapes.out.find("L00001"), std::string::npos);
  EXPECT_NE(tapes.out.find("L00002"), std::string::npos);

  auto catalog = open_catalog();
  EXPECT_EQ(verify_catalog_against_tapes(catalog, library_, identity()), 8u);
  expect_trailing_indexes(catalog, library_, identity(), dir_.path());
}

TEST_F(CliTest, TapesFillAtTheEarlyWarningAndTheBackupRollsOn) {
  ASSERT_EQ(mixtape({"init", "--copies", "1"}).status, 0);
  for (int i = 0; i < 24; ++i)
    write_file(src_ + "/f" + std::to_string(10 + i), random_text(1 << 20, i));
  // 64 MiB tapes that warn 8 MiB in (the planner alone would fill 60).
  CommandResult run = mixtape({"backup", src_, "--library", library_, "--new-library", "--capacity",
                               "64M", "--early-warning", "56M", "--archive-size", "1M"});
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_NE(run.out.find("backed up 24 file copies"), std::string::npos) << run.out;
  CommandResult tapes = mixtape({"tapes"});
  EXPECT_GE(count(tapes.out, " full "), 2u) << tapes.out;
  for (const auto& entry : std::filesystem::directory_iterator(library_)) {
    if (entry.path().extension() != ".tap") continue;
    EXPECT_LT(entry.file_size(), 12u << 20) << entry.path();
  }
  auto catalog = open_catalog();
  EXPECT_EQ(verify_catalog_against_tapes(catalog, library_, identity()), 24u);
  expect_trailing_indexes(catalog, library_, identity(), dir_.path());
}

TEST_F(CliTest, LabelThenBackUpToOneDevice) {
  ASSERT_EQ(mixtape({"init", "--copies", "1"}).status, 0);
  const std::string device = dir_.file("drive.tap");
  CommandResult made = mixtape({"tape", "mkimage", "--device", device, "--capacity", "32M"});
  ASSERT_EQ(made.status, 0) << made.err;
  CommandResult label = mixtape({"label", "--serial", "L00042", "--device", device});
  ASSERT_EQ(label.status, 0) << label.err;
  // The image's real size, not the 2.5 TB default of --capacity.
  EXPECT_NE(label.out.find("32.0 MiB"), std::string::npos) << label.out;
  write_file(src_ + "/a", random_text(100000, 3));
  CommandResult run = mixtape({"backup", src_, "--device", device});
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_NE(run.out.find("to L00042"), std::string::npos) << run.out;
  // Two copies need a second tape, which one drive cannot give: the first
  // copy is kept and the error says which tape to insert.
  write_file(src_ + "/b", "b");
  run = mixtape({"backup", src_, "--device", device, "--copies", "2"});
  EXPECT_NE(run.status, 0);
  EXPECT_TRUE(one_line(run.err)) << run.err;
  EXPECT_NE(run.err.find("insert tape L00001"), std::string::npos) << run.err;
  auto catalog = open_catalog();
  auto b = catalog.latest_version(*catalog.file_by_path(src_ + "/b"));
  ASSERT_TRUE(b);
  EXPECT_EQ(catalog.copies_of(b->id).size(), 1u);
}

// Labelling never overwrites data unasked: a tape of another catalog that
// carries the same serial keeps its archives unless --force is given.
TEST_F(CliTest, LabelRefusesATapeThatHoldsData) {
  CommandResult init = mixtape({"init", "--copies", "1"});
  ASSERT_EQ(init.status, 0) << init.err;
  const std::string recipient = init.out.substr(0, init.out.find('\n'));
  const std::string device = dir_.file("drive.tap");
  ASSERT_EQ(mixtape({"tape", "mkimage", "--device", device, "--capacity", "32M"}).status, 0);
  ASSERT_EQ(mixtape({"label", "--serial", "L00042", "--device", device}).status, 0);
  write_file(src_ + "/a", random_text(100000, 3));
  CommandResult run = mixtape({"backup", src_, "--device", device});
  ASSERT_EQ(run.status, 0) << run.err;
  const std::string tape_before = read_file(device);

  MixtapeEnv other = env_;  // a second catalog, encrypting to the same key
  other.catalog = dir_.file("other.db");
  CommandResult other_init =
      run_mixtape(other, {"init", "--copies", "1", "--recipient", recipient}, dir_.path());
  ASSERT_EQ(other_init.status, 0) << other_init.err;
  CommandResult refused =
      run_mixtape(other, {"label", "--serial", "L00042", "--device", device}, dir_.path());
  EXPECT_NE(refused.status, 0);
  EXPECT_TRUE(one_line(refused.err)) << refused.err;
  EXPECT_NE(refused.err.find("not blank"), std::string::npos) << refused.err;
  EXPECT_TRUE(read_file(device) == tape_before) << "the refused label changed the tape";
  EXPECT_FALSE(catalog::Catalog::open_read_only(other.catalog).tape_by_serial("L00042"));

  CommandResult forced = run_mixtape(
      other, {"label", "--serial", "L00042", "--device", device, "--force"}, dir_.path());
  ASSERT_EQ(forced.status, 0) << forced.err;
  EXPECT_TRUE(catalog::Catalog::open_read_only(other.catalog).tape_by_serial("L00042"));
}

TEST_F(CliTest, ErrorsAreOneLineWithANonZeroExit) {
  // No catalog yet.
  for (std::vector<std::string> args :
       {std::vector<std::string>{"backup", src_, "--library", library_},
        {"ls"},
        {"status"},
        {"tapes"},
        {"scan", src_},
        {"label", "--serial", "L00001", "--library", library_}}) {
    CommandResult r = mixtape(args);
    EXPECT_NE(r.status, 0) << args[0];
    EXPECT_TRUE(one_line(r.err)) << args[0] << ": " << r.err;
    EXPECT_NE(r.err.find("no catalog at " + env_.catalog), std::string::npos) << r.err;
  }
  ASSERT_EQ(mixtape({"init"}).status, 0);
  CommandResult again = mixtape({"init"});
  EXPECT_NE(again.status, 0);
  EXPECT_TRUE(one_line(again.err)) << again.err;

  write_file(src_ + "/small", "s");
  // Wrong flags and arguments.
  for (std::vector<std::string> args :
       {std::vector<std::string>{"backup", src_, "--library", library_, "--copies", "0"},
        {"backup", src_, "--library", library_, "--device", dir_.file("d.tap")},
        {"backup", src_},
        {"backup", src_, "--library", library_, "--capacity", "12Q"},
        {"backup", dir_.file("no-such-dir"), "--library", library_},
        {"init", "--record-size", "1000"}}) {
    CommandResult r = mixtape(args);
    EXPECT_NE(r.status, 0) << args.back();
    EXPECT_TRUE(one_line(r.err)) << args.back() << ": " << r.err;
  }
  // What the parser rejects: one "mixtape:" line naming the flag and the
  // command whose --help explains it; CLI11's exit codes (docs/GUIDE.md).
  CommandResult bogus = mixtape({"backup", src_, "--library", library_, "--bogus"});
  EXPECT_EQ(bogus.status, 109);
  EXPECT_TRUE(one_line(bogus.err)) << bogus.err;
  EXPECT_EQ(bogus.err.rfind("mixtape: ", 0), 0u) << bogus.err;
  EXPECT_NE(bogus.err.find("--bogus"), std::string::npos) << bogus.err;
  EXPECT_NE(bogus.err.find("mixtape backup --help"), std::string::npos) << bogus.err;
  CommandResult missing = mixtape({"backup"});
  EXPECT_EQ(missing.status, 106);
  EXPECT_TRUE(one_line(missing.err)) << missing.err;
  EXPECT_EQ(missing.err.rfind("mixtape: ", 0), 0u) << missing.err;
  // Nothing above wrote a tape.
  EXPECT_FALSE(std::filesystem::exists(library_ + "/L00001.tap"));
}

// One file no tape can hold does not stop the others; the run names it and
// exits non-zero, and the next run (after the operator excluded it) is clean.
TEST_F(CliTest, AFileLargerThanATapeIsNamedAndTheRestIsBackedUp) {
  ASSERT_EQ(mixtape({"init", "--copies", "1"}).status, 0);
  write_file(src_ + "/small", "s");
  write_file(src_ + "/huge", random_text(20 << 20, 9));
  CommandResult huge =
      mixtape({"backup", src_, "--library", library_, "--new-library", "--capacity", "16M"});
  EXPECT_NE(huge.status, 0);
  EXPECT_NE(huge.err.find("warning: " + src_ + "/huge (20.0 MiB) is larger than a tape"),
            std::string::npos)
      << huge.err;
  EXPECT_NE(huge.err.find("mixtape: 1 file could not be backed up"), std::string::npos) << huge.err;
  EXPECT_NE(huge.out.find("backed up 1 file copy"), std::string::npos) << huge.out;
  CommandResult ls = mixtape({"ls", "--replicas", src_ + "/small"});
  EXPECT_NE(ls.out.find("replica L00001:"), std::string::npos) << ls.out;
  CommandResult again = mixtape({"backup", src_, "--library", library_, "--exclude", "huge"});
  EXPECT_EQ(again.status, 0) << again.err;
}

TEST_F(CliTest, HostileSourceTree) {
  ASSERT_EQ(mixtape({"init", "--copies", "1"}).status, 0);
  write_file(src_ + "/new\nline", "newline");
  write_file(src_ + "/invalid \xff\xfe utf-8", "bytes");
  write_file(src_ + "/-starts-with-dash", "dash");
  std::string deep = src_;
  while (deep.size() + 51 <= 3800) deep += "/" + std::string(50, 'd');
  const std::string long_path = deep + "/" + std::string(4000 - deep.size() - 1, 'f');
  write_file(long_path, "four thousand bytes of path");
  {
    UniqueFd fd = open_file(src_ + "/sparse", O_WRONLY | O_CREAT, 0644);
    ASSERT_EQ(::pwrite(fd.get(), "tail", 4, 8 << 20), 4);
  }
  ::symlink("loop-b", (src_ + "/loop-a").c_str());
  ::symlink("loop-a", (src_ + "/loop-b").c_str());
  ::symlink("..", (src_ + "/up").c_str());
  ASSERT_EQ(::mkfifo((src_ + "/fifo").c_str(), 0644), 0);
  // Files that disappear while the backup runs: each is gone before the
  // scan, the hash or the write reaches it (or after, and then copied).
  for (int i = 0; i < 300; ++i) write_file(src_ + "/vanishing/" + std::to_string(i), "v");
  std::atomic<bool> stop{false};
  std::thread deleter([&] {
    for (int i = 0; i < 300 && !stop; ++i) {
      ::unlink((src_ + "/vanishing/" + std::to_string(i)).c_str());
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
  });
  CommandResult run = backup();
  stop = true;
  deleter.join();
  EXPECT_EQ(run.status, 0) << run.err;
  EXPECT_NE(run.err.find("skipped special file " + src_ + "/fifo"), std::string::npos) << run.err;

  auto catalog = open_catalog();
  std::size_t copies = verify_catalog_against_tapes(catalog, library_, identity());
  EXPECT_GE(copies, 8u);  // the eight odd files, and whichever vanishing ones were still there
  for (const std::string& path : {src_ + "/new\nline", src_ + "/invalid \xff\xfe utf-8", long_path,
                                  src_ + "/sparse", src_ + "/loop-a", src_ + "/up"}) {
    auto id = catalog.file_by_path(path);
    ASSERT_TRUE(id) << path;
    auto v = catalog.latest_version(*id);
    ASSERT_TRUE(v) << path;
    EXPECT_EQ(catalog.copies_of(v->id).size(), 1u) << path;
  }
  EXPECT_EQ(to_hex(catalog.latest_version(*catalog.file_by_path(src_ + "/sparse"))->hash),
            hash_hex(std::string(8 << 20, '\0') + "tail"));
  // Every vanishing file either has its copy or is not in the catalog as
  // present; none is left dirty.
  EXPECT_EQ(catalog.dirty_count(), 0u);

  // ls keeps one entry per line whatever the names hold.
  CommandResult ls = mixtape({"ls", src_});
  ASSERT_EQ(ls.status, 0) << ls.err;
  EXPECT_NE(ls.out.find(src_ + "/new\\x0aline\n"), std::string::npos) << ls.out;
  EXPECT_NE(ls.out.find("/invalid \xff\xfe utf-8\n"), std::string::npos) << ls.out;

  // GNU tar reads the archives, odd names included.
  ASSERT_TRUE(have_tool("tar") && have_tool("age")) << "tar or age not installed "
                                                       "(scripts/install-deps.sh)";
  std::string key = shell_quote(env_.home + "/.config/mixtape/identity.txt");
  std::string listing;
  auto files = tape_files(library_ + "/L00001.tap");
  for (std::size_t f = 2; f + 1 < files.size(); f += 2) {
    write_file(dir_.file("archive.age"), files[f]);
    CommandResult t = run_shell("age -d -i " + key + " " + shell_quote(dir_.file("archive.age")) +
                                " | tar -tf -");
    EXPECT_EQ(t.status, 0) << t.err;
    listing += t.out;
  }
  EXPECT_NE(listing.find(src_.substr(1) + "/new\\nline\n"), std::string::npos) << listing;
  EXPECT_NE(listing.find(long_path.substr(1) + "\n"), std::string::npos);
}

TEST_F(CliTest, UnreadableFilesAsAnUnprivilegedUser) {
  // Root reads everything; the backup runs as nobody, with its catalog and
  // tapes where nobody can write, and one file only root can read.
  ASSERT_EQ(::chmod(dir_.path().c_str(), 0777), 0);
  env_.uid = 65534;
  write_file(src_ + "/a", random_text(100000, 1));
  write_file(src_ + "/secret", "root only");
  write_file(src_ + "/z", "z");
  ASSERT_EQ(::chmod((src_ + "/secret").c_str(), 0600), 0);
  ASSERT_EQ(::chmod(src_.c_str(), 0755), 0);
  CommandResult init = mixtape({"init", "--copies", "2"});
  ASSERT_EQ(init.status, 0) << init.err;

  CommandResult run = backup();
  EXPECT_EQ(run.status, 1) << run.out << run.err;
  EXPECT_NE(run.err.find(src_ + "/secret: Permission denied"), std::string::npos) << run.err;
  std::string last_line = run.err.substr(run.err.rfind('\n', run.err.size() - 2) + 1);
  EXPECT_EQ(last_line,
            "mixtape: 1 file could not be backed up (see the warnings above); run "
            "backup again\n");
  // The others have both copies, on two tapes.
  auto catalog = open_catalog();
  for (const char* name : {"/a", "/z"}) {
    auto v = catalog.latest_version(*catalog.file_by_path(src_ + name));
    ASSERT_TRUE(v) << name;
    EXPECT_EQ(catalog.copies_of(v->id).size(), 2u) << name;
  }
  EXPECT_EQ(verify_catalog_against_tapes(catalog, library_, identity()), 4u);
  expect_trailing_indexes(catalog, library_, identity(), dir_.path());

  // Readable again: the next run takes it.
  ASSERT_EQ(::chmod((src_ + "/secret").c_str(), 0644), 0);
  run = backup();
  EXPECT_EQ(run.status, 0) << run.err;
  EXPECT_NE(run.out.find("backed up 2 file copies"), std::string::npos) << run.out;
}

}  // namespace
}  // namespace mixtape::backup::testing
