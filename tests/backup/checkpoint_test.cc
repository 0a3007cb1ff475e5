// `mixtape backup --commit-every`: a long session commits on its way, so a
// crash loses at most that much tape work, and the tape it leaves is an
// ordinary one (index/archive pairs, one trailing index).
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <thread>

#include "tests/backup/backup_test_util.h"

namespace mixtape::backup::testing {
namespace {

std::uint64_t library_bytes(const std::string& library) {
  std::uint64_t total = 0;
  std::error_code ignored;
  for (const auto& entry : std::filesystem::directory_iterator(library, ignored))
    if (entry.path().extension() == ".tap") total += entry.file_size(ignored);
  return total;
}

// A number from a --stats-json file.
double stat(const std::string& path, const std::string& key) {
  std::string text = read_file(path);
  auto at = text.find("\"" + key + "\":");
  if (at == std::string::npos) throw Error("no " + key + " in " + path);
  return std::strtod(text.c_str() + at + key.size() + 3, nullptr);
}

class CheckpointTest : public MixtapeCliTest {
 protected:
  // `count` files of `size` bytes, each different (a counter at its start).
  void make_files(int count, std::size_t size) {
    std::string body = random_text(size, 42);
    for (int i = 0; i < count; ++i) {
      std::string name = std::to_string(i);
      body.replace(0, name.size() + 1, name + "\n");
      write_file(src_ + "/f" + std::to_string(100 + i), body);
    }
  }
  std::vector<std::string> backup_args(const std::string& commit_every,
                                       const std::string& archive_size) {
    return {"backup",
            src_,
            "--library",
            library_,
            "--new-library",
            "--capacity",
            "4G",
            "--archive-size",
            archive_size,
            "--commit-every",
            commit_every,
            "--stats-json",
            dir_.file("stats.json")};
  }
};

// The issue's drill: 1 GiB, --commit-every 128M, killed once about 70% is on
// tape. What the catalog claims restores, and the next run writes at most
// 45% of the data again.
TEST_F(CheckpointTest, AKillLateInASessionLosesAtMostOneCheckpointsWork) {
  ASSERT_EQ(mixtape({"init", "--copies", "1"}).status, 0);
  constexpr std::uint64_t kTotal = 1ULL << 30;
  make_files(16, kTotal / 16);
  const std::string out = dir_.file(".out"), err = dir_.file(".err");
  pid_t pid = spawn_mixtape(env_, backup_args("128M", "64M"), out, err);
  bool killed = false;
  for (;;) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) break;
    if (library_bytes(library_) >= kTotal * 7 / 10) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      killed = WIFSIGNALED(status);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ASSERT_TRUE(killed) << "the backup finished before 70% of it was on tape";
  {
    auto catalog = catalog::Catalog::open(env_.catalog);
    EXPECT_GE(verify_catalog_against_tapes(catalog, library_, identity()), 8u)
        << "at least four checkpoints of two 64 MiB files each were committed";
  }
  CommandResult again = mixtape(backup_args("128M", "64M"));
  ASSERT_EQ(again.status, 0) << again.err;
  const double rewritten = stat(dir_.file("stats.json"), "source_bytes_written");
  EXPECT_LE(rewritten, 0.45 * static_cast<double>(kTotal));
  EXPECT_GT(rewritten, 0);
  auto catalog = catalog::Catalog::open(env_.catalog);
  EXPECT_EQ(verify_catalog_against_tapes(catalog, library_, identity()), 16u);
}

TEST_F(CheckpointTest, CheckpointsLeaveAnOrdinaryTape) {
  ASSERT_EQ(mixtape({"init", "--copies", "1"}).status, 0);
  make_files(12, 3 << 20);
  CommandResult r = mixtape(backup_args("8M", "3M"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("committed to the catalog at 3 checkpoints"), std::string::npos) << r.out;
  // file 0, 12 index/archive pairs, one trailing index: the checkpoints'
  // trailing indexes were each overwritten by the next index.
  auto files = tape_files(library_ + "/L00001.tap");
  ASSERT_EQ(files.size(), 26u);
  auto catalog = catalog::Catalog::open(env_.catalog);
  EXPECT_EQ(verify_catalog_against_tapes(catalog, library_, identity()), 12u);
  expect_trailing_indexes(catalog, library_, identity(), dir_.path());
  const std::string before = mixtape({"ls", "-R", "--versions", "--replicas"}).out;
  for (const char* how : {"", "--walk-indexes"}) {
    SCOPED_TRACE(how);
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(env_.catalog + suffix);
    std::vector<std::string> args{"recover", "--library", library_};
    if (*how) args.push_back(how);
    CommandResult recovered = mixtape(args);
    ASSERT_EQ(recovered.status, 0) << recovered.err;
    EXPECT_EQ(mixtape({"ls", "-R", "--versions", "--replicas"}).out, before);
  }
}

}  // namespace
}  // namespace mixtape::backup::testing
